"""`route()` and the `PolicyEngine`: a request body in, a routed body and a `Decision` out.

The steps, each in its own module:

1. `features.shape_problem` / `features.detect`: is this a Messages body, and what
   does it need (one pass, no copies)?
2. `Policy.match`: which route's settings apply (the first matching route, else the
   defaults; no policy = `Policy.default()`).
3. `selection.Planner.select`: which candidate can serve it, with which edits; the rule
   table (`rules`) runs on every candidate.
4. `rewrite.apply_edits`: the edits as a copy-on-write patch of the original body.

Everything is pure and deterministic: the SDK retries a request with the same body, so
the same input must give the same output, and routing an output again changes nothing.

A `PolicyEngine` is bound to one registry and one policy and keeps what it can
precompute for them (support lookups, candidate orders, decisions already seen to go
through unchanged) between requests; the shells build a new one when either changes.
The module-level `route()` reuses the engine of its previous call when both are the
same objects, so calling it in a loop stays cheap.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypedDict

from .._types import Endpoint
from .decision import Change, Decision, Outcome, RouteResult
from .draft import DEFAULT_API_VERSION
from .features import JSONPath, Parameters, RequestNeeds, scan, shape_problem
from .policy import Policy
from .registry import Registry
from .rewrite import apply_edits
from .selection import Planner, Selection, excluded_ids

__all__ = ["PolicyEngine", "route"]


class _Stamp(TypedDict):
    """Where the registry came from, copied into every decision."""

    registry_source: str
    registry_age_s: float | None


class PolicyEngine:
    """Routes request bodies against one registry and one policy (pure, no IO).

    Args:
        registry: The capability registry to choose from.
        policy: The routing policy; `None` means the documented defaults.
    """

    __slots__ = (
        "registry",
        "policy",
        "_planner",
        "_source",
        "_fetched_at",
        "_only_route",
        "_unchanged",
        "dated",
    )

    def __init__(self, registry: Registry, policy: Policy | None = None) -> None:
        self.registry = registry
        self.policy = policy if policy is not None else Policy.default()
        self._planner = Planner(registry)
        self._source = registry.source.describe()
        self._fetched_at = registry.source.fetched_at
        self.dated = self._fetched_at is not None
        """Whether decisions carry the registry's age: only then does `now` matter."""
        # A policy without routes (the defaults, and most policies) matches every
        # request to its default route: no need to ask `Policy.match` each time.
        self._only_route = None if self.policy.route_specs else self.policy.default_route
        self._unchanged: dict[_Key, _Unchanged] = {}
        """The fast path: request parameters already seen to go through unchanged →
        everything their decision holds except the registry's age."""

    def effective_key(self, model: str, capability: str) -> str:
        """The registry key that gates `capability` on `model` (see `Planner.effective_key`)."""
        return self._planner.effective_key(model, capability)

    def route(
        self,
        body: Any,
        *,
        endpoint: Endpoint = "messages",
        api_version: str | None = None,
        betas: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        exclude: Collection[str] = (),
        fallback: bool = False,
        now: float | None = None,
    ) -> RouteResult:
        """Route one request body.

        Args:
            body: The decoded JSON body; never mutated.
            endpoint: ``messages``, ``count_tokens`` or ``batch`` (a Message Batch
                creation body, whose every ``params`` is routed).
            api_version: The ``anthropic-version`` the request is sent with
                (`None`: ``2023-06-01``); it selects the API's validation rules.
            betas: The ``anthropic-beta`` values. Accepted for the contract; no rule
                in the table depends on one yet.
            headers: Request headers, for policy routes that match on a header.
            exclude: Model ids (or aliases) that must not be chosen right now, e.g.
                answered 404 (retired) or overloaded upstream.
            fallback: This is an overload fallback: the automatic candidate order stays
                within the requested model's line (price class).
            now: Unix time, only used for `Decision.registry_age_s`.

        Returns:
            The routed body (the input object itself when nothing changed) and the
            decision explaining it.
        """
        del betas  # part of the signature the shells rely on; see the docstring
        version = api_version or DEFAULT_API_VERSION
        excluded = excluded_ids(self.registry, exclude) if exclude else _NO_EXCLUSIONS
        # `RegistrySource.age`, inlined (it is a per-request method call otherwise).
        fetched_at = self._fetched_at
        age = None if now is None or fetched_at is None else max(0.0, now - fetched_at)
        if endpoint == "batch":
            decision, edits = self._route_batch(body, version, headers, excluded, age)
        else:
            decision, edits = self._route_one(
                body, endpoint, version, headers, excluded, age, False, fallback
            )
        return RouteResult(apply_edits(body, edits) if edits else body, decision)

    # -- one Messages body -------------------------------------------------------------------

    def _route_one(
        self,
        body: Any,
        endpoint: Endpoint,
        api_version: str,
        headers: Mapping[str, str] | None,
        exclude: frozenset[str],
        age: float | None,
        batch: bool,
        fallback: bool = False,
    ) -> tuple[Decision, Sequence[tuple[JSONPath, Any]]]:
        problem = shape_problem(body, "messages" if batch else endpoint)
        if problem is not None:
            model = body.get("model") if isinstance(body, dict) else None
            requested = model if isinstance(model, str) else None
            return Decision("passthrough", requested, None, reason=problem, **self._stamp(age)), []
        found = scan(body, batch=batch)
        route = self._only_route
        if route is None:
            metadata = body.get("metadata")
            route = self.policy.match(
                found.model,
                metadata=metadata if isinstance(metadata, dict) else None,
                headers=headers,
            )
        params = found.params
        key = (params, tuple(found.caps), id(route), api_version, exclude, fallback)
        # The fast path, checked first: an entry exists only if the same model and route
        # already passed the unknown-model check below, and the registry is fixed for
        # this router, so the check would pass again.
        seen = self._unchanged.get(key)
        refused = self._planner.refused  # parameters learned refused: not in the key
        if (
            seen is not None
            and (seen.window is None or found.input_tokens <= seen.window)
            and (not refused or refused.get(seen.decision.model or "", _NONE).isdisjoint(body))
        ):
            # Same parameters, so the same decision; only the registry's age can differ.
            # Without one (a snapshot or a registry built in code: age None) the
            # decision is handed out again as is: it is frozen, `extra` included.
            decision = seen.decision
            if decision.registry_age_s != age:
                # Not `dataclasses.replace` (~3 µs): an unchanged decision has no
                # changes, reason, notes, items or extra, so these fields are all of it.
                decision = Decision(
                    "unchanged",
                    decision.requested_model,
                    decision.model,
                    needs=decision.needs,
                    candidates=decision.candidates,
                    route=decision.route,
                    registry_source=decision.registry_source,
                    registry_age_s=age,
                )
            return decision, _NO_EDITS
        needs = found.needs()
        stamp = self._stamp(age)
        if not route.candidates and self.registry.resolve(needs.model) is None:
            reason = f"model {needs.model!r} is unknown to the registry; forwarded unchanged"
            decision = _decision(
                "passthrough", needs, needs.model, route.name, stamp, reason=reason
            )
            return decision, []
        selection = self._planner.select(
            body, needs, route, api_version=api_version, exclude=exclude, fallback=fallback
        )
        decision, edits = _from_selection(selection, needs, route.name, stamp)
        if decision.outcome == "unchanged" and selection.draft is not None:
            window = selection.draft.model_max_input_tokens
            self._remember_unchanged(key, _Unchanged(window, decision))
        return decision, edits

    def _stamp(self, age: float | None) -> _Stamp:
        """Where the registry came from, for a decision (built off the fast path)."""
        return {"registry_source": self._source, "registry_age_s": age}

    def _remember_unchanged(self, key: _Key, entry: _Unchanged) -> None:
        if len(self._unchanged) >= _UNCHANGED_CACHE_SIZE:
            self._unchanged.clear()  # crude but bounded; the working set refills it fast
        self._unchanged[key] = entry

    # -- a Message Batch ---------------------------------------------------------------------

    def _route_batch(
        self,
        body: Any,
        api_version: str,
        headers: Mapping[str, str] | None,
        exclude: frozenset[str],
        age: float | None,
    ) -> tuple[Decision, Sequence[tuple[JSONPath, Any]]]:
        stamp = self._stamp(age)
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list):
            reason = (
                "requests: missing or not a list"
                if isinstance(body, dict)
                else shape_problem(body) or "not a JSON object"
            )
            return Decision("passthrough", None, None, reason=reason, **stamp), []
        items: list[tuple[str, Decision]] = []
        edits: list[tuple[JSONPath, Any]] = []
        for i, item in enumerate(requests):
            custom_id, params = _batch_item(item, i)
            decision, item_edits = self._route_one(
                params, "messages", api_version, headers, exclude, age, True
            )
            prefix: JSONPath = ("requests", i, "params")
            edits.extend(((*prefix, *path), after) for path, after in item_edits)
            items.append((custom_id, decision))
        decision = _batch_decision(items, stamp)
        # A refused batch is not sent at all: none of its items' edits apply.
        return decision, [] if decision.rejected else edits


