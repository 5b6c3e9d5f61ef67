"""Live registry fetchers: `RegistryFetcher` (threads) and `AsyncRegistryFetcher` (asyncio).

Both read ``GET /v1/models`` (every page), keep the result in a TTL cache and hand
it out as an immutable `Registry`. They are thin drivers over one shared core:

* **Pure decisions** (module-level functions, no IO): which query comes next
  (`list_params`, `next_cursor`), whether an answer is retried (`should_retry`) and
  how long to wait (`retry_after`, `backoff`, `retry_wait`), what error an answer
  means (`error_from_answer`). They mirror the anthropic SDK's ``_should_retry`` and
  ``_calculate_retry_timeout`` so the registry behaves like the client users call.
* **Shared state** (`_FetcherBase`): credentials, the last good registry, the
  `cachetools.TTLCache` that says whether it is still fresh, aliases learned from
  ``GET /v1/models/{id}``, the last refresh error.
* **Drivers**: the sync one sends with `httpx2.Client` inside `tenacity.Retrying`,
  guards its state with a `threading.Lock` and refreshes in a background thread; the
  async one uses `httpx2.AsyncClient`, `tenacity.AsyncRetrying` and an asyncio task.

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

import asyncio
import contextlib
import email.utils
import json
import logging
import os
import random
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

import cachetools
import httpx2
import tenacity
from pydantic import ValidationError

from .._core.learned_facts import LearnedFact
from .._core.model_info import ModelInfo
from .._core.registry import Registry
from .._core.registry_source import RegistrySource
from .._core.secrets import redact
from .._exceptions import (
    ConfigError,
    RegistryError,
    RegistryHTTPError,
    RegistryUnavailableError,
    SnapshotError,
)
from .._types import AsyncSleep, Clock, JSONObject, Sleep
from .snapshot import (
    DEFAULT_BASE_URL,
    SnapshotLimits,
    initial_registry,
    save_snapshot,
    user_cache_path,
    with_tombstones_pruned,
)
from .snapshot import LIMITS_SETTING as SNAPSHOT_LIMITS_SETTING

__all__ = [
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

DEFAULT_API_VERSION = "2023-06-01"
DEFAULT_TTL = 3600.0
NOT_FOUND_TTL = 60.0
"""How long a ``GET /v1/models/{id}`` 404 is believed, in seconds."""
PAGE_LIMIT = 1000
"""The largest page the Models API serves (its default is 20)."""
MAX_PAGES = 1000
"""A guard against a server that keeps saying ``has_more`` forever."""

# Retry policy, as the SDK's `_base_client`: 0.5 s doubling up to 8 s, minus up to 25 %
# jitter; a server's retry-after is honoured only within (0, 60] seconds.
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MAX_RETRY_TIME = 30.0
"""Bound on one refresh, in seconds: no retry is started that would end after it."""
FAILURE_BACKOFF = 60.0
"""After a failed refresh, no background refresh (and no cold-start wait) starts for this
long: one attempt per back-off window, shared by every caller."""
MIN_BACKGROUND_INTERVAL = 10.0
"""`refresh_in_background()` starts at most one refresh per this many seconds."""

_REGISTRY_KEY = "registry"
_RETRYABLE_STATUSES = frozenset({408, 409, 429})


# -- pure decisions -------------------------------------------------------------------------


def should_retry(status_code: int, headers: Mapping[str, str]) -> bool:
    """Whether an error answer is worth retrying.

    The server's ``x-should-retry`` hint wins over the status code, as in the SDK.
    Otherwise 408, 409, 429 and every 5xx (529 overloaded included) are retried.
    """
    hint = headers.get("x-should-retry", "").strip().lower()
    if hint == "true":
        return True
    if hint == "false":
        return False
    return status_code in _RETRYABLE_STATUSES or status_code >= 500


def retry_after(headers: Mapping[str, str], *, now: float) -> float | None:
    """The wait the server asks for, in seconds, or None to use our own backoff.

    ``retry-after-ms`` (non-standard, sent by the API) comes first, then
    ``retry-after`` as seconds or as an HTTP date (relative to `now`, Unix time).
    Like the SDK, only waits in (0, 60] seconds are honoured.
    """
    seconds: float | None = None
    if (ms := _float(headers.get("retry-after-ms"))) is not None:
        seconds = ms / 1000
    elif (raw := headers.get("retry-after")) is not None:
        seconds = _float(raw)
        if seconds is None and (date := email.utils.parsedate_tz(raw)) is not None:
            seconds = email.utils.mktime_tz(date) - now
    if seconds is None or not 0 < seconds <= MAX_RETRY_AFTER:
        return None
    return seconds


def backoff(retries_taken: int, *, jitter: float) -> float:
    """Exponential backoff: 0.5 s · 2^n capped at 8 s, reduced by ``25 % · jitter``.

    Args:
        retries_taken: Retries already made (0 before the first retry).
        jitter: A number in [0, 1), normally `random.random()`.
    """
    delay = min(INITIAL_RETRY_DELAY * 2.0**retries_taken, MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * jitter)


def retry_wait(
    retries_taken: int, headers: Mapping[str, str] | None, *, now: float, jitter: float
) -> float:
    """Seconds to wait before the next attempt: the server's wish, else our backoff."""
    asked = retry_after(headers, now=now) if headers is not None else None
    return asked if asked is not None else backoff(retries_taken, jitter=jitter)


