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

It hands the flow a `View` of that state (`view()` / `aview()`) and carries out the
flow's state-changing actions (`carry_out()` / `acarry_out()`): wait for the first live
fetch (cold start, bounded), ask the Models API about a model name the registry lacks
(``GET /v1/models/{name}``, bounded, once a minute per name), learn a fact, mark a
model retired, start a cool-down.

Thread- and task-safety: every piece of state is replaced, never mutated in place
(frozen sets and dicts swapped by assignment, which is atomic in CPython), so a request
reads a consistent view without taking a lock.

Decisions are reported to the ``on_decision`` hook(s) and to the ``caproute`` logger
(INFO for reroutes, adjustments and rejections; DEBUG otherwise). Records carry the
decision's one-line summary and the `Decision` itself as ``record.caproute_decision``;
never a key, never message content.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol, TypeAlias, cast

from .._core.decision import Decision, RouteResult
from .._core.engine import PolicyEngine
from .._core.flow import (
    AccountRefusal,
    Learn,
    MarkOverloaded,
    MarkRetired,
    Refresh,
    RememberAccount,
    Resolve,
    View,
    route_call,
)
from .._core.flow import ParsedCall as Call
from .._core.learned_facts import CAPABILITY_FACT_TTL_S, RETIRED_FACT_TTL_S, LearnedFact
from .._core.policy import Policy
from .._core.registry import Registry
from .._core.secrets import decision_has_secret, redact_decision
from .._exceptions import RegistryHTTPError, RegistryUnavailableError
from .._types import Clock, Endpoint
from .otel import annotate_current_span

__all__ = [
    "AsyncFetcher",
    "DecisionHook",
    "LiveRouter",
    "PolicyInput",
    "RegistryInput",
    "SyncFetcher",
    "router_or_live",
]

DecisionHook: TypeAlias = Callable[[Decision], object]
"""Called with every `Decision` (in the request's thread or task; keep it quick)."""

PolicyInput: TypeAlias = Policy | str | Path | None
"""A `Policy`, the path of a policy file, or `None` for the defaults."""

_LOUD_OUTCOMES: Final = frozenset({"adjusted", "rerouted", "rejected"})
DEFAULT_LEARNED_TTL_S: Final = CAPABILITY_FACT_TTL_S
"""How long a capability fact learned from a 400 is kept at most (a change of the live
record for its key ends it sooner; see `caproute._core.registry`)."""
DEFAULT_RETIRED_TTL_S: Final = RETIRED_FACT_TTL_S
"""How long a model that answered 404 is remembered as retired, at most."""
MAX_NAMES_ASKED: Final = 256
"""At most this many distinct model names are asked about per `RESOLVE_INTERVAL_S`."""
MAX_ACCOUNTS: Final = 4096
"""At most this many credentials' organization refusals are remembered (oldest go)."""
RESOLVE_INTERVAL_S: Final = 60.0
"""How long a model name the Models API answered about (the model, or its 404) is not
asked about again: the fetcher keeps what it learns."""
LOOKUP_RETRY_S: Final = 1.0
"""After a look-up the Models API could not answer (5xx, 429, no connection), the name
is asked again on a request after this long, doubling per failure in a row up to
`RESOLVE_INTERVAL_S`: a failing Models API costs one bounded wait per back-off, not
every request one."""


class SyncFetcher(Protocol):
    """The shape of `caproute._registry.fetch.RegistryFetcher` (other sources may have less:
    `wait_live`, `save_learned`, `refresh_in_background` and ``retrieve(name,
    max_wait=seconds)`` are used when present)."""

    def current(self) -> Registry:
        """The best data held now, never waiting for the network."""
        ...

    def refresh(self) -> Registry:
        """Fetch now (blocking, single-flight)."""
        ...


class AsyncFetcher(Protocol):
    """The shape of `caproute._registry.fetch.AsyncRegistryFetcher`."""

    async def current(self) -> Registry:
        """The best data held now, never waiting for the network."""
        ...

    async def refresh(self) -> Registry:
        """Fetch now (single-flight)."""
        ...


