"""Validation: every rule rejects the bad request (400) and passes the good.

`claude-bare-1` lacks every gated capability, `claude-full-2` has them all (see
fake_api_helpers.lineup), so each capability case is one body sent to both models, in
each of the fake's wordings. The API's wording is not a contract, so a refusal names
what it refuses (the JSON path in the API's own style, the feature's words, the model
in the others) and caproute's learning step must recover the capability from every
wording (`test_every_wording_is_attributable`).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fake_api_helpers import error_of

from caproute._core.learning import attribute
from caproute.testing import FakeAnthropic
from caproute.testing._validation import WORDINGS

USER_HI = {"role": "user", "content": "hi"}
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
PDF = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVB"},
}
TEXT_SOURCE = {"type": "text", "media_type": "text/plain", "data": "plain words"}
TOOL = {"name": "lookup", "input_schema": {"type": "object"}}


def user(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(blocks)}]


def body(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 2048, "messages": [USER_HI], **fields}


# (case id, body fields, capability path the error must name)
CAPABILITY_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("image", {"messages": user(IMAGE)}, "image_input"),
    (
        "image-in-tool-result",
        {
            "messages": [
                {"role": "user", "content": "look"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [IMAGE]}],
                },
            ],
            "tools": [TOOL],
        },
        "image_input",
    ),
    (
        "image-in-content-document",
        {"messages": user({"type": "document", "source": {"type": "content", "content": [IMAGE]}})},
        "image_input",
    ),
    ("pdf-base64", {"messages": user(PDF)}, "pdf_input"),
    (
        "pdf-url",
        {
            "messages": user(
                {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}
            )
        },
        "pdf_input",
    ),
    (
        "pdf-file",
        {"messages": user({"type": "document", "source": {"type": "file", "file_id": "file_1"}})},
        "pdf_input",
    ),
    (
        "citations-document",
        {
            "messages": user(
                {"type": "document", "source": TEXT_SOURCE, "citations": {"enabled": True}}
            )
        },
        "citations",
    ),
    (
        "citations-search-result",
        {
            "messages": user(
                {
                    "type": "search_result",
                    "source": "https://x",
                    "title": "x",
                    "content": [{"type": "text", "text": "y"}],
                    "citations": {"enabled": True},
                }
            )
        },
        "citations",
    ),
    (
        "output-config-format",
        {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
        "structured_outputs",
    ),
    (
        "legacy-output-format",
        {"output_format": {"type": "json_schema", "schema": {"type": "object"}}},
        "structured_outputs",
    ),
    ("strict-tool", {"tools": [{**TOOL, "strict": True}]}, "structured_outputs"),
    (
        "code-execution-tool",
        {"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]},
        "server_tools.code_execution",
    ),
    (
        "web-search-tool",
        {"tools": [{"type": "web_search_20260209", "name": "web_search"}]},
        "server_tools.web_search",
    ),
    (
        "allowed-callers",
        {"tools": [{**TOOL, "allowed_callers": ["direct", "code_execution_20260120"]}]},
        "code_execution",
    ),
    (
        "context-management-edit",
        {"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}},
        "context_management.clear_tool_uses_20250919",
    ),
    ("effort-level", {"output_config": {"effort": "max"}}, "effort.max"),
    (
        "thinking-enabled",
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        "thinking.types.enabled",
    ),
    ("thinking-disabled", {"thinking": {"type": "disabled"}}, "thinking.types.disabled"),
]


@pytest.mark.parametrize(
    ("fields", "capability"),
    [c[1:] for c in CAPABILITY_CASES],
    ids=[c[0] for c in CAPABILITY_CASES],
)
@pytest.mark.parametrize("endpoint", ["/v1/messages", "/v1/messages/count_tokens"])
def test_capability_rules(
    http: httpx.Client, endpoint: str, fields: dict[str, Any], capability: str
) -> None:
    status, error_type, message = error_of(
        http.post(endpoint, json=body("claude-bare-1", **fields))
    )
    assert (status, error_type) == (400, "invalid_request_error")
    assert http.post(endpoint, json=body("claude-full-2", **fields)).status_code == 200


@pytest.mark.parametrize("wording", WORDINGS)
@pytest.mark.parametrize(
    ("fields", "capability"),
    [c[1:] for c in CAPABILITY_CASES],
    ids=[c[0] for c in CAPABILITY_CASES],
)
def test_every_wording_is_attributable(
    fake: FakeAnthropic, http: httpx.Client, wording: str, fields: dict[str, Any], capability: str
) -> None:
    fake.wording = wording  # type: ignore[assignment]
    sent = body("claude-bare-1", **fields)
    status, _, message = error_of(http.post("/v1/messages", json=sent))
    assert status == 400
    if wording != "api":
        assert "claude-bare-1" in message
    learned = attribute(message, sent, "claude-bare-1")
    assert learned is not None, message
    # The exact leaf, or its whole family when the text names only the parameter.
    assert capability == learned.key or capability.startswith(f"{learned.key}."), message
    assert learned.value is False


def test_error_message_names_the_json_path(http: httpx.Client) -> None:
    fields = {
        "messages": [
            USER_HI,
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "see"}, IMAGE]},
        ]
    }
    message = error_of(http.post("/v1/messages", json=body("claude-bare-1", **fields)))[2]
    assert message.startswith("messages.2.content.1: ")


def test_plain_text_documents_need_no_pdf_input(http: httpx.Client) -> None:
    fields = {"messages": user({"type": "document", "source": TEXT_SOURCE}), "tools": [TOOL]}
    assert http.post("/v1/messages", json=body("claude-bare-1", **fields)).status_code == 200


def test_old_catalogue_shape_falls_back_to_top_level_code_execution(
    fake: FakeAnthropic, http: httpx.Client
) -> None:
    code = {"tools": [{"type": "code_execution_20250522", "name": "code_execution"}]}
    search = {"tools": [{"type": "web_search_20250305", "name": "web_search"}]}
    old = "claude-old-1-20250101"
    assert http.post("/v1/messages", json=body(old, **code)).status_code == 200
    assert http.post("/v1/messages", json=body(old, **search)).status_code == 200  # no key then
    fake.update_model(old, unsupported=["code_execution"])
    message = error_of(http.post("/v1/messages", json=body(old, **code)))[2]
    assert "code_execution_20250522" in message


# -- rules that do not depend on a capability ------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"max_tokens": "10"}, "max_tokens: Input should be a valid integer"),
        ({"max_tokens": True}, "max_tokens: Input should be a valid integer"),
        ({"max_tokens": -1}, "max_tokens: Input should be greater than or equal to 0"),
        ({"max_tokens": 64_001}, "maximum allowed number of output tokens for claude-full-2"),
        ({"messages": None}, "messages: Field required"),
        ({"messages": []}, "messages: Input should be a non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages.0.content.0"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
        ({"model": None}, "model: Field required"),
        ({"model": 7}, "model: Input should be a valid string"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type"),
        ({"thinking": {"type": "enabled"}}, "budget_tokens: Field required"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1023}}, "greater than or equal to 1024"),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            "max_tokens: must be greater than thinking.budget_tokens",
        ),
        (
            {
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "tool_choice": {"type": "any"},
                "tools": [TOOL],
            },
            "tool_choice: Thinking may not be enabled",
        ),
        (
            {
                "thinking": {"type": "adaptive"},
                "tool_choice": {"type": "tool", "name": "lookup"},
                "tools": [TOOL],
            },
            "tool_choice: Thinking may not be enabled",
        ),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort"),
        ({"context_management": {"edits": {"type": "x"}}}, "context_management.edits"),
        ({"context_management": {"edits": [{}]}}, "context_management.edits.0.type"),
        ({"context_management": {"edits": ["x"]}}, "edits.0.type: Field required"),
        ({"compaction": {"type": 3}}, "compaction.type: Field required"),
    ],
)
def test_body_rules(http: httpx.Client, fields: dict[str, Any], fragment: str) -> None:
    sent = {k: v for k, v in {**body("claude-full-2"), **fields}.items() if v is not None}
    status, error_type, message = error_of(http.post("/v1/messages", json=sent))
    assert (status, error_type) == (400, "invalid_request_error")
    assert fragment in message


@pytest.mark.parametrize(
    "fields",
    [
        {"max_tokens": 0},  # warms the cache only
        {"max_tokens": 64_000},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 1025},
        {
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tool_choice": {"type": "auto"},
            "tools": [TOOL],
        },
        {"thinking": {"type": "disabled"}, "tool_choice": {"type": "any"}, "tools": [TOOL]},
        {"thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}},
        {"output_config": {"effort": None}},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
        {"model": "claude-old-1", "max_tokens": 4096},  # undated alias of a dated id
    ],
)
def test_valid_bodies_pass(http: httpx.Client, fields: dict[str, Any]) -> None:
    assert http.post("/v1/messages", json={**body("claude-full-2"), **fields}).status_code == 200


def test_compaction_is_checked_where_the_catalogue_states_it(
    fake: FakeAnthropic, http: httpx.Client
) -> None:
    # A beta-only family (api-facts §2.3): a GA catalogue doesn't describe it.
    summarize = {"compaction": {"type": "summarize"}}
    assert http.post("/v1/messages", json=body("claude-full-2", **summarize)).status_code == 200
    fake.update_model("claude-full-2", capabilities={"compaction": {"supported": False}})
    refused = error_of(http.post("/v1/messages", json=body("claude-full-2", **summarize)))
    assert refused[0] == 400 and "compaction" in refused[2]
    learned = attribute(refused[2], body("claude-full-2", **summarize), "claude-full-2")
    assert learned is not None and learned.key.startswith("compaction")
    # Never together with context editing, on any model (api-facts §3.1).
    both = {**summarize, "context_management": {"edits": [{"type": "compact_20260112"}]}}
    message = error_of(http.post("/v1/messages", json=body("claude-old-1", **both)))[2]
    assert "cannot be combined" in message


def test_max_tokens_is_not_required_by_count_tokens(http: httpx.Client) -> None:
    counted = http.post(
        "/v1/messages/count_tokens", json={"model": "claude-full-2", "messages": [USER_HI]}
    )
    assert counted.status_code == 200
    assert counted.json()["input_tokens"] >= 1
    assert (
        http.post(
            "/v1/messages", json={"model": "claude-full-2", "messages": [USER_HI]}
        ).status_code
        == 400
    )


def test_unknown_and_retired_models_are_404(fake: FakeAnthropic, http: httpx.Client) -> None:
    for endpoint in ("/v1/messages", "/v1/messages/count_tokens"):
        unknown = error_of(http.post(endpoint, json=body("claude-nope-9")))
        assert unknown[:2] == (404, "not_found_error")
        assert "claude-nope-9" in unknown[2]
    fake.retire("claude-full-2")
    assert error_of(http.post("/v1/messages", json=body("claude-full-2")))[:2] == (
        404,
        "not_found_error",
    )
    assert http.get("/v1/models/claude-full-2").json()["lifecycle"] == "retired"


# -- API version 2026-10-21 ------------------------------------------------------------------

V2026 = {"anthropic-version": "2026-10-21"}


@pytest.mark.parametrize(("param", "value"), [("temperature", 1.0), ("top_p", 0.9), ("top_k", 5)])
def test_2026_rejects_sampling_params_even_at_defaults(
    http: httpx.Client, param: str, value: float
) -> None:
    sent = body("claude-full-2", **{param: value})
    status, _, message = error_of(http.post("/v1/messages", json=sent, headers=V2026))
    assert status == 400
    assert message == f"{param}: Extra inputs are not permitted"
    assert http.post("/v1/messages", json=sent).status_code == 200  # fine under 2023-06-01
    counted = http.post("/v1/messages/count_tokens", json=sent, headers=V2026)
    assert counted.status_code == 400


ASSISTANT_DOCUMENT = [
    USER_HI,
    {"role": "assistant", "content": [{"type": "document", "source": TEXT_SOURCE}]},
    USER_HI,
]
CITED_TEXT = {
    "type": "text",
    "text": "x",
    "citations": [
        {
            "type": "char_location",
            "cited_text": "x",
            "document_index": 0,
            "start_char_index": 0,
            "end_char_index": 1,
        }
    ],
}
SEARCH_RESULT_WITH_CITED_TEXT = {
    "type": "search_result",
    "source": "s",
    "title": "t",
    "content": [CITED_TEXT],
}


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        (ASSISTANT_DOCUMENT, "messages.1.content.0: document blocks are not allowed"),
        (user(CITED_TEXT), "messages.0.content.0.citations"),
        (user(SEARCH_RESULT_WITH_CITED_TEXT), "messages.0.content.0.content.0.citations"),
    ],
    ids=["assistant-document", "user-text-citations", "search-result-text-citations"],
)
def test_2026_message_shape_rules(
    http: httpx.Client, messages: list[dict[str, Any]], fragment: str
) -> None:
    sent = body("claude-full-2", messages=messages)
    status, _, message = error_of(http.post("/v1/messages", json=sent, headers=V2026))
    assert status == 400
    assert fragment in message
    assert http.post("/v1/messages", json=sent).status_code == 200  # fine under 2023-06-01


def test_2026_allows_cited_text_from_the_assistant_and_empty_citations(http: httpx.Client) -> None:
    messages = [
        USER_HI,
        {"role": "assistant", "content": [CITED_TEXT]},
        {"role": "user", "content": [{"type": "text", "text": "y", "citations": []}]},
    ]
    sent = body("claude-full-2", messages=messages)
    assert http.post("/v1/messages", json=sent, headers=V2026).status_code == 200
