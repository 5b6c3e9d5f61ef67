"""One log format for every line `caproute serve` writes: caproute's and uvicorn's.

`logging_config` is the ``logging.config.dictConfig`` document uvicorn installs (in
every worker): one handler on stderr, one formatter, for the ``caproute`` and
``uvicorn`` loggers alike.

* ``text``: ``2026-01-02T03:04:05Z INFO caproute.access: method=POST path=...``.
* ``json``: one object per line: ``time``, ``level``, ``logger``, ``message``, plus
  the request's fields for access lines (``method``, ``path``, ``status``,
  ``outcome``, ``requested``, ``model``, ``changes``, ``duration_ms``...), so log
  pipelines need no parsing. The formatter is a dozen lines on the standard
  library's `json`; a dependency would add nothing.

Each request is logged once, by the access line (``caproute.access``): the routers'
own decision lines (INFO on ``caproute``) are routed to ``caproute.proxy.router``,
which keeps only warnings, since the access line already carries the decision.
"""

from __future__ import annotations

import json
import logging
import re
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._exchange import Exchange

ROUTER_LOGGER = "caproute.proxy.router"
"""The logger the proxy's routers write to: warnings only (the access line has the rest)."""

ACCESS_FIELDS = "caproute_access"
"""The log record attribute holding an access line's fields."""

access_logger = logging.getLogger("caproute.access")


CUT_ON_PURPOSE: ContextVar[bool] = ContextVar("caproute_cut_on_purpose", default=False)
"""Set by the proxy in a request's task when it leaves a response unfinished on purpose."""

_UNFINISHED = "ASGI callable returned without completing response"


class DeliberateCutFilter(logging.Filter):
    """Drops uvicorn's "returned without completing response" error for a cut on purpose.

    Returning without the final body message is how the proxy tells a caller that a
    response is truncated (the server closes the connection: a short
    ``Content-Length`` or a missing last chunk), when the upstream broke off or the
    shutdown timeout ran out. The proxy logs why (a warning and the access line's
    ``upstream=broke`` / ``cut=shutdown``); uvicorn's ERROR line after it, which also
    reports application bugs, would only send operators looking for one. The record is
    made in the request's own task, where the proxy set `CUT_ON_PURPOSE`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for uvicorn's line about a response the proxy cut on purpose."""
        return not (CUT_ON_PURPOSE.get() and str(record.msg).startswith(_UNFINISHED))


class TextFormatter(logging.Formatter):
    """``time level logger: message``, UTC, ISO 8601."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        self.converter = time.gmtime


class JsonFormatter(logging.Formatter):
    """One JSON object per line, access fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        document: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, ACCESS_FIELDS, None)
        if isinstance(fields, dict):
            document.update(fields)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def logging_config(level: str, log_format: str) -> dict[str, Any]:
    """The ``dictConfig`` for `level` (``info``...) and `log_format` (``text`` / ``json``)."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"caproute": {"()": f"{__name__}.{formatter.__name__}"}},
        # Every line through the handler has `sk-ant-` tokens masked (see caproute._core.secrets).
        "filters": {
            "redact": {"()": "caproute._logs.RedactingFilter"},
            "deliberate_cut": {"()": f"{__name__}.DeliberateCutFilter"},
        },
        "handlers": {
            "caproute": {
                "class": "logging.StreamHandler",
                "formatter": "caproute",
                "stream": "ext://sys.stderr",
                "filters": ["redact"],
            }
        },
        "loggers": {
            "caproute": {"handlers": ["caproute"], "level": upper, "propagate": False},
            ROUTER_LOGGER: {"level": max(logging.WARNING, logging.getLevelName(upper))},
            "uvicorn": {"handlers": ["caproute"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper, "filters": ["deliberate_cut"]},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def router_logger() -> logging.Logger:
    """The routers' logger, at WARNING unless configured otherwise."""
    logger = logging.getLogger(ROUTER_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
    return logger


# -- the access line ------------------------------------------------------------------------


def log_access(exchange: Exchange, now: float) -> None:
    """Write one request's access line (``caproute.access``, INFO), if that is enabled."""
    if access_logger.isEnabledFor(logging.INFO):
        fields = access_fields(exchange, now)
        access_logger.info(_access_line(fields), extra={ACCESS_FIELDS: fields})


def access_fields(exchange: Exchange, now: float) -> dict[str, Any]:
    """One (settled) request's access-log fields (never a key, a query string or content)."""
    decision = exchange.decision
    changes = decision.header_values()["caproute-changes"] if decision else None
    fields: dict[str, Any] = {
        "method": exchange.method,
        "path": exchange.path,
        "status": exchange.status or None,
        "outcome": exchange.outcome,
        "requested": exchange.requested_model,
        "model": exchange.sent_model,
        "changes": changes,
        "duration_ms": round((now - exchange.started) * 1000, 1),
    }
    if exchange.request_id is not None:
        fields["request_id"] = exchange.request_id
    if exchange.registry is not None and exchange.registry != "caller":
        fields["registry"] = exchange.registry
    if exchange.tokens:
        fields["tokens"] = exchange.tokens
    if exchange.client_left:
        fields["client"] = "disconnected"
    if exchange.upstream_broke:
        fields["upstream"] = "broke"
    if exchange.cut is not None:
        fields["cut"] = exchange.cut
    return fields


_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@+-]+")


def _field(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    if _PLAIN_VALUE.fullmatch(text):
        return text
    # Quoted and escaped: a path or change list can't break the line (log injection).
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def _access_line(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if key == "tokens":
            value = ",".join(f"{kind}:{count}" for kind, count in value.items())
        elif key == "duration_ms":
            value = f"{value:.1f}"
        parts.append(f"{key}={_field(value)}")
    return " ".join(parts)
