"""The adapter every shell shares: drive one parsed call through the core flow, then
deliver the upstream answer or answer locally.

The flow itself is sans-IO and lives in the core (`caproute._core.flow`): it yields
actions and receives replies. This module runs it and owns everything a shell would
otherwise write again: which decision is reported when, what a hop past an answer
releases, which error is the caller's (an error of sending passes through untouched)
and which is caproute's (answered locally, API-shaped, never retried), what a local
answer looks like, and how a delivered response carries its decision.

A shell only translates its own objects (`SyncShell` / `AsyncShell`):

* ``send(request, action)``: forward `action` (the caller's own request object when
  routing changed nothing), and hand back a `Sent`: what the caller gets, the
  httpx / httpx2 response inside it, its status, and its body when the status is in
  `READS_BODY_ON` (no other body is read, so streams stay streams). An error while
  building the request to send is raised as `Unsent` (caproute's, answered locally);
  an error of sending itself passes through to the caller untouched;
* ``answer(request, local)``: turn a `Local` answer into what the caller gets (the
  transports return it as a response; the SDK middleware raises the SDK's error).

The SDK middleware (`caproute._http.middleware`) and the httpx / httpx2 transports
(`caproute._http.transports`) are such shells; the proxy can be one too.

What `drive` does, step by step (`drive_async` awaits the same steps)::

    view, action = router.start(call)             # route once: Forward (reported), Refuse,
    if Forward:                                   # Refresh or Resolve; the common case
        sent = shell.send(request, action)        # takes no flow:
        if sent.status < 400: deliver sent        #   caproute-* headers, extension
    flow = call_flow(call, view, first=action)    # otherwise the flow takes over:
    for each action it yields:
        Forward   -> report, release the previous response, send, feed the Reply back
        Refresh, Resolve, Learn, RememberAccount, MarkRetired, MarkOverloaded
                  -> router.carry_out(action), feed router.view() back
        Refuse    -> report; shell.answer(request, the API-shaped 400)
        Deliver   -> deliver the last response with the flow's decision

The steps live once, in the generator `_exchange`; the two drivers only do its IO.
Every decision that is sent or refused is reported (`LiveRouter.report`) once.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, TypeVar

from .._core.body import BodyRefused, internal_error_message, refused_decision
from .._core.decision import Decision
from .._core.flow import READS_BODY_ON, Deliver, Forward, ParsedCall, Refuse, Reply, call_flow
from .._core.secrets import redact_decision
from .._core.wire import (  # re-exported: the proxy reads them here
    endpoint_for,
    error_body,
    parse_betas,
    parse_error,
    refusal_body,
)
from .._logs import protect
from .otel import ClientTracing, client_tracing

if TYPE_CHECKING:
    from .live import LiveRouter

__all__ = [
    "READS_BODY_ON",
    "AsyncShell",
    "Forward",
    "Local",
    "Reply",
    "ParsedCall",
    "Sent",
    "SyncShell",
    "Unsent",
    "decision_headers",
    "drive",
    "drive_async",
    "endpoint_for",
    "local_answer",
    "local_response",
    "parse_betas",
    "refusal_body",
    "reply_for",
    "report_passthrough",
]

_logger = protect(logging.getLogger("caproute"))

RequestT = TypeVar("RequestT", contravariant=True)
ResultT = TypeVar("ResultT", covariant=True)


class Sent(NamedTuple):
    """What a shell's ``send`` hands back."""

    result: Any
    """What the caller gets if this answer is delivered (the shell's own object)."""
    response: Any
    """The httpx / httpx2 response inside `result` (`None`: nothing to annotate)."""
    status: int
    content: bytes | None
    """The (decoded) body when `status` is in `READS_BODY_ON`, else `None` (unread)."""


class Local(NamedTuple):
    """An answer caproute gives itself: nothing was sent upstream."""

    status: int
    content: bytes
    """An API-shaped error document."""
    decision: Decision
    """Already masked (`redact_decision`): safe to put on the answer."""


class Unsent(Exception):
    """Raised by a shell's ``send`` for an error before anything was sent (building the
    routed request): caproute's own error, answered locally (its cause), unlike an
    error of sending, which the caller gets as it is."""


class SyncShell(Protocol[RequestT, ResultT]):
    """The IO a sync shell does for `drive` (see the module docstring)."""

    def send(self, request: RequestT, action: Forward) -> Sent:
        """Forward `action` upstream."""
        ...

    def answer(self, request: RequestT, local: Local) -> ResultT:
        """Answer the caller locally (return it, or raise the caller's error)."""
        ...


