"""Pass-through mode: one registry and one router per caller credential.

Organizations and workspaces can see different models, so in pass-through mode (the
callers bring their own keys) the proxy reads ``GET /v1/models`` *with each caller's
own credential*, from the configured upstream only, and routes each caller on what
its key can see. Per distinct credential there is one `CallerRegistry`: the caller's
registry, and a `LiveRouter` over it (so learned facts and cool-downs are per caller
too; the policy is shared).

**The credential is never stored.** Callers are told apart by a keyed hash: BLAKE2b
in keyed mode (a MAC, like HMAC) of the credential under a random 32-byte key. The digest is
the map key, the disk cache file name and nothing else; the credential itself lives
only where the request already has it:

* A fetch happens **on the caller's request path only**: a new caller's first
  request (waiting up to ``first_fetch_timeout``), a stale registry (refreshed in the
  background, the request routed on the data held), and a response-driven refresh
  (the routing flow saw a 400 that says the registry is wrong). There is no timer
  that would need the credential later.
* The request **lends** its credential for its own lifetime (`lend`, a context
  variable reset when the request ends); the routing flow's refresh reads it from
  there. A background refresh takes the credential as an argument of its task and
  builds a short-lived `AsyncRegistryFetcher` with it; both are dropped the moment
  the fetch ends. So the credential is held exactly while a request carrying it, or
  a fetch made for it, is under way.

Everything else follows the library's fetcher rules: single-flight per caller, a TTL
with stale-while-revalidate, a back-off after a failure, an LRU bound on callers
(``max_registries``), and optionally a disk cache (one 0600 file per digest in a
0700 directory, at most ``CAPROUTE_CALLER_CACHE_MAX_FILES`` files: the least recently
used go). A caller whose key cannot read ``/v1/models`` (401/403) is routed on
the shared registry (``--snapshot``, else the offline lineup) and its decisions say
so in their ``registry_source``; it is asked again after `DENIED_RETRY` seconds.

**Bad keys don't compete with good ones.** A refused key leaves the map of callers
for a compact list of refused digests (bounded, LRU) and is routed through one shared
router until it is due to be asked again: a flood of wrong keys costs one Models API
request per key per `DENIED_RETRY`, and can't push out a caller that has, or is
getting, a registry of its own. A new caller never takes the place of one whose request
is waiting for its first registry either (a fetch its client gave up on may go); when
every place is taken by such callers, it is routed on the shared registry this once
(its next request tries again).

With a disk cache the hash key is kept in the cache directory (``.hmac-key``, 0600),
so files can be found again after a restart and by sibling workers; without one it
is random per process. Either way a digest can't be linked to a key without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextvars import Context, ContextVar
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2

from .._core.learned_facts import LearnedFact
from .._core.model_info import ModelInfo
from .._core.policy import Policy
from .._core.registry import Registry
from .._core.registry_source import RegistrySource
from .._exceptions import ConfigError, RegistryHTTPError, RegistryUnavailableError
from .._http.transports import AsyncRoutingTransport
from .._runtime.live import DecisionHook, LiveRouter
from ._headers import Headers

if TYPE_CHECKING:
    from .._registry.fetch import AsyncRegistryFetcher

logger = logging.getLogger("caproute.proxy")

DENIED_RETRY = 600.0
"""Seconds before a credential that could not list models (401/403) is asked again."""
FAILURE_BACKOFF = 30.0
"""Seconds before a caller's failed fetch is tried again (its data meanwhile: the last held)."""
FETCH_TIMEOUT = 10.0
"""Seconds per Models API request of one fetch."""
MAX_FETCH_TIME = 20.0
"""Bound on one fetch, retries included."""
MIN_REFRESH_INTERVAL = 10.0
"""Seconds between two refreshes the routing flow asks for (after learning from a 400)."""

CACHE_FILES_SETTING = "CAPROUTE_CALLER_CACHE_MAX_FILES"
DEFAULT_MAX_CACHE_FILES = 1_000
"""Caller cache files kept (the least recently used go); each is a few tens of kB."""


