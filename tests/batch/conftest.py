"""Fixtures: one fake API (with the small `lineup`) per module, reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from batch_helpers import API_KEY, lineup

from caproute.testing import FakeAnthropic


@pytest.fixture(scope="module")
def _shared_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(models=lineup(), api_key=API_KEY) as running:
        yield running


@pytest.fixture
def fake(_shared_fake: FakeAnthropic) -> FakeAnthropic:
    """A running fake with the `lineup`, reset (batches, faults, settings) for each test."""
    _shared_fake.reset()
    return _shared_fake


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
