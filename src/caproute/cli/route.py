"""`caproute route REQUEST.json`: what the router would do with a request, offline.

It prints the decision (`Decision.explain`) and a unified diff of the body, or both as
JSON with ``--json``. Nothing is sent anywhere: the registry is the ``--snapshot``
file, else the best snapshot available offline (the user cache, then the one shipped
in the package). The exit status is 0 when the request would be sent, 1 when the
router would refuse it, so the command doubles as a CI check for request templates.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError
from .._types import Endpoint

if TYPE_CHECKING:
    from .._core.decision import RouteResult

ENDPOINTS = ("messages", "count_tokens", "batch")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `route` subcommand."""
    parser = subparsers.add_parser(
        "route",
        help="show how a request would be routed (offline)",
        description=(
            "Route a request body (JSON) against a registry snapshot and a policy, and "
            "print the decision and the body diff. Exit status 1 when it would be refused."
        ),
    )
    parser.add_argument("request", metavar="REQUEST.json", help="the request body ('-' = stdin)")
    parser.add_argument("--policy", metavar="FILE", help="routing policy (YAML); default: none")
    parser.add_argument(
        "--snapshot",
        metavar="FILE",
        help="registry snapshot to route against (default: the best one available offline)",
    )
    parser.add_argument(
        "--api-version",
        metavar="VERSION",
        default=None,
        help="the anthropic-version the request is sent with (default: 2023-06-01)",
    )
    parser.add_argument(
        "--endpoint",
        choices=ENDPOINTS,
        default=None,
        help="the endpoint the body is for (default: batch for a body with 'requests' "
        "and no 'model', else messages)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the decision and the routed body as JSON"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Route the request file and print the outcome."""
    from .._core.router import PolicyEngine
    from .._snapshot import initial_registry

    body = read_request(args.request)
    policy = None
    if args.policy:
        from .._policy_io import load_policy

        policy = load_policy(args.policy)
    registry = initial_registry(args.snapshot)
    endpoint = args.endpoint or guess_endpoint(body)
    result = PolicyEngine(registry, policy).route(
        body, endpoint=endpoint, api_version=args.api_version
    )
    if args.json:
        out = {"decision": result.decision.to_dict(), "body": result.body}
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(render(body, result))
    return 1 if result.decision.rejected else 0


def guess_endpoint(body: Any) -> Endpoint:
    """``batch`` for a Message Batch creation body, else ``messages``."""
    is_batch = isinstance(body, dict) and "requests" in body and "model" not in body
    return "batch" if is_batch else "messages"


def read_request(path: str) -> Any:
    """The decoded JSON request; a malformed file is a one-line error with line:column."""
    name = "<stdin>" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc


def render(original: Any, result: RouteResult) -> str:
    """The decision's explanation, then the body diff (or a line saying there is none)."""
    diff = body_diff(original, result.body)
    return result.decision.explain() + "\n\n" + (diff or "body: unchanged")


def body_diff(before: Any, after: Any) -> str:
    """A unified diff of two bodies as sorted, indented JSON (empty when equal)."""
    if before is after:
        return ""
    lines = difflib.unified_diff(
        _pretty(before).splitlines(keepends=True),
        _pretty(after).splitlines(keepends=True),
        fromfile="request",
        tofile="routed",
    )
    return "".join(lines).rstrip("\n")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# -- the demo's routing step -------------------------------------------------------------------

DEMO_EXAMPLE = "examples/requests/retired-with-thinking.json"
"""The example `caproute demo` routes; `DEMO_REQUEST` is its content (tests keep them equal),
so the demo also works from an installed package without the repository's examples."""

DEMO_REQUEST: dict[str, Any] = {
    "model": "claude-opus-4-1",
    "max_tokens": 32000,
    "thinking": {"type": "enabled", "budget_tokens": 16000},
    "output_config": {"effort": "xhigh"},
    "tool_choice": {"type": "any"},
    "tools": [
        {
            "name": "run_tests",
            "description": "Run the test suite",
            "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
        }
    ],
    "messages": [{"role": "user", "content": "The CI is red on main. Find out why and fix it."}],
}


def print_demo_route() -> None:
    """Route `DEMO_REQUEST` against the embedded snapshot (no policy) and print the outcome."""
    from .._core.router import PolicyEngine
    from .._snapshot import embedded_registry

    result = PolicyEngine(embedded_registry()).route(DEMO_REQUEST)
    print(
        f"Routing {DEMO_EXAMPLE} (an app still pinned to a retired model, with\n"
        "extended thinking and a forced tool choice) against the embedded registry, no policy:\n"
    )
    print(render(DEMO_REQUEST, result))
