"""The response-driven flow of one call: a sans-IO generator of steps.

Routing a request is usually one decision, but some answers change what to send next, and
some teach something worth keeping. This module decides all of it and does none of the
IO, in the style of httpx's ``Auth.auth_flow`` and tenacity's ``iter``: `call_flow`
yields *steps*; a shell (the SDK middleware, the httpx transports, the proxy through
its transport) carries each out and sends back what the step asks for:

===================  ===========================================  =====================
step                 the shell                                    and sends back
===================  ===========================================  =====================
`Forward`            forwards ``body`` upstream                   the `Reply`
`Refresh`            waits (bounded) for the live registry fetch  the current `View`
                     already in flight (cold start)
`Resolve`            asks ``GET /v1/models/{name}`` (one bounded   the current `View`
                     wait) about names the registry lacks
`Learn`              records a fact about a model (with a TTL)    the current `View`
`RememberAccount`    records an organization-level refusal for    the current `View`
                     the caller's credential (by its digest)
`MarkRetired`        records that a model answered 404            the current `View`
`MarkOverloaded`     starts the model's overload cool-down        the current `View`
`Refuse`             answers locally with an API-shaped 400       — (the flow ends)
`Deliver`            delivers the last response with `decision`   — (the flow ends)
===================  ===========================================  =====================

A `View` is the routing state the shell holds right now: the `PolicyEngine` for the
current registry (learned facts included) and policy, the models cooling down, whether
the registry is live data and whether a first live fetch can still be awaited.

The rules, each a promise:

* **Cold start.** Before the first live fetch has landed, every decision rests on
  snapshot data the live registry could change (a model retired since, a capability
  added, a model the snapshot doesn't know): while a live fetch can still come, the
  flow asks to wait for it (`Refresh`, bounded by the shell) and decides again, once.
  Only a body that is not a Messages body at all is sent without waiting.
* **Unknown names.** A model name the registry doesn't know (an alias only
  ``GET /v1/models/{alias}`` resolves, a model the list leaves out) would be forwarded
  unchanged for the API to judge. Where the shell can ask the Models API about a
  name (`View.can_resolve`), the flow asks first (`Resolve`, with every unknown name
  of a batch's items, up to `MAX_RESOLVE_PER_CALL`) and decides again, once: the
  names are then routed like any model it knows. A name that still went out unknown
  (its look-up failed) and got the API's 404 is asked about once more
  (``Resolve(after_404=True)``): a retired model the list hides is then rerouted by
  its line in the same call.
* **Batches never gamble.** A Message Batch item is validated by the API only when the
  batch is processed: one sent to a model whose support of what it needs is unknown
  would come back ``errored`` hours later. Once names are resolved, a batch with such
  an item is refused locally, each such item named (`PolicyEngine.never_gamble`),
  unless the policy's ``defaults.allow_unknown_in_batches`` is true.
* **Learn from refusals about the model, only.** A 400 ``invalid_request_error`` is
  classified first (`learning.classify`: model capability, model parameter,
  organization, payload, shape, unknown). One about the model that names a parameter
  the request carried becomes a fact (`Learn`); the call is routed again with it and
  sent once more — the second attempt succeeds the first time, and later calls are
  routed right on their first. Every other 400 reaches the caller unchanged, its kind
  in the delivered decision's ``extra["refusal"]``.
* **Organization refusals, per credential.** One caproute can recognise again
  (``organization_url_fetch_disabled``: URL sources, ``web_fetch``, ``mcp_servers``
  off for the organization) is remembered for the credential that got it
  (`RememberAccount`, keyed by the shell's digest of it, `View.digest`): never as a
  model fact, never for another credential. A later Messages request from that
  credential that uses the feature is refused locally with the API's own message and
  error code (`Refuse`). The check runs only while such a refusal is remembered.
* **Retired models.** A 404 ``not_found_error`` about a model the registry knows (the
  message names it, or says "model": a wrong path answers 404 too) marks it
  retired (`MarkRetired`) and reroutes by its line per the policy, never to itself. A
  name nobody ever listed was passed through, and its 404 (a typo?) is delivered.
* **Overload.** A 529 (or a status in the route's ``fallback_on``) starts the model's
  cool-down (`MarkOverloaded`) and, on the call's first SDK attempt only, sends once
  to the next candidate of the same price class (the route's list, else the requested
  model's line). On a retry (``ParsedCall.retry`` > 0) the flow delivers at once: the SDK's
  own retry loop already calls again, and the next call avoids the cooling model.
  With every model overloaded and ``max_retries=2`` that is 2 + 1 + 1 = 4 sends.
* **Bounded and re-derived.** At most ``View.max_sends`` sends per call; every hop
  routes the caller's ORIGINAL body again, so parameters fit the new model; a hop whose
  routed body and model equal the refused ones is not sent again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Mapping
from typing import Any, Final, NamedTuple

from .._types import Endpoint
from .decision import Decision, RouteResult
from .engine import PolicyEngine
from .features import shape_problem
from .learning import classify, uses_account_feature
from .policy import Policy

__all__ = [
    "OVERLOAD_STATUSES",
    "AccountRefusal",
    "Step",
    "ParsedCall",
    "Deliver",
    "CallFlow",
    "Learn",
    "MarkOverloaded",
    "MarkRetired",
    "Refresh",
    "Refuse",
    "RememberAccount",
    "Resolve",
    "Reply",
    "Forward",
    "View",
    "blames_the_model",
    "call_flow",
    "credential_of",
    "fallback_statuses",
    "first_step",
    "route_call",
]

OVERLOAD_STATUSES: Final = frozenset({529})
"""529 ``overloaded_error`` is about the model, not the caller: another model may work."""


class ParsedCall(NamedTuple):
    """One call to a routed endpoint, as the shell parsed it (built per request)."""

    body: Any
    """The caller's body, decoded once; never mutated."""
    endpoint: Endpoint
    api_version: str | None = None
    betas: tuple[str, ...] = ()
    """The ``anthropic-beta`` values (`wire.parse_betas`). Routing reads none of them
    yet: no rule in the table depends on a beta."""
    headers: Mapping[str, str] | None = None
    retry: int = 0
    """How many times the caller's SDK already retried this call (0 = first attempt,
    or unknown)."""


