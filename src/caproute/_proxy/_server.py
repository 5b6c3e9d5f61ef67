"""Run the proxy with uvicorn (the optional extra ``caproute[proxy]``).

uvicorn is imported here and only here, on first use, so the rest of caproute never
needs it. Settings that matter for a proxy:

* ``http``: uvicorn's protocols with caproute's limits (`protocol_factory`,
  `caproute._proxy._protocol_limits`): header size / count limits, a header-read
  timeout, an idle timeout that also covers new connections, and a connection cap,
  all answered before the application (and so before authentication) runs.
  httptools when installed (the ``proxy`` extra), else uvicorn's pure-Python h11
  parser; ``loop``: uvloop when installed, else asyncio. The fast pair cuts uvicorn's
  own CPU per request by more than half (see docs/performance.md, "Proxy"); the
  fallback behaves the same, only slower.
* ``timeout_graceful_shutdown``: on SIGTERM/SIGINT stop accepting, let responses in
  flight (long SSE streams included) finish for up to this many seconds.
* ``server_header`` / ``date_header`` off: the upstream's own ``date`` and ``server``
  headers are forwarded; the server adding its own would duplicate them.
* ``access_log`` off: the proxy writes its own line per request (logger
  ``caproute.access``), which knows the routing outcome; ``log_config``: one format
  (`caproute._proxy._logging`) for uvicorn's lines and caproute's.
* ``lifespan="on"``: the policy watcher and SIGHUP handler live in the lifespan.
* ``workers``: more than one runs uvicorn's process supervisor over one listening
  socket; each worker builds its own app (its own registries, learned facts and
  cool-downs), and metrics are summed across workers through a
  ``PROMETHEUS_MULTIPROC_DIR`` made for the run.

The listening socket is bound here, before uvicorn starts, so a busy port is one
clear error (`ConfigError`) instead of uvicorn's log line and exit.

Exit status: 0 after a shutdown asked for with SIGTERM or SIGINT, with one worker as
with several. (A single uvicorn server re-raises the signal once it has shut down, so
the process would die by it, status 143 or 130 in a shell, while uvicorn's
multi-worker supervisor exits 0; orchestrators report a non-zero status as an error,
e.g. Kubernetes' "Error" instead of "Completed".)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import importlib.util
import logging
import logging.config
import math
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .._exceptions import ConfigError
from .._logs import protect_uvicorn
from ._config import ProxyConfig
from ._limits import ProtocolLimits
from ._logging import logging_config

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


@dataclass(frozen=True, slots=True)
class _AppFactory:
    """Builds the app in the process that serves it (picklable, for worker processes)."""

    config: ProxyConfig

    def __call__(self) -> Any:
        from ._factory import create_proxy_app

        return create_proxy_app(self.config)


def protocol_limits(config: ProxyConfig) -> ProtocolLimits:
    """The limits the HTTP protocol classes enforce, from `config`."""
    return ProtocolLimits(
        max_header_bytes=config.max_header_bytes,
        max_header_count=config.max_header_count,
        header_timeout=config.header_timeout,
        max_connections=config.max_connections,
    )


def protocol_factory(http: str, limits: ProtocolLimits) -> Callable[..., asyncio.Protocol]:
    """The limited uvicorn protocol for ``"httptools"`` or ``"h11"``, bound to `limits`.

    What uvicorn's ``http`` setting takes: a callable making a protocol from uvicorn's
    arguments. A ``functools.partial`` of a module-level class pickles, so worker
    processes (``--workers``) get the limits with it. The httptools class lives in its
    own module, imported only when chosen, so a server on h11 never loads the
    httptools parser.
    """
    cls: Callable[..., asyncio.Protocol]
    if http == "httptools":
        from ._protocol_httptools import LimitedHttpTools as cls
    else:
        from ._protocol_h11 import LimitedH11 as cls
    return functools.partial(cls, limits=limits)


def uvicorn_config(config: ProxyConfig, app: Any | None = None, **overrides: Any) -> Any:
    """The ``uvicorn.Config`` for `config`.

    Args:
        config: The proxy configuration.
        app: The ASGI app to serve (default: `create_proxy_app(config)`, built in each
            worker process).
        **overrides: Other ``uvicorn.Config`` arguments (e.g. ``log_config=None`` to
            leave the host application's logging alone, or ``http="h11"``).
    """
    uvicorn = _uvicorn()
    http, loop = server_flavour()
    http = overrides.pop("http", http)
    settings: dict[str, Any] = dict(
        host=config.host,
        port=config.port,
        lifespan="on",
        log_level=config.log_level.lower(),
        log_config=logging_config(config.log_level, config.log_format),
        access_log=False,
        server_header=False,
        date_header=False,
        proxy_headers=False,  # X-Forwarded-* from callers are not trusted
        timeout_graceful_shutdown=math.ceil(config.shutdown_timeout),
        timeout_keep_alive=config.keepalive_timeout,
        h11_max_incomplete_event_size=config.max_header_bytes,
        ws="none",
        http=protocol_factory(http, protocol_limits(config)) if isinstance(http, str) else http,
        loop=loop,
        workers=config.workers,
    )
    settings.update(overrides)
    target = app if app is not None else _AppFactory(config)
    uvicorn_settings = uvicorn.Config(target, factory=app is None, **settings)
    protect_uvicorn()  # keys masked in uvicorn's records too (workers: see `_logging`)
    return uvicorn_settings


BUSY_HINT = "another caproute serve? pick another --port"


def listen(host: str, port: int, *, hint: str = BUSY_HINT) -> socket.socket:
    """A listening socket on `host`:`port`.

    Args:
        host: The interface.
        port: The port.
        hint: What to suggest when the address is in use.

    Raises:
        ConfigError: The address is in use or can't be bound (one line, no traceback).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise bind_error(host, port, exc, hint=hint) from None
    sock.set_inheritable(True)
    return sock


def bind_error(host: str, port: int, exc: OSError, *, hint: str) -> ConfigError:
    """The one-line error for a socket that could not be bound to `host`:`port`.

    Shared by every command that listens (``caproute serve``, ``caproute fake``), so a
    busy port reads the same everywhere.
    """
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(
            f"cannot listen on {host}:{port}: the address is already in use ({hint})"
        )
    return ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def serve_proxy(config: ProxyConfig, *, sock: socket.socket | None = None) -> None:
    """Run the proxy until SIGINT/SIGTERM (blocking).

    Args:
        config: What to serve.
        sock: An already bound listening socket (tests bind port 0); default: bind
            ``config.host:config.port``.

    Raises:
        ConfigError: uvicorn is not installed, the port is busy, or the configuration
            is invalid.
        PolicyError: The policy file is invalid.
    """
    uvicorn = _uvicorn()
    if config.workers == 1:
        # Build the app now: a bad policy or snapshot stops the command before it binds.
        from ._factory import create_proxy_app

        settings = uvicorn_config(config, create_proxy_app(config))
    else:
        _check_files(config)
        settings = uvicorn_config(config)
    logging.config.dictConfig(settings.log_config)
    sock = sock or listen(config.host, config.port)
    sockets = [sock]
    admin = config.admin_address
    if admin is not None:
        try:
            sockets.append(listen(*admin, hint="pick another --admin-listen port"))
        except ConfigError:
            sock.close()
            raise
    http, loop = server_flavour()
    logging.getLogger("caproute.proxy").info(
        "caproute proxy on http://%s:%s -> %s (%s + %s, %s mode, %d worker%s)",
        config.host,
        sock.getsockname()[1],
        config.upstream_base,
        http,
        loop,
        "own-key" if config.own_key else "pass-through",
        config.workers,
        "" if config.workers == 1 else "s",
    )
    if admin is not None or config.admin_token is not None:
        logging.getLogger("caproute.proxy").info(
            "/caproute/* on %s%s",
            f"http://{admin[0]}:{admin[1]}" if admin is not None else "the main port",
            " with the admin token" if config.admin_token is not None else "",
        )
    if config.workers == 1:
        with _signals_end_the_run():
            uvicorn.Server(settings).run(sockets=sockets)
        return
    from uvicorn.supervisors import Multiprocess

    metrics_dir = tempfile.mkdtemp(prefix="caproute-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # inherited by the workers
    try:
        Multiprocess(settings, sockets=sockets).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        for listener in sockets:
            listener.close()


@contextlib.contextmanager
def _signals_end_the_run() -> Iterator[None]:
    """SIGTERM and SIGINT end the run with a return, not with the signal (exit 0).

    uvicorn's server handles both while it runs (a graceful shutdown), then puts back
    the handlers it found and raises the signals it handled again, "so that the
    handler of the host application runs" (uvicorn's changelog, 0.29). Without one
    the process would die by the signal (see the module docstring); this is that
    handler: it does nothing, and the run returns. Signal handlers can only be set
    from the main thread; elsewhere uvicorn leaves the signals alone too.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, _shut_down) for sig in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _shut_down(signum: int, frame: object) -> None:
    """The handler uvicorn re-raises SIGTERM / SIGINT to once it has shut down."""


def _check_files(config: ProxyConfig) -> None:
    """Fail before starting workers if the policy or snapshot file is bad."""
    if config.policy is not None:
        from .._registry.policy_files import load_policy

        load_policy(config.policy)
    if config.snapshot is not None:
        from .._registry.snapshot import load_snapshot

        load_snapshot(config.snapshot)
