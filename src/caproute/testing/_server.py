"""`FakeAnthropic`: the fake API served by uvicorn on a loopback port, in a thread.

Why a real server rather than a mock transport: routing happens in transports,
middleware and a proxy, and each must be exercised over real HTTP (keep-alive,
chunked SSE, connections dropped halfway) to be trusted.

Start-up binds the socket itself (port 0 → a free port, known before the server
runs) and drives uvicorn's `Server.startup` in a private event loop, so the fake
is ready in milliseconds. Shutdown is done here too instead of through
`Server.serve`, whose main loop polls every 100 ms and then sleeps another 100 ms;
closing the fake takes a few milliseconds and leaves no socket or loop behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._app import DeliberateDisconnect, FakeApp, FakeState, RecordedRequest
from ._batches import FakeBatches
from ._catalogue import Catalogue, default_catalogue
from ._faults import FaultQueue, Refusals
from ._replies import ReplyFunction
from ._validation import WORDINGS, Wording

if TYPE_CHECKING:
    import anthropic
    import uvicorn

__all__ = ["FakeAnthropic"]

_START_TIMEOUT_S = 5.0
_STOP_GRACE_S = 1.0


class _HideDeliberateDisconnects(logging.Filter):
    """Drop uvicorn's "Exception in ASGI application" record for our own truncation faults."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DeliberateDisconnect)


def _install_log_filter() -> None:
    log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDeliberateDisconnects) for f in log.filters):
        log.addFilter(_HideDeliberateDisconnects())


def _default_reply(body: dict[str, Any], model_id: str) -> str:
    del body
    return f"Hello from {model_id}."


def _constant_reply(text: str) -> Callable[[dict[str, Any], str], str]:
    def reply(body: dict[str, Any], model_id: str) -> str:
        del body, model_id
        return text

    return reply


def _forget_cached_lineup(url: str) -> None:
    """Remove caproute's registry cache file for `url` (and a half-written one), if any."""
    from .._registry.snapshot import user_cache_files

    for leftover in user_cache_files(url):  # one per key that read it, and half-written ones
        with contextlib.suppress(OSError):
            leftover.unlink()


