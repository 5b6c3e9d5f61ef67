"""Routing policies: YAML text in, a validated, immutable `Policy` out.

A policy says, per kind of request, which models may serve it and what to do when the
chosen model lacks something the request needs (see ``docs/policy.md``). Why it is
built the way it is:

* **Strict, because people write these files by hand.** The pydantic models forbid
  unknown keys and take scalars strictly (``"1"`` is not ``1``, ``"no"`` is not
  ``false``), and the checks pydantic cannot express (unique route names, globs that
  compile, routes an earlier route shadows, ``strip`` on message content) run right
  after it. A policy that loads is one the router can follow literally.
* **Errors point at the text.** pydantic reports *where in the data* a problem is (its
  ``loc``); YAML nodes know *where in the file* they came from. The text is composed
  with `yaml.SafeLoader` (keeping every node's start mark), every data path is indexed
  to its position, and each problem becomes a `PolicyError` reading
  ``file:line:column: message`` with a did-you-mean for misspelt names.
* **Sans-IO.** This module parses text it is handed; `caproute._registry.policy_files.load_policy`
  reads files.
* **Matching is on the hot path.** Each route's globs are compiled into one regular
  expression per condition when the policy is built, and the effective settings of
  each route (defaults merged in) are precomputed as a hashable `RouteSpec`, so
  `Policy.match` only runs a few regex matches per request.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cached_property
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Final,
    Literal,
    Self,
    TypeAlias,
    TypeVar,
    get_args,
)

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    StrictBool,
    StrictStr,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from .._exceptions import PolicyError
from .catalogue import ACTIONS, FAMILIES, RULE_KEYS, Action, not_strippable
from .registry import Capabilities

if TYPE_CHECKING:
    from .registry import Registry

__all__ = [
    "ACTIONS",
    "CAPABILITY_FAMILIES",
    "CAPABILITY_NAMES",
    "REQUESTED",
    "Action",
    "DeprecatedTreatment",
    "Defaults",
    "Match",
    "Policy",
    "PolicyWarning",
    "Route",
    "RouteSpec",
    "TextLimits",
    "UnknownTreatment",
    "check_model_text",
    "check_policy_text",
    "policy_json_schema",
    "registry_warnings",
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
"""Top-level keys of the Models API `capabilities` object (api-facts §2.4)."""

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

_STATUS_CLASSES: Final[Mapping[str, range]] = {"5xx": range(500, 600)}


def _family(path: str) -> str:
    return path.split(".", 1)[0]


def _suggest(word: object, choices: Sequence[str], *, cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to `word`, else an empty string."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""


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
        {"value": _describe(value), "hint": _quote_hint(value)},
    )


def _quote_hint(value: object) -> str:
    """What to write instead of a bare YAML scalar that was read as a number or boolean."""
    if isinstance(value, bool):
        # YAML 1.1 reads unquoted yes/no/on/off/true/false as booleans (the "Norway problem").
        return (
            "; YAML reads an unquoted yes, no, on, off, true or false as a boolean: quote the text"
        )
    if isinstance(value, int | float):
        return f'; quote it to mean the text: "{value}"'
    return ""


def _check_capability_name(name: str) -> str:
    if name in CAPABILITY_NAMES or _CONTEXT_EDIT.match(name):
        return name
    raise PydanticCustomError(
        "unknown_capability",
        "unknown capability {name}{hint}",
        {"name": repr(name), "hint": _suggest(name, CAPABILITY_NAMES)},
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
    if isinstance(value, str) and value in _STATUS_CLASSES:
        return value
    raise PydanticCustomError(
        "bad_status",
        "expected an HTTP status from 400 to 599 or '5xx', got {value}",
        {"value": _describe(value)},
    )


def _check_version(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise PydanticCustomError(
            "int_type", "expected an integer, got {value}", {"value": _describe(value)}
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
        {"value": _describe(value)},
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


# -- the policy file's models ------------------------------------------------------------------


class _PolicyModel(BaseModel):
    """Base of the policy file's models: frozen, and a misspelt key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        """A shallow copy: the model is frozen and its mappings are read-only views
        nobody else holds (a ``mappingproxy`` can't be deep-copied), so sharing them is
        as safe as sharing a tuple of strings."""
        return self.__copy__()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy (see pydantic); `deep` copies no deeper, for the reason above."""
        del deep  # frozen all the way down: a shallow copy is already independent
        return super().model_copy(update=update)


class Match(_PolicyModel):
    """Which requests a route applies to. Every condition given must hold; none is a catch-all."""

    model: Globs | None = None
    """Globs (fnmatch, case-sensitive) on the model id or alias the request names."""
    metadata: MetadataGlobs | None = None
    """Globs on keys of the request's `metadata` (e.g. `user_id`); a missing key never matches."""
    headers: HeaderGlobs | None = None
    """Globs on request headers; header names are case-insensitive, values are not."""


class Defaults(_PolicyModel):
    """Settings for every route that doesn't override them, and for requests no route matches."""

    unknown: UnknownTreatment = "prefer-known"
    """How to treat a capability the registry doesn't state: `prefer-known` (a model known
    to support the request wins; gamble only when none is), `supported` or `unsupported`."""
    on_unsupported: Action = "auto"
    """What to do when the model lacks something the request needs; `auto`: the built-in rules."""
    actions: Actions = Field(default_factory=lambda: MappingProxyType({}))
    """Per-capability override of `on_unsupported` (keys: see CAPABILITY_NAMES)."""
    allow_deprecated: DeprecatedAllowance = "requested"
    """Whether models the registry marks `deprecated` may be chosen: `requested` (only
    when the request names the model), `true` (also as an alternative) or `false`."""
    fallback_on: tuple[FallbackStatus, ...] = ()
    """Upstream statuses (400-599, or '5xx') on which the forwarder tries the next candidate."""
    allow_unknown_in_batches: StrictBool = False
    """Whether a Message Batch item may go to a model whose support of what it needs is
    unknown (as `unknown` allows a single request to); otherwise it is refused locally."""


class Route(_PolicyModel):
    """One routing rule. Routes are tried in order; the first that matches wins.

    Every setting left out (or null) is taken from `defaults`.
    """

    name: Annotated[StrictStr, Field(min_length=1)]
    """A unique name, reported in every decision the route makes."""
    match: Match = Field(default_factory=Match)
    """Which requests this route applies to; omitted or empty, it matches every request."""
    candidates: tuple[Glob, ...] | None = None
    """Models to use, in order of preference; globs allowed; 'requested' is the requested model.

    Left out, the router uses its automatic order; the requested model is a candidate
    only when 'requested' is listed.
    """
    on_unsupported: Action | None = None
    """What to do when the model lacks something the request needs, unless `actions` says."""
    actions: Actions | None = None
    """Per-capability override of `on_unsupported`; replaces the defaults' entry for that key."""
    unknown: UnknownTreatment | None = None
    """How to treat a capability the registry doesn't state."""
    allow_deprecated: DeprecatedAllowance | None = None
    """Whether models the registry marks `deprecated` may be chosen: `requested`, `true`
    or `false`."""
    fallback_on: tuple[FallbackStatus, ...] | None = None
    """Upstream statuses (400-599, or '5xx') on which the forwarder tries the next candidate."""


# -- what the router consumes --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A route's effective settings, `defaults` merged in: what the router follows."""

    name: str | None
    """The route's name; `None` for the default route (no route matched)."""
    candidates: tuple[str, ...]
    """Candidate globs as written ('requested' kept); empty means the automatic order."""
    on_unsupported: Action
    """The action for any capability `actions` doesn't name."""
    actions: Mapping[str, Action]
    """Per-capability actions, the route's laid over the defaults' (read-only)."""
    unknown: UnknownTreatment
    """How to read a capability the registry doesn't state."""
    allow_deprecated: DeprecatedTreatment
    """Whether deprecated models may be chosen: ``requested`` (only the one the request
    names), True or False (retired ones never are)."""
    fallback_on: frozenset[int]
    """Upstream statuses on which the forwarding layer tries the next candidate."""

    def action_for(self, capability_path: str) -> Action:
        """The action for a capability path such as ``effort.xhigh`` or ``pdf_input``.

        The most specific key of `actions` wins (``thinking.types.enabled``, then
        ``thinking.types``, then ``thinking``), then `on_unsupported`. A blanket
        ``strip`` never applies to message content or `max_tokens`: it reads as `auto`.
        """
        path = capability_path
        while True:
            action = self.actions.get(path)
            if action is not None:
                return action
            if "." not in path:
                break
            path = path.rsplit(".", 1)[0]
        if self.on_unsupported == "strip" and not_strippable(_family(capability_path)):
            return "auto"
        return self.on_unsupported

    _hash: int = dataclass_field(init=False, repr=False, compare=False)
    """Computed once: the router keys its per-route caches by the spec itself."""

    def __post_init__(self) -> None:
        fields = (
            self.name,
            self.candidates,
            self.on_unsupported,
            tuple(sorted(self.actions.items())),
            self.unknown,
            self.allow_deprecated,
            self.fallback_on,
        )
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash


def _statuses(entries: Sequence[int | str]) -> frozenset[int]:
    codes: set[int] = set()
    for entry in entries:
        codes.update(_STATUS_CLASSES[entry] if isinstance(entry, str) else (entry,))
    return frozenset(codes)


def _merged_actions(defaults: Mapping[str, Action], own: Mapping[str, Action]) -> dict[str, Action]:
    """The route's actions over the defaults'.

    A route key replaces the defaults' key *and everything below it*: a route saying
    ``effort: adjust`` means it for every level, whatever ``effort.max`` the defaults say.
    """
    kept = {
        key: action
        for key, action in defaults.items()
        if not any(key == mine or key.startswith(f"{mine}.") for mine in own)
    }
    return {**kept, **own}


def _spec(defaults: Defaults, route: Route | None) -> RouteSpec:
    if route is None:
        return RouteSpec(
            name=None,
            candidates=(),
            on_unsupported=defaults.on_unsupported,
            actions=MappingProxyType(dict(defaults.actions)),
            unknown=defaults.unknown,
            allow_deprecated=defaults.allow_deprecated,
            fallback_on=_statuses(defaults.fallback_on),
        )
    return RouteSpec(
        name=route.name,
        candidates=route.candidates or (),
        on_unsupported=route.on_unsupported or defaults.on_unsupported,
        actions=MappingProxyType(_merged_actions(defaults.actions, route.actions or {})),
        unknown=route.unknown or defaults.unknown,
        allow_deprecated=(
            defaults.allow_deprecated if route.allow_deprecated is None else route.allow_deprecated
        ),
        fallback_on=_statuses(
            defaults.fallback_on if route.fallback_on is None else route.fallback_on
        ),
    )


def _compile(globs: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(fnmatch.translate(glob) for glob in globs))


@dataclass(frozen=True, slots=True)
class _Matcher:
    """A route's `match`, compiled."""

    model: re.Pattern[str] | None
    metadata: tuple[tuple[str, re.Pattern[str]], ...]
    headers: tuple[tuple[str, re.Pattern[str]], ...]
    """Header names lower-cased."""

    @classmethod
    def of(cls, match: Match) -> _Matcher:
        return cls(
            model=None if match.model is None else _compile(match.model),
            metadata=tuple((key, _compile(g)) for key, g in (match.metadata or {}).items()),
            headers=tuple((key.lower(), _compile(g)) for key, g in (match.headers or {}).items()),
        )

    def matches(
        self, model: str | None, metadata: Mapping[str, Any], headers: Mapping[str, str]
    ) -> bool:
        if self.model is not None and (model is None or not self.model.match(model)):
            return False
        for key, pattern in self.metadata:
            value = metadata.get(key)
            if not isinstance(value, str) or not pattern.match(value):
                return False
        for name, pattern in self.headers:
            value = headers.get(name)
            if value is None or not pattern.match(value):
                return False
        return True


# -- the policy ----------------------------------------------------------------------------------

Loc: TypeAlias = tuple[str | int, ...]
"""A path into the policy data, as pydantic reports it: ``("routes", 0, "match")``."""


@dataclass(frozen=True, slots=True)
class _SourceInfo:
    """Where a policy came from: passed to pydantic as the validation context."""

    filename: str
    positions: Mapping[Loc, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A policy prepared for `Policy.match`: compiled globs and effective settings."""

    routes: tuple[tuple[_Matcher, RouteSpec], ...]
    specs: tuple[RouteSpec, ...]
    default: RouteSpec
    uses_headers: bool
    canonical: str
    """The policy as JSON: what equality and hashing compare."""


class Policy(_PolicyModel):
    """A validated routing policy. Immutable and hashable, so routers can cache per policy.

    Build one with `Policy.from_text` (YAML), `Policy.from_dict` or `Policy.default`;
    `caproute.load_policy(path)` reads a file. (`Policy.model_validate` checks only the
    shape, not the cross-route rules such as unique names and reachable routes.)
    """

    schema_: StrictStr | None = Field(default=None, alias="$schema")
    """The JSON Schema URL for editor completion (accepted and ignored)."""
    version: Version = 1
    """The policy format version; only 1 exists."""
    defaults: Defaults = Field(default_factory=Defaults)
    """Settings for every route that doesn't override them, and for requests no route matches."""
    routes: tuple[Route, ...] = ()
    """Routing rules, tried in order; the first that matches wins."""

    _positions: Mapping[Loc, tuple[int, int]] = PrivateAttr(default_factory=dict)
    _filename: str = PrivateAttr(default="<policy>")

    def model_post_init(self, context: Any) -> None:
        """Remember where the policy came from, and compile it now rather than on first use."""
        if isinstance(context, _SourceInfo):
            self._positions = context.positions
            self._filename = context.filename
        _ = self._compiled

    @cached_property
    def _compiled(self) -> _Compiled:
        # A cached_property lives in the instance __dict__: reading it costs a plain
        # attribute lookup, where a pydantic private attribute costs microseconds.
        specs = tuple(_spec(self.defaults, route) for route in self.routes)
        matchers = tuple(_Matcher.of(route.match) for route in self.routes)
        return _Compiled(
            routes=tuple(zip(matchers, specs, strict=True)),
            specs=specs,
            default=_spec(self.defaults, None),
            uses_headers=any(m.headers for m in matchers),
            # `$schema` is for editors only: it doesn't make two policies differ.
            canonical=self.model_dump_json(exclude={"schema_"}),
        )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy (see pydantic); the compiled form is rebuilt for it, never shared stale."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("_compiled", None)
        return copied

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_text(
        cls, text: str, *, filename: str = "<policy>", limits: TextLimits | None = None
    ) -> Policy:
        """Parse and validate a YAML policy.

        `limits` bounds the text before anything is validated (default `TextLimits()`:
        1 MiB, 20,000 nodes counting what aliases repeat, 64 levels).

        Raises:
            PolicyError: the first problem found, as ``file:line:column: message``.
        """
        policy, errors = check_policy_text(text, filename=filename, limits=limits)
        if errors:
            raise errors[0]
        assert policy is not None
        return policy

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, filename: str = "<policy>") -> Policy:
        """Validate already-parsed policy data (errors carry a path but no line).

        Raises:
            PolicyError: the first problem found.
        """
        policy, problems = _build(data, _SourceInfo(filename, {}))
        if problems:
            raise _to_error(problems[0], filename, {})
        assert policy is not None
        return policy

    @classmethod
    def default(cls) -> Policy:
        """The empty policy: no routes, every setting at its default (the no-policy behaviour)."""
        return _DEFAULT_POLICY

    # -- use -----------------------------------------------------------------------------------

    def match(
        self,
        model: str | None,
        *,
        metadata: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> RouteSpec:
        """The first route matching the request, or the default route (`name` None)."""
        compiled = self._compiled
        meta = metadata or {}
        lowered = (
            {k.lower(): v for k, v in headers.items()} if headers and compiled.uses_headers else {}
        )
        for matcher, spec in compiled.routes:
            if matcher.matches(model, meta, lowered):
                return spec
        return compiled.default

    @property
    def route_specs(self) -> tuple[RouteSpec, ...]:
        """Every route's effective settings, in order."""
        return self._compiled.specs

    @property
    def default_route(self) -> RouteSpec:
        """The settings used when no route matches."""
        return self._compiled.default

    def __eq__(self, other: object) -> bool:
        # Equal content is an equal policy, wherever it was read from (positions differ).
        return isinstance(other, Policy) and self._compiled.canonical == other._compiled.canonical

    def __hash__(self) -> int:
        return hash(self._compiled.canonical)

    def __repr__(self) -> str:
        names = ", ".join(repr(route.name) for route in self.routes)
        return f"Policy(routes=[{names}])"


_DEFAULT_POLICY = Policy()


# -- validation ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Problem:
    loc: Loc
    message: str
    on_key: bool = False
    """Point at the mapping key named by the last element of `loc`, not at its value."""


_TYPE_MESSAGES: Final[Mapping[str, str]] = {
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "too_short": "expected at least one entry",
    "string_too_short": "expected a non-empty string",
}


def _model_at(loc: Loc, root: type[BaseModel] | None = None) -> type[BaseModel] | None:
    """The model class found at `loc` under `root` (default `Policy`), for listing its keys."""
    current: type[BaseModel] = root or Policy
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        found = _model_in(field.annotation) if field is not None else None
        if found is None:
            return None
        current = found
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _problem_from_pydantic(error: Any, root: type[BaseModel] | None = None) -> _Problem:
    kind: str = error["type"]
    loc: Loc = tuple(error["loc"])
    value = error.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1], root)
        hint = _suggest(loc[-1], _keys_of(parent)) if parent else ""
        top = root or Policy
        where = f" in {parent.__name__.lower()}" if parent and parent is not top else ""
        return _Problem(loc, f"unknown key {loc[-1]!r}{where}{hint}", on_key=True)
    if kind == "missing":
        return _Problem(loc[:-1], f"missing required key {loc[-1]!r}")
    if loc and loc[-1] == "[key]":
        return _Problem(loc[:-1], _message(kind, error, value), on_key=True)
    return _Problem(loc, _message(kind, error, value))


