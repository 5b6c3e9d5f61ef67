"""The disk cache of caller registries: one 0600 file per credential digest in a 0700
directory, at most ``CAPROUTE_CALLER_CACHE_MAX_FILES`` files (the least recently
used go). Reads and writes block: callers run them in a worker thread."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from .._core.registry import Registry
from .._core.registry_source import RegistrySource
from .._exceptions import ConfigError, SnapshotError
from .._registry.snapshot import load_snapshot, save_snapshot

__all__ = [
    "CACHE_FILES_SETTING",
    "DEFAULT_MAX_CACHE_FILES",
    "configured_max_files",
    "prune_cache_dir",
    "read_cache",
    "write_cache",
]

logger = logging.getLogger("caproute.proxy")

CACHE_FILES_SETTING = "CAPROUTE_CALLER_CACHE_MAX_FILES"
DEFAULT_MAX_CACHE_FILES = 1_000
"""Caller cache files kept (the least recently used go); each is a few tens of kB."""


def _path(directory: Path, digest: str) -> Path:
    return directory / f"registry-{digest[:32]}.json"


def read_cache(directory: Path, digest: str) -> Registry | None:
    """The cached registry of the caller with `digest`, if a readable one exists."""
    path = _path(directory, digest)
    if not path.is_file():
        return None
    try:
        registry = load_snapshot(path)
    except SnapshotError as exc:
        logger.warning("ignoring a caller registry cache file: %s", exc)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # used now: the modification time orders the LRU pruning
    source = registry.source
    return registry.with_source(
        RegistrySource(
            "cache", fetched_at=source.fetched_at, location=str(path), describes=source.describes
        )
    )


def write_cache(directory: Path, digest: str, registry: Registry, max_files: int) -> None:
    """Write the registry of the caller with `digest` (0600, atomically); a new file
    makes the least recently used beyond `max_files` go."""
    path = _path(directory, digest)
    new = not path.exists()
    try:
        # save_snapshot writes a mkstemp file (mode 0600) and renames it into place.
        save_snapshot(registry, path)
    except SnapshotError as exc:
        logger.warning("could not write a caller registry cache file: %s", exc)
        return
    if new:
        prune_cache_dir(directory, max_files, keep=path)


def configured_max_files() -> int:
    """``CAPROUTE_CALLER_CACHE_MAX_FILES``, else `DEFAULT_MAX_CACHE_FILES`."""
    raw = os.environ.get(CACHE_FILES_SETTING, "").strip()
    if not raw:
        return DEFAULT_MAX_CACHE_FILES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{CACHE_FILES_SETTING} must be a positive integer, not {raw!r}")
    return value


def prune_cache_dir(directory: Path, max_files: int, *, keep: Path) -> int:
    """Remove the least recently used caller cache files beyond `max_files` (never
    `keep`, the one just written); the modification time is the last use (a read
    touches it). Best effort; returns how many went."""
    files: list[tuple[float, str, Path]] = []
    try:
        with os.scandir(directory) as scan:
            for item in scan:
                if item.name.startswith("registry-") and item.name.endswith(".json"):
                    with contextlib.suppress(OSError):
                        files.append((item.stat().st_mtime, item.name, Path(item.path)))
    except OSError:
        return 0
    if len(files) <= max_files:
        return 0
    files.sort()
    removed = 0
    for _mtime, _name, path in files[: len(files) - max_files]:
        if path != keep:
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed
