"""Registry snapshots on disk: save, load, the user cache file and the embedded lineup.

A snapshot is the JSON document `Registry.to_json` makes (format
``caproute-registry/1``): the models exactly as the Models API sent them, the aliases
learned from ``GET /v1/models/{alias}`` and where the data came from. It never holds a
key: nothing from request headers is ever part of a `Registry`.

Start-up order (`initial_registry`), best first:

1. an explicit snapshot file the caller names (an error if it is missing or corrupt:
   the caller asked for it);
2. the user cache file, written after every successful live fetch
   (``$XDG_CACHE_HOME/caproute/registry.json``, else ``~/.cache/caproute/registry.json``;
   one file per base URL, see `user_cache_path`); a corrupt cache file is skipped with
   a warning, never fatal;
3. the embedded snapshot shipped in the package: the lineup as publicly documented,
   stamped with the date it describes.

Live data always wins over all three; `caproute._fetch` replaces them as soon as a
fetch succeeds. Nothing here runs at import time: the embedded snapshot is read on
first use and kept.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import _redact
from ._core.registry import Registry, RegistrySource
from ._exceptions import RegistryError, SnapshotError

__all__ = [
    "embedded_registry",
    "initial_registry",
    "load_snapshot",
    "save_snapshot",
    "user_cache_path",
]

logger = _redact.protect(logging.getLogger("caproute.registry"))

EMBEDDED_RESOURCE = "embedded_registry.json"
DEFAULT_BASE_URL = "https://api.anthropic.com"


def user_cache_path(base_url: str | None = None) -> Path:
    """Where a successful live fetch is cached.

    ``$XDG_CACHE_HOME/caproute/registry.json`` for the public API (the default base
    URL); any other base URL (a gateway, a proxy, a local fake) gets its own file,
    ``registry-<host>-<hash>.json``, so what one endpoint answered never stands in for
    another's lineup. Falls back to ``~/.cache`` when ``XDG_CACHE_HOME`` is unset or
    not absolute (the XDG base directory spec says relative values must be ignored).
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "caproute" / _cache_file_name(base_url)


def _cache_file_name(base_url: str | None) -> str:
    url = (base_url or DEFAULT_BASE_URL).rstrip("/")
    if url == DEFAULT_BASE_URL:
        return "registry.json"
    host = re.sub(r"[^A-Za-z0-9.-]+", "_", urlsplit(url).netloc or "local")[:64]
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"registry-{host}-{digest}.json"


def save_snapshot(registry: Registry, path: str | os.PathLike[str]) -> Path:
    """Write `registry` to `path` as a snapshot document, atomically.

    The document goes to a temporary file in the same directory and is then moved over
    `path` with `os.replace`, so a reader (or a crash) never sees half a file.
    Missing parent directories are created.

    Returns:
        The path written.

    Raises:
        SnapshotError: The file could not be written.
    """
    target = Path(path)
    text = json.dumps(registry.to_json(), indent=1, ensure_ascii=False) + "\n"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as tmp:
                tmp.write(text)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise SnapshotError(f"cannot write snapshot {target}: {exc.strerror or exc}") from exc
    if target.parent == user_cache_path().parent:
        prune_user_cache(target)
    return target


CACHE_KEEP_FILES = 8
"""Per-base-URL cache files kept (the most recently written): local fakes and proxies on
random ports would otherwise leave one file per port behind."""
CACHE_MAX_AGE_S = 7 * 86400
"""Per-base-URL cache files not rewritten for this long are removed."""
_STALE_TMP_S = 600
"""A temporary file this old belongs to a writer that died (a write takes milliseconds)."""