RegistryInput: TypeAlias = "Registry | SyncFetcher | AsyncFetcher | None"
"""A fixed `Registry`, a registry fetcher, or `None` for the best offline snapshot."""

_LOGGER = logging.getLogger("caproute")


class _Memory:
    """What a router learns from the API's answers, shared by the routers made from it
    with `LiveRouter.with_policy` (one source, one memory, several policies).

    Values are replaced, never mutated, so a reader on another thread sees either the
    old mapping or the new one; `version` moves with every change to `facts`.
    """

    __slots__ = (
        "accounts",
        "accounts_until",
        "account_expiry",
        "asked",
        "asking",
        "avoid",
        "digest",
        "cooling",
        "cooling_until",
        "facts",
        "failures",
        "last_refresh",
        "lock",
        "next_expiry",
        "version",
    )

    def __init__(self) -> None:
        self.facts: Mapping[tuple[str, str], LearnedFact] = {}
        """Learned facts: (model, key) -> fact."""
        self.next_expiry = float("inf")
        self.version = 0
        self.cooling: Mapping[str, float] = {}
        """Overload cool-downs: model -> clock() when it may be tried again."""
        self.cooling_until = float("inf")
        self.avoid: frozenset[str] = frozenset()
        """The models cooling down (``cooling``'s keys, kept as one frozen set)."""
        self.last_refresh: float | None = None
        self.asked: Mapping[str, float] = {}
        """Model names the Models API was asked about: name -> clock() when it may be
        asked again."""
        self.accounts: Mapping[str, Mapping[str, AccountRefusal]] = {}
        """Organization refusals: credential digest -> feature -> refusal."""
        self.account_expiry: Mapping[tuple[str, str], float] = {}
        """(digest, feature) -> wall-clock time the refusal is forgotten."""
        self.accounts_until = float("inf")
        self.digest = functools.partial(_credential_digest, secrets.token_bytes(32))
        """The keyed digest callers are told apart by (a random key per memory)."""

        self.failures: Mapping[str, int] = {}
        """Look-ups in a row the Models API could not answer, per name."""
        self.asking: dict[str, _LookUp] = {}
        """The look-ups under way, per name (guarded by `lock`): later requests for the
        name wait for that one."""
        self.lock = threading.Lock()

    def remember_account(self, account: str, refusal: AccountRefusal, until: float) -> None:
        """Keep `refusal` for the credential whose digest is `account` until `until`."""
        accounts = dict(self.accounts)
        accounts[account] = {**accounts.pop(account, {}), refusal.feature: refusal}
        expiry = {**self.account_expiry, (account, refusal.feature): until}
        while len(accounts) > MAX_ACCOUNTS:
            oldest = next(iter(accounts))
            del accounts[oldest]
            expiry = {k: t for k, t in expiry.items() if k[0] != oldest}
        self._set_accounts(accounts, expiry)

    def prune_accounts(self, now: float) -> None:
        """Forget the organization refusals expired at `now` (wall clock)."""
        expiry = {k: t for k, t in self.account_expiry.items() if t > now}
        accounts: dict[str, dict[str, AccountRefusal]] = {}
        for account, feature in expiry:
            accounts.setdefault(account, {})[feature] = self.accounts[account][feature]
        self._set_accounts(accounts, expiry)

    def _set_accounts(
        self,
        accounts: Mapping[str, Mapping[str, AccountRefusal]],
        expiry: Mapping[tuple[str, str], float],
    ) -> None:
        self.accounts, self.account_expiry = accounts, expiry
        self.accounts_until = min(expiry.values(), default=float("inf"))

    def add(self, fact: LearnedFact) -> None:
        """Keep `fact` (it replaces any fact on the same model and key)."""
        self._set_facts({**self.facts, (fact.model, fact.key): fact})

    def adopt(self, facts: Iterable[LearnedFact], now: float) -> None:
        """Take in facts a loaded registry carries (a cache file): the newer of two
        facts on the same model and key wins; expired ones are left out."""
        merged = dict(self.facts)
        for fact in facts:
            held = merged.get((fact.model, fact.key))
            if fact.in_force(now) and (held is None or held.learned_at < fact.learned_at):
                merged[(fact.model, fact.key)] = fact
        if merged != self.facts:
            self._set_facts(merged)

    def forget(self, facts: Iterable[LearnedFact]) -> None:
        """Forget `facts` (their record changed: `Registry.ended`)."""
        over = set(facts)
        self._set_facts({k: f for k, f in self.facts.items() if f not in over})

    def prune_facts(self, now: float) -> None:
        """Forget the facts expired at `now` (wall clock)."""
        self._set_facts({k: f for k, f in self.facts.items() if f.in_force(now)})

    def _set_facts(self, facts: Mapping[tuple[str, str], LearnedFact]) -> None:
        self.facts = facts
        self.next_expiry = min((f.expires_at for f in facts.values()), default=float("inf"))
        self.version += 1

    def cool(self, model: str, until: float) -> None:
        """Avoid `model` until `until` (monotonic clock) while another candidate exists."""
        self._set_cooling({**self.cooling, model: until})

    def prune_cooling(self, now: float) -> None:
        """End the cool-downs over at `now` (monotonic clock)."""
        self._set_cooling({m: t for m, t in self.cooling.items() if t > now})

    def _set_cooling(self, cooling: Mapping[str, float]) -> None:
        self.cooling = cooling
        self.cooling_until = min(cooling.values(), default=float("inf"))
        self.avoid = frozenset(cooling)


