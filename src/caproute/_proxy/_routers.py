"""A `LiveRouter` and its routing transport over one registry source, with per-route
variants (``caproute-route: NAME``): what the proxy routes a request with."""

from __future__ import annotations

import logging
from typing import Any

import httpx2

from .._core.policy import Policy
from .._http.transports import AsyncRoutingTransport
from .._runtime.live import DecisionHook, LiveRouter

__all__ = ["RouterSet", "forced_policy"]


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
