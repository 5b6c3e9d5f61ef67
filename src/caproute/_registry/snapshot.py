"""Registry snapshots on disk: save, load, the user cache file and the embedded lineup.

A snapshot is the JSON document `Registry.to_json` makes (format
``caproute-registry/1``): the models exactly as the Models API sent them, the aliases
learned from ``GET /v1/models/{alias}`` and where the data came from. It never holds a
key: nothing from request headers is ever part of a `Registry`.

Start-up order (`initial_registry`), best first:

1. an explicit snapshot file the caller names (an error if it is missing or corrupt:
   the caller asked for it);
2. the user cache file, written after every successful live fetch
   (under ``$XDG_CACHE_HOME/caproute/``, else ``~/.cache/caproute/``; one file per base
   URL *and credential*, see `user_cache_path`); a corrupt cache file is skipped with
   a warning, never fatal;
3. the embedded snapshot shipped in the package: the lineup as publicly documented,
   stamped with the date it describes.

Live data always wins over all three; `caproute._registry.fetch` replaces them as soon as a
fetch succeeds. Nothing here runs at import time: the embedded snapshot is read on
first use and kept.

Every file read here is bounded (`SnapshotLimits`, ``CAPROUTE_SNAPSHOT_*``): a file
over the size limit is refused unread, one listing more models than the limit is
refused before its models are validated, and kept models (tombstones, and the
unlisted models a later list left out) are pruned by age and count whenever a
snapshot is saved or loaded (`prune_tombstones`), so a cache file can't grow without
end.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import re
import secrets
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, overload
from urllib.parse import urlsplit

from .._core.registry import Registry
from .._core.registry_source import RegistrySource
from .._exceptions import ConfigError, RegistryError, SnapshotError
from .files import read_capped

__all__ = [
    "SnapshotLimits",
    "embedded_registry",
    "initial_registry",
    "load_snapshot",
    "save_snapshot",
    "user_cache_path",
]

logger = logging.getLogger("caproute.registry")

EMBEDDED_RESOURCE = "embedded_registry.json"
DEFAULT_BASE_URL = "https://api.anthropic.com"


@dataclass(frozen=True, slots=True)
class SnapshotLimits:
    """Bounds on registry snapshot and cache files (and on a Models API list).

    The Models API lists a few dozen models; a file far beyond that is a mistake or an
    attack, and every model in it costs memory and start-up time in every process that
    loads it (100,000 models, 114 MB: a minute to start, 2.8 GB resident).
    """

    max_bytes: int = 4 * 1024 * 1024
    """Size of a snapshot or cache file (the embedded lineup is 16 kB)."""
    max_models: int = 2_000
    """Models in a file or a fetched list, tombstones included."""
    max_tombstones: int = 100
    """Kept models (tombstones, and unlisted models a later list left out) kept when a
    snapshot is saved or loaded, and after a refetch (the most recent)."""
    tombstone_days: float = 90.0
    """Kept models older than this are dropped when a snapshot is saved or loaded."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SnapshotLimits:
        """The defaults, each replaced by its ``CAPROUTE_SNAPSHOT_*`` variable when set.

        Raises:
            ConfigError: a variable is not a positive number.
        """
        env = os.environ if environ is None else environ
        defaults = cls()
        values: dict[str, Any] = {}
        for name in ("max_bytes", "max_models", "max_tombstones", "tombstone_days"):
            var = f"{LIMITS_SETTING}{name.upper()}"
            raw = env.get(var, "").strip()
            if not raw:
                values[name] = getattr(defaults, name)
                continue
            try:
                value = float(raw.replace("_", "")) if name == "tombstone_days" else int(raw)
            except ValueError:
                value = 0
            if value <= 0:
                raise ConfigError(f"{var} must be a positive number, not {raw!r}")
            values[name] = value
        return cls(**values)


LIMITS_SETTING = "CAPROUTE_SNAPSHOT_"
"""Prefix of the variables that change `SnapshotLimits` (``CAPROUTE_SNAPSHOT_MAX_BYTES``...)."""