class AccountRefusal(NamedTuple):
    """An organization-level refusal remembered for one credential."""

    feature: str
    """What the organization has off (``url_sources``, `catalogue.ACCOUNT_FEATURES`)."""
    error_code: str
    """``error.details.error_code`` as the API gave it."""
    message: str
    """The API's own message (bounded), repeated in local refusals."""


_NO_ACCOUNTS: Final[Mapping[str, Mapping[str, AccountRefusal]]] = {}


class View(NamedTuple):
    """The routing state a shell holds right now."""

    engine: PolicyEngine
    """The engine for the current registry (learned facts applied) and policy."""
    avoid: frozenset[str] = frozenset()
    """Models in their overload cool-down: avoided while another candidate exists."""
    live: bool = True
    """Whether the registry holds live data (not a snapshot or the embedded lineup)."""
    can_wait: bool = False
    """Whether a first live fetch can still be awaited (cold start)."""
    now: float | None = None
    """Unix time, for the decision's registry age (`None`: not needed)."""
    max_sends: int = 3
    """Upper bound on upstream sends for one call."""
    can_resolve: bool = False
    """Whether the shell can ask the Models API about model names (`Resolve`)."""
    accounts: Mapping[str, Mapping[str, AccountRefusal]] = _NO_ACCOUNTS
    """Credential digest → feature → the organization refusal remembered for it."""
    digest: Callable[[str], str] | None = None
    """The shell's keyed digest of a credential (`None`: nothing is remembered per
    credential); the credential itself never leaves the call."""


class Reply(NamedTuple):
    """What the flow needs to know about an upstream answer."""

    status_code: int
    error_type: str | None = None
    """``error.type`` of an error body (shells read error bodies only when asked)."""
    error_message: str | None = None
    error_code: str | None = None
    """``error.details.error_code``, when the API gave one."""


class Forward(NamedTuple):
    """Forward a request upstream."""

    body: Any
    """The body to send. When `changed` is false this IS the caller's body: forward the
    original bytes, don't serialise again."""
    decision: Decision
    changed: bool
    attempt: int


class Refresh(NamedTuple):
    """Wait (bounded) for the live registry fetch in flight, then send the `View` back."""

    reason: str