def _message(kind: str, error: Any, value: object) -> str:
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", error["ctx"]["expected"])
        return f"expected one of {', '.join(choices)}; got {value!r}{_suggest(value, choices)}"
    if kind in _TYPE_MESSAGES:
        message = f"{_TYPE_MESSAGES[kind]}, got {_describe(value)}"
        if kind == "string_type":
            message += _quote_hint(value)
        elif kind in {"list_type", "tuple_type"} and isinstance(value, str | int | float):
            message += f"; write a single entry as a list: [{value}]"
        return message
    return str(error["msg"])


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _build(data: object, source: _SourceInfo) -> tuple[Policy | None, list[_Problem]]:
    if not isinstance(data, Mapping):
        return None, [_Problem((), f"a policy must be a mapping, got {_describe(data)}")]
    try:
        policy = Policy.model_validate(data, context=source)
    except ValidationError as exc:
        return None, _dedupe(_problem_from_pydantic(e) for e in exc.errors())
    problems = list(_semantic_problems(policy))
    return (None, problems) if problems else (policy, [])


def _dedupe(problems: Iterator[_Problem]) -> list[_Problem]:
    return list(dict.fromkeys(problems))


def _semantic_problems(policy: Policy) -> Iterator[_Problem]:
    """Checks that need the whole, typed policy: pydantic can't express them."""
    yield from _action_problems(("defaults",), policy.defaults.actions)
    first_use: dict[str, int] = {}
    for i, route in enumerate(policy.routes):
        here: Loc = ("routes", i)
        if route.name in first_use:
            yield _Problem(
                (*here, "name"),
                f"duplicate route name {route.name!r} "
                f"(first used by routes[{first_use[route.name]}])",
            )
        first_use.setdefault(route.name, i)
        if route.candidates is not None and not route.candidates:
            yield _Problem(
                (*here, "candidates"),
                "an empty candidate list can never route a request; list at least one model, "
                "or leave `candidates` out for the automatic order",
            )
        yield from _action_problems(here, route.actions or {})
        yield from _header_problems((*here, "match", "headers"), route.match.headers or {})
        yield from _shadow_problems(policy.routes, i)


