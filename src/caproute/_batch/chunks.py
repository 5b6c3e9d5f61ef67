"""A round's POST bodies on disk: requests appended one at a time, cut before either
API limit (requests per batch, bytes per batch) would be passed."""

from __future__ import annotations

import hashlib
import os
from typing import IO, Final

from .plan import BatchLimits
from .store import ChunkRecord, StateDir, open_private

__all__ = ["ChunkWriter"]

_HEAD: Final = b'{"requests":['
_TAIL: Final = b"]}"


class ChunkWriter:
    """Appends requests to POST bodies on disk, starting a new one at either limit."""

    def __init__(self, store: StateDir, round_no: int, limits: BatchLimits) -> None:
        self._store = store
        self._round = round_no
        self._limits = limits
        self._records: list[ChunkRecord] = []
        self._file: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self._count = self._size = self._first = self._last = 0
        self.sent_requests = self.sent_bytes = 0

    def fits_alone(self, payload: bytes) -> bool:
        """Whether one request this size can be sent at all."""
        return len(_HEAD) + len(payload) + len(_TAIL) <= self._limits.max_bytes

    def add(self, line: int, payload: bytes) -> int:
        """Append one request; returns its chunk number (1-based)."""
        if (
            self._file is None
            or self._count >= self._limits.max_requests
            or self._size + 1 + len(payload) + len(_TAIL) > self._limits.max_bytes
        ):
            self._close()
            self._open(line)
        assert self._file is not None
        data = b"," + payload if self._count else payload
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)
        self._count += 1
        self._last = line
        return len(self._records) + 1

    def finish(self) -> list[ChunkRecord]:
        """Close the last body; every body file is on disk (fsynced) when this returns."""
        self._close()
        return self._records

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self, line: int) -> None:
        chunk = len(self._records) + 1
        path = self._store.body_path(self._round, chunk, pending=True)
        self._file = open_private(path)
        self._file.write(_HEAD)
        self._hash = hashlib.sha256(_HEAD)
        self._size = len(_HEAD)
        self._count = 0
        self._first = self._last = line

    def _close(self) -> None:
        if self._file is None:
            return
        self._file.write(_TAIL)
        self._hash.update(_TAIL)
        self._size += len(_TAIL)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self._records.append(
            ChunkRecord(
                round=self._round,
                chunk=len(self._records) + 1,
                requests=self._count,
                bytes=self._size,
                first_line=self._first,
                last_line=self._last,
                sha256=self._hash.hexdigest(),
            )
        )
        self.sent_requests += self._count
        self.sent_bytes += self._size