def prune_user_cache(written: Path, *, now: float | None = None) -> None:
    """Tidy the user cache directory after `written` was saved there.

    Removes temporary files left by writers that died, and per-base-URL cache files
    (``registry-*.json``) beyond the `CACHE_KEEP_FILES` newest or older than
    `CACHE_MAX_AGE_S`. Never `written`, never the public API's ``registry.json``.
    Best effort: a file that can't be read or removed is left alone.
    """
    now = time.time() if now is None else now
    per_url: list[tuple[float, Path]] = []
    try:
        entries = list(written.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            modified = entry.stat().st_mtime
            if entry.name.startswith(".registry") and entry.name.endswith(".tmp"):
                if now - modified > _STALE_TMP_S:
                    entry.unlink()
            elif (
                entry.name.startswith("registry-") and entry.suffix == ".json" and entry != written
            ):
                per_url.append((modified, entry))
        except OSError:
            continue
    per_url.sort(reverse=True)
    for index, (modified, entry) in enumerate(per_url):
        if index >= CACHE_KEEP_FILES - 1 or now - modified > CACHE_MAX_AGE_S:
            with contextlib.suppress(OSError):
                entry.unlink()


def load_snapshot(path: str | os.PathLike[str]) -> Registry:
    """Read a snapshot file written by `save_snapshot` (or ``caproute snapshot``).

    The registry's source says ``snapshot`` and the file path; the fetch time and the
    lineup date stored in the file are kept, so its age stays visible.

    Raises:
        SnapshotError: The file is missing, unreadable, not JSON or not a snapshot.
    """
    file = Path(path)
    return _registry_from_text(
        _read_text(file), where=str(file), source=RegistrySource("snapshot", location=str(file))
    )


@functools.cache
def embedded_registry() -> Registry:
    """The snapshot shipped inside the package (loaded on first call, then kept).

    It describes the public lineup on the date in ``registry.source.describes``; any
    live answer from the Models API supersedes it.
    """
    text = resources.files("caproute.data").joinpath(EMBEDDED_RESOURCE).read_text("utf-8")
    return _registry_from_text(text, where=f"caproute/data/{EMBEDDED_RESOURCE}", source=None)


def initial_registry(
    snapshot: str | os.PathLike[str] | None = None,
    *,
    cache_path: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    base_url: str | None = None,
) -> Registry:
    """The best registry available without the network, in start-up order.

    Args:
        snapshot: An explicit snapshot file; when given it must load.
        cache_path: The user cache file to try (default `user_cache_path(base_url)`).
        use_cache: Set to False to skip the user cache file.
        base_url: The API base URL whose cache file to read (default: the public API).

    Raises:
        SnapshotError: `snapshot` was given and cannot be loaded.
    """
    if snapshot is not None:
        return load_snapshot(snapshot)
    if use_cache:
        cached = _load_user_cache(Path(cache_path) if cache_path else user_cache_path(base_url))
        if cached is not None:
            return cached
    return embedded_registry()


def _load_user_cache(path: Path) -> Registry | None:
    """The user cache file's registry, or None when absent or unusable (with a warning)."""
    if not path.is_file():
        return None
    try:
        registry = load_snapshot(path)
    except SnapshotError as exc:
        # The cache is ours and disposable: a broken one must not stop the router.
        logger.warning("ignoring the registry cache file: %s", exc)
        return None
    return registry.with_source(
        RegistrySource(
            "cache",
            fetched_at=registry.source.fetched_at,
            location=str(path),
            describes=registry.source.describes,
        )
    )


class _NonFinite(ValueError):
    """``NaN`` / ``Infinity`` in a document: Python's json reads them, JSON has no such thing."""


def _no_constant(token: str) -> Any:
    raise _NonFinite(f"{token} is not a JSON number")


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SnapshotError(f"snapshot file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise SnapshotError(f"cannot read snapshot {file}: {reason}") from exc


def _registry_from_text(text: str, *, where: str, source: RegistrySource | None) -> Registry:
    try:
        document: Any = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise SnapshotError(
            # file:line:column first, as every other file error caproute reports.
            f"{where}:{exc.lineno}:{exc.colno}: snapshot is not valid JSON: {exc.msg}"
        ) from exc
    except _NonFinite as exc:
        raise SnapshotError(f"snapshot {where} is not valid JSON: {exc}") from None
    except RecursionError:
        raise SnapshotError(f"snapshot {where} is nested too deeply to be a snapshot") from None
    if not isinstance(document, dict):
        raise SnapshotError(f"snapshot {where} is not a JSON object")
    try:
        return Registry.from_json(document, source=source)
    except SnapshotError:
        raise
    except RegistryError as exc:
        raise SnapshotError(f"snapshot {where}: {exc}") from exc
