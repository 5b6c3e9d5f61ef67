"""The response-driven routing flow, written once and driven by every forwarding path.

Routing a request is not always one step. The registry may be stale (the API answers
400 for a feature it said the model had), a model may have been retired (404), or it
may be overloaded (529). Each of those answers changes what to send next, so the
decision loop is a generator in the style of httpx's ``Auth.auth_flow``: it yields
*actions* and receives *replies*. `drive` / `drive_async` run that loop; the IO is
a *shell*'s (`SyncShell` / `AsyncShell`: send a hop, release a response, refuse,
deliver). The transports in `caproute._transports` are shells over httpx/httpx2, the
SDK middleware in `caproute._middleware` over the SDK's ``APIRequest`` /
``APIResponse``.

What `drive` does, step by step::

    await router.acurrent()                 # async drivers only: read the registry first
    call = RoutedCall(body=parsed, endpoint="messages", ...)
    action = first_action(router, call)     # route once: a Send or a Refuse
    flow = None                             # the generator, started only when needed
    while True:
        if isinstance(action, Refuse):      # answer locally; nothing goes upstream
            return local_400(refusal_body(action.decision), action.decision)
        if isinstance(action, Refresh):     # refresh the registry, then carry on
            router.refresh()                # (async drivers: await router.arefresh())
            reply = None
        else:                               # Send: forward action.body (or the original bytes)
            close(previous_response)        # a response the flow moved past is discarded
            response = send(action)
            reply = Reply(response.status_code, *error_of(response))  # body read only for
            if flow is None:                                          # READS_BODY_ON statuses
                if not reacts_to(reply):    # the common case: deliver, no generator at all
                    return with_decision_headers(response, action.decision)
                flow = routing_flow(router, call, action)
                next(flow)                  # yields `action` again: already sent
        try:
            action = flow.send(reply)
        except StopIteration:
            return with_decision_headers(response, last_send.decision)

Rules the flow enforces (and why):

* **Bounded.** At most ``router.max_attempts`` sends per call, one registry refresh,
  and one overload fallback. The anthropic SDK retries 408/409/429/5xx/529 itself
  (``_should_retry`` in its ``_base_client.py``) and calls us once per attempt; if we
  fell back more than once per attempt the two retry loops would multiply. So when the
  fallback also fails we hand that response to the SDK, which retries the whole call.
  The router remembers overloaded models for a short cool-down, and a fallback hop
  never goes to a cooling model, so each SDK retry costs one upstream request.
* **Re-derived, never inherited.** Every hop routes the caller's ORIGINAL body again with
  the failed models excluded, so parameters fit the new model.
* **Idempotent.** Nothing here mutates the body; a hop whose routed body and model are
  the same as the one that just failed is not sent again.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol, TypeVar

from ._core.decision import Decision, RouteResult
from ._types import Endpoint

__all__ = [
    "READS_BODY_ON",
    "Action",
    "Flow",
    "Refresh",
    "Refuse",
    "Reply",
    "RoutedCall",
    "Router",
    "Send",
    "AsyncShell",
    "SyncShell",
    "append_decision_headers",
    "decision_header_entries",
    "drive",
    "drive_async",
    "endpoint_for",
    "error_of",
    "first_action",
    "looks_capability_related",
    "parse_betas",
    "passthrough",
    "reacts_to",
    "refusal_body",
    "reply_for",
    "routing_flow",
]

_ROUTED_SUFFIXES: Final[tuple[tuple[str, Endpoint], ...]] = (
    ("/v1/messages", "messages"),
    ("/v1/messages/count_tokens", "count_tokens"),
    ("/v1/messages/batches", "batch"),
)

READS_BODY_ON: Final = frozenset({400, 404})
"""Statuses whose (small, JSON) error body the flow needs to choose its next step.
Drivers read the body only for these; success bodies and streams are never touched."""

# Phrases the API (and the fake) use when a parameter is not available on a model.
# The wording is not a stable contract (the API documents `error.type` as the thing to
# branch on), so this only decides whether a registry refresh is worth trying; a false
# positive costs one refresh, nothing more.
_CAPABILITY_PHRASES: Final = (
    "not supported",
    "does not support",
    "unsupported",
    "not available",
    "not permitted",
    "not allowed",
    "extra inputs",
    "max_tokens",
    "capabilit",
)

# Parts of capability paths too common in any validation message to mean anything.
_GENERIC_WORDS: Final = frozenset({"input", "types", "type", "supported", "tools", "output"})


class Router(Protocol):
    """What the flow needs from a router: `caproute.LiveRouter` is the implementation."""

    @property
    def max_attempts(self) -> int:
        """Upper bound on upstream sends for one call."""
        ...

    @property
    def can_refresh(self) -> bool:
        """Whether `refresh()` can fetch fresh registry data at all."""
        ...

    def route(
        self,
        body: Any,
        *,
        endpoint: Endpoint = "messages",
        api_version: str | None = None,
        betas: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        exclude: Sequence[str] = (),
        attempt: int = 1,
        cause: str | None = None,
        allow_cooling: bool = True,
    ) -> RouteResult:
        """Route one body (see `caproute.LiveRouter.route`)."""
        ...

    def fallback_statuses(self, decision: Decision) -> frozenset[int]:
        """Statuses that make the flow try the next candidate for this decision."""
        ...

    def mark_retired(self, model: str) -> None:
        """Remember that `model` answered 404: route around it from now on."""
        ...

    def mark_unavailable(self, model: str) -> None:
        """Remember that `model` is overloaded: avoid it for a short cool-down."""
        ...

    async def acurrent(self) -> Any:
        """Async drivers await this once per call before driving the flow (it lets a
        router with an async registry fetcher read its current data)."""
        ...

    def refresh(self) -> bool:
        """Fetch fresh registry data (blocking); what sync drivers do on `Refresh`."""
        ...

    async def arefresh(self) -> bool:
        """Fetch fresh registry data; what async drivers do on `Refresh`."""
        ...

    def report(self, decision: Decision) -> None:
        """Report a decision made outside `route` (e.g. a body that isn't JSON)."""
        ...


class RoutedCall(NamedTuple):
    """One call to a routed endpoint, as the driver parsed it.

    A named tuple, like `Send`: immutable, and built per request in a third of the
    time a frozen dataclass takes (which sets each field through ``object.__setattr__``).
    """

    body: Any
    """The caller's body, decoded once (`json.loads`); never mutated."""
    endpoint: Endpoint
    api_version: str | None = None
    betas: tuple[str, ...] = ()
    headers: Mapping[str, str] | None = None


class Send(NamedTuple):
    """Forward a request upstream (a named tuple: built for every call, see `RoutedCall`)."""

    body: Any
    """The body to send. When `changed` is false this IS the caller's body: forward the
    original bytes, don't serialise again."""
    decision: Decision
    changed: bool
    attempt: int


@dataclass(frozen=True, slots=True)
class Refresh:
    """Fetch fresh registry data (blocking / awaited), then send `None` into the flow."""

    cause: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer locally with an API-shaped 400 (`refusal_body`); send nothing upstream."""

    decision: Decision


Action = Send | Refresh | Refuse


@dataclass(frozen=True, slots=True)
class Reply:
    """What the flow needs to know about an upstream answer."""

    status_code: int
    error_type: str | None = None
    """``error.type`` of an error body (read only for `READS_BODY_ON` statuses)."""
    error_message: str | None = None


Flow = Generator[Action, Reply | None, None]
"""A running `routing_flow`."""

_STATUS_REPLIES: dict[int, Reply] = {}


def reply_for(status_code: int) -> Reply:
    """``Reply(status_code)``, shared per status (frozen, so safe to reuse).

    A frozen dataclass costs ~0.4 µs to build; every routed response needs one.
    """
    reply = _STATUS_REPLIES.get(status_code)
    if reply is None:
        reply = Reply(status_code)
        if len(_STATUS_REPLIES) < 1000:  # statuses are a small set; bound it anyway
            _STATUS_REPLIES[status_code] = reply
    return reply


HeaderEntries = tuple[tuple[bytes, bytes, bytes], ...]
"""Encoded headers in the ``(raw key, lower-cased key, value)`` form httpx and httpx2
both keep in ``Headers._list``."""

_HEADER_ENTRIES: dict[tuple[str, str | None, str | None], HeaderEntries | None] = {}


def decision_header_entries(decision: Decision) -> HeaderEntries | None:
    """`Decision.header_values`, encoded; `None` unless every value is ASCII.

    Memoised for decisions without changes: building and encoding the four values
    costs ~1.5 µs, and nearly every response of a process carries one of a handful of
    ``(outcome, model, requested model)`` combinations with no changes, the only inputs
    of `header_values` then. `None` (a non-ASCII value, say in a change) sends the
    drivers to their slower, encoding-aware path.
    """
    if decision.changes:
        return _encode_headers(decision.header_values())
    key = (decision.outcome, decision.model, decision.requested_model)
    try:
        return _HEADER_ENTRIES[key]
    except KeyError:
        pass
    entries = _encode_headers(decision.header_values())
    if len(_HEADER_ENTRIES) >= 256:
        _HEADER_ENTRIES.clear()  # bounded; the working set refills it at once
    _HEADER_ENTRIES[key] = entries
    return entries


def _encode_headers(values: Mapping[str, str]) -> HeaderEntries | None:
    if not all(v.isascii() for v in values.values()):
        return None
    return tuple((k.encode(), k.encode(), v.encode()) for k, v in values.items())


def append_decision_headers(headers: Any, entries: HeaderEntries | None) -> bool:
    """Append the ``caproute-*`` entries to an httpx / httpx2 ``Headers``; False if not done.

    ``Headers.update`` and ``headers[k] = v`` re-encode and rescan the whole list for
    every key they set (~10 µs per response), so when the response has no ``caproute-*``
    header yet (always, unless it passed through another caproute) the entries are
    appended directly to the multi-dict's list. Otherwise (or for another headers
    type) the caller falls back to the public API.
    """
    entries_list = getattr(headers, "_list", None)
    if entries is None or not isinstance(entries_list, list):
        return False
    for entry in entries_list:
        if entry[1].startswith(b"caproute-"):
            return False
    entries_list.extend(entries)
    return True


def endpoint_for(method: str, path: str) -> Endpoint | None:
    """The routed endpoint a request goes to, or `None` for traffic to pass through.

    Only ``POST`` to ``…/v1/messages``, ``…/v1/messages/count_tokens`` and
    ``…/v1/messages/batches`` are routed; a base URL with a path prefix (a gateway) is
    fine. Batch retrieval, results, cancel, models, files… all pass through.

    The API serves these paths with trailing slashes too (``/v1/messages/``), so those
    are routed as well: otherwise a slash would sidestep routing. (Percent-encoded
    paths arrive decoded; spellings the API answers 404, such as ``/v1//messages`` or
    ``/V1/messages``, are not routed: routing them would gain nothing, and their 404
    would read as the model's.)
    """
    if method != "POST":
        return None
    for suffix, endpoint in _ROUTED_SUFFIXES:
        if path.endswith(suffix):
            return endpoint
    if path.endswith("/"):  # rare: checked only once the common spellings missed
        stripped = path.rstrip("/")
        for suffix, endpoint in _ROUTED_SUFFIXES:
            if stripped.endswith(suffix):
                return endpoint
    return None


def parse_betas(values: Sequence[str]) -> tuple[str, ...]:
    """Every ``anthropic-beta`` value, from repeated and/or comma-separated headers."""
    return tuple(b for v in values for b in (p.strip() for p in v.split(",")) if b)


def error_of(body: bytes) -> tuple[str | None, str | None]:
    """``(error.type, error.message)`` of an API error body; ``(None, None)`` if not one."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return None, None
    kind, message = error.get("type"), error.get("message")
    return (
        kind if isinstance(kind, str) else None,
        message if isinstance(message, str) else None,
    )


def refusal_body(decision: Decision) -> bytes:
    """The API-shaped 400 body for a locally refused request.

    SDK callers get their usual ``BadRequestError``, whose message carries caproute's
    reason; `decision.reason` never contains message content or credentials.
    """
    reason = decision.reason or "the routing policy refused this request"
    doc = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": f"caproute: {reason}"},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def looks_capability_related(message: str | None, decision: Decision) -> bool:
    """Whether a 400's message plausibly blames a capability of the chosen model."""
    if not message:
        return False
    text = message.lower()
    if decision.model and decision.model.lower() in text:
        return True
    if any(phrase in text for phrase in _CAPABILITY_PHRASES):
        return True
    # A need such as "effort.max" or "pdf_input": its words in the message are a hint.
    words = {w for need in decision.needs for w in need.replace("_", ".").split(".")}
    return any(word in text for word in words - _GENERIC_WORDS if len(word) > 2)


def first_action(router: Router, call: RoutedCall) -> Send | Refuse:
    """The flow's first step on its own: route the call once (attempt 1).

    Drivers take this, send it, and enter `routing_flow` (with ``first=`` this action)
    only when the reply is one the flow reacts to (a status of 400 or more): most
    calls never need the generator, whose creation and two resumptions cost more
    than the rest of the driver's bookkeeping.
    """
    # Keyword arguments left at their defaults: what attempt 1 passes anyway, cheaper.
    result = router.route(
        call.body,
        endpoint=call.endpoint,
        api_version=call.api_version,
        betas=call.betas,
        headers=call.headers,
    )
    decision = result.decision
    if decision.rejected:
        return Refuse(decision)
    body = result.body
    return Send(body, decision, body is not call.body, 1)


def reacts_to(reply: Reply) -> bool:
    """Whether the flow may act on `reply` to a `Send` (below 400 it just finishes)."""
    return reply.status_code >= 400


def routing_flow(router: Router, call: RoutedCall, first: Send | Refuse | None = None) -> Flow:
    """The routing loop for one call: yields `Send` / `Refresh` / `Refuse` actions.

    After a `Send`, send the upstream `Reply` in; after a `Refresh`, send `None`. When the
    generator finishes (``StopIteration``) the driver delivers the response of the last
    `Send`, carrying that send's decision. After a `Refuse` the driver answers locally
    and stops driving.

    `first` is the call's `first_action`, when the driver already took it: the flow
    yields it again (instead of routing the call a second time) and carries on from its
    reply, so a driver can send the first action before deciding to start the flow.
    """
    exclude: tuple[str, ...] = ()
    refreshed = fell_back = False
    cause: str | None = None
    last: Send | None = None
    for attempt in range(1, router.max_attempts + 1):
        if attempt == 1:
            action = first if first is not None else first_action(router, call)
            if isinstance(action, Refuse):
                yield action
                return
            last = action
            decision = action.decision
        else:
            result = router.route(
                call.body,
                endpoint=call.endpoint,
                api_version=call.api_version,
                betas=call.betas,
                headers=call.headers,
                exclude=exclude,
                attempt=attempt,
                cause=cause,
                allow_cooling=not fell_back,
            )
            decision = result.decision
            if decision.rejected:
                # Mid-flow (no other candidate left): the upstream answer we already
                # have is more truthful than a local refusal.
                return
            if last is not None and _same_target(last, result):
                return  # re-routing changed nothing: sending it again would fail the same way
            last = Send(result.body, decision, result.body is not call.body, attempt)
        reply = yield last
        if reply is None or not reacts_to(reply):
            return
        model = decision.model
        status = reply.status_code
        if _is_stale_registry_400(reply, decision) and not refreshed and router.can_refresh:
            refreshed = True
            cause = f"400 from {model}: refreshed the registry"
            yield Refresh(cause)
        elif status == 404 and reply.error_type == "not_found_error" and _single_model(call, model):
            assert model is not None
            router.mark_retired(model)
            exclude = (*exclude, model)
            cause = f"404 from {model}: treated as retired"
        elif status in router.fallback_statuses(decision) and _single_model(call, model):
            assert model is not None
            router.mark_unavailable(model)  # even on the last hop: the SDK's retry avoids it
            if fell_back:
                return
            fell_back = True
            exclude = (*exclude, model)
            cause = f"{status} from {model}: trying the next candidate"
        else:
            return


RequestT = TypeVar("RequestT", contravariant=True)
ResponseT = TypeVar("ResponseT")


class SyncShell(Protocol[RequestT, ResponseT]):
    """The IO a sync driver does for `drive`: one shell per forwarding path.

    `RequestT` is whatever the shell needs to send (an httpx request; for the SDK
    middleware, the ``APIRequest`` with its ``call_next``); `ResponseT` what it returns.
    """

    def _hop(self, request: RequestT, action: Send) -> tuple[ResponseT, Reply]:
        """Send `action` upstream; the response and the `Reply` the flow reads."""
        ...

    def _release(self, response: ResponseT) -> None:
        """Let go of a response the flow moved past (its connection goes back)."""
        ...

    def _refuse(self, request: RequestT, decision: Decision) -> ResponseT:
        """Answer a refused call locally (return a 400, or raise the caller's error)."""
        ...

    def _deliver(self, response: ResponseT, decision: Decision) -> ResponseT:
        """The final response, carrying `decision` (``caproute-*`` headers, extension)."""
        ...


class AsyncShell(Protocol[RequestT, ResponseT]):
    """The async twin of `SyncShell` (sending and releasing are awaited)."""

    async def _hop(self, request: RequestT, action: Send) -> tuple[ResponseT, Reply]:
        """Send `action` upstream; the response and the `Reply` the flow reads."""
        ...

    async def _release(self, response: ResponseT) -> None:
        """Let go of a response the flow moved past."""
        ...

    def _refuse(self, request: RequestT, decision: Decision) -> ResponseT:
        """Answer a refused call locally."""
        ...

    def _deliver(self, response: ResponseT, decision: Decision) -> ResponseT:
        """The final response, carrying `decision`."""
        ...


def drive(
    router: Router, call: RoutedCall, shell: SyncShell[RequestT, ResponseT], request: RequestT
) -> ResponseT:
    """Run one call through the flow with a sync shell doing the IO.

    The common case takes no generator: route once (`first_action`), send, and deliver
    unless the reply is one the flow reacts to; only then does `routing_flow` start,
    from the action already sent.
    """
    action: Action = first_action(router, call)
    flow: Flow | None = None
    response: ResponseT | None = None
    sent: Send | None = None
    while True:
        reply: Reply | None = None
        if isinstance(action, Refuse):
            return shell._refuse(request, action.decision)
        if isinstance(action, Refresh):
            router.refresh()
        else:
            if response is not None:
                shell._release(response)  # a hop past this answer
            sent = action
            response, reply = shell._hop(request, action)
            if flow is None:
                if not reacts_to(reply):
                    return shell._deliver(response, action.decision)
                flow = routing_flow(router, call, action)
                next(flow)  # the flow yields `action` again: already sent
        assert flow is not None
        try:
            action = flow.send(reply)
        except StopIteration:
            assert sent is not None and response is not None
            return shell._deliver(response, sent.decision)


async def drive_async(
    router: Router, call: RoutedCall, shell: AsyncShell[RequestT, ResponseT], request: RequestT
) -> ResponseT:
    """The async twin of `drive` (an async registry fetcher is read first, awaited)."""
    await router.acurrent()
    action: Action = first_action(router, call)
    flow: Flow | None = None
    response: ResponseT | None = None
    sent: Send | None = None
    while True:
        reply: Reply | None = None
        if isinstance(action, Refuse):
            return shell._refuse(request, action.decision)
        if isinstance(action, Refresh):
            await router.arefresh()
        else:
            if response is not None:
                await shell._release(response)
            sent = action
            response, reply = await shell._hop(request, action)
            if flow is None:
                if not reacts_to(reply):
                    return shell._deliver(response, action.decision)
                flow = routing_flow(router, call, action)
                next(flow)
        assert flow is not None
        try:
            action = flow.send(reply)
        except StopIteration:
            assert sent is not None and response is not None
            return shell._deliver(response, sent.decision)


def passthrough(reason: str) -> Decision:
    """The decision reported for a call caproute leaves untouched (not a JSON object...)."""
    return Decision(outcome="passthrough", requested_model=None, model=None, reason=reason)


def _is_stale_registry_400(reply: Reply, decision: Decision) -> bool:
    return (
        reply.status_code == 400
        and reply.error_type == "invalid_request_error"
        and looks_capability_related(reply.error_message, decision)
    )


def _single_model(call: RoutedCall, model: str | None) -> bool:
    # A batch mixes models: a 404 or 529 on its creation doesn't say which one to avoid.
    return model is not None and call.endpoint != "batch"


def _same_target(previous: Send, result: RouteResult) -> bool:
    return previous.decision.model == result.decision.model and previous.body == result.body
