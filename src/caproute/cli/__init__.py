"""The `caproute` command line: `main(argv) -> exit code`.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
a parser whose ``func(args) -> int`` runs it. Errors are one line on stderr and a
non-zero exit, never a traceback (``CAPROUTE_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .. import _logs  # noqa: F401  (masking on every caproute logger before any record)
from .._version import __version__

# Subcommand modules, in help order. Each defines `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = ("demo", "models", "policy", "route", "serve", "batch", "fake")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="caproute",
        description="Capability-aware request router for the Anthropic Messages API.",
    )
    parser.add_argument("--version", action="version", version=f"caproute {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f".{name}", __name__).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    from .._logs import redacting_streams

    # Everything a command prints is masked: an `sk-ant-` key never reaches a terminal.
    with redacting_streams():
        try:
            code: int = func(args)
            return code
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            return 0
        except Exception as exc:  # the CLI's contract: one line, no traceback
            if os.environ.get("CAPROUTE_DEBUG"):
                raise
            from .._exceptions import CaprouteError

            kind = "error" if isinstance(exc, CaprouteError) else type(exc).__name__
            message = str(exc)
            if isinstance(exc, OSError) and exc.filename is not None:
                # A file a command was pointed at: say which, and what the system said.
                kind, message = "error", f"{exc.filename}: {exc.strerror or exc}"
            print(f"caproute: {kind}: {message}", file=sys.stderr)
            return 1
