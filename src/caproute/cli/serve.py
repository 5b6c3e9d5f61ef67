"""`caproute serve`: run the local routing proxy.

Secrets are read from environment variables named on the command line
(``--api-key-env``, ``--require-token-env``), never from arguments, which other users
of the machine can read in the process list. ``--require-token`` exists for quick
local trials and says so in its help.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._proxy import ProxyConfig

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `serve` subcommand.

    Options left out keep `ProxyConfig`'s defaults (repeated in the help text only, so
    building the parser imports nothing heavy).
    """
    serve = subparsers.add_parser(
        "serve",
        help="run the local routing proxy",
        description=(
            "Forward Anthropic API requests to an upstream, routing Messages requests "
            "by capability. Point any client at it with ANTHROPIC_BASE_URL."
        ),
    )
    serve.add_argument("--host", help="interface to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: 8787)")
    serve.add_argument(
        "--upstream", metavar="URL", help="where to forward (default: https://api.anthropic.com)"
    )
    serve.add_argument(
        "--policy", type=Path, metavar="FILE", help="routing policy, reloaded on change and SIGHUP"
    )
    serve.add_argument(
        "--snapshot",
        type=Path,
        metavar="FILE",
        help="registry snapshot to route with (re-read on change)",
    )
    serve.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="use the API key in this environment variable (callers then need a local token)",
    )
    token = serve.add_mutually_exclusive_group()
    token.add_argument(
        "--require-token-env",
        metavar="NAME",
        help="the local token callers must present, from this variable",
    )
    token.add_argument(
        "--require-token",
        metavar="TOKEN",
        help="the local token itself (shows in the process list: prefer --require-token-env)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        metavar="N",
        help="largest request body accepted, else 413 (default: 33554432, 32 MiB)",
    )
    serve.add_argument(
        "--connect-timeout", type=float, metavar="S", help="upstream connect timeout (default: 5)"
    )
    serve.add_argument(
        "--read-timeout", type=float, metavar="S", help="upstream read timeout (default: 600)"
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        metavar="S",
        help="time a caller has to send its body, else 408 (default: 60)",
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        metavar="S",
        help="on shutdown, time in-flight responses get to finish (default: 30)",
    )
    serve.add_argument(
        "--log-level", choices=_LOG_LEVELS, default="info", help="(default: %(default)s)"
    )
    serve.set_defaults(func=run_serve)


def _secret_from_env(name: str | None, flag: str) -> str | None:
    from .._exceptions import ConfigError

    if name is None:
        return None
    value = os.environ.get(name, "").strip()
    if not value:
        # Name the variable, never a value.
        raise ConfigError(f"{flag}: environment variable {name} is not set or empty")
    return value


_PLAIN_OPTIONS = (
    "upstream",
    "host",
    "port",
    "policy",
    "snapshot",
    "max_body_bytes",
    "connect_timeout",
    "read_timeout",
    "body_timeout",
    "shutdown_timeout",
    "log_level",
)


def build_config(args: argparse.Namespace) -> ProxyConfig:
    """The `ProxyConfig` the arguments describe (secrets resolved from the environment)."""
    from .._proxy import ProxyConfig

    options: dict[str, Any] = {
        name: getattr(args, name) for name in _PLAIN_OPTIONS if getattr(args, name) is not None
    }
    options["api_key"] = _secret_from_env(args.api_key_env, "--api-key-env")
    options["require_token"] = args.require_token or _secret_from_env(
        args.require_token_env, "--require-token-env"
    )
    return ProxyConfig(**options)


def run_serve(args: argparse.Namespace) -> int:
    """Run the proxy until interrupted; exit status 0 after a clean shutdown."""
    from .._proxy import serve_proxy

    config = build_config(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve_proxy(config)
    return 0
