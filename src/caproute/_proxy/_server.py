"""Run the proxy with uvicorn (the optional extra ``caproute[proxy]``).

uvicorn is imported here and only here, on first use, so the rest of caproute never
needs it. Settings that matter for a proxy:

* ``timeout_graceful_shutdown``: on SIGTERM/SIGINT stop accepting, let responses in
  flight (long SSE streams included) finish for up to this many seconds.
* ``server_header`` / ``date_header`` off: the upstream's own ``date`` and ``server``
  headers are forwarded; the server adding its own would duplicate them.
* ``access_log`` off: the proxy writes its own structured line per request
  (logger ``caproute.access``), which knows the routing outcome.
* ``lifespan="on"``: the policy watcher and SIGHUP handler live in the lifespan.
* ``http`` / ``loop``: httptools and uvloop when installed (the ``proxy`` extra
  installs both where they build), else uvicorn's pure-Python h11 parser and the
  standard asyncio loop. The fast pair cuts uvicorn's own CPU per request by more than
  half (see docs/performance.md, "Proxy"); the fallback behaves the same, only slower.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import socket
from typing import Any

from .._exceptions import ConfigError
from .._redact import protect_uvicorn
from ._config import ProxyConfig
from ._factory import create_proxy_app

INSTALL_HINT = "caproute serve needs uvicorn: pip install 'caproute[proxy]'"


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    return uvicorn


def server_flavour() -> tuple[str, str]:
    """The uvicorn ``http`` and ``loop`` implementations to use: the fastest installed.

    Chosen here rather than with uvicorn's ``"auto"`` so the choice can be logged at
    start-up and tested; the result is the same.
    """
    http = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    return http, loop


def uvicorn_config(config: ProxyConfig, app: Any | None = None, **overrides: Any) -> Any:
    """The ``uvicorn.Config`` for `config`.

    Args:
        config: The proxy configuration.
        app: The ASGI app to serve (default: `create_proxy_app(config)`).
        **overrides: Other ``uvicorn.Config`` arguments (e.g. ``log_config=None`` to
            leave the host application's logging alone, or ``http="h11"``).
    """
    uvicorn = _uvicorn()
    http, loop = server_flavour()
    settings: dict[str, Any] = dict(
        host=config.host,
        port=config.port,
        lifespan="on",
        log_level=config.log_level.lower(),
        access_log=False,
        server_header=False,
        date_header=False,
        proxy_headers=False,  # X-Forwarded-* from callers are not trusted
        timeout_graceful_shutdown=math.ceil(config.shutdown_timeout),
        ws="none",
        http=http,
        loop=loop,
    )
    settings.update(overrides)
    built = uvicorn.Config(app if app is not None else create_proxy_app(config), **settings)
    protect_uvicorn()  # after uvicorn set up its loggers: keys are masked in them too
    return built


def serve_proxy(config: ProxyConfig, *, sock: socket.socket | None = None) -> None:
    """Run the proxy until SIGINT/SIGTERM (blocking).

    Args:
        config: What to serve.
        sock: An already bound listening socket (tests bind port 0); default: bind
            ``config.host:config.port``.

    Raises:
        ConfigError: uvicorn is not installed, or the configuration is invalid.
        PolicyError: The policy file is invalid.
    """
    uvicorn = _uvicorn()
    server = uvicorn.Server(uvicorn_config(config))
    http, loop = server_flavour()
    logging.getLogger("caproute.proxy").info(
        "caproute proxy on http://%s:%s -> %s (%s + %s)",
        config.host,
        config.port,
        config.upstream_base,
        http,
        loop,
    )
    server.run(sockets=[sock] if sock is not None else None)
