"""caproute: a capability-aware request router for the Anthropic Messages API.

Importing caproute is cheap: the public names below are loaded on first use, so
`import caproute` pulls in neither pydantic, an HTTP library nor the anthropic SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._core.decision import MISSING, Candidate, Change, Decision, RouteResult
    from ._core.features import RequestNeeds, detect
    from ._core.policy import Policy
    from ._core.registry import (
        Capabilities,
        LearnedFact,
        Limits,
        ModelInfo,
        Registry,
        RegistrySource,
        Support,
    )
    from ._core.router import PolicyEngine, route
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
    from ._fetch import AsyncRegistryFetcher, RegistryFetcher
    from ._live import LiveRouter
    from ._middleware import middleware
    from ._policy_io import load_policy
    from ._proxy import ProxyConfig, create_proxy_app, serve_proxy
    from ._snapshot import embedded_registry, load_snapshot, save_snapshot
    from ._transports import AsyncRoutingTransport, RoutingTransport
    from ._wrap import routed_async_http_client, routed_http_client, wrap

# name -> module that defines it (relative to this package).
_EXPORTS: dict[str, str] = {
    "AsyncRegistryFetcher": "._fetch",
    "AsyncRoutingTransport": "._transports",
    "Candidate": "._core.decision",
    "Capabilities": "._core.registry",
    "CaprouteError": "._exceptions",
    "Change": "._core.decision",
    "ConfigError": "._exceptions",
    "Decision": "._core.decision",
    "LearnedFact": "._core.registry",
    "Limits": "._core.registry",
    "LiveRouter": "._live",
    "MISSING": "._core.decision",
    "ModelInfo": "._core.registry",
    "Policy": "._core.policy",
    "PolicyEngine": "._core.router",
    "PolicyError": "._exceptions",
    "ProxyConfig": "._proxy",
    "Registry": "._core.registry",
    "RegistryError": "._exceptions",
    "RegistryFetcher": "._fetch",
    "RegistryHTTPError": "._exceptions",
    "RegistrySource": "._core.registry",
    "RegistryUnavailableError": "._exceptions",
    "RequestNeeds": "._core.features",
    "RouteResult": "._core.decision",
    "RoutingRefused": "._exceptions",
    "RoutingTransport": "._transports",
    "RuntimeFailure": "._exceptions",
    "SnapshotError": "._exceptions",
    "Support": "._core.registry",
    "create_proxy_app": "._proxy",
    "detect": "._core.features",
    "embedded_registry": "._snapshot",
    "load_policy": "._policy_io",
    "load_snapshot": "._snapshot",
    "middleware": "._middleware",
    "route": "._core.router",
    "routed_async_http_client": "._wrap",
    "routed_http_client": "._wrap",
    "save_snapshot": "._snapshot",
    "serve_proxy": "._proxy",
    "wrap": "._wrap",
}

__all__ = [
    "AsyncRegistryFetcher",
    "AsyncRoutingTransport",
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
    "create_proxy_app",
    "detect",
    "embedded_registry",
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
