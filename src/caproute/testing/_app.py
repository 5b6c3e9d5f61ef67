"""The fake API as a pure ASGI application (no web framework).

One request goes: read the body (size-capped) → record it → apply the next queued
fault → authenticate → check ``anthropic-version`` → route → answer. Handlers
return a response *description* (`_Json`, `_Raw`, `_Stream`); one writer puts it
on the wire, which is where the fault modifiers that act mid-answer (truncation,
a stream error event) live, so every endpoint gets them for free.

All state sits in `FakeState`, shared with the `FakeAnthropic` handle in the test
thread; it is guarded by ``state.lock`` (the catalogue and fault queue have their
own locks).
"""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from ._batches import FakeBatches
from ._catalogue import Catalogue, lifecycle_of
from ._faults import DetailedError, Fault, FaultQueue, Refusals
from ._validation import Wording, check_api_version, resolve_model, validate_params
from ._wire import (
    ApiError,
    default_message,
    error_body,
    error_type_for,
    estimate_tokens,
    message,
    new_id,
    sse,
    stream_events,
)

__all__ = ["DeliberateDisconnect", "FakeApp", "FakeState", "RecordedRequest"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Reply = Callable[[dict[str, Any], str], "str | Sequence[Mapping[str, Any]]"]

MIB = 1024 * 1024
_MESSAGES_LIMIT = 32 * MIB  # "Errors" page, request size limits: Messages, count_tokens
_BATCH_LIMIT = 256 * MIB  # "Errors" page, request size limits: Batches
_RECORD_JSON_LIMIT = 4 * MIB  # bigger bodies are recorded without their parsed JSON
_LIFECYCLES = frozenset({"active", "deprecated", "retired"})
_MALFORMED_BODY = b'{"data": [{"type": "model", "id": '


class DeliberateDisconnect(Exception):
    """Raised inside the app to drop the connection mid-answer (a truncation fault)."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    """Query parameters; repeated keys keep every value (``lifecycle[]``)."""
    headers: dict[str, str] = field(repr=False)
    """Lower-cased names; repeated headers joined with ``,``. Left out of repr: it holds the key."""
    body: Any
    """The parsed JSON body, or `None` (no body, not JSON, or too big to keep)."""
    model: str | None
    """The ``model`` field of a JSON body, as sent (before alias resolution)."""
    request_id: str
    wire_body: bytes = field(default=b"", repr=False)
    """The body as it arrived, before a ``gzip`` / ``deflate`` content encoding was undone
    (empty past 4 MiB)."""


@dataclass
class FakeState:
    """Everything the app knows; shared with the test thread under `lock`."""

    catalogue: Catalogue
    faults: FaultQueue
    api_key: str | None
    reply: Reply
    stream_delay: float = 0.0
    wording: Wording = "api"
    """How validation words its refusals (`caproute.testing._validation.WORDINGS`)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)
    requests: list[RecordedRequest] = field(default_factory=list)
    overloads: dict[str, int] = field(default_factory=dict)
    batches: FakeBatches = field(init=False)
    keys: dict[str, frozenset[str] | None] = field(default_factory=dict)
    """More accepted keys → the model ids each may see and use (`None`: all)."""
    models_forbidden: frozenset[str] = frozenset()
    """Keys that get 403 ``permission_error`` from the Models API (inference still works)."""
    refusals: Refusals = field(default_factory=Refusals)
    """Standing refusals: organizations with URL sources off, parameters a model refuses."""

    def __post_init__(self) -> None:
        self.batches = FakeBatches(self.catalogue)


# -- response descriptions -------------------------------------------------------------------


@dataclass
class _Json:
    body: Any
    status: int = 200


@dataclass
class _Raw:
    data: bytes
    content_type: str
    status: int = 200


@dataclass
class _Stream:
    events: list[dict[str, Any]]


_Response = _Json | _Raw | _Stream


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw_body: bytes
    too_large: bool
    base_url: str
    request_id: str
    wire_body: bytes = b""

    def json(self) -> dict[str, Any]:
        """The body as a JSON object, or a 400 like the API's."""
        try:
            value = json.loads(self.raw_body)
        except ValueError as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ApiError(400, "request body must be a JSON object")
        return value

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


