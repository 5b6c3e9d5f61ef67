"""pydantic-ai's ``AnthropicProvider`` and ``AnthropicModel``, through their public API.

``AnthropicProvider(anthropic_client=...)`` takes a client, and ``provider.client``
hands it out; ``AnthropicModel(model_name, provider=..., settings=..., profile=...)``
takes a provider, and ``model.provider`` / ``model_name`` / ``settings`` / ``profile``
read them back. So a routed copy is built from public names only: the same class, a
routed client, the same settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["routed_model", "routed_provider"]


def routed_provider(provider: Any, route_client: Callable[[Any], Any]) -> Any:
    """A provider of the same class around ``route_client(provider.client)``.

    The original provider keeps its client (and owns its HTTP client, if it made
    one); the copy shares that HTTP client's connection pool.
    """
    return type(provider)(anthropic_client=route_client(provider.client))


def routed_model(model: Any, route_client: Callable[[Any], Any]) -> Any:
    """A model of the same class, name and settings, on a routed copy of its provider."""
    routed = routed_provider(model.provider, route_client)
    cls = type(model)
    copy = cls(model.model_name, provider=routed, settings=model.settings)
    # The profile: pass it on only when the caller set one (a copy built without it
    # resolves the same provider default), so the copy compares and prints the same.
    if copy.profile != model.profile:
        profile = model.profile
        copy = cls(model.model_name, provider=routed, settings=model.settings, profile=profile)
    return copy
