"""Which model takes a request, and which parameter edits it needs there.

Selection walks the candidates in order and, for each, plans the request as that model
would receive it (a `Draft`): every needed capability the model lacks is settled by the
route's action for it, then the rule table runs. The first candidate whose plan is
neither blocked nor rejected wins; every candidate passed over keeps its reason.

The no-policy defaults (the ``auto`` action), per capability family, and why:

=====================  =========  ===============================================
family                 auto       why
=====================  =========  ===============================================
thinking               adjust     ``enabled`` ↔ ``adaptive`` keeps the intent
effort                 adjust     the nearest level (downwards first), else removed
context_management     strip      edits only save tokens; the request still works
image_input, pdf_input reroute    message content is never removed
citations              reroute    stripping changes a content block and the answer
structured_outputs     reroute    a JSON schema cannot be emulated
server_tools, code_…   reroute    dropping a tool changes what the model can do
compaction, batch      reroute    nothing to adjust
=====================  =========  ===============================================

The rules' defaults are in `rules.CANDIDATE_RULES` (clamp ``max_tokens``, fix the
thinking budget, ``tool_choice`` → ``auto``, strip sampling, reroute on a too-small
context window). An action that means nothing for a capability (``adjust`` an image)
reads as that capability's default, so every policy has one literal reading.

Candidate order: the route's ``candidates`` (globs expanded in registry order,
``requested`` = the requested model); with none, the requested model, then the models
of its ``line`` (registry order, newest first), then every other model, newest first.
Retired and excluded models are never chosen; deprecated ones only if the route allows
them. A conversation carrying thinking blocks is tried on its own model first whenever
that model is a candidate, because another model may drop or reject those blocks
(api-facts §3.9); if it is rerouted anyway, the decision says so in a note.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from .decision import MISSING, Candidate
from .features import JSONPath, RequestNeeds, format_path
from .policy import REQUESTED, Action, RouteSpec
from .registry import Limits, Registry, Support
from .rules import CANDIDATE_RULES, REQUEST_RULES, Draft, resolve_action, settle

__all__ = ["EFFORT_LEVELS", "Planner", "Selection"]

EFFORT_LEVELS: Final = ("low", "medium", "high", "xhigh", "max")
"""``output_config.effort`` values, from least to most effort."""

_GLOB_CHARS = frozenset("*?[")
_SUPPORTED: Final = Support.SUPPORTED
_UNKNOWN: Final = Support.UNKNOWN


class Missing(NamedTuple):
    """A capability the candidate lacks, as a fix sees it (a tuple: made per problem)."""

    capability: str
    """The capability path (``effort.max``, ``server_tools.web_search``...)."""
    where: tuple[JSONPath, ...]
    """Every place in the body that needs it."""


CapabilityFix = Callable[[Draft, Missing], None]
"""A fix for a missing capability, recording its edits on the draft."""


# -- capability fixes --------------------------------------------------------------------------


def _effort_adjust(draft: Draft, missing: Missing) -> None:
    """The nearest supported effort level, downwards first; none at all → remove it."""
    level = draft.effort
    if draft.model_has("effort") and level in EFFORT_LEVELS:
        i = EFFORT_LEVELS.index(level)
        for other in (*reversed(EFFORT_LEVELS[:i]), *EFFORT_LEVELS[i + 1 :]):
            if draft.model_has(f"effort.{other}"):
                draft.effort = other
                reason = f"{draft.model} has no effort level {level!r}"
                draft.edit(("output_config", "effort"), other, "adjust", reason)
                return
    _effort_strip(draft, missing)


def _effort_strip(draft: Draft, missing: Missing) -> None:
    draft.effort = None
    reason = f"{draft.model} lacks {missing.capability}"
    draft.remove(("output_config", "effort"), "strip", reason)


# What `adjust` tries instead of a thinking type the model lacks, in order.
_THINKING_ALTERNATIVES: Final[Mapping[str, tuple[str, ...]]] = {
    "enabled": ("adaptive",),
    "adaptive": ("enabled",),
    "between_tools": ("disabled",),
    "disabled": (),
}


def _thinking_adjust(draft: Draft, missing: Missing) -> None:
    """Switch to the closest thinking type the model has; none → omit (model default)."""
    current = draft.thinking_type or ""
    for other in _THINKING_ALTERNATIVES.get(current, ()):
        if draft.model_has(f"thinking.types.{other}"):
            draft.switch_thinking(other, f"{draft.model} has no thinking type {current!r}")
            return
    draft.drop_thinking(
        f"{draft.model} lacks {missing.capability} and has no close type; the model default applies"
    )


def _thinking_strip(draft: Draft, missing: Missing) -> None:
    draft.drop_thinking(f"{draft.model} lacks {missing.capability}")


def _strip_key_at(key: str) -> CapabilityFix:
    """A fix removing `key` inside each location (``citations`` of a document block)."""

    def strip(draft: Draft, missing: Missing) -> None:
        for path in missing.where:
            draft.remove((*path, key), "strip", f"{draft.model} lacks {missing.capability}")

    return strip


def _strip_locations(draft: Draft, missing: Missing) -> None:
    """Remove each location itself (a tool, an edit, ``output_config.format``, ...)."""
    for path in missing.where:
        draft.remove(path, "strip", f"{draft.model} lacks {missing.capability}")


def _strip_code_execution_callers(draft: Draft, missing: Missing) -> None:
    """Drop the ``code_execution_*`` entries of ``allowed_callers`` (the key if none remain)."""
    reason = f"{draft.model} lacks {missing.capability} (programmatic tool calling)"
    for path in missing.where:
        callers = _at(draft.body, path)
        kept = [c for c in callers if not (isinstance(c, str) and c.startswith("code_execution_"))]
        draft.edit(path, kept if kept else MISSING, "strip", reason)


def _at(body: Any, path: JSONPath) -> Any:
    node = body
    for key in path:
        node = node[key]
    return node


@dataclass(frozen=True, slots=True)
class _Family:
    default: Action
    fixes: Mapping[Action, CapabilityFix]
    meaningful: frozenset[Action] = frozenset()
    """The actions with a meaning here (the fixes, reroute, reject); set on creation."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "meaningful", frozenset({*self.fixes, "reroute", "reject"}))


