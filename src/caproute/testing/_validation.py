"""Request validation: the fake rejects what the real API would reject.

This is the point of the fake: a routing bug (a PDF sent to a model without
``pdf_input``, ``budget_tokens`` left above a clamped ``max_tokens``, sampling
parameters forwarded under API version 2026-10-21...) shows up as a failed request
in the test that caused it.

The rules are written from the API's documented behaviour (the documentation's
feature pages, "Versions", "Batch processing" and "Errors"), deliberately
**independently** of `caproute._core`: if the router and the fake shared a helper, a
bug in it would make both sides agree and hide it.

The catalogue is the truth here, so an absent capability key means *unsupported*
(unlike the router, which must treat absent as unknown). One concession to older
catalogues: without a ``server_tools`` object, code-execution tools fall back to
the top-level ``code_execution`` key (SDK 0.x meaning) and web-search tools, which
had no key then, are allowed. Likewise ``compaction`` is gated by a beta-only family
(a beta feature, sent with its ``anthropic-beta`` header): checked where the catalogue
states it, allowed where it doesn't.

Every check raises `ApiError`. The API's wording is not a contract, so the fake can
word its refusals three ways (`WORDINGS`, ``FakeAnthropic(wording=...)``):

* ``api`` (the default): shaped like the texts users quote from the real API — a
  parameter path, the value in quotes, few words (``output_config.effort 'max' is not
  supported on this model``, ``"thinking.type.enabled" is not supported for this
  model; ...``, ``This model does not support the effort parameter.``,
  ``` `temperature` may only be set to 1 when thinking is enabled```);
* ``terse``: no path, the feature's words and the model id;
* ``verbose``: a longer sentence, words in another order.

Payload limits, checked after the model's capabilities (texts as users quote them):
a base64 image over 5 MB (``messages.0.content.2.image.source.base64: image exceeds 5
MB maximum: 15908784 bytes > 5242880 bytes``, anthropics/claude-code#10612), a base64
PDF over 100 pages (``messages.38.content.0.pdf.source.base64.data: A maximum of 100
PDF pages may be provided.``, anthropics/claude-code#6231; pages counted as the PDF's
``/Type /Page`` objects) and more than 100 images and documents in one request (``too
many images and documents: 104 + 1 > 100``, anthropics/claude-code#23392). Any model
gives them: they are about the content, not the model.

Rules no capability key states, from the API's documented behaviour ("Extended thinking" page):
with thinking on (``enabled`` or ``adaptive``, or on a model that can't turn thinking
off, whatever the request says), ``temperature`` must be absent or 1, ``top_k`` absent
and ``top_p`` within 0.95–1, and ``tool_choice`` may not force a tool.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal, TypeAlias

from ._catalogue import Catalogue, lifecycle_of
from ._wire import ApiError

__all__ = [
    "VERSION_2026",
    "WORDINGS",
    "Wording",
    "check_api_version",
    "resolve_model",
    "validate_params",
]

Endpoint: TypeAlias = Literal["messages", "count_tokens", "batch"]
Wording: TypeAlias = Literal["api", "terse", "verbose"]
WORDINGS: tuple[Wording, ...] = ("api", "terse", "verbose")

VERSION_2023 = "2023-06-01"
VERSION_2026 = "2026-10-21"
KNOWN_VERSIONS = frozenset({"2023-01-01", VERSION_2023, VERSION_2026})

_THINKING_TYPES = frozenset({"enabled", "adaptive", "disabled", "between_tools"})
_THINKING_ON = frozenset({"enabled", "adaptive"})
_EFFORT_LEVELS = frozenset({"low", "medium", "high", "xhigh", "max"})
_SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
_ROLES = frozenset({"user", "assistant", "system"})
_MIN_THINKING_BUDGET = 1024
MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""The largest base64 image the API takes (docs: vision, "5MB per image" via the API)."""
MAX_MEDIA = 100
"""At most this many images and documents in one request."""
MAX_PDF_PAGES = 100
"""At most this many PDF pages in one request (docs: PDF support, 200k-window models)."""
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def _invalid(message: str) -> ApiError:
    return ApiError(400, message, "invalid_request_error")


# -- headers and model lookup ----------------------------------------------------------------


