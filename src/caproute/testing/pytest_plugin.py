"""A pytest plugin with a `fake_anthropic` fixture.

Enable it in a ``conftest.py``::

    pytest_plugins = ["caproute.testing.pytest_plugin"]

    def test_routes(fake_anthropic):
        client = fake_anthropic.client()
        ...

The fixture starts one `FakeAnthropic` per test (default catalogue, ``api_key``
``"test-key"``); starting and stopping take a few milliseconds. For a custom lineup
write your own fixture around ``with FakeAnthropic(models=...) as fake: yield fake``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import FakeAnthropic

__all__ = ["fake_anthropic"]


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A running `FakeAnthropic` with the default catalogue and ``api_key="test-key"``."""
    with FakeAnthropic(api_key="test-key") as fake:
        yield fake
