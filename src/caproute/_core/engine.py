"""`route()` and the `PolicyEngine`: a request body in, a routed body and a `Decision` out.

The steps, each in its own module:

1. `features.shape_problem` / `features.detect`: is this a Messages body, and what
   does it need (one pass, no copies)?
2. `Policy.match`: which route's settings apply (the first matching route, else the
   defaults; no policy = `Policy.default()`).
3. `selection.Planner.select`: which candidate can serve it, with which edits; the rule
   table (`rules`) runs on every candidate.
4. `rewrite.apply_edits`: the edits as a copy-on-write patch of the original body.

A Message Batch (``endpoint="batch"``) routes every item's ``params`` so, with one
difference: **batches never gamble**. The API validates an item only when it processes
the batch, so an item sent to a model whose support of what it needs is unknown would
come back ``errored`` when the batch ends (up to 24 hours later). A route's ``unknown:
supported`` is read as ``prefer-known`` there (a model known to take the item wins),
and `PolicyEngine.never_gamble` refuses what is still left to a guess, unless the
policy's ``defaults.allow_unknown_in_batches`` is true. Every shell's flow
(`flow.first_step`) and the batch planner apply it.

Everything is pure and deterministic: the SDK retries a request with the same body, so
the same input must give the same output, and routing an output again changes nothing.

A `PolicyEngine` is bound to one registry and one policy and keeps what it can
precompute for them (support lookups, candidate orders, decisions already seen to go
through unchanged) between requests; the shells build a new one when either changes.
The module-level `route()` builds an engine per call: to route many bodies, hold a
`PolicyEngine`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple, TypedDict

from .._types import Endpoint
from .decision import Change, Decision, Outcome, RouteResult
from .draft import DEFAULT_API_VERSION
from .features import detect, read, shape_problem
from .policy import Policy, RouteSpec
from .registry import Registry, Support
from .request_needs import JSONPath, Parameters, RequestNeeds
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
        "_batch_engine",
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
        self._batch_engine: PolicyEngine | None = None
        """The engine batch items are routed with (built on first use): this one, or a
        twin whose routes read ``unknown: supported`` as ``prefer-known``."""

    def effective_key(self, model: str, capability: str) -> str:
        """The registry key that gates `capability` on `model` (see `Planner.effective_key`)."""
        return self._planner.effective_key(model, capability)

    def route(
        self,
        body: Any,
        *,
        endpoint: Endpoint = "messages",
        api_version: str | None = None,
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
        version = api_version or DEFAULT_API_VERSION
        excluded = excluded_ids(self.registry, exclude) if exclude else _NO_EXCLUSIONS
        # `RegistrySource.age`, inlined (it is a per-request method call otherwise).
        fetched_at = self._fetched_at
        age = None if now is None or fetched_at is None else max(0.0, now - fetched_at)
        if endpoint == "batch":
            engine = self._for_batches()
            decision, edits = engine._route_batch(body, version, headers, excluded, age)
        else:
            decision, edits = self._route_one(
                body, endpoint, version, headers, excluded, age, False, fallback
            )
        return RouteResult(apply_edits(body, edits) if edits else body, decision)

    # -- batches never gamble ----------------------------------------------------------------

    def unknown_support(self, decision: Decision, params: Any) -> str | None:
        """What is unknown about the model a batch item is about to go to, in words
        (``claude-old-1: pdf_input``), or `None` when its support of everything the
        routed item needs is stated.

        Args:
            decision: The item's decision (not a refused one).
            params: The item's ``params`` as routed (sent). They are what counts: a
                strict selection pass adjusts an unstated effort level to a stated
                one, say; ``decision.needs``, what the caller sent, only spares that
                second look when the model states every one of them.
        """
        registry = self.registry
        if decision.outcome == "passthrough":
            name = decision.requested_model
            if name is None or registry.resolve(name) is not None:
                return f"not understood: {decision.reason}"
            return f"{name}: unknown to the registry, so whether it exists and takes batches"
        model = decision.model
        if model is None:
            return None
        key = self._planner.effective_key

        def unstated(paths: Iterable[str]) -> list[str]:
            return [k for p in paths if registry.supports(model, k := key(model, p)) is _UNKNOWN]

        if not unstated(decision.needs) or not isinstance(params, dict):
            return None
        missing = unstated(detect(params, batch=True).paths)
        return f"{model}: {', '.join(missing)}" if missing else None

    def never_gamble(self, result: RouteResult) -> RouteResult:
        """`result`, a routed batch, refused whole when an item would go to a model on
        unknown support (`unknown_support`), unless the policy's
        ``defaults.allow_unknown_in_batches`` is true.

        A batch creation is one request: sending the others and dropping such an item
        would lose it silently, so the creation is refused, each such item named with
        what is unknown about which model (its decision is ``rejected`` with
        ``extra["unknown_support"]``), and nothing is sent. A batch already refused for
        another reason is returned as it is.
        """
        decision = result.decision
        if self.policy.defaults.allow_unknown_in_batches or decision.rejected:
            return result
        if not decision.items:
            return result  # not a batch body caproute understood: the API judges it
        requests = result.body.get("requests") if isinstance(result.body, dict) else None
        items = list(decision.items)
        gambles = 0
        for i, (custom_id, item) in enumerate(items):
            entry = requests[i] if isinstance(requests, list) and i < len(requests) else None
            params = entry.get("params") if isinstance(entry, dict) else None
            unknown = self.unknown_support(item, params)
            if unknown is not None:
                items[i] = (custom_id, refused_as_unknown(item, unknown))
                gambles += 1
        if not gambles:
            return result
        stamp: _Stamp = {
            "registry_source": decision.registry_source,
            "registry_age_s": decision.registry_age_s,
        }
        return RouteResult(result.body, _batch_decision(items, stamp))

    def _for_batches(self) -> PolicyEngine:
        engine = self._batch_engine
        if engine is None:
            careful = None
            if not self.policy.defaults.allow_unknown_in_batches:
                careful = _preferring_known(self.policy)
            engine = self if careful is None else PolicyEngine(self.registry, careful)
            self._batch_engine = engine
        return engine

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
        found = read(body, endpoint, batch=batch)
        if isinstance(found, str):  # not a Messages body: why
            model = body.get("model") if isinstance(body, dict) else None
            requested = model if isinstance(model, str) else None
            return Decision("passthrough", requested, None, reason=found, **self._stamp(age)), []
        route = self._only_route
        if route is None:
            metadata = body.get("metadata")
            route = self.policy.match(
                found.model,
                metadata=metadata if isinstance(metadata, dict) else None,
                headers=headers,
            )
        params = found.params
        key = (params, tuple(found.caps), route, api_version, exclude, fallback)
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
        if not route.candidates and self.registry.resolve(needs.params.model) is None:
            reason = f"model {needs.params.model!r} is unknown to the registry; forwarded unchanged"
            decision = _decision(
                "passthrough", needs, needs.params.model, route.name, stamp, reason=reason
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


_UNKNOWN: Final = Support.UNKNOWN


def refused_as_unknown(decision: Decision, unknown: str) -> Decision:
    """`decision`, a batch item's, refused because what it needs is of unknown support
    (`unknown`: `PolicyEngine.unknown_support`'s words)."""
    reason = (
        f"no model is known to take this request ({unknown}: support unknown); a batch "
        "item is never sent on unknown support, since the API would error it only when "
        "the batch ends (the policy's defaults.allow_unknown_in_batches: true sends it; "
        "for one `caproute batch` job, --allow-unknown)"
    )
    extra = {**decision.extra, "unknown_support": unknown}
    return dataclasses.replace(
        decision, outcome="rejected", model=None, changes=(), reason=reason, extra=extra
    )


def _preferring_known(policy: Policy) -> Policy | None:
    """`policy` with every ``unknown: supported`` read as ``prefer-known`` (`None`: none)."""
    defaults = policy.defaults
    if defaults.unknown != "supported" and all(r.unknown != "supported" for r in policy.routes):
        return None
    if defaults.unknown == "supported":
        defaults = defaults.model_copy(update={"unknown": "prefer-known"})
    routes = tuple(
        r.model_copy(update={"unknown": "prefer-known"}) if r.unknown == "supported" else r
        for r in policy.routes
    )
    return policy.model_copy(update={"defaults": defaults, "routes": routes})


_Key = tuple[Parameters, tuple[str, ...], RouteSpec, str, frozenset[str], bool]
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
    chosen = needs.params.model  # keep the caller's spelling (an alias stays an alias)
    if selection.reroute_reason is not None:
        outcome, chosen = "rerouted", draft.model
        edits.insert(0, (("model",), draft.model))
        reroute = Change(
            "model", needs.params.model, draft.model, "reroute", selection.reroute_reason
        )
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
    return Decision(
        outcome, needs.params.model, model, needs=needs.paths, route=route, **stamp, **fields
    )


def route(
    body: Any,
    *,
    registry: Registry,
    policy: Policy | None = None,
    endpoint: Endpoint = "messages",
    api_version: str | None = None,
    headers: Mapping[str, str] | None = None,
    exclude: Collection[str] = (),
    now: float | None = None,
) -> RouteResult:
    """Route one request body; see `PolicyEngine.route` for the arguments.

    Builds a `PolicyEngine` for the call: one held across calls keeps what it
    precomputes (the fast path for bodies it has seen go through unchanged).
    """
    return PolicyEngine(registry, policy).route(
        body,
        endpoint=endpoint,
        api_version=api_version,
        headers=headers,
        exclude=exclude,
        now=now,
    )