def _action_problems(here: Loc, actions: Mapping[str, Action]) -> Iterator[_Problem]:
    for key, action in actions.items():
        why = not_strippable(_family(key))
        if action == "strip" and why is not None:
            yield _Problem((*here, "actions", key), f"'strip' is not allowed for {key}: {why}")


def _header_problems(here: Loc, headers: Mapping[str, Any]) -> Iterator[_Problem]:
    seen: dict[str, str] = {}
    for name in headers:
        if name.lower() in seen:
            yield _Problem(
                (*here, name),
                f"header {name!r} is listed twice (as {seen[name.lower()]!r}); "
                "header names are case-insensitive",
                on_key=True,
            )
        seen.setdefault(name.lower(), name)


# Glob characters per fnmatch; a pattern without them is a literal.
_GLOB_CHARS = re.compile(r"[*?\[]")


def _glob_covers(wide: str, narrow: str) -> bool:
    """Whether every string `narrow` matches is matched by `wide` (conservatively).

    Exact for literals; for patterns it recognises the common shapes (identical globs,
    ``*``, and ``prefix*`` over a pattern starting with that prefix) and otherwise
    answers False, so no route is ever wrongly called unreachable.
    """
    if wide == narrow or wide == "*":
        return True
    if not _GLOB_CHARS.search(narrow):
        return fnmatch.fnmatchcase(narrow, wide)
    if wide.endswith("*") and not _GLOB_CHARS.search(wide[:-1]):
        literal_head = _GLOB_CHARS.split(narrow, 1)[0]
        return literal_head.startswith(wide[:-1])
    return False


