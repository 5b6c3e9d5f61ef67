"""A pytest plugin with a `fake_anthropic` fixture.

Enable it in a ``conftest.py``::

    pytest_plugins = ["caproute.testing.pytest_plugin"]

    def test_routes(fake_anthropic):
        client = fake_anthropic.client()
        ...

One `FakeAnthropic` runs per test module and `fake_anthropic` hands it to each test
reset (`FakeAnthropic.reset`: catalogue, faults, overloads, batches and request log as
constructed; caproute's cache file for it forgotten), so tests do not see each other.
It is built from ``fake_anthropic_options``, the `FakeAnthropic` keyword arguments
(default: the default catalogue, ``api_key="test-key"``); override that fixture, at
module or session scope, in a test module or a ``conftest.py``::

    @pytest.fixture(scope="module")
    def fake_anthropic_options():
        return {"models": [make_model("claude-x-1")], "api_key": "sk-test"}

Module-scoped fixtures (a proxy in front of the fake, say) take ``fake_anthropic_server``,
the same running fake without the per-test reset.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._server import FakeAnthropic, _forget_cached_lineup

__all__ = ["fake_anthropic", "fake_anthropic_options", "fake_anthropic_server"]


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    """The `FakeAnthropic` keyword arguments of the module's fake (override to change)."""
    return {"api_key": "test-key"}


@pytest.fixture(scope="module")
def fake_anthropic_server(fake_anthropic_options: dict[str, Any]) -> Iterator[FakeAnthropic]:
    """The module's running `FakeAnthropic`, shared by its tests and not reset."""
    with FakeAnthropic(**fake_anthropic_options) as fake:
        yield fake


@pytest.fixture
def fake_anthropic(fake_anthropic_server: FakeAnthropic) -> FakeAnthropic:
    """The module's running `FakeAnthropic`, back to its constructed state for this test."""
    fake_anthropic_server.reset()
    _forget_cached_lineup(fake_anthropic_server.url)
    return fake_anthropic_server
