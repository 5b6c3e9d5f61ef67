"""`caproute models` and `caproute snapshot`: look at the registry, save a live one.

`models` prints the table from the best source available without asking for it
(user cache file, else the embedded snapshot), from a file (``--snapshot``) or from
the Models API (``--live``, needs a key). The user cache file is also where a running
app saves what it learned (models a later list left out, facts learned from the API's
refusals), so `models` shows those too. `snapshot` saves a live fetch as a file that
``--snapshot`` options (and `load_snapshot`) read back.

The key comes from ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_AUTH_TOKEN``, or from the
variable ``--api-key-env NAME`` names; never from an argument, which other users of
the machine could read in the process list.

Heavy imports (pydantic, httpx2, tenacity, rich) happen inside the commands, so
``caproute --help`` stays quick.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._output import check_width, print_json

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
            "Print every model with its lifecycle, limits and capabilities, then what "
            "the registry learned: models a later list left out (lifecycle 'unlisted') "
            "and facts learned from the API's refusals (values marked '*'). Without "
            "options it reads the best offline source: the user cache file written by "
            "the last live fetch (and by running apps), else the snapshot embedded in "
            "caproute. On a terminal the table fits its width; in a pipe it is plain "
            "ASCII, one line per model."
        ),
    )
    source = models.add_mutually_exclusive_group()
    source.add_argument(
        "--live",
        action="store_true",
        help="fetch from the Models API (key: ANTHROPIC_API_KEY, or --api-key-env NAME)",
    )
    source.add_argument("--snapshot", metavar="FILE", help="read this snapshot file")
    models.add_argument(
        "--json",
        action="store_true",
        help="print the registry as a snapshot document (JSON: models, aliases, source, "
        "tombstones, learned facts); loadable with --snapshot",
    )
    models.add_argument(
        "--width",
        type=int,
        metavar="N",
        help="fit the table to N columns (default: the terminal's width; in a pipe, "
        "one line per model)",
    )
    _add_api_options(models)
    models.set_defaults(func=run_models)

    snapshot = subparsers.add_parser(
        "snapshot",
        help="save a live fetch of the model registry to a file",
        description="Fetch the registry from the Models API and save it as a snapshot file.",
    )
    snapshot.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    snapshot.add_argument(
        "--json",
        action="store_true",
        help="print what was written as JSON (path, model count, source)",
    )
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
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="read the API key from this environment variable (default: ANTHROPIC_API_KEY, "
        "else ANTHROPIC_AUTH_TOKEN as a bearer token)",
    )


def run_models(args: argparse.Namespace) -> int:
    """Print the registry from the chosen source as a table (or JSON)."""
    check_width(args.width)
    if args.live:
        registry = _fetch_live(args)
    elif args.snapshot:
        from .._registry.snapshot import load_snapshot

        registry = load_snapshot(args.snapshot)
    else:
        from .._registry.snapshot import initial_registry

        # The cache of the endpoint asked about (each base URL has its own file).
        base_url = args.base_url or os.environ.get("ANTHROPIC_BASE_URL")
        registry = initial_registry(base_url=base_url)
    if args.json:
        print_json(registry_document(registry))
    else:
        from .table import print_registry

        print_registry(registry, width=args.width)
    return 0


def registry_document(registry: Registry) -> dict[str, Any]:
    """The snapshot document, with ``tombstones`` and ``learned`` always present (empty
    when there are none), so scripts can read them without checking for the key."""
    document = registry.to_json()
    document.setdefault("tombstones", {})
    document.setdefault("learned", [])
    return document


def run_snapshot(args: argparse.Namespace) -> int:
    """Fetch the registry live and save it to ``--out``."""
    from .._registry.snapshot import save_snapshot

    registry = _fetch_live(args)
    path = save_snapshot(registry, args.out)
    if args.json:
        print_json(
            {"path": str(path), "models": len(registry), "source": registry.source.to_dict()}
        )
    else:
        print(f"wrote {len(registry)} models from {registry.source.location} to {path}")
    return 0


NO_KEY = (
    "no API key: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN), or name the variable "
    "that holds it with --api-key-env NAME"
)


def _fetch_live(args: argparse.Namespace) -> Registry:
    from .._exceptions import ConfigError
    from .._registry.fetch import RegistryFetcher

    if args.retries < 0:
        raise ConfigError("--retries must be 0 or more")
    api_key = secret_from_env(args.api_key_env, "--api-key-env")
    env = os.environ
    if api_key is None and not (env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_AUTH_TOKEN")):
        raise ConfigError(NO_KEY)
    fetcher = RegistryFetcher(
        api_key=api_key, base_url=args.base_url, background=False, max_attempts=args.retries + 1
    )
    from .._exceptions import SnapshotError
    from .._registry.snapshot import initial_registry, save_snapshot

    # What the fetch starts from: the user cache of this endpoint and key, else the
    # embedded lineup.
    cache = fetcher.cache_file
    before = initial_registry(cache_path=cache)
    with fetcher, _reported_here():
        registry = fetcher.refresh()
    if before.source.kind != "embedded":
        return registry
    told = _first_fetch_unlisted(registry, before, fetcher.base_url)
    if told is not registry and cache.is_file():
        # The fetch just cached its data: keep the same data, told the same way, so the
        # next fetch doesn't start from "not listed any more".
        with contextlib.suppress(SnapshotError):
            save_snapshot(told, cache)
    return told


def _first_fetch_unlisted(registry: Registry, embedded: Registry, base_url: str) -> Registry:
    """`registry` with the models a first fetch from `base_url` left out (kept,
    unlisted) told as such.

    Nothing was fetched from this endpoint before: the models its list leaves out were
    never listed there, they are only in the lineup caproute ships with. Saying they are
    "not listed any more" would report a change that never happened.
    """
    from .._core.registry import Registry

    new = {
        model_id: reason
        for model_id, reason in registry.unlisted.items()
        if model_id not in embedded.unlisted and model_id not in embedded.tombstones
    }
    if not new:
        return registry
    lineup = embedded.source.describes
    where = f"the embedded lineup{f' (of {lineup})' if lineup else ''}"
    told = {}
    for model_id in new:
        info = embedded.get(model_id)
        if info is not None and info.lifecycle == "retired":
            # The list leaves retired models out by default: nothing about this key.
            told[model_id] = f"retired in {where}; not listed by the Models API at {base_url}"
        else:
            told[model_id] = (
                f"in {where} but not listed for this key by the Models API at {base_url}"
            )
    document = registry.to_json()
    document["unlisted"] = {**document.get("unlisted", {}), **told}
    return Registry.from_json(document, source=registry.source)


def secret_from_env(name: str | None, flag: str) -> str | None:
    """The value of environment variable `name` (`None` when no name was given).

    Raises:
        ConfigError: The variable is unset or empty (the message names it, never a value).
    """
    from .._exceptions import ConfigError

    if name is None:
        return None
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{flag}: environment variable {name} is not set or empty")
    return value


@contextlib.contextmanager
def _reported_here() -> Iterator[None]:
    """Hold back the registry logger's records during a foreground fetch.

    The fetcher logs a failed refresh as a warning, because a background refresh has
    nobody else to tell. Here the failure is raised, and `main` prints it as the
    command's one-line error: the warning saying the same is dropped, so it shows once.
    Anything else held back is let through afterwards, in order.
    """
    logger = logging.getLogger("caproute.registry")
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        held.append(record)
        return False

    logger.addFilter(hold)
    failure: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        failure = exc
        raise
    finally:
        logger.removeFilter(hold)
        for record in held:
            if failure is None or str(failure) not in record.getMessage():
                logger.handle(record)
