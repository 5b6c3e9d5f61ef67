"""caproute: a capability-aware request router for the Anthropic Messages API.

Importing caproute is cheap: the public names below are loaded on first use, so
`import caproute` pulls in neither pydantic, an HTTP library nor the anthropic SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._runtime import logs as _logs  # noqa: F401  (every caproute logger masks keys from the start)
from ._version import __version__

if TYPE_CHECKING:
    from ._batch.api import BatchAPIError
    from ._batch.input import BatchInputError
    from ._batch.job import (
        AsyncBatchJob,
        BatchCounts,
        BatchJob,
        BatchProgress,
        BatchResults,
        BatchStatus,
    )
    from ._batch.plan import BatchLimits, BatchPlan, PlanGroup
    from ._batch.store import BatchStateError
    from ._core.decision import MISSING, Candidate, Change, Decision, RouteResult
    from ._core.engine import PolicyEngine, route
    from ._core.features import detect
    from ._core.learned_facts import LearnedFact
    from ._core.model_info import Capabilities, ModelInfo
    from ._core.policy import Policy
    from ._core.policy_fields import CAPABILITY_NAMES
    from ._core.registry import Limits, Registry, Support
    from ._core.registry_source import RegistrySource
    from ._core.request_needs import RequestNeeds
    from ._exceptions import (
        CaprouteError,
        ConfigError,
        PolicyError,
        RegistryError,
        RegistryHTTPError,
        RegistryUnavailableError,
        RoutingRefused,
        RuntimeFailure,
        SnapshotError,
    )
    from ._http.middleware import middleware
    from ._http.transports import (
        AsyncRoutingTransport,
        RoutingTransport,
        async_httpx_transport,
        httpx_transport,
        httpx_transport_classes,
    )
    from ._proxy import ProxyConfig, create_proxy_app, serve_proxy
    from ._registry.fetch import AsyncRegistryFetcher, RegistryFetcher
    from ._registry.policy_files import load_policy
    from ._registry.snapshot import (
        embedded_registry,
        initial_registry,
        load_snapshot,
        save_snapshot,
    )
    from ._runtime.live import LiveRouter
    from ._wrap.client import routed_async_http_client, routed_http_client, wrap

# name -> module that defines it (relative to this package).
_EXPORTS: dict[str, str] = {
    "AsyncBatchJob": "._batch.job",
    "AsyncRegistryFetcher": "._registry.fetch",
    "AsyncRoutingTransport": "._http.transports",
    "BatchAPIError": "._batch.api",
    "BatchCounts": "._batch.job",
    "BatchInputError": "._batch.input",
    "BatchJob": "._batch.job",
    "BatchLimits": "._batch.plan",
    "BatchPlan": "._batch.plan",
    "BatchProgress": "._batch.job",
    "BatchResults": "._batch.job",
    "BatchStateError": "._batch.store",
    "BatchStatus": "._batch.job",
    "CAPABILITY_NAMES": "._core.policy_fields",
    "Candidate": "._core.decision",
    "Capabilities": "._core.model_info",
    "CaprouteError": "._exceptions",
    "Change": "._core.decision",
    "ConfigError": "._exceptions",
    "Decision": "._core.decision",
    "LearnedFact": "._core.learned_facts",
    "Limits": "._core.registry",
    "LiveRouter": "._runtime.live",
    "MISSING": "._core.decision",
    "ModelInfo": "._core.model_info",
    "PlanGroup": "._batch.plan",
    "Policy": "._core.policy",
    "PolicyEngine": "._core.engine",
    "PolicyError": "._exceptions",
    "ProxyConfig": "._proxy",
    "Registry": "._core.registry",
    "RegistryError": "._exceptions",
    "RegistryFetcher": "._registry.fetch",
    "RegistryHTTPError": "._exceptions",
    "RegistrySource": "._core.registry_source",
    "RegistryUnavailableError": "._exceptions",
    "RequestNeeds": "._core.request_needs",
    "RouteResult": "._core.decision",
    "RoutingRefused": "._exceptions",
    "RoutingTransport": "._http.transports",
    "RuntimeFailure": "._exceptions",
    "SnapshotError": "._exceptions",
    "Support": "._core.registry",
    "async_httpx_transport": "._http.transports",
    "create_proxy_app": "._proxy",
    "detect": "._core.features",
    "embedded_registry": "._registry.snapshot",
    "httpx_transport": "._http.transports",
    "httpx_transport_classes": "._http.transports",
    "initial_registry": "._registry.snapshot",
    "load_policy": "._registry.policy_files",
    "load_snapshot": "._registry.snapshot",
    "middleware": "._http.middleware",
    "route": "._core.engine",
    "routed_async_http_client": "._wrap.client",
    "routed_http_client": "._wrap.client",
    "save_snapshot": "._registry.snapshot",
    "serve_proxy": "._proxy",
    "wrap": "._wrap.client",
}

__all__ = [
    "AsyncBatchJob",
    "AsyncRegistryFetcher",
    "AsyncRoutingTransport",
    "BatchAPIError",
    "BatchCounts",
    "BatchInputError",
    "BatchJob",
    "BatchLimits",
    "BatchPlan",
    "BatchProgress",
    "BatchResults",
    "BatchStateError",
    "BatchStatus",
    "CAPABILITY_NAMES",
    "Candidate",
    "Capabilities",
    "CaprouteError",
    "Change",
    "ConfigError",
    "Decision",
    "LearnedFact",
    "Limits",
    "LiveRouter",
    "MISSING",
    "ModelInfo",
    "PlanGroup",
    "Policy",
    "PolicyEngine",
    "PolicyError",
    "ProxyConfig",
    "Registry",
    "RegistryError",
    "RegistryFetcher",
    "RegistryHTTPError",
    "RegistrySource",
    "RegistryUnavailableError",
    "RequestNeeds",
    "RouteResult",
    "RoutingRefused",
    "RoutingTransport",
    "RuntimeFailure",
    "SnapshotError",
    "Support",
    "__version__",
    "async_httpx_transport",
    "create_proxy_app",
    "detect",
    "embedded_registry",
    "httpx_transport",
    "httpx_transport_classes",
    "initial_registry",
    "load_policy",
    "load_snapshot",
    "middleware",
    "route",
    "routed_async_http_client",
    "routed_http_client",
    "save_snapshot",
    "serve_proxy",
    "wrap",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'caproute' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
