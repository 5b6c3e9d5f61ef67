"""Where masking applies: every caproute logger, uvicorn's when the proxy runs, and CLI output.

The masking itself (`redact`, `redact_decision`) is pure and lives in `caproute._core.secrets`.
Importing this module puts `RedactingFilter` on every logger in `LOGGERS`. The package of
every part that logs imports it first thing (``_registry``, ``_runtime``, ``_http``,
``_batch``, ``_proxy``, ``cli``), so no caproute record is ever written unmasked, while a
bare ``import caproute`` stays light.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import IO, Any, Final

from ._core.secrets import _TOKEN, MARK, MASK, has_secret, redact, redact_decision

__all__ = [
    "LOGGERS",
    "RedactingFilter",
    "print_unmasked",
    "protect",
    "protect_uvicorn",
    "redacting_streams",
]

LOGGERS: Final = (
    "caproute",
    "caproute.registry",
    "caproute.proxy",
    "caproute.access",
    "caproute.batch",
    "caproute.proxy.router",
)
"""Every logger caproute writes to (a test checks the sources name no other)."""
UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


# -- logs ---------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Masks ``sk-ant-`` tokens in a log record: message, traceback, stack, decision.

    Never drops a record. The message is formatted here (``msg % args``) only when it
    holds a token, and then stored formatted (``args`` cleared).
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if has_secret(message):
            record.msg = redact(message)
            record.args = None
        if record.exc_info and not record.exc_text:
            # What a handler's formatter would print, computed (and masked) once here.
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text and has_secret(record.exc_text):
            record.exc_text = redact(record.exc_text)
            # A formatter that re-renders `exc_info` would bypass `exc_text`: drop the
            # exception object, keep its masked text.
            record.exc_info = None
        if record.stack_info and has_secret(record.stack_info):
            record.stack_info = redact(record.stack_info)
        decision = getattr(record, "caproute_decision", None)
        if decision is not None:
            record.caproute_decision = redact_decision(decision)
        return True


_FILTER: Final = RedactingFilter()


def protect(logger: logging.Logger) -> logging.Logger:
    """Add the redacting filter to `logger` (once); returns it."""
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(_FILTER)
    return logger


def protect_uvicorn() -> None:
    """Mask keys in uvicorn's own log records too (called when the proxy configures it)."""
    for name in UVICORN_LOGGERS:
        protect(logging.getLogger(name))


for _name in LOGGERS:
    protect(logging.getLogger(_name))


# -- the command line ---------------------------------------------------------------------


class _RedactingStream:
    """A text stream that masks ``sk-ant-`` tokens in everything written to it."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def print_unmasked(text: str, stream: IO[str] | None = None) -> None:
    """Print `text` (a line) past the masking by position of `redacting_streams`, and flush.

    For the one value a command exists to show: the throwaway key of ``caproute fake``,
    which scripts read from its announcement. Nothing else may use it. An ``sk-ant-``
    token is still masked: a real key is never printed.
    """
    target: Any = stream if stream is not None else sys.stdout
    if isinstance(target, _RedactingStream):
        target = target._stream
    if MARK in text.lower():
        text = _TOKEN.sub(MASK, text)
    target.write(text + "\n")
    target.flush()


@contextlib.contextmanager
def redacting_streams() -> Iterator[None]:
    """Mask ``sk-ant-`` tokens in everything written to stdout and stderr meanwhile."""
    out, err = sys.stdout, sys.stderr
    sys.stdout = _RedactingStream(out)
    sys.stderr = _RedactingStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