def user_cache_path(
    base_url: str | None = None, credential: str | None = None, *, create: bool = True
) -> Path:
    """Where a successful live fetch is cached.

    One file per base URL and credential under ``$XDG_CACHE_HOME/caproute/`` (else
    ``~/.cache/caproute/``; relative ``XDG_CACHE_HOME`` values are ignored, as the XDG
    base directory spec says): what one endpoint, or one key, was answered never stands
    in for another's lineup (a test's mock for a real key of the same URL, one
    workspace's lineup for another's). The credential is never written: the file name
    holds a keyed hash of it (BLAKE2b under a random key kept in the directory, 0600,
    like the proxy's caller caches): ``registry.<key hash>.json`` for the public API,
    ``registry-<host>-<url hash>-<key hash>.json`` for other base URLs.

    Without a credential (offline tools with no key in the environment), the
    credential-less names: ``registry.json`` for the public API,
    ``registry-<host>-<hash>.json`` for other base URLs. `create` False (for reading)
    makes no directory and no key: without a key, no keyed file can exist.
    """
    directory = user_cache_dir()
    url = (base_url or DEFAULT_BASE_URL).rstrip("/")
    if not credential:
        return directory / _cache_file_name(url)
    key = cache_key(directory, create=create)
    if key is None:  # no key yet, so no file keyed by one: a name that doesn't exist
        return directory / f"registry.{url}.unkeyed"
    digest = hashlib.blake2b(
        f"{url}\n{credential}".encode("utf-8", "surrogatepass"), key=key, digest_size=12
    ).hexdigest()
    if url == DEFAULT_BASE_URL:
        return directory / f"registry.{digest}.json"
    return directory / f"{_cache_file_name(url).removesuffix('.json')}-{digest}.json"


def user_cache_files(base_url: str) -> list[Path]:
    """Every user cache file of `base_url` other than the public API's: the
    credential-less one and one per key (``registry-<host>-<hash>[-<key hash>].json``),
    and half-written ones. For tools that remove an endpoint's caches (a local fake
    that stops)."""
    directory = user_cache_dir()
    stem = _cache_file_name(base_url.rstrip("/")).removesuffix(".json")
    if stem == "registry":
        return []
    patterns = (f"{stem}.json", f"{stem}-*.json", f".{stem}.json.*.tmp", f".{stem}-*.json.*.tmp")
    return [path for pattern in patterns for path in directory.glob(pattern)]


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/caproute`` when that is absolute, else ``~/.cache/caproute``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "caproute"