def _globs_cover(wide: Sequence[str] | None, narrow: Sequence[str] | None) -> bool:
    """Whether a condition `wide` admits everything condition `narrow` does."""
    if wide is None:
        return True
    if narrow is None:
        return False
    return all(any(_glob_covers(w, n) for w in wide) for n in narrow)


def _keyed_cover(
    wide: Mapping[str, Sequence[str]] | None,
    narrow: Mapping[str, Sequence[str]] | None,
    *,
    fold: bool = False,
) -> bool:
    def norm(key: str) -> str:
        return key.lower() if fold else key

    narrow_by_key = {norm(k): v for k, v in (narrow or {}).items()}
    return all(_globs_cover(globs, narrow_by_key.get(norm(k))) for k, globs in (wide or {}).items())


def _shadows(earlier: Match, later: Match) -> bool:
    """Whether `earlier` matches every request `later` matches."""
    return (
        _globs_cover(earlier.model, later.model)
        and _keyed_cover(earlier.metadata, later.metadata)
        and _keyed_cover(earlier.headers, later.headers, fold=True)
    )


def _shadow_problems(routes: Sequence[Route], i: int) -> Iterator[_Problem]:
    later = routes[i]
    for j in range(i):
        if _shadows(routes[j].match, later.match):
            where: Loc = (
                ("routes", i, "match") if "match" in later.model_fields_set else ("routes", i)
            )
            everything = (
                "every request"
                if not _has_conditions(routes[j].match)
                else "every request it would"
            )
            yield _Problem(
                where,
                f"route {later.name!r} can never match: route {routes[j].name!r} "
                f"(routes[{j}]) comes first and matches {everything}",
            )
            return


