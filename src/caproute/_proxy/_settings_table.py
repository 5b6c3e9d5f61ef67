"""Every setting of `caproute serve`, once: `SETTINGS` (a declarative table).

The command-line flags, the ``CAPROUTE_*`` environment variables and the config
file's keys are all derived from it (`caproute._proxy._settings`), so the three can't
drift apart (`tests/proxy/test_proxy_service.py` checks the docs list them all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Kind = Literal["str", "int", "port", "float", "bool", "path", "choice"]

ENV_PREFIX = "CAPROUTE_"


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting of `caproute serve`, as a flag, a variable and a file key."""

    name: str
    """The `ProxyConfig` field it sets (or ``api_key_env`` / ``require_token_env`` /
    ``require_token`` / ``config``, resolved into fields)."""
    file_key: tuple[str, ...] | None
    """Where it lives in the config file (`None`: not a file setting)."""
    kind: Kind
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--max-body-bytes``."""
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``CAPROUTE_MAX_BODY_BYTES``."""
        return ENV_PREFIX + self.name.upper()


def _s(
    name: str,
    file_key: str | None,
    kind: Kind,
    help: str,
    metavar: str | None = None,
    choices: tuple[str, ...] = (),
) -> Setting:
    key = tuple(file_key.split(".")) if file_key else None
    return Setting(name, key, kind, help, metavar, choices)