class FakeApp:
    """The ASGI callable. Construct with a `FakeState`; serve with any ASGI server."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not part of the API
        request = await self._read_request(scope, receive)
        self._record(request)
        fault = self.state.faults.take(request.method, request.path)
        try:
            response = await self._answer(request, fault)
        except ApiError as exc:
            error = error_body(exc.error_type, exc.message, request.request_id)
            if isinstance(exc, DetailedError):
                error["error"]["details"] = exc.details
            response = _Json(error, exc.status)
        await self._write(send, request, response, fault)

    # -- reading -----------------------------------------------------------------------------

    async def _read_request(self, scope: Scope, receive: Receive) -> _Request:
        path = scope["path"]
        limit = _BATCH_LIMIT if path.startswith("/v1/messages/batches") else _MESSAGES_LIMIT
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            event = await receive()
            if event["type"] == "http.disconnect":
                break
            chunk = event.get("body", b"")
            size += len(chunk)
            if size <= limit:  # past the limit keep draining, stop buffering
                chunks.append(chunk)
            more = event.get("more_body", False)
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        wire = b"".join(chunks)
        return _Request(
            method=scope["method"],
            path=path,
            query=query,
            headers=headers,
            raw_body=_decoded(wire, headers.get("content-encoding"), limit),
            too_large=size > limit,
            base_url=f"http://{headers.get('host', '127.0.0.1')}",
            request_id=new_id("req_"),
            wire_body=wire,
        )

    def _record(self, request: _Request) -> None:
        body: Any = None
        if (
            request.raw_body
            and not request.too_large
            and len(request.raw_body) <= _RECORD_JSON_LIMIT
        ):
            try:
                body = json.loads(request.raw_body)
            except ValueError:
                body = None
        model = body.get("model") if isinstance(body, dict) else None
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            body=body,
            model=model if isinstance(model, str) else None,
            request_id=request.request_id,
            wire_body=request.wire_body if len(request.wire_body) <= _RECORD_JSON_LIMIT else b"",
        )
        with self.state.lock:
            self.state.requests.append(recorded)

    # -- answering ---------------------------------------------------------------------------

    async def _answer(self, request: _Request, fault: Fault | None) -> _Response:
        if fault is not None:
            await self._sleep(fault.delay)
            if fault.status is not None:
                return self._fault_response(request, fault, fault.status)
            if fault.malformed:
                return _Raw(_MALFORMED_BODY, "application/json")
        if request.too_large:
            raise ApiError(413, "Request exceeds the maximum allowed number of bytes.")
        self._authenticate(request)
        return await self._route(request)

    def _fault_response(self, request: _Request, fault: Fault, status: int) -> _Response:
        if isinstance(fault.body, bytes | str):
            data = fault.body.encode() if isinstance(fault.body, str) else fault.body
            return _Raw(data, "application/json", status)
        if fault.body is not None:
            return _Json(fault.body, status)
        error_type = fault.error_type or error_type_for(status)
        text = fault.message or default_message(status)
        error = error_body(error_type, text, request.request_id)
        details = fault.error_details()
        if details is not None:
            error["error"]["details"] = details
        return _Json(error, status)

    def _authenticate(self, request: _Request) -> None:
        key = self.state.api_key
        if key is None:
            return
        presented = _presented_key(request)
        if presented == key or presented in self.state.keys:
            return
        raise ApiError(401, "invalid x-api-key", "authentication_error")

    def _visible(self, request: _Request, model: dict[str, Any] | None) -> dict[str, Any] | None:
        """`model` if the request's key may see it (keys limited by `keys=`)."""
        allowed = self.state.keys.get(_presented_key(request) or "")
        if model is None or allowed is None or model["id"] in allowed:
            return model
        return None

    async def _route(self, request: _Request) -> _Response:
        parts = request.path.strip("/").split("/")
        method = request.method
        if parts[:2] != ["v1", "models"] and parts[:2] != ["v1", "messages"]:
            raise ApiError(404, f"Not found: {method} {request.path}", "not_found_error")
        version = check_api_version(request.headers.get("anthropic-version"))
        tail = parts[2:]
        if parts[1] == "models":
            if method == "GET" and not tail:
                return self._list_models(request)
            if method == "GET" and len(tail) == 1:
                return self._get_model(unquote(tail[0]), request)
        elif not tail and method == "POST":
            return await self._create_message(request, version)
        elif tail == ["count_tokens"] and method == "POST":
            return self._count_tokens(request, version)
        elif tail[:1] == ["batches"]:
            return self._batches(request, version, tail[1:])
        raise ApiError(404, f"Not found: {method} {request.path}", "not_found_error")

    # -- models ------------------------------------------------------------------------------

    def _list_models(self, request: _Request) -> _Response:
        wanted = request.query.get("lifecycle[]", []) + request.query.get("lifecycle", [])
        if len(wanted) > 3 or any(v not in _LIFECYCLES for v in wanted):
            raise ApiError(
                400, "lifecycle: each item should be 'active', 'deprecated' or 'retired'"
            )
        if _presented_key(request) in self.state.models_forbidden:
            raise ApiError(403, "this key may not list models", "permission_error")
        allowed = set(wanted) or {"active", "deprecated"}
        models = [m for m in self.state.catalogue.models() if lifecycle_of(m) in allowed]
        models = [m for m in models if self._visible(request, m) is not None]
        return _Json(_page(models, request))

    def _get_model(self, name: str, request: _Request) -> _Response:
        model = self._visible(request, self.state.catalogue.get(name))
        if model is None:
            raise ApiError(404, f"model: {name}", "not_found_error")
        return _Json(model)

    # -- messages ----------------------------------------------------------------------------

    async def _create_message(self, request: _Request, version: str) -> _Response:
        body = request.json()
        model = resolve_model(self.state.catalogue, body)
        if self._visible(request, model) is None:
            raise ApiError(404, f"model: {body.get('model')}", "not_found_error")
        with self.state.lock:
            overload_status = self.state.overloads.get(model["id"])
        if overload_status is not None:
            raise ApiError(overload_status, default_message(overload_status))
        self.state.refusals.check(_presented_key(request), model["id"], body)
        validate_params(
            body, model, api_version=version, endpoint="messages", wording=self.state.wording
        )
        full = self._message(body, model["id"])
        if body.get("stream") is True:
            return _Stream(stream_events(full))
        return _Json(full)

    def _message(self, body: dict[str, Any], model_id: str) -> dict[str, Any]:
        max_tokens = body.get("max_tokens")
        return message(
            model_id,
            self.state.reply(body, model_id),
            input_tokens=_input_tokens(body),
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        )

    def _count_tokens(self, request: _Request, version: str) -> _Response:
        body = request.json()
        model = resolve_model(self.state.catalogue, body)
        validate_params(
            body, model, api_version=version, endpoint="count_tokens", wording=self.state.wording
        )
        return _Json({"input_tokens": _input_tokens(body)})

    # -- batches (the lifecycle lives in `_batches`) -----------------------------------------

    def _batches(self, request: _Request, version: str, tail: list[str]) -> _Response:
        batches, method, base = self.state.batches, request.method, request.base_url
        if not tail and method == "POST":
            body, wording = request.json(), self.state.wording
            return _Json(batches.create(body, version, self._message, base, wording=wording))
        if not tail and method == "GET":
            return _Json(_page(batches.listing(base), request))
        batch_id, action = tail[0], tail[1:]
        if not action and method == "GET":
            return _Json(batches.retrieve(batch_id, base))
        if not action and method == "DELETE":
            return _Json(batches.delete(batch_id))
        if action == ["cancel"] and method == "POST":
            return _Json(batches.cancel(batch_id, base))
        if action == ["results"] and method == "GET":
            return _Raw(batches.results(batch_id), "application/x-jsonl")
        raise ApiError(404, f"Not found: {method} {request.path}", "not_found_error")

    # -- writing -----------------------------------------------------------------------------

    async def _write(
        self, send: Send, request: _Request, response: _Response, fault: Fault | None
    ) -> None:
        headers = [(b"request-id", request.request_id.encode())]
        if fault is not None:
            headers += [(k.lower().encode(), v.encode()) for k, v in fault.headers.items()]
            if fault.x_should_retry is not None:
                headers.append((b"x-should-retry", str(fault.x_should_retry).lower().encode()))
        truncated = fault is not None and fault.truncated
        if isinstance(response, _Stream):
            stream_error = fault.stream_error if fault is not None else None
            await self._write_stream(send, headers, response, truncated, stream_error)
            return
        if isinstance(response, _Json):
            data, content_type = json.dumps(response.body).encode(), "application/json"
        else:
            data, content_type = response.data, response.content_type
        headers += [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(data)).encode()),
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if truncated:
            # Promise the whole body (content-length), deliver half, drop the connection.
            await send(
                {"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True}
            )
            raise DeliberateDisconnect
        await send({"type": "http.response.body", "body": data})

    async def _write_stream(
        self,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        stream: _Stream,
        truncated: bool,
        stream_error: str | None,
    ) -> None:
        headers += [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        events = stream.events
        cut_at = len(events) // 2 if truncated else None
        for n, event in enumerate(events):
            if n == cut_at:
                raise DeliberateDisconnect
            if n:
                await self._sleep(self.state.stream_delay)
            await send({"type": "http.response.body", "body": sse(event), "more_body": True})
            if stream_error is not None and event["type"] == "content_block_delta":
                error = error_body(stream_error, default_message(529), new_id("req_"))
                await send({"type": "http.response.body", "body": sse(error), "more_body": True})
                break
        await send({"type": "http.response.body", "body": b""})

    async def _sleep(self, seconds: float) -> None:
        """Sleep in small steps so closing the fake never waits for a long delay."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self.state.closing.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.02))


# -- helpers ---------------------------------------------------------------------------------


def _decoded(body: bytes, coding: str | None, limit: int) -> bytes:
    """A ``gzip`` / ``deflate`` request body decoded, as HTTP servers in front of the API
    do; a body that doesn't decode is left as it is (and then fails as JSON)."""
    if coding is None or not body:
        return body
    codings = [c.strip().lower() for c in coding.split(",") if c.strip()]
    for name in reversed(codings):
        if name == "identity":
            continue
        wbits = {"gzip": 31, "x-gzip": 31, "deflate": 15}.get(name)
        if wbits is None:
            return b""  # brotli, zstd...: not JSON to this fake
        try:
            inflater = zlib.decompressobj(wbits)
            body = inflater.decompress(body, limit + 1)
        except zlib.error:
            return b""
    return body


def _presented_key(request: _Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key is not None:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def _input_tokens(body: dict[str, Any]) -> int:
    return estimate_tokens(body.get("system"), body.get("messages"), body.get("tools"))


def _page(items: list[dict[str, Any]], request: _Request) -> dict[str, Any]:
    """One page of a cursor-paged list (models, batches): the API reference's ``List`` pages."""
    limit = _limit(request.param("limit"))
    after_id, before_id = request.param("after_id"), request.param("before_id")
    if after_id and before_id:
        raise ApiError(400, "after_id and before_id cannot both be given")
    ids = [item["id"] for item in items]
    if after_id:
        window = items[_index(ids, after_id, "after_id") + 1 :]
        page, has_more = window[:limit], len(window) > limit
    elif before_id:
        window = items[: _index(ids, before_id, "before_id")]
        page, has_more = window[-limit:], len(window) > limit
    else:
        page, has_more = items[:limit], len(items) > limit
    return {
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": has_more,
    }


def _limit(raw: str | None) -> int:
    if raw is None:
        return 20
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, "limit: Input should be a valid integer") from None
    if not 1 <= limit <= 1000:
        raise ApiError(400, "limit: Input should be between 1 and 1000")
    return limit


def _index(ids: list[str], cursor: str, name: str) -> int:
    try:
        return ids.index(cursor)
    except ValueError:
        raise ApiError(400, f"{name}: unknown id {cursor!r}") from None
