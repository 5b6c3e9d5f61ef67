"""The batch tests' fake API serves the small `lineup` (see tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from batch_helpers import API_KEY, lineup


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": lineup(), "api_key": API_KEY}
