"""Which model takes a request, and which parameter edits it needs there.

Selection walks the candidates in order and, for each, plans the request as that model
would receive it (a `Draft`): every needed capability the model lacks is settled by the
route's action for it (the defaults per family are in `catalogue`), then the rule table
(`rules`) runs. The first candidate whose plan is neither blocked nor rejected wins;
every candidate passed over keeps its reason.

Known beats unknown. The registry is three-state, and the route's ``unknown`` says how
to read a capability it doesn't state:

* ``prefer-known`` (the default) plans in two passes. The first reads "unknown" as
  "missing": a candidate must be *known* to support what the request needs, and an
  adjustable parameter (effort level, thinking type, context-management edit,
  citations) is adjusted to a value known to be supported rather than gambled on.
  Only when no candidate passes does the second pass read "unknown" as "present" and
  take the first candidate that isn't known to lack anything (the decision notes what
  was gambled on).
* ``supported`` runs only the second pass, ``unsupported`` only the first.

Candidate order: the route's ``candidates`` (globs expanded in registry order,
``requested`` = the requested model); with none, the requested model, then the models
of its ``line`` (registry order, newest first), then every other model, newest first.
For an overload fallback (`fallback=True`) the automatic order stops at the requested
model's line: a cheap request never moves to another price class on its own. Retired
models, tombstones and excluded models are never chosen; a deprecated one only when
the request names it (``allow_deprecated: requested``, the default) or the route allows
deprecated alternatives (``true``). A conversation carrying thinking blocks is tried
on its own model first whenever that model is a candidate, because another model may
drop or reject those blocks ("Extended thinking" page, on thinking blocks in the
history); if it is rerouted anyway, the decision says so in a note, as it does when
the chosen model is of another line (another price class).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .catalogue import PARAMETER_PREFIX, Action, Missing, family_of, known_leaf
from .decision import MISSING, Candidate
from .draft import Draft
from .policy import RouteSpec
from .policy_fields import REQUESTED, UnknownTreatment
from .registry import Limits, Registry, Support
from .request_needs import JSONPath, RequestNeeds, format_path
from .rules import CANDIDATE_RULES, REQUEST_RULES, settle

__all__ = [
    "PTC_OLD_SHAPE_KEY",
    "Planner",
    "Selection",
    "excluded_ids",
    "refused_parameters",
    "resolve_action",
]

PTC_OLD_SHAPE_KEY: Final = "programmatic_tool_calling"
"""Where programmatic tool calling is looked up on a registry without ``server_tools``
(see `Planner.effective_key`)."""

_GLOB_CHARS = frozenset("*?[")
_SUPPORTED: Final = Support.SUPPORTED
_UNKNOWN: Final = Support.UNKNOWN
_UNSUPPORTED: Final = Support.UNSUPPORTED

_PASSES: Final[Mapping[UnknownTreatment, tuple[bool, ...]]] = {
    "prefer-known": (True, False),
    "unsupported": (True,),
    "supported": (False,),
}
"""Per ``unknown`` setting, the selection passes: True = strict (unknown is missing)."""


def resolve_action(
    route: RouteSpec, key: str, *, default: Action, meaningful: frozenset[Action]
) -> tuple[Action, bool]:
    """The action to take for a capability or rule key, and whether the policy chose it.

    ``auto`` becomes the key's `default`; an action that means nothing for it
    (``adjust`` an image, ``strip`` a batch) falls back to `default` too, so every
    policy has one literal reading.
    """
    action = route.action_for(key)
    if action == "auto" or action not in meaningful:
        return default, False
    return action, True


# Containers removed when the edits leave them empty (the API rejects an empty
# `context_management`, and an empty `output_config` is noise in the diff).
_PRUNED_CONTAINERS: Final = ("output_config", "context_management")


def _prune_emptied(draft: Draft) -> None:
    """Replace edits that empty a container with the container's removal."""
    for name in _PRUNED_CONTAINERS:
        container = draft.body.get(name)
        if not isinstance(container, dict) or not container:
            continue
        inside = [p for p in draft.edits if len(p) > 1 and p[0] == name]
        if not inside or not _emptied(container, draft, name, inside):
            continue
        removed = [draft.edits.pop(p) for p in inside]
        reasons = dict.fromkeys(e.reason for e in removed)  # ordered, unique
        draft.remove((name,), removed[0].action, "; ".join(reasons))


