"""`caproute serve`: run the local routing proxy.

Every option is a flag, a ``CAPROUTE_*`` environment variable and a key of the
``--config`` file (one table, `caproute._proxy._settings.SETTINGS`); flags win over
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


def check_server_config(path: str) -> int:
    """`caproute check FILE` for a server config: its errors (exit 1), or a summary.

    The policy file it names is checked too, and the snapshot it names must load.
    """
    import sys

    from .._policy_io import read_policy_text
    from .._proxy._settings import check_config_text

    text = read_policy_text(path)  # the same reading rules (UTF-8, errors name the file)
    values, errors = check_config_text(text, filename=path)
    for error in errors:
        print(error, file=sys.stderr)
    if values is None:
        count = len(errors)
        print(f"{count} error{'s' if count != 1 else ''} in {path}", file=sys.stderr)
        return 1
    problems = 0
    policy = values.get("policy")
    if policy is not None:
        from .._core.policy import check_policy_text
        from .._exceptions import CaprouteError

        policy_errors: tuple[Exception, ...]
        try:
            _, policy_errors = check_policy_text(read_policy_text(policy), filename=str(policy))
        except CaprouteError as exc:
            policy_errors = (exc,)
        for error in policy_errors:
            print(error, file=sys.stderr)
        problems += len(policy_errors)
    snapshot = values.get("snapshot")
    if snapshot is not None:
        from .._exceptions import SnapshotError
        from .._snapshot import load_snapshot

        try:
            load_snapshot(snapshot)
        except SnapshotError as exc:
            print(f"{path}: snapshot: {exc}", file=sys.stderr)
            problems += 1
    if problems:
        print(
            f"{problems} error{'s' if problems != 1 else ''} in files {path} names", file=sys.stderr
        )
        return 1
    mode = "own-key" if "api_key_env" in values else "pass-through"
    upstream = values.get("upstream", "https://api.anthropic.com")
    print(f"ok: server config ({mode}, upstream {upstream}, {len(values)} settings)")
    return 0
