"""Hypothesis fuzzing: detection and routing are total over any JSON; policies fail cleanly.

* `detect` (and the whole `PolicyEngine.route`, every endpoint) takes any JSON value without
  raising: before the fix a ``document.source.type`` that was a list or an object
  raised ``TypeError`` (an unhashable value tested against a set), and blocks nested
  a few hundred levels deep raised ``RecursionError``.
* `Policy.from_text` raises `PolicyError` and nothing else, whatever the text.

``CAPROUTE_SOAK=1`` multiplies the number of examples by ten.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caproute import Policy, PolicyError, embedded_registry
from caproute._core.engine import PolicyEngine
from caproute._core.features import detect

SCALE = 10 if os.environ.get("CAPROUTE_SOAK") else 1
FUZZ = settings(
    max_examples=300 * SCALE,
    deadline=None,
    suppress_health_check=list(HealthCheck),  # load on a shared machine is not a finding
)

# -- JSON values, generic and shaped like the places detection reads ----------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)

BLOCK_TYPES = [
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "search_result",
    "thinking",
    "redacted_thinking",
]
SOURCE_TYPES = ["base64", "url", "file", "text", "content"]

# The words detection compares against: block types, source types, parameter values.
WORDS = [
    *BLOCK_TYPES,
    *(t for t in SOURCE_TYPES if t not in BLOCK_TYPES),
    "application/pdf",
    "enabled",
    "adaptive",
    "disabled",
    "max",
    "high",
    "any",
    "tool",
    "auto",
    "user",
    "assistant",
    "code_execution_20250825",
    "web_search_20250305",
    "web_fetch_20250910",
    "clear_tool_uses_20250919",
    "summarize",
]
KEYS = [
    "type",
    "source",
    "content",
    "text",
    "citations",
    "data",
    "media_type",
    "input",
    "thinking",
    "budget_tokens",
    "effort",
    "format",
    "enabled",
    "role",
    "name",
    "description",
    "strict",
    "allowed_callers",
    "edits",
    "url",
]
words = st.sampled_from(WORDS)
# Any JSON value, biased towards the words and keys detection looks for.
shaped = st.recursive(
    scalars | words,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=30,
)


def _mostly(common: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`common` three times in four, any shaped JSON value otherwise."""
    return st.one_of(common, common, common, shaped)


sources = st.fixed_dictionaries(
    {"type": _mostly(st.sampled_from(SOURCE_TYPES))},
    optional={"media_type": words | shaped, "data": shaped, "content": shaped, "url": shaped},
)
blocks = st.recursive(
    st.fixed_dictionaries(
        {"type": _mostly(st.sampled_from(BLOCK_TYPES))},
        optional={
            "source": _mostly(sources),
            "text": shaped,
            "citations": shaped,
            "input": shaped,
            "thinking": shaped,
        },
    ),
    lambda inner: st.fixed_dictionaries(
        {
            "type": st.sampled_from(["tool_result", "search_result", "document"]),
            "content": st.lists(_mostly(inner), max_size=3),
        },
        optional={"source": _mostly(sources)},
    ),
    max_leaves=6,
)
messages = st.lists(
    _mostly(
        st.fixed_dictionaries(
            {"role": _mostly(st.sampled_from(["user", "assistant"]))},
            optional={"content": _mostly(st.lists(_mostly(blocks), max_size=5))},
        )
    ),
    max_size=4,
)
TOP_KEYS = [
    "thinking",
    "output_config",
    "output_format",
    "tools",
    "tool_choice",
    "context_management",
    "compaction",
    "system",
    "metadata",
    "temperature",
]
bodies = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["claude-haiku-4-5", "claude-opus-4-6", "claude-x"]) | shaped,
        "max_tokens": st.integers(-5, 200_000) | shaped,
        "messages": messages,
    },
    optional={key: shaped for key in TOP_KEYS},
)

REGISTRY = embedded_registry()
ROUTER = PolicyEngine(REGISTRY)


@FUZZ
@given(body=bodies | st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_detection_is_total_over_any_json_object(body: dict[str, Any]) -> None:
    detect(body)
    detect(body, batch=True)


@FUZZ
@given(
    content=st.lists(blocks, min_size=1, max_size=4),
    role=st.sampled_from(["user", "assistant"]),
    system=st.none() | st.lists(blocks, max_size=2),
)
def test_detection_is_total_over_any_content_blocks(
    content: list[Any], role: str, system: list[Any] | None
) -> None:
    body: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "messages": [{"role": role, "content": content}],
    }
    if system is not None:
        body["system"] = system
    detect(body)
    ROUTER.route(body)