def _has_conditions(match: Match) -> bool:
    return bool(match.model or match.metadata or match.headers)


# -- YAML with positions -------------------------------------------------------------------------


def _positions(root: yaml.Node) -> tuple[dict[Loc, tuple[int, int]], list[_Problem]]:
    """Every data path's (line, column), 1-based, and the duplicate keys found on the way.

    Key positions are stored under ``(*path, key, "[key]")``.
    """
    positions: dict[Loc, tuple[int, int]] = {}
    duplicates: list[_Problem] = []

    def mark(node: yaml.Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def walk(node: yaml.Node, loc: Loc) -> None:
        positions.setdefault(loc, mark(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*loc, index))
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = key_node.value
                if key in first_line:
                    duplicates.append(
                        _Problem(
                            (*loc, key, "[dup]"),
                            f"duplicate key {key!r} (first on line {first_line[key]})",
                        )
                    )
                    positions[(*loc, key, "[dup]")] = mark(key_node)
                    continue
                first_line[key] = mark(key_node)[0]
                positions[(*loc, key, "[key]")] = mark(key_node)
                walk(value_node, (*loc, key))

    walk(root, ())
    return positions, duplicates


def _locate(positions: Mapping[Loc, tuple[int, int]], problem: _Problem) -> tuple[int, int] | None:
    """The (line, column) of the deepest node on the problem's path that the text has.

    Path parts that name no node (pydantic's union tags, a key that is missing) are
    skipped, so the error lands on the closest thing the author wrote.
    """
    if not positions:
        return None
    found: Loc = ()
    for part in problem.loc:
        for candidate in ((*found, part), (*found, str(part))):
            if candidate in positions:
                found = candidate
                break
    key = (*found, "[key]")
    if problem.on_key and found and str(found[-1]) == str(problem.loc[-1]) and key in positions:
        return positions[key]
    return positions[found]


def _render_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if part in ("[key]", "[dup]"):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_$][\w$-]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _to_error(
    problem: _Problem, filename: str, positions: Mapping[Loc, tuple[int, int]]
) -> PolicyError:
    where = _locate(positions, problem)
    line, column = where if where else (None, None)
    return PolicyError(
        problem.message,
        file=filename,
        line=line,
        column=column,
        path=_render_loc(problem.loc) or None,
    )


