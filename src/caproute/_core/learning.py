"""Learning from the API's refusals: what a 400 is about, and what it teaches.

Not every refusal is about what a model can do. `classify` sorts one into a
`RefusalKind` — one classification for every path that reads the API's refusals (the
flow, hence the SDK middleware, the transports and the proxy; a batch's errored items
too) — and only the two *model* kinds teach a fact about the model that refused:

* ``model_capability``: names a capability the request used → (model, capability);
* ``model_parameter``: a model refusing a plain parameter ("`temperature` is
  deprecated for this model.") → (model, ``parameters.<name>``), or a ``max_tokens``
  limit below the one sent → the model's limit;
* ``organization``: the organization or account (URL sources turned off, billing,
  permission, workspace limits) → nothing about the model; one the flow can recognise
  again (`Refusal.account_feature`) is remembered per credential by the shell;
* ``payload``: the size or count of the content (an image over 5 MB, over 100 PDF
  pages, too much media, a prompt longer than the window, a request too large);
* ``shape``: a request any model would refuse as written;
* ``unknown``: none of the above can be told. The last three teach nothing.

The order of evidence: ``error.details.error_code`` (SDK 2.x: "branch on it rather than
on `message`"; `catalogue.REFUSAL_CODES`), then ``error.type`` (billing, permission, a
413: `catalogue.ERROR_TYPE_CLASSES`), then the message's words for content limits,
organizations and shapes (`catalogue.PAYLOAD_PHRASES`, `ORGANIZATION_PHRASES`,
`SHAPE_PHRASES`), and only then the parameter the message names.

The API's error *wording* is not a contract (users quote several phrasings of the same
refusal), but its messages name what they refuse: a parameter path
(``output_config.effort 'max' is not supported...``, ``messages.0.content.1: ...``) and
the feature's own words (``effort``, ``image``, ``web_search``...). The scoring scores
every parameter the refused request carried against the message on exactly those two
things, never on sentences:

* a location of the parameter in the body, written the way the API writes paths
  (dotted, or with ``[i]`` indices), found in the message: 4 points, 2 more when the
  value follows it (``thinking.type.enabled``, ``output_config.effort 'max'``);
* each of the feature's words found as a whole word (the catalogue's vocabulary for
  its family, and the leaf: ``max`` for ``effort.max``, ``web_search`` — as a prefix
  of ``web_search_20260318`` — for ``server_tools.web_search``): 2 points each.

The best score wins only if it is at least 2 and no other parameter scores the same:
an ambiguous message teaches nothing. What a win teaches:

* a capability use: the model lacks that capability. When the message names the
  parameter but not the value the request used (``This model does not support the
  effort parameter``), it is the whole family that is missing (``effort``), not one
  level; a content or tool location (``messages.0.content.1``, ``tools.2``) pins the
  use itself, and so does a message listing other values of the parameter
  (``output_config.effort: Input should be 'low', 'medium'...``: the value sent is
  what is refused);
* ``max_tokens``: the model's limit, when the message states a number below the one
  sent;
* any other top-level parameter (``temperature``, ``top_p``, ``speed``...), when the
  message says the *model* refuses it (`catalogue.MODEL_PARAMETER_PHRASES`): the fact
  ``parameters.<name>`` = ``False`` for that model; the rule table then strips it for
  that model only (policy key ``refused_parameters``). Keys that carry the conversation
  or the transport (`catalogue.NEVER_STRIPPED`) are never learned;
* anything else: nothing; the caller gets the API's answer unchanged.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .._types import Endpoint
from .catalogue import (
    ACCOUNT_FEATURES,
    ERROR_TYPE_CLASSES,
    KNOWN_LEAVES,
    MODEL_PARAMETER_PHRASES,
    NEVER_STRIPPED,
    ORGANIZATION_PHRASES,
    PARAMETER_PREFIX,
    PAYLOAD_PHRASES,
    REFUSAL_CODES,
    SHAPE_PHRASES,
    RefusalClass,
    family_of,
)
from .features import detect, shape_problem
from .request_needs import JSONPath

__all__ = [
    "Attribution",
    "Refusal",
    "RefusalKind",
    "attribute",
    "classify",
    "uses_account_feature",
]

_PATH_POINTS: Final = 4
_VALUE_AFTER_PATH_POINTS: Final = 2
_WORD_POINTS: Final = 2
_PARAMETER_POINTS: Final = 3
_MIN_SCORE: Final = 2

# Top-level keys whose content `detect` already reports as capability uses (or that
# every request carries): not "plain parameters".
_CAPABILITY_KEYS: Final = frozenset(
    {
        "model",
        "messages",
        "thinking",
        "output_config",
        "output_format",
        "tools",
        "context_management",
        "compaction",
    }
)

# Words for plain parameters whose name the API may not spell out.
_PARAMETER_WORDS: Final[Mapping[str, tuple[str, ...]]] = {
    "max_tokens": ("max_tokens", "output tokens", "max tokens", "maximum tokens"),
    "top_p": ("top_p", "top-p"),
    "top_k": ("top_k", "top-k"),
    "tool_choice": ("tool_choice", "tool choice"),
    "stop_sequences": ("stop_sequences", "stop sequences"),
}

# Leaves whose words an error may spell differently.
_LEAF_WORDS: Final[Mapping[str, tuple[str, ...]]] = {
    "web_search": ("web_search*", "web search"),
    "code_execution": ("code_execution*", "code execution"),
    "between_tools": ("between_tools", "between tools"),
}


@dataclass(frozen=True, slots=True)
class Attribution:
    """What a refusal teaches about the model that refused."""

    key: str
    """A capability path (``effort.max`` or a whole family, ``effort``), ``max_tokens``
    or ``parameters.<name>`` (a plain parameter the model refuses)."""
    value: bool | int
    """``False`` (unsupported, refused) or the ``max_tokens`` limit."""
    reason: str
    """caproute's words for it (never the upstream message)."""


