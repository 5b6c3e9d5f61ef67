"""The state directory of a batch job: what survives a crash, and how it is written.

Layout (``DIR`` is what ``--state`` names)::

    DIR/job.json                 the job: input file (path, size, sha256), API base URL,
                                 anthropic-version, betas, limits, policy file
    DIR/index.sqlite3            one row per input line (custom_id, line, byte offset),
                                 the routing decision of every round, downloaded results,
                                 the facts retry rounds learned from errored results
    DIR/rounds/N/plan.json       round N's summary (1 = the submission, 2+ = retries)
    DIR/rounds/N/refused.jsonl   the lines round N refused locally, with the reason
    DIR/rounds/N/chunk-000001.json       the chunk's journal record (see `ChunkRecord`)
    DIR/rounds/N/chunk-000001.body.json  the exact POST body (deleted once submitted)
    DIR/canceled                 present once the job is canceled
    DIR/lock                     held (flock) by the process changing the job

Two kinds of writes, each crash-safe in its own way:

* **A round's plan** is big (every line's decision) and written once: into
  ``rounds/N.tmp/`` plus one SQLite transaction; the directory is renamed to
  ``rounds/N`` and only then is the transaction committed. A round without its
  ``rounds`` row in the database was never finished: it is deleted and planned again
  (nothing of it can have been submitted, submission reads the committed plan).
* **The submission journal** is small and changes at every step: one JSON file per
  chunk, replaced by write-to-temporary, fsync, rename, fsync of the directory
  (`write_json_atomic`). A record says ``pending``, ``submitting`` (an attempt is about
  to be sent, with the time it was made) or ``submitted`` (with the batch id).

Nothing here holds an API key: the job records the base URL, never credentials. What
it does hold (prompts in the index and chunk bodies, answers in the downloaded results)
is the user's alone: directories are created 0700 and files 0600 whatever the umask, as
the registry cache is (`private_dir`, `open_private`; SQLite creates its journal with the
database file's mode).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal

from .._exceptions import ConfigError

__all__ = [
    "BatchStateError",
    "ChunkRecord",
    "StateDir",
    "open_private",
    "private_dir",
    "write_json_atomic",
]

FORMAT: Final = "caproute-batch/1"
ChunkState = Literal["pending", "submitting", "submitted"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS rounds(
    round INTEGER PRIMARY KEY,
    chunks INTEGER NOT NULL,
    summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items(
    line INTEGER PRIMARY KEY,
    custom_id TEXT NOT NULL UNIQUE,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    latest_round INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS routes(
    custom_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    chunk INTEGER,
    outcome TEXT NOT NULL,
    decision TEXT NOT NULL,
    PRIMARY KEY (custom_id, round)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results(
    custom_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (custom_id, round)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lessons(
    round INTEGER NOT NULL,
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (round, model, key)
);
CREATE TABLE IF NOT EXISTS downloads(
    round INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    PRIMARY KEY (round, chunk)
);
"""


class BatchStateError(ConfigError):
    """The state directory can't be used as asked (another job's, damaged, or busy)."""


def fsync_dir(path: Path) -> None:
    """Make a rename or file creation inside `path` durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows can't open directories; its renames are durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) readable by its owner only (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def open_private(path: Path) -> BinaryIO:
    """Open `path` for writing (created or truncated); a new file is 0600 whatever the
    umask (the mode argument of ``open(2)`` is only ever narrowed by the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY, 0o600)
    return os.fdopen(fd, "wb")


_O_BINARY: Final = getattr(os, "O_BINARY", 0)  # Windows only


def write_bytes_durably(path: Path, data: bytes) -> None:
    """Write-to-temporary, fsync, rename over `path`, fsync the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open_private(tmp) as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json_atomic(path: Path, value: Any) -> None:
    """`write_bytes_durably` for a JSON value (indented: people read these files)."""
    write_bytes_durably(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    """A JSON file written by `write_json_atomic`; damage is a `BatchStateError`."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BatchStateError(f"{path}: unreadable state file: {exc}") from exc


