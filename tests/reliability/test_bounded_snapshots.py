"""Snapshot and cache files are bounded; tombstones are pruned; caches are per credential.

Issue 17 item 2: a 100,000-model cache file (114 MB) made a request take 51 s and the
process 2.8 GB; as ``--snapshot`` it took 67 s to start and a hot reload stalled a
request 34.7 s; kept models were never pruned (10k unlisted models stayed after a
refetch, the file grew). Every file is now refused above a size and a model count
(``CAPROUTE_SNAPSHOT_MAX_BYTES``, ``CAPROUTE_SNAPSHOT_MAX_MODELS``) before its models
are validated, and kept models (tombstones, and models a later list left out) are
kept at most 90 days and 100 at a time.

Issue 18 item 6 (the cache part): a list cached for one client of a base URL (a test's
mock) decided for every later client of that URL, in later processes too. Cache files
are now keyed by a keyed hash of the credential as well.
"""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from reliability_helpers import API_KEY, HI, replace_and_see_refused, snapshot_proxy

import caproute
from caproute import SnapshotError, embedded_registry, load_snapshot, save_snapshot
from caproute._registry.snapshot import initial_registry, user_cache_path
from caproute.testing import FakeAnthropic, make_model


def many_models(count: int) -> dict[str, Any]:
    """A valid snapshot document of `count` models (copies of the embedded ones)."""
    document = embedded_registry().to_json()
    models = document["models"]
    copies = []
    for i in range(count):
        model = copy.deepcopy(models[i % len(models)])
        model["id"] = f"{model['id']}-copy-{i}"
        copies.append(model)
    document["models"] = copies
    return document


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document, indent=1))
    return path


# -- size and model count ---------------------------------------------------------------------


def test_a_snapshot_over_the_size_limit_is_refused_unparsed(tmp_path: Path) -> None:
    big = write(tmp_path / "big.json", many_models(6_000))  # ~4.3 MB
    size = big.stat().st_size
    assert size > 4 * 1024 * 1024
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(big)
    assert str(caught.value) == (
        f"snapshot {big} is {size:,} bytes, over the limit of 4,194,304; "
        "set CAPROUTE_SNAPSHOT_MAX_BYTES to change it"
    )


def test_a_snapshot_over_the_model_limit_is_refused_before_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = many_models(2_001)
    document["models"][-1]["max_tokens"] = "not validated"  # the count is checked first
    path = write(tmp_path / "many.json", document)
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(path)
    assert str(caught.value) == (
        f"snapshot {path} holds 2,001 models, over the limit of 2,000; "
        "set CAPROUTE_SNAPSHOT_MAX_MODELS to change it"
    )
    monkeypatch.setenv("CAPROUTE_SNAPSHOT_MAX_MODELS", "3000")
    with pytest.raises(SnapshotError, match="max_tokens"):  # now validated
        load_snapshot(path)
    monkeypatch.setenv("CAPROUTE_SNAPSHOT_MAX_MODELS", "many")
    with pytest.raises(caproute.ConfigError, match="CAPROUTE_SNAPSHOT_MAX_MODELS must be"):
        load_snapshot(path)


