"""Live registry fetchers: `RegistryFetcher` (threads) and `AsyncRegistryFetcher` (asyncio).

Both read ``GET /v1/models`` (every page), keep the result in a TTL cache and hand
it out as an immutable `Registry`. They are thin drivers over one shared core:

* **Pure decisions** (`caproute._registry.models_api`, no IO): which query comes next,
  whether an answer is retried and how long to wait, what error an answer means.
* **Shared state** (`caproute._registry.fetch_state.FetcherBase`): credentials, the
  last good registry, the `cachetools.TTLCache` that says whether it is still fresh,
  aliases learned from ``GET /v1/models/{id}``, the last refresh error, the failure
  back-off, and one refresh's paging.
* **Drivers**: the sync one (here) sends with `httpx2.Client` inside
  `tenacity.Retrying`, guards its state with a `threading.Lock` and refreshes in a
  background thread; the async one (`caproute._registry.fetch_async`) uses
  `httpx2.AsyncClient`, `tenacity.AsyncRetrying` and an asyncio task.

Serving rules (stale-while-revalidate): `current()` never waits for the network once
any data exists, and data always exists (start-up snapshot, user cache file or the
embedded lineup, see `caproute._registry.snapshot`). When the data is not fresh it starts one
background refresh and returns what it has. `refresh()` fetches now; concurrent
callers share a single fetch (single-flight), success or failure alike.

The API key lives in one private object whose repr is masked; it is sent as a header
and nowhere else: not in reprs, logs, snapshots or error messages (answers from the
API are scrubbed of it too, in case a proxy echoes it back).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Unpack

import httpx2
import tenacity

from .._core.learned_facts import LearnedFact
from .._core.model_info import ModelInfo
from .._core.registry import Registry
from .._exceptions import RegistryHTTPError
from .._types import JSONObject, Sleep
from .fetch_async import AsyncRegistryFetcher
from .fetch_state import FAILURE_BACKOFF, Credentials, FetcherBase, FetcherOptions, Get
from .models_api import (
    backoff,
    error_from_answer,
    list_params,
    model_info,
    next_cursor,
    read_answer,
    retry_after,
    retry_wait,
    should_retry,
)

__all__ = [
    "FAILURE_BACKOFF",
    "AsyncRegistryFetcher",
    "RegistryFetcher",
    "backoff",
    "error_from_answer",
    "list_params",
    "next_cursor",
    "retry_after",
    "retry_wait",
    "should_retry",
]

logger = logging.getLogger("caproute.registry")


# -- sync driver ----------------------------------------------------------------------------


class RegistryFetcher(FetcherBase):
    """The model registry from the Models API, cached, for threaded code.

    `current()` never waits for the network; `refresh()` does, and concurrent callers
    share one fetch. A failed refresh keeps the last good data in service.

    Args:
        api_key: Sent as ``x-api-key``; default ``ANTHROPIC_API_KEY``.
        auth_token: Sent as ``Authorization: Bearer``; default ``ANTHROPIC_AUTH_TOKEN``.
        base_url: Default ``ANTHROPIC_BASE_URL``, else ``https://api.anthropic.com``.
        api_version: The ``anthropic-version`` header (default ``2023-06-01``).
        betas: Values for the ``anthropic-beta`` header.
        workspace_id: The ``anthropic-workspace-id`` header.
        lifecycle: ``lifecycle[]`` filter (e.g. ``("active", "deprecated", "retired")``);
            empty means the API default.
        page_size: Models per page, 1 to 1000 (default 1000: fewest requests).
        ttl: Seconds a live registry counts as fresh (default 3600).
        not_found_ttl: Seconds a ``GET /v1/models/{id}`` 404 is remembered (default 60).
        max_attempts: Attempts per HTTP request, first one included (default 5).
        max_retry_time: Seconds one refresh may spend retrying (default 30).
        timeout: Seconds per HTTP request (connect: at most 5).
        background: Let `current()` start a refresh when the data is stale.
        snapshot: An explicit snapshot file to start from (see `load_snapshot`).
        initial: A registry to start from instead of the start-up order.
        cache_file: Read the user cache file at start and write it after each fetch.
        cache_path: Where that file is (default `user_cache_path()`).
        clock: Monotonic seconds for the TTL and the retry deadline (tests: fake).
        wall_clock: Unix time for fetch stamps and HTTP-date ``retry-after``.
        jitter: Returns a number in [0, 1) that shortens each backoff by up to 25 %.
        sleep: Blocks (sync) or awaits (async) between attempts; tests pass a fake.
        client: An httpx2 client to use for every request (the caller closes it);
            by default each refresh opens its own and closes it when done.
        transport: An httpx2 transport for the clients the fetcher makes (tests).
    """

    def __init__(
        self,
        *,
        sleep: Sleep = time.sleep,
        client: httpx2.Client | None = None,
        transport: httpx2.BaseTransport | None = None,
        **options: Unpack[FetcherOptions],
    ) -> None:
        super().__init__(**options)
        self._sleep = sleep
        self._client = client
        self._transport = transport
        self._lock = threading.Lock()
        self._flight: Future[Registry] | None = None

    def current(self) -> Registry:
        """The best data held now, never waiting for the network.

        When the data is stale (and `background` is on) a refresh starts in a
        background thread; this call still returns at once with what it has.
        """
        with self._lock:
            registry = self._best()
            if self._flight is None and self._wants_background_refresh():
                flight: Future[Registry] = Future()
                self._flight = flight
                self._start_thread(flight)
            return registry

    def refresh(self) -> Registry:
        """Fetch the registry now (joining a fetch already under way).

        Returns:
            The live registry. If the fetch fails but live data was fetched earlier,
            that earlier data is returned and the failure is kept in `last_error`.

        Raises:
            ConfigError: No API key or token is configured.
            RegistryHTTPError: The API refused (400, 401, 403, 404) and no live data exists.
            RegistryUnavailableError: Unreachable or still failing after retries,
                and no live data exists.
        """
        self._require_credentials()
        with self._lock:
            flight = self._flight
            leader = flight is None
            if flight is None:
                self._flight = flight = Future()
        if leader:
            self._fly(flight)
        try:
            return flight.result()
        except Exception as exc:
            with self._lock:
                return self._after_failure(exc)

    def wait_live(self, timeout: float) -> Registry | None:
        """The live registry, waiting at most `timeout` seconds for a fetch to land.

        For the cold start: returns at once with live data already held, or with
        `None` when no live fetch can come (no credentials, or a failure back-off is
        running); otherwise joins the fetch in flight (starting one if none is) for at
        most `timeout` seconds. Never raises.
        """
        with self._lock:
            if self._has_live:
                return self._best()
            if not self.may_go_live:
                return None
            flight = self._flight
            if flight is None:
                flight = self._flight = Future()
                self._start_thread(flight)
        try:
            return flight.result(timeout=timeout)
        except Exception:  # a timeout or a failed fetch: route on what is held
            return None

    def refresh_in_background(self) -> bool:
        """Start a refresh in a background thread unless background refreshes are off,
        one is running, a failure back-off is on, or one started less than 10 s ago;
        True if one started."""
        with self._lock:
            if not self.background or self._flight is not None or not self._may_start_soon():
                return False
            flight: Future[Registry] = Future()
            self._flight = flight
            self._start_thread(flight)
            return True

    def save_learned(self, facts: Sequence[LearnedFact]) -> None:
        """Keep `facts` with the data held and write them to the cache file."""
        with self._lock:
            registry = self._adopt_learned(facts)
        self._persist(registry)

    def retrieve(self, model: str, *, max_wait: float | None = None) -> ModelInfo | None:
        """The model for an id or alias, asking ``GET /v1/models/{model}`` if unknown.

        What the API answers is remembered (an alias maps to its id in `current()`);
        a 404 is remembered for `not_found_ttl` seconds and gives None. `max_wait`
        bounds the retries (seconds; default: the fetcher's own bound), for a caller
        that holds a request meanwhile.
        """
        with self._lock:
            info = self._best().get(model)
            if info is not None or model in self._not_found:
                return info
        self._require_credentials()
        try:
            with self._session() as client:
                url = self._retrieve_url(model)
                credentials = self._credentials.for_fetch()
                get = self._get(url, None, credentials)
                body = self._send(client, get, self._deadline(max_wait))
        except RegistryHTTPError as exc:
            if exc.status_code != 404:
                raise
            with self._lock:
                self._not_found[model] = True
            return None
        info = model_info(body)
        with self._lock:
            return self._learn(model, info)

    def close(self) -> None:
        """Stop starting background refreshes.

        There is no connection to release: each refresh (or retrieve) opens its own
        client and closes it when done, so a fetcher nobody closes leaks nothing.
        """
        with self._lock:
            self.background = False
            self._closed = True

    def __enter__(self) -> RegistryFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _start_thread(self, flight: Future[Registry]) -> None:
        """Run `_fly` in a daemon thread (call with the lock held)."""
        self._last_started = self._clock()
        threading.Thread(
            target=self._fly, args=(flight,), name="caproute-registry", daemon=True
        ).start()

    def _fly(self, flight: Future[Registry]) -> None:
        """Run one fetch and publish its outcome to everyone waiting on `flight`."""
        try:
            registry = self._fetch_all(self._credentials.for_fetch())
        except BaseException as exc:
            with self._lock:
                self._flight = None
                if isinstance(exc, Exception):
                    self._record_failure(exc)
            # Waiters must always wake up, even if this thread is being interrupted.
            flight.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        with self._lock:
            self._flight = None
            registry = self._accept_live(registry)
        flight.set_result(registry)
        self._persist(registry)

    def _fetch_all(self, credentials: Credentials) -> Registry:
        deadline, pages = self._deadline(), self._pages()
        get = functools.partial(self._get, self._list_url, credentials=credentials)
        with self._session() as client:  # one connection for every page
            while pages.feed(self._send(client, get(pages.query), deadline)):
                pass
        return pages.result()

    def _send(self, client: httpx2.Client, get: Get, deadline: float) -> JSONObject:
        def attempt() -> JSONObject:
            logger.debug("GET %s %s", get.url, get.query or "")
            response = client.get(get.url, params=get.query, headers=get.headers)
            return read_answer(response, get.secrets)

        with self._explained():
            body = tenacity.Retrying(sleep=self._sleep, **self._retry_policy(deadline))(attempt)
        return body

    @contextlib.contextmanager
    def _session(self) -> Iterator[httpx2.Client]:
        """The injected client, else a new one closed when the operation ends."""
        if self._client is not None:
            yield self._client
            return
        with httpx2.Client(transport=self._transport, timeout=self._timeout) as client:
            yield client
