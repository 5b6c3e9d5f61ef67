"""Reading what a child process draws on a pseudo-terminal (the CLI's tty-only output)."""

from __future__ import annotations

import os
import select
import subprocess
import time


def read_terminal(main_fd: int, process: subprocess.Popen[bytes], *, seconds: float = 60) -> bytes:
    """Everything `process` writes to the terminal whose main side is `main_fd`, until it
    closes the terminal or exits (or `seconds` pass); `main_fd` is closed afterwards."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main_fd], [], [], 1.0)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    return b"".join(chunks)
