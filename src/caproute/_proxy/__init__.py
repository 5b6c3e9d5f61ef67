"""`caproute serve`: a local routing proxy any HTTP client can point at.

Any client in any language (curl, the TypeScript SDK, agent CLIs that honour
``ANTHROPIC_BASE_URL``) sends its Anthropic API requests here and gets the same
routing as the Python SDK wrapper. The pieces:

* `_config`: `ProxyConfig`, validated once at start-up; `_settings`: the flags,
  ``CAPROUTE_*`` variables and config file that produce it;
* `_app`: the pure ASGI application (one request: read, route, relay, count);
  `_inbound`: reading and checking a caller's request into the upstream request;
  `_relay`: streaming the answer back, reading its token usage on the way;
  `_admin`: the ``/caproute/*`` endpoints; `_exchange`: one request's record;
* `_callers`: one registry and router per caller credential (pass-through mode);
* `_limits`: the HTTP server's protocol limits (header size and count, header and
  keep-alive timeouts, connection cap), the JSON parse budget and the error-body cap;
* `_headers`: which headers cross, credential handling, per-request controls;
* `_metrics`: Prometheus metrics (prometheus-client); `_logging`: one text or JSON
  format for every log line, and the access line;
* `_reload`: policy / snapshot hot reload; `_signals`: SIGHUP;
* `_factory`: `create_proxy_app(config)`; `_server`: `serve_proxy` (uvicorn, lazily).

Names are imported on first use, so building the command line imports nothing heavy.
See ``docs/proxy.md`` for running it, and several replicas of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .. import _logs  # noqa: F401  (masking on every caproute logger before any record)

if TYPE_CHECKING:
    from ._app import ProxyApp
    from ._config import DEFAULT_MAX_BODY_BYTES, DEFAULT_UPSTREAM, ProxyConfig
    from ._factory import create_proxy_app
    from ._server import serve_proxy

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_UPSTREAM",
    "ProxyApp",
    "ProxyConfig",
    "create_proxy_app",
    "serve_proxy",
]

_HOMES = {
    "DEFAULT_MAX_BODY_BYTES": "._config",
    "DEFAULT_UPSTREAM": "._config",
    "ProxyConfig": "._config",
    "ProxyApp": "._app",
    "create_proxy_app": "._factory",
    "serve_proxy": "._server",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value
