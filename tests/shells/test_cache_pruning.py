"""The user cache directory stays tidy: one file per base URL, but not one per port forever."""

from __future__ import annotations

import os
import time
from pathlib import Path

from caproute import Registry, save_snapshot
from caproute._registry.snapshot import CACHE_KEEP_FILES, prune_user_cache, user_cache_path
from caproute.testing import make_model

REGISTRY = Registry.from_models([make_model("claude-x-1")])


def age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_saving_a_cache_file_prunes_old_per_url_files_and_dead_writers_tmp_files() -> None:
    directory = user_cache_path().parent
    public = save_snapshot(REGISTRY, user_cache_path())
    ports = [user_cache_path(f"http://127.0.0.1:{port}") for port in range(1, 13)]
    for path in ports:  # left by earlier processes (written here without pruning)
        path.write_text(public.read_text())
    for seconds, path in enumerate(reversed(ports)):
        age(path, 60 + seconds)  # the first written is the oldest
    dead_tmp = directory / ".registry.json.abc.tmp"
    dead_tmp.write_text("{")
    age(dead_tmp, 3600)
    live_tmp = directory / ".registry.json.def.tmp"  # a writer in another process, now
    live_tmp.write_text("{")

    newest = save_snapshot(REGISTRY, user_cache_path("http://127.0.0.1:9999"))

    left = sorted(p.name for p in directory.iterdir())
    kept = {p.name for p in ports[-(CACHE_KEEP_FILES - 1) :]}
    assert set(left) == {public.name, newest.name, live_tmp.name, *kept}
    assert len([n for n in left if n.startswith("registry-")]) == CACHE_KEEP_FILES


def test_old_files_go_even_when_few() -> None:
    old = save_snapshot(REGISTRY, user_cache_path("http://gateway.example"))
    age(old, 8 * 86400)
    written = save_snapshot(REGISTRY, user_cache_path("http://127.0.0.1:1"))
    assert not old.exists() and written.exists()


def test_snapshots_elsewhere_are_never_pruned(tmp_path: Path) -> None:
    mine = [save_snapshot(REGISTRY, tmp_path / f"registry-{n}.json") for n in range(12)]
    for path in mine:
        age(path, 30 * 86400)
    save_snapshot(REGISTRY, tmp_path / "registry-new.json")
    assert all(path.exists() for path in mine)
    prune_user_cache(user_cache_path())  # an empty cache directory is fine too
