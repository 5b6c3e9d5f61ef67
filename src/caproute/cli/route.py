"""`caproute route REQUEST.json...`: what the router would do with requests, offline.

It prints the decision (`Decision.explain`) and a unified diff of the body, or both as
JSON: ``--json`` prints one ``{file, decision, body}`` object for one file and a list of
them for several (kept so for scripts written against it); ``--jsonl`` prints one such
object per line whatever the number of files, the shape to build on. Nothing is sent
anywhere: the registry is the ``--snapshot`` file, else the best snapshot available
offline (the user cache, then the one shipped in the package). ``--header`` and
``--beta`` give the headers the request would carry, so routes that match on headers
can be previewed. The exit status is 0 when every request would be sent, 1 when the
router would refuse one, so the command doubles as a CI check for request templates.
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
from ._output import print_json

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
    parser.add_argument(
        "requests",
        nargs="+",
        metavar="REQUEST.json",
        help="request bodies, one per file ('-' = stdin)",
    )
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
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a request header, for routes that match on headers (repeatable)",
    )
    parser.add_argument(
        "--beta",
        action="append",
        default=[],
        metavar="NAME",
        help="an anthropic-beta value the request is sent with (repeatable)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        action="store_true",
        help="print {file, decision, body} as JSON: one object for one file, a list for several",
    )
    output.add_argument(
        "--jsonl",
        action="store_true",
        help="print one {file, decision, body} object per line, however many files: "
        "the same shape for one file as for many",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Route each request file and print the outcomes; 1 if any would be refused."""
    from .._core.engine import PolicyEngine
    from .._registry.snapshot import initial_registry

    headers = parse_headers(args.header)
    bodies = [(path, read_request(path)) for path in args.requests]
    policy = None
    if args.policy:
        from .._registry.policy_files import load_policy

        policy = load_policy(args.policy)
    router = PolicyEngine(initial_registry(args.snapshot), policy)
    results = [
        (
            path,
            body,
            router.route(
                body,
                endpoint=args.endpoint or guess_endpoint(body),
                api_version=args.api_version,
                headers=headers,
            ),
        )
        for path, body in bodies
    ]
    documents = [
        {"file": path, "decision": result.decision.to_dict(), "body": result.body}
        for path, _, result in results
    ]
    if args.jsonl:
        for document in documents:
            print(json.dumps(document, ensure_ascii=False))
    elif args.json:
        print_json(documents if len(documents) > 1 else documents[0])
    else:
        for number, (path, body, result) in enumerate(results):
            if len(results) > 1:
                print(("\n" if number else "") + f"== {path}")
            print(render(body, result))
    return 1 if any(result.decision.rejected for _, _, result in results) else 0


def parse_headers(values: list[str]) -> dict[str, str]:
    """``NAME:VALUE`` options as a header mapping (names lower-cased).

    Raises:
        ConfigError: An option without a colon or with an empty name.
    """
    headers: dict[str, str] = {}
    for value in values:
        name, colon, content = value.partition(":")
        if not colon or not name.strip():
            raise ConfigError(f"--header {value!r}: expected NAME:VALUE")
        headers[name.strip().lower()] = content.strip()
    return headers


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


def demo_route_document() -> dict[str, Any]:
    """The demo's example as JSON: where it comes from, the request, the decision and
    the routed body (the shape `route --json` prints, plus the request)."""
    from .._core.engine import PolicyEngine
    from .._registry.snapshot import embedded_registry

    result = PolicyEngine(embedded_registry()).route(DEMO_REQUEST)
    return {
        "file": DEMO_EXAMPLE,
        "request": DEMO_REQUEST,
        "decision": result.decision.to_dict(),
        "body": result.body,
    }


def print_demo_route(width: int | None = None) -> None:
    """Route `DEMO_REQUEST` against the embedded snapshot (no policy) and print the outcome,
    its lines wrapped to `width` (a line of the body diff is never wrapped)."""
    from .._core.engine import PolicyEngine
    from .._registry.snapshot import embedded_registry

    result = PolicyEngine(embedded_registry()).route(DEMO_REQUEST)
    intro = (
        f"Routing {DEMO_EXAMPLE} (an app still pinned to a retired model, with extended "
        "thinking and a forced tool choice) against the embedded registry, no policy:"
    )
    explanation = result.decision.explain()
    diff = body_diff(DEMO_REQUEST, result.body) or "body: unchanged"
    if width is not None:
        intro = fill_lines(intro, width)
        explanation = fill_lines(explanation, width)
    print(intro + "\n")
    print(explanation + "\n\n" + diff)


def fill_lines(text: str, width: int) -> str:
    """Each line of `text` wrapped to `width`, continuations indented under its start
    (+4), words never split: a decision's explanation in a narrow terminal."""
    import textwrap

    out: list[str] = []
    for line in text.splitlines():
        indent = " " * (len(line) - len(line.lstrip()))
        out += textwrap.wrap(
            line,
            width=max(width, len(indent) + 20),
            subsequent_indent=indent + "    ",
            break_long_words=False,
            break_on_hyphens=False,
        ) or [""]
    return "\n".join(out)