class _LookUp:
    """One ``GET /v1/models/{name}`` under way; requests for the name wait for it."""

    __slots__ = ("done", "done_async")

    def __init__(self, done_async: Any = None) -> None:
        self.done = threading.Event()
        self.done_async = done_async
        """An `anyio.Event` when an async task runs the look-up."""


class LiveRouter:
    """Route requests against the current registry and policy, learn from the API's
    answers, and report every decision.

    Args:
        registry: A fixed `Registry`, or a `RegistryFetcher` / `AsyncRegistryFetcher`
            from `caproute._registry.fetch` (read with ``current()``, which never blocks once
            data exists). Default: a `RegistryFetcher` when ``ANTHROPIC_API_KEY`` or
            ``ANTHROPIC_AUTH_TOKEN`` is set (it starts from the offline data and
            refreshes in the background), else `caproute._registry.snapshot.initial_registry()`
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
        learned_ttl_s: How long a fact learned from a 400 is kept.
        retired_ttl_s: How long a model that answered 404 is remembered as retired.
        cold_start_wait_s: At most how long a request decided before the first live
            fetch landed waits for it (when live data could change the decision), and
            how long a request naming a model the registry doesn't know waits for the
            fetcher's ``GET /v1/models/{name}``.
        min_refresh_interval_s: `refresh()` fetches at most once per this many seconds.
        clock: Monotonic seconds, injectable for tests.
        wall_clock: Unix time (learned facts are stamped with it), injectable.
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
        # What an async fetcher last served: sync code can't await, so async drivers
        # call `await aview()` first and sync reads fall back to this.
        self._latest: Registry | None = None
        self._can_resolve = callable(getattr(source, "retrieve", None))
        self._policy: Policy = _load(policy)
        self._hooks: tuple[DecisionHook, ...] = _hooks(on_decision)
        self._logger = logger or _LOGGER
        self._max_attempts = max_attempts
        self._cooldown = overload_cooldown_s
        self._learned_ttl = learned_ttl_s
        self._retired_ttl = retired_ttl_s
        self._cold_start_wait = cold_start_wait_s
        self._min_refresh_interval = min_refresh_interval_s
        self._clock = clock
        self._wall = wall_clock
        self._memory = _Memory()
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
        self._policy = _load(policy)

    def with_policy(self, policy: PolicyInput) -> LiveRouter:
        """A router routing with `policy` over the same registry source, sharing this
        one's memory: facts learned, models found retired, overload cool-downs and the
        refresh rate limit are common to both, so what one learns the other never has
        to learn again. Hooks and settings are copied; closing either closes nothing
        the other needs.

        Raises:
            PolicyError: `policy` is invalid.
        """
        twin = copy.copy(self)
        twin._policy = _load(policy)
        twin._owned = None  # the fetcher stays this router's to close
        twin._forget_engine()
        return twin

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
        """The registry requests are routed against right now, learned facts included
        (never waits)."""
        return self.view().engine.registry

    def _source_registry(self) -> Registry:
        """What the source holds now (without our facts), never waiting."""
        if self._fixed is not None:
            return self._fixed
        if self._sync_fetcher is not None:
            current = self._sync_fetcher.current()
            if isinstance(current, Registry):
                return current
            self._demote_to_async(current)
        if self._latest is None:
            # Nobody awaited `aview()` yet: serve the offline start-up data rather than
            # fail; the first `aview()` replaces it.
            self._latest = _offline_registry()
        return self._latest

    def view(self) -> View:
        """The routing state right now, for the flow (`caproute._core.flow`)."""
        return self._view_of(self._source_registry())

    async def aview(self) -> View:
        """`view()` for async drivers: an async fetcher's ``current()`` is awaited (it
        never waits for the network either)."""
        if self._async_fetcher is None:
            registry = self._source_registry()
            if self._async_fetcher is None:
                return self._view_of(registry)
            # `_source_registry` just found out the fetcher is async after all.
        self._latest = await self._async_fetcher.current()
        return self._view_of(self._latest)

    def _view_of(self, source: Registry) -> View:
        memory = self._memory
        if memory.facts and self._wall() >= memory.next_expiry:
            self._prune_facts()
        if memory.cooling and self._clock() >= memory.cooling_until:
            self._prune_cooling()
        engine = self._engine
        if (
            engine is None
            or source is not self._basis_source
            or self._policy is not self._basis_policy
            or memory.version != self._basis_version
        ):
            engine = self._rebuild(source)
        if memory.accounts and self._wall() >= memory.accounts_until:
            memory.prune_accounts(self._wall())
        view = self._view
        if (
            view is None
            or view.engine is not engine
            or view.avoid is not memory.avoid
            or view.accounts is not memory.accounts
        ):
            live = source.source.kind == "live"
            view = self._view = View(
                engine,
                memory.avoid,
                live,
                False,
                None,
                self._max_attempts,
                self._can_resolve,
                memory.accounts,
                memory.digest,
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
                for fact in registry.ended:
                    self._logger.info(
                        "caproute: forgot %s %s = %r (the live record changed)",
                        fact.model,
                        fact.key,
                        fact.value,
                    )
                memory.forget(registry.ended)
                registry = source.with_learned(memory.facts.values())
        engine = self._engine = PolicyEngine(registry, self._policy)
        self._basis_source, self._basis_policy = source, self._policy
        self._basis_version = self._memory.version
        return engine

    def _may_go_live(self) -> bool:
        fetcher: Any = self._sync_fetcher or self._async_fetcher
        return bool(getattr(fetcher, "may_go_live", False))

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
            "treating it as an async fetcher (read with `await router.aview()`)",
            type(answer).__name__,
        )

    @property
    def can_refresh(self) -> bool:
        """Whether a refresh could bring new data (a fetcher is configured)."""
        return self._sync_fetcher is not None or self._async_fetcher is not None

    def refresh(self) -> bool:
        """Fetch fresh registry data now (blocking); False if skipped or failed.

        Rate-limited by ``min_refresh_interval_s``; a failure is logged, never raised.
        An async fetcher can't be driven from sync code: that is logged and skipped.
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
        except Exception as exc:  # a failed refresh must not fail the caller
            self._logger.warning("caproute: registry refresh failed: %s", exc)
            return False
        return True

    async def arefresh(self) -> bool:
        """`refresh()` for async callers: an async fetcher is awaited; a sync one runs
        in a worker thread so the event loop never blocks on the network."""
        if not self.can_refresh or not self._refresh_due():
            return False
        try:
            if self._async_fetcher is not None:
                self._latest = await self._async_fetcher.refresh()
            else:
                assert self._sync_fetcher is not None
                refresh = self._sync_fetcher.refresh
                if inspect.iscoroutinefunction(refresh):  # async `refresh`, sync `current`
                    await refresh()  # (trio refuses to run it in a worker thread)
                else:
                    answer = await _in_thread(refresh)
                    if inspect.isawaitable(answer):  # one that hides its coroutine
                        await answer
        except Exception as exc:  # a failed refresh must not fail the caller
            self._logger.warning("caproute: registry refresh failed: %s", exc)
            return False
        return True

    def _refresh_due(self) -> bool:
        now = self._clock()
        if (
            self._memory.last_refresh is not None
            and now - self._memory.last_refresh < self._min_refresh_interval
        ):
            return False
        self._memory.last_refresh = now
        return True

    # -- carrying out the flow's actions ----------------------------------------------------

    def carry_out(
        self, action: Refresh | Resolve | Learn | RememberAccount | MarkRetired | MarkOverloaded
    ) -> None:
        """Do what a state-changing flow action asks (blocking for `Refresh` and
        `Resolve`, bounded)."""
        if isinstance(action, Refresh):
            wait = getattr(self._sync_fetcher, "wait_live", None)
            if wait is not None:
                wait(self._cold_start_wait)
            return
        if isinstance(action, Resolve):
            deadline = self._clock() + self._cold_start_wait
            for name in action.models:
                self.look_up(name, max_wait=deadline - self._clock(), insist=action.after_404)
            return
        if isinstance(action, RememberAccount):  # nothing about the registry: no refresh
            self._record(action)
            return
        if self._record(action):
            self._save_learned()
        self._refresh_in_background()

    async def acarry_out(
        self, action: Refresh | Resolve | Learn | RememberAccount | MarkRetired | MarkOverloaded
    ) -> None:
        """`carry_out` for async drivers (the cold-start wait and the lookup are awaited;
        a sync fetcher's run in a worker thread)."""
        if isinstance(action, Refresh):
            if self._async_fetcher is not None:
                wait = getattr(self._async_fetcher, "wait_live", None)
                if wait is not None:
                    self._latest = await wait(self._cold_start_wait) or self._latest
            elif (sync_wait := getattr(self._sync_fetcher, "wait_live", None)) is not None:
                await _in_thread(sync_wait, self._cold_start_wait)
            return
        if isinstance(action, Resolve):
            deadline = self._clock() + self._cold_start_wait
            for name in action.models:
                await self._aresolve(name, deadline - self._clock(), action.after_404)
            return
        if isinstance(action, RememberAccount):
            self._record(action)
            return
        if self._record(action):
            save = getattr(self._sync_fetcher or self._async_fetcher, "save_learned", None)
            if save is not None:
                await _in_thread(save, tuple(self._memory.facts.values()))
        self._refresh_in_background()

    def look_up(self, name: str, *, max_wait: float | None = None, insist: bool = False) -> bool:
        """Ask the Models API about a model name the registry lacks (blocking, at most
        `max_wait` seconds, default ``cold_start_wait_s``); True when the registry knows
        the name afterwards.

        One look-up per name at a time: a request for a name being looked up waits
        for that look-up (within `max_wait`) instead of asking again or going out
        unresolved. A name the Models API answered about is not asked again for
        `RESOLVE_INTERVAL_S`; one it could not answer (5xx, no connection) is asked
        again after a short back-off (`LOOKUP_RETRY_S`, doubling), or at once when
        `insist` is set (the API just answered 404 for it); at most `MAX_NAMES_ASKED`
        names a minute.

        What the flow's `Resolve` does; planners that route without the flow (Message
        Batches) call it directly. Needs a sync fetcher that can ``retrieve``.
        """
        if self.registry.resolve(name) is not None:
            return True
        wait = self._cold_start_wait if max_wait is None else max_wait
        retrieve = getattr(self._sync_fetcher, "retrieve", None)
        if retrieve is None or wait <= 0:
            return False
        look_up, leader = self._join_look_up(name, None, insist)
        if look_up is None:
            return self.registry.resolve(name) is not None
        if leader:
            self._run_look_up(name, look_up, lambda: retrieve(name, max_wait=wait))
        else:
            look_up.done.wait(wait)
        return self.registry.resolve(name) is not None

    def _join_look_up(
        self, name: str, done_async: Any, insist: bool = False
    ) -> tuple[_LookUp | None, bool]:
        """The look-up of `name` under way (joined: False), or a new one this caller runs
        (True), or `None` when the name may not be asked about now."""
        memory = self._memory
        with memory.lock:
            running = memory.asking.get(name)
            if running is not None:
                return running, False
            if not self._may_ask(name, insist):
                return None, False
            look_up = memory.asking[name] = _LookUp(done_async)
            return look_up, True

    def _run_look_up(self, name: str, look_up: _LookUp, ask: Callable[[], object]) -> None:
        try:
            ask()
        except Exception as exc:  # the request goes on as if never asked
            self._look_up_failed(name, exc)
        else:
            self._look_up_answered(name)
        finally:
            self._end_look_up(name, look_up)

    def _end_look_up(self, name: str, look_up: _LookUp) -> None:
        memory = self._memory
        with memory.lock:
            if memory.asking.get(name) is look_up:
                del memory.asking[name]
        look_up.done.set()
        if look_up.done_async is not None:
            look_up.done_async.set()

    def _look_up_answered(self, name: str) -> None:
        """The Models API answered about `name` (the model, or a 404): not again soon."""
        memory = self._memory
        with memory.lock:
            memory.asked = {**memory.asked, name: self._clock() + RESOLVE_INTERVAL_S}
            if name in memory.failures:
                memory.failures = {n: c for n, c in memory.failures.items() if n != name}

    def _look_up_failed(self, name: str, exc: Exception) -> None:
        """A look-up of `name` that raised: the Models API failing (5xx, 429, no
        connection) is asked again after a short back-off; anything else (a refused key,
        no credentials) after `RESOLVE_INTERVAL_S`."""
        self._logger.warning("caproute: could not look up model %r: %s", name, exc)
        transient = isinstance(exc, RegistryUnavailableError) or (
            isinstance(exc, RegistryHTTPError)
            and (exc.status_code >= 500 or exc.status_code in (408, 409, 429))
        )
        memory = self._memory
        with memory.lock:
            if transient:
                failures = memory.failures.get(name, 0) + 1
                memory.failures = {**memory.failures, name: failures}
                delay = min(LOOKUP_RETRY_S * 2.0 ** (failures - 1), RESOLVE_INTERVAL_S)
            else:
                delay = RESOLVE_INTERVAL_S
            memory.asked = {**memory.asked, name: self._clock() + delay}

    def _may_ask(self, name: str, insist: bool = False) -> bool:
        """Whether the Models API may be asked about `name` now (and note that it is;
        call with the memory's lock held). `insist` skips a failure back-off."""
        now = self._clock()
        memory = self._memory
        asked = memory.asked
        if asked.get(name, float("-inf")) > now and not (insist and name in memory.failures):
            return False
        if len(asked) >= MAX_NAMES_ASKED:
            asked = {n: t for n, t in asked.items() if t > now}
            # Failure counts go with their names (a flood must not grow them forever).
            memory.failures = {n: c for n, c in memory.failures.items() if n in asked}
            if len(asked) >= MAX_NAMES_ASKED:
                # A flood of made-up names (through the proxy, say) must not turn into
                # as many Models API calls: the rest go out unrouted, as before lookups.
                return False
        # Until the answer comes: the outcome sets the real interval.
        memory.asked = {**asked, name: now + RESOLVE_INTERVAL_S}
        return True

    async def _aresolve(self, name: str, max_wait: float, insist: bool = False) -> None:
        if self._async_fetcher is None:
            if self._sync_fetcher is not None and max_wait > 0:
                # The sync look-up, single-flight across threads, in a worker thread.
                ask = functools.partial(self.look_up, name, max_wait=max_wait, insist=insist)
                await _in_thread(ask)
            return
        retrieve = getattr(self._async_fetcher, "retrieve", None)
        if retrieve is None or max_wait <= 0:
            return
        import anyio  # asyncio and trio alike; an httpx2 dependency

        look_up, leader = self._join_look_up(name, anyio.Event(), insist)
        if look_up is None:
            return
        if not leader:
            if look_up.done_async is not None:
                with anyio.move_on_after(max_wait):
                    await look_up.done_async.wait()
            return
        try:
            await retrieve(name, max_wait=max_wait)
            self._latest = await self._async_fetcher.current()
        except Exception as exc:  # the request goes on as if never asked
            self._look_up_failed(name, exc)
        else:
            self._look_up_answered(name)
        finally:
            self._end_look_up(name, look_up)

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
        if self._memory.facts and self._wall() >= self._memory.next_expiry:
            self._prune_facts()
        return tuple(self._memory.facts.values())

    def _record(self, action: Learn | RememberAccount | MarkRetired | MarkOverloaded) -> bool:
        """Apply a state change; True when a learned fact changed (worth saving)."""
        if isinstance(action, RememberAccount):
            # Per credential and in memory only: never a model fact, never on disk.
            until = self._wall() + self._learned_ttl
            self._memory.remember_account(action.account, action.refusal, until)
            self._logger.info(
                "caproute: the API refused %s for a credential's organization (%s); "
                "refusing such requests from it locally",
                action.refusal.feature,
                action.refusal.error_code,
            )
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

    def _prune_facts(self) -> None:
        self._memory.prune_facts(self._wall())

    def _prune_cooling(self) -> None:
        self._memory.prune_cooling(self._clock())

    def _save_learned(self) -> None:
        save = getattr(self._sync_fetcher or self._async_fetcher, "save_learned", None)
        if save is not None:
            try:
                save(tuple(self._memory.facts.values()))
            except Exception as exc:  # a read-only cache must not fail the request
                self._logger.warning("caproute: could not save learned facts: %s", exc)

    def _refresh_in_background(self) -> None:
        start = getattr(self._sync_fetcher or self._async_fetcher, "refresh_in_background", None)
        if start is not None:
            start()

    @property
    def cooling(self) -> frozenset[str]:
        """Models in their overload cool-down right now."""
        if self._memory.cooling and self._clock() >= self._memory.cooling_until:
            self._prune_cooling()
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
        result = route_call(view, Call(body, endpoint, api_version, tuple(betas), headers))
        self.report(result.decision)
        return result

    def report(self, decision: Decision) -> None:
        """Send `decision` to the hooks and the log (any ``sk-ant-`` token in it masked)."""
        if decision_has_secret(decision):  # a key in a `model` field, say
            decision = redact_decision(decision)
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


