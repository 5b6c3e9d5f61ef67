"""Keys never leave caproute: how credentials are found and masked in text and decisions.

The logging filter and the command line's streams that apply it are in `caproute._logs`.

caproute never puts a key anywhere on purpose (keys live in request headers, which no
decision, log line, metric or file holds). What it can't control is text from
elsewhere that it repeats: the API echoes a key prefix in an authentication error
(``invalid x-api-key: sk-ant-api03-SECRE…``), a caller can put a key in a path or a
``model`` field, an exception quotes what it choked on. So every channel out of
caproute masks credentials, found two ways:

* **by position**, whatever their shape: the value after a credential's name, as a
  header (``x-api-key: …``, ``Authorization: Bearer …``), an assignment
  (``api_key=…``, ``ANTHROPIC_AUTH_TOKEN=…``, ``"token": "…"``), a pair
  (``('x-api-key', '…')``), and the value after ``Bearer``. Gateways and cloud platforms
  issue keys of other shapes than ``sk-ant-``, and caproute's own local tokens have
  none: the name is what says a value is a secret. The value becomes ``***``;
* **by prefix**: any ``sk-ant-`` token, wherever it stands (the whole token up to the
  next space, quote or delimiter, or just a prefix), becomes ``sk-ant-***``.

Where it applies:

* **logs**: `RedactingFilter` sits on every ``caproute`` logger (`LOGGERS`; a filter on a
  parent logger does not see its children's records, so each has its own), on the
  proxy's access log, and on uvicorn's loggers when the proxy configures them
  (`protect_uvicorn`). It rewrites the message, the formatted traceback and a
  decision attached to the record;
* **decisions**: `LiveRouter.route` hands out (and reports) `redact_decision` of any
  decision that holds one; the check costs a few string scans on the common path;
* **errors** built from API answers (`caproute._registry.fetch`), error bodies the own-key proxy
  relays (`mask_known` also masks any 8-character run of its own key), and **CLI
  output** (`redacting_streams` around every command).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .decision import Change, Decision

__all__ = [
    "MASK",
    "decision_has_secret",
    "has_secret",
    "mask_known",
    "redact",
    "redact_decision",
]

MARK: Final = "sk-ant-"
MASK: Final = "sk-ant-***"
# The token runs to the next character that can't be part of a key as written in text:
# whitespace, quotes, brackets, separators. Prefixes ("sk-ant-SECRE…") match too.
_VALUE_CHARS: Final = r"[^\s\"'`<>()\[\]{},;|\\]"
_TOKEN: Final = re.compile(r"sk-ant-" + _VALUE_CHARS + "*", re.IGNORECASE)

HIDDEN: Final = "***"
"""What a credential found by position becomes (``sk-ant-***`` if it has that prefix)."""
_NAMES: Final = (
    r"(?:proxy-)?authorization|x[-_]api[-_]key|api[-_]?key|"
    r"(?:auth[-_]|access[-_]|refresh[-_]|id[-_])?token|secret|password"
)
"""Names whose value is a credential: headers, settings, variables (any case; a name
may end a longer one, ``ANTHROPIC_AUTH_TOKEN``, but not continue into another word,
``max_tokens``, ``api_key_env``)."""
_FIELD: Final = re.compile(
    # The lookahead lets the engine skip positions by their first character.
    r"(?<![A-Za-z0-9])(?=[apxtrisAPXTRIS])(?:" + _NAMES + r")(?![A-Za-z0-9_-])"
    # The separator: `name: v`, `name=v`, `"name": "v"`, `('name', b'v')`.
    r"""(?:["']?[ \t]*[:=][ \t]*|["']?[ \t]*,[ \t]*(?=b?["']))(?:b(?=["']))?["']?[ \t]*"""
    r"(?:(?:bearer|basic|token)[ \t]+)?"
    r"(?P<value>" + _VALUE_CHARS + r"+)",
    re.IGNORECASE,
)
_BEARER: Final = re.compile(
    r"(?<![A-Za-z0-9])bearer[ \t]+(?P<value>" + _VALUE_CHARS + r"+)", re.IGNORECASE
)
_HINT_WORDS: Final = ("key", "authorization", "token", "secret", "password")
"""Every name above ends with one of these words."""
_SEPARATORS: Final = frozenset(":=,")


def _hinted(lowered: str) -> bool:
    """Cheap first look, on lower-cased text: a word a credential's name ends with,
    followed by a separator, or ``bearer`` and a space. Text without one (an access
    line's ``tokens=`` included) holds no credential by position, and the patterns
    never run on it; `str.find` does this in a fraction of a regular expression's time."""
    for word in _HINT_WORDS:
        at = lowered.find(word)
        while at != -1:
            rest = lowered[at + len(word) : at + len(word) + 8].lstrip("\"' \t")
            if rest[:1] in _SEPARATORS and rest:
                return True
            at = lowered.find(word, at + 1)
    at = lowered.find("bearer")
    while at != -1:
        if lowered[at + 6 : at + 7] in (" ", "\t"):
            return True
        at = lowered.find("bearer", at + 1)
    return False


_FIELD_NAME: Final = re.compile(r"[\s\"'`]*(?:" + _NAMES + r")[\s\"'`]*", re.IGNORECASE)


def has_secret(text: str) -> bool:
    """Whether `text` holds a credential: an ``sk-ant-`` token, or a credential's value."""
    lowered = text.lower()
    if MARK in lowered:
        return True
    return _hinted(lowered) and _by_position(text) is not None


def _by_position(text: str) -> re.Match[str] | None:
    return _FIELD.search(text) or _bearer(text)


def _bearer(text: str) -> re.Match[str] | None:
    for match in _BEARER.finditer(text):
        if not _plain_word(match.group("value")):
            return match
    return None


def _plain_word(value: str) -> bool:
    """Prose after "bearer" (``a bearer token``), not a credential: no credential is
    a short lower-case word."""
    return len(value) < 16 and value.isalpha() and value.islower()


def _hide(match: re.Match[str]) -> str:
    start, end = match.span("value")
    value = match.group("value")
    if match.re is _BEARER and _plain_word(value):
        return match.group(0)
    hidden = MASK if value.lower().startswith(MARK) else HIDDEN
    whole = match.group(0)
    offset = match.start()
    return whole[: start - offset] + hidden + whole[end - offset :]


def redact(text: str) -> str:
    """`text` with credentials masked: values after a credential's name (``***``) and
    every ``sk-ant-`` token (``sk-ant-***``)."""
    lowered = text.lower()
    if _hinted(lowered):
        text = _BEARER.sub(_hide, _FIELD.sub(_hide, text))
    if MARK in lowered:
        text = _TOKEN.sub(MASK, text)
    return text


MIN_KNOWN_RUN: Final = 8
"""`mask_known` masks runs of a known secret at least this long."""


def mask_known(text: str, secrets: Iterable[str]) -> str:
    """`text` with every run of `MIN_KNOWN_RUN` or more characters of a known secret (a
    prefix the API echoed, a fragment) masked, then `redact`-ed.

    For text caproute relays where a credential it holds could be quoted without a name
    in front (an upstream error body in own-key mode)."""
    for secret in secrets:
        if len(secret) < MIN_KNOWN_RUN:
            text = text.replace(secret, HIDDEN) if secret else text
            continue
        grams = {secret[i : i + MIN_KNOWN_RUN] for i in range(len(secret) - MIN_KNOWN_RUN + 1)}
        pieces: list[str] = []
        i = kept = 0
        while i <= len(text) - MIN_KNOWN_RUN:
            if text[i : i + MIN_KNOWN_RUN] in grams:
                shape = MASK if text[i : i + len(MARK)].lower() == MARK else HIDDEN
                pieces += [text[kept:i], shape]
                i = kept = i + _known_run(text, i, secret)
            else:
                i += 1
        pieces.append(text[kept:])
        text = "".join(pieces)
    return redact(text)


def _known_run(text: str, at: int, secret: str) -> int:
    """The length of the longest run of `secret` starting at `text[at]` (0 if shorter
    than `MIN_KNOWN_RUN`)."""
    best = 0
    start = secret.find(text[at : at + MIN_KNOWN_RUN])
    while start != -1:
        length = MIN_KNOWN_RUN
        while (
            at + length < len(text)
            and start + length < len(secret)
            and text[at + length] == secret[start + length]
        ):
            length += 1
        best = max(best, length)
        start = secret.find(text[at : at + MIN_KNOWN_RUN], start + 1)
    return best


def _redact_value(value: Any) -> Any:
    """A JSON-like value with every string in it redacted (containers copied if needed)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            redact(k) if isinstance(k, str) else k: (
                _hidden_value(v)
                if isinstance(k, str) and _FIELD_NAME.fullmatch(k)
                else _redact_value(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


def _hidden_value(value: Any) -> Any:
    """A value stored under a credential's name (``{"x-api-key": ...}``): masked whole."""
    if isinstance(value, str) and value:
        return MASK if value.lower().startswith(MARK) else HIDDEN
    return _redact_value(value)


# -- decisions ----------------------------------------------------------------------------


def decision_has_secret(decision: Decision) -> bool:
    """Whether any text in `decision` holds an ``sk-ant-`` token.

    Runs for every routed request: the common decision (unchanged, nothing attached)
    is checked field by field, in ~0.2 µs; any other through its ``repr``.
    """
    if decision.changes or decision.reason or decision.notes or decision.items:
        return has_secret(repr(decision))
    requested = decision.requested_model
    if requested is not None and MARK in requested.lower():
        return True
    model = decision.model
    if model is not None and model is not requested and MARK in model.lower():
        return True
    for need in decision.needs:
        if MARK in need.lower():
            return True
    route, extra = decision.route, decision.extra
    return (route is not None and MARK in route.lower()) or (
        bool(extra) and has_secret(repr(extra))
    )


def redact_decision(decision: Decision) -> Decision:
    """`decision` with every ``sk-ant-`` token in its text masked (itself if none)."""
    if not decision_has_secret(decision):
        return decision

    def text(value: str | None) -> str | None:
        return None if value is None else redact(value)

    def change(c: Change) -> Change:
        return dataclasses.replace(
            c,
            path=redact(c.path),
            before=_redact_value(c.before),
            after=_redact_value(c.after),
            reason=redact(c.reason),
        )

    return dataclasses.replace(
        decision,
        requested_model=text(decision.requested_model),
        model=text(decision.model),
        needs=tuple(redact(n) for n in decision.needs),
        candidates=tuple(
            dataclasses.replace(c, model=redact(c.model), reason=text(c.reason))
            for c in decision.candidates
        ),
        changes=tuple(change(c) for c in decision.changes),
        reason=text(decision.reason),
        notes=tuple(redact(n) for n in decision.notes),
        route=text(decision.route),
        registry_source=redact(decision.registry_source),
        items=tuple((redact(cid), redact_decision(d)) for cid, d in decision.items),
        extra=_redact_value(dict(decision.extra)) if decision.extra else decision.extra,
    )
