"""Pass-through mode: one registry and one router per caller credential.

Organizations and workspaces can see different models, so in pass-through mode (the
callers bring their own keys) the proxy reads ``GET /v1/models`` *with each caller's
own credential*, from the configured upstream only, and routes each caller on what
its key can see. Per distinct credential there is one `CallerRegistry`: the caller's
registry, and a `LiveRouter` over it (so learned facts and cool-downs are per caller
too; the policy is shared).

**The credential is never stored.** Callers are told apart by a keyed hash (BLAKE2b in
keyed mode, a MAC, under a random 32-byte key): the digest is the map key, the disk
cache file name and nothing else. A fetch happens on the caller's request path only (a
new caller's first request, waiting up to ``first_fetch_timeout``; a stale registry,
refreshed in the background; a refresh the routing flow asks for after a 400), never
on a timer. The request lends its credential for its own lifetime (`lend`); each
`CallerRegistry` is an `AsyncRegistryFetcher` holding none (`LentCredentials`): a
fetch takes the lent one when it starts and drops it when it ends.

Everything else is the library's fetcher: single-flight per caller, a TTL with
stale-while-revalidate, the back-off after a failure, the background refresh rate
limit; plus an LRU bound on callers (``max_registries``) and an optional disk cache
(`caproute._proxy._caller_cache`: 0600 files in a 0700 directory). A caller whose key
cannot read ``/v1/models`` (401/403) is routed on the shared registry (``--snapshot``,
else the offline lineup), says so in its decisions' ``registry_source``, and is asked
again after `DENIED_RETRY` seconds.

**Bad keys don't compete with good ones.** A refused key leaves the map for a bounded
list of refused digests and is routed through one shared router until it is due to be
asked again (one Models API request per key per `DENIED_RETRY`); it can't push out a
caller that has, or is getting, a registry of its own. Nor can a new caller: when
every place is held by callers waiting for their first registry, it is routed on the
shared registry this once. With a disk cache the hash key is kept beside the files
(``.hmac-key``, 0600) for restarts and sibling workers; without one it is random per
process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextvars import Context
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any, NamedTuple

import httpx2

from .._core.learned_facts import LearnedFact
from .._core.model_info import ModelInfo
from .._core.policy import Policy
from .._core.registry import Registry
from .._core.registry_source import RegistrySource
from .._exceptions import RegistryError, RegistryHTTPError, RegistryUnavailableError
from .._registry.fetch_async import AsyncRegistryFetcher, TrioFlight
from .._runtime.live import DecisionHook
from . import _caller_cache
from ._credentials import (
    Credential,
    LentCredentials,
    hmac_key,
    lend,
    presented,
    presented_credential,
)
from ._routers import RouterSet

__all__ = [
    "CallerRegistries",
    "CallerRegistry",
    "CallerRoutes",
    "CallersHealth",
    "Credential",
    "RouterSet",
    "hmac_key",
    "lend",
    "presented_credential",
]

logger = logging.getLogger("caproute.proxy")

DENIED_RETRY = 600.0
"""Seconds before a credential that could not list models (401/403) is asked again."""
FETCH_TIMEOUT = 10.0
"""Seconds per Models API request of one fetch."""
MAX_FETCH_TIME = 20.0
"""Bound on one fetch, retries included."""


# -- one caller ------------------------------------------------------------------------------


class CallerRoutes(NamedTuple):
    """What the app needs of a request's caller (`CallerRegistries.routes_for`)."""

    routes: RouterSet
    source: str
    """What the ``caproute-registry`` header says (`CallerRegistry.source`)."""
    credential: Credential
    """The credential presented, for the app to `lend` while the request is sent."""
    fetched: bool
    """Whether the caller's registry was loaded or fetched on this request's path."""


