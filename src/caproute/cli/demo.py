"""`caproute demo`: what caproute does, offline and without an API key.

The demo is a list of steps, each printing one section: the model table from the
snapshot embedded in the package, then an example request routed against it. Later
steps are added to `STEPS` and need nothing else here. ``--json`` prints the same two
things as one JSON document (``registry``: the snapshot document; ``example``: the
request, the decision and the routed body).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ._output import check_width, print_json

DemoStep = Callable[[argparse.Namespace], None]
"""One section of the demo; it prints to stdout."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `demo` subcommand."""
    demo = subparsers.add_parser(
        "demo",
        help="show caproute at work, offline (no API key needed)",
        description=(
            "Print the model registry embedded in caproute, then route an example request "
            "against it and show the decision and the body diff. Offline, no API key."
        ),
    )
    demo.add_argument(
        "--width",
        type=int,
        metavar="N",
        help="fit tables to N columns (default: the terminal's width)",
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="print the registry and the routed example as one JSON document",
    )
    demo.set_defaults(func=run_demo)


def show_embedded_models(args: argparse.Namespace) -> None:
    """Step: the model table from the embedded snapshot, saying where it comes from."""
    from .._registry.snapshot import embedded_registry
    from .table import print_registry

    registry = embedded_registry()
    heading = (
        f"The model registry embedded in caproute: {len(registry)} Claude models as "
        f"publicly documented on {registry.source.describes}.\n"
        "Offline, no API key. A live fetch (caproute models --live) replaces it."
    )
    print_registry(registry, width=args.width, heading=heading)


def show_routed_example(args: argparse.Namespace) -> None:
    """Step: route an example request that needs a reroute and an adjustment."""
    import shutil
    import sys

    from .route import print_demo_route

    width = args.width
    if width is None and sys.stdout.isatty():
        width = shutil.get_terminal_size().columns
    print_demo_route(width)


STEPS: list[DemoStep] = [show_embedded_models, show_routed_example]
"""The demo's sections, in order; append to extend the demo."""


def run_demo(args: argparse.Namespace) -> int:
    """Run every demo step, with a blank line between sections (or print the JSON)."""
    check_width(args.width)
    if args.json:
        from .._registry.snapshot import embedded_registry
        from .models import registry_document
        from .route import demo_route_document

        example = demo_route_document()
        print_json({"registry": registry_document(embedded_registry()), "example": example})
        return 0
    for number, step in enumerate(STEPS):
        if number:
            print()
        step(args)
    return 0
