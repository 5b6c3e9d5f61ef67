"""The proxy's own endpoints, ``/caproute/*``: health, the registry, metrics; and who may read them.

With ``--admin-listen`` they are served on that address only (which serves nothing
else); with ``--admin-token`` they need the token. Where either keeps a caller out,
``/caproute/health`` still answers its status alone (what liveness and readiness
probes read), and the others are refused.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._runtime.live import LiveRouter
from .._version import __version__
from ._asgi import Scope, Send
from ._callers import CallerRegistries
from ._config import ProxyConfig
from ._exchange import LocalAnswer
from ._headers import presented_token, token_matches
from ._metrics import ProxyMetrics
from ._reload import FileWatcher
from ._responses import send_bytes, send_json

PREFIX = "/caproute/"
"""Every path the proxy answers itself starts so."""


class AdminEndpoints:
    """Answers ``/caproute/*`` for one app.

    Args:
        config: The admin address and token, the staleness bound, the mode.
        router: The proxy's own router (its registry is the one reported).
        callers: Pass-through mode: the per-caller registries (their health).
        policy_watcher: Reloads the policy file, if one is configured.
        registry_watcher: Re-reads a shared snapshot file, if one is configured.
        metrics: The counters (``/caproute/metrics``, the in-flight count).
    """

    def __init__(
        self,
        config: ProxyConfig,
        *,
        router: Callable[[], LiveRouter],
        callers: CallerRegistries | None,
        policy_watcher: FileWatcher | None,
        registry_watcher: FileWatcher | None,
        metrics: ProxyMetrics,
    ) -> None:
        self.config = config
        self._router = router
        self.callers = callers
        self.policy_watcher = policy_watcher
        self.registry_watcher = registry_watcher
        self.metrics = metrics
        self._admin_token = config.admin_token.encode() if config.admin_token else None
        admin = config.admin_address
        self.admin_port = admin[1] if admin is not None else None
        """The ``--admin-listen`` port, if any (the two listeners' ports differ,
        `ProxyConfig` checks it): a request that came in on it is an admin request."""
        self._started_at = time.time()
        self._handlers: dict[str, Callable[[Send], Awaitable[None]]] = {
            "/caproute/health": self._health,
            "/caproute/registry": self._registry,
            "/caproute/metrics": self._metrics_page,
        }

    async def answer(self, scope: Scope, send: Send, *, admin: bool) -> None:
        """Answer a ``/caproute/*`` request; who may read what is decided here.

        Args:
            scope: The request.
            send: The ASGI send callable.
            admin: The request came in on the ``--admin-listen`` address.

        Raises:
            LocalAnswer: No such endpoint, not a GET, or the caller may not read it.
        """
        path = scope["path"].rstrip("/")
        handler = self._handlers.get(path)
        if handler is None:
            raise LocalAnswer(404, "not_found_error", f"no such proxy endpoint: {scope['path']}")
        if scope["method"] not in ("GET", "HEAD"):
            raise LocalAnswer(405, "invalid_request_error", "proxy endpoints only answer GET")
        elsewhere = self.admin_port is not None and not admin
        allowed = not elsewhere and (
            self._admin_token is None
            or token_matches(presented_token(scope["headers"]), self._admin_token)
        )
        if allowed:
            await handler(send)
        elif path == "/caproute/health":
            await send_json(send, 200, {"status": self.health()["status"]})
        elif elsewhere:
            raise LocalAnswer(
                404,
                "not_found_error",
                f"{path} is served on the admin address only (--admin-listen)",
            )
        else:
            # Same wording whether the token is missing or wrong: no oracle.
            raise LocalAnswer(401, "authentication_error", "a valid admin token is required")

    async def _health(self, send: Send) -> None:
        await send_json(send, 200, self.health())

    def health(self) -> dict[str, Any]:
        """What ``/caproute/health`` answers: ``ok`` or ``degraded`` with the reasons."""
        registry = self._router().registry
        now = time.time()
        reasons: list[str] = []
        files: dict[str, Any] = {}
        for name, watcher in (("policy", self.policy_watcher), ("snapshot", self.registry_watcher)):
            if watcher is None:
                files[name] = None
                continue
            status = watcher.status
            files[name] = {
                "file": status.file,
                "loaded_at": _iso(status.loaded_at),
                "last_error": status.last_error,
            }
            if status.last_error is not None:
                reasons.append(f"{name} reload rejected, the previous {name} stays in force")
        stale_after = self.config.stale_after
        age = registry.source.age(now)
        # In pass-through mode the proxy's own registry is only the fallback: its age
        # matters when the operator provides it (--snapshot), not for the user cache.
        judged = self.config.own_key or self.config.snapshot is not None
        if judged and age is not None and age > stale_after:
            reasons.append(
                f"registry is {age:.0f}s old (stale after {stale_after:g}s): {registry.source.kind}"
            )
        document: dict[str, Any] = {
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "version": __version__,
            "upstream": self.config.upstream_base,
            "mode": "own-key" if self.config.own_key else "pass-through",
            "uptime_s": round(now - self._started_at, 3),
            "pid": os.getpid(),
            "registry": {
                "source": registry.source.describe(now),
                "age_s": _round(age),
                "models": len(registry),
            },
            **files,
            "in_flight": self.metrics.in_flight,
        }
        if self.callers is not None:
            callers = self.callers.health(stale_after)
            document["callers"] = {
                "registries": callers.callers,
                "max": self.callers.max_registries,
                "live": callers.live,
                "denied": callers.denied,
                "oldest_age_s": _round(callers.oldest_age_s),
            }
            if callers.failing_and_stale:
                reasons.append(
                    f"{callers.failing_and_stale} caller registr"
                    f"{'y is' if callers.failing_and_stale == 1 else 'ies are'} older than "
                    f"{stale_after:g}s and can't be refreshed"
                )
                document["status"] = "degraded"
        return document

    async def _registry(self, send: Send) -> None:
        registry = self._router().registry
        now = time.time()
        await send_json(
            send,
            200,
            {
                "source": registry.source.to_dict(),
                "age_s": _round(registry.source.age(now)),
                "models": [info.to_api_dict() for info in registry.models],
                # What a later list left out (still routed), what is known to be gone,
                # and what the API's refusals taught.
                "unlisted": dict(registry.unlisted),
                "tombstones": dict(registry.tombstones),
                "learned": [fact.to_dict() for fact in registry.learned],
            },
        )

    async def _metrics_page(self, send: Send) -> None:
        if not self.config.metrics:
            raise LocalAnswer(404, "not_found_error", "metrics are turned off (--no-metrics)")
        body = self.metrics.render()
        await send_bytes(send, 200, body, content_type=ProxyMetrics.CONTENT_TYPE.encode())


def _iso(timestamp: float) -> str | None:
    if not timestamp:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
