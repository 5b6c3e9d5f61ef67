"""Attribution of the API's refusals: parameter paths and feature words, not sentences.

The texts below were written for this test in the shapes users report from the real
API in public bug trackers (a path, the value in quotes, few words), plus rewordings of
each: the wording is not a contract, so every shape must teach the same fact, and an
ambiguous or unrelated text must teach nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from caproute._core.learning import attribute

HI = [{"role": "user", "content": "hi"}]
IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}}
PDF = {"type": "document", "source": {"type": "url", "url": "https://example.test/a.pdf"}}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 4000, "messages": HI, **fields}


EFFORT_MAX = body(output_config={"effort": "max"})
EFFORT_HIGH = body(output_config={"effort": "high"})
ENABLED = body(thinking={"type": "enabled", "budget_tokens": 2000})
ENABLED_WITH_EFFORT = body(
    thinking={"type": "enabled", "budget_tokens": 2000}, output_config={"effort": "high"}
)
ADAPTIVE = body(thinking={"type": "adaptive"})
WITH_IMAGE = body(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, IMAGE]}])
WITH_PDF = body(messages=[{"role": "user", "content": [PDF]}])
TOOLS = body(
    tools=[
        {"type": "web_search_20260318", "name": "web_search"},
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"name": "lookup", "input_schema": {"type": "object"}, "strict": True},
    ]
)
EDITS = body(context_management={"edits": [{"type": "compact_20260112"}]})
FORMAT = body(output_config={"format": {"type": "json_schema", "schema": {}}})


@pytest.mark.parametrize(
    ("message", "sent", "key"),
    [
        # effort: one level refused...
        ("output_config.effort 'max' is not supported on this model.", EFFORT_MAX, "effort.max"),
        (
            "output_config.effort 'max' is not supported when thinking is disabled on this "
            "model. Use effort 'high' or below, or enable thinking.",
            {**EFFORT_MAX, "thinking": {"type": "disabled"}},
            "effort.max",
        ),
        ("Effort level max isn't available for claude-x", EFFORT_MAX, "effort.max"),
        ("The model cannot use effort set to `max`.", EFFORT_MAX, "effort.max"),
        # ...or the whole parameter.
        ("This model does not support the effort parameter.", EFFORT_HIGH, "effort"),
        ("output_config.effort: not supported on this model", EFFORT_HIGH, "effort"),
        # ...or the value: a message listing the values it takes refuses the one sent.
        (
            "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'",
            body(output_config={"effort": "ultra"}),
            "effort.ultra",
        ),
        (
            "output_config.effort must be one of low, medium or high for this model",
            EFFORT_MAX,
            "effort.max",
        ),
        (
            "thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'",
            body(thinking={"type": "dreaming"}),
            "thinking.types.dreaming",
        ),
        # thinking types
        (
            '"thinking.type.enabled" is not supported for this model. Use '
            '"thinking.type.adaptive" and "output_config.effort" to control thinking.',
            ENABLED_WITH_EFFORT,
            "thinking.types.enabled",
        ),
        (
            "thinking.type: 'enabled' is not supported for this model",
            ENABLED,
            "thinking.types.enabled",
        ),
        ("adaptive thinking is not supported on this model", ADAPTIVE, "thinking.types.adaptive"),
        ("This model does not support extended thinking.", ENABLED, "thinking"),
        # content
        ("messages.0.content.1: image input is not supported", WITH_IMAGE, "image_input"),
        (
            "messages[0].content[1]: Images are not supported by this model",
            WITH_IMAGE,
            "image_input",
        ),
        ("claude-x cannot read images", WITH_IMAGE, "image_input"),
        ("PDF documents are not supported by this model.", WITH_PDF, "pdf_input"),
        # tools
        ("tools.0.type: 'web_search_20260318' is not supported", TOOLS, "server_tools.web_search"),
        ("Tool web_search_20260318 isn't available for claude-x", TOOLS, "server_tools.web_search"),
        (
            "tools.1: code execution is not available on this model",
            TOOLS,
            "server_tools.code_execution",
        ),
        ("tools.2.strict: strict tool use is not supported", TOOLS, "structured_outputs"),
        # other families
        (
            "context_management.edits.0.type: 'compact_20260112' is not available",
            EDITS,
            "context_management.compact_20260112",
        ),
        (
            "output_config.format: structured outputs are not supported",
            FORMAT,
            "structured_outputs",
        ),
    ],
)
def test_refusals_teach_the_capability_they_name(
    message: str, sent: dict[str, Any], key: str
) -> None:
    learned = attribute(message, sent, "claude-x")
    assert learned is not None, message
    assert (learned.key, learned.value) == (key, False)
    assert message not in learned.reason  # caproute's words, never the upstream text


@pytest.mark.parametrize(
    ("message", "limit"),
    [
        (
            "max_tokens: 128000 > 64000, which is the maximum allowed number of output "
            "tokens for claude-haiku-4-5-20251001",
            64000,
        ),
        ("claude-x allows at most 32,000 output tokens", 32000),
        (
            "The requested maximum of 128000 output tokens is above what claude-x can "
            "produce (8192).",
            8192,
        ),
    ],
)
def test_a_max_tokens_refusal_teaches_the_limit(message: str, limit: int) -> None:
    learned = attribute(message, body(max_tokens=128_000), "claude-x")
    assert learned is not None and (learned.key, learned.value) == ("max_tokens", limit)


@pytest.mark.parametrize(
    ("message", "sent"),
    [
        # A rule no capability key states: both the sampling parameter and thinking fit.
        (
            "`temperature` may only be set to 1 when thinking is enabled.",
            {**ENABLED, "temperature": 0.2},
        ),
        ("temperature is not supported when thinking is enabled", {**ENABLED, "temperature": 0.2}),
        ("`top_k` is not supported when thinking is enabled.", {**ENABLED, "top_k": 5}),
        # Plain parameters without a capability behind them.
        ("speed: fast mode is not available for this model", body(speed="fast")),
        ("max_tokens: must be greater than thinking.budget_tokens", body(max_tokens=1500)),
        # About the request itself, or nothing it carried.
        ("messages: Field required", body()),
        ("Unsupported beta header: foo-2026-01-01", body()),
        ("Internal error, please retry", EFFORT_MAX),
        ("", EFFORT_MAX),
        # Names effort, but the request carries none.
        ("This model does not support the effort parameter.", body()),
        # Two equally plausible uses: learn nothing.
        (
            "messages.0.content: this block type is not supported",
            body(messages=[{"role": "user", "content": [IMAGE, PDF]}]),
        ),
    ],
)
def test_what_cannot_be_attributed_teaches_nothing(message: str, sent: dict[str, Any]) -> None:
    assert attribute(message, sent, "claude-x") is None


def test_a_word_inside_a_longer_one_does_not_count() -> None:
    # "max" in max_tokens is not the effort level max.
    sent = body(output_config={"effort": "max"}, max_tokens=200_000)
    learned = attribute("max_tokens: 200000 > 128000 for this model", sent, "claude-x")
    assert learned is not None and learned.key == "max_tokens"


def test_a_body_that_is_not_a_messages_body_teaches_nothing() -> None:
    assert attribute("effort is not supported", {"requests": []}, "claude-x") is None
    assert attribute("effort is not supported", ["not", "a", "body"], "claude-x") is None
