"""Assemble a `ProxyApp` from a `ProxyConfig`: registry sources, routers, transports, watchers.

Where registry data comes from depends on who holds a key:

* **Pass-through mode** (the default; callers bring their own keys): each caller is
  routed on the registry its own credential reads from the upstream's
  ``GET /v1/models`` (`caproute._proxy._callers`). The *shared* registry is the
  fallback for callers whose key can't list models, callers without a usable
  credential, and a new caller whose first fetch is slower than
  ``first_fetch_timeout``: ``--snapshot`` (re-read whenever the file changes), else
  the user cache file / embedded lineup. The proxy holds no key of its own and reads
  none from its environment.
* **Own-key mode** (``--api-key-env``): a `RegistryFetcher` with the proxy's key
  reads the upstream's ``GET /v1/models`` and refreshes itself (stale-while-
  revalidate, in a background thread; a response-driven refresh runs in a worker
  thread, so the event loop never waits). ``--snapshot`` is its starting point.

Every router gets an explicit source: `LiveRouter`'s own default (a fetcher built
from ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``) would send a key from the
proxy's environment to another endpoint than the upstream.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx2

from .._core.policy import Policy
from .._core.registry import Registry
from .._registry.snapshot import initial_registry, load_snapshot
from .._runtime.drive import READS_BODY_ON
from ._app import ProxyApp
from ._callers import CallerRegistries, RouterSet
from ._config import ProxyConfig
from ._limits import CappedErrorBodies
from ._logging import router_logger
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
    """The proxy's own registry source, and the snapshot watcher if any."""
    snapshot = config.snapshot
    if config.api_key is not None:
        from .._registry.fetch import RegistryFetcher

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
        # A plain sync fetcher: `LiveRouter` runs its blocking work (a refresh, the
        # cold-start wait, saving learned facts) in a worker thread, off the event loop.
        return fetcher, None
    if snapshot is None:
        # The best offline data (user cache file for this upstream, else the embedded
        # lineup), fixed: never LiveRouter's environment-driven default.
        return initial_registry(base_url=config.upstream_base), None
    source = SnapshotSource(snapshot)
    watcher = FileWatcher(
        snapshot,
        what="snapshot",
        load=load_snapshot,
        apply=source.set,
        on_result=lambda result: metrics.snapshot_reloads.labels(result).inc(),
        interval=config.poll_interval,
    )
    return source, watcher


def _shared_registry(source: Any) -> Any:
    """A callable returning the shared registry in force (for the callers' fallback)."""
    if isinstance(source, Registry):
        return lambda: source
    return source.current


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
            (default: ``httpx2.AsyncHTTPTransport`` with a generous connection pool);
            given, caller registries are read through it too.

    Raises:
        PolicyError: The policy file is invalid (the proxy refuses to start with it).
        SnapshotError: The snapshot file cannot be read.
    """
    config = config or ProxyConfig()
    metrics = ProxyMetrics()
    source, registry_watcher = _registry_source(config, metrics)
    policy = Policy.default()
    policy_watcher: FileWatcher | None = None
    if config.policy is not None:
        from .._registry.policy_files import load_policy

        policy_watcher = FileWatcher(
            config.policy,
            what="policy",
            load=load_policy,
            apply=lambda _policy: None,  # replaced below, once the routers exist
            on_result=lambda result: metrics.policy_reloads.labels(result).inc(),
            interval=config.poll_interval,
        )
        policy = policy_watcher.load_initial()
    # The SDK's own pool sizes: a proxy serves many callers' concurrent streams.
    network = inner_transport or httpx2.AsyncHTTPTransport(
        limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
    )
    inner = CappedErrorBodies(network, limit=config.max_error_body_bytes, statuses=READS_BODY_ON)
    logger = router_logger()
    routes = RouterSet(source, inner=inner, policy=policy, logger=logger, on_decision=_no_hook)
    callers: CallerRegistries | None = None
    if not config.own_key:
        callers = CallerRegistries(
            upstream=config.upstream_base,
            inner=inner,
            shared=_shared_registry(source),
            policy=policy,
            max_registries=config.max_registries,
            ttl=config.registry_ttl,
            first_fetch_timeout=config.first_fetch_timeout,
            cache_dir=config.registry_cache_dir,
            router_logger=logger,
            on_decision=_no_hook,
            on_fetch=lambda result: metrics.registry_fetches.labels(result).inc(),
            fetch_transport=inner_transport,
        )
    if policy_watcher is not None:
        policy_watcher.apply = _policy_applier(routes, callers)
    app = ProxyApp(
        config,
        routes=routes,
        inner=inner,
        callers=callers,
        policy_watcher=policy_watcher,
        registry_watcher=registry_watcher,
        metrics=metrics,
        on_close=getattr(source, "close", None),
    )
    logging.getLogger("caproute.proxy").debug("proxy app built: %r", config)
    return app


def _no_hook(decision: object) -> None:
    """The routers' decision hook: nothing (a decision comes back with its answer, in
    ``response.extensions["caproute_decision"]``)."""


def _policy_applier(routes: RouterSet, callers: CallerRegistries | None) -> Any:
    def apply(policy: Policy) -> None:
        routes.set_policy(policy)
        if callers is not None:
            callers.set_policy(policy)

    return apply