class RefusalKind(enum.Enum):
    """What a refusal is about (see the module docstring)."""

    MODEL_CAPABILITY = "model_capability"
    MODEL_PARAMETER = "model_parameter"
    ORGANIZATION = "organization"
    PAYLOAD = "payload"
    SHAPE = "shape"
    UNKNOWN = "unknown"

    @property
    def about_model(self) -> bool:
        """Whether a refusal of this kind can teach a fact about the model."""
        return self is RefusalKind.MODEL_CAPABILITY or self is RefusalKind.MODEL_PARAMETER


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refusal, classified."""

    kind: RefusalKind
    reason: str
    """caproute's words for it (never the upstream message, which may echo content)."""
    fact: Attribution | None = None
    """What it teaches about the model (model kinds only; `None` when nothing)."""
    error_code: str | None = None
    """``error.details.error_code``, when the API gave one."""
    account_feature: str | None = None
    """For an organization refusal caproute can recognise in later requests: the
    feature the organization has off (``url_sources``, `catalogue.ACCOUNT_FEATURES`)."""


_KINDS: Final[Mapping[RefusalClass, RefusalKind]] = {
    "organization": RefusalKind.ORGANIZATION,
    "payload": RefusalKind.PAYLOAD,
    "shape": RefusalKind.SHAPE,
}
_WHAT: Final[Mapping[RefusalKind, str]] = {
    RefusalKind.ORGANIZATION: "about the organization or account",
    RefusalKind.PAYLOAD: "about the size or count of the content",
    RefusalKind.SHAPE: "about the request's shape (any model refuses it)",
    RefusalKind.UNKNOWN: "about nothing caproute can attribute",
}


def _not_about(kind: RefusalKind, model: str, code: str | None, why: str) -> Refusal:
    feature = ACCOUNT_FEATURES.get(code) if code is not None else None
    reason = f"a refusal from {model} {_WHAT[kind]} ({why}): nothing learned about {model}"
    return Refusal(kind, reason, None, code, feature)


