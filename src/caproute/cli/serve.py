"""`caproute serve`: run the local routing proxy.

Every option is a flag, a ``CAPROUTE_*`` environment variable and a key of the
``--config`` file (one table, `caproute._proxy._settings_table.SETTINGS`); flags win over
variables, variables over the file. Secrets are read from environment variables
named by the configuration (``--api-key-env``, ``--require-token-env``), never taken
from arguments, which other users of the machine can read in the process list;
``--require-token`` exists for quick local trials and says so in its help.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._proxy import ProxyConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `serve` subcommand (building it imports nothing heavy)."""
    from .._proxy._settings import add_arguments

    serve = subparsers.add_parser(
        "serve",
        help="run the local routing proxy",
        description=(
            "Forward Anthropic API requests to an upstream, routing Messages requests "
            "by capability. Point any client at it with ANTHROPIC_BASE_URL. Every option "
            "can also be set as a CAPROUTE_* environment variable (--max-body-bytes: "
            "CAPROUTE_MAX_BODY_BYTES) or in the --config file; flags win over variables, "
            "variables over the file."
        ),
    )
    add_arguments(serve)
    serve.set_defaults(func=run_serve)


def build_config(args: argparse.Namespace) -> ProxyConfig:
    """The `ProxyConfig` the arguments, the environment and the config file describe."""
    from .._proxy._settings import from_arguments, resolve

    config, _origin = resolve(from_arguments(args), os.environ)
    return config


def run_serve(args: argparse.Namespace) -> int:
    """Run the proxy until interrupted; exit status 0 after a clean shutdown."""
    from .._proxy import serve_proxy

    serve_proxy(build_config(args))
    return 0