class Resolve(NamedTuple):
    """Ask the Models API about `models`, names the registry doesn't know (one bounded
    wait for all of them), then send the `View` back."""

    models: tuple[str, ...]
    reason: str
    after_404: bool = False
    """The API just answered 404 for the name: ask even while a back-off after a
    failed look-up runs (the call fails otherwise; once per call)."""


class Learn(NamedTuple):
    """Record a fact about `model` (the shell stamps the time and the expiry)."""

    model: str
    key: str
    """A capability path (``effort.max``), ``max_tokens`` or ``parameters.<name>``
    (a plain parameter the model refuses)."""
    value: bool | int
    reason: str


class RememberAccount(NamedTuple):
    """Remember an organization-level refusal for the credential whose digest is
    `account` (never a model fact, never for another credential)."""

    account: str
    refusal: AccountRefusal


class MarkRetired(NamedTuple):
    """Record that `model` answered 404: route around it from now on."""

    model: str
    reason: str


class MarkOverloaded(NamedTuple):
    """Start `model`'s overload cool-down."""

    model: str


class Refuse(NamedTuple):
    """Answer locally with an API-shaped 400; send nothing upstream."""

    decision: Decision


class Deliver(NamedTuple):
    """Deliver the last upstream response, carrying `decision`."""

    decision: Decision


Step = (
    Forward
    | Refresh
    | Resolve
    | Learn
    | RememberAccount
    | MarkRetired
    | MarkOverloaded
    | Refuse
    | Deliver
)
CallFlow = Generator[Step, Any, None]
"""A running `call_flow`: send it a `Reply` after a `Forward`, a `View` after a `Refresh`,
`Resolve`, `Learn`, `RememberAccount`, `MarkRetired` or `MarkOverloaded`."""

MAX_RESOLVE_PER_CALL: Final = 16
"""At most this many unknown model names are asked about for one call (a batch)."""

READS_BODY_ON: Final = frozenset({400, 404})
"""Statuses whose (small, JSON) error body the flow reads; shells read no other body."""

MAX_REMEMBERED_MESSAGE: Final = 500
"""At most this many characters of an organization refusal's message are kept."""


def fallback_statuses(policy: Policy, decision: Decision) -> frozenset[int]:
    """Statuses that send a call to the next candidate: 529, plus the ``fallback_on`` of
    the policy route that made `decision` (e.g. 429, 5xx)."""
    spec = policy.default_route
    if decision.route is not None:
        spec = next((s for s in policy.route_specs if s.name == decision.route), spec)
    return OVERLOAD_STATUSES | spec.fallback_on


def first_step(view: View, call: ParsedCall) -> Forward | Refuse | Refresh | Resolve:
    """The flow's first step on its own: route the call once.

    Shells take this, send it, and start `call_flow` (with ``first=`` this step) only
    when the reply is one the flow reacts to (a status of 400 or more): most calls
    never need the generator.
    """
    result = route_call(view, call)
    decision = result.decision
    if not view.live and view.can_wait and _live_could_change(view, decision):
        return Refresh(f"cold start: {decision.outcome} on {decision.registry_source}")
    if view.can_resolve and (names := _unknown_names(view, call, decision)):
        return Resolve(names, f"unknown to the registry: {', '.join(map(repr, names))}")
    if call.endpoint == "batch":
        result = view.engine.never_gamble(result)
        decision = result.decision
    if decision.rejected:
        return Refuse(decision)
    if view.accounts and (refused := _account_refusal(view, call, decision)) is not None:
        return Refuse(refused)
    body = result.body
    return Forward(body, decision, body is not call.body, 1)


