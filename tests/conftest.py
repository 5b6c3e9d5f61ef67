"""Suite-wide fixtures: no test reads or writes the real user cache or credentials; async
tests run under asyncio unless they ask for trio; `fake` is the shipped plugin's fake API.

The fake API: `caproute.testing.pytest_plugin` runs one `FakeAnthropic` per module
(``fake_anthropic_server``) and hands it to each test reset (``fake_anthropic``, here
also ``fake``). A folder's or a module's lineup and keys are its ``fake_anthropic_options``
(module scope), the `FakeAnthropic` keyword arguments.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from caproute.testing import FakeAnthropic

pytest_plugins = ["caproute.testing.pytest_plugin"]


@pytest.fixture(autouse=True)
def _isolated_user_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A live fetch writes the user cache file; a stray key would make LiveRouter fetch;
    # a developer's CAPROUTE_DEBUG would change what the logs hold.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "CAPROUTE_DEBUG",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake(fake_anthropic: FakeAnthropic) -> FakeAnthropic:
    """The module's fake API, reset for this test (the plugin's `fake_anthropic`)."""
    return fake_anthropic


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # anyio's own fixture runs every async test under each installed backend; trio is in
    # the dev extra for the SDK clients that run under it, and the proxy (uvicorn) is
    # asyncio-only. Tests that must also hold under trio say so
    # (tests/integration/test_sdk_wire.py, tests/shells/test_live.py).
    return "asyncio"
