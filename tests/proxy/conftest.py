"""Fixtures: the real proxy in front of the fake API (module-scoped: both are cheap to
reuse; `fake` is reset before every test, see tests/conftest.py).

The `proxy` (and the ugly cases' `strict`) proxies run once per server flavour: the
fast httptools + uvloop pair `caproute serve` picks when installed, and the pure-Python
h11 + asyncio fallback, so every safety test holds for both parsers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from proxy_helpers import (
    API_KEY,
    FLAVOURS,
    Flavour,
    RunningProxy,
    close_sdk_clients,
    start_proxy,
)

from caproute.testing import FakeAnthropic


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"api_key": API_KEY}


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    close_sdk_clients()  # their pooled sockets would otherwise warn at garbage collection


@pytest.fixture(scope="module", params=FLAVOURS, ids="-".join)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    http, loop = request.param
    if http == "httptools":  # the fallback pair is always there with uvicorn
        pytest.importorskip("httptools")
        pytest.importorskip("uvloop")
    return (http, loop)


@pytest.fixture(scope="module")
def proxy(fake_anthropic_server: FakeAnthropic, flavour: Flavour) -> Iterator[RunningProxy]:
    running = start_proxy(fake_anthropic_server, flavour=flavour)
    yield running
    running.stop()
