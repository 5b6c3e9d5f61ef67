"""`LiveRouter`: the routing core plus the state a running process keeps around it.

The core (`caproute._core.router.route`) is a pure function of a body, a registry and
a policy. A forwarding path needs more: the *current* registry (which a fetcher keeps
fresh in the background), a policy that can be swapped while requests are in flight,
what it learned from the API's answers (retired and overloaded models), and somewhere
to report each decision. `LiveRouter` holds exactly that and is shared by every path:
the transports, the SDK middleware and the proxy. It does no network IO per request:
`route()` reads the registry the fetcher already has (``current()`` never blocks once
any data exists, and the embedded snapshot counts), and only `refresh()` / `arefresh()`
(asked for by the response-driven flow in `caproute._flow`) wait for a fetch.

Thread- and task-safety: every piece of state is replaced, never mutated in place
(frozen sets and dicts swapped by assignment, which is atomic in CPython), so a request
reads a consistent policy and registry without taking a lock.

Decisions are reported to the ``on_decision`` hook(s) and to the ``caproute`` logger
(INFO for reroutes, adjustments and rejections; DEBUG otherwise). Records carry the
decision's one-line summary and the `Decision` itself as ``record.caproute_decision``;
never a key, never message content.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias, cast

from ._core.decision import Decision, RouteResult
from ._core.policy import Policy
from ._core.registry import Registry
from ._core.router import Router
from ._otel import annotate_current_span
from ._types import Clock, Endpoint

if TYPE_CHECKING:
    from ._flow import Router as FlowRouter

__all__ = [
    "AsyncFetcher",
    "DecisionHook",
    "LiveRouter",
    "PolicyInput",
    "RegistryInput",
    "SyncFetcher",
]

DecisionHook: TypeAlias = Callable[[Decision], object]
"""Called with every `Decision` (in the request's thread or task; keep it quick)."""

PolicyInput: TypeAlias = Policy | str | Path | None
"""A `Policy`, the path of a policy file, or `None` for the defaults."""

_LOUD_OUTCOMES: Final = frozenset({"adjusted", "rerouted", "rejected"})
DEFAULT_FALLBACK_STATUSES: Final = frozenset({529})
"""529 ``overloaded_error`` is about the model, not the caller: another model may work."""


class SyncFetcher(Protocol):
    """The shape of `caproute._fetch.RegistryFetcher`."""

    def current(self) -> Registry:
        """The best data held now, never waiting for the network."""
        ...

    def refresh(self) -> Registry:
        """Fetch now (blocking, single-flight)."""
        ...


class AsyncFetcher(Protocol):
    """The shape of `caproute._fetch.AsyncRegistryFetcher`."""

    async def current(self) -> Registry:
        """The best data held now, never waiting for the network."""
        ...

    async def refresh(self) -> Registry:
        """Fetch now (single-flight)."""
        ...


RegistryInput: TypeAlias = "Registry | SyncFetcher | AsyncFetcher | None"
"""A fixed `Registry`, a registry fetcher, or `None` for the best offline snapshot."""

_LOGGER = logging.getLogger("caproute")


class LiveRouter:
    """Route requests against the current registry and policy, and report every decision.

    Args:
        registry: A fixed `Registry`, or a `RegistryFetcher` / `AsyncRegistryFetcher`
            from `caproute._fetch` (read with ``current()``, which never blocks once
            data exists). Default: a `RegistryFetcher` when ``ANTHROPIC_API_KEY`` or
            ``ANTHROPIC_AUTH_TOKEN`` is set (it starts from the offline data and
            refreshes in the background), else `caproute._snapshot.initial_registry()`
            (user cache, else the embedded snapshot) and no live refresh.
        policy: A `Policy`, a policy file path, or `None` for the defaults.
        fetcher: Same as passing a fetcher as `registry` (use one or the other).
        on_decision: A callable, or several, receiving every `Decision`. A hook that
            raises is logged and skipped: reporting never breaks a request.
        logger: Where decision records go (default: ``logging.getLogger("caproute")``).
        max_attempts: Upper bound on upstream sends for one call (response-driven
            re-routing included).
        overload_cooldown_s: How long a model that answered an overload status is
            avoided when another candidate exists.
        min_refresh_interval_s: Capability 400s trigger at most one registry refresh per
            this many seconds, so a caller sending bad requests can't hammer the
            Models API.
        clock: Monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        registry: RegistryInput = None,
        *,
        policy: PolicyInput = None,
        fetcher: SyncFetcher | AsyncFetcher | None = None,
        on_decision: DecisionHook | Sequence[DecisionHook] | None = None,
        logger: logging.Logger | None = None,
        max_attempts: int = 3,
        overload_cooldown_s: float = 30.0,
        min_refresh_interval_s: float = 10.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if registry is not None and fetcher is not None:
            raise TypeError("pass a registry or a fetcher, not both")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        source = registry if registry is not None else fetcher
        self._fixed: Registry | None = None
        self._sync_fetcher: SyncFetcher | None = None
        self._async_fetcher: AsyncFetcher | None = None
        # A fetcher we create (from the environment) is ours to close.
        self._owned: SyncFetcher | None = None
        if source is None:
            source = self._owned = _default_source()
        if source is None:
            self._fixed = _offline_registry()
        elif isinstance(source, Registry):
            self._fixed = source
        elif _is_async_fetcher(source):
            self._async_fetcher = cast("AsyncFetcher", source)
        else:
            self._sync_fetcher = cast("SyncFetcher", source)
        # What an async fetcher last served: sync `route()` can't await, so async
        # drivers call `await acurrent()` first and `route()` reads this.
        self._latest: Registry | None = None
        # The core `Router` for the current (registry, policy) pair: it precomputes
        # per-registry lookups, so it is rebuilt only when either object changes.
        self._core_router: Router | None = None
        self._policy: Policy = _load(policy)
        self._hooks: tuple[DecisionHook, ...] = _hooks(on_decision)
        self._logger = logger or _LOGGER
        self._max_attempts = max_attempts
        self._cooldown = overload_cooldown_s
        self._min_refresh_interval = min_refresh_interval_s
        self._clock = clock
        self._retired: frozenset[str] = frozenset()
        self._unavailable: Mapping[str, float] = {}  # model -> clock() when it may be tried again
        self._last_refresh: float | None = None

    # -- configuration --------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        """The policy in force (`Policy.default()` when none was given)."""
        return self._policy

    def set_policy(self, policy: PolicyInput) -> None:
        """Swap the policy atomically (hot reload); requests in flight keep the old one.

        Raises:
            PolicyError: The new policy is invalid; the old one stays in force.
        """
        self._policy = _load(policy)

    def add_hook(self, hook: DecisionHook) -> None:
        """Also report every decision to `hook`."""
        self._hooks = (*self._hooks, hook)

    @property
    def max_attempts(self) -> int:
        """Upper bound on upstream sends for one call."""
        return self._max_attempts

    # -- the registry ---------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        """The registry requests are routed against right now (never waits).

        With an async fetcher this is what the last `acurrent()` (or `arefresh()`)
        returned, or the offline start-up registry before the first one.
        """
        if self._fixed is not None:
            return self._fixed
        if self._sync_fetcher is not None:
            current = self._sync_fetcher.current()
            if isinstance(current, Registry):
                return current
            self._demote_to_async(current)
        if self._latest is None:
            # Nobody awaited `acurrent()` yet: serve the offline start-up data rather
            # than fail; the first `acurrent()` or `arefresh()` replaces it.
            self._latest = _offline_registry()
        return self._latest

    async def acurrent(self) -> Registry:
        """The current registry, for async drivers: call it before `route()`.

        It awaits an async fetcher's ``current()`` (which never waits for the network
        either) and keeps the answer for `route()`; for other sources it is `registry`.
        """
        if self._async_fetcher is None:
            registry = self.registry  # a sync fetcher's `current()` never waits either
            if self._async_fetcher is None:
                return registry
            # `registry` just found out the fetcher is async after all: await it below.
        self._latest = registry = await self._async_fetcher.current()
        return registry

    def _demote_to_async(self, answer: object) -> None:
        """A fetcher taken for sync returned an awaitable: treat it as async from now on.

        Fetchers are told apart by whether ``current`` is a coroutine function; one
        hiding it (a sync wrapper returning a coroutine) is caught here, the first
        time, instead of routing against a coroutine object.
        """
        if inspect.iscoroutine(answer):
            answer.close()  # never awaited by us: close it rather than leak a warning
        self._async_fetcher = cast("AsyncFetcher", self._sync_fetcher)
        self._sync_fetcher = None
        self._logger.warning(
            "caproute: the registry fetcher's current() returned %s, not a Registry; "
            "treating it as an async fetcher (read with `await router.acurrent()`)",
            type(answer).__name__,
        )

    @property
    def can_refresh(self) -> bool:
        """Whether a refresh could bring new data (a fetcher is configured)."""
        return self._sync_fetcher is not None or self._async_fetcher is not None

    def refresh(self) -> bool:
        """Fetch fresh registry data now (blocking); False if skipped or failed.

        Rate-limited by ``min_refresh_interval_s``; a failure is logged, never raised:
        the request carries on with the data it has. An async fetcher can't be driven
        from sync code: that is logged as a misconfiguration and skipped.
        """
        if self._async_fetcher is not None:
            self._logger.warning(
                "caproute: an async registry fetcher can't refresh from sync code; "
                "use a RegistryFetcher with sync clients"
            )
            return False
        if self._sync_fetcher is None or not self._refresh_due():
            return False
        try:
            self._sync_fetcher.refresh()
        except Exception as exc:  # a failed refresh must not fail the request
            self._logger.warning("caproute: registry refresh failed: %s", exc)
            return False
        return True

    async def arefresh(self) -> bool:
        """`refresh()` for async callers.

        An async fetcher is awaited; a sync one runs in a worker thread so the event
        loop never blocks on the network.
        """
        if not self.can_refresh or not self._refresh_due():
            return False
        try:
            if self._async_fetcher is not None:
                self._latest = await self._async_fetcher.refresh()
            else:
                assert self._sync_fetcher is not None
                # A sync fetcher blocks on the network: run it in a worker thread (anyio,
                # an httpx2 dependency, so this works under asyncio and trio alike;
                # imported here to keep `import caproute` light).
                import anyio.to_thread

                await anyio.to_thread.run_sync(self._sync_fetcher.refresh)
        except Exception as exc:  # a failed refresh must not fail the request
            self._logger.warning("caproute: registry refresh failed: %s", exc)
            return False
        return True

    def _refresh_due(self) -> bool:
        now = self._clock()
        if self._last_refresh is not None and now - self._last_refresh < self._min_refresh_interval:
            return False
        self._last_refresh = now
        return True

    # -- what the API told us -------------------------------------------------------------

    def mark_retired(self, model: str) -> None:
        """Route around `model` from now on (it answered 404 ``not_found_error``)."""
        self._retired = self._retired | {model}

    def mark_unavailable(self, model: str) -> None:
        """Avoid `model` for ``overload_cooldown_s`` when another candidate exists."""
        until = self._clock() + self._cooldown
        self._unavailable = {**self._unavailable, model: until}

    @property
    def retired(self) -> frozenset[str]:
        """Models marked retired by a 404 during this process's life."""
        return self._retired

    def fallback_statuses(self, decision: Decision) -> frozenset[int]:
        """Statuses that send a call to the next candidate.

        Always 529 (``overloaded_error`` is about the model, so another may work), plus
        the ``fallback_on`` of the policy route that made `decision` (e.g. 429, 5xx).
        """
        policy = self._policy
        spec = policy.default_route
        if decision.route is not None:
            spec = next((s for s in policy.route_specs if s.name == decision.route), spec)
        return DEFAULT_FALLBACK_STATUSES | spec.fallback_on

    # -- routing ----------------------------------------------------------------------------

    def route(
        self,
        body: Any,
        *,
        endpoint: Endpoint = "messages",
        api_version: str | None = None,
        betas: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        exclude: Sequence[str] = (),
        attempt: int = 1,
        cause: str | None = None,
        allow_cooling: bool = True,
    ) -> RouteResult:
        """Route one request body and report the decision.

        Args:
            body: The decoded JSON body (never mutated).
            endpoint: ``messages``, ``count_tokens`` or ``batch``.
            api_version: The ``anthropic-version`` header, if any.
            betas: Every ``anthropic-beta`` value.
            headers: Other request headers the core may consult (never logged).
            exclude: Models not to use for this call (on top of the retired ones and,
                while another candidate exists, the overloaded ones).
            attempt: Which send of the call this is (1 for the first); recorded in
                ``Decision.extra`` when above 1, with `cause`.
            cause: Why this call is being routed again.
            allow_cooling: When only overloaded models (in their cool-down) could serve
                the request, use one rather than refuse. The flow turns this off for
                its overload fallback hop: falling back to another overloaded model
                would only add an upstream request to the SDK's own retries.

        Returns:
            The routed body (the same object when unchanged) and its `Decision`.
            A rejection on a hop (``attempt > 1``) is not reported: the flow never
            acts on it, it delivers the upstream answer it already has.
        """
        # Nothing learned yet (the common case): no call to `_avoid`.
        avoid = exclude if not self._retired and not self._unavailable else self._avoid(exclude)
        result = self._core(body, endpoint, api_version, betas, headers, avoid)
        decision = result.decision
        # `_unavailable` first: an attribute read, where `rejected` is a property call.
        if self._unavailable and allow_cooling and decision.rejected:
            warm = self._avoid(exclude, cooling=False)
            if warm != avoid:
                result = self._core(body, endpoint, api_version, betas, headers, warm)
                decision = result.decision
        if attempt > 1:
            if decision.rejected:
                return result
            extra = {**decision.extra, "attempt": attempt, "cause": cause}
            result = RouteResult(result.body, dataclasses.replace(decision, extra=extra))
        self.report(result.decision)
        return result

    def _core(
        self,
        body: Any,
        endpoint: Endpoint,
        api_version: str | None,
        betas: Sequence[str],
        headers: Mapping[str, str] | None,
        exclude: Sequence[str],
    ) -> RouteResult:
        # A fixed registry is read without the `registry` property call.
        registry = self._fixed if self._fixed is not None else self.registry
        policy = self._policy
        router = self._core_router
        if router is None or router.registry is not registry or router.policy is not policy:
            router = self._core_router = Router(registry, policy)
        return router.route(
            body,
            endpoint=endpoint,
            api_version=api_version,
            betas=betas,
            headers=headers,
            exclude=exclude,
            # The clock only feeds the registry's age: no call when the registry has no date.
            now=time.time() if router.dated else None,
        )

    def _avoid(self, exclude: Sequence[str], *, cooling: bool = True) -> Sequence[str]:
        # The common case (nothing learned yet) costs two attribute reads.
        if not self._retired and not self._unavailable:
            return exclude
        avoid = {*exclude, *self._retired}
        if cooling and self._unavailable:
            now = self._clock()
            live = {m: t for m, t in self._unavailable.items() if t > now}
            if len(live) != len(self._unavailable):
                self._unavailable = live
            avoid.update(live)
        return tuple(sorted(avoid))

    def report(self, decision: Decision) -> None:
        """Send `decision` to the hooks and the log (what `route` does for its own)."""
        for hook in self._hooks:
            try:
                hook(decision)
            except Exception:
                self._logger.exception("caproute: on_decision hook %r failed", hook)
        annotate_current_span(decision)  # only when the app already uses OpenTelemetry
        level = logging.INFO if decision.outcome in _LOUD_OUTCOMES else logging.DEBUG
        # isEnabledFor first: the summary is only formatted when someone will read it.
        if self._logger.isEnabledFor(level):
            self._logger.log(
                level, "caproute: %s", decision.summary(), extra={"caproute_decision": decision}
            )

    def close(self) -> None:
        """Release the registry fetcher this router created itself (none otherwise)."""
        owned, self._owned = self._owned, None
        close = getattr(owned, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        source = "fetcher" if self.can_refresh else "fixed registry"
        policy = "defaults" if self._policy is Policy.default() else "custom policy"
        return f"LiveRouter({source}, {policy})"


def _is_async_fetcher(fetcher: object) -> bool:
    """Whether `fetcher.current` must be awaited (never call it to find out)."""
    current = getattr(fetcher, "current", None)
    return inspect.iscoroutinefunction(current) or inspect.iscoroutinefunction(
        getattr(type(fetcher), "current", None)
    )


def _offline_registry() -> Registry:
    from ._snapshot import initial_registry

    return initial_registry()


def _default_source() -> SyncFetcher | None:
    """A live fetcher when credentials are configured in the environment, else `None`."""
    if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
        return None
    from ._fetch import RegistryFetcher

    return RegistryFetcher()


def router_or_live(
    router: FlowRouter | None,
    registry: RegistryInput,
    policy: PolicyInput,
    on_decision: DecisionHook | Sequence[DecisionHook] | None,
) -> FlowRouter:
    """`router` itself (a shared one), or a new `LiveRouter` built from the other arguments.

    Every forwarding entry point (transports, middleware, `wrap`) takes either a shared
    router or the pieces to build one; giving both is a mistake worth an error.

    Raises:
        TypeError: Both `router` and `registry` / `policy` / `on_decision` were given.
    """
    if router is None:
        return LiveRouter(registry, policy=policy, on_decision=on_decision)
    if registry is not None or policy is not None or on_decision is not None:
        raise TypeError("pass either `router` or `registry`/`policy`/`on_decision`, not both")
    return router


def _load(policy: PolicyInput) -> Policy:
    if policy is None:
        return Policy.default()
    if not isinstance(policy, (str, Path)):
        return policy
    from ._policy_io import load_policy

    return load_policy(policy)


def _hooks(on_decision: DecisionHook | Sequence[DecisionHook] | None) -> tuple[DecisionHook, ...]:
    if on_decision is None:
        return ()
    if callable(on_decision):
        return (on_decision,)
    return tuple(on_decision)