SETTINGS: tuple[Setting, ...] = (
    _s(
        "config",
        None,
        "path",
        "read settings from this YAML file (flags and CAPROUTE_* variables override it)",
        "FILE",
    ),
    _s(
        "upstream",
        "upstream",
        "str",
        "where to forward (default: https://api.anthropic.com)",
        "URL",
    ),
    _s("host", "listen.host", "str", "interface to bind (default: 127.0.0.1)"),
    _s("port", "listen.port", "port", "port (default: 8787)"),
    _s(
        "workers",
        "workers",
        "int",
        "worker processes sharing the port (default: 1); "
        "registries, learned facts and metrics are per worker",
        "N",
    ),
    _s("policy", "policy", "path", "routing policy, reloaded on change and SIGHUP", "FILE"),
    _s(
        "snapshot",
        "snapshot",
        "path",
        "registry snapshot to route with (re-read on change); "
        "in pass-through mode the shared fallback for callers",
        "FILE",
    ),
    _s(
        "api_key_env",
        "credentials.api_key_env",
        "str",
        "own-key mode: use the API key in this "
        "environment variable (callers then need a local token)",
        "NAME",
    ),
    _s(
        "require_token_env",
        "credentials.require_token_env",
        "str",
        "the local token callers must present, from this variable",
        "NAME",
    ),
    _s(
        "require_token",
        None,
        "str",
        "the local token itself (shows in the process list: prefer --require-token-env)",
        "TOKEN",
    ),
    _s(
        "max_registries",
        "registries.max",
        "int",
        "pass-through mode: callers whose registries are kept (default: 64)",
        "N",
    ),
    _s(
        "registry_ttl",
        "registries.ttl",
        "float",
        "seconds a caller's registry stays fresh (default: 3600)",
        "S",
    ),
    _s(
        "first_fetch_timeout",
        "registries.first_fetch_timeout",
        "float",
        "how long a new caller's first request waits for its registry (default: 5)",
        "S",
    ),
    _s(
        "registry_cache_dir",
        "registries.cache_dir",
        "path",
        "cache caller registries here, one 0600 file per key hash (default: memory only)",
        "DIR",
    ),
    _s(
        "stale_after",
        "registries.stale_after",
        "float",
        "health is 'degraded' when a registry in use is older (default: 7200)",
        "S",
    ),
    _s(
        "max_body_bytes",
        "limits.max_body_bytes",
        "int",
        "largest request body, else 413 (default: 33554432, 32 MiB)",
        "N",
    ),
    _s(
        "max_json_values",
        "limits.max_json_values",
        "int",
        "most JSON values a routed body may hold, else 413 (default: max body bytes / 32)",
        "N",
    ),
    _s(
        "max_header_bytes",
        "limits.max_header_bytes",
        "int",
        "largest request head, else 431 (default: 65536)",
        "N",
    ),
    _s(
        "max_header_count",
        "limits.max_header_count",
        "int",
        "most request headers, else 431 (default: 100)",
        "N",
    ),
    _s(
        "max_connections",
        "limits.max_connections",
        "int",
        "open connections per worker, beyond: 503 (default: 1024)",
        "N",
    ),
    _s(
        "max_error_body_bytes",
        "limits.max_error_body_bytes",
        "int",
        "largest upstream "
        "400/404 body read to re-route; larger ones pass through unread (default: 65536)",
        "N",
    ),
    _s(
        "connect_timeout", "timeouts.connect", "float", "upstream connect timeout (default: 5)", "S"
    ),
    _s("read_timeout", "timeouts.read", "float", "upstream read timeout (default: 600)", "S"),
    _s(
        "header_timeout",
        "timeouts.header",
        "float",
        "time a caller has to send a request's headers, else 408 (default: 10)",
        "S",
    ),
    _s(
        "keepalive_timeout",
        "timeouts.keepalive",
        "float",
        "idle connections are closed after this long (default: 5)",
        "S",
    ),
    _s(
        "body_timeout",
        "timeouts.body",
        "float",
        "time a caller has to send its body, else 408 (default: 60)",
        "S",
    ),
    _s(
        "shutdown_timeout",
        "timeouts.shutdown",
        "float",
        "on shutdown, time in-flight responses get to finish (default: 30)",
        "S",
    ),
    _s(
        "poll_interval",
        "poll_interval",
        "float",
        "seconds between checks of the policy and snapshot files (default: 1)",
        "S",
    ),
    _s(
        "allow_bypass",
        "controls.bypass",
        "bool",
        "honour the 'caproute-bypass: 1' request header (default: off)",
    ),
    _s(
        "allow_route_header",
        "controls.route",
        "bool",
        "honour the 'caproute-route: NAME' request header (default: off)",
    ),
    _s(
        "log_level",
        "logging.level",
        "choice",
        "how much to log (default: info)",
        None,
        ("critical", "error", "warning", "info", "debug"),
    ),
    _s(
        "log_format",
        "logging.format",
        "choice",
        "one format for caproute's and uvicorn's lines (default: text)",
        None,
        ("text", "json"),
    ),
    _s("metrics", "metrics.enabled", "bool", "serve /caproute/metrics (default: on)"),
    _s(
        "admin_listen",
        "admin.listen",
        "str",
        "serve /caproute/* on this second address only, HOST:PORT or PORT; the main "
        "port then answers only /caproute/health's status (default: the main port)",
        "HOST:PORT",
    ),
    _s(
        "admin_token_env",
        "admin.token_env",
        "str",
        "/caproute/* need the token in this variable (bearer or x-api-key); without it "
        "health answers its status only, registry and metrics 401 (default: no token)",
        "NAME",
    ),
    _s(
        "admin_token",
        None,
        "str",
        "the admin token itself (shows in the process list: prefer --admin-token-env)",
        "TOKEN",
    ),
)
"""Every setting, in the order of ``caproute serve --help``."""

BY_NAME: Mapping[str, Setting] = {setting.name: setting for setting in SETTINGS}

SECRET_VARIABLES = ("api_key_env", "require_token_env", "admin_token_env")
SECRETS = frozenset({"require_token", "admin_token"})
"""Settings whose value is itself a secret (never shown)."""
NOT_CONFIG_FIELDS = frozenset({"config", *SECRET_VARIABLES, *SECRETS})
EXCLUSIVE = ({"require_token", "require_token_env"}, {"admin_token", "admin_token_env"})
"""Pairs of flags of which one may be given: a secret, or the variable holding it."""
