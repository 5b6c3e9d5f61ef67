"""Learning from the API's refusals: which parameter a 400 blames, if any.

The API's error *wording* is not a contract (it documents ``error.type`` as the thing
to branch on, and users quote several phrasings of the same refusal), but its messages
name what they refuse: a parameter path (``output_config.effort 'max' is not
supported...``, ``messages.0.content.1: ...``) and the feature's own words (``effort``,
``image``, ``web_search``...). `attribute` scores every parameter the refused request
carried against the message on exactly those two things, never on sentences:

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
* anything else (``temperature``, ``speed``, ``tool_choice``...): a rule no capability
  key states; nothing is learned and the caller gets the API's answer unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .catalogue import KNOWN_LEAVES, family_of
from .features import JSONPath, detect, shape_problem

__all__ = ["Attribution", "attribute"]

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
    """A capability path (``effort.max`` or a whole family, ``effort``) or ``max_tokens``."""
    value: bool | int
    """``False`` (the capability is unsupported) or the ``max_tokens`` limit."""
    reason: str
    """caproute's words for it (never the upstream message)."""


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


def attribute(message: str | None, body: Any, model: str) -> Attribution | None:
    """What the 400 `message` says `model` can't take in `body`, or `None`.

    Args:
        message: ``error.message`` of an ``invalid_request_error``.
        body: The body that was sent (and refused).
        model: The model it was sent to (for the reason text).
    """
    if not message or shape_problem(body) is not None:
        return None
    text = _normalised(message)
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