def _host(url: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", urlsplit(url).netloc or "local")[:64]


def _cache_file_name(url: str) -> str:
    if url == DEFAULT_BASE_URL:
        return "registry.json"
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"registry-{_host(url)}-{digest}.json"


KEY_FILE = ".hmac-key"


@overload
def cache_key(directory: Path) -> bytes: ...
@overload
def cache_key(directory: Path, *, create: bool) -> bytes | None: ...
def cache_key(directory: Path, *, create: bool = True) -> bytes | None:
    """The key cache file names are hashed with, kept in `directory` (0600, made once;
    with `create` False, `None` when there is none yet).

    Raises:
        SnapshotError: the key file exists but is not one (or can't be made).
    """
    path = directory / KEY_FILE
    if not create and not path.exists():
        return None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise SnapshotError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if len(key) >= 32:
            return key
        raise SnapshotError(
            f"{path} is not a caproute key file (remove it to start afresh)"
        ) from None
    except OSError as exc:
        raise SnapshotError(f"cannot create {path}: {exc.strerror or exc}") from exc
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as file:
        file.write(key)
    return key


def save_snapshot(
    registry: Registry, path: str | os.PathLike[str], *, limits: SnapshotLimits | None = None
) -> Path:
    """Write `registry` to `path` as a snapshot document, atomically.

    The document goes to a temporary file in the same directory and is then moved over
    `path` with `os.replace`, so a reader (or a crash) never sees half a file.
    Missing parent directories are created. Tombstones are pruned on the way
    (`prune_tombstones`; when each was first written is kept in the file, so their age
    survives restarts).

    Returns:
        The path written.

    Raises:
        SnapshotError: The file could not be written.
    """
    target = Path(path)
    limits = limits or SnapshotLimits.from_env()
    document = registry.to_json()
    if _kept(document):
        document = prune_tombstones(document, _stored_times(target, limits), time.time(), limits)
    text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
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
    if target.parent == user_cache_dir():
        prune_user_cache(target)
    return target


TOMBSTONE_TIMES = "tombstoned_at"
"""Snapshot key: tombstone id → Unix time it was first written (read by this module only)."""


KEPT_KINDS = ("tombstones", "unlisted")
"""Snapshot keys of models kept beyond what the last list says: known to be unavailable
(tombstones), and left out of a list but still routed (unlisted)."""


def _kept(document: Mapping[str, Any]) -> dict[str, str]:
    """Every kept model's id → which `KEPT_KINDS` map holds it."""
    return {m: kind for kind in KEPT_KINDS for m in (document.get(kind) or {})}


def prune_tombstones(
    document: Mapping[str, Any], since: Mapping[str, float], now: float, limits: SnapshotLimits
) -> dict[str, Any]:
    """A snapshot document keeping only the kept models (tombstones and unlisted ones)
    young and recent enough.

    A kept model first seen at ``since[id]`` (else `now`) is dropped once older than
    ``limits.tombstone_days``, and beyond the ``limits.max_tombstones`` most recent;
    with it go its model entry, the aliases naming it and the facts learned about it.
    The times of those kept are stored under `TOMBSTONE_TIMES`. Pure: `document` is not
    changed.
    """
    out = dict(document)
    kinds = _kept(document)
    times = {model: since.get(model, now) for model in kinds}
    max_age = limits.tombstone_days * 86400
    young = [model for model in kinds if now - times[model] <= max_age]
    young.sort(key=lambda model: times[model], reverse=True)  # stable: ties keep file order
    kept = set(young[: limits.max_tombstones])
    if len(kept) < len(kinds):
        gone = set(kinds) - kept
        out["models"] = [m for m in document.get("models", ()) if _model_id(m) not in gone]
        out["aliases"] = {a: i for a, i in (document.get("aliases") or {}).items() if i not in gone}
        learned = [f for f in document.get("learned") or () if _fact_model(f) not in gone]
        if learned:
            out["learned"] = learned
        else:
            out.pop("learned", None)
    out.pop(TOMBSTONE_TIMES, None)
    for kind in KEPT_KINDS:
        out.pop(kind, None)
        remaining = {m: r for m, r in (document.get(kind) or {}).items() if m in kept}
        if remaining:
            out[kind] = remaining
    if kept:
        out[TOMBSTONE_TIMES] = {m: times[m] for m in kinds if m in kept}
    return out


def with_tombstones_pruned(registry: Registry, limits: SnapshotLimits) -> Registry:
    """`registry` with at most ``limits.max_tombstones`` kept models (tombstones and
    unlisted ones), the first it holds (after a refetch, those the newest list left out
    come before older ones).

    For a registry in memory, where no kept model has a time yet: a long-running process
    whose Models API keeps changing its list must not keep every model it ever listed.
    """
    if len(registry.tombstones) + len(registry.unlisted) <= limits.max_tombstones:
        return registry
    document = prune_tombstones(registry.to_json(), {}, 0.0, limits)
    document.pop(TOMBSTONE_TIMES, None)
    return Registry.from_json(document, source=registry.source)


def _model_id(raw: object) -> object:
    return raw.get("id") if isinstance(raw, Mapping) else None


def _fact_model(raw: object) -> object:
    return raw.get("model") if isinstance(raw, Mapping) else None


def _times_in(document: Mapping[str, Any]) -> dict[str, float]:
    """The well-formed entries of a document's `TOMBSTONE_TIMES` (others count as now)."""
    raw = document.get(TOMBSTONE_TIMES)
    if not isinstance(raw, Mapping):
        return {}
    return {
        k: float(v)
        for k, v in raw.items()
        if isinstance(k, str)
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
    }


def _stored_times(path: Path, limits: SnapshotLimits) -> dict[str, float]:
    """The tombstone times in the snapshot at `path` now (none if it can't be read)."""
    try:
        document = json.loads(_read_text(path, limits))
    except (SnapshotError, ValueError, RecursionError):
        return {}
    return _times_in(document) if isinstance(document, dict) else {}


CACHE_KEEP_FILES = 8
"""Cache files kept per kind (the most recently written): per-base-URL files (local
fakes and proxies on random ports would otherwise leave one file per port behind), and
per-key files of the public API."""
CACHE_MAX_AGE_S = 7 * 86400
"""Per-base-URL cache files not rewritten for this long are removed."""
_STALE_TMP_S = 600
"""A temporary file this old belongs to a writer that died (a write takes milliseconds)."""


def prune_user_cache(written: Path, *, now: float | None = None) -> None:
    """Tidy the user cache directory after `written` was saved there.

    Removes temporary files left by writers that died; per-base-URL cache files
    (``registry-*.json``) beyond the `CACHE_KEEP_FILES` newest or older than
    `CACHE_MAX_AGE_S`; and the public API's per-key files (``registry.*.json``)
    beyond the `CACHE_KEEP_FILES` newest. Never `written`, never the public API's
    ``registry.json``. Best effort: a file that can't be read or removed is left alone.
    """
    now = time.time() if now is None else now
    groups: dict[str, list[tuple[float, Path]]] = {"registry-": [], "registry.": []}
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
            elif entry.suffix == ".json" and entry != written and entry.name != "registry.json":
                group = groups.get(entry.name[:9])
                if group is not None:
                    group.append((modified, entry))
        except OSError:
            continue
    for prefix, files in groups.items():
        files.sort(reverse=True)
        for index, (modified, entry) in enumerate(files):
            too_old = prefix == "registry-" and now - modified > CACHE_MAX_AGE_S
            if index >= CACHE_KEEP_FILES - 1 or too_old:
                with contextlib.suppress(OSError):
                    entry.unlink()


def load_snapshot(
    path: str | os.PathLike[str], *, limits: SnapshotLimits | None = None
) -> Registry:
    """Read a snapshot file written by `save_snapshot` (or ``caproute snapshot``).

    The registry's source says ``snapshot`` and the file path; the fetch time and the
    lineup date stored in the file are kept, so its age stays visible. Tombstones past
    the limits are left out (`prune_tombstones`).

    Raises:
        SnapshotError: The file is missing, unreadable, not JSON, not a snapshot, or
            over a limit (`SnapshotLimits`: ``CAPROUTE_SNAPSHOT_MAX_BYTES``,
            ``CAPROUTE_SNAPSHOT_MAX_MODELS``).
    """
    file = Path(path)
    limits = limits or SnapshotLimits.from_env()
    return _registry_from_text(
        _read_text(file, limits),
        where=str(file),
        source=RegistrySource("snapshot", location=str(file)),
        limits=limits,
    )


@functools.cache
def embedded_registry() -> Registry:
    """The snapshot shipped inside the package (loaded on first call, then kept).

    It describes the public lineup on the date in ``registry.source.describes``; any
    live answer from the Models API supersedes it.
    """
    text = resources.files("caproute.data").joinpath(EMBEDDED_RESOURCE).read_text("utf-8")
    return _registry_from_text(
        text, where=f"caproute/data/{EMBEDDED_RESOURCE}", source=None, limits=None
    )


def initial_registry(
    snapshot: str | os.PathLike[str] | None = None,
    *,
    cache_path: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    base_url: str | None = None,
    credential: str | None = None,
) -> Registry:
    """The best registry available without the network, in start-up order.

    Args:
        snapshot: An explicit snapshot file; when given it must load.
        cache_path: The user cache file to try (default `user_cache_path(base_url,
            credential)`).
        use_cache: Set to False to skip the user cache file.
        base_url: The API base URL whose cache file to read (default: the public API).
        credential: The API key or token whose cache file to read (default: the one
            in ``ANTHROPIC_API_KEY``, else ``ANTHROPIC_AUTH_TOKEN``, so offline tools
            read what a client of that key would; none: the credential-less file).

    Raises:
        SnapshotError: `snapshot` was given and cannot be loaded.
    """
    if snapshot is not None:
        return load_snapshot(snapshot)
    if use_cache:
        if credential is None:
            env = os.environ
            credential = env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_AUTH_TOKEN")
        cached = _load_user_cache(
            Path(cache_path) if cache_path else None, base_url=base_url, credential=credential
        )
        if cached is not None:
            return cached
    return embedded_registry()


def _load_user_cache(
    path: Path | None, *, base_url: str | None, credential: str | None
) -> Registry | None:
    """The user cache file's registry, or None when absent or unusable (with a warning)."""
    try:
        path = path or user_cache_path(base_url, credential, create=False)
        if not path.is_file():
            return None
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


def _read_text(file: Path, limits: SnapshotLimits) -> str:
    try:
        data, over = read_capped(file, limits.max_bytes)
        if over is not None:
            raise SnapshotError(
                f"snapshot {file} is {over:,} bytes, over the limit of "
                f"{limits.max_bytes:,}; set {LIMITS_SETTING}MAX_BYTES to change it"
            )
        return data.decode("utf-8")
    except FileNotFoundError:
        raise SnapshotError(f"snapshot file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise SnapshotError(f"cannot read snapshot {file}: {reason}") from exc


def _registry_from_text(
    text: str, *, where: str, source: RegistrySource | None, limits: SnapshotLimits | None
) -> Registry:
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
    if limits is not None:
        models = document.get("models")
        if isinstance(models, list) and len(models) > limits.max_models:
            raise SnapshotError(
                f"snapshot {where} holds {len(models):,} models, over the limit of "
                f"{limits.max_models:,}; set {LIMITS_SETTING}MAX_MODELS to change it"
            )
        if _kept(document):
            document = prune_tombstones(document, _times_in(document), time.time(), limits)
    try:
        return Registry.from_json(document, source=source)
    except SnapshotError:
        raise
    except RegistryError as exc:
        raise SnapshotError(f"snapshot {where}: {exc}") from exc
