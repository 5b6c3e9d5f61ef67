"""`caproute demo`: what caproute does, offline and without an API key.

The demo is a list of steps, each printing one section. Today there is one: the model
table from the snapshot embedded in the package. Later steps (route an example
request, show the decision) are added to `STEPS` and need nothing else here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

DemoStep = Callable[[argparse.Namespace], None]
"""One section of the demo; it prints to stdout."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `demo` subcommand."""
    demo = subparsers.add_parser(
        "demo",
        help="show caproute at work, offline (no API key needed)",
        description="Print the embedded model registry (and, later, a routed example).",
    )
    demo.add_argument(
        "--width", type=int, metavar="N", help="fit tables to N columns (default: terminal)"
    )
    demo.set_defaults(func=run_demo)


def show_embedded_models(args: argparse.Namespace) -> None:
    """Step: the model table from the embedded snapshot, saying where it comes from."""
    from .._snapshot import embedded_registry
    from .models import print_table

    registry = embedded_registry()
    heading = (
        f"The model registry embedded in caproute: {len(registry)} Claude models as "
        f"publicly documented on {registry.source.describes}.\n"
        "Offline, no API key. A live fetch (caproute models --live) replaces it."
    )
    print_table(registry, width=args.width, heading=heading)


def show_routed_example(args: argparse.Namespace) -> None:
    """Step: route an example request that needs a reroute and an adjustment."""
    del args  # a step's signature; this one has no options
    from .route import print_demo_route

    print_demo_route()


STEPS: list[DemoStep] = [show_embedded_models, show_routed_example]
"""The demo's sections, in order; append to extend the demo."""


def run_demo(args: argparse.Namespace) -> int:
    """Run every demo step, with a blank line between sections."""
    for number, step in enumerate(STEPS):
        if number:
            print()
        step(args)
    return 0