def check_api_version(version: str | None) -> str:
    """The request's ``anthropic-version``; missing or unknown is a 400, as in the API."""
    if version is None:
        raise _invalid("anthropic-version: header is required")
    if version not in KNOWN_VERSIONS:
        raise _invalid(f"anthropic-version: {version!r} is not a valid version")
    return version


def resolve_model(catalogue: Catalogue, body: Mapping[str, Any]) -> dict[str, Any]:
    """The catalogue entry the body's ``model`` names; 404 when unknown or retired."""
    name = body.get("model")
    if name is None:
        raise _invalid("model: Field required")
    if not isinstance(name, str):
        raise _invalid("model: Input should be a valid string")
    model = catalogue.get(name)
    if model is None:
        raise ApiError(404, f"model: {name}", "not_found_error")
    if lifecycle_of(model) == "retired":
        raise ApiError(404, f"model: {name} has been retired", "not_found_error")
    return model


# -- capability lookup -----------------------------------------------------------------------


def supports(model: Mapping[str, Any], path: str) -> bool:
    """True only if the leaf at the dotted `path` exists and says supported.

    A stated leaf is read on its own (``anthropic.types.ModelInfo``: each key is read
    independently; ``thinking.types.disabled`` is true on a model with no thinking at all). A leaf
    that isn't there is unsupported: the API leaves out what a model predates.
    """
    node: Any = model.get("capabilities")
    for part in path.split("."):
        if not isinstance(node, dict):
            return False
        node = node.get(part)
    return isinstance(node, dict) and node.get("supported") is True


def _require(
    model: Mapping[str, Any], path: str, where: str, what: str, wording: Wording = "api"
) -> None:
    if supports(model, path):
        return
    model_id = model["id"]
    if wording == "terse":
        raise _invalid(f"{what} isn't available for {model_id}")
    if wording == "verbose":
        raise _invalid(
            f"The model {model_id} cannot accept requests that use {what}. "
            "Remove it or choose another model."
        )
    raise _invalid(f"{where}: {what} is not supported on this model.")


# -- the body --------------------------------------------------------------------------------


def validate_params(
    body: Mapping[str, Any],
    model: Mapping[str, Any],
    *,
    api_version: str,
    endpoint: Endpoint,
    wording: Wording = "api",
) -> None:
    """Raise `ApiError` (400) if `body` is not a valid request for `model`.

    Args:
        body: A Messages / count_tokens body, or one batch item's ``params``.
        model: The catalogue entry (from `resolve_model`).
        api_version: The request's ``anthropic-version``.
        endpoint: Which endpoint the body was sent to: count_tokens needs no
            ``max_tokens``; batch items also need the ``batch`` capability.
        wording: How refusals are worded (see the module docstring).
    """
    _check_messages(body)
    if endpoint != "count_tokens":
        _check_max_tokens(body, model, wording)
    if api_version >= VERSION_2026:
        _check_version_2026(body)
    _check_thinking(body, model, wording)
    _check_effort(body, model, wording)
    _check_content(body, model, wording)
    _check_structured_outputs(body, model, wording)
    _check_tools(body, model, wording)
    _check_context_management(body, model, wording)
    _check_compaction(body, model, wording)
    if endpoint == "batch":
        _check_batch(body, model, wording)