def call_flow(
    call: ParsedCall, view: View, first: Forward | Refuse | Refresh | Resolve | None = None
) -> CallFlow:
    """The routing loop for one call (see the module docstring for the rules).

    `first` is the call's `first_step` when the shell already took (and sent) it: the
    flow yields it again instead of routing the call a second time.
    """
    step = first if first is not None else first_step(view, call)
    if isinstance(step, Refresh):
        view = yield step
        step = first_step(view._replace(can_wait=False), call)
    if isinstance(step, Resolve):
        view = yield step
        step = first_step(view._replace(can_wait=False, can_resolve=False), call)
    # can_wait and can_resolve are off by now: no second wait, no second question.
    assert not isinstance(step, Refresh | Resolve)
    if isinstance(step, Refuse):
        yield step
        return
    sent = step
    excluded: frozenset[str] = frozenset()
    learned = fell_back = asked = False
    while True:
        reply = yield sent
        if reply.status_code < 400 or sent.attempt >= view.max_sends:
            break
        decision = sent.decision
        model = decision.model
        status = reply.status_code
        if (
            decision.outcome == "passthrough"
            and not asked
            and (name := _look_up_after_404(view, call, decision, reply)) is not None
        ):
            # A name never resolved got the API's 404: what does the Models API say
            # about it (a retired model the list hides, say)? Once per call, even if
            # the look-up before sending failed.
            asked = True
            view = yield Resolve((name,), f"404 not_found_error for {name!r}, never resolved", True)
            result = _route(view, call, excluded)
            if result.decision.outcome == "passthrough" or result.decision.rejected:
                break
            if _same_target(sent, result):
                break
            cause = f"404 not_found_error for {name!r}: looked up"
            attempt = sent.attempt + 1
            extra = {**result.decision.extra, "attempt": attempt, "cause": cause}
            routed = dataclasses.replace(result.decision, extra=extra)
            sent = Forward(result.body, routed, result.body is not call.body, attempt)
            continue
        if model is None or call.endpoint == "batch" or decision.outcome == "passthrough":
            break  # a batch mixes models; a model nobody knows gets the API's answer
        fallback = False
        if status == 400 and reply.error_type == "invalid_request_error" and not learned:
            refusal = classify(
                reply.error_message,
                sent.body,
                model,
                error_code=reply.error_code,
                endpoint=call.endpoint,
            )
            found = refusal.fact
            if found is None:
                extra = {**sent.decision.extra, "refusal": refusal.kind.value}
                sent = sent._replace(decision=dataclasses.replace(sent.decision, extra=extra))
                if refusal.account_feature is not None and reply.error_code is not None:
                    account = _account_of(view, call)
                    if account is not None:
                        message = (reply.error_message or "")[:MAX_REMEMBERED_MESSAGE]
                        remembered = AccountRefusal(
                            refusal.account_feature, reply.error_code, message
                        )
                        view = yield RememberAccount(account, remembered)
                break
            learned = True
            key = view.engine.effective_key(model, found.key)
            view = yield Learn(model, key, found.value, found.reason)
            cause = f"400 from {model}: learned {key} = {found.value}"
        elif (
            status == 404
            and reply.error_type == "not_found_error"
            and model not in excluded
            and blames_the_model(reply.error_message, sent.body, model)
        ):
            reason = f"404 not_found_error from {model}"
            view = yield MarkRetired(model, reason)
            excluded |= {model}
            cause = f"{reason}: treated as retired"
        elif status in fallback_statuses(view.engine.policy, decision):
            view = yield MarkOverloaded(model)  # even on the last hop: the next call avoids it
            if fell_back or call.retry > 0:
                break  # one fallback per call; on an SDK retry, one send per attempt
            fell_back = fallback = True
            excluded |= {model}
            cause = f"{status} from {model}: trying the next candidate of its price class"
        else:
            break
        avoid = excluded | view.avoid if fallback else excluded
        result = _route(view, call, avoid, fallback=fallback)
        if result.decision.rejected or _same_target(sent, result):
            break  # nothing better to send: the answer we have is the truthful one
        attempt = sent.attempt + 1
        extra = {**result.decision.extra, "attempt": attempt, "cause": cause}
        routed = dataclasses.replace(result.decision, extra=extra)
        sent = Forward(result.body, routed, result.body is not call.body, attempt)
    yield Deliver(sent.decision)


def _route(
    view: View, call: ParsedCall, exclude: frozenset[str], *, fallback: bool = False
) -> RouteResult:
    return view.engine.route(
        call.body,
        endpoint=call.endpoint,
        api_version=call.api_version,
        headers=call.headers,
        exclude=exclude,
        fallback=fallback,
        now=view.now,
    )


