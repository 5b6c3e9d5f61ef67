"""Fixtures: the fake API and the real proxy in front of it (module-scoped: both are cheap
to reuse, and `fake.reset()` runs before every test).

The `proxy` (and the ugly cases' `strict`) proxies run once per server flavour: the
fast httptools + uvloop pair `caproute serve` picks when installed, and the pure-Python
h11 + asyncio fallback, so every safety test holds for both parsers."""

from __future__ import annotations

from collections.abc import Iterator

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
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=API_KEY) as running:
        yield running


@pytest.fixture(autouse=True)
def _reset_fake(request: pytest.FixtureRequest) -> Iterator[None]:
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()
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
def proxy(fake: FakeAnthropic, flavour: Flavour) -> Iterator[RunningProxy]:
    running = start_proxy(fake, flavour=flavour)
    yield running
    running.stop()
