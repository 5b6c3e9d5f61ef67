"""The drivers of the response-driven flow: one loop per sync-ness, shared by every shell.

The flow itself is sans-IO and lives in the core (`caproute._core.flow`): it yields
actions and receives replies. `drive` / `drive_async` run it; the IO is a *shell*'s
(`SyncShell` / `AsyncShell`: send a hop, release a response, refuse, deliver) and the
routing state is the `LiveRouter`'s (`view()`, `carry_out()`). The transports in
`caproute._http.transports` are shells over httpx/httpx2, the SDK middleware in
`caproute._http.middleware` over the SDK's ``APIRequest`` / ``APIResponse``.

What `drive` does, step by step::

    view = router.view()                      # async: await router.aview()
    action = first_action(view, call)         # route once: Send, Refuse or Refresh
    if Send:                                  # the common case takes no generator:
        response, reply = shell._hop(...)     #   send, and unless the reply is >= 400,
        if reply.status_code < 400:           #   deliver at once
            return shell._deliver(response, action.decision)
    flow = call_flow(call, view, first=action)  # otherwise the flow takes over:
    for each action it yields:
        Send      -> release the previous response, send, feed the Reply back
        Refresh, Resolve, Learn, RememberAccount, MarkRetired, MarkOverloaded
                  -> router.carry_out(action), feed router.view() back
        Refuse    -> shell._refuse(...)       # nothing goes upstream
        Deliver   -> shell._deliver(last response, action.decision)

Every decision that is sent or refused is reported (`LiveRouter.report`) once.

This module also holds the small wire helpers every shell shares: which endpoint a
request goes to, the ``anthropic-beta`` values, an error body's type and message, the
API-shaped body of a local refusal and the ``caproute-*`` response headers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from .._core.decision import Decision
from .._core.flow import READS_BODY_ON, Deliver, Refuse, Reply, call_flow
from .._core.flow import CallFlow as Flow
from .._core.flow import Forward as Send
from .._core.flow import ParsedCall as Call
from .._core.flow import first_step as first_action
from .._types import Endpoint

if TYPE_CHECKING:
    from .live import LiveRouter

__all__ = [
    "READS_BODY_ON",
    "AsyncShell",
    "Call",
    "Reply",
    "Send",
    "SyncShell",
    "append_decision_headers",
    "decision_header_entries",
    "drive",
    "drive_async",
    "endpoint_for",
    "error_of",
    "parse_betas",
    "passthrough",
    "refusal_body",
    "reply_for",
]

_ROUTED_SUFFIXES: Final[tuple[tuple[str, Endpoint], ...]] = (
    ("/v1/messages", "messages"),
    ("/v1/messages/count_tokens", "count_tokens"),
    ("/v1/messages/batches", "batch"),
)

_STATUS_REPLIES: dict[int, Reply] = {}


def reply_for(status_code: int) -> Reply:
    """``Reply(status_code)``, shared per status (immutable, so safe to reuse)."""
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


def error_of(body: bytes) -> tuple[str | None, str | None, str | None]:
    """``(error.type, error.message, error.details.error_code)`` of an API error body;
    ``None`` for each part it doesn't have (all three for a body that is not one)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None, None
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return None, None, None
    kind, message, details = error.get("type"), error.get("message"), error.get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    return (
        kind if isinstance(kind, str) else None,
        message if isinstance(message, str) else None,
        code if isinstance(code, str) else None,
    )


def refusal_body(decision: Decision) -> bytes:
    """The API-shaped 400 body for a locally refused request.

    SDK callers get their usual ``BadRequestError``, whose message carries caproute's
    reason; `decision.reason` never contains message content or credentials. A refusal
    repeating one of the API's (an organization-level refusal remembered for the
    credential) carries its ``error.details.error_code`` too, so SDK 2.x raises the
    same class the API's answer did (``OrganizationURLFetchDisabledError``).
    """
    reason = decision.reason or "the routing policy refused this request"
    error: dict[str, Any] = {"type": "invalid_request_error", "message": f"caproute: {reason}"}
    code = decision.extra.get("error_code")
    if isinstance(code, str):
        error["details"] = {"error_code": code}
    doc = {"type": "error", "error": error}
    return json.dumps(doc, separators=(",", ":")).encode()


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
    router: LiveRouter, call: Call, shell: SyncShell[RequestT, ResponseT], request: RequestT
) -> ResponseT:
    """Run one call through the flow with a sync shell doing the IO.

    The common case takes no generator: route once (`first_action`), send, and deliver
    unless the reply is one the flow reacts to; only then does `call_flow` start, from
    the action already sent.
    """
    view = router.view()
    action: Any = first_action(view, call)
    response: ResponseT | None = None
    flow: Flow
    if isinstance(action, Send):
        router.report(action.decision)
        response, reply = shell._hop(request, action)
        if reply.status_code < 400:
            return shell._deliver(response, action.decision)
        flow = call_flow(call, view, action)
        next(flow)  # the flow yields `action` again: already sent
        action = flow.send(reply)
    else:
        flow = call_flow(call, view, action)
        action = next(flow)
    while True:
        if isinstance(action, Send):
            router.report(action.decision)
            if response is not None:
                shell._release(response)  # a hop past this answer
            response, reply = shell._hop(request, action)
            action = flow.send(reply)
        elif isinstance(action, Deliver):
            assert response is not None
            return shell._deliver(response, action.decision)
        elif isinstance(action, Refuse):
            router.report(action.decision)
            return shell._refuse(request, action.decision)
        else:
            router.carry_out(action)
            action = flow.send(router.view())


async def drive_async(
    router: LiveRouter, call: Call, shell: AsyncShell[RequestT, ResponseT], request: RequestT
) -> ResponseT:
    """The async twin of `drive` (an async registry fetcher is read, awaited)."""
    view = await router.aview()
    action: Any = first_action(view, call)
    response: ResponseT | None = None
    flow: Flow
    if isinstance(action, Send):
        router.report(action.decision)
        response, reply = await shell._hop(request, action)
        if reply.status_code < 400:
            return shell._deliver(response, action.decision)
        flow = call_flow(call, view, action)
        next(flow)
        action = flow.send(reply)
    else:
        flow = call_flow(call, view, action)
        action = next(flow)
    while True:
        if isinstance(action, Send):
            router.report(action.decision)
            if response is not None:
                await shell._release(response)
            response, reply = await shell._hop(request, action)
            action = flow.send(reply)
        elif isinstance(action, Deliver):
            assert response is not None
            return shell._deliver(response, action.decision)
        elif isinstance(action, Refuse):
            router.report(action.decision)
            return shell._refuse(request, action.decision)
        else:
            await router.acarry_out(action)
            action = flow.send(await router.aview())


def passthrough(reason: str) -> Decision:
    """The decision reported for a call caproute leaves untouched (not a JSON object...)."""
    return Decision(outcome="passthrough", requested_model=None, model=None, reason=reason)
