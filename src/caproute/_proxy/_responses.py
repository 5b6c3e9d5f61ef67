"""Answers the proxy writes itself: API-shaped errors and small JSON/text documents.

Errors use the Messages API's error shape (``{"type": "error", "error": {...}}``) so
every SDK turns them into its usual exception classes (413 → request too large, 408 →
retried by the SDK, 502/504 → retried). Messages start with ``caproute:`` so a
caller can tell the proxy answered, not the API.
"""

from __future__ import annotations

import json
from typing import Any

from ._asgi import Send

_JSON = b"application/json"


def error_body(error_type: str, message: str) -> bytes:
    """An API-shaped error document."""
    document = {"type": "error", "error": {"type": error_type, "message": f"caproute: {message}"}}
    return json.dumps(document, separators=(",", ":")).encode()


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = _JSON,
    close: bool = False,
) -> None:
    """Send a complete response in one body message."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if close:
        # The caller's body was not (fully) read: the connection cannot be reused.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_json(send: Send, status: int, document: Any) -> None:
    """Send a JSON document (pretty enough to read with curl)."""
    await send_bytes(send, status, json.dumps(document, indent=2).encode() + b"\n")


async def send_error(
    send: Send, status: int, error_type: str, message: str, *, close: bool = False
) -> None:
    """Send an API-shaped error response."""
    await send_bytes(send, status, error_body(error_type, message), close=close)


def sse_error_event(error_type: str, message: str) -> bytes:
    """An SSE ``error`` event, what the API itself sends when a stream fails after 200."""
    return b"event: error\ndata: " + error_body(error_type, message) + b"\n\n"
