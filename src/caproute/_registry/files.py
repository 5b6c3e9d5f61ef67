"""Reading a file whole, but never more than a limit of it (policies, snapshots)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["read_capped"]


def read_capped(path: str | os.PathLike[str], limit: int) -> tuple[bytes, int | None]:
    """The file's bytes, or, when it holds more than `limit`, what was read and its size.

    Returns:
        ``(data, None)`` for a file of at most `limit` bytes, else ``(partial, size)``
        with `size` the larger of the size reported and the bytes read.

    Raises:
        OSError: it can't be opened or read.
    """
    with Path(path).open("rb") as file:
        reported = os.fstat(file.fileno()).st_size
        # Sized by what stat reports (a buffer of `limit` bytes per read would cost more
        # than the read), but bounded by what is read: a pipe reports 0, a file may grow.
        data = file.read(min(reported, limit) + 1)
        while len(data) <= limit:
            more = file.read(limit + 1 - len(data))
            if not more:
                return data, None
            data += more
        return data, max(reported, len(data))
