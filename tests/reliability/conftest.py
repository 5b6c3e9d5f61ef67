"""The reliability suite's fake API: the embedded lineup, its own key (see tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from reliability_helpers import API_KEY


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"api_key": API_KEY}
