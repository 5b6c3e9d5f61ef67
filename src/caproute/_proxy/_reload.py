"""Hot reload of the policy file (and a shared snapshot file): mtime polling plus SIGHUP.

Polling (every ~1 s) works everywhere, including on bind-mounted files and Kubernetes
ConfigMaps that are swapped by symlink, where inotify is unreliable. The file's
identity is ``(mtime_ns, size, inode)`` so an atomic replace is noticed even within
the same mtime tick.

A new file that does not parse or validate is rejected: the error is logged (a policy
error with its ``file:line:column``) and what is in force stays. A file that disappears is
also logged and ignored (editors briefly delete files while saving).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .._exceptions import CaprouteError

logger = logging.getLogger("caproute.proxy")

_FileIdentity = tuple[int, int, int]


def _identity(path: Path) -> _FileIdentity | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


@dataclass(frozen=True, slots=True)
class FileStatus:
    """What `/caproute/health` reports about a watched file."""

    file: str
    loaded_at: float
    """Unix time the content in force was loaded."""
    last_error: str | None = None
    """Why the most recent reload was rejected (`None` once a reload succeeds)."""


class FileWatcher:
    """Reloads a file when it changes and hands the result to `apply`.

    Args:
        path: The file (a policy, or a registry snapshot shared by replicas).
        what: What the file holds, for log lines (``policy``, ``snapshot``).
        load: Reads and validates the file (``caproute._registry.policy_files.load_policy``,
            ``caproute._registry.snapshot.load_snapshot``); raises `CaprouteError` (e.g. a
            `PolicyError` with its location) or `OSError` for a bad file.
        apply: Puts the loaded value into force (``LiveRouter.set_policy``, ...).
        on_result: Called with each reload's result (``ok`` / ``error``), e.g. a metric.
        interval: Seconds between two checks.
        clock: Wall clock for `FileStatus.loaded_at`.
    """

    def __init__(
        self,
        path: Path,
        *,
        what: str,
        load: Callable[[Path], Any],
        apply: Callable[[Any], None],
        on_result: Callable[[str], object] | None = None,
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._load = load
        self.apply = apply
        """Puts a loaded value into force (replaceable after construction)."""
        self.what = what
        self._on_result = on_result or (lambda _result: None)
        self._interval = interval
        self._clock = clock
        self._identity = _identity(path)
        self.status = FileStatus(file=os.fspath(path), loaded_at=0.0)

    def load_initial(self) -> Any:
        """Load the file at start-up; a bad file raises (the proxy must not start)."""
        self._identity = _identity(self.path)
        policy = self._load(self.path)
        self.status = FileStatus(file=os.fspath(self.path), loaded_at=self._clock())
        return policy

    def check(self) -> bool:
        """Reload if the file changed since the last look; True when a reload ran."""
        if not self._changed():
            return False
        self.reload()
        return True

    def _changed(self) -> bool:
        """Whether the file changed since the last look (a file that went is logged)."""
        identity = _identity(self.path)
        if identity == self._identity:
            return False
        self._identity = identity
        if identity is None:
            logger.error(
                "%s file %s disappeared; keeping the %s in force", self.what, self.path, self.what
            )
            return False
        return True

    def reload(self) -> bool:
        """Load the file now (SIGHUP); True when the new content is in force."""
        self._identity = _identity(self.path)
        return self._settle(self._attempt())

    def _attempt(self) -> tuple[bool, Any]:
        """``(True, value)`` loaded, or ``(False, message)`` why not; touches no state,
        so it may run in a worker thread."""
        try:
            return True, self._load(self.path)
        except (CaprouteError, OSError) as exc:
            # A PolicyError renders as file:line:column: message.
            return False, str(exc) if isinstance(exc, CaprouteError) else f"{self.path}: {exc}"

    def _settle(self, attempt: tuple[bool, Any]) -> bool:
        """Put a loaded value in force, or log and count why not (on the caller's thread)."""
        loaded, value = attempt
        if not loaded:
            logger.error(
                "%s reload rejected, keeping the %s in force: %s", self.what, self.what, value
            )
            self._on_result("error")
            self.status = FileStatus(self.status.file, self.status.loaded_at, value)
            return False
        self.apply(value)
        self._on_result("ok")
        self.status = FileStatus(file=self.status.file, loaded_at=self._clock())
        logger.info("%s reloaded from %s", self.what, self.path)
        return True

    async def run(self) -> None:
        """Poll forever (cancel the surrounding task group to stop).

        A changed file is read and validated in a worker thread and put in force on the
        event loop: however long a file takes to load (within its limits, see
        docs/reliability.md), requests keep being served meanwhile.
        """
        while True:
            await anyio.sleep(self._interval)
            if self._changed():
                self._settle(await anyio.to_thread.run_sync(self._attempt))