def list_params(
    *, after_id: str | None, limit: int = PAGE_LIMIT, lifecycle: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """The query of one ``GET /v1/models`` page.

    `lifecycle` uses the SDK's array encoding (``lifecycle[]=active&lifecycle[]=retired``);
    empty means the API default (active and deprecated).
    """
    params = [("limit", str(limit))]
    if after_id is not None:
        params.append(("after_id", after_id))
    params.extend(("lifecycle[]", value) for value in lifecycle)
    return params


def next_cursor(page: Mapping[str, Any], *, page_number: int, previous: str | None) -> str | None:
    """The ``after_id`` of the next page, or None when this page is the last.

    Raises:
        RegistryError: The page says there is more but gives no new cursor, which
            would otherwise loop forever.
    """
    if not page.get("has_more"):
        return None
    cursor = page.get("last_id")
    if cursor is None and isinstance(data := page.get("data"), list) and data:
        last = data[-1]
        cursor = last.get("id") if isinstance(last, Mapping) else None
    if not isinstance(cursor, str) or not cursor or cursor == previous:
        raise RegistryError(f"Models API page {page_number} says has_more but gives no new last_id")
    return cursor


def error_from_answer(
    status_code: int, content: bytes, headers: Mapping[str, str], *, secrets: Iterable[str] = ()
) -> RegistryHTTPError:
    """The error an HTTP error answer means, with the API's own type and message.

    `secrets` are masked out of the message (the key must never reach an error).
    """
    error_type: str | None = None
    message = ""
    request_id = headers.get("request-id")
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            error_type = _str_or_none(error.get("type"))
            message = _str_or_none(error.get("message")) or ""
        request_id = request_id or _str_or_none(body.get("request_id"))
    if not message:
        message = content.decode("utf-8", "replace").strip()[:200] or "(empty body)"
    return RegistryHTTPError(
        status_code, _redact(message, secrets), error_type=error_type, request_id=request_id
    )


def _float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    # Also a key prefix the API echoes ("invalid x-api-key: sk-ant-api03-SECRE…").
    return redact(text)


# -- attempt outcomes, as tenacity sees them ---------------------------------------------


class _RetryableAnswer(Exception):
    """An answer worth another attempt; carries the error to raise if none is left."""

    def __init__(self, error: RegistryError, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.headers = headers


def _is_retryable(exc: BaseException) -> bool:
    # Connect/read failures, timeouts and a connection cut mid-page are transient;
    # a malformed URL (UnsupportedProtocol) or our own bug (LocalProtocolError) is not.
    return isinstance(
        exc,
        _RetryableAnswer
        | httpx2.TimeoutException
        | httpx2.NetworkError
        | httpx2.RemoteProtocolError,
    )


def _read_answer(response: httpx2.Response, secrets: Iterable[str]) -> JSONObject:
    """The JSON object of a 2xx answer; raises what any other answer means."""
    status = response.status_code
    headers = response.headers
    if 200 <= status < 300:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
        # A 2xx that is not a JSON object is a damaged answer (proxy, truncation): retry.
        error = RegistryError(f"Models API answered HTTP {status} with a body that is not JSON")
        raise _RetryableAnswer(error, headers)
    error = error_from_answer(status, response.content, headers, secrets=secrets)
    if should_retry(status, headers):
        raise _RetryableAnswer(error, headers)
    raise error


class _Credentials:
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

    def __repr__(self) -> str:
        return f"<credentials {self.scheme}>"


# -- shared state and configuration ------------------------------------------------------


class _FetcherBase:
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
        self._credentials = _Credentials(
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
        """Whether `refresh_in_background` may start a refresh now (rate-limited)."""
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

    def _request_headers(self) -> dict[str, str]:
        return {**self._headers, **self._credentials.headers()}

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
            headers = exc.headers if isinstance(exc, _RetryableAnswer) else None
            return retry_wait(
                state.attempt_number - 1, headers, now=self._wall_clock(), jitter=self._jitter()
            )

        def log_retry(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.info(
                "Models API attempt %d failed (%s); retrying in %.2fs",
                state.attempt_number,
                _describe_failure(exc),
                state.upcoming_sleep,
            )

        return {
            "stop": stop,
            "wait": wait,
            "retry": tenacity.retry_if_exception(_is_retryable),
            "before_sleep": log_retry,
            "reraise": True,
        }

    def _kept_failing(self, answer: _RetryableAnswer) -> RegistryUnavailableError:
        """The error once retries of a failing answer are used up."""
        return RegistryUnavailableError(
            f"the Models API at {self.base_url} kept failing: {answer.error}"
        )

    def _unreachable(self, exc: httpx2.TransportError) -> RegistryUnavailableError:
        """The error once retries of a connect/read failure are used up."""
        return RegistryUnavailableError(
            f"cannot reach the Models API at {self.base_url}: {_describe_failure(exc)}"
        )

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
        self._quiet_until = self._clock() + FAILURE_BACKOFF
        logger.warning("registry refresh failed: %s", exc)

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

    def _paging(self) -> Generator[list[tuple[str, str]], JSONObject, Registry]:
        """One refresh's pagination, run by both drivers.

        Yields the query of each page, receives the page's JSON and returns the
        registry once a page says ``has_more: false``.
        """
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


def _model_info(body: JSONObject) -> ModelInfo:
    try:
        return ModelInfo.model_validate(body)
    except ValidationError as exc:
        raise RegistryError(f"Models API sent an invalid model: {exc.errors()[0]['msg']}") from exc


def _describe_failure(exc: BaseException | None) -> str:
    if isinstance(exc, _RetryableAnswer):
        return str(exc.error)
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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


# -- sync driver ----------------------------------------------------------------------------


class RegistryFetcher(_FetcherBase):
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
                body = self._send(client, url, None, self._deadline(max_wait))
        except RegistryHTTPError as exc:
            if exc.status_code != 404:
                raise
            with self._lock:
                self._not_found[model] = True
            return None
        info = _model_info(body)
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
            registry = self._fetch_all()
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

    def _fetch_all(self) -> Registry:
        deadline = self._deadline()
        flow = self._paging()
        params = next(flow)
        with self._session() as client:  # one connection for every page
            while True:
                page = self._send(client, self._list_url, params, deadline)
                try:
                    params = flow.send(page)
                except StopIteration as done:
                    registry: Registry = done.value
                    return registry

    def _send(
        self,
        client: httpx2.Client,
        url: str,
        params: list[tuple[str, str]] | None,
        deadline: float,
    ) -> JSONObject:
        secrets = self._credentials.secrets()
        query = httpx2.QueryParams(tuple(params)) if params else None

        def attempt() -> JSONObject:
            logger.debug("GET %s %s", url, params or "")
            response = client.get(url, params=query, headers=self._request_headers())
            return _read_answer(response, secrets)

        try:
            return tenacity.Retrying(sleep=self._sleep, **self._retry_policy(deadline))(attempt)
        except _RetryableAnswer as answer:
            raise self._kept_failing(answer) from answer.error
        except httpx2.TransportError as exc:
            raise self._unreachable(exc) from exc

    @contextlib.contextmanager
    def _session(self) -> Iterator[httpx2.Client]:
        """The injected client, else a new one closed when the operation ends."""
        if self._client is not None:
            yield self._client
            return
        with httpx2.Client(transport=self._transport, timeout=self._timeout) as client:
            yield client


# -- async driver ---------------------------------------------------------------------------


class AsyncRegistryFetcher(_FetcherBase):
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
        self._flight: asyncio.Task[Registry] | _TrioFlight | None = None

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
            if isinstance(flight, _TrioFlight):
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
            if isinstance(flight, _TrioFlight):
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
                url = self._retrieve_url(model)
                body = await self._send(client, url, None, self._deadline(max_wait))
        except RegistryHTTPError as exc:
            if exc.status_code != 404:
                raise
            self._not_found[model] = True
            return None
        return self._learn(model, _model_info(body))

    async def aclose(self) -> None:
        """Stop background refreshes and cancel one under way (connections are per refresh)."""
        self.background = False
        self._closed = True
        flight = self._flight
        if isinstance(flight, _TrioFlight):
            await flight.cancel()
        elif flight is not None:
            flight.cancel()
            await asyncio.gather(flight, return_exceptions=True)

    async def __aenter__(self) -> AsyncRegistryFetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- internals ----------------------------------------------------------------------------

    def _start_flight(self) -> asyncio.Task[Registry] | _TrioFlight:
        self._last_started = self._clock()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: trio (anyio's other backend)
            self._flight = _TrioFlight(self._fly)
            return self._flight
        flight = loop.create_task(self._fly(), name="caproute-registry")
        # Mark a failure as seen even if no one awaits it (a background refresh).
        flight.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._flight = flight
        return flight

    async def _fly(self) -> Registry:
        try:
            registry = await self._fetch_all()
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

    async def _fetch_all(self) -> Registry:
        deadline = self._deadline()
        flow = self._paging()
        params = next(flow)
        async with self._session() as client:  # one connection for every page
            while True:
                page = await self._send(client, self._list_url, params, deadline)
                try:
                    params = flow.send(page)
                except StopIteration as done:
                    registry: Registry = done.value
                    return registry

    async def _send(
        self,
        client: httpx2.AsyncClient,
        url: str,
        params: list[tuple[str, str]] | None,
        deadline: float,
    ) -> JSONObject:
        secrets = self._credentials.secrets()
        query = httpx2.QueryParams(tuple(params)) if params else None

        async def attempt() -> JSONObject:
            logger.debug("GET %s %s", url, params or "")
            response = await client.get(url, params=query, headers=self._request_headers())
            return _read_answer(response, secrets)

        retrying = tenacity.AsyncRetrying(sleep=self._sleep, **self._retry_policy(deadline))
        try:
            return await retrying(attempt)
        except _RetryableAnswer as answer:
            raise self._kept_failing(answer) from answer.error
        except httpx2.TransportError as exc:
            raise self._unreachable(exc) from exc

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


class _TrioFlight:
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
