"""Fixtures for the tests of the fake API: a running fake with a small lineup, a raw client."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest
from fake_api_helpers import API_KEY, lineup

from caproute.testing import FakeAnthropic


@pytest.fixture(scope="session")
def _shared_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(models=lineup(), api_key=API_KEY) as running:
        yield running


@pytest.fixture
def fake(_shared_fake: FakeAnthropic) -> FakeAnthropic:
    """A running fake with the `lineup`, reset to its constructed state for each test.

    One server for the whole session: `reset()` is what makes tests independent, and
    sharing it (and the `http` client, whose SSL context costs ~40 ms to build) keeps
    this suite fast.
    """
    _shared_fake.reset()
    return _shared_fake


@pytest.fixture(scope="session")
def _shared_http(_shared_fake: FakeAnthropic) -> Iterator[httpx.Client]:
    headers = _shared_fake.headers()
    with httpx.Client(base_url=_shared_fake.url, headers=headers, timeout=5) as client:
        yield client


@pytest.fixture
def http(fake: FakeAnthropic, _shared_http: httpx.Client) -> httpx.Client:
    """A raw client for `fake` with the key and API version 2023-06-01 preset."""
    return _shared_http


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sdk(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    """The real SDK pointed at `fake` (no retries), closed afterwards."""
    with fake.client() as client:
        yield client
