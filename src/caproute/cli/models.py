"""`caproute models` and `caproute snapshot`: look at the registry, save a live one.

`models` prints the table from the best source available without asking for it
(user cache file, else the embedded snapshot), from a file (``--snapshot``) or from
the Models API (``--live``, needs a key). `snapshot` saves a live fetch as a file
that ``--snapshot`` options (and `load_snapshot`) read back.

Heavy imports (pydantic, httpx2, tenacity) happen inside the commands, so
``caproute --help`` stays quick.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._core.registry import Registry

DEFAULT_RETRIES = 2
"""Retries of a failed Models API request from the CLI (the anthropic SDK's default)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `models` and `snapshot` subcommands."""
    models = subparsers.add_parser(
        "models",
        help="print the model registry as a table",
        description=(
            "Print every model with its lifecycle, limits and capabilities. Without "
            "options it reads the best offline source: the user cache file written by "
            "the last live fetch, else the snapshot embedded in caproute."
        ),
    )
    source = models.add_mutually_exclusive_group()
    source.add_argument(
        "--live", action="store_true", help="fetch from the Models API (needs ANTHROPIC_API_KEY)"
    )
    source.add_argument("--snapshot", metavar="FILE", help="read this snapshot file")
    models.add_argument("--json", action="store_true", help="print the snapshot document as JSON")
    models.add_argument(
        "--width", type=int, metavar="N", help="fit the table to N columns (default: terminal)"
    )
    _add_api_options(models)
    models.set_defaults(func=run_models)

    snapshot = subparsers.add_parser(
        "snapshot",
        help="save a live fetch of the model registry to a file",
        description="Fetch the registry from the Models API and save it as a snapshot file.",
    )
    snapshot.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    _add_api_options(snapshot)
    snapshot.set_defaults(func=run_snapshot)


def _add_api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url", metavar="URL", help="the API's base URL (default: ANTHROPIC_BASE_URL)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        metavar="N",
        help=f"retries of a failing request (default: {DEFAULT_RETRIES})",
    )


def run_models(args: argparse.Namespace) -> int:
    """Print the registry from the chosen source as a table (or JSON)."""
    if args.live:
        registry = _fetch_live(args)
    elif args.snapshot:
        from .._snapshot import load_snapshot

        registry = load_snapshot(args.snapshot)
    else:
        from .._snapshot import initial_registry

        # The cache of the endpoint asked about (each base URL has its own file).
        base_url = args.base_url or os.environ.get("ANTHROPIC_BASE_URL")
        registry = initial_registry(base_url=base_url)
    if args.json:
        print(json.dumps(registry.to_json(), indent=2, ensure_ascii=False))
    else:
        print_table(registry, width=args.width)
    return 0


def run_snapshot(args: argparse.Namespace) -> int:
    """Fetch the registry live and save it to ``--out``."""
    from .._snapshot import save_snapshot

    registry = _fetch_live(args)
    path = save_snapshot(registry, args.out)
    print(f"wrote {len(registry)} models from {registry.source.location} to {path}")
    return 0


def print_table(
    registry: Registry, *, width: int | None = None, heading: str | None = None
) -> None:
    """Print a heading naming the registry's source, the table and its legend."""
    from .._table import legend, render_table

    if width is None:
        width = shutil.get_terminal_size((120, 24)).columns
    if heading is None:
        count = f"{len(registry)} model{'' if len(registry) == 1 else 's'}"
        heading = f"{count} from {registry.source.describe(time.time())}"
    print(heading)
    print()
    print(render_table(registry, width=width))
    print()
    print(legend(width=width))


def _fetch_live(args: argparse.Namespace) -> Registry:
    from .._exceptions import ConfigError
    from .._fetch import RegistryFetcher

    if args.retries < 0:
        raise ConfigError("--retries must be 0 or more")
    with RegistryFetcher(
        base_url=args.base_url, background=False, max_attempts=args.retries + 1
    ) as fetcher:
        return fetcher.refresh()
