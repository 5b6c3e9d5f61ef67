"""What a `LiveRouter` is built from: a policy input, a registry input, and the
defaults when none is given (a fetcher from the environment's credentials, else the
offline start-up registry)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from .._core.policy import Policy
from .._core.registry import Registry
from .._registry.source import AsyncSource, SyncSource

if TYPE_CHECKING:
    from .._registry.fetch import RegistryFetcher

__all__ = ["PolicyInput", "RegistryInput", "default_source", "load_policy", "offline_registry"]

PolicyInput: TypeAlias = Policy | str | Path | None
"""A `Policy`, the path of a policy file, or `None` for the defaults."""

RegistryInput: TypeAlias = Registry | SyncSource | AsyncSource | None
"""A fixed `Registry`, a registry source (a fetcher), or `None` for the best offline
snapshot."""


def load_policy(policy: PolicyInput) -> Policy:
    """The `Policy` a policy input means (a file is read and validated).

    Raises:
        PolicyError: The policy is invalid.
    """
    if policy is None:
        return Policy.default()
    if not isinstance(policy, (str, Path)):
        return policy
    from .._registry.policy_files import load_policy as load_file

    return load_file(policy)


def offline_registry() -> Registry:
    """The start-up registry without a fetch (user cache, else the embedded snapshot)."""
    from .._registry.snapshot import initial_registry

    return initial_registry()


def default_source() -> RegistryFetcher | None:
    """A live fetcher when credentials are configured in the environment, else `None`."""
    if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
        return None
    from .._registry.fetch import RegistryFetcher

    return RegistryFetcher()
