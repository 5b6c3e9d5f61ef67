"""`ProxyConfig`: everything the proxy is told at start-up, validated once.

The upstream is part of the configuration and nothing else: no request header or
request target can change where the proxy sends traffic (no open relay).

Where the values come from (flags, ``CAPROUTE_*`` variables, a ``--config`` file) is
`caproute._proxy._settings`' business; this class only holds and checks the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from .._exceptions import ConfigError

DEFAULT_UPSTREAM = "https://api.anthropic.com"
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
"""The Messages API's own request size cap (32 MB); bigger bodies are answered 413 locally."""

LogFormat = Literal["text", "json"]
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


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
    workers: int = 1
    """uvicorn worker processes sharing the listening socket."""
    policy: Path | None = None
    """Routing policy file, reloaded when it changes and on SIGHUP."""
    snapshot: Path | None = None
    """Registry snapshot file to route with (replicas can share one)."""
    api_key: str | None = field(default=None, repr=False)
    """The proxy's own upstream key (own-key mode); callers then need `require_token`."""
    require_token: str | None = field(default=None, repr=False)
    """Local token callers must present (as ``x-api-key`` or a bearer token)."""
    # -- per-caller registries (pass-through mode) --
    max_registries: int = 64
    """Callers (distinct credentials) whose registries are kept; least recently used go."""
    registry_ttl: float = 3600.0
    """Seconds a caller's registry counts as fresh; older ones are refreshed on its next request."""
    first_fetch_timeout: float = 5.0
    """How long a new caller's first request waits for its registry (then: the shared one)."""
    registry_cache_dir: Path | None = None
    """Where caller registries are cached on disk, one 0600 file per key hash (off if unset)."""
    stale_after: float = 7200.0
    """Health says ``degraded`` when a registry in use is older than this many seconds."""
    # -- limits --
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_json_values: int = DEFAULT_MAX_BODY_BYTES // 32
    """Most JSON values (objects, arrays, strings, numbers) a routed body may hold."""
    max_header_bytes: int = 64 * 1024
    """Largest request head (request line + headers) accepted, else 431."""
    max_header_count: int = 100
    """Most request headers accepted, else 431."""
    max_connections: int = 1024
    """Open client connections; beyond, new requests get a 503 and the connection closes."""
    max_error_body_bytes: int = 64 * 1024
    """Largest upstream 400/404 body read (decoded) to choose the next routing step."""
    connect_timeout: float = 5.0
    """Seconds to connect to the upstream (502 after)."""
    read_timeout: float = 600.0
    """Seconds between two reads from the upstream (504 before headers); the SDK's default."""
    header_timeout: float = 10.0
    """Seconds a caller has to send a request's head once it starts (408 after)."""
    keepalive_timeout: float = 5.0
    """Seconds an idle connection is kept open (a new one too) before the proxy closes it."""
    body_timeout: float = 60.0
    """Seconds a caller may take to send its whole request body (408 after)."""
    shutdown_timeout: float = 30.0
    """On shutdown, seconds in-flight responses get to finish."""
    poll_interval: float = 1.0
    """Seconds between two checks of the policy (and snapshot) file's modification time."""
    # -- per-request controls --
    allow_bypass: bool = False
    """Honour ``caproute-bypass: 1`` (forward the request unrouted)."""
    allow_route_header: bool = False
    """Honour ``caproute-route: NAME`` (use that policy route)."""
    # -- operations --
    log_level: str = "info"
    log_format: LogFormat = "text"
    metrics: bool = True
    """Serve ``/caproute/metrics``."""
    # -- who may read /caproute/* --
    admin_listen: str | None = None
    """``HOST:PORT`` (``PORT`` alone: on `host`) of a second listener that alone serves
    ``/caproute/*``; the main port then answers only ``/caproute/health``'s status."""
    admin_token: str | None = field(default=None, repr=False)
    """Token ``/caproute/*`` require (as a bearer token or ``x-api-key``); without it,
    ``/caproute/health`` answers its status only and the others 401."""

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
        for name in _POSITIVE_INTS:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)}")
        for name in _POSITIVE_FLOATS:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535, not {self.port}")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format must be text or json, not {self.log_format!r}")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        if self.admin_listen is not None:
            _, admin_port = parse_listen(self.admin_listen, self.host)
            if admin_port == self.port:
                raise ConfigError(
                    f"admin_listen: port {admin_port} is the main port; give the admin "
                    "listener a port of its own"
                )
        if self.admin_token is not None and not self.admin_token.strip():
            raise ConfigError("admin_token must not be empty")

    @property
    def admin_address(self) -> tuple[str, int] | None:
        """Where ``/caproute/*`` is served when `admin_listen` is set: ``(host, port)``."""
        if self.admin_listen is None:
            return None
        return parse_listen(self.admin_listen, self.host)

    @property
    def upstream_base(self) -> str:
        """The upstream URL without a trailing slash (paths are appended to it)."""
        return self.upstream.rstrip("/")

    @property
    def own_key(self) -> bool:
        """Own-key mode (the proxy's key upstream) rather than pass-through."""
        return self.api_key is not None


_POSITIVE_INTS = (
    "workers",
    "max_registries",
    "max_body_bytes",
    "max_json_values",
    "max_header_bytes",
    "max_header_count",
    "max_connections",
    "max_error_body_bytes",
)
_POSITIVE_FLOATS = (
    "registry_ttl",
    "first_fetch_timeout",
    "stale_after",
    "connect_timeout",
    "read_timeout",
    "header_timeout",
    "keepalive_timeout",
    "body_timeout",
    "poll_interval",
)


def parse_listen(value: str, default_host: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``PORT`` (on `default_host`) → ``(host, port)``.

    Raises:
        ConfigError: Not one of those shapes, or a port outside 1..65535 (0, "any free
            port", is not allowed: the proxy tells the listeners apart by port).
    """
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = default_host, text
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or not host:
        host = host or default_host
        if ":" in host:
            raise ConfigError(
                f"admin_listen: write an IPv6 address in brackets, [::1]:9090, not {value!r}"
            )
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(
            f"admin_listen: expected HOST:PORT or PORT with a port in 1..65535, not {value!r}"
        )
    return host, int(port_text)


def _check_upstream(url: str) -> None:
    parts = urlsplit(url)
    # Credentials first: the other messages quote the URL, this one must not.
    if parts.username or parts.password:
        raise ConfigError("upstream URL must not carry credentials; use --api-key-env")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"upstream must be an http(s) URL with a host, not {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"upstream URL must not have a query or fragment: {url!r}")
