"""Attribution of the API's refusals: parameter paths and feature words, not sentences.

The texts below were written for this test in the shapes users report from the real
API in public bug trackers (a path, the value in quotes, few words), plus rewordings of
each: the wording is not a contract, so every shape must teach the same fact, and an
ambiguous or unrelated text must teach nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caproute._core.learning import (
    Attribution,
    RefusalKind,
    attribute,
    classify,
    uses_account_feature,
)

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


# -- what a refusal is about (`classify`) ---------------------------------------------------------

BIG_IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}}
WITH_BIG_IMAGE = body(
    messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, BIG_IMAGE]}]
)
WITH_URL_IMAGE = WITH_IMAGE
WEB_FETCH = body(tools=[{"type": "web_fetch_20250910", "name": "web_fetch"}])


@pytest.mark.parametrize(
    ("message", "sent"),
    [
        # Texts users quote from the real API (see `catalogue.PAYLOAD_PHRASES`): each
        # names the very content block a capability would be learned from.
        (
            "messages.0.content.1.image.source.base64: image exceeds 5 MB maximum: "
            "15908784 bytes > 5242880 bytes",
            WITH_BIG_IMAGE,
        ),
        (
            "messages.0.content.1.image.source.base64.data: At least one of the image "
            "dimensions exceed max allowed size: 8000 pixels",
            WITH_BIG_IMAGE,
        ),
        (
            "messages.0.content.1.image.source.base64.data: At least one of the image "
            "dimensions exceed max allowed size for many-image requests: 2000 pixels",
            WITH_BIG_IMAGE,
        ),
        (
            "messages.0.content.0.pdf.source.base64.data: A maximum of 100 PDF pages may "
            "be provided.",
            WITH_PDF,
        ),
        ("Too much media: 0 document pages + 103 images > 100", WITH_IMAGE),
        ("too many images and documents: 104 + 1 > 100", WITH_IMAGE),
        ("prompt is too long: 208656 tokens > 200000 maximum", WITH_PDF),
        ("Request exceeds the maximum size", WITH_IMAGE),
    ],
)
def test_a_refusal_about_the_content_teaches_nothing_about_the_model(
    message: str, sent: dict[str, Any]
) -> None:
    refusal = classify(message, sent, "claude-x")
    assert refusal.kind is RefusalKind.PAYLOAD
    assert refusal.fact is None and attribute(message, sent, "claude-x") is None
    assert "nothing learned" in refusal.reason and message not in refusal.reason


@pytest.mark.parametrize(
    ("message", "error_type", "code"),
    [
        # anthropic 2.17: OrganizationURLFetchDisabledError, branch on the code whatever
        # the message says (here it even names the image the request carried).
        (
            "messages.0.content.1: image URL sources are disabled",
            "invalid_request_error",
            "organization_url_fetch_disabled",
        ),
        (
            "Your credit balance is too low to access the Anthropic API. Please go to Plans "
            "& Billing to upgrade or purchase credits.",
            "invalid_request_error",
            None,
        ),
        ("This organization has been disabled.", "invalid_request_error", None),
        ("image input is not allowed", "permission_error", None),
        ("image input needs a paid plan", "billing_error", None),
        (
            "image input over the contract spend limit",
            "invalid_request_error",
            "contract_spend_limit_reached",
        ),
    ],
)
def test_a_refusal_about_the_organization_teaches_nothing_about_the_model(
    message: str, error_type: str, code: str | None
) -> None:
    refusal = classify(message, WITH_URL_IMAGE, "claude-x", error_type=error_type, error_code=code)
    assert refusal.kind is RefusalKind.ORGANIZATION and refusal.fact is None
    assert refusal.error_code == code
    expected = "url_sources" if code == "organization_url_fetch_disabled" else None
    assert refusal.account_feature == expected


def test_an_error_code_outranks_the_words_of_the_message() -> None:
    # The message alone would teach image_input; the code says it is about the payload.
    text = "messages.0.content.1: image is not supported on this model."
    assert attribute(text, WITH_IMAGE, "claude-x") is not None
    refusal = classify(text, WITH_IMAGE, "claude-x", error_code="image_dimensions_too_large")
    assert refusal.kind is RefusalKind.PAYLOAD and refusal.fact is None


def test_an_unknown_error_code_is_read_as_the_bare_type() -> None:
    text = "messages.0.content.1: image is not supported on this model."
    refusal = classify(text, WITH_IMAGE, "claude-x", error_code="some_code_from_the_future")
    assert refusal.kind is RefusalKind.MODEL_CAPABILITY
    assert refusal.fact is not None and refusal.fact.key == "image_input"


@pytest.mark.parametrize(
    "message",
    [
        "`temperature` may only be set to 1 when thinking is enabled.",
        "temperature: Extra inputs are not permitted",
        "thinking.enabled.budget_tokens: Field required",
    ],
)
def test_a_rule_every_model_enforces_is_a_shape_refusal(message: str) -> None:
    sent = body(temperature=0.5, thinking={"type": "enabled", "budget_tokens": 2000})
    refusal = classify(message, sent, "claude-x")
    assert refusal.kind is RefusalKind.SHAPE and refusal.fact is None


def test_capability_refusals_are_model_capability_refusals() -> None:
    refusal = classify(
        "output_config.effort 'max' is not supported on this model.", EFFORT_MAX, "m"
    )
    assert refusal.kind is RefusalKind.MODEL_CAPABILITY and refusal.kind.about_model
    assert refusal.fact == Attribution("effort.max", False, "a 400 from m named effort.max")


# A model refusing a plain parameter: the real texts (`testing.PARAMETER_REFUSALS`), and
# variations of case, quoting and punctuation generated around them.
_PARAMETERS = ("temperature", "top_p", "top_k", "speed", "inference_geo")
_QUOTES = ("`{}`", "{}", "'{}'", '"{}"')
_TAILS = ("deprecated for this model", "deprecated in this model", "not supported by this model")


@given(
    name=st.sampled_from(_PARAMETERS),
    quote=st.sampled_from(_QUOTES),
    tail=st.sampled_from(_TAILS),
    upper=st.booleans(),
    end=st.sampled_from(("", ".", ". Remove it and try again.")),
)
def test_a_model_refusing_a_plain_parameter_teaches_that_parameter(
    name: str, quote: str, tail: str, upper: bool, end: str
) -> None:
    text = f"{quote.format(name)} is {tail}{end}"
    text = text[0].upper() + text[1:] if upper else text
    sent = body(**{name: 0.5}, top_k=5) if name != "top_k" else body(top_k=5, temperature=0.2)
    refusal = classify(text, sent, "claude-x")
    assert refusal.kind is RefusalKind.MODEL_PARAMETER
    assert refusal.fact == Attribution(
        f"parameters.{name}", False, f"a 400 from claude-x refused {name}"
    )


@pytest.mark.parametrize("name", ["stream", "metadata", "system"])
def test_keys_that_carry_the_conversation_or_transport_are_never_learned(name: str) -> None:
    sent = body(**{name: True if name == "stream" else {"user_id": "u"}})
    assert classify(f"`{name}` is deprecated for this model.", sent, "claude-x").fact is None


def test_a_parameter_refusal_without_the_model_teaches_nothing() -> None:
    # Names temperature, but says nothing about the model refusing it.
    refusal = classify("temperature: Input should be a valid number", body(temperature="x"), "m")
    assert refusal.fact is None and refusal.kind is RefusalKind.UNKNOWN


@pytest.mark.parametrize(
    ("sent", "where"),
    [
        (WITH_URL_IMAGE, "messages.0.content.1"),
        (WEB_FETCH, "tools.0"),
        (
            body(mcp_servers=[{"type": "url", "url": "https://mcp.test", "name": "m"}]),
            "mcp_servers",
        ),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "t", "content": [IMAGE]}
                        ],
                    }
                ]
            ),
            "messages.0.content.0.content.0",
        ),
        (WITH_BIG_IMAGE, None),
        (body(), None),
    ],
)
def test_where_a_body_uses_url_sources(sent: dict[str, Any], where: str | None) -> None:
    assert uses_account_feature(sent, "url_sources") == where
