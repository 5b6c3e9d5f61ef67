"""The checks on a policy pydantic cannot express (unique route names, shadowed routes,
``strip`` on message content, header names), `check_policy_text`, and the warnings a
valid policy earns against a registry (`registry_warnings`)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .._exceptions import PolicyError
from .catalogue import Action, not_strippable
from .policy import Match, Policy, Route, RouteSpec, SourceInfo
from .policy_fields import REQUESTED, DeprecatedTreatment, capability_family
from .yaml_text import (
    DEFAULT_LIMITS,
    Loc,
    Problem,
    TextLimits,
    compose,
    dedupe,
    describe,
    locate,
    problem_from_pydantic,
    render_loc,
    sorted_errors,
    suggest,
    to_error,
    too_deep,
)

if TYPE_CHECKING:
    from .registry import Registry

__all__ = [
    "PolicyWarning",
    "build_policy",
    "check_policy_text",
    "registry_warnings",
]


def build_policy(data: object, source: SourceInfo) -> tuple[Policy | None, list[Problem]]:
    if not isinstance(data, Mapping):
        return None, [Problem((), f"a policy must be a mapping, got {describe(data)}")]
    try:
        policy = Policy.model_validate(data, context=source)
    except ValidationError as exc:
        return None, dedupe(problem_from_pydantic(e, Policy) for e in exc.errors())
    problems = list(_semantic_problems(policy))
    return (None, problems) if problems else (policy, [])


def _semantic_problems(policy: Policy) -> Iterator[Problem]:
    """Checks that need the whole, typed policy: pydantic can't express them."""
    yield from _action_problems(("defaults",), policy.defaults.actions)
    first_use: dict[str, int] = {}
    for i, route in enumerate(policy.routes):
        here: Loc = ("routes", i)
        if route.name in first_use:
            yield Problem(
                (*here, "name"),
                f"duplicate route name {route.name!r} "
                f"(first used by routes[{first_use[route.name]}])",
            )
        first_use.setdefault(route.name, i)
        if route.candidates is not None and not route.candidates:
            yield Problem(
                (*here, "candidates"),
                "an empty candidate list can never route a request; list at least one model, "
                "or leave `candidates` out for the automatic order",
            )
        yield from _action_problems(here, route.actions or {})
        yield from _header_problems((*here, "match", "headers"), route.match.headers or {})
        yield from _shadow_problems(policy.routes, i)


def _action_problems(here: Loc, actions: Mapping[str, Action]) -> Iterator[Problem]:
    for key, action in actions.items():
        why = not_strippable(capability_family(key))
        if action == "strip" and why is not None:
            yield Problem((*here, "actions", key), f"'strip' is not allowed for {key}: {why}")


def _header_problems(here: Loc, headers: Mapping[str, Any]) -> Iterator[Problem]:
    seen: dict[str, str] = {}
    for name in headers:
        if name.lower() in seen:
            yield Problem(
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


def _shadow_problems(routes: Sequence[Route], i: int) -> Iterator[Problem]:
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
            yield Problem(
                where,
                f"route {later.name!r} can never match: route {routes[j].name!r} "
                f"(routes[{j}]) comes first and matches {everything}",
            )
            return


def _has_conditions(match: Match) -> bool:
    return bool(match.model or match.metadata or match.headers)


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
    composed = compose(text, filename, "policy", limits or DEFAULT_LIMITS)
    if isinstance(composed, tuple):
        return None, composed
    data, positions = composed.data, composed.positions
    try:
        policy, problems = build_policy(data, SourceInfo(filename, positions))
    except RecursionError:  # data an alias made recursive
        return None, (too_deep(filename, "policy"),)
    return policy, sorted_errors(to_error(p, filename, positions) for p in problems)


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
    problems: list[Problem] = []
    for i, (route, spec) in enumerate(zip(policy.routes, policy.route_specs, strict=True)):
        for j, glob in enumerate(route.match.model or ()):
            if not _hits(registry, names, glob):
                problems.append(
                    Problem(
                        ("routes", i, "match", "model", j),
                        f"no model in the registry matches {glob!r}"
                        + suggest(glob, names, cutoff=_MODEL_CUTOFF),
                    )
                )
        problems.extend(_candidate_problems(registry, names, i, route.name, spec))
    warnings = (_warning(p, policy._filename, policy._positions) for p in problems)
    return tuple(sorted(warnings, key=lambda w: (w.line or 0, w.column or 0)))


def _candidate_problems(
    registry: Registry, names: Sequence[str], i: int, route_name: str, spec: RouteSpec
) -> Iterator[Problem]:
    usable = False
    for j, glob in enumerate(spec.candidates):
        if glob == REQUESTED:
            usable = True
            continue
        # Like the router: a candidate glob expands over model ids, never aliases.
        hits = _hits(registry, registry.ids, glob)
        if not hits:
            yield Problem(
                ("routes", i, "candidates", j),
                f"candidate {glob!r} matches no model in the registry"
                + suggest(glob, names, cutoff=_MODEL_CUTOFF),
            )
        usable = usable or any(_usable(registry, hit, spec.allow_deprecated) for hit in hits)
    if spec.candidates and not usable:
        unusable = "retired" if spec.allow_deprecated is True else "retired or deprecated"
        yield Problem(
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
    problem: Problem, filename: str, positions: Mapping[Loc, tuple[int, int]]
) -> PolicyWarning:
    where = locate(positions, problem)
    return PolicyWarning(
        problem.message,
        file=filename,
        line=where[0] if where else None,
        column=where[1] if where else None,
        path=render_loc(problem.loc) or None,
    )