class FakeAnthropic:
    """A local, validating stand-in for the Anthropic API. See `caproute.testing`."""

    def __init__(
        self,
        models: Iterable[Mapping[str, Any]] | None = None,
        *,
        aliases: Mapping[str, str] | None = None,
        api_key: str | None = None,
        reply: str | ReplyFunction | None = None,
        stream_delay: float = 0.0,
        port: int = 0,
        wording: Wording = "api",
        keys: Mapping[str, Iterable[str] | None] | None = None,
        models_forbidden: Iterable[str] = (),
    ) -> None:
        """Configure the fake; nothing listens until `start()` / ``with``.

        Args:
            models: Models API dicts, newest first (see `make_model`). Default: the
                models of caproute's embedded registry, or a small built-in lineup.
            aliases: Extra alias → id pairs (dated ids answer to their undated alias
                without being listed here).
            api_key: If set, every request must carry it as ``x-api-key`` or
                ``Authorization: Bearer``; otherwise 401.
            reply: The assistant text: a string, or ``f(body, model_id)`` returning
                the text or content blocks (``text``, ``tool_use``; see `call_tools`
                for a model that uses the tools it is given). Default:
                ``"Hello from <model id>."``.
            stream_delay: Seconds between SSE events (none before the first one).
            port: The loopback port to listen on (default 0: a free one, see `port`).
            wording: How refusals are worded: ``api`` (shaped like the real API's
                texts), ``terse`` or ``verbose`` (see `caproute.testing._validation`).
            keys: More keys the fake accepts (with `api_key` set), each mapped to the
                model ids it may see and use (`None`: all), as organizations and
                workspaces see different lineups: ``GET /v1/models`` lists only those,
                and inference on another model is a 404.
            models_forbidden: Keys whose ``GET /v1/models`` is a 403
                ``permission_error`` (they may still call Messages).
        """
        if wording not in WORDINGS:
            raise ValueError(f"wording must be one of {', '.join(WORDINGS)}, not {wording!r}")
        if models is None:
            default_models, default_aliases = default_catalogue()
            models, aliases = default_models, {**default_aliases, **(aliases or {})}
        self._initial_models = [dict(m) for m in models]
        self._initial_aliases = dict(aliases or {})
        self._initial_stream_delay = stream_delay
        self._initial_wording = wording
        reply_fn = _constant_reply(reply) if isinstance(reply, str) else reply or _default_reply
        self._state = FakeState(
            catalogue=Catalogue(self._initial_models, self._initial_aliases),
            faults=FaultQueue(),
            api_key=api_key,
            reply=reply_fn,
            stream_delay=stream_delay,
            wording=wording,
            keys={k: None if v is None else frozenset(v) for k, v in (keys or {}).items()},
            models_forbidden=frozenset(models_forbidden),
        )
        self._api_key = api_key
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._port: int | None = None
        self._requested_port = port
        self._startup_error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeAnthropic:
        """Bind a free loopback port and serve in a background thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("FakeAnthropic is already running")
        if importlib.util.find_spec("uvicorn") is None:
            raise RuntimeError("FakeAnthropic needs uvicorn: pip install 'caproute[proxy]'")
        _install_log_filter()
        # proto must say TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets
        # whose proto is IPPROTO_TCP, and without it every keep-alive answer waits ~40 ms
        # for a delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            if self._requested_port:  # a fixed port: rebind at once after a restart
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self._requested_port))
            self._port = sock.getsockname()[1]
        except OSError:
            sock.close()
            raise
        self._state.closing.clear()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(sock, ready), name=f"FakeAnthropic:{self._port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S) or self._startup_error is not None:
            self.close()
            raise RuntimeError("FakeAnthropic failed to start") from self._startup_error
        return self

    def close(self) -> None:
        """Stop serving: in-flight delays end at once, connections are closed. Idempotent.

        The registry cache file caproute keeps for this fake's URL (written when a
        routed client fetched the fake's lineup) goes too: the port is gone, and a later
        fake on the same port may serve another lineup.
        """
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        url = self.url
        self._state.closing.set()
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop finished in between
                loop.call_soon_threadsafe(stop.set)
        thread.join(_START_TIMEOUT_S)
        self._thread = self._loop = self._stop = None
        _forget_cached_lineup(url)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> FakeAnthropic:
        # Starting takes a few milliseconds; blocking the caller's loop that long is fine.
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(sock, ready))
        except BaseException as exc:  # reported to start(); the thread must not die loudly
            self._startup_error = exc
            ready.set()
        finally:
            sock.close()

    async def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        import uvicorn

        config = uvicorn.Config(
            FakeApp(self._state),
            log_level="warning",
            log_config=None,  # don't reconfigure the host application's logging
            access_log=False,
            lifespan="off",
            http="h11",
            loop="asyncio",
            ws="none",
        )
        server = uvicorn.Server(config)
        config.load()
        server.lifespan = config.lifespan_class(config)
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await server.startup(sockets=[sock])
        ready.set()
        await self._stop.wait()
        await self._shutdown(server)

    async def _shutdown(self, server: uvicorn.Server) -> None:
        # uvicorn.Server.shutdown, minus its fixed 100 ms sleep and 100 ms polling.
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STOP_GRACE_S
        state = server.server_state
        while (state.connections or state.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for task in list(state.tasks):
            task.cancel()
        for listener in server.servers:
            await listener.wait_closed()

    # -- addresses and clients ---------------------------------------------------------------

    @property
    def port(self) -> int:
        """The loopback port (only while running)."""
        if self._port is None or self._thread is None:
            raise RuntimeError("FakeAnthropic is not running; use `with FakeAnthropic() as fake`")
        return self._port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:53127`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str:
        """The key clients should send (``"test-key"`` when the fake requires none)."""
        return self._api_key or "test-key"

    def headers(self, version: str = "2023-06-01") -> dict[str, str]:
        """Headers for hand-made requests: the key and an ``anthropic-version``."""
        return {"x-api-key": self.api_key, "anthropic-version": version}

    def client(self, **kwargs: Any) -> anthropic.Anthropic:
        """An `anthropic.Anthropic` pointed at the fake (``max_retries=0`` unless given)."""
        import anthropic

        kwargs.setdefault("max_retries", 0)
        return anthropic.Anthropic(base_url=self.url, api_key=self.api_key, **kwargs)

    def async_client(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        """An `anthropic.AsyncAnthropic` pointed at the fake (``max_retries=0`` unless given)."""
        import anthropic

        kwargs.setdefault("max_retries", 0)
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=self.api_key, **kwargs)

    # -- catalogue ---------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """A copy of the current catalogue, retired models included."""
        return self._state.catalogue.models()

    def set_models(
        self, models: Iterable[Mapping[str, Any]], *, aliases: Mapping[str, str] | None = None
    ) -> None:
        """Replace the lineup (and, if given, the alias table) while running."""
        self._state.catalogue.set_models(models)
        if aliases is not None:
            self._state.catalogue.set_aliases(aliases)

    def update_model(
        self,
        model: str,
        *,
        unsupported: Iterable[str] = (),
        supported: Iterable[str] = (),
        capabilities: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Change one model while running.

        Args:
            model: Its id or alias.
            unsupported: Dotted capability paths to turn off (``"image_input"``,
                ``"effort.max"``, ``"thinking.types.enabled"``).
            supported: Dotted capability paths to turn on.
            capabilities: A patch deep-merged into the capabilities tree.
            **fields: Top-level fields to set (``max_tokens=4096``, ``lifecycle=...``).

        Raises:
            KeyError: The catalogue has no such model.
        """
        self._state.catalogue.update_model(
            model, unsupported=unsupported, supported=supported, capabilities=capabilities, **fields
        )

    def retire(self, model: str) -> None:
        """Mark a model retired: no longer listed by default, 404 on inference."""
        self.update_model(model, lifecycle="retired")

    def overload(self, model: str, status: int = 529) -> None:
        """Answer every ``/v1/messages`` call for `model` with `status` until cleared."""
        found = self._state.catalogue.get(model)
        model_id = found["id"] if found is not None else model
        with self._state.lock:
            self._state.overloads[model_id] = status

    def clear_overload(self, model: str | None = None) -> None:
        """End `overload` for one model, or for all."""
        found = self._state.catalogue.get(model) if model is not None else None
        with self._state.lock:
            if model is None:
                self._state.overloads.clear()
            else:
                self._state.overloads.pop(found["id"] if found else model, None)

    # -- faults, settings, introspection -----------------------------------------------------

    @property
    def refusals(self) -> Refusals:
        """Standing API-side refusals: ``fake.refusals.disable_url_fetch(key)``,
        ``fake.refusals.refuse_parameter(model, "temperature")`` (cleared by `reset`)."""
        return self._state.refusals

    @property
    def faults(self) -> FaultQueue:
        """Queue faults: ``fake.faults.add("/v1/models", status=429, times=2)``."""
        return self._state.faults

    @property
    def stream_delay(self) -> float:
        """Seconds between SSE events of streamed answers."""
        return self._state.stream_delay

    @stream_delay.setter
    def stream_delay(self, seconds: float) -> None:
        self._state.stream_delay = seconds

    @property
    def batches(self) -> FakeBatches:
        """The batch lifecycle: ``fake.batches.configure(processing_s=2, errored=0.1)``."""
        return self._state.batches

    @property
    def wording(self) -> Wording:
        """How refusals are worded (``api``, ``terse`` or ``verbose``); settable."""
        return self._state.wording

    @wording.setter
    def wording(self, wording: Wording) -> None:
        if wording not in WORDINGS:
            raise ValueError(f"wording must be one of {', '.join(WORDINGS)}, not {wording!r}")
        self._state.wording = wording

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    def count(self, path_prefix: str = "/", *, method: str | None = None) -> int:
        """How many requests had a path starting with `path_prefix` (and this method)."""
        return sum(
            1
            for r in self.requests
            if r.path.startswith(path_prefix) and (method is None or r.method == method.upper())
        )

    def reset(self) -> None:
        """Back to the state after construction: catalogue, faults, overloads, batches, log."""
        self._state.catalogue.set_models(self._initial_models)
        self._state.catalogue.set_aliases(self._initial_aliases)
        self._state.faults.clear()
        self._state.refusals.clear()
        self._state.stream_delay = self._initial_stream_delay
        self._state.wording = self._initial_wording
        with self._state.lock:
            self._state.requests.clear()
            self._state.overloads.clear()
        self._state.batches.reset()

    def __repr__(self) -> str:
        where = self.url if self._thread is not None else "not running"
        return f"<FakeAnthropic {where} models={len(self.models())}>"
