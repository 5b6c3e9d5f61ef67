"""The one interface a live registry source offers `LiveRouter`: `SyncSource` or `AsyncSource`.

`caproute._registry.fetch.RegistryFetcher` is a `SyncSource`;
`caproute._registry.fetch_async.AsyncRegistryFetcher` and the proxy's per-caller
registry are `AsyncSource`s. A source is one kind or the other for its whole life:
`adopt` decides it once, when a router is built (an `async def current` makes it
async), never while routing.

A source built before this interface, with only ``current()`` and ``refresh()`` (a
snapshot file that can be re-read, a test's stub), is accepted: `adopt` gives it the
operations it lacks as ones that do nothing (never live, nothing to wait for, no
look-up, nothing saved).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from .._core.learned_facts import LearnedFact
from .._core.registry import Registry

__all__ = ["AsyncSource", "SyncSource", "Sources", "adopt"]


class SyncSource(Protocol):
    """A registry source for threaded code (the shape of `RegistryFetcher`)."""

    def current(self) -> Registry:
        """The best data held now, never waiting for the network."""
        ...

    def refresh(self) -> Registry:
        """Fetch now (blocking, one fetch for every concurrent caller)."""
        ...

    @property
    def may_go_live(self) -> bool:
        """Whether a first live fetch can still be awaited (the cold-start wait)."""
        ...

    def wait_live(self, timeout: float) -> Registry | None:
        """Live data, waiting at most `timeout` seconds for it; `None` without."""
        ...

    def refresh_in_background(self) -> bool:
        """Start a rate-limited refresh without waiting; True if one started."""
        ...

    def save_learned(self, facts: Sequence[LearnedFact]) -> None:
        """Keep `facts` with the data held (blocking file IO)."""
        ...

    def retrieve(self, model: str, *, max_wait: float | None = None) -> object:
        """Ask ``GET /v1/models/{model}`` about a name, at most `max_wait` seconds."""
        ...


class AsyncSource(Protocol):
    """A registry source for async code (the shape of `AsyncRegistryFetcher`);
    `SyncSource`'s operations, the waiting ones awaitable."""

    async def current(self) -> Registry:
        """The best data held now, never waiting for the network."""
        ...

    async def refresh(self) -> Registry:
        """Fetch now (one fetch for every concurrent caller)."""
        ...

    @property
    def may_go_live(self) -> bool:
        """Whether a first live fetch can still be awaited (the cold-start wait)."""
        ...

    async def wait_live(self, timeout: float) -> Registry | None:
        """Live data, waiting at most `timeout` seconds for it; `None` without."""
        ...

    def refresh_in_background(self) -> bool:
        """Start a rate-limited refresh as a task; True if one started."""
        ...

    def save_learned(self, facts: Sequence[LearnedFact]) -> None:
        """Keep `facts` with the data held (blocking file IO: run in a worker thread)."""
        ...

    async def retrieve(self, model: str, *, max_wait: float | None = None) -> object:
        """Ask ``GET /v1/models/{model}`` about a name, at most `max_wait` seconds."""
        ...


class Sources(NamedTuple):
    """A source as a router holds it: exactly one of `sync` and `asynchronous` is set."""

    sync: SyncSource | None
    asynchronous: AsyncSource | None
    resolves: bool
    """Whether the source can ``retrieve`` (ask about a model name it lacks)."""


_OPERATIONS = ("may_go_live", "wait_live", "refresh_in_background", "save_learned", "retrieve")


def adopt(source: SyncSource | AsyncSource) -> Sources:
    """`source` with its kind fixed: async when its ``current`` is a coroutine function.

    A source lacking some of the interface's operations is wrapped once here so that
    they do nothing; the router never asks a source what it can do while routing.
    """
    current = getattr(source, "current", None)
    asynchronous = inspect.iscoroutinefunction(current) or inspect.iscoroutinefunction(
        getattr(type(source), "current", None)
    )
    resolves = hasattr(source, "retrieve")
    held: Any = source
    if not all(hasattr(source, name) for name in _OPERATIONS):
        held = _Partial(source, asynchronous)
    return Sources(None, held, resolves) if asynchronous else Sources(held, None, resolves)


class _Partial:
    """A source written before the interface: the operations it lacks do nothing."""

    def __init__(self, source: Any, asynchronous: bool) -> None:
        self._source = source
        self._says_live = hasattr(source, "may_go_live")
        self.current = source.current
        self.refresh = source.refresh
        self.wait_live = getattr(source, "wait_live", None) or (
            _no_wait_async if asynchronous else _no_wait
        )
        self.refresh_in_background = getattr(source, "refresh_in_background", _not_started)
        self.save_learned = getattr(source, "save_learned", _not_saved)
        self.retrieve = getattr(source, "retrieve", None) or (
            _not_asked_async if asynchronous else _not_asked
        )

    @property
    def may_go_live(self) -> bool:
        return self._says_live and bool(self._source.may_go_live)


def _no_wait(_timeout: float) -> Registry | None:
    return None


async def _no_wait_async(_timeout: float) -> Registry | None:
    return None


def _not_started() -> bool:
    return False


def _not_saved(_facts: Sequence[LearnedFact]) -> None:
    return None


def _not_asked(_model: str, **_options: object) -> object:
    return None


async def _not_asked_async(_model: str, **_options: object) -> object:
    return None
