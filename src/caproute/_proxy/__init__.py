"""`caproute serve`: a local routing proxy any HTTP client can point at.

Any client in any language (curl, the TypeScript SDK, agent CLIs that honour
``ANTHROPIC_BASE_URL``) sends its Anthropic API requests here and gets the same
routing as the Python SDK wrapper. The pieces:

* `_config`: `ProxyConfig`, validated once at start-up;
* `_app`: the pure ASGI application (forwarding, limits, streaming, local endpoints);
* `_headers`: which headers cross, credential handling;
* `_metrics`: Prometheus counters, hand-written exposition;
* `_reload`: policy / snapshot hot reload; `_signals`: SIGHUP;
* `_factory`: `create_proxy_app(config)`; `_server`: `serve_proxy` (uvicorn, lazily).

See ``docs/proxy.md`` for running it, and several replicas of it.
"""

from __future__ import annotations

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
