"""The policy file's vocabulary and field types: names, globs, statuses and the
validators pydantic runs on each field."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, TypeAlias, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictStr,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from .catalogue import ACTIONS, FAMILIES, RULE_KEYS, Action
from .model_info import Capabilities
from .yaml_text import describe, quote_hint, suggest

__all__ = [
    "CAPABILITY_FAMILIES",
    "CAPABILITY_NAMES",
    "REQUESTED",
    "STATUS_CLASSES",
    "Actions",
    "DeprecatedAllowance",
    "DeprecatedTreatment",
    "FallbackStatus",
    "Glob",
    "Globs",
    "HeaderGlobs",
    "MetadataGlobs",
    "UnknownTreatment",
    "Version",
    "capability_family",
]


# -- vocabulary ------------------------------------------------------------------------------

UnknownTreatment: TypeAlias = Literal["prefer-known", "supported", "unsupported"]
"""How to read a capability the registry doesn't state (it is three-state).

``prefer-known`` (the default): plan every candidate as if an unstated capability were
missing (so parameters are adjusted to values known to work, and a candidate known to
support everything wins); only when no candidate is known to work, gamble on one whose
support is unknown. ``supported``: always gamble. ``unsupported``: never gamble.
"""

DeprecatedTreatment: TypeAlias = Literal["requested"] | bool
"""Whether deprecated models may serve a request: ``requested`` (the default) only when
the request names that model, ``true`` also as an alternative, ``false`` never."""

REQUESTED = "requested"
"""The candidate entry that stands for the model the request asked for."""

CAPABILITY_FAMILIES: tuple[str, ...] = tuple(FAMILIES)
"""Top-level keys of the Models API `capabilities` object (``anthropic.types.ModelInfo``)."""

_RULE_NAMES: tuple[str, ...] = tuple(RULE_KEYS)


def _capability_paths(node: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every capability path the registry's models name, parents before children."""
    for name, field in node.model_fields.items():
        if name == "supported":
            continue
        yield f"{prefix}{name}"
        child = field.annotation
        for arg in (child, *get_args(child)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                yield from _capability_paths(arg, f"{prefix}{name}.")


CAPABILITY_NAMES: tuple[str, ...] = (*_capability_paths(Capabilities), *_RULE_NAMES)
"""Every name usable as a key of `actions`.

The capability paths of the Models API (`thinking`, `effort.max`,
`thinking.types.enabled`, `server_tools.web_search`, ...) and the limits and rules no
capability key covers: `max_tokens`, `context_window`, `sampling` (the
temperature/top_p/top_k rule of API version 2026-10-21), `tool_choice` and
`thinking_sampling` (temperature/top_p/top_k with thinking on). Any ``context_management.<edit
type>`` is accepted too, because new edit strategies appear under new dated names.
"""

_CONTEXT_EDIT = re.compile(r"^context_management\.[a-z][a-z0-9_]*$")

STATUS_CLASSES: Final[Mapping[str, range]] = {"5xx": range(500, 600)}


def capability_family(path: str) -> str:
    return path.split(".", 1)[0]


# -- field types -------------------------------------------------------------------------------


def _glob_problem(pattern: str) -> str | None:
    """Why `pattern` is not a usable glob, or `None` when it is.

    `fnmatch` never rejects a pattern: an unclosed ``[`` silently becomes a literal
    and a reversed range silently matches nothing. Both are almost always typos.
    """
    if not pattern:
        return "a glob cannot be empty"
    i = 0
    while i < len(pattern):
        if pattern[i] != "[":
            i += 1
            continue
        # fnmatch: a `]` right after `[` or `[!` is a literal member of the class.
        j = i + 1
        if j < len(pattern) and pattern[j] == "!":
            j += 1
        if j < len(pattern) and pattern[j] == "]":
            j += 1
        close = pattern.find("]", j)
        if close == -1:
            return f"unclosed '[' at character {i + 1}"
        members = pattern[i + 1 : close].lstrip("!")
        for low, high in re.findall(r"(.)-(.)", members):
            if low > high:
                return f"range '{low}-{high}' is reversed and matches nothing"
        i = close + 1
    return None


def _check_glob(pattern: str) -> str:
    problem = _glob_problem(pattern)
    if problem is not None:
        raise PydanticCustomError(
            "bad_glob", "bad glob {glob}: {problem}", {"glob": repr(pattern), "problem": problem}
        )
    return pattern


def _one_or_many(value: object) -> object:
    """Let a single glob stand for a one-element list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return value
    raise PydanticCustomError(
        "globs_type",
        "expected a glob (a string) or a list of globs, got {value}{hint}",
        {"value": describe(value), "hint": quote_hint(value)},
    )


def _check_capability_name(name: str) -> str:
    if name in CAPABILITY_NAMES or _CONTEXT_EDIT.match(name):
        return name
    raise PydanticCustomError(
        "unknown_capability",
        "unknown capability {name}{hint}",
        {"name": repr(name), "hint": suggest(name, CAPABILITY_NAMES)},
    )


# RFC 9110 §5.1: a field name is a token.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _check_header_name(name: str) -> str:
    if not _HEADER_NAME.match(name):
        raise PydanticCustomError(
            "bad_header_name", "{name} is not a valid HTTP header name", {"name": repr(name)}
        )
    return name


def _check_status(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
        return value
    if isinstance(value, str) and value in STATUS_CLASSES:
        return value
    raise PydanticCustomError(
        "bad_status",
        "expected an HTTP status from 400 to 599 or '5xx', got {value}",
        {"value": describe(value)},
    )


def _check_version(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise PydanticCustomError(
            "int_type", "expected an integer, got {value}", {"value": describe(value)}
        )
    if value != 1:
        raise PydanticCustomError(
            "bad_version",
            "unsupported policy version {v}; this caproute reads version 1",
            {"v": value},
        )
    return value


def _check_deprecated(value: object) -> Literal["requested"] | bool:
    if isinstance(value, bool) or value == "requested":
        return value
    raise PydanticCustomError(
        "bad_deprecated",
        "expected true, false or 'requested', got {value}",
        {"value": describe(value)},
    )


Glob = Annotated[StrictStr, AfterValidator(_check_glob)]
Globs = Annotated[
    tuple[Glob, ...],
    BeforeValidator(_one_or_many),
    Field(min_length=1),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            ]
        }
    ),
]
"""One glob or a list of them; any of them matching is a match."""

_ACTION_SCHEMA: Final[dict[str, Any]] = {"enum": list(ACTIONS)}
_ACTIONS_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {name: _ACTION_SCHEMA for name in CAPABILITY_NAMES},
    "patternProperties": {_CONTEXT_EDIT.pattern: _ACTION_SCHEMA},
    "additionalProperties": False,
}
CapabilityName = Annotated[StrictStr, AfterValidator(_check_capability_name)]
HeaderName = Annotated[StrictStr, AfterValidator(_check_header_name)]
# Mappings are frozen too: a policy is shared between threads and cached by hash.
_FROZEN = (AfterValidator(MappingProxyType), PlainSerializer(dict))
Actions = Annotated[Mapping[CapabilityName, Action], *_FROZEN, WithJsonSchema(_ACTIONS_SCHEMA)]
MetadataGlobs = Annotated[Mapping[StrictStr, Globs], *_FROZEN]
HeaderGlobs = Annotated[Mapping[HeaderName, Globs], *_FROZEN]
FallbackStatus = Annotated[
    int | str,
    PlainValidator(_check_status),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 400, "maximum": 599}, {"enum": ["5xx"]}]}
    ),
]
Version = Annotated[int, PlainValidator(_check_version), WithJsonSchema({"const": 1})]
DeprecatedAllowance = Annotated[
    Literal["requested"] | bool,
    PlainValidator(_check_deprecated),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"const": "requested"}]}),
]