def _yaml_error(exc: yaml.YAMLError, filename: str) -> PolicyError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    if "'\\t'" in problem:  # PyYAML's wording for a tab where indentation goes
        message += "; indent with spaces, not tabs"
    if mark is None:
        return PolicyError(message, file=filename)
    return PolicyError(message, file=filename, line=mark.line + 1, column=mark.column + 1)


def check_policy_text(
    text: str, *, filename: str = "<policy>", limits: TextLimits | None = None
) -> tuple[Policy | None, tuple[PolicyError, ...]]:
    """Validate a YAML policy, collecting every problem instead of stopping at the first.

    Args:
        text: The YAML text.
        filename: The name errors show.
        limits: Bounds on the text (size, nodes, depth), checked before anything is
            validated; default `TextLimits()`.

    Returns:
        The policy (`None` if there are errors) and the errors, sorted by position.
    """
    composed = _compose(text, filename, "policy", limits or _DEFAULT_LIMITS)
    if isinstance(composed, tuple):
        return None, composed
    data, positions = composed.data, composed.positions
    try:
        policy, problems = _build(data, _SourceInfo(filename, positions))
    except RecursionError:  # data an alias made recursive
        return None, (_too_deep(filename, "policy"),)
    return policy, _sorted(_to_error(p, filename, positions) for p in problems)


def _too_deep(filename: str, what: str) -> PolicyError:
    # Nesting deeper than the stack, or an alias that contains itself (`a: &a [*a]`):
    # no valid file looks like either, and the loaders must only ever raise PolicyError.
    message = f"the {what} is nested too deeply or an alias refers to itself"
    return PolicyError(message, file=filename, line=1, column=1)


# -- bounds on the text, enforced while it is composed -------------------------------------------


@dataclass(frozen=True, slots=True)
class TextLimits:
    """Bounds on a YAML file caproute reads (a policy, a server config), checked before
    anything in it is validated.

    YAML aliases repeat a node without repeating its text: nine anchors of nine aliases
    each stand for 9^9 nodes in under 400 bytes, and everything after composition
    (positions, construction, validation) walks the repeated tree. So nodes are
    counted as composed, an alias counting every node it stands for, and composition
    stops as soon as a bound is crossed: the work done is bounded by the limits, not by
    what the text would expand to.
    """

    max_bytes: int = 1024 * 1024
    """Size of the text (UTF-8); policies are hand-written and a few kB."""
    max_nodes: int = 20_000
    """Mappings, sequences, keys and values, each alias counting the nodes it repeats.
    Shadowed-route checks compare every route with the ones before it, so this also
    bounds the time `check` takes (about 1,800 routes of a few conditions each)."""
    max_depth: int = 64
    """Nesting of mappings and sequences (a policy nests 7 deep)."""
    setting: str | None = None
    """How a user changes the limits (``CAPROUTE_POLICY_MAX_*``), named in the errors."""

    def _hint(self, name: str) -> str:
        return f"; set {self.setting}{name} to change the limit" if self.setting else ""


_DEFAULT_LIMITS = TextLimits()


class _OverLimit(Exception):
    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _Bounded:
    """A composer that counts nodes (aliases by what they repeat) and depth, and stops
    at the limits (PyYAML's `Composer.compose_node` is the hook); mixed into a loader."""

    def _bound(self, limits: TextLimits, what: str) -> None:
        self._limits = limits
        self._what = what
        self._nodes = 0
        self._depth = 0
        self._weights: dict[yaml.Node, int] = {}
        """Anchored node (hashed by identity) → the nodes it stands for, once composed."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[attr-defined]
        mark: yaml.Mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            node: yaml.Node | None = super().compose_node(parent, index)  # type: ignore[misc]
            weight = self._weights.get(node)  # type: ignore[arg-type]
            if weight is None:  # its anchor is still being composed: the alias is inside it
                raise _OverLimit(f"alias *{event.anchor} refers to a node that contains it", mark)
            self._count(weight, mark, alias=event.anchor)
            return node
        self._count(1, mark)
        before = self._nodes
        self._depth += 1
        if self._depth > self._limits.max_depth:
            raise _OverLimit(
                f"the {self._what} nests deeper than {self._limits.max_depth} levels"
                + self._limits._hint("DEPTH"),
                mark,
            )
        node = super().compose_node(parent, index)  # type: ignore[misc]
        self._depth -= 1
        if event.anchor is not None:
            self._weights[node] = self._nodes - before + 1
        return node

    def _count(self, weight: int, mark: yaml.Mark, *, alias: str | None = None) -> None:
        self._nodes += weight
        limit = self._limits.max_nodes
        if self._nodes <= limit:
            return
        if alias is not None:
            message = (
                f"aliases expand the {self._what} to more than {limit:,} nodes "
                f"(*{alias} repeats {weight:,})"
            )
        else:
            message = (
                f"the {self._what} has more than {limit:,} nodes (keys, values and list items)"
            )
        raise _OverLimit(message + self._limits._hint("NODES"), mark)


class _BoundedLoader(_Bounded, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader, bounded: the reference for error messages."""

    def __init__(self, text: str, limits: TextLimits, what: str) -> None:
        yaml.SafeLoader.__init__(self, text)
        self._bound(limits, what)


