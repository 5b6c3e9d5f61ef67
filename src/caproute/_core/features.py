"""What a request needs: one pass over a Messages body, no copies, no decoding.

`detect` turns a request body into `RequestNeeds`: the capability paths the body
needs (``pdf_input``, ``effort.max``, ``thinking.types.enabled``...), each with the
JSON path(s) where it came from so a decision can explain itself, plus the numbers the
rule table compares with a model's limits (``max_tokens``, the thinking budget, an
input-token estimate).

Detection is model-independent on purpose: it says what the body *asks for*; the
selection step asks the registry which model has it. Two consequences:

* Unknown block types, unknown fields and odd values (a string where a list was
  expected) need nothing. The API will judge them; caproute never guesses.
* Large strings (base64 images and PDFs) are measured with ``len`` and never decoded
  or copied, so a 2 MB body costs the same as a small one with the same structure.

The input-token estimate (`RequestNeeds.input_tokens`) is deliberately cheap and rough.
It only has to catch requests that obviously overflow a context window:

* text (message strings, ``text`` blocks, ``system``, thinking, tool results,
  plain-text documents, tool names and descriptions): ``len(chars) // 4``; UTF-8 is not
  needed, characters are a good enough proxy;
* every message: ``+4`` for role and framing; every tool definition: ``+100`` for its
  schema, which is not walked; a ``tool_use`` input: its top-level string values
  ``// 4`` plus ``+20``; any other block: ``+10``;
* an image: a flat ``1_600`` tokens (about a 1.15 megapixel image, the API's resize
  target), whatever its encoding;
* a base64 PDF: ``len(data) * 3 // 4`` bytes, one page per ``PDF_BYTES_PER_PAGE``
  (50 kB, rounded up), ``PDF_TOKENS_PER_PAGE`` (2 000: page text plus the page image)
  per page. A PDF by URL or file id (size unknown) counts as one page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .._types import Endpoint
from .request_needs import NOT_A_SCALAR, JSONPath, Parameters, RequestNeeds

__all__ = [
    "IMAGE_TOKENS",
    "PDF_BYTES_PER_PAGE",
    "PDF_TOKENS_PER_PAGE",
    "SAMPLING_PARAMS",
    "Scan",
    "detect",
    "scan",
    "shape_problem",
]

_new_tuple: Final = tuple.__new__


IMAGE_TOKENS = 1_600
"""Estimated tokens for one image, whatever its size or encoding."""
PDF_BYTES_PER_PAGE = 50_000
"""Assumed bytes per PDF page when estimating pages from the base64 length."""
PDF_TOKENS_PER_PAGE = 2_000
"""Estimated tokens per PDF page (its text plus the page rendered as an image)."""

_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD = 4
_TOOL_DEFINITION_TOKENS = 100
_TOOL_USE_OVERHEAD = 20
_OTHER_BLOCK_TOKENS = 10

SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
"""Top-level sampling parameters, removed from the API in version 2026-10-21."""

# `document` sources that carry a PDF ("PDF support" page): text and content sources don't.
_PDF_SOURCE_TYPES = frozenset({"base64", "url", "file"})
# A block path grows by two keys per nesting level (``..., "content", k``): 64 levels.
_MAX_NESTED_PATH = 4 + 2 * 64


def shape_problem(body: Any, endpoint: Endpoint = "messages") -> str | None:
    """Why `body` is not a Messages body caproute can route, or `None` when it is.

    The answer names the JSON path at fault, so a passthrough decision can say it.
    """
    if not isinstance(body, dict):
        return f"the body is not a JSON object (it is a {_json_type(body)})"
    if not isinstance(body.get("model"), str):
        return "model: missing or not a string"
    if not isinstance(body.get("messages"), list):
        return "messages: missing or not a list"
    if endpoint != "count_tokens":
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            return "max_tokens: missing or not an integer"
    return None


def detect(body: Mapping[str, Any], *, batch: bool = False) -> RequestNeeds:
    """What `body` needs. Call `shape_problem` first: this assumes a Messages shape.

    Args:
        body: A Messages (or count_tokens) body; never modified.
        batch: True for the ``params`` of a Message Batch request, which needs ``batch``.

    Returns:
        The needs, with the location of every capability use.
    """
    return scan(body, batch=batch).needs()


def scan(body: Mapping[str, Any], *, batch: bool = False) -> Scan:
    """The detection pass itself, before it is frozen into `RequestNeeds`.

    The router's fast path reads the scan directly: building the frozen `RequestNeeds`
    (a dozen fields, ~2 µs) is only worth it when selection has to run.
    """
    result = Scan()
    if batch:
        result.need("batch", ())
    # A plain chat body has none of these keys: skip `top_level`'s eight lookups (~0.3 µs).
    if not _TOP_LEVEL_KEYS.isdisjoint(body):
        result.top_level(body)
    messages = body.get("messages")
    if isinstance(messages, list):
        result.messages(messages)
    result.model = model = body.get("model") or ""
    max_tokens = body.get("max_tokens")
    result.max_tokens = max_tokens = max_tokens if type(max_tokens) is int else None
    # Almost no body sets a sampling parameter: three `in` tests beat a generator.
    if "temperature" in body or "top_p" in body or "top_k" in body:
        result.sampling = tuple((p, _scalar(body[p])) for p in SAMPLING_PARAMS if p in body)
    # Built here rather than by a method: this runs for every request. `tuple.__new__`
    # directly, as a named tuple's own `__new__` is a Python function (same value).
    result.params = _new_tuple(
        Parameters,
        (
            model,
            max_tokens,
            result.thinking_type,
            result.budget_tokens,
            result.effort,
            result.sampling,
            result.tool_choice_type,
            result.thinking_history is not None,
            bool(result.assistant_documents or result.user_text_citations),
            _batch_refused(body) if batch else None,
        ),
    )
    result.input_tokens = result.chars // _CHARS_PER_TOKEN + result.tokens
    return result


def read(body: Any, endpoint: Endpoint, *, batch: bool = False) -> Scan | str:
    """What the engine reads of a body, in one call: why it is not a Messages body
    (`shape_problem`; a batch item is one), else its `scan`."""
    problem = shape_problem(body, "messages" if batch else endpoint)
    return problem if problem is not None else scan(body, batch=batch)


def _batch_refused(body: Mapping[str, Any]) -> str | None:
    """What a Message Batch item carries that the API errors in a batch (see
    `Parameters.batch_refused`)."""
    if body.get("stream") is True:
        return "stream"
    billing = body.get("billing_policy")
    if isinstance(billing, dict) and billing.get("bill_to") == "user_profile":
        return "billing_policy.bill_to"
    return None


def _scalar(value: Any) -> Any:
    """`value` when it is a JSON scalar (hashable), else `NOT_A_SCALAR`."""
    return value if value is None or isinstance(value, str | int | float) else NOT_A_SCALAR


_TOP_LEVEL_KEYS: Final = frozenset(
    {
        "thinking",
        "output_config",
        "output_format",
        "tools",
        "tool_choice",
        "context_management",
        "compaction",
        "system",
    }
)
"""Every key `Scan.top_level` reads (keep the two in step; a test checks it)."""


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


# The roles `Scan.block` reads: a message's own role for its direct blocks (and the text
# of a `search_result`); `user-nested` / `nested` for blocks inside a tool result or a
# content document, which are neither "directly inside" an assistant turn (documents)
# nor a user turn's own text (citations): the 2026-10-21 version names only those two
# shapes ("Versions" page).
_USER_ROLES: Final = frozenset({"user", "user-nested"})


def _inside(role: str) -> str:
    """The role of blocks nested in a tool result or a content document."""
    return "user-nested" if role in _USER_ROLES else "nested"


def _citations_enabled(block: Mapping[str, Any]) -> bool:
    citations = block.get("citations")
    return isinstance(citations, dict) and citations.get("enabled") is True


class Scan:
    """The mutable state of one detection pass (kept off the frozen result).

    Its fields mirror `RequestNeeds` (`caps` is `capabilities`, `chars` and `tokens`
    add up to `input_tokens`); `needs()` freezes it.
    """

    __slots__ = (
        "model",
        "max_tokens",
        "sampling",
        "caps",
        "chars",
        "tokens",
        "thinking_type",
        "budget_tokens",
        "effort",
        "tool_choice_type",
        "thinking_history",
        "assistant_documents",
        "user_text_citations",
        "params",
        "input_tokens",
    )

    params: Parameters
    """The parameters found (set by `scan` once the pass is done)."""
    input_tokens: int
    """The input-token estimate (see the module docstring), set by `scan` at the end."""

    def __init__(self) -> None:
        self.model = ""
        self.max_tokens: int | None = None
        self.sampling: tuple[tuple[str, Any], ...] = ()
        self.caps: dict[str, tuple[JSONPath, ...]] = {}
        self.chars = 0
        """Characters of text seen; divided by 4 once at the end."""
        self.tokens = 0
        """Tokens estimated directly (images, PDFs, flat per-item costs)."""
        self.thinking_type: str | None = None
        self.budget_tokens: int | None = None
        self.effort: str | None = None
        self.tool_choice_type: str | None = None
        self.thinking_history: JSONPath | None = None
        # Tuples, grown by concatenation: nearly always empty, so no list per request.
        self.assistant_documents: tuple[JSONPath, ...] = ()
        self.user_text_citations: tuple[JSONPath, ...] = ()

    def needs(self) -> RequestNeeds:
        """The frozen result."""
        return RequestNeeds(
            params=self.params,
            capabilities=self.caps,
            thinking_history=self.thinking_history,
            assistant_documents=self.assistant_documents,
            user_text_citations=self.user_text_citations,
            input_tokens=self.input_tokens,
        )

    def need(self, capability: str, where: JSONPath) -> None:
        found = self.caps.get(capability)
        self.caps[capability] = (where,) if found is None else (*found, where)

    # -- top-level parameters --------------------------------------------------------------

    def top_level(self, body: Mapping[str, Any]) -> None:
        thinking = body.get("thinking")
        if isinstance(thinking, dict):
            kind = thinking.get("type")
            if isinstance(kind, str):
                self.thinking_type = kind
                self.need(f"thinking.types.{kind}", ("thinking", "type"))
            budget = thinking.get("budget_tokens")
            if type(budget) is int:
                self.budget_tokens = budget
        output_config = body.get("output_config")
        if isinstance(output_config, dict):
            effort = output_config.get("effort")
            if isinstance(effort, str):
                self.effort = effort
                self.need(f"effort.{effort}", ("output_config", "effort"))
            if output_config.get("format") is not None:
                self.need("structured_outputs", ("output_config", "format"))
        if body.get("output_format") is not None:
            self.need("structured_outputs", ("output_format",))
        tools = body.get("tools")
        if isinstance(tools, list):
            self.tools(tools)
        tool_choice = body.get("tool_choice")
        if isinstance(tool_choice, dict) and isinstance(tool_choice.get("type"), str):
            self.tool_choice_type = tool_choice["type"]
        context_management = body.get("context_management")
        if context_management is not None:  # rare: skip the call
            self.context_management(context_management)
        compaction = body.get("compaction")
        if isinstance(compaction, dict):
            kind = compaction.get("type")
            self.need(
                f"compaction.{kind}" if isinstance(kind, str) else "compaction", ("compaction",)
            )
        system = body.get("system")
        if isinstance(system, str):
            self.chars += len(system)
        elif isinstance(system, list):
            for j, block in enumerate(system):
                if isinstance(block, dict):
                    self.block(block, ("system", j), "system")

    def tools(self, tools: list[Any]) -> None:
        chars = tokens = 0  # local counters, added once at the end (as in `messages`)
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                continue
            tokens += _TOOL_DEFINITION_TOKENS
            kind = tool.get("type")
            if isinstance(kind, str):
                # Server tools are versioned by suffix (`web_search_20260318`); the
                # capability is per family (the server tools' pages: "Web search tool"...).
                if kind.startswith("code_execution_"):
                    self.need("server_tools.code_execution", ("tools", i))
                elif kind.startswith("web_search_"):
                    self.need("server_tools.web_search", ("tools", i))
                elif kind.startswith("web_fetch_") and _citations_enabled(tool):
                    self.need("citations", ("tools", i))
            if tool.get("strict") is True:
                self.need("structured_outputs", ("tools", i, "strict"))
            callers = tool.get("allowed_callers")
            if isinstance(callers, list) and any(
                isinstance(c, str) and c.startswith("code_execution_") for c in callers
            ):
                # SDK 2.x meaning of `capabilities.code_execution`: programmatic tool calling.
                self.need("code_execution", ("tools", i, "allowed_callers"))
            # Unrolled (no loop over the two keys): this runs for every tool of every request.
            name, description = tool.get("name"), tool.get("description")
            if isinstance(name, str):
                chars += len(name)
            if isinstance(description, str):
                chars += len(description)
        self.chars += chars
        self.tokens += tokens

    def context_management(self, value: Any) -> None:
        if not isinstance(value, dict):
            return
        edits = value.get("edits")
        if not isinstance(edits, list):
            return
        for j, edit in enumerate(edits):
            if isinstance(edit, dict) and isinstance(edit.get("type"), str):
                self.need(f"context_management.{edit['type']}", ("context_management", "edits", j))

    # -- content ---------------------------------------------------------------------------

    def messages(self, messages: list[Any]) -> None:
        """Every message and its blocks: the hot loop of detection.

        The block kinds of a typical agent turn (text, tool_use, string tool results,
        thinking) are handled inline with local counters, and a block's path is built
        only when something is recorded about it: this loop runs for every message
        of every request.
        """
        chars = 0
        tokens = 0
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            tokens += _MESSAGE_OVERHEAD
            content = message.get("content")
            if isinstance(content, str):
                chars += len(content)
                continue
            if not isinstance(content, list):
                continue
            role = message.get("role")
            for j, block in enumerate(content):
                if not isinstance(block, dict):
                    continue
                kind = block.get("type")
                if kind == "text":
                    text = block.get("text")
                    if isinstance(text, str):
                        chars += len(text)
                    # Role first: assistant text blocks (most of an agent turn) skip a lookup.
                    if (
                        role == "user"
                        and (citations := block.get("citations"))
                        and isinstance(citations, list)
                    ):
                        self.user_text_citations += (("messages", i, "content", j),)
                elif kind == "tool_use":
                    tokens += _TOOL_USE_OVERHEAD
                    tool_input = block.get("input")
                    if isinstance(tool_input, dict):
                        for value in tool_input.values():
                            if isinstance(value, str):
                                chars += len(value)
                elif kind == "tool_result" and isinstance(text := block.get("content"), str):
                    chars += len(text)
                elif kind == "thinking":
                    if self.thinking_history is None:
                        self.thinking_history = ("messages", i, "content", j)
                    text = block.get("thinking")
                    if isinstance(text, str):
                        chars += len(text)
                else:
                    self.block(
                        block, ("messages", i, "content", j), role if isinstance(role, str) else ""
                    )
        self.chars += chars
        self.tokens += tokens

    def block(self, block: Mapping[str, Any], where: JSONPath, role: str) -> None:
        """One content block (and the blocks nested in it)."""
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str):
                self.chars += len(text)
            citations = block.get("citations")
            if role == "user" and isinstance(citations, list) and citations:
                self.user_text_citations += (where,)
        elif kind == "image":
            self.need("image_input", where)
            self.tokens += IMAGE_TOKENS
        elif kind == "document":
            self.document(block, where, role)
        elif kind == "tool_result":
            self.nested(block.get("content"), where, _inside(role))
        elif kind == "search_result":
            if _citations_enabled(block):
                self.need("citations", where)
            # Its text blocks count as the user turn's own ("Versions" page: citations in a
            # user turn, "directly or inside search_result").
            self.nested(block.get("content"), where, "user" if role in _USER_ROLES else "nested")
        elif kind == "thinking" or kind == "redacted_thinking":
            if self.thinking_history is None:
                self.thinking_history = where
            text = block.get("thinking")
            if isinstance(text, str):
                self.chars += len(text)
        elif kind == "tool_use":
            self.tokens += _TOOL_USE_OVERHEAD
            tool_input = block.get("input")
            if isinstance(tool_input, dict):
                for value in tool_input.values():
                    if isinstance(value, str):
                        self.chars += len(value)
        else:
            self.tokens += _OTHER_BLOCK_TOKENS

    def nested(self, content: Any, where: JSONPath, role: str) -> None:
        """Blocks inside a ``tool_result`` / ``search_result`` / content document, read
        in `role` (the caller's `_inside` reading).

        Followed at most `_MAX_NESTED_PATH` deep: the API nests blocks two or three
        levels at most, and a body nested deeper than the stack must not crash detection.
        """
        if len(where) > _MAX_NESTED_PATH:
            return
        if isinstance(content, str):
            self.chars += len(content)
        elif isinstance(content, list):
            for k, inner in enumerate(content):
                if isinstance(inner, dict):
                    self.block(inner, (*where, "content", k), role)

    def document(self, block: Mapping[str, Any], where: JSONPath, role: str) -> None:
        if role == "assistant":
            self.assistant_documents += (where,)
        if _citations_enabled(block):
            self.need("citations", where)
        source = block.get("source")
        if not isinstance(source, dict):
            return
        source_type = source.get("type")
        if not isinstance(source_type, str):
            return  # a list or an object can't be tested against a set (or mean anything)
        if source_type in _PDF_SOURCE_TYPES and source.get("media_type", "application/pdf") == (
            "application/pdf"
        ):
            self.need("pdf_input", where)
            data = source.get("data")
            if source_type == "base64" and isinstance(data, str):
                pdf_bytes = len(data) * 3 // 4
                pages = -(-pdf_bytes // PDF_BYTES_PER_PAGE) or 1
                self.tokens += pages * PDF_TOKENS_PER_PAGE
            else:
                self.tokens += PDF_TOKENS_PER_PAGE
        elif source_type == "text":
            data = source.get("data")
            if isinstance(data, str):
                self.chars += len(data)
        elif source_type == "content":
            self.nested(source.get("content"), (*where, "source"), _inside(role))
