"""Suite-wide safety: no test reads or writes the real user cache or credentials."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_user_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A live fetch writes the user cache file; a stray key would make LiveRouter fetch.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
