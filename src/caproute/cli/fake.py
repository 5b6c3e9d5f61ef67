"""`caproute fake`: the fake Anthropic API of `caproute.testing`, on its own.

For trying caproute without an API key (the quickstart), and for testing a client in
another language against the same validating fake the Python tests use. It serves
on 127.0.0.1 until interrupted (Ctrl-C or SIGTERM). ``python -m caproute.testing``
runs the same command.

With ``--json`` the first line of output is a JSON object (``url``, ``port``, ``models``,
``api_key``), for scripts that start the fake on a free port (``--port 0``) and need to
know where it is.

The fake needs uvicorn (the ``proxy`` extra); without it the command says so.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError

DEFAULT_PORT = 8788
"""One above `caproute serve`'s 8787, so the two can run side by side."""
BUSY_HINT = "another caproute fake? pick another --port, or --port 0 for any free one"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `fake` subcommand."""
    fake = subparsers.add_parser(
        "fake",
        help="run the fake Anthropic API locally (no key, no network)",
        description=(
            "Serve caproute's fake Anthropic API on 127.0.0.1: the Models, Messages, "
            "count_tokens and Batches endpoints, validating each request against the "
            "model's capabilities like the real API. Runs until Ctrl-C. Needs uvicorn: "
            "pip install 'caproute[proxy]'."
        ),
    )
    fake.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"port on 127.0.0.1 (default: {DEFAULT_PORT}; 0 = any free port)",
    )
    fake.add_argument(
        "--catalogue",
        metavar="FILE",
        help="the models to serve: a registry snapshot (caproute snapshot --out), a "
        "GET /v1/models answer, or a JSON list of models (default: caproute's embedded lineup)",
    )
    fake.add_argument(
        "--api-key",
        metavar="KEY",
        help="require this key (x-api-key or Bearer); default: accept any request",
    )
    fake.add_argument(
        "--json",
        action="store_true",
        help="announce where it serves as one JSON line (url, port, models, api_key)",
    )
    fake.set_defaults(func=run_fake)


def run_fake(args: argparse.Namespace) -> int:
    """Serve until SIGINT / SIGTERM; exit status 0 after a clean stop."""
    from ..testing import FakeAnthropic

    models, aliases = read_catalogue(args.catalogue) if args.catalogue else (None, None)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, not {args.port}")
    fake = FakeAnthropic(models, aliases=aliases, api_key=args.api_key, port=args.port)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        try:
            fake.start()
        except OSError as exc:  # binding the port: the same one line as `caproute serve`
            from .._proxy._server import bind_error

            raise bind_error("127.0.0.1", args.port, exc, hint=BUSY_HINT) from None
        except RuntimeError as exc:
            cause = exc.__cause__
            reason = f": {cause}" if isinstance(cause, OSError) else ""
            raise ConfigError(f"{exc}{reason}") from exc
        try:
            key = args.api_key or "test-key"
            # The fake's key is a throwaway the command exists to announce (scripts
            # read it): shown as it is, past the CLI's credential masking.
            from .._logs import print_unmasked

            if args.json:
                where = {"url": fake.url, "port": fake.port, "models": len(fake.models())}
                print_unmasked(json.dumps({**where, "api_key": key}))
            else:
                count = len(fake.models())
                print(f"fake Anthropic API on {fake.url} ({count} models)", flush=True)
                print_unmasked(f"  export ANTHROPIC_BASE_URL={fake.url} ANTHROPIC_API_KEY={key}")
                print("Ctrl-C to stop", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            fake.close()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def read_catalogue(path: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Models (newest first) and aliases from a snapshot, a Models API page or a list.

    Raises:
        ConfigError: The file can't be read or holds none of those shapes.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--catalogue: cannot read {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    aliases: dict[str, str] = {}
    if isinstance(data, dict):
        raw_aliases = data.get("aliases")
        if isinstance(raw_aliases, dict):
            aliases = {str(k): str(v) for k, v in raw_aliases.items()}
        data = data.get("models", data.get("data"))
    if not isinstance(data, list) or not all(
        isinstance(m, dict) and isinstance(m.get("id"), str) for m in data
    ):
        raise ConfigError(
            f"{path}: expected a registry snapshot, a GET /v1/models answer or a JSON list "
            "of models, each with an 'id'"
        )
    return data, aliases