_CParser: Any
try:  # libyaml's parser, when PyYAML was built with it
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - every wheel PyYAML publishes has it
    _CParser = None


if _CParser is not None:

    class _FastBoundedLoader(
        _Bounded,
        yaml.composer.Composer,
        _CParser,  # type: ignore[misc]
        yaml.constructor.SafeConstructor,
        yaml.resolver.Resolver,
    ):
        """libyaml's parser (events) under the same Python composer and its limits.

        Scanning and parsing are most of a load's time, and libyaml does them ~20 times
        faster; composition (where the limits are counted) and construction stay
        PyYAML's. libyaml words some syntax errors differently, so a text it rejects
        is read again by `_BoundedLoader` for the error (the slow path is for bad files).
        """

        def __init__(self, text: str, limits: TextLimits, what: str) -> None:
            _CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._bound(limits, what)

        def dispose(self) -> None:
            """Nothing to release (PyYAML's own loaders drop their parser state)."""


def _over_size(text: str, limits: TextLimits) -> int | None:
    """The text's size in UTF-8 bytes when it is over `limits.max_bytes`, else None."""
    if len(text) <= limits.max_bytes // 4:  # a character is at most 4 bytes
        return None
    size = len(text) if len(text) > limits.max_bytes else len(text.encode("utf-8", "surrogatepass"))
    return size if size > limits.max_bytes else None


def size_error(size: int, limits: TextLimits, filename: str, what: str) -> PolicyError:
    """The error for a text of `size` bytes over `limits.max_bytes` (also for files,
    which the shell refuses before reading them whole)."""
    return PolicyError(
        f"the {what} is {size:,} bytes, over the limit of {limits.max_bytes:,}"
        + limits._hint("BYTES"),
        file=filename,
        line=1,
        column=1,
    )


def _fast_loader(text: str, limits: TextLimits, what: str) -> Any:
    if _CParser is None or _has_control(text):
        return _BoundedLoader(text, limits, what)
    return _FastBoundedLoader(text, limits, what)


_CONTROL = yaml.reader.Reader.NON_PRINTABLE  # what PyYAML's reader refuses


def _has_control(text: str) -> bool:
    """Characters YAML doesn't allow in a stream (PyYAML's reader refuses them with a
    position; such a text goes straight to it)."""
    return _CONTROL.search(text) is not None


@dataclass(frozen=True, slots=True)
class _Composed:
    data: object
    positions: Mapping[Loc, tuple[int, int]]


def _compose(
    text: str, filename: str, what: str, limits: TextLimits
) -> _Composed | tuple[PolicyError, ...]:
    """YAML text → data plus every path's position, or the errors that stop it."""
    if (size := _over_size(text, limits)) is not None:
        return (size_error(size, limits, filename, what),)
    # Compose first (nodes keep their marks), construct afterwards: constructing
    # directly would silently keep the last of two duplicate keys.
    loader: Any = None
    try:
        try:
            loader = _fast_loader(text, limits, what)
            root: yaml.Node | None = loader.get_single_node()
        except yaml.YAMLError:
            # Read again by PyYAML's own parser, for its wording of the error (and its
            # verdict, should the two parsers disagree).
            loader = _BoundedLoader(text, limits, what)  # its reader refuses control chars
            root = loader.get_single_node()
        if root is None:
            return (PolicyError(f"the {what} is empty", file=filename, line=1, column=1),)
        positions, duplicates = _positions(root)
        if duplicates:
            return _sorted(_to_error(p, filename, positions) for p in duplicates)
        data = loader.construct_document(root)
    except _OverLimit as exc:
        line, column = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark else (1, 1)
        return (PolicyError(exc.message, file=filename, line=line, column=column),)
    except yaml.YAMLError as exc:
        return (_yaml_error(exc, filename),)
    except RecursionError:
        return (_too_deep(filename, what),)
    finally:
        if loader is not None:
            loader.dispose()
    return _Composed(data, positions)


ModelT = TypeVar("ModelT", bound=BaseModel)


def check_model_text(
    text: str,
    model: type[ModelT],
    *,
    filename: str,
    what: str,
    semantic: Callable[[ModelT], Iterable[tuple[Loc, str]]] | None = None,
    limits: TextLimits | None = None,
) -> tuple[ModelT | None, tuple[PolicyError, ...]]:
    """Validate YAML `text` against any strict pydantic `model`, with the policy's diagnostics.

    The same machinery as `check_policy_text` (positions, duplicate keys, did-you-mean
    for unknown keys and literals) for other YAML files caproute reads, such as the
    proxy's server configuration. `semantic` returns ``(data path, message)`` pairs for
    checks the model can't express; they are located like pydantic's.

    Returns:
        The validated model (`None` if there are errors) and the errors, sorted by position.
    """
    composed = _compose(text, filename, what, limits or _DEFAULT_LIMITS)
    if isinstance(composed, tuple):
        return None, composed
    data, positions = composed.data, composed.positions
    problems: list[_Problem]
    if not isinstance(data, Mapping):
        problems = [_Problem((), f"a {what} must be a mapping, got {_describe(data)}")]
        return None, _sorted(_to_error(p, filename, positions) for p in problems)
    try:
        value = model.model_validate(data)
    except RecursionError:  # data an alias made recursive
        return None, (_too_deep(filename, what),)
    except ValidationError as exc:
        problems = _dedupe(_problem_from_pydantic(e, model) for e in exc.errors())
        return None, _sorted(_to_error(p, filename, positions) for p in problems)
    problems = [_Problem(loc, message) for loc, message in (semantic(value) if semantic else ())]
    if problems:
        return None, _sorted(_to_error(p, filename, positions) for p in problems)
    return value, ()


