"""SIGHUP → reload, the Unix convention for "re-read your configuration".

The handler goes through the event loop (`loop.add_signal_handler`), so the reload
runs as an ordinary callback between requests, never inside an interrupted frame.
Signal handlers can only be installed from the main thread on Unix; elsewhere (the
server running in a test thread, Windows) the context manager does nothing and the
mtime polling still reloads the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

logger = logging.getLogger("caproute.proxy")


@contextlib.contextmanager
def sighup_handler(callback: Callable[[], None]) -> Iterator[bool]:
    """Call `callback` on SIGHUP while the block runs; yields whether it is installed."""
    sighup = getattr(signal, "SIGHUP", None)
    if sighup is None or threading.current_thread() is not threading.main_thread():
        yield False
        return
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(sighup, callback)
    except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - platform
        logger.debug("SIGHUP reload not available on this platform")
        yield False
        return
    try:
        yield True
    finally:
        loop.remove_signal_handler(sighup)