def classify(
    message: str | None,
    body: Any,
    model: str,
    *,
    error_type: str | None = "invalid_request_error",
    error_code: str | None = None,
    endpoint: Endpoint = "messages",
) -> Refusal:
    """What the refusal of `body` by `model` is about, and what it teaches.

    Args:
        message: ``error.message``.
        body: The body that was sent (and refused).
        model: The model it was sent to.
        error_type: ``error.type`` (``invalid_request_error`` for a 400).
        error_code: ``error.details.error_code``, if the API gave one.
        endpoint: Where `body` was sent: a ``count_tokens`` body is a Messages body
            without ``max_tokens`` (the endpoint takes none), and its refusals teach
            the same facts. A batch item's ``params`` are a ``messages`` body.
    """
    code = error_code if isinstance(error_code, str) and error_code else None
    if code is not None and (known := REFUSAL_CODES.get(code)) is not None:
        return _not_about(_KINDS[known], model, code, f"error code {code}")
    if error_type is not None and (by_type := ERROR_TYPE_CLASSES.get(error_type)) is not None:
        return _not_about(_KINDS[by_type], model, code, f"error type {error_type}")
    if error_type not in (None, "invalid_request_error") or not message:
        return _not_about(RefusalKind.UNKNOWN, model, code, "no message to read")
    if shape_problem(body, endpoint) is not None:
        return _not_about(RefusalKind.SHAPE, model, code, "not a Messages body")
    text = _normalised(message)
    for phrases, kind in (
        (PAYLOAD_PHRASES, RefusalKind.PAYLOAD),
        (ORGANIZATION_PHRASES, RefusalKind.ORGANIZATION),
        (SHAPE_PHRASES, RefusalKind.SHAPE),
    ):
        phrase = next((p for p in phrases if p in text), None)
        if phrase is not None:
            return _not_about(kind, model, code, f"it says {phrase!r}")
    fact = _attribution(text, body, model)
    if fact is None:
        return _not_about(RefusalKind.UNKNOWN, model, code, "no parameter it names")
    kind = (
        RefusalKind.MODEL_PARAMETER
        if fact.key == "max_tokens" or fact.key.startswith(PARAMETER_PREFIX)
        else RefusalKind.MODEL_CAPABILITY
    )
    return Refusal(kind, fact.reason, fact, code)


def attribute(message: str | None, body: Any, model: str) -> Attribution | None:
    """What the 400 `message` says `model` can't take in `body`, or `None`
    (`classify`'s fact; kept for callers that only want the fact).

    Args:
        message: ``error.message`` of an ``invalid_request_error``.
        body: The body that was sent (and refused).
        model: The model it was sent to (for the reason text).
    """
    return classify(message, body, model).fact


def uses_account_feature(body: Any, feature: str) -> str | None:
    """Where `body` uses an organization-level `feature` (`catalogue.ACCOUNT_FEATURES`),
    as a path, or `None`.

    ``url_sources``: an image or document block whose ``source.type`` is ``url``
    (nested ones too), a ``web_fetch_*`` tool, or ``mcp_servers``.
    """
    if feature != "url_sources" or not isinstance(body, Mapping):
        return None
    if body.get("mcp_servers"):
        return "mcp_servers"
    tools = body.get("tools")
    if isinstance(tools, list):
        for i, tool in enumerate(tools):
            kind = tool.get("type") if isinstance(tool, Mapping) else None
            if isinstance(kind, str) and kind.startswith("web_fetch"):
                return f"tools.{i}"
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, turn in enumerate(messages):
            content = turn.get("content") if isinstance(turn, Mapping) else None
            found = _url_source(content, f"messages.{i}.content")
            if found is not None:
                return found
    return None


def _url_source(blocks: Any, path: str) -> str | None:
    if not isinstance(blocks, list):
        return None
    for j, block in enumerate(blocks):
        if not isinstance(block, Mapping):
            continue
        here = f"{path}.{j}"
        source = block.get("source")
        if isinstance(source, Mapping):
            if source.get("type") == "url":
                return here
            nested = _url_source(source.get("content"), f"{here}.source.content")
            if nested is not None:
                return nested
        nested = _url_source(block.get("content"), f"{here}.content")
        if nested is not None:
            return nested
    return None


@dataclass(frozen=True, slots=True)
class _Use:
    key: str
    capability: bool
    paths: tuple[str, ...]
    """Where the parameter is, as the API writes paths (``messages.0.content.1``)."""
    pinned: bool
    """Whether `paths` point at this very use (an indexed content block, tool or edit)
    rather than at a parameter that takes several values."""
    family_words: tuple[str, ...]
    leaf_words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Score:
    points: int
    use: _Use
    leaf_named: bool
    """Whether the message names the value the request used (the leaf)."""
    location_named: bool