_Key = tuple[Parameters, tuple[str, ...], int, str, frozenset[str], bool]
"""The fast path's key: everything selection depends on except the input size and where
things are in the body — the request's `Parameters`, the capabilities it needs (in
body order), the route, the API version, the exclusions and the fallback flag.

When a request with this key was served unchanged, another one with the same key is
too, provided its input still fits the model's window: no capability was missing (so
no location matters) and every rule passed. Agent loops resend the same parameters with
a growing conversation, so this is the common case. A parameter added to `Parameters`
is part of the key by construction."""

_UNCHANGED_CACHE_SIZE = 4096
_NO_EXCLUSIONS: frozenset[str] = frozenset()
_NONE: frozenset[str] = frozenset()
_NO_EDITS: tuple[tuple[JSONPath, Any], ...] = ()  # shared: no list per unchanged request


class _Unchanged(NamedTuple):
    """A fast-path entry: what an unchanged decision for these parameters holds."""

    window: int | None
    """The model's context window: a larger input must go through selection again."""
    decision: Decision
    """The decision made the first time; every field but `registry_age_s` is a function
    of the key (`needs` is the key's capabilities, sorted)."""


def _from_selection(
    selection: Selection, needs: RequestNeeds, route: str | None, stamp: _Stamp
) -> tuple[Decision, Sequence[tuple[JSONPath, Any]]]:
    """The decision and the body edits for what selection chose (or refused)."""
    draft = selection.draft
    if draft is None:
        rejected = _decision(
            "rejected",
            needs,
            None,
            route,
            stamp,
            reason=selection.rejected,
            candidates=selection.candidates,
        )
        return rejected, []
    edits = [(path, edit.after) for path, edit in draft.edits.items()]
    changes = draft.changes()
    outcome: Outcome = "adjusted" if changes else "unchanged"
    chosen = needs.model  # keep the caller's spelling (an alias stays an alias)
    if selection.reroute_reason is not None:
        outcome, chosen = "rerouted", draft.model
        edits.insert(0, (("model",), draft.model))
        reroute = Change("model", needs.model, draft.model, "reroute", selection.reroute_reason)
        changes.insert(0, reroute)
    decision = _decision(
        outcome,
        needs,
        chosen,
        route,
        stamp,
        reason=selection.reroute_reason,
        candidates=selection.candidates,
        changes=tuple(changes),
        notes=selection.notes,
    )
    return decision, edits