class Credential:
    """A caller's credential as presented on one request; its repr never shows it.

    Only ``x-api-key`` and ``Authorization: Bearer`` credentials can read the Models
    API on a caller's behalf (what SDKs send: 0.x ``x-api-key``, 2.x either).
    """

    __slots__ = ("_bearer", "_value")

    def __init__(self, value: str, *, bearer: bool) -> None:
        self._value = value
        self._bearer = bearer

    def digest(self, key: bytes) -> str:
        """The keyed hash of the credential under `key` (BLAKE2b in keyed mode, a MAC), hex.

        BLAKE2b's keyed mode is one C call (~1 µs, against ~5 µs for HMAC-SHA256 from
        Python), and this runs for every request. The header the credential came in is
        left out: one key is one caller whether an SDK sends it as ``x-api-key`` or as a
        bearer token (a fetch uses the header it came in).
        """
        value = self._value.encode("latin-1")
        return hashlib.blake2b(value, key=key, digest_size=32).hexdigest()

    def fetcher_credentials(self) -> tuple[str, str]:
        """``(api_key, auth_token)`` for a fetcher; the unused one is "", never `None`,
        so the fetcher can't fall back to ``ANTHROPIC_*`` variables."""
        if self._bearer:
            return "", self._value
        return self._value, ""

    def __repr__(self) -> str:
        return f"<credential {'bearer' if self._bearer else 'x-api-key'}>"


def presented_credential(headers: Headers) -> Credential | None:
    """The credential a request carries (``x-api-key`` first, else a bearer token)."""
    bearer: Credential | None = None
    for name, value in headers:
        if name == b"x-api-key":
            text = value.strip().decode("latin-1")
            return Credential(text, bearer=False) if text else None
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                bearer = Credential(token.strip().decode("latin-1"), bearer=True)
    return bearer


class _Lease:
    """A credential lent for one block; emptied when the block ends."""

    __slots__ = ("credential",)

    def __init__(self, credential: Credential | None) -> None:
        self.credential = credential


_LENT: ContextVar[_Lease | None] = ContextVar("caproute_proxy_credential", default=None)


@contextlib.contextmanager
def lend(credential: Credential | None) -> Iterator[None]:
    """Make `credential` available to refreshes the routing flow asks for, for this block.

    The context variable holds a lease that is emptied on the way out, not the
    credential itself: event loops keep a copy of the context current when a
    connection was opened (for its callbacks), and a pooled upstream connection
    outlives the request that opened it.
    """
    lease = _Lease(credential)
    token = _LENT.set(lease)
    try:
        yield
    finally:
        lease.credential = None
        _LENT.reset(token)


def _lent() -> Credential | None:
    lease = _LENT.get()
    return None if lease is None else lease.credential


def hmac_key(cache_dir: Path | None) -> bytes:
    """The key digests are made with: kept in `cache_dir` (0600) when there is one."""
    if cache_dir is None:
        return secrets.token_bytes(32)
    from .._registry.snapshot import cache_key

    return cache_key(cache_dir)


# -- routers over one registry source -------------------------------------------------------


def forced_policy(policy: Policy, route: str) -> Policy:
    """`policy` with only route `route`, matching every request (``caproute-route: NAME``).

    Raises:
        KeyError: The policy has no route of that name.
    """
    for candidate in policy.routes:
        if candidate.name == route:
            from .._core.policy import Match

            return policy.model_copy(
                update={"routes": (candidate.model_copy(update={"match": Match()}),)}
            )
    raise KeyError(route)


class RouterSet:
    """A `LiveRouter` and its routing transport, plus per-route variants made on demand.

    Args:
        source: What the routers read the registry from (a `Registry` or a fetcher).
        inner: The transport doing the upstream IO (shared by every router).
        policy: The policy in force.
        logger: Where the routers log (the proxy's access line already reports each
            decision, so their INFO lines are silenced there).
        on_decision: Hook receiving every decision.
    """

    def __init__(
        self,
        source: Any,
        *,
        inner: httpx2.AsyncBaseTransport,
        policy: Policy,
        logger: logging.Logger,
        on_decision: DecisionHook,
    ) -> None:
        self._inner = inner
        self.router = LiveRouter(source, policy=policy, logger=logger, on_decision=on_decision)
        self.transport = AsyncRoutingTransport(inner, router=self.router)
        self._variants: dict[str, AsyncRoutingTransport] = {}

    def set_policy(self, policy: Policy) -> None:
        """Put a new policy in force (variants are rebuilt on next use)."""
        self.router.set_policy(policy)
        self._variants = {}

    def for_route(self, route: str) -> AsyncRoutingTransport:
        """The transport that routes every request with policy route `route`.

        Raises:
            KeyError: No such route.
        """
        transport = self._variants.get(route)
        if transport is None:
            # Same source and memory: what a variant learns, every route knows.
            router = self.router.with_policy(forced_policy(self.router.policy, route))
            transport = self._variants[route] = AsyncRoutingTransport(self._inner, router=router)
        return transport