def _sorted(errors: Iterator[PolicyError]) -> tuple[PolicyError, ...]:
    return tuple(sorted(errors, key=lambda e: (e.line or 0, e.column or 0)))


# -- JSON Schema ---------------------------------------------------------------------------------


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file (draft 2020-12), for editor completion."""
    schema = Policy.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://caproute.invalid/policy.schema.json",
        **schema,
        "title": "caproute routing policy",
    }


# -- checks against a registry --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyWarning:
    """Something in a valid policy that looks wrong against a given registry."""

    message: str
    file: str
    line: int | None
    column: int | None
    path: str | None

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line, self.column) if p is not None)
        at = f" (at {self.path})" if self.path else ""
        return f"{where}: warning: {self.message}{at}"


def registry_warnings(policy: Policy, registry: Registry) -> tuple[PolicyWarning, ...]:
    """What looks wrong in a valid policy once a registry says which models exist.

    * a `match.model` glob that no model id or alias matches (likely a typo: requests
      may still name such a model, so this is a warning, not an error);
    * a candidate that matches no model;
    * a route left with nothing usable: it has candidates, doesn't list 'requested',
      and every model its candidates match is retired (or deprecated while the
      route disallows deprecated models).
    """
    names = _model_names(registry)
    problems: list[_Problem] = []
    for i, (route, spec) in enumerate(zip(policy.routes, policy.route_specs, strict=True)):
        for j, glob in enumerate(route.match.model or ()):
            if not _hits(registry, names, glob):
                problems.append(
                    _Problem(
                        ("routes", i, "match", "model", j),
                        f"no model in the registry matches {glob!r}"
                        + _suggest(glob, names, cutoff=_MODEL_CUTOFF),
                    )
                )
        problems.extend(_candidate_problems(registry, names, i, route.name, spec))
    warnings = (_warning(p, policy._filename, policy._positions) for p in problems)
    return tuple(sorted(warnings, key=lambda w: (w.line or 0, w.column or 0)))


def _candidate_problems(
    registry: Registry, names: Sequence[str], i: int, route_name: str, spec: RouteSpec
) -> Iterator[_Problem]:
    usable = False
    for j, glob in enumerate(spec.candidates):
        if glob == REQUESTED:
            usable = True
            continue
        # Like the router: a candidate glob expands over model ids, never aliases.
        hits = _hits(registry, registry.ids, glob)
        if not hits:
            yield _Problem(
                ("routes", i, "candidates", j),
                f"candidate {glob!r} matches no model in the registry"
                + _suggest(glob, names, cutoff=_MODEL_CUTOFF),
            )
        usable = usable or any(_usable(registry, hit, spec.allow_deprecated) for hit in hits)
    if spec.candidates and not usable:
        unusable = "retired" if spec.allow_deprecated is True else "retired or deprecated"
        yield _Problem(
            ("routes", i, "candidates"),
            f"route {route_name!r} has no usable candidate: every model it lists is "
            f"unknown to the registry or {unusable}",
        )


# Model names share long prefixes ("claude-"), so only a near-identical name is a
# useful suggestion.
_MODEL_CUTOFF = 0.85


def _model_names(registry: Registry) -> tuple[str, ...]:
    """Every name a request may use for a model: ids, learned aliases, undated aliases."""
    undated = (m.group("alias") for i in registry.ids if (m := _DATED_ID.match(i)))
    return tuple(dict.fromkeys((*registry.ids, *registry.aliases, *undated)))


_DATED_ID = re.compile(r"^(?P<alias>.+)-(?P<date>20\d{6})$")


def _hits(registry: Registry, names: Sequence[str], glob: str) -> list[str]:
    """The names `glob` matches; a literal is looked up (so aliases of any form work)."""
    if not _GLOB_CHARS.search(glob):
        return [glob] if glob in registry else []
    return [name for name in names if fnmatch.fnmatchcase(name, glob)]


def _usable(registry: Registry, model: str, allow_deprecated: DeprecatedTreatment) -> bool:
    # A candidate a route lists by name is an alternative, never "the requested model":
    # only `allow_deprecated: true` lets a deprecated one serve.
    if model not in registry or registry.is_retired(model):
        return False
    return allow_deprecated is True or registry.lifecycle(model) != "deprecated"


def _warning(
    problem: _Problem, filename: str, positions: Mapping[Loc, tuple[int, int]]
) -> PolicyWarning:
    where = _locate(positions, problem)
    return PolicyWarning(
        problem.message,
        file=filename,
        line=where[0] if where else None,
        column=where[1] if where else None,
        path=_render_loc(problem.loc) or None,
    )