def _batch_item(item: Any, index: int) -> tuple[str, Any]:
    """``(custom_id, params)`` of a batch entry, tolerating a malformed one."""
    if not isinstance(item, dict):
        return f"requests[{index}]", None
    custom_id = item.get("custom_id")
    return (custom_id if isinstance(custom_id, str) else f"requests[{index}]"), item.get("params")


def _batch_decision(items: list[tuple[str, Decision]], stamp: _Stamp) -> Decision:
    rejected = [(cid, d) for cid, d in items if d.rejected]
    outcomes = {d.outcome for _, d in items}
    needs = tuple(sorted({need for _, d in items for need in d.needs}))
    models = {d.model for _, d in items}
    requested = {d.requested_model for _, d in items}
    changes = tuple(
        Change(f"requests[{i}].params.{c.path}", c.before, c.after, c.action, c.reason)
        for i, (_, d) in enumerate(items)
        for c in d.changes
    )
    requested_model = requested.pop() if len(requested) == 1 else None
    if rejected:
        detail = "; ".join(f"[{cid}] {d.reason}" for cid, d in rejected)
        return Decision(
            "rejected",
            requested_model,
            None,
            needs=needs,
            reason=f"{len(rejected)} of {len(items)} batch requests rejected: {detail}",
            items=tuple(items),
            **stamp,
        )
    outcome: Outcome = (
        "rerouted"
        if "rerouted" in outcomes
        else "adjusted"
        if "adjusted" in outcomes
        else "unchanged"
    )
    return Decision(
        outcome,
        requested_model,
        models.pop() if len(models) == 1 else None,
        needs=needs,
        changes=changes,
        items=tuple(items),
        **stamp,
    )


def _decision(
    outcome: Outcome,
    needs: RequestNeeds,
    model: str | None,
    route: str | None,
    stamp: _Stamp,
    **fields: Any,
) -> Decision:
    return Decision(outcome, needs.model, model, needs=needs.paths, route=route, **stamp, **fields)


_last_engine: PolicyEngine | None = None


def route(
    body: Any,
    *,
    registry: Registry,
    policy: Policy | None = None,
    endpoint: Endpoint = "messages",
    api_version: str | None = None,
    betas: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
    exclude: Collection[str] = (),
    now: float | None = None,
) -> RouteResult:
    """Route one request body; see `PolicyEngine.route` for the arguments.

    Reuses the previous call's `PolicyEngine` when `registry` and `policy` are the same
    objects, so its precomputed data survives between calls.
    """
    global _last_engine
    wanted = policy if policy is not None else Policy.default()
    engine = _last_engine
    if engine is None or engine.registry is not registry or engine.policy is not wanted:
        engine = _last_engine = PolicyEngine(registry, wanted)
    return engine.route(
        body,
        endpoint=endpoint,
        api_version=api_version,
        betas=betas,
        headers=headers,
        exclude=exclude,
        now=now,
    )