# -- one caller ------------------------------------------------------------------------------


class CallerRegistry:
    """One caller's registry (an async fetcher for `LiveRouter`) and its routers.

    Built and owned by `CallerRegistries`; everything runs on the server's event loop.
    """

    def __init__(self, digest: str, owner: CallerRegistries) -> None:
        self.digest = digest
        self._owner = owner
        self._live: Registry | None = None
        self._flight: asyncio.Task[None] | None = None
        self._cache_checked = owner.cache_dir is None
        self.denied: str | None = None
        """Why this credential can't read the Models API (``HTTP 403 ...``), if it can't."""
        self._waiting = 0
        self.shared_why: str | None = None
        """Set on the shared stand-ins (`CallerRegistries.stand_in`): why requests are
        routed on the shared registry; such an entry never fetches."""
        self.last_error: str | None = None
        self._retry_at = float("-inf")
        self._last_asked = float("-inf")
        self._found: dict[str, ModelInfo] = {}
        """What ``GET /v1/models/{name}`` answered, per name asked: kept across fetches
        (a list leaves these models out)."""
        self.fetches = 0
        self.routes = RouterSet(
            self,
            inner=owner.inner,
            policy=owner.policy,
            logger=owner.router_logger,
            on_decision=owner.on_decision,
        )

    # -- the async fetcher shape LiveRouter reads ----------------------------------------

    async def current(self) -> Registry:
        """The registry this caller is routed on now (never waits)."""
        return self.registry

    async def refresh(self) -> Registry:
        """Fetch now with the credential the current request lent (see `lend`)."""
        credential = _lent()
        if credential is not None and credential.digest(self._owner.key) == self.digest:
            flight = self._flight or self._start(credential)
            # Bounded like the first fetch; a slow fetch carries on for later requests.
            await _wait_for_flight(flight, self._owner.first_fetch_timeout)
        return self.registry

    @property
    def may_go_live(self) -> bool:
        """Whether waiting could bring this caller's own data (the flow's cold-start wait).

        Not while a fetch is running: `ready` already waited for it, up to
        ``first_fetch_timeout``, before the request was routed.
        """
        return self._live is None and self.denied is None and self._flight is None and self._due()

    async def wait_live(self, timeout: float) -> Registry | None:
        """The caller's own registry, waiting at most `timeout` s for its fetch (cold start).

        `None` when no fetch can come (the credential can't list models, a failure
        back-off is on, or no credential is lent) or it doesn't land in time.
        """
        if self._live is not None:
            return self._live
        flight = self._flight
        if flight is None:
            credential = _lent()
            if credential is None or self.denied is not None or not self._due():
                return None
            if credential.digest(self._owner.key) != self.digest:
                return None
            flight = self._start(credential)
        await _wait_for_flight(flight, timeout)
        return self._live

    def refresh_in_background(self) -> bool:
        """Start a fetch with the lent credential, unless one runs, a back-off is on, or
        the flow asked less than `MIN_REFRESH_INTERVAL` seconds ago; True if one started.

        The routing flow asks for this after learning from an answer (a capability
        400): the live lineup may have changed.
        """
        credential = _lent()
        if credential is None or self._flight is not None or not self._due():
            return False
        now = self._owner.clock()
        if now - self._last_asked < MIN_REFRESH_INTERVAL:
            return False
        if credential.digest(self._owner.key) != self.digest:
            return False
        self._last_asked = now
        self._start(credential)
        return True

    def _due(self) -> bool:
        return self._owner.clock() >= self._retry_at

    # -- state ----------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        """The caller's live (or cached) registry, else the shared one, annotated."""
        if self._live is not None:
            return self._live
        if self.shared_why is not None:
            return self._owner.shared_registry(self.shared_why)
        if self.denied is not None:
            return self._owner.shared_registry(f"this credential cannot list models: {self.denied}")
        return self._owner.shared_registry("the caller's own registry is not fetched yet")

    @property
    def source(self) -> str:
        """``caller`` or ``shared (why)``: what the ``caproute-registry`` header says."""
        if self._live is not None:
            return "caller"
        if self.shared_why is not None:
            return f"shared ({self.shared_why})"
        if self.denied is not None:
            return f"shared (this credential cannot list models: {self.denied})"
        return "shared (first fetch pending)"

    def age(self, now: float) -> float | None:
        """Seconds since this caller's data was fetched (None without own data)."""
        return None if self._live is None else self._live.source.age(now)

    @property
    def getting_registry(self) -> bool:
        """No registry of its own yet, and a request waiting for one (reading the disk
        cache or waiting for the first fetch): such a caller is never dropped to make
        room. A fetch whose requests all left (a client that gave up) doesn't count."""
        return self._live is None and self._waiting > 0

    @property
    def stale(self) -> bool:
        """Own data older than the TTL (a refresh is due)."""
        age = self.age(self._owner.wall_clock())
        return age is not None and age > self._owner.ttl

    @property
    def pending(self) -> bool:
        """Whether `ready` has something to do (the common case, fresh data: no)."""
        if self._live is not None:
            return not self._cache_checked or (self._flight is None and self.stale)
        return True

    async def ready(self, credential: Credential) -> None:
        """Before routing a request: load the disk cache, fetch or start a refresh as due.

        A caller with no data of its own waits for its first fetch, at most
        ``first_fetch_timeout`` seconds; stale data is refreshed in the background.
        """
        self._waiting += 1
        try:
            if not self._cache_checked:
                self._cache_checked = True
                self._live = await asyncio.to_thread(self._owner.read_cache, self.digest)
            due = self._owner.clock() >= self._retry_at
            if self._live is None and self.denied is None:
                if self._flight is None and due:
                    self._start(credential)
                if self._flight is not None:
                    await _wait_for_flight(self._flight, self._owner.first_fetch_timeout)
            elif self._flight is None and due and (self.stale or self.denied is not None):
                self._start(credential)
        finally:
            self._waiting -= 1

    def _start(self, credential: Credential) -> asyncio.Task[None]:
        # An empty context: the fetch must not carry (or let its connections keep) the
        # request's context; it gets the credential as an argument and drops it when done.
        flight = asyncio.get_running_loop().create_task(
            self._fetch(credential), name="caproute-caller-registry", context=Context()
        )
        self._flight = flight
        return flight

    def _fetcher(self, credential: Credential, initial: Registry) -> AsyncRegistryFetcher:
        """A one-off fetcher holding `credential` (it dies with the caller's reference)."""
        from .._registry.fetch import AsyncRegistryFetcher

        api_key, auth_token = credential.fetcher_credentials()
        return AsyncRegistryFetcher(
            api_key=api_key,
            auth_token=auth_token,
            base_url=self._owner.upstream,
            client=self._owner.client,
            initial=initial,
            cache_file=False,
            background=False,
            timeout=FETCH_TIMEOUT,
            max_retry_time=MAX_FETCH_TIME,
            max_attempts=3,
        )

    async def _fetch(self, credential: Credential) -> None:
        """One fetch with `credential`; it and the fetcher holding it die with this call."""
        owner = self._owner
        self.fetches += 1
        try:
            fetcher = self._fetcher(credential, self.registry)
            del credential
            try:
                registry = await fetcher.refresh()
            finally:
                del fetcher
        except RegistryHTTPError as exc:
            if exc.status_code not in (401, 403):
                self._failed(exc)
                return
            self.denied = f"HTTP {exc.status_code}" + (
                f" {exc.error_type}" if exc.error_type else ""
            )
            self._live = None
            self._retry_at = owner.clock() + DENIED_RETRY
            owner.deny(self)
            owner.count_fetch("denied")
            logger.info(
                "caller registry %s: %s; routed on the shared registry",
                self.digest[:8],
                self.denied,
            )
            return
        except Exception as exc:  # a failed fetch leaves the caller on the data it had
            self._failed(exc)
            return
        finally:
            self._flight = None
        self._live = self._with_found(registry)
        self.denied = None
        self.last_error = None
        self._retry_at = float("-inf")
        owner.count_fetch("ok")
        await asyncio.to_thread(owner.write_cache, self.digest, registry)

    async def retrieve(self, model: str, *, max_wait: float | None = None) -> None:
        """Ask the upstream's ``GET /v1/models/{model}`` about a name this caller's
        registry lacks, with the credential the current request lent; what it answers
        (a model the list leaves out, an alias) joins the caller's registry.

        `LiveRouter` calls this before routing such a name (one look-up per name at a
        time; see `LiveRouter.look_up`). Every answer is merged into the caller's
        registry as it is then, whatever other look-ups or fetches finished meanwhile.
        Nothing is asked for a caller whose key can't list models (routed on the
        shared registry).

        Raises:
            RegistryUnavailableError: The caller's own registry is not fetched yet (the
                name is asked again after a short back-off).
        """
        credential = _lent()
        if credential is None or credential.digest(self._owner.key) != self.digest:
            return
        if self.denied is not None:
            return
        if self._live is None:
            raise RegistryUnavailableError("the caller's own registry is not fetched yet")
        fetcher = self._fetcher(credential, self._live)
        del credential
        try:
            info = await fetcher.retrieve(model, max_wait=max_wait)
        finally:
            del fetcher
        if info is not None:
            self._found[model] = info
            if self._live is not None:
                self._live = self._with_found(self._live)

    def _with_found(self, registry: Registry) -> Registry:
        """`registry` plus every model and alias a look-up found that it lacks."""
        aliases = {}
        for name, info in self._found.items():
            if registry.resolve(info.id) is None:
                registry = registry.with_model(info)
            if name != info.id and registry.resolve(name) != info.id:
                aliases[name] = info.id
        return registry.with_aliases(aliases) if aliases else registry

    def save_learned(self, facts: Sequence[LearnedFact]) -> None:
        """Keep what the caller's router learned with its registry and its cache file.

        `LiveRouter` calls this (in a worker thread) after learning from an answer, so a
        restarted proxy, or a sibling worker reading the same cache, starts with it.
        """
        live = self._live
        if live is None:
            return  # routed on the shared registry: nothing of the caller's own to save
        saved = live.with_learned(facts)
        if self._live is live:
            # Runs in a worker thread: a fetch or a look-up that landed meanwhile is
            # newer and stays (the router holds the facts either way).
            self._live = saved
        self._owner.write_cache(self.digest, saved)

    def _failed(self, exc: Exception) -> None:
        self.last_error = str(exc) or type(exc).__name__
        self._retry_at = self._owner.clock() + FAILURE_BACKOFF
        self._owner.count_fetch("error")
        logger.warning("caller registry %s: fetch failed: %s", self.digest[:8], self.last_error)

    def cancel(self) -> None:
        """Stop a fetch under way (the caller was evicted or the proxy is stopping)."""
        if self._flight is not None:
            self._flight.cancel()