def _attribution(text: str, body: Mapping[str, Any], model: str) -> Attribution | None:
    """The parameter the (normalised) message blames, as a fact about `model`."""
    scores = sorted((_score(use, text) for use in _uses(body)), key=lambda s: -s.points)
    if not scores or scores[0].points < _MIN_SCORE:
        return None
    best = scores[0]
    if len(scores) > 1 and scores[1].points == best.points and scores[1].use.key != best.use.key:
        return None  # two parameters fit the message equally well: learn nothing
    use = best.use
    if use.capability:
        key = use.key
        if (
            "." in key
            and not best.leaf_named
            and not (use.pinned and best.location_named)
            and not _names_other_values(key, text)
        ):
            key = key.split(".", 1)[0]  # the parameter is refused, whatever its value
        return Attribution(key, False, f"a 400 from {model} named {key}")
    if use.key == "max_tokens":
        limit = _limit_below(text, body.get("max_tokens"))
        if limit is not None:
            return Attribution("max_tokens", limit, f"a 400 from {model} put max_tokens at {limit}")
        return None
    if use.key not in NEVER_STRIPPED and any(p in text for p in MODEL_PARAMETER_PHRASES):
        key = f"{PARAMETER_PREFIX}{use.key}"
        return Attribution(key, False, f"a 400 from {model} refused {use.key}")
    return None


def _names_other_values(key: str, text: str) -> bool:
    """Whether the message lists other values of the parameter (``Input should be 'low',
    'medium'...``): then it refuses the value sent, not the parameter."""
    head, _, leaf = key.rpartition(".")
    values = KNOWN_LEAVES.get(head, ())
    return any(_mentions(text, value) for value in values if value != leaf)


def _normalised(message: str) -> str:
    """Lower-cased, ``[3]`` indices written ``.3``, quotes and backticks dropped."""
    text = re.sub(r"\[(\d+)\]", r".\1", message.lower())
    return re.sub(r"[`'\"]", " ", text)


def _dotted(path: JSONPath) -> str:
    return ".".join(str(p) for p in path)


def _uses(body: Mapping[str, Any]) -> list[_Use]:
    uses: list[_Use] = []
    needs = detect(body)
    for capability, locations in needs.capabilities.items():
        family = family_of(capability)
        leaf = capability.rsplit(".", 1)[-1] if "." in capability else ""
        leaf_words = _LEAF_WORDS.get(leaf, (leaf, leaf.replace("_", " ")) if leaf else ())
        paths = tuple(_dotted(p) for p in locations if p)
        pinned = any(isinstance(part, int) for p in locations for part in p)
        uses.append(
            _Use(
                capability, True, paths, pinned, family.vocabulary, tuple(dict.fromkeys(leaf_words))
            )
        )
    for key in body:
        if key in _CAPABILITY_KEYS:
            continue
        uses.append(_Use(key, False, (key,), True, _PARAMETER_WORDS.get(key, (key,)), ()))
    return uses


def _score(use: _Use, text: str) -> _Score:
    points = 0
    located = any(_mentions(text, path) for path in use.paths)
    if located:
        points += _PATH_POINTS
    words = _PARAMETER_POINTS if not use.capability else _WORD_POINTS
    points += sum(words for word in use.family_words if _mentions(text, word))
    leaf_named = False
    for word in use.leaf_words:
        if _mentions(text, word):
            leaf_named = True
            points += _WORD_POINTS
    if (
        located
        and use.leaf_words
        and any(_value_after(text, path, word) for path in use.paths for word in use.leaf_words)
    ):
        leaf_named = True
        points += _VALUE_AFTER_PATH_POINTS
    return _Score(points, use, leaf_named, located)


def _term(term: str) -> str:
    """The regex for a vocabulary term (``web_search*``: a prefix)."""
    if term.endswith("*"):
        return re.escape(term[:-1])
    return re.escape(term) + r"(?![\w])"


def _mentions(text: str, term: str) -> bool:
    """`term` in `text`, not inside a longer word or path (``max`` ≠ ``max_tokens``)."""
    return re.search(rf"(?<![\w.]){_term(term)}", text) is not None


def _value_after(text: str, path: str, word: str) -> bool:
    """``path`` directly followed by ``word`` (``thinking.type.enabled``, ``effort  max``)."""
    return re.search(rf"(?<![\w.]){re.escape(path)}[\s.:=]+{_term(word)}", text) is not None


def _limit_below(text: str, sent: Any) -> int | None:
    """The largest number in `text` below the `max_tokens` that was sent."""
    if not isinstance(sent, int) or isinstance(sent, bool):
        return None
    numbers = [int(n.replace(",", "")) for n in re.findall(r"(?<![\w.-])\d[\d,]*", text)]
    below = [n for n in numbers if 0 < n < sent]
    return max(below) if below else None
