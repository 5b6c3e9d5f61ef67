"""`caproute check` and `caproute schema`: policy and server config files from the command line.

`check` is what an editor integration or a CI step runs: every problem in the file,
one ``file:line:column: message`` line each (like a compiler), then, when the file is
valid, the warnings a registry reveals (candidates that name no model, routes left
with only retired models). A ``caproute serve --config`` file is recognised by its
keys and checked as one: its settings, the policy file it names (in full, warnings
against the snapshot it names included) and that snapshot. ``--json`` prints the same
findings as one JSON document of one shape for both kinds (same exit status, nothing
on stderr). `schema` prints the JSON Schema editors use for completion.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._output import plural, print_json

if TYPE_CHECKING:
    from .._core.policy import Policy
    from .._core.policy_check import PolicyWarning
    from .._core.registry import Registry
    from .._exceptions import PolicyError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `check` and `schema` subcommands."""
    check = subparsers.add_parser(
        "check",
        help="validate a routing policy or a `caproute serve` config file",
        description=(
            "Validate a YAML routing policy, or a `caproute serve --config` file with the "
            "policy and snapshot it names. Errors are printed as file:line:column (exit "
            "status 1); against a registry it also warns about candidates no model matches."
        ),
    )
    check.add_argument("policy", metavar="FILE", help="the policy or server config file (YAML)")
    source = check.add_mutually_exclusive_group()
    source.add_argument(
        "--snapshot",
        metavar="FILE",
        help="check candidates against this registry snapshot (default: the one a server "
        "config names, else the best available offline)",
    )
    source.add_argument(
        "--no-registry", action="store_true", help="skip the checks against a registry"
    )
    check.add_argument("--strict", action="store_true", help="exit with status 1 on warnings too")
    check.add_argument(
        "--json",
        action="store_true",
        help="print the findings as one JSON document (the shape is in docs/cli.md)",
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


Kind = Literal["policy", "server-config"]


@dataclass
class Findings:
    """What `caproute check` found in one file (and, for a server config, in the files
    it names): printed as text or as the ``--json`` document."""

    kind: Kind
    file: str
    errors: list[PolicyError] = field(default_factory=list)
    warnings: list[PolicyWarning] = field(default_factory=list)
    routes: int | None = None
    """The policy's routes (for a server config, those of the policy it names)."""
    registry: Registry | None = None
    """What the candidates were checked against (`None`: not checked)."""
    server: dict[str, Any] | None = None
    """A valid server config's mode, upstream, setting count and the files it names."""

    def exit_status(self, strict: bool) -> int:
        """1 on errors, and on warnings with ``--strict``; else 0."""
        return 1 if self.errors or (strict and self.warnings) else 0

    def to_json(self, strict: bool) -> dict[str, Any]:
        """The ``--json`` document: the same keys for a policy and a server config."""
        return {
            "kind": self.kind,
            "file": self.file,
            "valid": not self.errors,
            "routes": self.routes,
            "errors": [_issue(e) for e in self.errors],
            "warnings": [_issue(w) for w in self.warnings],
            "registry": None if self.registry is None else self.registry.source.describe(),
            "server": self.server,
            "strict": strict,
            "exit_status": self.exit_status(strict),
        }

    def print_text(self, strict: bool) -> None:
        """Errors and warnings on stderr, one line each, then the summary on stdout."""
        for error in self.errors:
            print(error, file=sys.stderr)
        if self.errors:
            named = " and the files it names" if self.kind == "server-config" else ""
            print(f"{plural(len(self.errors), 'error')} in {self.file}{named}", file=sys.stderr)
            return
        for warning in self.warnings:
            print(warning, file=sys.stderr)
        summary = ""
        if self.server is not None:
            summary = (
                f"server config ({self.server['mode']}, upstream {self.server['upstream']}, "
                f"{plural(self.server['settings'], 'setting')})"
            )
            if self.server["policy"] is not None:
                summary += f"; policy {self.server['policy']}: "
        if self.routes is not None:
            summary += plural(self.routes, "route")
            if self.registry is not None:
                summary += f", {plural(len(self.warnings), 'warning')} "
                summary += f"(registry: {self.registry.source.describe()})"
        print("ok: " + summary)
        if self.exit_status(strict):
            print(
                f"exit status 1: --strict counts the {plural(len(self.warnings), 'warning')} "
                "above as errors",
                file=sys.stderr,
            )


def run_check(args: argparse.Namespace) -> int:
    """Check a policy or a server config; print the findings; 1 on errors (or --strict)."""
    from .._proxy._settings import looks_like_server_config
    from .._registry.policy_files import read_policy_text

    text = read_policy_text(args.policy)
    if _looks_like_server_config(text, looks_like_server_config):
        findings = _check_server_config(text, args)
    else:
        findings = Findings("policy", args.policy)
        _check_policy(
            findings, text, args.policy, registry=not args.no_registry, snapshot=args.snapshot
        )
    if args.json:
        print_json(findings.to_json(args.strict))
    else:
        findings.print_text(args.strict)
    return findings.exit_status(args.strict)


def _looks_like_server_config(text: str, looks: Callable[[str], bool]) -> bool:
    """`looks` (a plain YAML read), False when the text is too deep to read that way: it
    is then checked as a policy, whose loader reports where the nesting goes too deep."""
    try:
        return looks(text)
    except RecursionError:
        return False


def _check_policy(
    findings: Findings, text: str, file: str, *, registry: bool, snapshot: str | Path | None
) -> None:
    """Add a policy's errors, or its route count and, with `registry`, its warnings
    against the `snapshot` file (else the best registry available offline)."""
    from .._core.policy_check import check_policy_text, registry_warnings
    from .._registry.policy_files import policy_limits

    policy: Policy | None
    policy, errors = check_policy_text(text, filename=file, limits=policy_limits())
    findings.errors += errors
    if policy is None:
        return
    findings.routes = len(policy.routes)
    if registry:
        findings.registry = _registry(snapshot)
        findings.warnings += registry_warnings(policy, findings.registry)


def _check_server_config(text: str, args: argparse.Namespace) -> Findings:
    """A server config's errors (its named files' included), or what it sets, and the
    findings of the policy it names, against the snapshot it names."""
    from .._core.policy_check import PolicyWarning
    from .._proxy._settings import check_config_text
    from .._registry.policy_files import read_policy_text

    findings = Findings("server-config", args.policy)
    values, errors = check_config_text(text, filename=args.policy)
    findings.errors += errors
    if values is None:
        return findings
    # Again, with the files it names: their problems are located at their keys.
    _, file_errors = check_config_text(text, filename=args.policy, files=True)
    findings.errors += file_errors
    broken = {error.path for error in file_errors}
    policy = values.get("policy")
    snapshot = values.get("snapshot")
    own_key = "api_key_env" in values
    findings.server = {
        "mode": "own-key" if own_key else "pass-through",
        "upstream": values.get("upstream", "https://api.anthropic.com"),
        "settings": len(values),
        "policy": None if policy is None else str(policy),
        "snapshot": None if snapshot is None else str(snapshot),
    }
    if own_key and "require_token_env" not in values:
        findings.warnings.append(
            PolicyWarning(
                "own-key mode needs a local token, and this file names none: `caproute "
                "serve` refuses to start unless CAPROUTE_REQUIRE_TOKEN_ENV (or "
                "--require-token-env) gives one; add credentials.require_token_env",
                args.policy,
                None,
                None,
                "credentials",
            )
        )
    if policy is not None and "policy" not in broken:
        # Warnings against --snapshot, else the snapshot the proxy would route with.
        _check_policy(
            findings,
            read_policy_text(policy),
            str(policy),
            registry=not args.no_registry and (args.snapshot or "snapshot" not in broken),
            snapshot=args.snapshot or snapshot,
        )
    return findings


def _issue(issue: PolicyError | PolicyWarning) -> dict[str, Any]:
    """An error or warning as JSON: where (file, line, column, path) and what."""
    return {
        "file": issue.file,
        "line": issue.line,
        "column": issue.column,
        "path": issue.path,
        "message": issue.message,
    }


def _registry(snapshot: str | Path | None) -> Registry:
    """The registry to check candidates against: the named snapshot, or the best offline one."""
    from .._registry.snapshot import initial_registry

    return initial_registry(snapshot)


def run_schema(_args: argparse.Namespace) -> int:
    """Print the JSON Schema (indent 2)."""
    from .._core.policy import policy_json_schema

    print_json(policy_json_schema())
    return 0