def _check_messages(body: Mapping[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise _invalid("messages: Field required")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages: Input should be a non-empty list")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _invalid(f"messages.{i}: Input should be an object")
        if msg.get("role") not in _ROLES:
            raise _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = msg.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise _invalid(f"messages.{i}.content.{j}: Input should be a content block")
        elif not isinstance(content, str):
            raise _invalid(f"messages.{i}.content: Input should be a string or a list of blocks")


def _check_max_tokens(body: Mapping[str, Any], model: Mapping[str, Any], wording: Wording) -> None:
    if "max_tokens" not in body:
        raise _invalid("max_tokens: Field required")
    value = body["max_tokens"]
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid("max_tokens: Input should be a valid integer")
    # 0 is allowed: it only warms the prompt cache ("Prompt caching" page).
    if value < 0:
        raise _invalid("max_tokens: Input should be greater than or equal to 0")
    ceiling = model.get("max_tokens")
    if isinstance(ceiling, int) and value > ceiling:
        if wording == "terse":
            raise _invalid(f"{model['id']} allows at most {ceiling} output tokens")
        if wording == "verbose":
            raise _invalid(
                f"The requested maximum of {value} output tokens is above what {model['id']} "
                f"can produce ({ceiling})."
            )
        raise _invalid(
            f"max_tokens: {value} > {ceiling}, which is the maximum allowed number of "
            f"output tokens for {model['id']}"
        )


def _check_version_2026(body: Mapping[str, Any]) -> None:
    """The two breaking changes of API version 2026-10-21 ("Versions" page)."""
    for name in _SAMPLING_PARAMS:
        if name in body:
            raise _invalid(f"{name}: Extra inputs are not permitted")
    for path, block, role, parent in _blocks(body):
        if role == "assistant" and parent is None and block["type"] == "document":
            raise _invalid(f"{path}: document blocks are not allowed in assistant messages")
        if (
            role == "user"
            and parent in (None, "search_result")
            and block["type"] == "text"
            and block.get("citations")
        ):
            raise _invalid(f"{path}.citations: citations are not allowed in user messages")


def _check_thinking(body: Mapping[str, Any], model: Mapping[str, Any], wording: Wording) -> None:
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in _THINKING_TYPES:
            raise _invalid(
                "thinking.type: Input should be 'enabled', 'adaptive', 'disabled' or "
                "'between_tools'"
            )
        kind = thinking["type"]
        if wording == "api" and not supports(model, f"thinking.types.{kind}"):
            hint = (
                ' Use "thinking.type.adaptive" with "output_config.effort" instead.'
                if supports(model, "thinking.types.adaptive")
                else ""
            )
            raise _invalid(f'"thinking.type.{kind}" is not supported for this model.{hint}')
        _require(
            model, f"thinking.types.{kind}", "thinking.type", f"thinking type {kind!r}", wording
        )
        if kind == "enabled":
            _check_thinking_budget(thinking, body.get("max_tokens"))
    if not _thinking_on(body, model):
        return
    tool_choice = body.get("tool_choice")
    if isinstance(tool_choice, dict) and tool_choice.get("type") in ("any", "tool"):
        raise _invalid("tool_choice: Thinking may not be enabled when tool_choice forces tool use.")
    _check_sampling_with_thinking(body, wording)


def _thinking_on(body: Mapping[str, Any], model: Mapping[str, Any]) -> bool:
    """Thinking ``enabled``/``adaptive``, or a model that can't turn it off ("Extended thinking";
    ``thinking.types.disabled`` is false exactly when thinking cannot be turned off)."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        return thinking.get("type") in _THINKING_ON
    caps = model.get("capabilities")
    types = caps.get("thinking", {}).get("types") if isinstance(caps, dict) else None
    disabled = types.get("disabled") if isinstance(types, dict) else None
    return (
        supports(model, "thinking")
        and isinstance(disabled, dict)
        and disabled.get("supported") is False
    )


def _check_sampling_with_thinking(body: Mapping[str, Any], wording: Wording) -> None:
    """With thinking on: temperature only 1, no top_k, top_p within 0.95-1 ("Extended thinking")."""
    temperature = body.get("temperature", 1)
    if "temperature" in body and (isinstance(temperature, bool) or temperature != 1):
        if wording == "api":
            raise _invalid("`temperature` may only be set to 1 when thinking is enabled.")
        raise _invalid("temperature is not supported when thinking is enabled")
    if "top_k" in body:
        if wording == "verbose":
            raise _invalid("Requests with thinking enabled cannot set top_k; remove it.")
        raise _invalid("`top_k` is not supported when thinking is enabled.")
    top_p = body.get("top_p")
    if "top_p" in body and (
        isinstance(top_p, bool) or not isinstance(top_p, int | float) or not 0.95 <= top_p <= 1
    ):
        raise _invalid("`top_p` must be between 0.95 and 1 when thinking is enabled.")


def _check_thinking_budget(thinking: Mapping[str, Any], max_tokens: Any) -> None:
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise _invalid("thinking.enabled.budget_tokens: Field required")
    if budget < _MIN_THINKING_BUDGET:
        raise _invalid(
            f"thinking.enabled.budget_tokens: Input should be greater than or equal to "
            f"{_MIN_THINKING_BUDGET}"
        )
    if isinstance(max_tokens, int) and budget >= max_tokens:
        raise _invalid("max_tokens: must be greater than thinking.budget_tokens")


def _check_effort(body: Mapping[str, Any], model: Mapping[str, Any], wording: Wording) -> None:
    config = body.get("output_config")
    if not isinstance(config, dict) or config.get("effort") is None:
        return
    level = config["effort"]
    if level not in _EFFORT_LEVELS:
        raise _invalid(
            "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
        )
    if wording == "api" and not supports(model, f"effort.{level}"):
        if not supports(model, "effort"):
            raise _invalid("This model does not support the effort parameter.")
        raise _invalid(f"output_config.effort {level!r} is not supported on this model.")
    _require(model, f"effort.{level}", "output_config.effort", f"effort level {level!r}", wording)


def _check_content(body: Mapping[str, Any], model: Mapping[str, Any], wording: Wording) -> None:
    images = documents = pages = 0
    for path, block, _role, _parent in _blocks(body):
        kind = block["type"]
        if kind == "image":
            images += 1
            _require(model, "image_input", path, "image input", wording)
            _check_image_size(path, block.get("source"))
        if kind == "document":
            documents += 1
        if kind == "document" and _is_pdf(block.get("source")):
            _require(model, "pdf_input", path, "PDF input", wording)
            pages += _pdf_pages(block.get("source"))
            if pages > MAX_PDF_PAGES:
                raise _invalid(
                    f"{path}.pdf.source.base64.data: A maximum of {MAX_PDF_PAGES} PDF pages "
                    "may be provided."
                )
        if kind in ("document", "search_result") and _citations_on(block):
            _require(model, "citations", f"{path}.citations", "citations", wording)
    if images + documents > MAX_MEDIA:
        raise _invalid(f"too many images and documents: {images} + {documents} > {MAX_MEDIA}")


def _pdf_pages(source: Any) -> int:
    """The pages of a base64 PDF (its ``/Type /Page`` objects); 0 when not readable."""
    if not isinstance(source, dict) or source.get("type") != "base64":
        return 0
    data = source.get("data")
    if not isinstance(data, str):
        return 0
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return 0
    return len(_PDF_PAGE.findall(raw))


def _check_image_size(path: str, source: Any) -> None:
    """A base64 image over 5 MB (decoded) is refused, whatever the model."""
    if not isinstance(source, dict) or source.get("type") != "base64":
        return
    data = source.get("data")
    if not isinstance(data, str):
        return
    size = len(data) * 3 // 4 - data[-2:].count("=")
    if size > MAX_IMAGE_BYTES:
        raise _invalid(
            f"{path}.image.source.base64: image exceeds 5 MB maximum: "
            f"{size} bytes > {MAX_IMAGE_BYTES} bytes"
        )


def _is_pdf(source: Any) -> bool:
    """Base64 PDFs, URL documents and Files API documents need ``pdf_input`` (§3.3)."""
    if not isinstance(source, dict):
        return False
    kind = source.get("type")
    if kind == "base64":
        return source.get("media_type") == "application/pdf"
    return kind in ("url", "file")


def _citations_on(holder: Mapping[str, Any]) -> bool:
    citations = holder.get("citations")
    return isinstance(citations, dict) and citations.get("enabled") is True


def _check_structured_outputs(
    body: Mapping[str, Any], model: Mapping[str, Any], wording: Wording
) -> None:
    config = body.get("output_config")
    what = "structured outputs"
    if isinstance(config, dict) and config.get("format") is not None:
        _require(model, "structured_outputs", "output_config.format", what, wording)
    if body.get("output_format") is not None:
        _require(model, "structured_outputs", "output_format", what, wording)
    for i, tool in enumerate(_tools(body)):
        if tool.get("strict") is True:
            _require(model, "structured_outputs", f"tools.{i}.strict", "strict tool use", wording)


def _check_tools(body: Mapping[str, Any], model: Mapping[str, Any], wording: Wording) -> None:
    caps = model.get("capabilities")
    new_shape = isinstance(caps, dict) and "server_tools" in caps
    for i, tool in enumerate(_tools(body)):
        kind = tool.get("type")
        where = f"tools.{i}.type"
        if isinstance(kind, str) and kind.startswith("code_execution_"):
            path = "server_tools.code_execution" if new_shape else "code_execution"
            _require(model, path, where, f"tool {kind!r}", wording)
        if isinstance(kind, str) and kind.startswith("web_search_") and new_shape:
            _require(model, "server_tools.web_search", where, f"tool {kind!r}", wording)
        if kind is not None and str(kind).startswith("web_fetch_") and _citations_on(tool):
            _require(model, "citations", f"tools.{i}.citations", "citations", wording)
        callers = tool.get("allowed_callers")
        if isinstance(callers, list) and any(
            isinstance(c, str) and c.startswith("code_execution_") for c in callers
        ):
            _require(
                model,
                "code_execution",
                f"tools.{i}.allowed_callers",
                "programmatic tool calling",
                wording,
            )


def _required_type(value: object, where: str) -> str:
    """The ``type`` of the object at `where` (the API's 400 when it has none)."""
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(kind, str):
        raise _invalid(f"{where}.type: Field required")
    return kind


def _check_context_management(
    body: Mapping[str, Any], model: Mapping[str, Any], wording: Wording
) -> None:
    management = body.get("context_management")
    if management is None:
        return
    edits = management.get("edits") if isinstance(management, dict) else None
    if not isinstance(edits, list):
        raise _invalid("context_management.edits: Input should be a valid list")
    for i, edit in enumerate(edits):
        kind = _required_type(edit, f"context_management.edits.{i}")
        _require(
            model,
            f"context_management.{kind}",
            f"context_management.edits.{i}.type",
            f"context management edit {kind!r}",
            wording,
        )


def _check_compaction(body: Mapping[str, Any], model: Mapping[str, Any], wording: Wording) -> None:
    """Top-level ``compaction`` (beta, "Compaction" page): one ``type``, never together with
    ``context_management``, gated by ``capabilities.compaction.<type>`` where stated."""
    compaction = body.get("compaction")
    if compaction is None:
        return
    kind = _required_type(compaction, "compaction")
    if body.get("context_management") is not None:
        raise _invalid("compaction: cannot be combined with context_management")
    caps = model.get("capabilities")
    if isinstance(caps, dict) and isinstance(caps.get("compaction"), dict):
        _require(model, f"compaction.{kind}", "compaction.type", f"compaction {kind!r}", wording)


def _check_batch(body: Mapping[str, Any], model: Mapping[str, Any], wording: Wording) -> None:
    if body.get("stream"):
        raise _invalid("stream: streaming is not supported in Message Batches")
    billing = body.get("billing_policy")
    if isinstance(billing, dict) and billing.get("bill_to") == "user_profile":
        # "Batch processing" page: billing a user profile errors a batch request.
        raise _invalid("billing_policy.bill_to: 'user_profile' is not supported in Message Batches")
    _require(model, "batch", "model", "the Message Batches API", wording)


# -- walking the body ------------------------------------------------------------------------


def _tools(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [t for t in tools if isinstance(t, dict)]


def _blocks(body: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any], str, str | None]]:
    """Every content block, nested ones included: (path, block, message role, parent type).

    Nesting covers ``tool_result`` and ``search_result`` content and documents whose
    source is a content list (images can hide in all three).
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("content"), list):
            continue
        role = str(msg.get("role"))
        yield from _walk(msg["content"], f"messages.{i}.content", role, None)


def _walk(
    blocks: list[Any], path: str, role: str, parent: str | None
) -> Iterator[tuple[str, dict[str, Any], str, str | None]]:
    for j, block in enumerate(blocks):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            continue
        here = f"{path}.{j}"
        yield here, block, role, parent
        if isinstance(block.get("content"), list):
            yield from _walk(block["content"], f"{here}.content", role, block["type"])
        source = block.get("source")
        if isinstance(source, dict) and isinstance(source.get("content"), list):
            yield from _walk(source["content"], f"{here}.source.content", role, block["type"])
