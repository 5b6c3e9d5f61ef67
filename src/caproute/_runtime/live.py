"""`LiveRouter`: the routing core plus the state a running process keeps around it.

The core is pure: `caproute._core.engine.PolicyEngine` routes a body against one
registry and one policy, and `caproute._core.flow` decides what to do with the API's
answers. A forwarding path needs more, and `LiveRouter` holds exactly that, shared by
every path (the transports, the SDK middleware, the proxy):

* the *current* registry (a fetcher keeps it fresh in the background; ``current()``
  never blocks once any data exists, and the embedded snapshot counts), with the
  facts learned from the API's refusals laid over it (`LearnedFact`, with a TTL) and
  the `PolicyEngine` for it;
* the organization-level refusals remembered per credential (URL sources turned off
  for the organization): keyed by a keyed BLAKE2b digest of the credential under a
  random per-router key, never the credential, kept for ``learned_ttl_s`` and never
  saved to disk or shared with another credential;
* the policy, swappable while requests are in flight;
* the models in their overload cool-down;
* the decision hooks and the ``caproute`` logger.

It hands the flow a `View` of that state (`view()`; `start()` also takes a call's
first step and reports a send) and carries out the flow's state-changing actions
(`carry_out()`): wait for the first live fetch (cold start, bounded), ask the Models
API about a name the registry lacks (bounded, once a minute per name), learn a fact,
mark a model retired, start a cool-down. Every piece of state is replaced, never
mutated in place, so a request reads a consistent view without a lock. Decisions go to
the ``on_decision`` hook(s) and the ``caproute`` logger (`caproute._runtime.report`).
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from .._core.decision import Decision, RouteResult
from .._core.engine import PolicyEngine
from .._core.flow import (
    Forward,
    Learn,
    MarkOverloaded,
    MarkRetired,
    ParsedCall,
    Refresh,
    RememberAccount,
    Resolve,
    Step,
    View,
    first_step,
    route_call,
)
from .._core.learned_facts import CAPABILITY_FACT_TTL_S, RETIRED_FACT_TTL_S, LearnedFact
from .._core.policy import Policy
from .._core.registry import Registry
from .._registry.source import AsyncSource, SyncSource, adopt
from .._types import Clock, Endpoint
from .inputs import PolicyInput, RegistryInput, default_source, load_policy, offline_registry
from .memory import Memory
from .report import DecisionHook, as_hooks, report_decision

if TYPE_CHECKING:
    from .._registry.fetch import RegistryFetcher

__all__ = [
    "DecisionHook",
    "LiveRouter",
    "PolicyInput",
    "RegistryInput",
    "router_or_live",
]

DEFAULT_LEARNED_TTL_S: Final = CAPABILITY_FACT_TTL_S
"""How long a capability fact learned from a 400 is kept at most (a change of the live
record for its key ends it sooner; see `caproute._core.learned_facts`)."""
DEFAULT_RETIRED_TTL_S: Final = RETIRED_FACT_TTL_S
"""How long a model that answered 404 is remembered as retired, at most."""

_LOGGER = logging.getLogger("caproute")


class LiveRouter:
    """Route requests against the current registry and policy, learn from the API's
    answers, and report every decision.

    Args:
        registry: A fixed `Registry`, or a registry source: a `RegistryFetcher`, an
            `AsyncRegistryFetcher` or another `SyncSource` / `AsyncSource`
            (`caproute._registry.source`; read with ``current()``, which never blocks
            once data exists; sync or async is decided here, once). Default: a
            `RegistryFetcher` when ``ANTHROPIC_API_KEY`` or ``ANTHROPIC_AUTH_TOKEN`` is
            set (it starts from the offline data and refreshes in the background), else
            `caproute._registry.snapshot.initial_registry()` (user cache, else the
            embedded snapshot) and no live refresh.
        policy: A `Policy`, a policy file path, or `None` for the defaults.
        fetcher: Same as passing a fetcher as `registry` (use one or the other).
        on_decision: A callable, or several, receiving every `Decision`. A hook that
            raises is logged and skipped: reporting never breaks a request.
        logger: Where decision records go (default: ``logging.getLogger("caproute")``).
        max_attempts: Upper bound on upstream sends for one call (re-routing included).
        overload_cooldown_s: How long a model that answered an overload status is
            avoided when another candidate exists.
        learned_ttl_s: How long a fact learned from a 400 is kept.
        retired_ttl_s: How long a model that answered 404 is remembered as retired.
        cold_start_wait_s: The longest a request waits for the first live fetch (when
            it could change the decision) or for ``GET /v1/models/{name}`` of a name
            the registry doesn't know.
        min_refresh_interval_s: `refresh()` fetches at most once per this many seconds.
        clock: Monotonic seconds, injectable for tests.
        wall_clock: Unix time (learned facts are stamped with it), injectable.
    """

    def __init__(
        self,
        registry: RegistryInput = None,
        *,
        policy: PolicyInput = None,
        fetcher: SyncSource | AsyncSource | None = None,
        on_decision: DecisionHook | Sequence[DecisionHook] | None = None,
        logger: logging.Logger | None = None,
        max_attempts: int = 3,
        overload_cooldown_s: float = 30.0,
        learned_ttl_s: float = DEFAULT_LEARNED_TTL_S,
        retired_ttl_s: float = DEFAULT_RETIRED_TTL_S,
        cold_start_wait_s: float = 5.0,
        min_refresh_interval_s: float = 10.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        if registry is not None and fetcher is not None:
            raise TypeError("pass a registry or a fetcher, not both")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        source = registry if registry is not None else fetcher
        self._fixed: Registry | None = None
        self._sync: SyncSource | None = None  # the source's kind, fixed here: one at most
        self._async: AsyncSource | None = None
        self._can_resolve = False
        self._owned: RegistryFetcher | None = None  # one made from the environment: closed
        if source is None:
            source = self._owned = default_source()
        if source is None:
            self._fixed = offline_registry()
        elif isinstance(source, Registry):
            self._fixed = source
        else:
            self._sync, self._async, self._can_resolve = adopt(source)
        # What an async source last served (sync reads can't await `aview()`).
        self._latest: Registry | None = None
        self._policy: Policy = load_policy(policy)
        self._hooks: tuple[DecisionHook, ...] = as_hooks(on_decision)
        self._logger = logger or _LOGGER
        self._max_attempts = max_attempts
        self._cooldown = overload_cooldown_s
        self._learned_ttl = learned_ttl_s
        self._retired_ttl = retired_ttl_s
        self._cold_start_wait = cold_start_wait_s
        self._min_refresh_interval = min_refresh_interval_s
        self._clock = clock
        self._wall = wall_clock
        self._memory = Memory()
        self._forget_engine()

    def _forget_engine(self) -> None:
        # The engine for (source registry, facts, policy), rebuilt when one changes.
        self._basis_source: Registry | None = None
        self._basis_policy: Policy | None = None
        self._basis_version = -1
        self._engine: PolicyEngine | None = None
        self._view: View | None = None

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
        self._policy = load_policy(policy)

    def with_policy(self, policy: PolicyInput) -> LiveRouter:
        """A router routing with `policy` over the same source, sharing this one's memory
        (facts, retirements, cool-downs, the refresh rate limit); hooks and settings
        copied; closing either closes nothing the other needs.

        Raises:
            PolicyError: `policy` is invalid.
        """
        twin = copy.copy(self)
        twin._policy = load_policy(policy)
        twin._owned = None  # the fetcher stays this router's to close
        twin._forget_engine()
        return twin

    @property
    def max_attempts(self) -> int:
        """Upper bound on upstream sends for one call."""
        return self._max_attempts

    # -- the registry ---------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        """The registry routed against now, learned facts included (never waits)."""
        return self.view().engine.registry

    def _source_registry(self) -> Registry:
        """What the source holds now (without our facts), never waiting."""
        if self._fixed is not None:
            return self._fixed
        if self._sync is not None:
            return self._sync.current()
        if self._latest is None:
            # Nobody awaited `aview()` yet: serve the offline start-up data rather than
            # fail; the first `aview()` replaces it.
            self._latest = offline_registry()
        return self._latest

    def view(self) -> View:
        """The routing state right now, for the flow (`caproute._core.flow`)."""
        return self._view_of(self._source_registry())

    async def aview(self) -> View:
        """`view()` for async drivers: an async source's ``current()`` is awaited (it
        never waits for the network either)."""
        if self._async is None:
            return self._view_of(self._source_registry())
        self._latest = await self._async.current()
        return self._view_of(self._latest)

    def start(self, call: ParsedCall) -> tuple[View, Step]:
        """A driver's first move, in one call: the view, the call's first step on it
        (`first_step`), and a `Forward` already reported."""
        return self._first(self.view(), call)

    async def astart(self, call: ParsedCall) -> tuple[View, Step]:
        """`start()` for async drivers."""
        return self._first(await self.aview(), call)

    def _first(self, view: View, call: ParsedCall) -> tuple[View, Step]:
        step = first_step(view, call)
        if type(step) is Forward:
            report_decision(step.decision, self._hooks, self._logger)
        return view, step

    def _view_of(self, source: Registry) -> View:
        memory = self._memory
        if memory.facts or memory.cooling or memory.accounts:  # else nothing can expire
            memory.prune(self._wall, self._clock)
        engine = self._engine
        if (
            engine is None
            or source is not self._basis_source
            or self._policy is not self._basis_policy
            or memory.version != self._basis_version
        ):
            engine = self._rebuild(source)
        view = self._view
        if (
            view is None
            or view.engine is not engine
            or view.avoid is not memory.avoid
            or view.accounts is not memory.accounts
        ):
            view = self._view = View(
                engine,
                memory.avoid,
                source.source.kind == "live",
                max_sends=self._max_attempts,
                can_resolve=self._can_resolve,
                accounts=memory.accounts,
                digest=memory.digest,
            )
        if not view.live and (can_wait := self._may_go_live()) != view.can_wait:
            view = self._view = view._replace(can_wait=can_wait)
        if engine.dated:
            # The clock only feeds the decision's registry age.
            return view._replace(now=self._wall())
        return view

    def _rebuild(self, source: Registry) -> PolicyEngine:
        memory = self._memory
        if source is not self._basis_source and source.learned:
            memory.adopt(source.learned, self._wall())  # e.g. from the cache file
        registry = source
        if memory.facts or source.learned:
            registry = source.with_learned(memory.facts.values())
            if registry.ended:  # the live record changed since: those facts are over
                for f in registry.ended:
                    info = "caproute: forgot %s %s = %r (the live record changed)"
                    self._logger.info(info, f.model, f.key, f.value)
                memory.forget(registry.ended)
                registry = source.with_learned(memory.facts.values())
        engine = self._engine = PolicyEngine(registry, self._policy)
        self._basis_source, self._basis_policy = source, self._policy
        self._basis_version = self._memory.version
        return engine

    def _may_go_live(self) -> bool:
        source = self._sync or self._async
        return source is not None and source.may_go_live

    @property
    def can_refresh(self) -> bool:
        """Whether a refresh could bring new data (a fetcher is configured)."""
        return self._sync is not None or self._async is not None

    def refresh(self) -> bool:
        """Fetch fresh registry data now (blocking); False if skipped or failed.

        Rate-limited by ``min_refresh_interval_s``; a failure is logged, never raised.
        An async source can't be driven from sync code: that is logged and skipped.
        """
        if self._async is not None:
            self._logger.warning(
                "caproute: an async registry fetcher can't refresh from sync code; "
                "use a RegistryFetcher with sync clients"
            )
            return False
        if self._sync is None or not self._refresh_due():
            return False
        try:
            self._sync.refresh()
        except Exception as exc:  # a failed refresh must not fail the caller
            self._logger.warning("caproute: registry refresh failed: %s", exc)
            return False
        return True

    async def arefresh(self) -> bool:
        """`refresh()` for async callers: an async source is awaited; a sync one runs
        in a worker thread so the event loop never blocks on the network."""
        if not self.can_refresh or not self._refresh_due():
            return False
        try:
            if self._async is not None:
                self._latest = await self._async.refresh()
            elif self._sync is not None:
                await _in_thread(self._sync.refresh)
        except Exception as exc:  # a failed refresh must not fail the caller
            self._logger.warning("caproute: registry refresh failed: %s", exc)
            return False
        return True

    def _refresh_due(self) -> bool:
        return self._memory.refresh_due(self._clock(), self._min_refresh_interval)

    # -- carrying out the flow's actions ----------------------------------------------------

    def carry_out(
        self, action: Refresh | Resolve | Learn | RememberAccount | MarkRetired | MarkOverloaded
    ) -> None:
        """Do what a state-changing flow action asks (blocking for `Refresh` and
        `Resolve`, bounded)."""
        if isinstance(action, Refresh):
            if self._sync is not None:
                self._sync.wait_live(self._cold_start_wait)
            return
        if isinstance(action, Resolve):
            deadline = self._clock() + self._cold_start_wait
            for name in action.models:
                self.look_up(name, max_wait=deadline - self._clock(), insist=action.after_404)
            return
        if self._record(action):
            self._save_learned()
        if not isinstance(action, RememberAccount):  # nothing about the registry
            self._refresh_in_background()

    async def acarry_out(
        self, action: Refresh | Resolve | Learn | RememberAccount | MarkRetired | MarkOverloaded
    ) -> None:
        """`carry_out` for async drivers (the cold-start wait and the lookup are awaited;
        a sync source's run in a worker thread)."""
        if isinstance(action, Refresh):
            if self._async is not None:
                self._latest = await self._async.wait_live(self._cold_start_wait) or self._latest
            elif self._sync is not None:
                await _in_thread(self._sync.wait_live, self._cold_start_wait)
            return
        if isinstance(action, Resolve):
            deadline = self._clock() + self._cold_start_wait
            for name in action.models:
                await self._aresolve(name, deadline - self._clock(), action.after_404)
            return
        if self._record(action):
            await _in_thread(self._save_learned)
        if not isinstance(action, RememberAccount):
            self._refresh_in_background()

    def look_up(self, name: str, *, max_wait: float | None = None, insist: bool = False) -> bool:
        """Ask the Models API about a model name the registry lacks (blocking, at most
        `max_wait` seconds, default ``cold_start_wait_s``); True when the registry knows
        the name afterwards.

        One look-up per name at a time: a request for a name being looked up waits
        for that look-up (within `max_wait`) instead of asking again or going out
        unresolved. A name the Models API answered about is not asked again for
        `RESOLVE_INTERVAL_S` (see `caproute._runtime.memory`); one it could not answer
        (5xx, no connection) is asked again after a short back-off (`LOOKUP_RETRY_S`,
        doubling), or at once when `insist` is set (the API just answered 404 for it);
        at most `MAX_NAMES_ASKED` names a minute.

        What the flow's `Resolve` does; planners that route without the flow (Message
        Batches) call it directly. Needs a sync source that can ``retrieve``.
        """
        if self.registry.resolve(name) is not None:
            return True
        wait = self._cold_start_wait if max_wait is None else max_wait
        if self._sync is None or not self._can_resolve or wait <= 0:
            return False
        look_up, leader = self._memory.lookups.join(name, None, self._clock(), insist)
        if look_up is None:
            return self.registry.resolve(name) is not None
        if leader:
            with self._memory.lookups.leading(name, look_up, self._clock, self._logger):
                self._sync.retrieve(name, max_wait=wait)
        else:
            look_up.done.wait(wait)
        return self.registry.resolve(name) is not None

    async def _aresolve(self, name: str, max_wait: float, insist: bool = False) -> None:
        if not self._can_resolve or max_wait <= 0:
            return
        if self._async is None:
            # The sync look-up, single-flight across threads, in a worker thread.
            await _in_thread(
                functools.partial(self.look_up, name, max_wait=max_wait, insist=insist)
            )
            return
        import anyio  # asyncio and trio alike; an httpx2 dependency

        lookups = self._memory.lookups
        look_up, leader = lookups.join(name, anyio.Event(), self._clock(), insist)
        if look_up is None:
            return
        if leader:
            with lookups.leading(name, look_up, self._clock, self._logger):
                await self._async.retrieve(name, max_wait=max_wait)
                self._latest = await self._async.current()
        elif look_up.done_async is not None:
            with anyio.move_on_after(max_wait):
                await look_up.done_async.wait()

    def learn(self, model: str, key: str, value: bool | int | str, reason: str) -> LearnedFact:
        """Record a fact about `model` by hand (what the flow's `Learn` does).

        `key` is a capability path (value ``False``: unsupported), ``parameters.<name>``
        (``False``: the model refuses that top-level parameter), ``max_tokens`` (the
        limit) or ``lifecycle`` (``"retired"``).
        """
        ttl = self._retired_ttl if key == "lifecycle" else self._learned_ttl
        fact = self._remember(model, key, value, ttl, reason)
        self._save_learned()
        return fact

    @property
    def learned(self) -> tuple[LearnedFact, ...]:
        """The facts learned from the API's answers that are still in force."""
        self._memory.prune(self._wall, self._clock)
        return tuple(self._memory.facts.values())

    def _record(self, action: Learn | RememberAccount | MarkRetired | MarkOverloaded) -> bool:
        """Apply a state change; True when a learned fact changed (worth saving)."""
        if isinstance(action, RememberAccount):
            # Per credential and in memory only: never a model fact, never on disk.
            until = self._wall() + self._learned_ttl
            self._memory.remember_account(action.account, action.refusal, until)
            info = "caproute: the API refused %s for a credential's organization (%s); %s"
            local = "refusing such requests from it locally"
            self._logger.info(info, action.refusal.feature, action.refusal.error_code, local)
            return False
        if isinstance(action, MarkOverloaded):
            self._memory.cool(action.model, self._clock() + self._cooldown)
            return False
        if isinstance(action, MarkRetired):
            self._remember(action.model, "lifecycle", "retired", self._retired_ttl, action.reason)
        else:
            self._remember(action.model, action.key, action.value, self._learned_ttl, action.reason)
        return True

    def _remember(
        self, model: str, key: str, value: bool | int | str, ttl: float, reason: str
    ) -> LearnedFact:
        engine = self._engine
        registry = engine.registry if engine is not None else self._source_registry()
        # Stamped with what the record states for the key now: only a change of that
        # record ends the fact before its TTL does.
        fact = registry.new_fact(model, key, value, reason=reason, now=self._wall(), ttl=ttl)
        self._memory.add(fact)
        self._logger.info("caproute: learned %s %s = %r (%s)", fact.model, key, value, reason)
        return fact

    def _save_learned(self) -> None:
        source = self._sync or self._async
        if source is not None:
            try:
                source.save_learned(tuple(self._memory.facts.values()))
            except Exception as exc:  # a read-only cache must not fail the request
                self._logger.warning("caproute: could not save learned facts: %s", exc)

    def _refresh_in_background(self) -> None:
        source = self._sync or self._async
        if source is not None:
            source.refresh_in_background()

    @property
    def cooling(self) -> frozenset[str]:
        """Models in their overload cool-down right now."""
        self._memory.prune(self._wall, self._clock)
        return self._memory.avoid

    @property
    def retired(self) -> frozenset[str]:
        """Models learned to be retired (they answered 404) and still remembered."""
        return frozenset(
            f.model for f in self.learned if f.key == "lifecycle" and f.value == "retired"
        )

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
    ) -> RouteResult:
        """Route one request body and report the decision (no upstream IO).

        Args:
            body: The decoded JSON body (never mutated).
            endpoint: ``messages``, ``count_tokens`` or ``batch``.
            api_version: The ``anthropic-version`` header, if any.
            betas: Every ``anthropic-beta`` value.
            headers: Other request headers the policy may match on (never logged).
            exclude: Models not to use (on top of those learned retired and, while
                another candidate exists, the overloaded ones).

        Returns:
            The routed body (the same object when unchanged) and its `Decision`.
        """
        view = self.view()
        if exclude:
            view = view._replace(avoid=view.avoid | frozenset(exclude))
        result = route_call(view, ParsedCall(body, endpoint, api_version, tuple(betas), headers))
        self.report(result.decision)
        return result

    def report(self, decision: Decision) -> None:
        """Send `decision` to the hooks and the log (any ``sk-ant-`` token in it masked)."""
        report_decision(decision, self._hooks, self._logger)

    def close(self) -> None:
        """Release the registry fetcher this router created itself (none otherwise)."""
        owned, self._owned = self._owned, None
        if owned is not None:
            owned.close()

    def __repr__(self) -> str:
        source = "fetcher" if self.can_refresh else "fixed registry"
        policy = "defaults" if self._policy is Policy.default() else "custom policy"
        return f"LiveRouter({source}, {policy})"


async def _in_thread(func: Callable[..., Any], *args: Any) -> Any:
    # anyio (an httpx2 dependency) runs it in a worker thread under asyncio and trio
    # alike; imported here to keep `import caproute` light.
    import anyio.to_thread

    return await anyio.to_thread.run_sync(func, *args)


def router_or_live(
    router: LiveRouter | None,
    registry: RegistryInput,
    policy: PolicyInput,
    on_decision: DecisionHook | Sequence[DecisionHook] | None,
) -> LiveRouter:
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
