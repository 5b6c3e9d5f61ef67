"""Shared helpers for the tests of the fake API (a small lineup, error checks)."""

from __future__ import annotations

from typing import Any

import httpx

from caproute.testing import make_model

API_KEY = "test-key"

# Everything the validation rules gate, switched off.
BARE_UNSUPPORTED = [
    "image_input",
    "pdf_input",
    "citations",
    "structured_outputs",
    "code_execution",
    "server_tools.code_execution",
    "server_tools.web_search",
    "context_management.clear_tool_uses_20250919",
    "effort.max",
    "thinking.types.enabled",
    "thinking.types.disabled",
    "batch",
]


def lineup() -> list[dict[str, Any]]:
    """Newest first: one model that can do everything, one that can do little, one old."""
    old_shape = make_model(
        "claude-old-1-20250101",
        created_at="2025-01-01T00:00:00Z",
        lifecycle="deprecated",
        max_tokens=4096,
    )
    del old_shape["capabilities"]["server_tools"]  # a catalogue from before SDK 1.12
    return [
        make_model("claude-full-2", created_at="2026-10-01T00:00:00Z", max_tokens=64_000),
        make_model(
            "claude-bare-1",
            created_at="2026-06-01T00:00:00Z",
            max_tokens=8192,
            unsupported=BARE_UNSUPPORTED,
        ),
        old_shape,
    ]


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    """(status, error.type, error.message) of an API error answer, checking its shape."""
    body = response.json()
    assert body["type"] == "error"
    assert body["request_id"] == response.headers["request-id"]
    assert body["request_id"].startswith("req_")
    return response.status_code, body["error"]["type"], body["error"]["message"]
