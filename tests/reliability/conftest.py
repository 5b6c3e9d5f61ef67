"""Fixtures of the reliability suite: one fake API per module, reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from reliability_helpers import API_KEY

from caproute.testing import FakeAnthropic


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeAnthropic) -> FakeAnthropic:
    """The module's fake API (the embedded lineup), back to its initial state."""
    fake_server.reset()
    return fake_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
