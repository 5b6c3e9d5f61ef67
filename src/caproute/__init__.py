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
    from ._core.registry import (
        Capabilities,
        Limits,
        ModelInfo,
        Registry,
        RegistrySource,
        Support,
    )
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

# name -> module that defines it (relative to this package).
_EXPORTS: dict[str, str] = {
    "MISSING": "._core.decision",
    "Candidate": "._core.decision",
    "Capabilities": "._core.registry",
    "CaprouteError": "._exceptions",
    "Change": "._core.decision",
    "ConfigError": "._exceptions",
    "Decision": "._core.decision",
    "Limits": "._core.registry",
    "ModelInfo": "._core.registry",
    "PolicyError": "._exceptions",
    "Registry": "._core.registry",
    "RegistryError": "._exceptions",
    "RegistryHTTPError": "._exceptions",
    "RegistrySource": "._core.registry",
    "RegistryUnavailableError": "._exceptions",
    "RouteResult": "._core.decision",
    "RoutingRefused": "._exceptions",
    "RuntimeFailure": "._exceptions",
    "SnapshotError": "._exceptions",
    "Support": "._core.registry",
}

__all__ = [
    "Candidate",
    "Capabilities",
    "CaprouteError",
    "Change",
    "ConfigError",
    "Decision",
    "Limits",
    "MISSING",
    "ModelInfo",
    "PolicyError",
    "Registry",
    "RegistryError",
    "RegistryHTTPError",
    "RegistrySource",
    "RegistryUnavailableError",
    "RouteResult",
    "RoutingRefused",
    "RuntimeFailure",
    "SnapshotError",
    "Support",
    "__version__",
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