async def _in_thread(func: Callable[..., Any], *args: Any) -> Any:
    # anyio (an httpx2 dependency) runs it in a worker thread under asyncio and trio
    # alike; imported here to keep `import caproute` light.
    import anyio.to_thread

    return await anyio.to_thread.run_sync(func, *args)


def _is_async_fetcher(fetcher: object) -> bool:
    """Whether `fetcher.current` must be awaited (never call it to find out)."""
    current = getattr(fetcher, "current", None)
    return inspect.iscoroutinefunction(current) or inspect.iscoroutinefunction(
        getattr(type(fetcher), "current", None)
    )


def _credential_digest(key: bytes, credential: str) -> str:
    """BLAKE2b in keyed mode (a MAC) of `credential`: tells callers apart without
    keeping what they sent (as the proxy's `_callers` does)."""
    return hashlib.blake2b(credential.encode(), key=key, digest_size=16).hexdigest()


def _offline_registry() -> Registry:
    from .._registry.snapshot import initial_registry

    return initial_registry()


def _default_source() -> SyncFetcher | None:
    """A live fetcher when credentials are configured in the environment, else `None`."""
    if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
        return None
    from .._registry.fetch import RegistryFetcher

    return RegistryFetcher()


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


def _load(policy: PolicyInput) -> Policy:
    if policy is None:
        return Policy.default()
    if not isinstance(policy, (str, Path)):
        return policy
    from .._registry.policy_files import load_policy

    return load_policy(policy)


def _hooks(on_decision: DecisionHook | Sequence[DecisionHook] | None) -> tuple[DecisionHook, ...]:
    if on_decision is None:
        return ()
    if callable(on_decision):
        return (on_decision,)
    return tuple(on_decision)