class CallerRegistry(AsyncRegistryFetcher):
    """One caller's registry: an `AsyncRegistryFetcher` reading the configured upstream
    with the credential each request lends (it holds none), and the caller's routers.

    The fetcher's rules apply as they are: one fetch at a time (single-flight), the
    TTL (``ttl``), the back-off after a failure, the background refresh rate limit, and
    models or aliases a look-up found kept across fetches. What a caller adds: data of
    its own or the shared registry (annotated) until there is some, the disk cache per
    digest, a refused credential (401/403) leaving the map of callers, and metrics.

    Built and owned by `CallerRegistries`; everything runs on the server's event loop.
    """

    def __init__(self, digest: str, owner: CallerRegistries) -> None:
        super().__init__(
            api_key="",
            auth_token="",
            base_url=owner.upstream,
            client=owner.client,
            ttl=owner.ttl,
            cache_file=owner.cache_dir is not None,
            timeout=FETCH_TIMEOUT,
            max_retry_time=MAX_FETCH_TIME,
            max_attempts=3,
            clock=owner.clock,
            wall_clock=owner.wall_clock,
        )
        self._credentials = LentCredentials(digest, owner.key)
        self.digest = digest
        self._owner = owner
        self._cache_checked = owner.cache_dir is None
        self.denied: str | None = None
        """Why this credential can't read the Models API (``HTTP 403 ...``), if it can't."""
        self._waiting = 0
        self.shared_why: str | None = None
        """Set on the shared stand-ins (`CallerRegistries.stand_in`): why requests are
        routed on the shared registry; such an entry never fetches."""
        self.fetches = 0
        self.routes = RouterSet(
            self,
            inner=owner.inner,
            policy=owner.policy,
            logger=owner.router_logger,
            on_decision=owner.on_decision,
        )

    # -- the source LiveRouter reads ------------------------------------------------------

    async def current(self) -> Registry:
        """The registry this caller is routed on now (never waits, never fetches: `ready`
        does that before the request is routed)."""
        return self._best()

    @property
    def may_go_live(self) -> bool:
        """Whether waiting could bring this caller's own data (the flow's cold-start wait).

        Not while a fetch is running: `ready` already waited for it, up to
        ``first_fetch_timeout``, before the request was routed.
        """
        return (
            self._registry is None
            and self.denied is None
            and self._flight is None
            and self._clock() >= self._quiet_until
        )

    async def wait_live(self, timeout: float) -> Registry | None:
        """The caller's own registry, waiting at most `timeout` s for its fetch (cold start).

        `None` when no fetch can come (the credential can't list models, a failure
        back-off is on, or no credential is lent) or it doesn't land in time.
        """
        if self._registry is None:
            flight = self._flight
            if flight is None and self.may_go_live and self._credentials.present:
                flight = self._start_flight()
            if isinstance(flight, asyncio.Task):
                await _wait_for_flight(flight, timeout)
        return self._registry

    async def retrieve(self, model: str, *, max_wait: float | None = None) -> ModelInfo | None:
        """`AsyncRegistryFetcher.retrieve` with the credential the current request lent;
        what it finds joins the caller's registry (and every later fetch of it).

        Nothing is asked without a lent credential of this caller, nor for a caller
        whose key can't list models (routed on the shared registry).

        Raises:
            RegistryUnavailableError: The caller's own registry is not fetched yet (the
                name is asked again after a short back-off).
        """
        if not self._credentials.present or self.denied is not None:
            return None
        if self._registry is None:
            raise RegistryUnavailableError("the caller's own registry is not fetched yet")
        return await super().retrieve(model, max_wait=max_wait)

    def save_learned(self, facts: Sequence[LearnedFact]) -> None:
        """Keep what the caller's router learned with its registry and its cache file
        (a caller routed on the shared registry has nothing of its own to save)."""
        if self._registry is not None:
            super().save_learned(facts)

    # -- state ----------------------------------------------------------------------------

    def _best(self) -> Registry:
        """The caller's live (or cached) registry, else the shared one, annotated."""
        if self._registry is not None:
            return self._registry
        return self._owner.shared_registry(self._why_shared())

    def _why_shared(self) -> str:
        if self.shared_why is not None:
            return self.shared_why
        if self.denied is not None:
            return f"this credential cannot list models: {self.denied}"
        return "the caller's own registry is not fetched yet"

    @property
    def registry(self) -> Registry:
        """The registry this caller is routed on now."""
        return self._best()

    @property
    def source(self) -> str:
        """``caller`` or ``shared (why)``: what the ``caproute-registry`` header says."""
        if self._registry is not None:
            return "caller"
        if self.shared_why is None and self.denied is None:
            return "shared (first fetch pending)"
        return f"shared ({self._why_shared()})"

    def own_age(self, now: float) -> float | None:
        """Seconds since this caller's own data was fetched (None without own data)."""
        return None if self._registry is None else self._registry.source.age(now)

    @property
    def is_fresh(self) -> bool:
        """Own data fetched within the TTL (cached data counts by its fetch time)."""
        age = self.own_age(self._wall_clock())
        return age is not None and age <= self.ttl

    @property
    def getting_registry(self) -> bool:
        """No registry of its own yet, and a request waiting for one (reading the disk
        cache or waiting for the first fetch): such a caller is never dropped to make
        room. A fetch whose requests all left (a client that gave up) doesn't count."""
        return self._registry is None and self._waiting > 0

    @property
    def stale(self) -> bool:
        """Own data older than the TTL (a refresh is due)."""
        return self._registry is not None and not self.is_fresh

    @property
    def pending(self) -> bool:
        """Whether `ready` has something to do (the common case, fresh data: no)."""
        if self._registry is not None:
            return not self._cache_checked or (self._flight is None and self.stale)
        return True

    async def ready(self, credential: Credential) -> None:
        """Before routing a request: load the disk cache, fetch or start a refresh as due.

        A caller with no data of its own waits for its first fetch, at most
        ``first_fetch_timeout`` seconds; stale data is refreshed in the background.
        These fetches, made on the request's path, don't count against the background
        refresh rate limit.
        """
        self._waiting += 1
        try:
            if not self._cache_checked:
                self._cache_checked = True
                self._registry = await asyncio.to_thread(self._owner.read_cache, self.digest)
            due = self._clock() >= self._quiet_until
            if self._registry is None and self.denied is None:
                if self._flight is None and due:
                    with lend(credential):
                        self._start_flight(counted=False)
                if isinstance(self._flight, asyncio.Task):
                    await _wait_for_flight(self._flight, self._owner.first_fetch_timeout)
            elif self._flight is None and due and (self.stale or self.denied is not None):
                with lend(credential):
                    self._start_flight(counted=False)
        finally:
            self._waiting -= 1

    # -- the fetcher's outcomes -----------------------------------------------------------

    def _start_flight(self, *, counted: bool = True) -> asyncio.Task[Registry] | TrioFlight:
        self.fetches += 1
        return super()._start_flight(counted=counted)

    def _task_context(self) -> Context:
        # An empty context: the fetch must not carry (or let its connections keep) the
        # request's context; it holds the credential it was started with until it ends.
        return Context()

    def _accept_live(self, registry: Registry) -> Registry:
        registry = super()._accept_live(registry)
        self.denied = None
        self._owner.count_fetch("ok")
        return registry

    def _persist(self, registry: Registry) -> None:
        self._owner.write_cache(self.digest, registry)

    def _record_failure(self, exc: Exception) -> None:
        # Kept without its traceback: its frames held the credential the fetch sent.
        self._last_error = RegistryError(str(exc) or type(exc).__name__)
        if isinstance(exc, RegistryHTTPError) and exc.status_code in (401, 403):
            self.denied = f"HTTP {exc.status_code}" + (
                f" {exc.error_type}" if exc.error_type else ""
            )
            self._registry, self._has_live = None, False
            self._back_off(DENIED_RETRY)
            self._owner.deny(self)
            self._owner.count_fetch("denied")
            logger.info(
                "caller registry %s: %s; routed on the shared registry",
                self.digest[:8],
                self.denied,
            )
            return
        self._back_off()
        self._owner.count_fetch("error")
        logger.warning("caller registry %s: fetch failed: %s", self.digest[:8], self._last_error)

    def cancel(self) -> None:
        """Stop a fetch under way (the caller was evicted or the proxy is stopping)."""
        if isinstance(self._flight, asyncio.Task):
            self._flight.cancel()