def test_serve_refuses_to_start_on_an_oversized_snapshot(tmp_path: Path) -> None:
    big = write(tmp_path / "big.json", many_models(6_000))
    done = subprocess.run(
        [sys.executable, "-m", "caproute", "serve", "--snapshot", str(big), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "over the limit of 4,194,304; set CAPROUTE_SNAPSHOT_MAX_BYTES" in done.stderr


def test_an_oversized_user_cache_file_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = write(tmp_path / "registry.json", many_models(2_500))
    with caplog.at_level(logging.WARNING, logger="caproute.registry"):
        registry = initial_registry(cache_path=cache)
    assert registry is embedded_registry()
    assert "holds 2,500 models, over the limit of 2,000" in caplog.text


def test_a_hot_reload_over_the_limit_is_refused_and_the_old_data_kept(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    with snapshot_proxy(fake, tmp_path) as (proxy, snapshot):
        before = proxy.app.router.registry
        staging = write(tmp_path / "staging.json", many_models(6_000))
        replace_and_see_refused(proxy, snapshot, staging)
        assert proxy.app.router.registry is before
        with httpx2.Client(base_url=proxy.url, headers={"x-api-key": API_KEY}) as http:
            answer = http.post(
                "/v1/messages",
                json={"model": "claude-haiku-4-5", "max_tokens": 16, "messages": HI},
                headers={"anthropic-version": "2023-06-01"},
            )
        assert answer.status_code == 200


def test_a_models_list_over_the_limit_is_refused_and_the_held_data_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CAPROUTE_SNAPSHOT_MAX_MODELS", "3")
    models = [make_model(f"claude-many-{i}") for i in range(5)]
    with (
        FakeAnthropic(models=models, api_key=API_KEY) as fake,
        caproute.RegistryFetcher(
            api_key=API_KEY, base_url=fake.url, cache_path=tmp_path / "c.json", page_size=2
        ) as fetcher,
    ):
        with pytest.raises(caproute.RegistryError, match="listed over 3 models"):
            fetcher.refresh()
        assert fetcher.current() is embedded_registry()
        # Two pages were enough to know: the third was never asked for.
        assert sum(r.path == "/v1/models" for r in fake.requests) == 2
        assert not (tmp_path / "c.json").exists()


# -- tombstones ----------------------------------------------------------------------------------


def test_a_refetch_prunes_the_unlisted_models_of_a_huge_cache_file(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    # The case: a cache file of many models, then a list without them.
    cache = write(tmp_path / "registry.json", many_models(1_500))
    size_before = cache.stat().st_size
    with caproute.RegistryFetcher(api_key=API_KEY, base_url=fake.url, cache_path=cache) as f:
        live = f.refresh()
    # The models the list leaves out are kept (unlisted), the 100 most recent of them.
    assert len(live.unlisted) + len(live.tombstones) == 100
    saved = json.loads(cache.read_text())
    kept = {**saved.get("unlisted", {}), **saved.get("tombstones", {})}
    assert len(kept) == 100
    assert len(saved["models"]) == len(live.ids) + 100
    assert cache.stat().st_size < size_before / 5
    assert set(saved["tombstoned_at"]) == set(kept)


def test_tombstones_keep_their_age_across_saves_and_go_after_90_days(tmp_path: Path) -> None:
    now = time.time()
    document = many_models(4)
    ids = [m["id"] for m in document["models"]]
    document["tombstones"] = {ids[1]: "gone", ids[2]: "gone"}
    document["unlisted"] = {ids[3]: "left out"}  # kept models of both kinds age alike
    document["tombstoned_at"] = {ids[1]: now - 91 * 86400, ids[2]: now - 89 * 86400}
    document["aliases"] = {"old-alias": ids[1]}
    path = write(tmp_path / "snap.json", document)

    registry = load_snapshot(path)
    assert list(registry.tombstones) == [ids[2]]  # ids[1]: 91 days
    assert list(registry.unlisted) == [ids[3]]
    assert "old-alias" not in registry.aliases
    assert ids[1] not in registry

    save_snapshot(registry, path)  # the times written before are kept, not reset
    saved = json.loads(path.read_text())
    assert saved["tombstoned_at"][ids[2]] == pytest.approx(now - 89 * 86400)
    assert saved["tombstoned_at"][ids[3]] >= now  # first written now


# -- per-credential cache files (issue 18 item 6) ---------------------------------------------


def test_a_list_cached_for_one_key_never_decides_for_another_key_of_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    only_haiku = [make_model("claude-haiku-4-5")]
    mock_key, real_key = "mock-test-key", "sk-ant-api03-the-real-one"
    with FakeAnthropic(models=only_haiku, api_key=mock_key, keys={real_key: None}) as mock:
        with caproute.RegistryFetcher(api_key=mock_key, base_url=mock.url) as first:
            first.refresh()
        mock_file = user_cache_path(mock.url, mock_key)
        assert mock_file.is_file()
        assert mock_key not in mock_file.name and mock_key not in mock_file.read_text()

        # Another process, another key, the same URL: the mock's list is not read.
        script = (
            "import caproute, sys;"
            "f = caproute.RegistryFetcher(api_key=sys.argv[2], base_url=sys.argv[1], "
            "background=False);"
            "r = f.current(); print(r.source.kind, len(r.unlisted), len(r))"
        )
        env = {
            "XDG_CACHE_HOME": str(tmp_path / "xdg"),
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": ":".join(sys.path),
        }
        other, same = (
            subprocess.run(
                [sys.executable, "-c", script, mock.url, key],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=True,
            )
            for key in (real_key, mock_key)
        )
    embedded = len(embedded_registry())
    assert other.stdout.split() == ["embedded", "0", str(embedded)]
    # The mock's own key still finds its cache (and its one model).
    assert same.stdout.split()[0] == "cache"
    assert same.stdout.split()[2] == "1"
    assert (tmp_path / "xdg" / "caproute" / ".hmac-key").stat().st_mode & 0o077 == 0