def _emptied(container: Mapping[str, Any], draft: Draft, name: str, inside: list[JSONPath]) -> bool:
    if any(draft.edits[p].after is not MISSING for p in inside):
        return False
    removed_keys = {p[1] for p in inside if len(p) == 2}
    if name == "context_management":
        edits = container.get("edits")
        removed_edits = {p[2] for p in inside if len(p) == 3 and p[1] == "edits"}
        all_edits_gone = isinstance(edits, list) and len(removed_edits) == len(edits)
        return all_edits_gone or removed_keys >= container.keys()
    return removed_keys >= container.keys()


# -- selection ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of selection for one request."""

    draft: Draft | None
    """The chosen candidate's plan (`None` when rejected)."""
    candidates: tuple[Candidate, ...]
    rejected: str | None = None
    """Why the request must not be sent."""
    reroute_reason: str | None = None
    """Why the requested model was not chosen (when another one was)."""
    notes: tuple[str, ...] = ()


class _Pass:
    """One selection pass over the candidates (strict or gambling)."""

    __slots__ = ("considered", "saw_unknown", "strict")

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.considered: list[Candidate] = []
        self.saw_unknown = False
        """Whether some candidate was held back only by an unstated capability: only
        then can a gambling pass find something the strict one didn't."""


class Planner:
    """Plans requests against one registry, memoising what repeats between requests.

    A `PolicyEngine` owns one, for its registry and policy: support lookups are keyed by
    (model, path), candidate orders by model and resolved actions by (route object,
    key), and all of them live exactly as long as the data they describe.
    """

    __slots__ = (
        "registry",
        "_support",
        "_has_server_tools",
        "_auto_order",
        "_actions",
        "_limits",
        "_unjudged",
        "_stated",
        "refused",
    )

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.refused = refused_parameters(registry)
        """Model id → the plain parameters it was seen to refuse (usually empty)."""
        self._limits: dict[str, Limits] = {}
        self._actions: dict[tuple[RouteSpec, str, Action], tuple[Action, bool]] = {}
        """(route id, key, default) → resolved action. Route ids are stable: the routes
        live in the engine's policy for as long as this planner."""
        self._support: dict[tuple[str, str], Support] = {}
        self._has_server_tools: dict[str, bool] = {}
        self._auto_order: dict[tuple[str, bool], tuple[str, ...]] = {}
        self._unjudged: dict[str, bool] = {}
        self._stated: frozenset[str] | None = None

    # -- registry lookups (memoised) --------------------------------------------------------

    def support(self, model: str, path: str) -> Support:
        """`Registry.supports`, memoised."""
        key = (model, path)
        found = self._support.get(key)
        if found is None:
            found = self._support[key] = self.registry.supports(model, path)
        return found

    def unjudged(self, path: str) -> bool:
        """Whether `path` is beyond what the registry and caproute know: no model states
        it and caproute was not written for it (``effort.ultra``, an edit type newer than
        this release). Such a use is sent as it is, for the API to judge (and to teach,
        should it refuse): stripping or rerouting on no evidence would mangle it."""
        found = self._unjudged.get(path)
        if found is None:
            stated = self._stated
            if stated is None:
                registry = self.registry
                stated = self._stated = frozenset(
                    key for model in registry.ids for key in registry.capability_flags(model)
                )
            found = self._unjudged[path] = path not in stated and not known_leaf(path)
        return found

    def _family_lacking(self, model: str, path: str) -> bool:
        """Whether a node above `path` says ``supported: false`` for `model` (a model
        without effort lacks every level, even one nobody has heard of)."""
        head = path.rpartition(".")[0]
        while head:
            if self.support(model, head) is _UNSUPPORTED:
                return True
            head = head.rpartition(".")[0]
        return False

    def ok(self, model: str, path: str, strict: bool) -> bool:
        """Whether `model` can take `path`: supported, or (not `strict`) not known to lack it."""
        found = self._support.get((model, path))
        if found is None:
            found = self.support(model, path)
        return found is _SUPPORTED or (found is _UNKNOWN and not strict)

    def effective_key(self, model: str, capability: str) -> str:
        """The registry key that gates `capability` on `model`.

        Registries from SDKs before 1.12 have no ``server_tools``: there, top-level
        ``code_execution`` meant "any code-execution tool"
        (``anthropic.types.ModelInfo`` of SDK 0.x), so it gates the tools, and it says
        nothing about programmatic tool calling (``code_execution`` in the 2.x meaning).
        That is read from `PTC_OLD_SHAPE_KEY`, a key no answer states: unknown whatever
        the tools' key says (the answer is silent about it), and a fact learned for it
        leaves the tools' key alone.
        """
        if capability != "server_tools.code_execution" and capability != "code_execution":
            return capability
        has = self._has_server_tools.get(model)
        if has is None:
            has = self._has_server_tools[model] = any(
                p == "server_tools" or p.startswith("server_tools.")
                for p in self.registry.capability_flags(model)
            )
        if has:
            return capability
        return "code_execution" if capability != "code_execution" else PTC_OLD_SHAPE_KEY

    def auto_order(self, requested: str, *, same_line_only: bool = False) -> tuple[str, ...]:
        """The default candidate order for a requested (canonical) model id."""
        key = (requested, same_line_only)
        order = self._auto_order.get(key)
        if order is None:
            line = _line(self, requested)
            same_line = [i for i in self.registry.ids if i != requested and _line(self, i) == line]
            others = (
                []
                if same_line_only
                else [i for i in self.registry.ids if i != requested and i not in same_line]
            )
            order = self._auto_order[key] = (requested, *same_line, *others)
        return order

    # -- planning ---------------------------------------------------------------------------

    def plan(
        self,
        body: Mapping[str, Any],
        needs: RequestNeeds,
        model: str,
        route: RouteSpec,
        api_version: str,
        run: _Pass | None = None,
    ) -> Draft:
        """The request as `model` would receive it under `route`.

        `run` is the selection pass (default: strict, i.e. unknown reads as missing).
        """
        strict = run.strict if run is not None else True
        limits = self._limits.get(model)
        if limits is None:
            limits = self._limits[model] = self.registry.limits(model)
        draft = Draft.start(
            body,
            needs,
            model,
            api_version=api_version,
            max_tokens=limits.max_tokens,
            max_input_tokens=limits.max_input_tokens,
            model_has=lambda path: self.ok(model, path, strict),
            model_lacks=lambda path: self.support(model, path) is _UNSUPPORTED,
        )
        if self.refused:
            draft.refused_parameters = self.refused.get(model, _NONE_REFUSED)
        for capability in needs.paths:
            key = self.effective_key(model, capability)
            if self.ok(model, key, strict):
                continue
            if self.unjudged(key) and not self._family_lacking(model, key):
                draft.notes.append(
                    f"no model in the registry states {key} and caproute doesn't know it: "
                    "sent as is, for the API to judge"
                )
                continue
            known = self.support(model, key) is _UNSUPPORTED
            if not known and run is not None:
                run.saw_unknown = True
            self._settle_capability(draft, capability, key, route, known=known)
            if draft.stopped:
                return draft
        for rule in CANDIDATE_RULES:
            problem = rule.check(draft)
            if problem is None:
                continue
            action, explicit = self.action(route, rule.key, rule.default, rule.meaningful)
            settle(draft, problem, action, explicit, rule.fixes.get(action))
            if draft.stopped:
                return draft
        if draft.edits:
            _prune_emptied(draft)
        return draft

    def _settle_capability(
        self, draft: Draft, capability: str, key: str, route: RouteSpec, *, known: bool
    ) -> None:
        family = family_of(capability)
        action, explicit = self.action(route, capability, family.default, family.meaningful)
        where = draft.needs.capabilities[capability]
        fix = family.fixes.get(action)
        if fix is not None:
            fix(draft, Missing(capability, where))
            return
        verb = "lacks" if known else "is not known to support"
        problem = f"{verb} {key}" + (f" ({format_path(where[0])})" if where[0] else "")
        if action == "reject" and not known:
            # Refuse only what the registry says the model lacks; an unstated
            # capability passes this candidate over instead.
            action, explicit = "reroute", False
        settle(draft, problem, action, explicit, None)

    def action(
        self, route: RouteSpec, key: str, default: Action, meaningful: frozenset[Action]
    ) -> tuple[Action, bool]:
        """`resolve_action`, memoised per route and key."""
        cache_key = (route, key, default)
        found = self._actions.get(cache_key)
        if found is None:
            found = self._actions[cache_key] = resolve_action(
                route, key, default=default, meaningful=meaningful
            )
        return found

    def select(
        self,
        body: Mapping[str, Any],
        needs: RequestNeeds,
        route: RouteSpec,
        *,
        api_version: str,
        exclude: Collection[str] = (),
        fallback: bool = False,
    ) -> Selection:
        """Choose a model for the request (see the module docstring for the order).

        `fallback` marks an overload fallback: the automatic order then stays within
        the requested model's line (price class).
        """
        for request_rule in REQUEST_RULES:
            problem = request_rule.check(needs, api_version)
            if problem is not None:
                return Selection(None, (), rejected=problem)
        requested = self.registry.resolve(needs.params.model)
        names = self._candidate_names(needs, route, requested, fallback)
        passes = _PASSES[route.unknown]
        failed: list[_Pass] = []
        for strict in passes:
            run = _Pass(strict)
            chosen = self._first_usable(
                body, needs, route, api_version, exclude, names, requested, run
            )
            if isinstance(chosen, Selection):
                return chosen  # refused outright (the policy said reject)
            if chosen is not None:
                return self._chosen(chosen, tuple(run.considered), needs, requested, run, passes)
            failed.append(run)
            if not run.saw_unknown:
                break  # a gambling pass would see exactly the same
        last = failed[-1]
        reasons = "; ".join(f"{c.model}: {c.reason}" for c in last.considered) or "no candidates"
        return Selection(
            None,
            tuple(last.considered),
            rejected=f"no candidate can serve the request ({reasons})",
        )

    def _first_usable(
        self,
        body: Mapping[str, Any],
        needs: RequestNeeds,
        route: RouteSpec,
        api_version: str,
        exclude: Collection[str],
        names: list[str],
        requested: str | None,
        run: _Pass,
    ) -> Draft | Selection | None:
        """The first candidate's plan that is neither blocked nor rejected, a rejection,
        or `None` (every candidate was passed over; `run.considered` says why)."""
        considered = run.considered
        seen: set[str] = set()
        for name in names:
            model = self.registry.resolve(name)
            if model is None:
                considered.append(Candidate(name, False, "not in the registry"))
                continue
            if model in seen:
                continue
            seen.add(model)
            passed_over = self._unusable(model, route, exclude, requested)
            if passed_over is None:
                draft = self.plan(body, needs, model, route, api_version, run)
                if draft.rejected is not None:
                    considered.append(Candidate(model, False, draft.rejected))
                    reason = f"{model}: {draft.rejected}"
                    return Selection(None, tuple(considered), rejected=reason)
                passed_over = draft.blocked
            if passed_over is not None:
                considered.append(Candidate(model, False, passed_over))
                continue
            considered.append(Candidate(model, True))
            return draft
        return None

    def _chosen(
        self,
        draft: Draft,
        considered: tuple[Candidate, ...],
        needs: RequestNeeds,
        requested: str | None,
        run: _Pass,
        passes: tuple[bool, ...],
    ) -> Selection:
        notes = list(draft.notes)
        if not run.strict and len(passes) > 1:
            unknown = [
                p
                for p in needs.paths
                if self.support(draft.model, self.effective_key(draft.model, p)) is _UNKNOWN
            ]
            notes.append(
                "no candidate is known to support everything the request needs; "
                f"{draft.model} was chosen though the registry doesn't state "
                f"{', '.join(unknown) or 'some of it'}"
            )
        if draft.model == requested:
            return Selection(draft, considered, notes=tuple(notes))
        why = next(
            (
                f"{needs.params.model}: {c.reason}"
                for c in considered
                if c.model in (requested, needs.params.model) and c.reason
            ),
            f"the route does not list {needs.params.model}",
        )
        if needs.thinking_history is not None:
            notes.append(
                "the conversation carries thinking blocks "
                f"({format_path(needs.thinking_history)}); moving it from {needs.params.model} to "
                f"{draft.model} may make the API drop or reject them (preserved-thinking checks)"
            )
        if requested is not None:
            old, new = _line(self, requested), _line(self, draft.model)
            if old is not None and new is not None and old != new:
                notes.append(
                    f"{draft.model} is in the {new} line, {needs.params.model} in the {old} line: "
                    "likely another price class"
                )
        return Selection(draft, considered, reroute_reason=why, notes=tuple(notes))

    def _unusable(
        self, model: str, route: RouteSpec, exclude: Collection[str], requested: str | None
    ) -> str | None:
        lifecycle = self.registry.lifecycle(model)
        if lifecycle == "retired":
            return self.registry.unavailable_reason(model) or "retired"
        if model in exclude:
            return "excluded (unavailable upstream right now)"
        if lifecycle == "deprecated":
            allow = route.allow_deprecated
            if allow is False:
                return "deprecated, and the policy disallows deprecated models"
            if allow == "requested" and model != requested:
                return (
                    "deprecated (used only when requested; allow_deprecated: true makes "
                    "deprecated models alternatives)"
                )
        return None

    def _candidate_names(
        self, needs: RequestNeeds, route: RouteSpec, requested: str | None, fallback: bool
    ) -> list[str]:
        if not route.candidates:
            if requested is None:
                return []
            return list(self.auto_order(requested, same_line_only=fallback))
        names: list[str] = []
        for entry in route.candidates:
            if entry == REQUESTED:
                names.append(needs.params.model)
            elif _GLOB_CHARS.isdisjoint(entry):
                names.append(entry)
            else:
                names.extend(i for i in self.registry.ids if fnmatch.fnmatchcase(i, entry))
        if needs.thinking_history is not None and needs.params.model in names[1:]:
            # Keep a conversation with thinking blocks on its model when it is allowed.
            names.remove(needs.params.model)
            names.insert(0, needs.params.model)
        return names


def _line(planner: Planner, model: str) -> str | None:
    info = planner.registry.get(model)
    return info.line if info is not None else None


_NONE_REFUSED: frozenset[str] = frozenset()


def refused_parameters(registry: Registry) -> Mapping[str, frozenset[str]]:
    """Model id → the plain parameters a learned fact says it refuses
    (``parameters.<name>`` = ``False`` in force on it); empty when none."""
    found: dict[str, frozenset[str]] = {}
    for fact in registry.learned:
        key = fact.key
        if (
            key.startswith(PARAMETER_PREFIX)
            and fact.value is False
            and key in registry.learned_keys(fact.model)
        ):
            name = key[len(PARAMETER_PREFIX) :]
            found[fact.model] = found.get(fact.model, _NONE_REFUSED) | {name}
    return found


def excluded_ids(registry: Registry, exclude: Iterable[str]) -> frozenset[str]:
    """`exclude` as canonical ids (aliases resolved; unknown names kept as given)."""
    return frozenset(registry.resolve(name) or name for name in exclude)