_FAMILIES: Final[Mapping[str, _Family]] = {
    "thinking": _Family("adjust", {"adjust": _thinking_adjust, "strip": _thinking_strip}),
    "effort": _Family("adjust", {"adjust": _effort_adjust, "strip": _effort_strip}),
    "image_input": _Family("reroute", {}),
    "pdf_input": _Family("reroute", {}),
    "citations": _Family("reroute", {"strip": _strip_key_at("citations")}),
    "structured_outputs": _Family("reroute", {"strip": _strip_locations}),
    "server_tools": _Family("reroute", {"strip": _strip_locations}),
    "code_execution": _Family("reroute", {"strip": _strip_code_execution_callers}),
    "context_management": _Family("strip", {"strip": _strip_locations}),
    "compaction": _Family("reroute", {"strip": _strip_locations}),
    "batch": _Family("reroute", {}),
}
_UNKNOWN_FAMILY: Final = _Family("reroute", {})

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


class Planner:
    """Plans requests against one registry, memoising what repeats between requests.

    A `Router` owns one, for its registry and policy: support lookups are keyed by
    (model, path), candidate orders by model and resolved actions by (route object,
    capability), and all of them live exactly as long as the data they describe.
    """

    __slots__ = (
        "registry",
        "_support",
        "_has_server_tools",
        "_auto_order",
        "_actions",
        "_limits",
    )

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._limits: dict[str, Limits] = {}
        self._actions: dict[tuple[int, str, Action], tuple[Action, bool]] = {}
        """(route id, capability, default) → resolved action. Route ids are stable: the
        routes live in the router's policy for as long as this planner."""
        self._support: dict[tuple[str, str], Support] = {}
        self._has_server_tools: dict[str, bool] = {}
        self._auto_order: dict[str, tuple[str, ...]] = {}

    # -- registry lookups (memoised) --------------------------------------------------------

    def support(self, model: str, path: str) -> Support:
        """`Registry.supports`, memoised."""
        key = (model, path)
        found = self._support.get(key)
        if found is None:
            found = self._support[key] = self.registry.supports(model, path)
        return found

    def ok(self, model: str, path: str, unknown: str = "supported") -> bool:
        """Whether `model` can take `path`, reading UNKNOWN per the route's `unknown`."""
        found = self._support.get((model, path))
        if found is None:
            found = self.support(model, path)
        return found is _SUPPORTED or (found is _UNKNOWN and unknown == "supported")

    def effective_key(self, model: str, capability: str) -> str:
        """The registry key that gates `capability` on `model`.

        Registries from SDKs before 1.12 have no ``server_tools``: there, top-level
        ``code_execution`` meant "any code-execution tool" (api-facts §2.4).
        """
        if capability != "server_tools.code_execution":
            return capability
        has = self._has_server_tools.get(model)
        if has is None:
            has = self._has_server_tools[model] = any(
                p == "server_tools" or p.startswith("server_tools.")
                for p in self.registry.capability_flags(model)
            )
        return capability if has else "code_execution"

    def auto_order(self, requested: str) -> tuple[str, ...]:
        """The default candidate order for a requested (canonical) model id."""
        order = self._auto_order.get(requested)
        if order is None:
            info = self.registry.get(requested)
            line = info.line if info is not None else None
            same_line = [i for i in self.registry.ids if i != requested and _line(self, i) == line]
            others = [i for i in self.registry.ids if i != requested and i not in same_line]
            order = self._auto_order[requested] = (requested, *same_line, *others)
        return order

    # -- planning ---------------------------------------------------------------------------

    def plan(
        self,
        body: Mapping[str, Any],
        needs: RequestNeeds,
        model: str,
        route: RouteSpec,
        api_version: str,
    ) -> Draft:
        """The request as `model` would receive it under `route`."""
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
            model_has=lambda path: self.ok(model, path, route.unknown),
        )
        for capability in needs.paths:
            key = self.effective_key(model, capability)
            if self.ok(model, key, route.unknown):
                continue
            self._settle_capability(draft, capability, key, route)
            if draft.stopped:
                return draft
        for rule in CANDIDATE_RULES:
            problem = rule.check(draft)
            if problem is None:
                continue
            action, explicit = self.action(route, rule.capability, rule.default, rule.meaningful)
            settle(draft, problem, action, explicit, rule.fixes.get(action))
            if draft.stopped:
                return draft
        if draft.edits:
            _prune_emptied(draft)
        return draft

    def _settle_capability(self, draft: Draft, capability: str, key: str, route: RouteSpec) -> None:
        family = _FAMILIES.get(capability.split(".", 1)[0], _UNKNOWN_FAMILY)
        action, explicit = self.action(route, capability, family.default, family.meaningful)
        where = draft.needs.capabilities[capability]
        fix = family.fixes.get(action)
        if fix is not None:
            fix(draft, Missing(capability, where))
            return
        problem = f"lacks {key}" + (f" ({format_path(where[0])})" if where[0] else "")
        settle(draft, problem, action, explicit, None)

    def action(
        self, route: RouteSpec, capability: str, default: Action, meaningful: frozenset[Action]
    ) -> tuple[Action, bool]:
        """`rules.resolve_action`, memoised per route and capability."""
        key = (id(route), capability, default)
        found = self._actions.get(key)
        if found is None:
            found = self._actions[key] = resolve_action(
                route, capability, default=default, meaningful=meaningful
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
    ) -> Selection:
        """Choose a model for the request (see the module docstring for the order)."""
        for request_rule in REQUEST_RULES:
            problem = request_rule.check(needs, api_version)
            if problem is not None:
                return Selection(None, (), rejected=problem)
        requested = self.registry.resolve(needs.model)
        names = self._candidate_names(needs, route, requested)
        considered: list[Candidate] = []
        seen: set[str] = set()
        for name in names:
            model = self.registry.resolve(name)
            if model is None:
                considered.append(Candidate(name, False, "not in the registry"))
                continue
            if model in seen:
                continue
            seen.add(model)
            passed_over = self._unusable(model, route, exclude)
            if passed_over is None:
                draft = self.plan(body, needs, model, route, api_version)
                if draft.rejected is not None:
                    considered.append(Candidate(model, False, draft.rejected))
                    reason = f"{model}: {draft.rejected}"
                    return Selection(None, tuple(considered), rejected=reason)
                passed_over = draft.blocked
            if passed_over is not None:
                considered.append(Candidate(model, False, passed_over))
                continue
            considered.append(Candidate(model, True))
            return self._chosen(draft, tuple(considered), needs, requested)
        reasons = "; ".join(f"{c.model}: {c.reason}" for c in considered) or "no candidates"
        return Selection(
            None, tuple(considered), rejected=f"no candidate can serve the request ({reasons})"
        )

    def _chosen(
        self,
        draft: Draft,
        considered: tuple[Candidate, ...],
        needs: RequestNeeds,
        requested: str | None,
    ) -> Selection:
        if draft.model == requested:
            return Selection(draft, considered)
        why = next(
            (
                f"{needs.model}: {c.reason}"
                for c in considered
                if c.model in (requested, needs.model) and c.reason
            ),
            f"the route does not list {needs.model}",
        )
        notes: tuple[str, ...] = ()
        if needs.thinking_history is not None:
            notes = (
                "the conversation carries thinking blocks "
                f"({format_path(needs.thinking_history)}); moving it from {needs.model} to "
                f"{draft.model} may make the API drop or reject them (preserved-thinking checks)",
            )
        return Selection(draft, considered, reroute_reason=why, notes=notes)

    def _unusable(self, model: str, route: RouteSpec, exclude: Collection[str]) -> str | None:
        info = self.registry.get(model)
        lifecycle = info.lifecycle if info is not None else None
        if lifecycle == "retired":
            return "retired"
        if model in exclude:
            return "excluded (unavailable upstream right now)"
        if lifecycle == "deprecated" and not route.allow_deprecated:
            return "deprecated, and the policy disallows deprecated models"
        return None

    def _candidate_names(
        self, needs: RequestNeeds, route: RouteSpec, requested: str | None
    ) -> list[str]:
        if not route.candidates:
            return list(self.auto_order(requested)) if requested is not None else []
        names: list[str] = []
        for entry in route.candidates:
            if entry == REQUESTED:
                names.append(needs.model)
            elif _GLOB_CHARS.isdisjoint(entry):
                names.append(entry)
            else:
                names.extend(i for i in self.registry.ids if fnmatch.fnmatchcase(i, entry))
        if needs.thinking_history is not None and needs.model in names[1:]:
            # Keep a conversation with thinking blocks on its model when it is allowed.
            names.remove(needs.model)
            names.insert(0, needs.model)
        return names


def _line(planner: Planner, model: str) -> str | None:
    info = planner.registry.get(model)
    return info.line if info is not None else None


def excluded_ids(registry: Registry, exclude: Iterable[str]) -> frozenset[str]:
    """`exclude` as canonical ids (aliases resolved; unknown names kept as given)."""
    return frozenset(registry.resolve(name) or name for name in exclude)
