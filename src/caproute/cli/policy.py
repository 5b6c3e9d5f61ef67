"""`caproute check` and `caproute schema`: policy files from the command line.

`check` is what an editor integration or a CI step runs: every problem in the file,
one ``file:line:column: message`` line each (like a compiler), then, when the policy
is valid, the warnings a registry reveals (candidates that name no model, routes left
with only retired models). ``--json`` prints all of it as one JSON document on stdout
instead (same exit status). A ``caproute serve --config`` file is recognised and
checked as one (as text only). `schema` prints the JSON Schema editors use for
completion.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._core.policy import PolicyWarning
    from .._core.registry import Registry
    from .._exceptions import PolicyError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `check` and `schema` subcommands."""
    check = subparsers.add_parser(
        "check",
        help="validate a routing policy file",
        description=(
            "Validate a YAML routing policy. Errors are printed as file:line:column and "
            "exit with status 1; with a registry (the best snapshot available, or "
            "--snapshot) it also warns about candidates no model matches."
        ),
    )
    check.add_argument("policy", metavar="POLICY", help="the policy file (YAML)")
    source = check.add_mutually_exclusive_group()
    source.add_argument(
        "--snapshot",
        metavar="FILE",
        help="check candidates against this registry snapshot (default: the best available)",
    )
    source.add_argument(
        "--no-registry", action="store_true", help="skip the checks against a registry"
    )
    check.add_argument("--strict", action="store_true", help="exit with status 1 on warnings too")
    check.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON on stdout: valid, routes, errors and warnings "
        "(each with file, line, column, path, message), registry, exit_status",
    )
    check.set_defaults(func=run_check)

    schema = subparsers.add_parser(
        "schema",
        help="print the policy file's JSON Schema",
        description="Print the JSON Schema of policy files, for editor completion.",
    )
    schema.add_argument(
        "--json",
        action="store_true",
        help="accepted for symmetry with the other commands: the output is JSON already",
    )
    schema.set_defaults(func=run_schema)


def run_check(args: argparse.Namespace) -> int:
    """Validate the policy; print its errors (exit 1), or its warnings and a summary."""
    from .._core.policy import check_policy_text, registry_warnings
    from .._policy_io import read_policy_text

    text = read_policy_text(args.policy)
    from .._proxy._settings import looks_like_server_config

    if looks_like_server_config(text):  # `caproute serve --config` files are checked too
        if args.json:
            from .._exceptions import ConfigError

            raise ConfigError(
                f"{args.policy} is a server config (caproute serve --config): --json covers "
                "policy files only; run without --json"
            )
        from .serve import check_server_config

        return check_server_config(args.policy)
    policy, errors = check_policy_text(text, filename=args.policy)
    registry = None
    warnings: tuple[PolicyWarning, ...] = ()
    if policy is not None:
        registry = None if args.no_registry else _registry(args.snapshot)
        warnings = registry_warnings(policy, registry) if registry is not None else ()
    status = 1 if errors or (args.strict and warnings) else 0
    if args.json:
        document = {
            "file": args.policy,
            "valid": policy is not None,
            "routes": None if policy is None else len(policy.routes),
            "errors": [_issue(e) for e in errors],
            "warnings": [_issue(w) for w in warnings],
            "registry": None if registry is None else registry.source.describe(),
            "strict": args.strict,
            "exit_status": status,
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return status
    for error in errors:
        print(error, file=sys.stderr)
    if policy is None:
        count = len(errors)
        print(f"{count} error{'s' if count != 1 else ''} in {args.policy}", file=sys.stderr)
        return 1
    for warning in warnings:
        print(warning, file=sys.stderr)
    routes = len(policy.routes)
    summary = f"ok: {routes} route{'s' if routes != 1 else ''}"
    if registry is not None:
        noun = "warning" if len(warnings) == 1 else "warnings"
        summary += f", {len(warnings)} {noun} (registry: {registry.source.describe()})"
    print(summary)
    if status:
        noun = "warning" if len(warnings) == 1 else "warnings"
        print(f"exit status 1: --strict counts the {len(warnings)} {noun} above as errors",
              file=sys.stderr)  # fmt: skip
    return status


def _issue(issue: PolicyError | PolicyWarning) -> dict[str, Any]:
    """An error or warning as JSON: where (file, line, column, path) and what."""
    return {
        "file": issue.file,
        "line": issue.line,
        "column": issue.column,
        "path": issue.path,
        "message": issue.message,
    }


def _registry(snapshot: str | None) -> Registry:
    """The registry to check candidates against: the named snapshot, or the best offline one."""
    from .._snapshot import initial_registry

    return initial_registry(snapshot)


def run_schema(_args: argparse.Namespace) -> int:
    """Print the JSON Schema (indent 2)."""
    from .._core.policy import policy_json_schema

    print(json.dumps(policy_json_schema(), indent=2))
    return 0
