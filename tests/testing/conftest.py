"""Fixtures for the tests of the fake API: a running fake with a small lineup (the
shipped plugin's, see tests/conftest.py), a raw client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from fake_api_helpers import API_KEY, lineup

from caproute.testing import FakeAnthropic


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": lineup(), "api_key": API_KEY}


@pytest.fixture(scope="module")
def _shared_http(fake_anthropic_server: FakeAnthropic) -> Iterator[httpx.Client]:
    # One per module, as the fake: its SSL context costs ~40 ms to build.
    headers = fake_anthropic_server.headers()
    with httpx.Client(base_url=fake_anthropic_server.url, headers=headers, timeout=5) as client:
        yield client


@pytest.fixture
def http(fake: FakeAnthropic, _shared_http: httpx.Client) -> httpx.Client:
    """A raw client for `fake` with the key and API version 2023-06-01 preset."""
    return _shared_http


@pytest.fixture
def sdk(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    """The real SDK pointed at `fake` (no retries), closed afterwards."""
    with fake.client() as client:
        yield client
