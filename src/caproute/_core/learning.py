"""Learning from the API's refusals: which parameter a 400 blames, if any.

The API's error *wording* is not a contract (it documents ``error.type`` as the thing
to branch on, and users quote several phrasings of the same refusal), but its messages
name what they refuse: a parameter path (``output_config.effort: ...``,
``messages.0.content.1: ...``) and the feature's own words (``effort``, ``image``,
``web_search``...). `attribute` scores every parameter the refused request carried
against the message on exactly those two things, never on sentences:

* a location of the parameter in the body, written the way the API writes paths
  (dotted, or with ``[i]`` indices), found in the message: 4 points;
* each of the feature's words (the catalogue's vocabulary for its family, plus the
  leaf: ``max`` for ``effort.max``) found as a whole word: 2 points (1 for a leaf).

The best score wins only if it is at least 2 and no other parameter scores the same:
an ambiguous message teaches nothing. A win by a capability use becomes a fact
"this model lacks that capability"; a win by ``max_tokens`` becomes the model's limit
when the message states a number below the one sent; a win by anything else
(``temperature``, ``speed``, ``tool_choice``...) is a rule no capability key states,
and teaches nothing either. The caller then gets the API's answer unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .catalogue import family_of
from .features import JSONPath, detect, shape_problem

__all__ = ["Attribution", "attribute"]

_PATH_POINTS: Final = 4
_WORD_POINTS: Final = 2
_LEAF_POINTS: Final = 1
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

# Extra words for plain parameters whose name the API may not spell out.
_PARAMETER_WORDS: Final[Mapping[str, tuple[str, ...]]] = {
    "max_tokens": ("max_tokens", "output tokens", "max tokens", "maximum tokens"),
    "top_p": ("top_p", "top-p"),
    "top_k": ("top_k", "top-k"),
    "tool_choice": ("tool_choice", "tool choice"),
    "stop_sequences": ("stop_sequences", "stop sequences"),
}


@dataclass(frozen=True, slots=True)
class Attribution:
    """What a refusal teaches about the model that refused."""

    key: str
    """A capability path (``effort.max``) or ``max_tokens``."""
    value: bool | int
    """``False`` (the capability is unsupported) or the ``max_tokens`` limit."""
    reason: str
    """caproute's words for it (never the upstream message)."""


@dataclass(frozen=True, slots=True)
class _Use:
    key: str
    capability: bool
    paths: tuple[str, ...]
    words: tuple[tuple[str, int], ...]


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
    scored = sorted(((_score(use, text), use) for use in _uses(body)), key=lambda p: -p[0])
    if not scored or scored[0][0] < _MIN_SCORE:
        return None
    best, use = scored[0]
    if len(scored) > 1 and scored[1][0] == best and scored[1][1].key != use.key:
        return None  # two parameters fit the message equally well: learn nothing
    if use.capability:
        return Attribution(use.key, False, f"a 400 from {model} named {use.key}")
    if use.key == "max_tokens":
        sent = body.get("max_tokens")
        limit = _limit_below(text, sent)
        if limit is not None:
            return Attribution("max_tokens", limit, f"a 400 from {model} put max_tokens at {limit}")
    return None


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
        leaf = capability.rsplit(".", 1)[-1]
        words = [(w, _WORD_POINTS) for w in family.vocabulary]
        if leaf != capability and leaf not in family.vocabulary and leaf != "types":
            words.append((leaf, _LEAF_POINTS))
            if "_" in leaf:
                words.append((leaf.replace("_", " "), _LEAF_POINTS))
        paths = tuple(_dotted(p) for p in locations if p)
        uses.append(_Use(capability, True, paths, tuple(words)))
    for key in body:
        if key in _CAPABILITY_KEYS:
            continue
        named = tuple((w, _WORD_POINTS + 1) for w in _PARAMETER_WORDS.get(key, (key,)))
        uses.append(_Use(key, False, (key,), named))
    return uses


def _score(use: _Use, text: str) -> int:
    score = 0
    if any(_mentions(text, path) for path in use.paths):
        score += _PATH_POINTS
    for word, points in use.words:
        if _mentions(text, word):
            score += points
    return score


def _mentions(text: str, term: str) -> bool:
    """`term` in `text`, not inside a longer word or path (``max`` ≠ ``max_tokens``)."""
    return re.search(rf"(?<![\w.]){re.escape(term)}(?![\w])", text) is not None


def _limit_below(text: str, sent: Any) -> int | None:
    """The largest number in `text` below the `max_tokens` that was sent."""
    if not isinstance(sent, int) or isinstance(sent, bool):
        return None
    numbers = [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", text)]
    below = [n for n in numbers if 0 < n < sent]
    return max(below) if below else None
