"""Routing policies: YAML text in, a validated, immutable `Policy` out.

A policy says, per kind of request, which models may serve it and what to do when the
chosen model lacks something the request needs (see ``docs/policy.md``). Why it is
built the way it is:

* **Strict, because people write these files by hand.** The pydantic models forbid
  unknown keys and take scalars strictly (``"1"`` is not ``1``, ``"no"`` is not
  ``false``; the field types are in `policy_fields`), and the checks pydantic cannot
  express (unique route names, routes an earlier route shadows, ``strip`` on message
  content) run right after it (`policy_check`). A policy that loads is one the router
  can follow literally.
* **Errors point at the text.** `yaml_text` reads the YAML within bounds and turns each
  problem into a `PolicyError` reading ``file:line:column: message`` with a
  did-you-mean for misspelt names.
* **Sans-IO.** This package parses text it is handed; `caproute._registry.policy_files.load_policy`
  reads files.
* **Matching is on the hot path.** Each route's globs are compiled into one regular
  expression per condition when the policy is built, and the effective settings of
  each route (defaults merged in) are precomputed as a hashable `RouteSpec`, so
  `Policy.match` only runs a few regex matches per request.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cached_property
from types import MappingProxyType
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictBool, StrictStr

from .catalogue import Action, not_strippable
from .policy_fields import (
    STATUS_CLASSES,
    Actions,
    DeprecatedAllowance,
    DeprecatedTreatment,
    FallbackStatus,
    Glob,
    Globs,
    HeaderGlobs,
    MetadataGlobs,
    UnknownTreatment,
    Version,
    capability_family,
)
from .yaml_text import Loc, TextLimits, to_error

__all__ = [
    "Defaults",
    "Match",
    "Policy",
    "Route",
    "RouteSpec",
    "SourceInfo",
    "policy_json_schema",
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
        if self.on_unsupported == "strip" and not_strippable(capability_family(capability_path)):
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
        codes.update(STATUS_CLASSES[entry] if isinstance(entry, str) else (entry,))
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


@dataclass(frozen=True, slots=True)
class SourceInfo:
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
        if isinstance(context, SourceInfo):
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
        from .policy_check import check_policy_text  # it builds policies: imported on use

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
        from .policy_check import build_policy  # it builds policies: imported on use

        policy, problems = build_policy(data, SourceInfo(filename, {}))
        if problems:
            raise to_error(problems[0], filename, {})
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