async def _wait_for_flight(flight: asyncio.Task[Any], timeout: float) -> None:
    """Wait for a caller's fetch at most `timeout` seconds (``shield``: a timeout leaves
    it running). A fetch that fails or is cancelled (its caller evicted meanwhile) leaves
    the request routed on the data there is; only the request's own cancellation rises."""
    try:
        await asyncio.wait_for(asyncio.shield(flight), timeout)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise
    except Exception:  # failures are the fetch's to log and count
        pass


@dataclass(frozen=True, slots=True)
class CallersHealth:
    """What ``/caproute/health`` says about caller registries."""

    callers: int  # distinct credentials held
    live: int  # routed on their own registry
    denied: int  # whose credential can't list models (routed on the shared registry)
    failing_and_stale: int  # data older than the threshold, and the last fetch failed
    oldest_age_s: float | None


class CallerRegistries:
    """Every caller's `CallerRegistry`, LRU-bounded, keyed by credential digest.

    Args:
        upstream: The configured upstream base URL (the only host fetches go to).
        inner: The transport under every caller's routing transport.
        shared: Returns the shared registry (``--snapshot`` or the offline lineup).
        policy: The policy in force (shared by every caller).
        max_registries: LRU bound.
        ttl: Seconds a caller's registry stays fresh.
        first_fetch_timeout: Bound on a new caller's wait for its first fetch.
        cache_dir: Disk cache directory, or `None`.
        max_cache_files: Cache files kept there, LRU (``CAPROUTE_CALLER_CACHE_MAX_FILES``).
        router_logger: Logger for the callers' routers.
        on_decision: Hook for every decision.
        on_fetch: Called with ``ok`` / ``denied`` / ``error`` after each fetch.
        fetch_transport: The transport Models API calls go through (borrowed; default:
            a connection pool of their own).
        clock: Monotonic seconds; wall_clock: Unix time.
    """

    def __init__(
        self,
        *,
        upstream: str,
        inner: httpx2.AsyncBaseTransport,
        shared: Callable[[], Registry],
        policy: Policy,
        max_registries: int = 64,
        ttl: float = 3600.0,
        first_fetch_timeout: float = 5.0,
        cache_dir: Path | None = None,
        max_cache_files: int | None = None,
        router_logger: logging.Logger,
        on_decision: DecisionHook,
        on_fetch: Callable[[str], object] = lambda _result: None,
        fetch_transport: httpx2.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.inner = inner
        self._shared = shared
        self.policy = policy
        self.max_registries = max_registries
        self.ttl = ttl
        self.first_fetch_timeout = first_fetch_timeout
        self.cache_dir = cache_dir
        self.router_logger = router_logger
        self.on_decision = on_decision
        self._on_fetch = on_fetch
        self.clock = clock
        self.wall_clock = wall_clock
        self.max_cache_files = max_cache_files or _caller_cache.configured_max_files()
        self.key = hmac_key(cache_dir)
        self._entries: OrderedDict[str, CallerRegistry] = OrderedDict()
        self._denied: OrderedDict[str, tuple[str, float]] = OrderedDict()
        """Digests of refused keys → (why, when to ask again), LRU, `max_denied` at most."""
        self.max_denied = max(1024, 16 * max_registries)
        self._stand_ins: dict[str, CallerRegistry] = {}
        self._annotated: dict[str, tuple[Registry, Registry]] = {}
        # The Models API calls of every caller, on their own pool: nothing read from the
        # environment (proxies, .netrc) and no cookie jar, so nothing one caller's answer
        # sets can travel with another caller's request.
        self._borrowed = fetch_transport is not None
        self.client = httpx2.AsyncClient(
            transport=fetch_transport,
            trust_env=False,
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
            timeout=FETCH_TIMEOUT,
            limits=httpx2.Limits(max_connections=16, max_keepalive_connections=4),
        )

    async def routes_for(self, headers: Any) -> CallerRoutes | None:
        """The routes for the caller whose credential `headers` (ASGI's) present, its
        registry readied when due; `None` without a credential. The app's one call."""
        found = presented(headers, self.key)
        if found is None:
            return None
        credential, digest = found
        caller = self.lookup(credential, digest)
        fetched = caller.pending
        if fetched:
            await caller.ready(credential)
        return CallerRoutes(caller.routes, caller.source, credential, fetched)

    def lookup(self, credential: Credential, digest: str | None = None) -> CallerRegistry:
        """The caller's entry (made if new, LRU-refreshed); `ready` it if `pending`.

        A key refused within `DENIED_RETRY` seconds, or a new caller arriving while every
        place is held by callers with (or getting) a registry of their own, gets a
        shared stand-in instead (`stand_in`): routed on the shared registry, no fetch.
        """
        digest = digest or credential.digest(self.key)
        entry = self._entries.get(digest)
        if entry is not None:
            self._entries.move_to_end(digest)
            return entry
        refused = self._denied.get(digest)
        if refused is not None:
            if self.clock() < refused[1]:
                self._denied.move_to_end(digest)
                return self.stand_in(f"this credential cannot list models: {refused[0]}")
            del self._denied[digest]  # due to be asked again
        if len(self._entries) >= self.max_registries:
            victim = self._evictable()
            if victim is None:
                return self.stand_in(
                    "every place is held by callers fetching their registry; "
                    "this caller's is fetched on a later request"
                )
            self._entries.pop(victim.digest).cancel()
        entry = self._entries[digest] = CallerRegistry(digest, self)
        return entry

    def _evictable(self) -> CallerRegistry | None:
        """The caller to drop for a newcomer: the least recently used one without a
        registry of its own that no request is waiting on (a failed fetch, a fetch its
        client gave up on), else the least recently used with a registry of its own;
        `None` when every caller is waiting for its first registry (those are never
        dropped: a flood of new keys must not cancel a real caller's fetch). A scan of at
        most `max_registries` entries, only when a new caller arrives at a full map.
        """
        oldest_live: CallerRegistry | None = None
        for candidate in self._entries.values():
            if candidate.getting_registry:
                continue
            if candidate.own_age(self.wall_clock()) is None:
                return candidate
            oldest_live = oldest_live or candidate
        return oldest_live

    def deny(self, entry: CallerRegistry) -> None:
        """Move a caller whose key was refused (401/403) out of the map, into the
        bounded list of refused digests, until `DENIED_RETRY` has passed."""
        if self._entries.get(entry.digest) is entry:
            del self._entries[entry.digest]
        self._denied[entry.digest] = (entry.denied or "refused", entry._quiet_until)
        self._denied.move_to_end(entry.digest)
        while len(self._denied) > self.max_denied:
            self._denied.popitem(last=False)

    def stand_in(self, why: str) -> CallerRegistry:
        """The shared entry for callers routed on the shared registry because `why`:
        one router set per reason, never fetching, never in the map."""
        entry = self._stand_ins.get(why)
        if entry is None:
            if len(self._stand_ins) >= 32:  # reasons come from the upstream's answers
                self._stand_ins.clear()
            entry = self._stand_ins[why] = CallerRegistry("", self)
            entry.shared_why = why
            entry._cache_checked = True
            entry._quiet_until = float("inf")  # never fetches
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[CallerRegistry]:
        """The callers held, least recently used first."""
        return list(self._entries.values())

    def set_policy(self, policy: Policy) -> None:
        """Put a new policy in force for every caller."""
        self.policy = policy
        for entry in (*self._entries.values(), *self._stand_ins.values()):
            entry.routes.set_policy(policy)

    def shared_registry(self, why: str) -> Registry:
        """The shared registry, its source saying why a caller is routed on it.

        The same object is returned until the shared registry changes, so routers
        keep their per-registry caches.
        """
        shared = self._shared()
        cached = self._annotated.get(why)
        if cached is not None and cached[0] is shared:
            return cached[1]
        source = shared.source
        location = f"shared registry, {why}" + (f": {source.location}" if source.location else "")
        annotated = shared.with_source(
            RegistrySource(
                source.kind,
                fetched_at=source.fetched_at,
                location=location,
                describes=source.describes,
            )
        )
        self._annotated[why] = (shared, annotated)
        return annotated

    def health(self, stale_after: float) -> CallersHealth:
        """Counts for ``/caproute/health`` (no digests, no credentials).

        A caller counts as failing when its own data is older than `stale_after` and its
        last fetch failed: an idle caller's data ages without anyone needing it, which
        is no problem.
        """
        now = self.wall_clock()
        entries = list(self._entries.values())
        ages = [age for e in entries if (age := e.own_age(now)) is not None]
        return CallersHealth(
            callers=len(entries),
            live=len(ages),
            denied=len(self._denied),
            failing_and_stale=sum(
                1
                for e in entries
                if e.last_error is not None and (e.own_age(now) or 0) > stale_after
            ),
            oldest_age_s=max(ages) if ages else None,
        )

    def count_fetch(self, result: str) -> None:
        """Report one fetch's result (metrics)."""
        self._on_fetch(result)

    def read_cache(self, digest: str) -> Registry | None:
        """The caller's cached registry, if a readable one exists (runs in a thread)."""
        return None if self.cache_dir is None else _caller_cache.read_cache(self.cache_dir, digest)

    def write_cache(self, digest: str, registry: Registry) -> None:
        """Write the caller's registry to its cache file (runs in a thread)."""
        if self.cache_dir is not None:
            _caller_cache.write_cache(self.cache_dir, digest, registry, self.max_cache_files)

    async def aclose(self) -> None:
        """Cancel fetches under way and close the Models API client."""
        for entry in self._entries.values():
            entry.cancel()
        if not self._borrowed:
            await self.client.aclose()