class AsyncShell(Protocol[RequestT, ResultT]):
    """The async twin of `SyncShell` (sending is awaited)."""

    async def send(self, request: RequestT, action: Forward) -> Sent:
        """Forward `action` upstream."""
        ...

    def answer(self, request: RequestT, local: Local) -> ResultT:
        """Answer the caller locally."""
        ...


# -- the two drivers: IO only --------------------------------------------------------------

_SEND: Final = 0
_RELEASE: Final = 1
_CARRY_OUT: Final = 2

_Step = tuple[int, Any]
_Steps = Generator[_Step, Any, Any]


def drive(
    router: LiveRouter,
    call: ParsedCall,
    shell: SyncShell[RequestT, ResultT],
    request: RequestT,
    tracing: ClientTracing | None = None,
) -> ResultT:
    """Run one call through the flow with a sync shell doing the IO.

    `tracing` is the client's tracing setting (`client_tracing`) while the call runs.
    """
    token = None if tracing is None else client_tracing.set(tracing)
    in_io = False
    last: Any = None
    try:
        steps = _exchange(router, call, *router.start(call))
        op, arg = next(steps)
        while True:
            if op == _SEND:
                in_io = True
                sent = shell.send(request, arg)
                in_io = False
                last = sent.response
                op, arg = steps.send(sent)
            elif op == _RELEASE:
                arg.close()  # a hop past this answer: its connection goes back
                op, arg = steps.send(None)
            else:
                router.carry_out(arg)
                op, arg = steps.send(router.view())
    except StopIteration as done:
        outcome = done.value
    except Exception as exc:
        if in_io and not isinstance(exc, Unsent):
            raise  # an error of sending: the caller's to handle, as without caproute
        if last is not None:
            last.close()
        outcome = local_answer(router, exc)
    finally:
        if token is not None:
            client_tracing.reset(token)
    return shell.answer(request, outcome) if type(outcome) is Local else outcome


async def drive_async(
    router: LiveRouter,
    call: ParsedCall,
    shell: AsyncShell[RequestT, ResultT],
    request: RequestT,
    tracing: ClientTracing | None = None,
) -> ResultT:
    """The async twin of `drive` (an async registry fetcher is read, awaited)."""
    token = None if tracing is None else client_tracing.set(tracing)
    in_io = False
    last: Any = None
    try:
        steps = _exchange(router, call, *(await router.astart(call)))
        op, arg = next(steps)
        while True:
            if op == _SEND:
                in_io = True
                sent = await shell.send(request, arg)
                in_io = False
                last = sent.response
                op, arg = steps.send(sent)
            elif op == _RELEASE:
                await arg.aclose()
                op, arg = steps.send(None)
            else:
                await router.acarry_out(arg)
                op, arg = steps.send(await router.aview())
    except StopIteration as done:
        outcome = done.value
    except Exception as exc:
        if in_io and not isinstance(exc, Unsent):
            raise
        if last is not None:
            await last.aclose()
        outcome = local_answer(router, exc)
    finally:
        if token is not None:
            client_tracing.reset(token)
    return shell.answer(request, outcome) if type(outcome) is Local else outcome


# -- the steps, once -----------------------------------------------------------------------


def _exchange(router: LiveRouter, call: ParsedCall, view: Any, action: Any) -> _Steps:
    """The steps of one call from its first (`LiveRouter.start`: routed once, a send
    reported): yields ``(op, argument)`` for the driver to carry out, returns the
    delivered result or a `Local` answer.

    The common case takes no flow generator: send, and deliver unless the reply is one
    the flow reacts to; only then does `call_flow` start, from the action already sent.
    """
    sent: Sent | None = None
    if isinstance(action, Forward):
        sent = yield _SEND, action
        assert sent is not None
        if sent.status < 400:
            return _deliver(sent, action.decision)
        flow = call_flow(call, view, action)
        next(flow)  # the flow yields `action` again: already sent
        action = flow.send(_reply(sent))
    else:
        flow = call_flow(call, view, action)
        action = next(flow)
    while True:
        if isinstance(action, Forward):
            router.report(action.decision)
            if sent is not None and sent.response is not None:
                yield _RELEASE, sent.response
            sent = yield _SEND, action
            assert sent is not None
            action = flow.send(_reply(sent))
        elif isinstance(action, Deliver):
            assert sent is not None
            return _deliver(sent, action.decision)
        elif isinstance(action, Refuse):
            router.report(action.decision)
            decision = redact_decision(action.decision)
            return Local(400, refusal_body(decision), decision)
        else:
            action = flow.send((yield _CARRY_OUT, action))


