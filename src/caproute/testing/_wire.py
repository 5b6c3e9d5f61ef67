"""Shapes the fake puts on the wire: ids, error bodies, messages, SSE events, batches.

Everything here mirrors the documentation's "Streaming messages", "Batch processing" and
"Errors" pages closely enough for the anthropic SDK (0.x and 2.x) to parse it into its
typed objects; tests check that with the real SDK, so a drift shows up as a failing test
rather than a silent mismatch.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["ApiError", "error_body", "new_id", "rfc3339"]

_ALPHABET = string.ascii_letters + string.digits

# The error type the API uses for each status ("Errors" page). 408 has no documented
# type; `timeout_error` is the nearest the SDK knows.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_DEFAULT_MESSAGES = {
    401: "invalid x-api-key",
    429: "Number of requests has exceeded your rate limit.",
    500: "Internal server error",
    529: "Overloaded",
}


class ApiError(Exception):
    """An error answer: HTTP status, ``error.type`` and ``error.message``."""

    def __init__(self, status: int, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or error_type_for(status)


def error_type_for(status: int) -> str:
    """The API's ``error.type`` for an HTTP status."""
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def default_message(status: int) -> str:
    """A plausible ``error.message`` for an injected status."""
    return _DEFAULT_MESSAGES.get(status, f"fake error {status}")


def new_id(prefix: str) -> str:
    """A random id in the API's style, e.g. ``req_011CV...``."""
    return prefix + "011" + "".join(secrets.choice(_ALPHABET) for _ in range(21))


def rfc3339(moment: datetime) -> str:
    """UTC RFC 3339 with a ``Z`` suffix, as the API writes timestamps."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    """The API's error envelope ("Errors" page, error shapes)."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def estimate_tokens(*parts: Any) -> int:
    """A cheap, deterministic token estimate: about four characters per token."""
    chars = sum(len(p) if isinstance(p, str) else len(json.dumps(p)) for p in parts if p)
    return max(1, chars // 4)


def message(
    model_id: str,
    text: str | Sequence[Mapping[str, Any]],
    *,
    input_tokens: int,
    max_tokens: int | None,
) -> dict[str, Any]:
    """A complete assistant Message; ``max_tokens=0`` (cache warm-up) gives no content.

    `text` is the reply's text, or its content blocks (``text`` and ``tool_use``; a
    ``tool_use`` block without an ``id`` gets one, and any ``tool_use`` makes the stop
    reason ``tool_use``, as in the API).
    """
    if max_tokens == 0:
        content: list[dict[str, Any]] = []
        stop_reason = "max_tokens"
        output_tokens = 0
    else:
        content = content_blocks(text)
        uses_tool = any(block["type"] == "tool_use" for block in content)
        stop_reason = "tool_use" if uses_tool else "end_turn"
        output_tokens = max(1, sum(_block_tokens(block) for block in content))
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model_id,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }


def _block_tokens(block: dict[str, Any]) -> int:
    if block["type"] == "text":
        return len(block["text"].split())  # one token per word: easy to assert on
    return estimate_tokens(block["input"])


def content_blocks(reply: str | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A reply as the API's content blocks: text, or ``text`` / ``tool_use`` blocks completed.

    Raises:
        ValueError: A block of another type (the fake only writes these two).
    """
    if isinstance(reply, str):
        return [{"type": "text", "text": reply}]
    blocks: list[dict[str, Any]] = []
    for block in reply:
        kind = block.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "tool_use":
            blocks.append(
                {
                    "type": "tool_use",
                    "id": block.get("id") or new_id("toolu_"),
                    "name": block["name"],
                    "input": dict(block.get("input") or {}),
                }
            )
        else:
            raise ValueError(f"the fake can reply with text and tool_use blocks, not {kind!r}")
    return blocks


def sse(event: dict[str, Any]) -> bytes:
    """One server-sent event; the event name repeats the payload's ``type``, as the API does."""
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def stream_events(full: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE event sequence that streams `full` (a Message from `message`)."""
    start = {**full, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**full["usage"], "output_tokens": 1}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(full["content"]):
        events.extend(_block_events(index, block))
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": full["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": full["usage"]["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return events


def _block_events(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    """start, deltas, stop for one content block (tool input as JSON fragments, as the API)."""
    if block["type"] == "tool_use":
        start = {**block, "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": part}
            for part in _halves(json.dumps(block["input"]))
        ]
    else:
        start = {**block, "text": ""}
        deltas = [{"type": "text_delta", "text": t} for t in _chunks(block["text"])]
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def _halves(text: str) -> list[str]:
    """Two fragments that only make sense joined: clients must buffer partial JSON."""
    middle = len(text) // 2
    return [text[:middle], text[middle:]] if middle else [text]


def _chunks(text: str) -> list[str]:
    """Split text into word-sized deltas (keeping the spaces), so joining them gives it back."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]] if text else []
