"""What both registry fetchers share: credentials, settings, the cached registry and
its TTL, the failure back-off, the retry policy and one refresh's paging (no IO here
but the cache file, through `caproute._registry.snapshot`).

The drivers are `caproute._registry.fetch.RegistryFetcher` (threads) and
`caproute._registry.fetch_async.AsyncRegistryFetcher` (asyncio or trio).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypedDict
from urllib.parse import quote

import cachetools
import httpx2
import tenacity

from .._core.learned_facts import LearnedFact
from .._core.model_info import ModelInfo
from .._core.registry import Registry
from .._core.registry_source import RegistrySource
from .._exceptions import ConfigError, RegistryError, RegistryUnavailableError, SnapshotError
from .._types import Clock, JSONObject
from .models_api import (
    DEFAULT_API_VERSION,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RETRY_TIME,
    MAX_PAGES,
    PAGE_LIMIT,
    RetryableAnswer,
    describe_failure,
    is_retryable,
    list_params,
    next_cursor,
    retry_wait,
)
from .snapshot import (
    DEFAULT_BASE_URL,
    SnapshotLimits,
    initial_registry,
    save_snapshot,
    user_cache_path,
    with_tombstones_pruned,
)
from .snapshot import LIMITS_SETTING as SNAPSHOT_LIMITS_SETTING

__all__ = ["FetcherBase", "FetcherOptions", "Get", "Pages"]

logger = logging.getLogger("caproute.registry")

DEFAULT_TTL = 3600.0
NOT_FOUND_TTL = 60.0
"""How long a ``GET /v1/models/{id}`` 404 is believed, in seconds."""
FAILURE_BACKOFF = 60.0
"""After a failed refresh, no background refresh (and no cold-start wait) starts for this
long: one attempt per back-off window, shared by every caller."""
MIN_BACKGROUND_INTERVAL = 10.0
"""`refresh_in_background()` starts at most one refresh per this many seconds."""

_REGISTRY_KEY = "registry"


class Credentials:
    """The key or token; the only object that holds it. Its repr never shows it."""

    __slots__ = ("_api_key", "_auth_token")

    def __init__(self, api_key: str | None, auth_token: str | None) -> None:
        self._api_key = api_key or None
        self._auth_token = auth_token or None

    @property
    def present(self) -> bool:
        return self._api_key is not None or self._auth_token is not None

    @property
    def scheme(self) -> str:
        if self._api_key is not None:
            return "x-api-key"
        return "bearer" if self._auth_token is not None else "none"

    def headers(self) -> dict[str, str]:
        headers = {}
        if self._api_key is not None:
            headers["x-api-key"] = self._api_key
        if self._auth_token is not None:
            headers["authorization"] = f"Bearer {self._auth_token}"
        return headers

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self._api_key, self._auth_token) if s is not None)

    @property
    def cache_identity(self) -> str:
        """What the cache file name is keyed by (hashed there, never written): the
        credential requests send, "" when there is none."""
        return self._api_key or self._auth_token or ""

    def for_fetch(self) -> Credentials:
        """What a fetch or look-up starting now sends (kept until it ends): these."""
        return self

    def __repr__(self) -> str:
        return f"<credentials {self.scheme}>"


# -- shared state and configuration ------------------------------------------------------


class FetcherBase:
    """Configuration and cache state both fetchers share; no network IO here.

    Files are touched only through `caproute._registry.snapshot`: the start-up registry on
    first use and the user cache file after a successful fetch.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        auth_token: str | None = None,
        base_url: str | None = None,
        api_version: str = DEFAULT_API_VERSION,
        betas: Sequence[str] = (),
        workspace_id: str | None = None,
        lifecycle: Sequence[str] = (),
        page_size: int = PAGE_LIMIT,
        ttl: float = DEFAULT_TTL,
        not_found_ttl: float = NOT_FOUND_TTL,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_retry_time: float = DEFAULT_MAX_RETRY_TIME,
        timeout: float = 10.0,
        background: bool = True,
        snapshot: str | os.PathLike[str] | None = None,
        initial: Registry | None = None,
        cache_file: bool = True,
        cache_path: str | os.PathLike[str] | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not 1 <= page_size <= PAGE_LIMIT:
            raise ConfigError(f"page_size must be between 1 and {PAGE_LIMIT}, not {page_size}")
        env = os.environ
        self._credentials = Credentials(
            api_key if api_key is not None else env.get("ANTHROPIC_API_KEY"),
            auth_token if auth_token is not None else env.get("ANTHROPIC_AUTH_TOKEN"),
        )
        self.base_url = (base_url or env.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._headers = {"anthropic-version": api_version, "accept": "application/json"}
        if betas:
            self._headers["anthropic-beta"] = ",".join(betas)
        if workspace_id:
            self._headers["anthropic-workspace-id"] = workspace_id
        self._lifecycle = tuple(lifecycle)
        self._page_size = page_size
        self._max_attempts = max_attempts
        self._max_retry_time = max_retry_time
        self._timeout = httpx2.Timeout(timeout, connect=min(timeout, 5.0))
        self.background = background
        self._snapshot = snapshot
        self._cache_path = Path(cache_path) if cache_path is not None else None
        self._cache_file = cache_file
        self._limits = SnapshotLimits.from_env()
        self._clock = clock
        self._wall_clock = wall_clock
        self._jitter = jitter
        self.ttl = ttl
        # Fresh = fetched within `ttl`. The registry itself also lives in `_registry`,
        # which outlives the TTL: that is the stale copy served while revalidating.
        self._fresh: cachetools.TTLCache[str, Registry] = cachetools.TTLCache(1, ttl, timer=clock)
        self._not_found: cachetools.TTLCache[str, bool] = cachetools.TTLCache(
            1024, not_found_ttl, timer=clock
        )
        self._registry = initial
        self._has_live = False
        self._learned_aliases: dict[str, str] = {}
        self._learned_models: dict[str, ModelInfo] = {}
        self._last_error: Exception | None = None
        self._quiet_until = float("-inf")
        self._last_started = float("-inf")
        self._closed = False

    # -- public read-only state -------------------------------------------------------------

    @property
    def last_error(self) -> Exception | None:
        """Why the last refresh failed; None after a success (or before any attempt)."""
        return self._last_error

    @property
    def may_go_live(self) -> bool:
        """Whether a first live fetch can still be awaited: credentials are configured,
        no live data is held yet, no failure back-off is running, and the fetcher is
        not closed."""
        return (
            not self._closed
            and self._credentials.present
            and not self._has_live
            and self._clock() >= self._quiet_until
        )

    @property
    def is_fresh(self) -> bool:
        """True while live data younger than the TTL is held."""
        return _REGISTRY_KEY in self._fresh

    def age(self) -> float | None:
        """Seconds since the served data was fetched (None for data never fetched)."""
        return self._best().source.age(self._wall_clock())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, auth={self._credentials.scheme}, "
            f"ttl={self.ttl:g}, background={self.background})"
        )

    # -- helpers for the drivers ------------------------------------------------------------

    def _best(self) -> Registry:
        """The freshest data held, loading the start-up registry on first use."""
        if self._registry is None:
            self._registry = initial_registry(
                self._snapshot,
                cache_path=self._cache_path,
                use_cache=self._cache_file,
                base_url=self.base_url,
                credential=self._credentials.cache_identity,
            )
        return self._registry

    def _wants_background_refresh(self) -> bool:
        return (
            self.background
            and self._credentials.present
            and not self.is_fresh
            and self._clock() >= self._quiet_until
        )

    def _may_start_soon(self) -> bool:
        """Whether `refresh_in_background` may start a refresh now: credentials, no
        back-off, and no refresh started in the last `MIN_BACKGROUND_INTERVAL` seconds
        (the one rate limit of background refreshes)."""
        now = self._clock()
        return (
            self._credentials.present
            and now >= self._quiet_until
            and now - self._last_started >= MIN_BACKGROUND_INTERVAL
        )

    def _require_credentials(self) -> None:
        if not self._credentials.present:
            raise ConfigError(
                "no API key: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN), or pass api_key="
            )

    def _get(self, url: str, params: list[tuple[str, str]] | None, credentials: Credentials) -> Get:
        """One ``GET`` as every attempt sends it."""
        query = httpx2.QueryParams(tuple(params)) if params else None
        headers = {**self._headers, **credentials.headers()}
        return Get(url, query, headers, credentials.secrets())

    def _source(self) -> RegistrySource:
        return RegistrySource("live", fetched_at=self._wall_clock(), location=self.base_url)

    def _deadline(self, max_wait: float | None = None) -> float:
        """When retrying must stop for an operation starting now (`clock` seconds)."""
        bound = self._max_retry_time if max_wait is None else min(max_wait, self._max_retry_time)
        return self._clock() + bound

    def _retry_policy(self, deadline: float) -> dict[str, Any]:
        """tenacity arguments for the requests of one refresh or retrieve."""

        def stop(state: tenacity.RetryCallState) -> bool:
            # The wait is computed before stop runs, so a retry that would overrun the
            # bound (e.g. a long retry-after) is not started at all.
            return (
                state.attempt_number >= self._max_attempts
                or self._clock() + state.upcoming_sleep > deadline
            )

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            headers = exc.headers if isinstance(exc, RetryableAnswer) else None
            return retry_wait(
                state.attempt_number - 1, headers, now=self._wall_clock(), jitter=self._jitter()
            )

        def log_retry(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.info(
                "Models API attempt %d failed (%s); retrying in %.2fs",
                state.attempt_number,
                describe_failure(exc),
                state.upcoming_sleep,
            )

        return {
            "stop": stop,
            "wait": wait,
            "retry": tenacity.retry_if_exception(is_retryable),
            "before_sleep": log_retry,
            "reraise": True,
        }

    @contextlib.contextmanager
    def _explained(self) -> Iterator[None]:
        """Around the retried requests of one operation: what retrying gave up on (a
        failing answer, a connect/read failure) becomes the error it means."""
        try:
            yield
        except RetryableAnswer as answer:
            raise RegistryUnavailableError(
                f"the Models API at {self.base_url} kept failing: {answer.error}"
            ) from answer.error
        except httpx2.TransportError as exc:
            raise RegistryUnavailableError(
                f"cannot reach the Models API at {self.base_url}: {describe_failure(exc)}"
            ) from exc

    def _accept_live(self, registry: Registry) -> Registry:
        """Adopt a fetched registry, keeping what was known before.

        Models the list leaves out (its default filter hides retired ones; a key or a
        gateway may not list every model) stay known and routable, unlisted (only the
        API's own 404 retires one), an empty list takes nothing away, and models and
        aliases learned by `retrieve` and learned facts carry over
        (`Registry.updated_by`).
        """
        for info in self._learned_models.values():
            if info.id not in registry:
                registry = registry.with_model(info)
        registry = registry.with_aliases(self._learned_aliases)
        dropped = (
            f"not listed by the Models API at {self.base_url} any more "
            "(retired, or not available to this key)"
        )
        registry = self._best().updated_by(registry, dropped=dropped)
        registry = with_tombstones_pruned(registry, self._limits)
        self._registry = registry
        self._fresh[_REGISTRY_KEY] = registry
        self._has_live = True
        self._last_error = None
        self._quiet_until = float("-inf")
        return registry

    def _record_failure(self, exc: Exception) -> None:
        self._last_error = exc
        self._back_off()
        logger.warning("registry refresh failed: %s", exc)

    def _back_off(self, seconds: float = FAILURE_BACKOFF) -> None:
        """After a failed fetch: none starts in the background, and no cold start waits
        for one, for `seconds` (one attempt per back-off window, for every caller)."""
        self._quiet_until = self._clock() + seconds

    def _after_failure(self, exc: Exception) -> Registry:
        """What `refresh()` does with a failure: serve earlier live data, or raise."""
        if self._has_live and isinstance(exc, RegistryError):
            return self._best()
        raise exc

    def _learn(self, asked: str, info: ModelInfo) -> ModelInfo:
        self._learned_models[info.id] = info
        if asked != info.id:
            self._learned_aliases[asked] = info.id
        registry = self._best()
        if info.id not in registry:
            registry = registry.with_model(info)
        self._registry = registry.with_aliases(self._learned_aliases)
        return info

    def _adopt_learned(self, facts: Sequence[LearnedFact]) -> Registry:
        """Lay `facts` over the data held (what `save_learned` persists)."""
        self._registry = self._best().with_learned(facts)
        return self._registry

    @property
    def cache_file(self) -> Path:
        """The user cache file this fetcher reads at start and writes after a fetch
        (``cache_path=``, else the one of its base URL and credential; where the key
        that names it can't be made, a name no file has, so nothing is read).
        """
        if self._cache_path is not None:
            return self._cache_path
        identity = self._credentials.cache_identity
        try:
            return user_cache_path(self.base_url, identity)
        except SnapshotError:  # a read-only home: writing will fail (and say so) anyway
            return user_cache_path(self.base_url, identity, create=False)

    def _persist(self, registry: Registry) -> None:
        if not self._cache_file:
            return
        try:
            save_snapshot(registry, self.cache_file)
        except SnapshotError as exc:
            # A read-only home must not turn a good fetch into a failure.
            logger.warning("could not write the registry cache file: %s", exc)

    def _pages(self) -> Pages:
        """One refresh's pagination, for a driver to run (`Pages`)."""
        return Pages(self._paging())

    def _paging(self) -> Generator[list[tuple[str, str]], JSONObject, Registry]:
        """Yields the query of each page, receives the page's JSON and returns the
        registry once a page says ``has_more: false``."""
        started = self._clock()
        # Stamped when the fetch starts: the data is as old as the request that read it
        # (a fact learned while the fetch was under way must not look older than it).
        source = self._source()
        pages: list[JSONObject] = []
        cursor: str | None = None
        listed = 0
        while len(pages) < MAX_PAGES:
            page = yield list_params(
                after_id=cursor, limit=self._page_size, lifecycle=self._lifecycle
            )
            pages.append(page)
            data = page.get("data")
            listed += len(data) if isinstance(data, list) else 0
            if listed > self._limits.max_models:
                # The held data stays in force, as after any failed refresh.
                raise RegistryError(
                    f"the Models API at {self.base_url} listed over "
                    f"{self._limits.max_models:,} models (the limit; set "
                    f"{SNAPSHOT_LIMITS_SETTING}MAX_MODELS to change it)"
                )
            cursor = next_cursor(page, page_number=len(pages), previous=cursor)
            if cursor is None:
                break
        else:
            raise RegistryError(f"the Models API kept paging past {MAX_PAGES} pages")
        registry = Registry.from_pages(pages, source=source)
        logger.info(
            "fetched %d models in %d page(s) from %s in %.3fs",
            len(registry),
            len(pages),
            self.base_url,
            self._clock() - started,
        )
        return registry

    @property
    def _list_url(self) -> str:
        return f"{self.base_url}/v1/models"

    def _retrieve_url(self, name: str) -> str:
        return f"{self.base_url}/v1/models/{quote(name, safe='')}"


class FetcherOptions(TypedDict, total=False):
    """Keyword options both fetchers accept (documented on `RegistryFetcher`)."""

    api_key: str | None
    auth_token: str | None
    base_url: str | None
    api_version: str
    betas: Sequence[str]
    workspace_id: str | None
    lifecycle: Sequence[str]
    page_size: int
    ttl: float
    not_found_ttl: float
    max_attempts: int
    max_retry_time: float
    timeout: float
    background: bool
    snapshot: str | os.PathLike[str] | None
    initial: Registry | None
    cache_file: bool
    cache_path: str | os.PathLike[str] | None
    clock: Clock
    wall_clock: Clock
    jitter: Callable[[], float]


class Get(NamedTuple):
    """One Models API ``GET``: where, with what, and what to mask in its answers."""

    url: str
    query: httpx2.QueryParams | None
    headers: dict[str, str]
    secrets: tuple[str, ...]

    def __repr__(self) -> str:  # the headers hold the credential
        return f"Get({self.url!r}, {self.query!r})"


class Pages:
    """One refresh's paging as a driver runs it: send `query`, `feed` the page's JSON,
    again while `feed` says another page follows; then `result()`."""

    __slots__ = ("_flow", "_registry", "query")

    def __init__(self, flow: Generator[list[tuple[str, str]], JSONObject, Registry]) -> None:
        self._flow = flow
        self.query = next(flow)
        self._registry: Registry | None = None

    def feed(self, page: JSONObject) -> bool:
        """Take the page just read; True when another page must be read."""
        try:
            self.query = self._flow.send(page)
        except StopIteration as done:
            self._registry = done.value
            return False
        return True

    def result(self) -> Registry:
        """The registry the pages make (once `feed` said False)."""
        assert self._registry is not None, "paging is not finished"
        return self._registry