def _max_cache_files() -> int:
    raw = os.environ.get(CACHE_FILES_SETTING, "").strip()
    if not raw:
        return DEFAULT_MAX_CACHE_FILES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{CACHE_FILES_SETTING} must be a positive integer, not {raw!r}")
    return value


def prune_cache_dir(directory: Path, max_files: int, *, keep: Path) -> int:
    """Remove the least recently used caller cache files beyond `max_files` (never
    `keep`, the one just written); the modification time is the last use (a read
    touches it). Best effort; returns how many went."""
    files: list[tuple[float, str, Path]] = []
    try:
        with os.scandir(directory) as scan:
            for item in scan:
                if item.name.startswith("registry-") and item.name.endswith(".json"):
                    with contextlib.suppress(OSError):
                        files.append((item.stat().st_mtime, item.name, Path(item.path)))
    except OSError:
        return 0
    if len(files) <= max_files:
        return 0
    files.sort()
    removed = 0
    for _mtime, _name, path in files[: len(files) - max_files]:
        if path != keep:
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


async def _wait_for_flight(flight: asyncio.Task[None], timeout: float) -> None:
    """Wait for a caller's fetch at most `timeout` seconds, whatever becomes of it.

    ``shield``: a timeout leaves the fetch running for the next request. A fetch that
    fails, or is cancelled (its caller was evicted from a full map while this request
    waited), leaves the request routed on the data there is; only a cancellation of the
    waiting request itself goes on up.
    """
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

    callers: int
    """Callers (distinct credentials) held."""
    live: int
    """Callers routed on their own registry."""
    denied: int
    """Callers whose credential can't list models (routed on the shared registry)."""
    failing_and_stale: int
    """Callers whose data is older than the threshold and whose last fetch failed."""
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
        max_cache_files: Cache files kept there, the least recently used going first
            (default: ``CAPROUTE_CALLER_CACHE_MAX_FILES``, else 1,000).
        router_logger: Logger for the callers' routers.
        on_decision: Hook for every decision.
        on_fetch: Called with ``ok`` / ``denied`` / ``error`` after each fetch.
        fetch_transport: The transport Models API calls go through (tests and
            benchmarks pass their mock upstream; it is borrowed, never closed here).
            Default: a connection pool of their own.
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
        self.max_cache_files = max_cache_files or _max_cache_files()
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

    async def for_caller(self, credential: Credential) -> CallerRegistry:
        """The caller's entry, made ready to route (see `CallerRegistry.ready`)."""
        entry = self.lookup(credential)
        if entry.pending:
            await entry.ready(credential)
        return entry

    def lookup(self, credential: Credential) -> CallerRegistry:
        """The caller's entry (made if new, LRU-refreshed); `ready` it if `pending`.

        A key refused within `DENIED_RETRY` seconds, or a new caller arriving while every
        place is held by callers with (or getting) a registry of their own, gets a
        shared stand-in instead (`stand_in`): routed on the shared registry, no fetch.
        """
        digest = credential.digest(self.key)
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
            if candidate.age(self.wall_clock()) is None:
                return candidate
            oldest_live = oldest_live or candidate
        return oldest_live

    def deny(self, entry: CallerRegistry) -> None:
        """Move a caller whose key was refused (401/403) out of the map, into the
        bounded list of refused digests, until `DENIED_RETRY` has passed."""
        if self._entries.get(entry.digest) is entry:
            del self._entries[entry.digest]
        self._denied[entry.digest] = (entry.denied or "refused", entry._retry_at)
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
            entry._retry_at = float("inf")
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
        ages = [age for e in entries if (age := e.age(now)) is not None]
        return CallersHealth(
            callers=len(entries),
            live=len(ages),
            denied=len(self._denied),
            failing_and_stale=sum(
                1 for e in entries if e.last_error is not None and (e.age(now) or 0) > stale_after
            ),
            oldest_age_s=max(ages) if ages else None,
        )

    def count_fetch(self, result: str) -> None:
        """Report one fetch's result (metrics)."""
        self._on_fetch(result)

    # -- the disk cache ----------------------------------------------------------------------

    def _cache_file(self, digest: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / f"registry-{digest[:32]}.json"

    def read_cache(self, digest: str) -> Registry | None:
        """The caller's cached registry, if a readable one exists (runs in a thread)."""
        if self.cache_dir is None:
            return None
        from .._exceptions import SnapshotError
        from .._registry.snapshot import load_snapshot

        path = self._cache_file(digest)
        if not path.is_file():
            return None
        try:
            registry = load_snapshot(path)
        except SnapshotError as exc:
            logger.warning("ignoring a caller registry cache file: %s", exc)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: the modification time orders the LRU pruning
        source = registry.source
        return registry.with_source(
            RegistrySource(
                "cache",
                fetched_at=source.fetched_at,
                location=str(path),
                describes=source.describes,
            )
        )

    def write_cache(self, digest: str, registry: Registry) -> None:
        """Write the caller's registry to its cache file (0600, atomically; runs in a thread)."""
        if self.cache_dir is None:
            return
        from .._exceptions import SnapshotError
        from .._registry.snapshot import save_snapshot

        path = self._cache_file(digest)
        new = not path.exists()
        try:
            # save_snapshot writes a mkstemp file (mode 0600) and renames it into place.
            save_snapshot(registry, path)
        except SnapshotError as exc:
            logger.warning("could not write a caller registry cache file: %s", exc)
            return
        if new:
            prune_cache_dir(self.cache_dir, self.max_cache_files, keep=path)

    async def aclose(self) -> None:
        """Cancel fetches under way and close the Models API client."""
        for entry in self._entries.values():
            entry.cancel()
        if not self._borrowed:
            await self.client.aclose()
