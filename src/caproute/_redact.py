"""Keys never leave caproute: ``sk-ant-`` tokens are masked in everything it writes.

caproute never puts a key anywhere on purpose (keys live in request headers, which no
decision, log line, metric or file holds). What it can't control is text from
elsewhere that it repeats: the API echoes a key prefix in an authentication error
(``invalid x-api-key: sk-ant-api03-SECRE…``), a caller can put a key in a path or a
``model`` field, an exception quotes what it choked on. So every channel out of
caproute masks any ``sk-ant-`` token (the whole token up to the next space, quote or
delimiter, or just a prefix) to ``sk-ant-***``:

* **logs**: `RedactingFilter` sits on every ``caproute`` logger (`LOGGERS`; a filter on a
  parent logger does not see its children's records, so each has its own), on the
  proxy's access log, and on uvicorn's loggers when the proxy configures them
  (`protect_uvicorn`). It rewrites the message, the formatted traceback and a
  decision attached to the record;
* **decisions**: `LiveRouter.route` hands out (and reports) `redact_decision` of any
  decision that holds one; the check costs a few string scans on the common path;
* **errors** built from API answers (`caproute._fetch`) and **CLI output**
  (`redacting_streams` around every command).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._core.decision import Change, Decision

__all__ = [
    "LOGGERS",
    "MASK",
    "RedactingFilter",
    "decision_has_secret",
    "has_secret",
    "protect",
    "protect_uvicorn",
    "redact",
    "redact_decision",
    "redacting_streams",
]

MARK: Final = "sk-ant-"
MASK: Final = "sk-ant-***"
# The token runs to the next character that can't be part of a key as written in text:
# whitespace, quotes, brackets, separators. Prefixes ("sk-ant-SECRE…") match too.
_TOKEN: Final = re.compile(r"sk-ant-[^\s\"'`<>()\[\]{},;|\\]*", re.IGNORECASE)

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


def has_secret(text: str) -> bool:
    """Whether `text` holds an ``sk-ant-`` token (any case)."""
    return MARK in text.lower()


def redact(text: str) -> str:
    """`text` with every ``sk-ant-`` token replaced by ``sk-ant-***``."""
    return _TOKEN.sub(MASK, text) if has_secret(text) else text


def _redact_value(value: Any) -> Any:
    """A JSON-like value with every string in it redacted (containers copied if needed)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            redact(str(k)) if isinstance(k, str) else k: _redact_value(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


# -- decisions ----------------------------------------------------------------------------


def decision_has_secret(decision: Decision) -> bool:
    """Whether any text in `decision` holds an ``sk-ant-`` token.

    Runs for every routed request: the common decision (unchanged, nothing attached)
    is checked field by field, in ~0.2 µs; any other through its ``repr``.
    """
    if decision.changes or decision.reason or decision.notes or decision.items:
        return has_secret(repr(decision))
    requested = decision.requested_model
    if requested is not None and MARK in requested.lower():
        return True
    model = decision.model
    if model is not None and model is not requested and MARK in model.lower():
        return True
    for need in decision.needs:
        if MARK in need.lower():
            return True
    route, extra = decision.route, decision.extra
    return (route is not None and MARK in route.lower()) or (
        bool(extra) and has_secret(repr(extra))
    )


def redact_decision(decision: Decision) -> Decision:
    """`decision` with every ``sk-ant-`` token in its text masked (itself if none)."""
    if not decision_has_secret(decision):
        return decision

    def text(value: str | None) -> str | None:
        return None if value is None else redact(value)

    def change(c: Change) -> Change:
        return dataclasses.replace(
            c,
            path=redact(c.path),
            before=_redact_value(c.before),
            after=_redact_value(c.after),
            reason=redact(c.reason),
        )

    return dataclasses.replace(
        decision,
        requested_model=text(decision.requested_model),
        model=text(decision.model),
        needs=tuple(redact(n) for n in decision.needs),
        candidates=tuple(
            dataclasses.replace(c, model=redact(c.model), reason=text(c.reason))
            for c in decision.candidates
        ),
        changes=tuple(change(c) for c in decision.changes),
        reason=text(decision.reason),
        notes=tuple(redact(n) for n in decision.notes),
        route=text(decision.route),
        registry_source=redact(decision.registry_source),
        items=tuple((redact(cid), redact_decision(d)) for cid, d in decision.items),
        extra=_redact_value(dict(decision.extra)) if decision.extra else decision.extra,
    )


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