def route_call(view: View, call: ParsedCall) -> RouteResult:
    """Route `call` once against `view`, around the models cooling down.

    A cooling requested model is replaced only within its price class (the same rule
    as an overload fallback), else it is used anyway; other cooling models are avoided
    as alternatives while another candidate exists, and used rather than refuse.
    """
    avoid = view.avoid
    if not avoid:
        return _route(view, call, avoid)
    body = call.body
    model = body.get("model") if isinstance(body, dict) else None
    requested = view.engine.registry.resolve(model) if isinstance(model, str) else None
    if requested is not None and requested in avoid:
        result = _route(view, call, avoid, fallback=True)
        if not result.decision.rejected:
            return result
        avoid = avoid - {requested}
    result = _route(view, call, avoid)
    if result.decision.rejected:
        result = _route(view, call, frozenset())
    return result


def _live_could_change(view: View, decision: Decision) -> bool:
    """Whether live registry data might decide `decision` differently: any decision made
    on snapshot data (even "unchanged": the model may have been retired since), except
    a body that is not a Messages body at all."""
    if decision.outcome != "passthrough":
        return True
    # Not understood (a shape problem) stays so; an unknown model may be listed live.
    requested = decision.requested_model
    return requested is not None and view.engine.registry.resolve(requested) is None


def _unknown_names(view: View, call: ParsedCall, decision: Decision) -> tuple[str, ...]:
    """The model names requests were passed through for only because the registry
    doesn't know them (worth asking the Models API about): the call's, or its batch
    items' (at most `MAX_RESOLVE_PER_CALL`, first seen first)."""
    if decision.items:
        decisions = [d for _, d in decision.items]
    elif shape_problem(call.body, call.endpoint) is None:
        decisions = [decision]
    else:
        return ()  # not a Messages body: its name is not what kept it from routing
    registry = view.engine.registry
    names: dict[str, None] = {}
    for routed in decisions:
        name = routed.requested_model
        if routed.outcome == "passthrough" and name and registry.resolve(name) is None:
            names[name] = None
            if len(names) == MAX_RESOLVE_PER_CALL:
                break
    return tuple(names)


def _look_up_after_404(
    view: View, call: ParsedCall, decision: Decision, reply: Reply
) -> str | None:
    """The name to look up after a 404 ``not_found_error`` for a call passed through
    because the registry doesn't know its model, or `None`."""
    if reply.status_code != 404 or reply.error_type != "not_found_error":
        return None
    if not view.can_resolve or call.endpoint == "batch":
        return None
    name = decision.requested_model
    if not name or view.engine.registry.resolve(name) is not None:
        return None
    if shape_problem(call.body, call.endpoint) is not None:
        return None  # not a Messages body: its name is not what the 404 is about
    return name


def credential_of(headers: Mapping[str, str] | None) -> str | None:
    """The credential a call carries (``x-api-key``, else a bearer token), or `None`."""
    if headers is None:
        return None
    key = headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _account_of(view: View, call: ParsedCall) -> str | None:
    """The digest of the call's credential, when the shell remembers per credential."""
    digest = view.digest
    if digest is None:
        return None
    credential = credential_of(call.headers)
    return digest(credential) if credential is not None else None


def _account_refusal(view: View, call: ParsedCall, decision: Decision) -> Decision | None:
    """The local refusal for a Messages call using a feature the API refused for this
    credential's organization, or `None`."""
    if call.endpoint != "messages":
        return None
    account = _account_of(view, call)
    refusals = view.accounts.get(account) if account is not None else None
    if not refusals:
        return None
    for feature, refusal in refusals.items():
        where = uses_account_feature(call.body, feature)
        if where is not None:
            reason = (
                f"{refusal.message or refusal.error_code} ({where}: the API refused this "
                "for this credential's organization earlier; answered locally)"
            )
            return dataclasses.replace(
                decision,
                outcome="rejected",
                model=None,
                changes=(),
                reason=reason,
                extra={"error_code": refusal.error_code, "refusal": "organization"},
            )
    return None


def blames_the_model(message: str | None, body: Any, model: str) -> bool:
    """Whether a 404 is about the model rather than the path (a wrong gateway prefix
    answers 404 too): the message names the model, as sent or as chosen, or says
    "model" (the API's text: ``model: claude-...``)."""
    text = (message or "").lower()
    sent = body.get("model") if isinstance(body, dict) else None
    names = {model.lower(), sent.lower() if isinstance(sent, str) else model.lower()}
    return "model" in text or any(name in text for name in names)


def _same_target(previous: Forward, result: RouteResult) -> bool:
    return previous.decision.model == result.decision.model and previous.body == result.body
