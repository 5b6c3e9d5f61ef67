"""`ProxyConfig`: everything the proxy is told at start-up, validated once.

The upstream is part of the configuration and nothing else: no request header or
request target can change where the proxy sends traffic (no open relay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .._exceptions import ConfigError

DEFAULT_UPSTREAM = "https://api.anthropic.com"
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
"""The Messages API's own request size cap (32 MB); bigger bodies are answered 413 locally."""


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """How `caproute serve` runs.

    The two secrets (`api_key`, `require_token`) are excluded from `repr`, so a
    config can be logged or shown in a traceback safely.
    """

    upstream: str = DEFAULT_UPSTREAM
    """Base URL every request is forwarded to (a path prefix is allowed)."""
    host: str = "127.0.0.1"
    """Interface to bind. Loopback by default; a container needs ``0.0.0.0``."""
    port: int = 8787
    policy: Path | None = None
    """Routing policy file, reloaded when it changes and on SIGHUP."""
    snapshot: Path | None = None
    """Registry snapshot file to route with (replicas can share one)."""
    api_key: str | None = field(default=None, repr=False)
    """The proxy's own upstream key (own-key mode); callers then need `require_token`."""
    require_token: str | None = field(default=None, repr=False)
    """Local token callers must present (as ``x-api-key`` or a bearer token)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    connect_timeout: float = 5.0
    """Seconds to connect to the upstream (502 after)."""
    read_timeout: float = 600.0
    """Seconds between two reads from the upstream (504 before headers); the SDK's default."""
    body_timeout: float = 60.0
    """Seconds a caller may take to send its whole request body (408 after)."""
    shutdown_timeout: float = 30.0
    """On shutdown, seconds in-flight responses get to finish."""
    poll_interval: float = 1.0
    """Seconds between two checks of the policy (and snapshot) file's modification time."""
    log_level: str = "info"

    def __post_init__(self) -> None:
        _check_upstream(self.upstream)
        if self.api_key is not None and not self.require_token:
            raise ConfigError(
                "an own API key (--api-key-env) needs a local token "
                "(--require-token / --require-token-env): otherwise anyone who can "
                "reach the proxy spends the key"
            )
        if self.require_token is not None and self.api_key is None:
            raise ConfigError(
                "--require-token is for own-key mode: give --api-key-env too "
                "(in pass-through mode callers authenticate with their own key)"
            )
        if self.max_body_bytes <= 0:
            raise ConfigError(f"max body bytes must be positive, not {self.max_body_bytes}")
        for name in ("connect_timeout", "read_timeout", "body_timeout", "poll_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535, not {self.port}")

    @property
    def upstream_base(self) -> str:
        """The upstream URL without a trailing slash (paths are appended to it)."""
        return self.upstream.rstrip("/")


def _check_upstream(url: str) -> None:
    parts = urlsplit(url)
    # Credentials first: the other messages quote the URL, this one must not.
    if parts.username or parts.password:
        raise ConfigError("upstream URL must not carry credentials; use --api-key-env")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"upstream must be an http(s) URL with a host, not {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"upstream URL must not have a query or fragment: {url!r}")
