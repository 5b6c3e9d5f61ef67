"""What a `LiveRouter` learns from the API's answers, and its model-name look-ups.

`Memory` is shared by the routers made from one with `LiveRouter.with_policy` (one
source, one memory, several policies): facts learned (`LearnedFact`, with a TTL), the
models in their overload cool-down, the organization-level refusals per credential
digest, and the `LookUps` (``GET /v1/models/{name}``: one at a time per name, rate
limited, backed off after failures).

Values are replaced, never mutated, so a reader on another thread sees either the
old mapping or the new one without a lock; `Memory.version` moves with every change
to the facts. The look-ups alone take a lock (who runs one, who waits for it).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from .._core.flow import AccountRefusal
from .._core.learned_facts import LearnedFact
from .._exceptions import RegistryHTTPError, RegistryUnavailableError

__all__ = [
    "LOOKUP_RETRY_S",
    "MAX_ACCOUNTS",
    "MAX_NAMES_ASKED",
    "RESOLVE_INTERVAL_S",
    "LookUp",
    "LookUps",
    "Memory",
]

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


class Memory:
    """Facts, cool-downs, organization refusals and look-ups of one router family."""

    __slots__ = (
        "accounts",
        "accounts_until",
        "account_expiry",
        "cooling",
        "cooling_until",
        "avoid",
        "digest",
        "facts",
        "last_refresh",
        "lookups",
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
        self.accounts: Mapping[str, Mapping[str, AccountRefusal]] = {}
        """Organization refusals: credential digest -> feature -> refusal."""
        self.account_expiry: Mapping[tuple[str, str], float] = {}
        """(digest, feature) -> wall-clock time the refusal is forgotten."""
        self.accounts_until = float("inf")
        self.digest = functools.partial(credential_digest, secrets.token_bytes(32))
        """The keyed digest callers are told apart by (a random key per memory)."""
        self.lookups = LookUps()

    def prune(self, wall_clock: Callable[[], float], clock: Callable[[], float]) -> None:
        """Forget what expired: facts and organization refusals (`wall_clock`), overload
        cool-downs (`clock`, monotonic); the clocks are read only when something can be."""
        if self.facts and wall_clock() >= self.next_expiry:
            self.prune_facts(wall_clock())
        if self.cooling and clock() >= self.cooling_until:
            self.prune_cooling(clock())
        if self.accounts and wall_clock() >= self.accounts_until:
            self.prune_accounts(wall_clock())

    def refresh_due(self, now: float, interval: float) -> bool:
        """Whether a refresh the router is asked for may go now (then noted as gone):
        one per `interval` seconds, for every router sharing this memory."""
        if self.last_refresh is not None and now - self.last_refresh < interval:
            return False
        self.last_refresh = now
        return True

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


class LookUp:
    """One ``GET /v1/models/{name}`` under way; requests for the name wait for it."""

    __slots__ = ("done", "done_async")

    def __init__(self, done_async: Any = None) -> None:
        self.done = threading.Event()
        self.done_async = done_async
        """An `anyio.Event` when an async task runs the look-up."""


class LookUps:
    """Which model names the Models API may be asked about now, and the look-ups under
    way (one per name: later requests for the name wait for it)."""

    __slots__ = ("asked", "asking", "failures", "lock")

    def __init__(self) -> None:
        self.asked: Mapping[str, float] = {}
        """Model names the Models API was asked about: name -> clock() when it may be
        asked again."""
        self.failures: Mapping[str, int] = {}
        """Look-ups in a row the Models API could not answer, per name."""
        self.asking: dict[str, LookUp] = {}
        """The look-ups under way, per name (guarded by `lock`)."""
        self.lock = threading.Lock()

    def join(
        self, name: str, done_async: Any, now: float, insist: bool = False
    ) -> tuple[LookUp | None, bool]:
        """The look-up of `name` under way (joined: False), or a new one this caller runs
        (True), or `None` when the name may not be asked about now."""
        with self.lock:
            running = self.asking.get(name)
            if running is not None:
                return running, False
            if not self._may_ask(name, now, insist):
                return None, False
            look_up = self.asking[name] = LookUp(done_async)
            return look_up, True

    def end(self, name: str, look_up: LookUp) -> None:
        """The look-up of `name` is over: wake whoever waits for it."""
        with self.lock:
            if self.asking.get(name) is look_up:
                del self.asking[name]
        look_up.done.set()
        if look_up.done_async is not None:
            look_up.done_async.set()

    def answered(self, name: str, now: float) -> None:
        """The Models API answered about `name` (the model, or a 404): not again soon."""
        with self.lock:
            self.asked = {**self.asked, name: now + RESOLVE_INTERVAL_S}
            if name in self.failures:
                self.failures = {n: c for n, c in self.failures.items() if n != name}

    def failed(self, name: str, exc: Exception, now: float) -> None:
        """A look-up of `name` that raised: the Models API failing (5xx, 429, no
        connection) is asked again after a short back-off; anything else (a refused key,
        no credentials) after `RESOLVE_INTERVAL_S`."""
        transient = isinstance(exc, RegistryUnavailableError) or (
            isinstance(exc, RegistryHTTPError)
            and (exc.status_code >= 500 or exc.status_code in (408, 409, 429))
        )
        with self.lock:
            if transient:
                failures = self.failures.get(name, 0) + 1
                self.failures = {**self.failures, name: failures}
                delay = min(LOOKUP_RETRY_S * 2.0 ** (failures - 1), RESOLVE_INTERVAL_S)
            else:
                delay = RESOLVE_INTERVAL_S
            self.asked = {**self.asked, name: now + delay}

    @contextlib.contextmanager
    def leading(
        self, name: str, look_up: LookUp, clock: Callable[[], float], logger: logging.Logger
    ) -> Iterator[None]:
        """Around the look-up of `name` the caller leads: whatever it raises is logged
        and sets when the name is asked again (the request goes on as if never asked);
        at the end, whoever waits for it wakes up."""
        try:
            yield
        except Exception as exc:
            logger.warning("caproute: could not look up model %r: %s", name, exc)
            self.failed(name, exc, clock())
        else:
            self.answered(name, clock())
        finally:
            self.end(name, look_up)

    def _may_ask(self, name: str, now: float, insist: bool) -> bool:
        """Whether the Models API may be asked about `name` now (and note that it is;
        call with the lock held). `insist` skips a failure back-off."""
        asked = self.asked
        if asked.get(name, float("-inf")) > now and not (insist and name in self.failures):
            return False
        if len(asked) >= MAX_NAMES_ASKED:
            asked = {n: t for n, t in asked.items() if t > now}
            # Failure counts go with their names (a flood must not grow them forever).
            self.failures = {n: c for n, c in self.failures.items() if n in asked}
            if len(asked) >= MAX_NAMES_ASKED:
                # A flood of made-up names (through the proxy, say) must not turn into
                # as many Models API calls: the rest go out unrouted, as before lookups.
                return False
        # Until the answer comes: the outcome sets the real interval.
        self.asked = {**asked, name: now + RESOLVE_INTERVAL_S}
        return True


def credential_digest(key: bytes, credential: str) -> str:
    """BLAKE2b in keyed mode (a MAC) of `credential`: tells callers apart without
    keeping what they sent (as the proxy's `_callers` does)."""
    return hashlib.blake2b(credential.encode(), key=key, digest_size=16).hexdigest()
