"""The API's wire conventions every shell shares, kept pure.

* Which endpoint a request goes to: `endpoint_for` (method and path, what a shell
  sees) and `endpoint_of_body` (a body alone, what the CLI sees).
* The ``anthropic-beta`` values: `parse_betas`.
* The API's error body (``{"type": "error", "error": {"type", "message"}}``, the
  Messages API's documented error shape, "Errors" page of the API reference; the SDK
  reads it into ``anthropic.types.ErrorResponse``): built once (`error_document`,
  and `error_body` / `refusal_body` for caproute's own answers) and read once
  (`parse_error`; `error_summary` for an exception's text).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from .._types import Endpoint
from .decision import Decision

__all__ = [
    "CAPROUTE_PREFIX",
    "ErrorFields",
    "endpoint_for",
    "endpoint_of_body",
    "error_body",
    "error_document",
    "error_summary",
    "parse_betas",
    "parse_error",
    "refusal_body",
]

CAPROUTE_PREFIX: Final = "caproute-"
"""Header names that belong to caproute: set on responses, never forwarded upstream."""

_ROUTED_SUFFIXES: Final[tuple[tuple[str, Endpoint], ...]] = (
    ("/v1/messages", "messages"),
    ("/v1/messages/count_tokens", "count_tokens"),
    ("/v1/messages/batches", "batch"),
)


def endpoint_for(method: str, path: str) -> Endpoint | None:
    """The routed endpoint a request goes to, or `None` for traffic to pass through.

    Only ``POST`` to ``…/v1/messages``, ``…/v1/messages/count_tokens`` and
    ``…/v1/messages/batches`` are routed; a base URL with a path prefix (a gateway) is
    fine. Batch retrieval, results, cancel, models, files… all pass through.

    The API serves these paths with trailing slashes too (``/v1/messages/``), so those
    are routed as well: otherwise a slash would sidestep routing. (Percent-encoded
    paths arrive decoded; spellings the API answers 404, such as ``/v1//messages`` or
    ``/V1/messages``, are not routed: routing them would gain nothing, and their 404
    would read as the model's.)
    """
    if method != "POST":
        return None
    for suffix, endpoint in _ROUTED_SUFFIXES:
        if path.endswith(suffix):
            return endpoint
    if path.endswith("/"):  # rare: checked only once the common spellings missed
        stripped = path.rstrip("/")
        for suffix, endpoint in _ROUTED_SUFFIXES:
            if stripped.endswith(suffix):
                return endpoint
    return None


def endpoint_of_body(body: Any) -> Endpoint:
    """``batch`` for a Message Batch creation body (``requests``, no ``model``), else
    ``messages``: the endpoint a body read without its path is most likely for."""
    is_batch = isinstance(body, dict) and "requests" in body and "model" not in body
    return "batch" if is_batch else "messages"


def parse_betas(values: Sequence[str]) -> tuple[str, ...]:
    """Every ``anthropic-beta`` value, from repeated and/or comma-separated headers."""
    return tuple(b for v in values for b in (p.strip() for p in v.split(",")) if b)


class ErrorFields(NamedTuple):
    """What an API error body says; `None` for each part it doesn't have (all of them
    for a body that is not an error body)."""

    type: str | None = None
    """``error.type`` (``invalid_request_error``, ``not_found_error``…)."""
    message: str | None = None
    """``error.message``."""
    error_code: str | None = None
    """``error.details.error_code``, when the API gives one."""
    request_id: str | None = None
    """The body's ``request_id`` (the ``request-id`` header says the same)."""


_NOT_AN_ERROR: Final = ErrorFields()


def parse_error(body: bytes | str) -> ErrorFields:
    """The fields of an API error body (`ErrorFields`; empty for anything else)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return _NOT_AN_ERROR
    if not isinstance(doc, dict):
        return _NOT_AN_ERROR
    error = doc.get("error")
    request_id = _text(doc.get("request_id"))
    if not isinstance(error, dict):
        return ErrorFields(request_id=request_id)
    details = error.get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    return ErrorFields(
        _text(error.get("type")), _text(error.get("message")), _text(code), request_id
    )


def error_summary(
    content: bytes, request_id: str | None = None
) -> tuple[str | None, str, str | None]:
    """``(error.type, message, request id)`` of an error answer, for an exception's text:
    the message falls back to the start of the body, `request_id` (the ``request-id``
    header) to the body's ``request_id``."""
    fields = parse_error(content)
    message = fields.message or content.decode("utf-8", "replace").strip()[:200] or "(empty body)"
    return fields.type, message, request_id or fields.request_id


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def error_document(
    error_type: str,
    message: str,
    *,
    error_code: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API error body as a JSON-ready dict (``error.details.error_code`` and
    ``request_id`` only when given)."""
    error: dict[str, Any] = {"type": error_type, "message": message}
    if error_code is not None:
        error["details"] = {"error_code": error_code}
    document: dict[str, Any] = {"type": "error", "error": error}
    if request_id is not None:
        document["request_id"] = request_id
    return document


def error_body(error_type: str, message: str, *, error_code: str | None = None) -> bytes:
    """caproute's own API-shaped error body, encoded (``caproute:`` in front of the
    message, so a caller can tell it from the API's)."""
    document = error_document(error_type, f"caproute: {message}", error_code=error_code)
    return json.dumps(document, separators=(",", ":")).encode()


def refusal_body(decision: Decision) -> bytes:
    """The API-shaped 400 body for a locally refused request.

    SDK callers get their usual ``BadRequestError``, whose message carries caproute's
    reason; `decision.reason` never contains message content or credentials. A refusal
    repeating one of the API's (an organization-level refusal remembered for the
    credential) carries its ``error.details.error_code`` too, so SDK 2.x raises the
    same class the API's answer did (``OrganizationURLFetchDisabledError``).
    """
    reason = decision.reason or "the routing policy refused this request"
    code = decision.extra.get("error_code")
    return error_body(
        "invalid_request_error", reason, error_code=code if isinstance(code, str) else None
    )