@FUZZ
@given(
    body=bodies | json_values,
    endpoint=st.sampled_from(["messages", "count_tokens"]),
    version=st.sampled_from([None, "2023-06-01", "2026-10-21"]),
)
def test_routing_is_total_over_any_json_value(
    body: Any, endpoint: str, version: str | None
) -> None:
    before = json.dumps(body, sort_keys=True)
    result = ROUTER.route(body, endpoint=endpoint, api_version=version)  # type: ignore[arg-type]
    assert json.dumps(body, sort_keys=True) == before  # never mutated
    if result.body is not body:
        # Whatever was edited is still plain, finite JSON.
        json.dumps(result.body, allow_nan=False)


@FUZZ
@given(
    items=st.lists(
        st.fixed_dictionaries({"custom_id": st.text(max_size=5), "params": bodies}) | json_values,
        max_size=3,
    )
)
def test_batch_routing_is_total(items: list[Any]) -> None:
    ROUTER.route({"requests": items}, endpoint="batch")


@pytest.mark.parametrize("source_type", [["base64"], {"a": 1}, ["url", "file"], {}])
def test_a_document_source_type_that_is_a_list_or_object_needs_nothing(source_type: Any) -> None:
    # The probe of the report, as it was sent: TypeError before the fix.
    block = {"type": "document", "source": {"type": source_type, "data": "JVBERi0x"}}
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": [block]}],
    }
    assert "pdf_input" not in detect(body).capabilities
    assert ROUTER.route(body).decision.outcome in ("unchanged", "passthrough")


def _nested_tool_results(depth: int) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}}
    for i in range(depth):
        block = {"type": "tool_result", "tool_use_id": f"t{i}", "content": [block]}
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": [block]}],
    }


def test_blocks_nested_deeper_than_the_stack_do_not_crash_detection() -> None:
    # Built in Python (the middleware's case): no JSON parser limited the depth first.
    body = _nested_tool_results(sys.getrecursionlimit() * 2)
    detect(body)
    ROUTER.route(body)


def test_blocks_nested_as_the_api_nests_them_are_still_detected() -> None:
    # The depth bound is far beyond what the API allows (a tool result holding a
    # search result holding text): an image two levels down is found.
    assert "image_input" in detect(_nested_tool_results(2)).capabilities


# -- policies ------------------------------------------------------------------------------

POLICY_WORDS = [
    "version",
    "defaults",
    "routes",
    "name",
    "match",
    "model",
    "metadata",
    "headers",
    "candidates",
    "on_unsupported",
    "actions",
    "unknown",
    "allow_deprecated",
    "fallback_on",
    "requested",
    "auto",
    "adjust",
    "strip",
    "reroute",
    "reject",
    "supported",
    "unsupported",
    "effort",
    "thinking",
    "pdf_input",
    "5xx",
    "claude-*",
    "[",
    "*",
    "$schema",
]
policy_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 1000)
    | st.floats(allow_nan=True)
    | st.sampled_from(POLICY_WORDS)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(POLICY_WORDS) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=25,
)


def _only_policy_errors(text: str) -> None:
    try:
        Policy.from_text(text, filename="fuzz.yaml")
    except PolicyError as exc:
        assert str(exc).startswith("fuzz.yaml"), str(exc)


@FUZZ
@given(data=policy_values)
def test_policy_loader_raises_only_policy_errors_on_structured_input(data: Any) -> None:
    _only_policy_errors(yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_policy_loader_raises_only_policy_errors_on_any_text(text: str) -> None:
    _only_policy_errors(text)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000 + "]" * 5000,  # nesting deeper than the stack
        "a: &a [*a]",  # a recursive alias
        "a: &x 1\nb: *y",  # an undefined alias
        "!!python/object:os.system {}",  # an unsafe tag
        "version: 1\nroutes: !!binary AAAA",
        "\x00",
        "version: .nan",
        "defaults: {fallback_on: [.inf]}",
        "routes:\n- name: x\n  candidates: ['[']\n",
        "\ufeffversion: 1",
        "---\nversion: 1\n---\nversion: 1\n",  # two documents
    ],
)
def test_policy_loader_raises_only_policy_errors_on_hostile_text(text: str) -> None:
    _only_policy_errors(text)
