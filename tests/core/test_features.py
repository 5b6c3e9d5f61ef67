"""Detection: every capability the issue lists, where it came from, and the limits."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from catalogue import IMAGE, PDF, TEXT_DOCUMENT, assistant, body, user

from caproute._core.features import (
    IMAGE_TOKENS,
    PDF_BYTES_PER_PAGE,
    PDF_TOKENS_PER_PAGE,
    detect,
    scan,
    shape_problem,
)
from caproute._core.request_needs import format_path

WEB_FETCH_CITING = {
    "type": "web_fetch_20260318",
    "name": "web_fetch",
    "citations": {"enabled": True},
}

# (case id, extra body fields, capability, where it must be reported)
NEEDS: list[tuple[str, dict[str, Any], str, str]] = [
    ("thinking enabled", {"thinking": {"type": "enabled", "budget_tokens": 1024}},
     "thinking.types.enabled", "thinking.type"),
    ("thinking adaptive", {"thinking": {"type": "adaptive"}}, "thinking.types.adaptive",
     "thinking.type"),
    ("thinking disabled", {"thinking": {"type": "disabled"}}, "thinking.types.disabled",
     "thinking.type"),
    ("thinking between_tools", {"thinking": {"type": "between_tools"}},
     "thinking.types.between_tools", "thinking.type"),
    ("effort", {"output_config": {"effort": "xhigh"}}, "effort.xhigh", "output_config.effort"),
    ("image", {"messages": [user({"type": "text", "text": "look"}, IMAGE)]}, "image_input",
     "messages[0].content[1]"),
    ("image in tool_result",
     {"messages": [user({"type": "tool_result", "tool_use_id": "t", "content": [IMAGE]})]},
     "image_input", "messages[0].content[0].content[0]"),
    ("image in a content document",
     {"messages": [user({"type": "document", "source": {"type": "content", "content": [IMAGE]}})]},
     "image_input", "messages[0].content[0].source.content[0]"),
    ("pdf base64", {"messages": [user(PDF)]}, "pdf_input", "messages[0].content[0]"),
    ("pdf url",
     {"messages": [user({"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}})]},
     "pdf_input", "messages[0].content[0]"),
    ("pdf file",
     {"messages": [user({"type": "document", "source": {"type": "file", "file_id": "file_1"}})]},
     "pdf_input", "messages[0].content[0]"),
    ("pdf in tool_result",
     {"messages": [user({"type": "tool_result", "tool_use_id": "t", "content": [PDF]})]},
     "pdf_input", "messages[0].content[0].content[0]"),
    ("citations on a document",
     {"messages": [user({**TEXT_DOCUMENT, "citations": {"enabled": True}})]}, "citations",
     "messages[0].content[0]"),
    ("citations on a search_result",
     {"messages": [user({"type": "search_result", "source": "s", "title": "t", "content": [],
                         "citations": {"enabled": True}})]},
     "citations", "messages[0].content[0]"),
    ("citations on web_fetch", {"tools": [WEB_FETCH_CITING]}, "citations", "tools[0]"),
    ("output_config.format",
     {"output_config": {"format": {"type": "json_schema", "schema": {}}}},
     "structured_outputs", "output_config.format"),
    ("legacy output_format", {"output_format": {"type": "json_schema", "schema": {}}},
     "structured_outputs", "output_format"),
    ("strict tool",
     {"tools": [{"name": "a", "input_schema": {"type": "object"}, "strict": True}]},
     "structured_outputs", "tools[0].strict"),
    ("code execution tool",
     {"tools": [{"type": "code_execution_20260120", "name": "code_execution"}]},
     "server_tools.code_execution", "tools[0]"),
    ("web search tool", {"tools": [{"type": "web_search_20260318", "name": "web_search"}]},
     "server_tools.web_search", "tools[0]"),
    ("allowed_callers",
     {"tools": [{"name": "a", "input_schema": {"type": "object"},
                 "allowed_callers": ["direct", "code_execution_20250825"]}]},
     "code_execution", "tools[0].allowed_callers"),
    ("clear_tool_uses edit",
     {"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}},
     "context_management.clear_tool_uses_20250919", "context_management.edits[0]"),
    ("clear_thinking edit",
     {"context_management": {"edits": [{"type": "clear_tool_uses_20250919"},
                                       {"type": "clear_thinking_20251015"}]}},
     "context_management.clear_thinking_20251015", "context_management.edits[1]"),
    ("compact edit", {"context_management": {"edits": [{"type": "compact_20260112"}]}},
     "context_management.compact_20260112", "context_management.edits[0]"),
    ("compaction", {"compaction": {"type": "summarize"}}, "compaction.summarize", "compaction"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "capability", "where"), [c[1:] for c in NEEDS],
                         ids=[c[0] for c in NEEDS])  # fmt: skip
def test_each_capability_is_detected_where_it_is(
    fields: dict[str, Any], capability: str, where: str
) -> None:
    needs = detect(body(**fields))
    assert capability in needs.capabilities
    assert needs.where(capability) == where


# Bodies that need nothing special: unknown things pass through and need nothing.
NOTHING: list[tuple[str, dict[str, Any]]] = [
    ("plain", {}),
    ("text document", {"messages": [user(TEXT_DOCUMENT)]}),
    ("non-pdf base64 document",
     {"messages": [user({"type": "document",
                         "source": {"type": "base64", "media_type": "text/csv",
                                    "data": "YQ=="}})]}),
    ("citations disabled",
     {"messages": [user({**TEXT_DOCUMENT, "citations": {"enabled": False}})]}),
    ("strict false", {"tools": [{"name": "a", "input_schema": {}, "strict": False}]}),
    ("effort null", {"output_config": {"effort": None}}),
    ("unknown block type", {"messages": [user({"type": "hologram", "data": [1, 2]})]}),
    ("unknown top-level field", {"flux_capacitor": {"type": "image"}}),
    ("odd shapes", {"tools": "not a list", "thinking": "on", "output_config": [1],
                    "messages": [7, user("not a block", {"no": "type"})],
                    "context_management": {"edits": "all"}}),
    ("custom and other tools",
     {"tools": [{"name": "a", "input_schema": {}}, {"type": "bash_20250124", "name": "bash"},
                {"type": "web_fetch_20260318", "name": "web_fetch"}]}),
    ("allowed_callers direct only",
     {"tools": [{"name": "a", "input_schema": {}, "allowed_callers": ["direct"]}]}),
]  # fmt: skip


@pytest.mark.parametrize("fields", [c[1] for c in NOTHING], ids=[c[0] for c in NOTHING])
def test_things_no_capability_covers_need_nothing(fields: dict[str, Any]) -> None:
    assert detect(body(**fields)).capabilities == {}


def test_batch_params_need_batch() -> None:
    assert detect(body(), batch=True).paths == ("batch",)
    assert "batch" not in detect(body()).capabilities


def test_every_location_is_kept_in_body_order() -> None:
    needs = detect(body(messages=[user(IMAGE), assistant({"type": "text", "text": "ok"}),
                                  user({"type": "text", "text": "again"}, IMAGE)]))  # fmt: skip
    assert [format_path(p) for p in needs.capabilities["image_input"]] == [
        "messages[0].content[0]",
        "messages[2].content[1]",
    ]


def test_limits_and_rule_inputs() -> None:
    needs = detect(
        body(
            max_tokens=5_000,
            thinking={"type": "enabled", "budget_tokens": 3_000},
            output_config={"effort": "low"},
            temperature=0.2,
            top_k=5,
            tool_choice={"type": "tool", "name": "a"},
            messages=[
                user({"type": "text", "text": "q"}),
                assistant({"type": "thinking", "thinking": "hmm", "signature": "s"}),
            ],
        )
    )
    assert needs.params.max_tokens == 5_000
    assert (needs.params.thinking_type, needs.params.budget_tokens, needs.params.effort) == (
        "enabled",
        3_000,
        "low",
    )
    assert needs.params.sampling_names == ("temperature", "top_k")
    assert needs.forced_tool_choice
    assert needs.thinking_history == ("messages", 1, "content", 0)


@pytest.mark.parametrize("choice", ["auto", "none"])
def test_unforced_tool_choice(choice: str) -> None:
    assert not detect(body(tool_choice={"type": choice})).forced_tool_choice


def test_redacted_thinking_counts_as_thinking_history() -> None:
    redacted = {"type": "redacted_thinking", "data": "x"}
    needs = detect(body(messages=[user({"type": "text", "text": "q"}), assistant(redacted)]))
    assert needs.thinking_history == ("messages", 1, "content", 0)


def test_version_sensitive_content_is_located() -> None:
    search_result = {
        "type": "search_result",
        "source": "s",
        "title": "t",
        "content": [{"type": "text", "text": "x", "citations": [{"type": "char_location"}]}],
    }
    cited_text = {"type": "text", "text": "y", "citations": [{"type": "char_location"}]}
    needs = detect(
        body(
            messages=[
                user(cited_text, search_result),
                assistant(TEXT_DOCUMENT, {"type": "text", "text": "z", "citations": [{"a": 1}]}),
                user({"type": "tool_result", "tool_use_id": "t", "content": [TEXT_DOCUMENT]}),
            ]
        )
    )
    assert needs.user_text_citations == (
        ("messages", 0, "content", 0),
        ("messages", 0, "content", 1, "content", 0),
    )
    # Only documents directly inside assistant turns count.
    assert needs.assistant_documents == (("messages", 1, "content", 0),)


def test_empty_citations_list_is_fine() -> None:
    needs = detect(body(messages=[user({"type": "text", "text": "x", "citations": []})]))
    assert needs.user_text_citations == ()


def test_input_estimate_follows_the_documented_formula() -> None:
    pdf_b64 = "A" * 400_000  # 300 000 bytes → 6 pages
    needs = detect(
        body(
            system="s" * 400,
            messages=[
                user({"type": "text", "text": "t" * 4_000}, IMAGE),
                user(
                    {"type": "document",
                     "source": {"type": "base64", "media_type": "application/pdf",
                                "data": pdf_b64}}
                ),
            ],
        )
    )  # fmt: skip
    pages = 300_000 // PDF_BYTES_PER_PAGE
    expected = (400 + 4_000) // 4 + 2 * 4 + IMAGE_TOKENS + pages * PDF_TOKENS_PER_PAGE
    assert needs.input_tokens == expected


def test_base64_is_never_decoded() -> None:
    # Not valid base64 at all: detection only measures it.
    broken = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "!!"},
    }
    needs = detect(body(messages=[user(broken)]))
    assert needs.paths == ("image_input",)


def test_detection_does_not_touch_the_body() -> None:
    original = body(
        thinking={"type": "enabled", "budget_tokens": 2_000},
        tools=[{"type": "web_search_20260318", "name": "web_search", "strict": True}],
        messages=[user(IMAGE, PDF)],
    )
    snapshot = copy.deepcopy(original)
    detect(original)
    assert original == snapshot


@pytest.mark.parametrize(
    ("value", "endpoint", "problem"),
    [
        ([1, 2], "messages", "the body is not a JSON object (it is a list)"),
        ("text", "messages", "the body is not a JSON object (it is a string)"),
        ({"messages": []}, "messages", "model: missing or not a string"),
        ({"model": 3, "messages": []}, "messages", "model: missing or not a string"),
        ({"model": "m", "messages": {}}, "messages", "messages: missing or not a list"),
        ({"model": "m", "messages": []}, "messages", "max_tokens: missing or not an integer"),
        ({"model": "m", "messages": [], "max_tokens": True}, "messages",
         "max_tokens: missing or not an integer"),
        ({"model": "m", "messages": []}, "count_tokens", None),
        ({"model": "m", "messages": [], "max_tokens": 1}, "messages", None),
    ],
)  # fmt: skip
def test_shape_problems_name_the_path(value: Any, endpoint: Any, problem: str | None) -> None:
    assert shape_problem(value, endpoint) == problem


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), ""),
        (("model",), "model"),
        (("messages", 3, "content", 0), "messages[3].content[0]"),
        (("tools", 2, "strict"), "tools[2].strict"),
    ],
)
def test_format_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


def test_top_level_gate_lists_every_key_top_level_reads() -> None:
    # `scan` skips `Scan.top_level` when the body has none of `_TOP_LEVEL_KEYS`: a key
    # read there but missing from the gate would go undetected on otherwise plain bodies.
    import inspect
    import re

    from caproute._core import features

    source = inspect.getsource(features.Scan.top_level)
    read = set(re.findall(r'body\.get\("([a-z_]+)"\)', source))
    assert read == set(features._TOP_LEVEL_KEYS)


@pytest.mark.parametrize("key", ["output_config", "system", "thinking", "tools"])
def test_top_level_keys_alone_are_still_scanned(key: str) -> None:
    values: dict[str, Any] = {
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "output_config": {"effort": "high"},
        "tools": [{"name": "t", "description": "d", "input_schema": {}, "strict": True}],
        "system": "be brief",
    }
    plain = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    found = scan({**plain, key: values[key]})
    assert found.caps or found.chars > len("hi")