@dataclass(frozen=True)
class ChunkRecord:
    """The journal record of one chunk: what it holds and how far its submission got."""

    round: int
    chunk: int
    requests: int
    """How many requests the chunk holds (the batch's total ``request_counts``)."""
    bytes: int
    """Size of the POST body."""
    first_line: int
    last_line: int
    """First and last input line in the chunk (refused lines in between are not in it)."""
    sha256: str
    """Fingerprint of the POST body."""
    state: ChunkState = "pending"
    attempts: tuple[float, ...] = ()
    """Unix time of every submission attempt, recorded *before* each POST was sent."""
    batch_id: str | None = None
    created_at: str | None = None
    how: Literal["created", "adopted"] | None = None
    """``created``: the POST answered; ``adopted``: found by listing after an interruption."""
    error: str | None = None
    """The last submission error, if any."""

    @property
    def name(self) -> str:
        """``r1c3``-style short name for messages."""
        return f"r{self.round}c{self.chunk}"

    def to_json(self) -> dict[str, Any]:
        """The record as written to its file."""
        out = asdict(self)
        out["attempts"] = list(self.attempts)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkRecord:
        """Inverse of `to_json`."""
        return cls(**{**data, "attempts": tuple(data.get("attempts", ()))})


@dataclass
class StateDir:
    """Paths and durable operations of one state directory."""

    path: Path
    job_file: Path = field(init=False, repr=False, compare=False)
    db_file: Path = field(init=False, repr=False, compare=False)
    rounds_dir: Path = field(init=False, repr=False, compare=False)
    downloads_dir: Path = field(init=False, repr=False, compare=False)
    cancel_file: Path = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The layout of the module doc.
        self.job_file = self.path / "job.json"
        self.db_file = self.path / "index.sqlite3"
        self.rounds_dir = self.path / "rounds"
        self.downloads_dir = self.path / "downloads"
        self.cancel_file = self.path / "canceled"

    # -- paths -------------------------------------------------------------------------------

    def round_dir(self, round_no: int) -> Path:
        return self.rounds_dir / str(round_no)

    def pending_round_dir(self, round_no: int) -> Path:
        return self.rounds_dir / f"{round_no}.tmp"

    def record_path(self, round_no: int, chunk: int) -> Path:
        return self.round_dir(round_no) / f"chunk-{chunk:06d}.json"

    def body_path(self, round_no: int, chunk: int, *, pending: bool = False) -> Path:
        folder = self.pending_round_dir(round_no) if pending else self.round_dir(round_no)
        return folder / f"chunk-{chunk:06d}.body.json"

    def make_private(self) -> int:
        """Take group and other access away from everything the job wrote (a job planned
        by an older caproute, or under a wide umask); returns how many paths changed.

        The state directory itself is left as it is when it existed before the job (it
        may be a directory you made); what caproute created in it is its to tighten.
        """
        changed = 0
        owned = [self.job_file, self.rounds_dir, self.downloads_dir, self.cancel_file]
        owned += [self.path / "lock", *self.path.glob(self.db_file.name + "*")]
        for top in owned:
            if not top.exists() or top.is_symlink():
                continue
            for path in (top, *top.rglob("*")) if top.is_dir() else (top,):
                mode = path.lstat().st_mode
                if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & 0o077:
                    continue
                os.chmod(path, 0o700 if stat.S_ISDIR(mode) else 0o600)
                changed += 1
        return changed

    # -- the job file ------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether a job was ever planned here."""
        return self.job_file.exists()

    def read_job(self) -> dict[str, Any]:
        """The job description; a foreign or damaged file is a `BatchStateError`."""
        job = read_json(self.job_file)
        if not isinstance(job, dict) or job.get("format") != FORMAT:
            raise BatchStateError(f"{self.job_file}: not a caproute batch job ({FORMAT})")
        return job

    def write_job(self, job: dict[str, Any]) -> None:
        """Record the job description durably."""
        write_json_atomic(self.job_file, {"format": FORMAT, **job})

    # -- the database ------------------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        """Open the index (created on first use), durable on commit.

        `check_same_thread` is off because the async API runs heavy steps in a worker
        thread; a job never uses its connection from two threads at once.
        """
        private_dir(self.path)
        if not self.db_file.exists():  # SQLite would create it 0644 under umask 022
            os.close(os.open(self.db_file, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = sqlite3.connect(self.db_file, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")
        # A bounded page cache (4 MB) keeps memory flat however big the job is.
        conn.execute("PRAGMA cache_size=-4000")
        conn.executescript(_SCHEMA)
        return conn

    # -- rounds and chunk records ------------------------------------------------------------

    def committed_rounds(self, conn: sqlite3.Connection) -> list[int]:
        """Rounds whose plan was committed, in order."""
        return [row[0] for row in conn.execute("SELECT round FROM rounds ORDER BY round")]

    def discard_unfinished_rounds(self, conn: sqlite3.Connection) -> None:
        """Delete round directories a crash left without a committed plan."""
        committed = set(self.committed_rounds(conn))
        if not self.rounds_dir.exists():
            return
        for entry in self.rounds_dir.iterdir():
            name = entry.name.removesuffix(".tmp")
            if entry.is_dir() and (entry.name.endswith(".tmp") or int(name) not in committed):
                shutil.rmtree(entry)

    def records(self, round_no: int | None = None) -> list[ChunkRecord]:
        """Every chunk record (of one round, or all), ordered by round and chunk."""
        if not self.rounds_dir.exists():
            return []
        folders = (
            [self.round_dir(round_no)]
            if round_no is not None
            else sorted(
                (p for p in self.rounds_dir.iterdir() if p.is_dir() and p.name.isdigit()),
                key=lambda p: int(p.name),
            )
        )
        records = []
        for folder in folders:
            for path in sorted(folder.glob("chunk-*[0-9].json")):
                records.append(ChunkRecord.from_json(read_json(path)))
        return records

    def save(self, record: ChunkRecord) -> ChunkRecord:
        """Write one chunk record durably; returns it for chaining."""
        write_json_atomic(self.record_path(record.round, record.chunk), record.to_json())
        return record

    def record_attempt(self, record: ChunkRecord, now: float) -> ChunkRecord:
        """Durably note that a POST for this chunk is about to be sent."""
        updated = replace(record, state="submitting", attempts=(*record.attempts, now), error=None)
        return self.save(updated)

    def record_submitted(
        self, record: ChunkRecord, batch: dict[str, Any], how: Literal["created", "adopted"]
    ) -> ChunkRecord:
        """Durably record the batch that holds this chunk, then drop its body file."""
        updated = replace(
            record,
            state="submitted",
            batch_id=str(batch["id"]),
            created_at=batch.get("created_at"),
            how=how,
            error=None,
        )
        self.save(updated)
        with contextlib.suppress(FileNotFoundError):
            self.body_path(record.round, record.chunk).unlink()
        return updated

    def record_not_sent(self, record: ChunkRecord, error: str) -> ChunkRecord:
        """The last attempt certainly created nothing (e.g. 429): back to ``pending``."""
        return self.save(replace(record, state="pending", error=error))

    # -- cancel flag and lock ----------------------------------------------------------------

    @property
    def canceled(self) -> bool:
        """Whether the job was canceled (no further chunk is submitted)."""
        return self.cancel_file.exists()

    def mark_canceled(self) -> None:
        """Durably flag the job as canceled."""
        write_bytes_durably(self.cancel_file, f"{time.time():.3f}\n".encode())

    @contextlib.contextmanager
    def locked(self, *, wait: bool = False) -> Iterator[None]:
        """Hold the directory's lock: one process changes a job at a time.

        The lock is an ``flock`` on ``DIR/lock``: the kernel drops it when the process
        dies, so a killed run never leaves the job locked.

        Raises:
            BatchStateError: Another process holds it and `wait` is false.
        """
        private_dir(self.path)
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd, wait=wait, where=self.path)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock


def _lock(fd: int, *, wait: bool, where: Path) -> None:
    try:
        import fcntl
    except (
        ImportError
    ):  # pragma: no cover - Windows: no advisory locks, single-writer by convention
        return
    flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
    try:
        fcntl.flock(fd, flags)
    except BlockingIOError:
        raise BatchStateError(
            f"{where}: another caproute process is working on this batch job; "
            "wait for it to finish (or stop it) and run again"
        ) from None
