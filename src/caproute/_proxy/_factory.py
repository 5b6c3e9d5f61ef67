"""Assemble a `ProxyApp` from a `ProxyConfig`: registry source, router, transport, watchers.

Where the registry comes from depends on who holds a key:

* **Own-key mode** (``--api-key-env``): a `RegistryFetcher` with the proxy's key
  reads the upstream's ``GET /v1/models`` and refreshes itself (stale-while-
  revalidate, in a worker thread so the event loop never waits). Each replica
  refreshes on its own; ``--snapshot`` is its starting point.
* **Pass-through mode**: the proxy holds no key, so it never calls the Models API
  itself. It routes with ``--snapshot`` (re-read whenever the file changes, so many
  replicas can share one file that a cron job refreshes) or, without one, the user
  cache file / embedded lineup. (In own-key mode the snapshot is only the start.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2

from .._core.registry import Registry
from .._live import LiveRouter
from .._snapshot import load_snapshot
from .._transports import AsyncRoutingTransport
from ._app import ProxyApp
from ._config import ProxyConfig
from ._metrics import ProxyMetrics
from ._reload import FileWatcher


class SnapshotSource:
    """A registry read from a snapshot file and replaced when the file changes.

    It has the shape `LiveRouter` expects of a fetcher: `current()` returns the data
    held (never blocks) and `refresh()` re-reads the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._registry = load_snapshot(path)

    def current(self) -> Registry:
        """The registry in force."""
        return self._registry

    def set(self, registry: Registry) -> None:
        """Put a freshly loaded registry into force."""
        self._registry = registry

    def refresh(self) -> Registry:
        """Re-read the snapshot file (a failure keeps the old data and raises)."""
        self._registry = load_snapshot(self.path)
        return self._registry


def _registry_source(config: ProxyConfig, metrics: ProxyMetrics) -> tuple[Any, FileWatcher | None]:
    snapshot = config.snapshot
    if config.api_key is not None:
        from .._fetch import RegistryFetcher

        fetcher = RegistryFetcher(
            api_key=config.api_key,
            # "" rather than None: never fall back to ANTHROPIC_AUTH_TOKEN from the
            # environment, which would travel to the upstream next to the configured key.
            auth_token="",
            base_url=config.upstream_base,
            snapshot=snapshot,
            # Replicas are stateless: no user cache file; a shared --snapshot is the
            # way to persist registry data across restarts.
            cache_file=False,
        )
        # A plain sync fetcher: `current()` never blocks (a stale registry starts a
        # background thread) and `LiveRouter.arefresh()` runs the blocking `refresh()`
        # in a worker thread, so the event loop never waits for the Models API.
        return fetcher, None
    if snapshot is None:
        return None, None  # LiveRouter's default: user cache file, else embedded lineup
    source = SnapshotSource(snapshot)
    watcher = FileWatcher(
        snapshot,
        what="snapshot",
        load=load_snapshot,
        apply=source.set,
        reloads=metrics.snapshot_reloads,
        interval=config.poll_interval,
    )
    return source, watcher


def create_proxy_app(
    config: ProxyConfig | None = None,
    *,
    inner_transport: httpx2.AsyncBaseTransport | None = None,
) -> ProxyApp:
    """Build the proxy's ASGI application.

    Run it with any ASGI server (`serve_proxy` uses uvicorn), or mount it in tests
    with ``httpx2.ASGITransport``.

    Args:
        config: What to forward where (default: `ProxyConfig()`, the public API).
        inner_transport: The transport doing the network IO under the routing layer
            (default: ``httpx2.AsyncHTTPTransport`` with a generous connection pool).

    Raises:
        PolicyError: The policy file is invalid (the proxy refuses to start with it).
        SnapshotError: The snapshot file cannot be read.
    """
    config = config or ProxyConfig()
    metrics = ProxyMetrics()
    registry, registry_watcher = _registry_source(config, metrics)
    policy_watcher: FileWatcher | None = None
    router = LiveRouter(registry)
    if config.policy is not None:
        from .._policy_io import load_policy

        policy_watcher = FileWatcher(
            config.policy,
            what="policy",
            load=load_policy,
            apply=router.set_policy,
            reloads=metrics.policy_reloads,
            interval=config.poll_interval,
        )
        router.set_policy(policy_watcher.load_initial())
    # The SDK's own pool sizes: a proxy serves many callers' concurrent streams.
    inner = inner_transport or httpx2.AsyncHTTPTransport(
        limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
    )
    app = ProxyApp(
        config,
        router=router,
        transport=AsyncRoutingTransport(inner, router=router),
        policy_watcher=policy_watcher,
        registry_watcher=registry_watcher,
        metrics=metrics,
        on_close=getattr(registry, "close", None),
    )
    return app