_STATUS_REPLIES: dict[int, Reply] = {}


def reply_for(status_code: int) -> Reply:
    """``Reply(status_code)``, shared per status (immutable, so safe to reuse)."""
    reply = _STATUS_REPLIES.get(status_code)
    if reply is None:
        reply = Reply(status_code)
        if len(_STATUS_REPLIES) < 1000:  # statuses are a small set; bound it anyway
            _STATUS_REPLIES[status_code] = reply
    return reply


def _reply(sent: Sent) -> Reply:
    if sent.content is None:
        return reply_for(sent.status)
    return Reply(sent.status, *parse_error(sent.content)[:3])


def _deliver(sent: Sent, decision: Decision) -> Any:
    """`sent.result`, its response carrying `decision` (``caproute-*`` headers, extension)."""
    response = sent.response
    if response is not None:
        decision = redact_decision(decision)  # itself, unless it quotes a key
        headers = response.headers
        for name, value in decision_headers(decision).items():
            headers[name] = value  # replaces any caproute-* header already there
        # Copy rather than mutate: a transport may hand out a shared or read-only mapping.
        response.extensions = {**response.extensions, "caproute_decision": decision}
    return sent.result


_HEADERS: dict[tuple[str, str | None, str | None], Mapping[str, str]] = {}


def decision_headers(decision: Decision) -> Mapping[str, str]:
    """`Decision.header_values`, memoised for decisions without changes (read-only).

    Building the four values costs ~1.5 µs, and nearly every response of a process
    carries one of a handful of ``(outcome, model, requested model)`` combinations with
    no changes, the only inputs of `header_values` then.
    """
    if decision.changes:
        return decision.header_values()
    key = (decision.outcome, decision.model, decision.requested_model)
    values = _HEADERS.get(key)
    if values is None:
        if len(_HEADERS) >= 256:
            _HEADERS.clear()  # bounded; the working set refills it at once
        values = _HEADERS[key] = decision.header_values()
    return values


# -- local answers -------------------------------------------------------------------------


def local_answer(router: LiveRouter, exc: Exception, tracing: ClientTracing | None = None) -> Local:
    """The local answer for an error caproute raised itself, reported.

    A `BodyRefused` (a body caproute can't forward safely) is answered with its own
    status. Anything else is an error in routing (a caproute bug; a body nested deeper
    than the stack): never a crash, never a retry (the same body would fail the same
    way), the traceback logged, a 500 (a 400 for the nesting). `tracing`: as for
    `drive` (a shell answering before it drives); an `Unsent` is answered as its cause.
    """
    if isinstance(exc, Unsent) and isinstance(exc.__cause__, Exception):
        exc = exc.__cause__
    if isinstance(exc, BodyRefused):
        status, content = exc.status, error_body(exc.error_type, exc.message)
        decision = refused_decision(exc.message)
    else:
        _logger.error(
            "caproute: routing failed with %s; answering locally, nothing sent upstream",
            type(exc).__name__,
            exc_info=exc,
        )
        message = internal_error_message(exc)
        decision = refused_decision(message)
        if isinstance(exc, RecursionError):
            status, content = 400, error_body("invalid_request_error", message)
        else:
            status, content = 500, error_body("api_error", message)
    _report(router, decision, tracing)
    return Local(status, content, redact_decision(decision))


def report_passthrough(router: LiveRouter, reason: str, tracing: ClientTracing | None) -> None:
    """Report a routed endpoint's call caproute leaves untouched (say, not a JSON object)."""
    _report(router, _passthrough(reason), tracing)


def _report(router: LiveRouter, decision: Decision, tracing: ClientTracing | None) -> None:
    token = None if tracing is None else client_tracing.set(tracing)
    try:
        router.report(decision)
    finally:
        if token is not None:
            client_tracing.reset(token)


def local_response(http: ModuleType, request: Any, local: Local) -> Any:
    """`local` as a response of `http` (httpx2 or httpx), attached to `request`."""
    headers = {
        "content-type": "application/json",
        "x-should-retry": "false",  # caproute's verdict will not change on a retry
        **local.decision.header_values(),
    }
    return http.Response(
        local.status,
        headers=headers,
        content=local.content,
        request=request,
        extensions={"caproute_decision": local.decision},
    )


def _passthrough(reason: str) -> Decision:
    """The decision reported for a call caproute leaves untouched (not a JSON object...)."""
    return Decision(outcome="passthrough", requested_model=None, model=None, reason=reason)
