"""Fixtures: the fake API and the real proxy in front of it (module-scoped: both are cheap
to reuse, and `fake.reset()` runs before every test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from proxy_helpers import API_KEY, RunningProxy, close_sdk_clients, start_proxy

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


@pytest.fixture(scope="module")
def proxy(fake: FakeAnthropic) -> Iterator[RunningProxy]:
    running = start_proxy(fake)
    yield running
    running.stop()
