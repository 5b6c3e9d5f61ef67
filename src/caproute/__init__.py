"""caproute: a capability-aware request router for the Anthropic Messages API.

Importing caproute is cheap: the public names below are loaded on first use, so
`import caproute` pulls in neither pydantic, an HTTP library nor the anthropic SDK.
"""

from __future__ import annotations

import contextlib
import importlib
import typing
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:
    from ._batch.api import BatchAPIError as BatchAPIError
    from ._batch.input import BatchInputError as BatchInputError
    from ._batch.job import AsyncBatchJob as AsyncBatchJob
    from ._batch.job import BatchCounts as BatchCounts
    from ._batch.job import BatchJob as BatchJob
    from ._batch.job import BatchProgress as BatchProgress
    from ._batch.job import BatchResults as BatchResults
    from ._batch.job import BatchStatus as BatchStatus
    from ._batch.plan import BatchLimits as BatchLimits
    from ._batch.plan import BatchPlan as BatchPlan
    from ._batch.plan import PlanGroup as PlanGroup
    from ._batch.store import BatchStateError as BatchStateError
    from ._core.decision import MISSING as MISSING
    from ._core.decision import Candidate as Candidate
    from ._core.decision import Change as Change
    from ._core.decision import Decision as Decision
    from ._core.decision import RouteResult as RouteResult
    from ._core.engine import PolicyEngine as PolicyEngine
    from ._core.engine import route as route
    from ._core.features import detect as detect
    from ._core.learned_facts import LearnedFact as LearnedFact
    from ._core.model_info import Capabilities as Capabilities
    from ._core.model_info import ModelInfo as ModelInfo
    from ._core.policy import Policy as Policy
    from ._core.policy_fields import CAPABILITY_NAMES as CAPABILITY_NAMES
    from ._core.registry import Limits as Limits
    from ._core.registry import Registry as Registry
    from ._core.registry import Support as Support
    from ._core.registry_source import RegistrySource as RegistrySource
    from ._core.request_needs import RequestNeeds as RequestNeeds
    from ._exceptions import CaprouteError as CaprouteError
    from ._exceptions import ConfigError as ConfigError
    from ._exceptions import PolicyError as PolicyError
    from ._exceptions import RegistryError as RegistryError
    from ._exceptions import RegistryHTTPError as RegistryHTTPError
    from ._exceptions import RegistryUnavailableError as RegistryUnavailableError
    from ._exceptions import RuntimeFailure as RuntimeFailure
    from ._exceptions import SnapshotError as SnapshotError
    from ._http.middleware import middleware as middleware
    from ._http.transports import AsyncRoutingTransport as AsyncRoutingTransport
    from ._http.transports import RoutingTransport as RoutingTransport
    from ._http.transports import async_httpx_transport as async_httpx_transport
    from ._http.transports import httpx_transport as httpx_transport
    from ._http.transports import httpx_transport_classes as httpx_transport_classes
    from ._proxy import ProxyConfig as ProxyConfig
    from ._proxy import create_proxy_app as create_proxy_app
    from ._proxy import serve_proxy as serve_proxy
    from ._registry.fetch import AsyncRegistryFetcher as AsyncRegistryFetcher
    from ._registry.fetch import RegistryFetcher as RegistryFetcher
    from ._registry.policy_files import load_policy as load_policy
    from ._registry.snapshot import embedded_registry as embedded_registry
    from ._registry.snapshot import initial_registry as initial_registry
    from ._registry.snapshot import load_snapshot as load_snapshot
    from ._registry.snapshot import save_snapshot as save_snapshot
    from ._runtime.live import LiveRouter as LiveRouter
    from ._wrap.client import routed_async_http_client as routed_async_http_client
    from ._wrap.client import routed_http_client as routed_http_client
    from ._wrap.client import wrap as wrap


# The public names: name -> the module that holds it (relative to this package). This
# table is the list: `__all__` is built from it and `__getattr__` loads from it; the
# TYPE_CHECKING imports above repeat it for type checkers, and
# tests/test_exported_members.py checks that they match it exactly.
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

__all__ = sorted([*_EXPORTS, "__version__"])


if not TYPE_CHECKING:  # type checkers read the imports above; an unknown name is an error

    def __getattr__(name: str) -> Any:
        module_name = _EXPORTS.get(name)
        if module_name is None:
            raise AttributeError(f"module 'caproute' has no attribute {name!r}")
        module = importlib.import_module(module_name, __name__)
        # Every public name of that module at once (it is loaded now): each public class
        # reports `caproute` as its module, where users find it (reprs, tracebacks, pickles).
        for public, held_in in _EXPORTS.items():
            if held_in == module_name:
                value = getattr(module, public)
                if isinstance(value, type):
                    _as_public(value)
                globals()[public] = value
        return globals()[name]

    def _as_public(cls: type) -> None:
        # Type hints written as strings are read in the namespace of the class's
        # `__module__` (`typing.get_type_hints`; pydantic, for dataclass fields too):
        # resolve them where they were written before the class says `caproute`.
        own = cls.__dict__.get("__annotations__")
        if own:
            with contextlib.suppress(NameError):
                hints = typing.get_type_hints(cls, include_extras=True)
                cls.__annotations__ = {name: hints[name] for name in own}
                for field in cls.__dict__.get("__dataclass_fields__", {}).values():
                    field.type = hints.get(field.name, field.type)
        cls.__module__ = __name__


def __dir__() -> list[str]:
    return __all__
