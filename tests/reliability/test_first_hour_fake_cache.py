"""Issue 17, first hour: a `FakeAnthropic` leaves no registry cache file behind.

caproute caches each endpoint's lineup in its own file (``registry-<host>-<hash>.json``
in the user cache directory); every fake on a random port is a new endpoint, so each
test run left one file per fake behind. The fake now removes its URL's file when it
closes. The cache directory is a temporary one here (``XDG_CACHE_HOME``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from caproute._registry.fetch import RegistryFetcher
from caproute.testing import FakeAnthropic


def test_closing_the_fake_removes_its_cache_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    unrelated = cache / "caproute" / "registry.json"  # the public API's: not the fake's
    unrelated.parent.mkdir(parents=True)
    unrelated.write_text("{}")
    for _ in range(3):
        with FakeAnthropic() as fake:
            # What every live router does with a fake's URL: fetch, and cache the lineup.
            with RegistryFetcher(api_key=fake.api_key, base_url=fake.url) as fetcher:
                assert fetcher.refresh().source.kind == "live"
            written = list((cache / "caproute").glob("registry-127.0.0.1*.json"))
            assert len(written) == 1
        assert list((cache / "caproute").glob("*registry-*")) == []
    assert unrelated.read_text() == "{}"
