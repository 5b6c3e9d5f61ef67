"""`AsyncRegistryFetcher`: the registry fetcher for async code (asyncio or trio).

The same behaviour as `caproute._registry.fetch.RegistryFetcher` over the same shared
state (`caproute._registry.fetch_state`), awaitable; the shared fetch runs as a task
of its own (`TrioFlight` under trio).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Unpack

import httpx2
import tenacity

from .._core.learned_facts import LearnedFact
from .._core.model_info import ModelInfo
from .._core.registry import Registry
from .._exceptions import RegistryHTTPError, RegistryUnavailableError
from .._types import AsyncSleep, JSONObject
from .fetch_state import Credentials, FetcherBase, FetcherOptions, Get
from .models_api import model_info, read_answer

__all__ = ["AsyncRegistryFetcher"]

logger = logging.getLogger("caproute.registry")


# -- async driver ---------------------------------------------------------------------------


class AsyncRegistryFetcher(FetcherBase):
    """The model registry from the Models API, cached, for async code (asyncio or trio).

    The same behaviour as `RegistryFetcher`, awaitable: `await current()` never waits
    for the network, `await refresh()` does (one fetch for all concurrent callers).
    Use it from one event loop. It takes the same keyword options as
    `RegistryFetcher`; `sleep` is awaited, `client` and `transport` are async ones.

    The shared fetch runs as a task of its own, so a caller giving up never cancels it:
    an asyncio task under asyncio, a trio system task under trio (trio has no
    loop-wide task otherwise; `wrap(AsyncAnthropic())` must work under both, as the
    SDK does).
    """

    def __init__(
        self,
        *,
        sleep: AsyncSleep | None = None,
        client: httpx2.AsyncClient | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        **options: Unpack[FetcherOptions],
    ) -> None:
        super().__init__(**options)
        self._sleep: AsyncSleep = sleep or _any_sleep
        self._client = client
        self._transport = transport
        self._flight: asyncio.Task[Registry] | TrioFlight | None = None

    async def current(self) -> Registry:
        """The best data held now; starts a background task when it is stale."""
        registry = self._best()
        if self._flight is None and self._wants_background_refresh():
            self._start_flight()
        return registry

    async def refresh(self) -> Registry:
        """Fetch the registry now (joining a fetch already under way).

        Same results and errors as `RegistryFetcher.refresh`. Cancelling one waiting
        caller does not cancel the shared fetch.
        """
        self._require_credentials()
        flight = self._flight or self._start_flight()
        try:
            if isinstance(flight, TrioFlight):
                return await flight.wait()
            return await asyncio.shield(flight)
        except Exception as exc:
            return self._after_failure(exc)

    async def wait_live(self, timeout: float) -> Registry | None:
        """`RegistryFetcher.wait_live`, awaited (the shared fetch is never cancelled)."""
        if self._has_live:
            return self._best()
        if not self.may_go_live:
            return None
        flight = self._flight or self._start_flight()
        try:
            if isinstance(flight, TrioFlight):
                return await flight.wait(timeout)
            return await asyncio.wait_for(asyncio.shield(flight), timeout)
        except Exception:  # a timeout or a failed fetch: route on what is held
            return None

    def refresh_in_background(self) -> bool:
        """`RegistryFetcher.refresh_in_background`, as a task on the running loop."""
        if not self.background or self._flight is not None or not self._may_start_soon():
            return False
        self._start_flight()
        return True

    def save_learned(self, facts: Sequence[LearnedFact]) -> None:
        """Keep `facts` with the data held and write them to the cache file (blocking
        file IO: async callers run it in a worker thread)."""
        self._persist(self._adopt_learned(facts))

    async def retrieve(self, model: str, *, max_wait: float | None = None) -> ModelInfo | None:
        """The model for an id or alias, asking ``GET /v1/models/{model}`` if unknown
        (`max_wait`: as for `RegistryFetcher.retrieve`)."""
        info = self._best().get(model)
        if info is not None or model in self._not_found:
            return info
        self._require_credentials()
        try:
            async with self._session() as client:
                url, credentials = self._retrieve_url(model), self._credentials.for_fetch()
                get = self._get(url, None, credentials)
                body = await self._send(client, get, self._deadline(max_wait))
        except RegistryHTTPError as exc:
            if exc.status_code != 404:
                raise
            self._not_found[model] = True
            return None
        return self._learn(model, model_info(body))

    async def aclose(self) -> None:
        """Stop background refreshes and cancel one under way (connections are per refresh)."""
        self.background = False
        self._closed = True
        flight = self._flight
        if isinstance(flight, TrioFlight):
            await flight.cancel()
        elif flight is not None:
            flight.cancel()
            await asyncio.gather(flight, return_exceptions=True)

    async def __aenter__(self) -> AsyncRegistryFetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- internals ----------------------------------------------------------------------------

    def _start_flight(self, *, counted: bool = True) -> asyncio.Task[Registry] | TrioFlight:
        """Start the shared fetch, with the credentials of now (`counted`: against the
        background refresh rate limit)."""
        if counted:
            self._last_started = self._clock()
        fly = functools.partial(self._fly, self._credentials.for_fetch())
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: trio (anyio's other backend)
            self._flight = TrioFlight(fly)
            return self._flight
        flight = loop.create_task(fly(), name="caproute-registry", context=self._task_context())
        # Mark a failure as seen even if no one awaits it (a background refresh).
        flight.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._flight = flight
        return flight

    def _task_context(self) -> contextvars.Context | None:
        """The context the shared fetch runs in (`None`: a copy of the current one)."""
        return None

    async def _fly(self, credentials: Credentials) -> Registry:
        try:
            registry = await self._fetch_all(credentials)
        except Exception as exc:
            self._record_failure(exc)
            raise
        finally:
            self._flight = None
        registry = self._accept_live(registry)
        if self._cache_file:
            import anyio.to_thread  # asyncio and trio alike; imported when first needed

            await anyio.to_thread.run_sync(self._persist, registry)
        return registry

    async def _fetch_all(self, credentials: Credentials) -> Registry:
        deadline, pages = self._deadline(), self._pages()
        get = functools.partial(self._get, self._list_url, credentials=credentials)
        async with self._session() as client:  # one connection for every page
            while pages.feed(await self._send(client, get(pages.query), deadline)):
                pass
        return pages.result()

    async def _send(self, client: httpx2.AsyncClient, get: Get, deadline: float) -> JSONObject:
        async def attempt() -> JSONObject:
            logger.debug("GET %s %s", get.url, get.query or "")
            response = await client.get(get.url, params=get.query, headers=get.headers)
            return read_answer(response, get.secrets)

        retrying = tenacity.AsyncRetrying(sleep=self._sleep, **self._retry_policy(deadline))
        with self._explained():
            body: JSONObject = await retrying(attempt)
        return body

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[httpx2.AsyncClient]:
        """The injected client, else a new one closed when the operation ends."""
        if self._client is not None:
            yield self._client
            return
        async with httpx2.AsyncClient(transport=self._transport, timeout=self._timeout) as client:
            yield client


async def _any_sleep(seconds: float) -> None:
    """`asyncio.sleep` or `trio.sleep`, whichever library is running (the retry back-off)."""
    import anyio

    await anyio.sleep(seconds)


class TrioFlight:
    """A shared fetch running as a trio system task: what an `asyncio.Task` is under asyncio.

    A system task outlives the callers that started or awaited it (as a shielded
    asyncio task does) and must not raise: the fetch's outcome is kept for `wait`.
    """

    def __init__(self, fly: Callable[[], Awaitable[Registry]]) -> None:
        import trio

        self._done = trio.Event()
        self._scope = trio.CancelScope()
        self._result: Registry | None = None
        self._error: Exception | None = None
        trio.lowlevel.spawn_system_task(self._run, fly, name="caproute-registry")

    async def _run(self, fly: Callable[[], Awaitable[Registry]]) -> None:
        try:
            with self._scope:  # `cancel()` ends the fetch here, quietly
                self._result = await fly()
        except Exception as exc:
            self._error = exc
        finally:
            self._done.set()

    async def wait(self, timeout: float | None = None) -> Registry:
        """The fetched registry; a waiter timing out or cancelled leaves the fetch running.

        Raises:
            TimeoutError: Not done within `timeout` seconds.
            Exception: What the fetch raised.
        """
        import trio

        with trio.move_on_after(float("inf") if timeout is None else timeout):
            await self._done.wait()
        if not self._done.is_set():
            raise TimeoutError("the registry fetch is still under way")
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise RegistryUnavailableError("the registry fetch was cancelled")
        return self._result

    async def cancel(self) -> None:
        """Cancel the fetch and wait until it has ended."""
        self._scope.cancel()
        await self._done.wait()
