"""Run a package's own test suite unwrapped and with every anthropic client wrapped; compare.

Two suites (``--suite``): the anthropic SDK's (``make test-sdk-suite``, in
``.venv-sdk-suite``) and langchain-anthropic's unit tests (``make
test-langchain-suite``, in ``.venv-langchain-suite``); each environment holds that
suite's test dependencies, kept out of the project's. Steps:

1. the sdist of the installed version is downloaded once (``pip download
   --no-deps --no-binary :all:``) into ``.cache/<suite>/`` and unpacked;
2. its tests (the SDK's ``tests/`` without ``tests/api_resources``, which needs a mock
   server; langchain-anthropic's ``tests/unit_tests``, sockets disabled as its own
   Makefile runs them) run once unwrapped, then once per configuration with every
   ``Anthropic`` / ``AsyncAnthropic`` the tests build replaced by
   ``caproute.wrap(client)`` (`caproute_sdk_suite.py`);
3. a test that fails wrapped but not unwrapped is a difference; it must be listed in
   the suite's expected-differences file with its reason, else this exits 1. A listed
   test that no longer differs is reported too (the list is kept exact).

Configurations are ``VIA:REGISTRY``: VIA ``transport`` (what ``auto`` takes) or
``middleware``, REGISTRY ``live`` (default ``wrap()``) or ``embedded``
(``registry=caproute.embedded_registry()``).
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import functools
import importlib.metadata
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# `via="auto"` is the transport (src/caproute/_wrap/client.py): measured as "transport".
DEFAULT_CONFIGS = ("transport:live", "transport:embedded", "middleware:live",
                   "middleware:embedded")  # fmt: skip
FAILED = ("failed", "error")


@dataclasses.dataclass(frozen=True)
class Suite:
    """A package whose own tests are run wrapped."""

    package: str  # its name on the package index
    tests: tuple[str, ...]  # what pytest runs, relative to the unpacked sdist
    pytest_args: tuple[str, ...]  # options it needs, as the package's own CI runs it
    expected: Path


SUITES = {
    "anthropic": Suite(
        "anthropic",
        ("tests", "--ignore=tests/api_resources"),
        ("-o", "addopts=", "-p", "tests._alias_httpx"),
        HERE / "expected-differences.txt",
    ),
    "langchain-anthropic": Suite(
        "langchain-anthropic",
        ("tests/unit_tests",),
        ("--disable-socket", "--allow-unix-socket"),
        HERE / "expected-differences-langchain.txt",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="anthropic")
    parser.add_argument("--sdk-version", help="the suite's version (default: the one installed)")
    parser.add_argument(
        "--cache",
        type=Path,
        help="default: .cache/sdk-suite (anthropic), .cache/<suite>-suite (others)",
    )
    parser.add_argument(
        "--config", action="append", help=f"VIA:REGISTRY (default: {DEFAULT_CONFIGS})"
    )
    parser.add_argument("--baseline-only", dest="config", action="store_const", const=[])
    parser.add_argument("--expected", type=Path, help="default: the suite's own list")
    parser.add_argument("--reuse", action="store_true", help="reuse result files of earlier runs")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    kind = SUITES[args.suite]
    version = args.sdk_version or importlib.metadata.version(kind.package)
    cache = args.cache or ROOT / ".cache" / (
        "sdk-suite" if args.suite == "anthropic" else f"{args.suite}-suite"
    )
    suite = _suite(cache, kind.package, version)
    results_dir = cache / f"results-{version}"
    results_dir.mkdir(exist_ok=True)
    run = functools.partial(_run, suite, kind, results_dir=results_dir, reuse=args.reuse,
                            extra=args.pytest_args)  # fmt: skip

    baseline = run("off", "live")
    expected = _expected(args.expected or kind.expected)
    status = 0
    for config in DEFAULT_CONFIGS if args.config is None else args.config:
        via, _, registry = config.partition(":")
        registry = registry or "live"
        result = run(via, registry)
        result = _rerun_unexplained(
            suite, kind, via, registry, results_dir, baseline, result, expected
        )
        status |= _compare(config, baseline, result, expected)
    return status


def _rerun_unexplained(
    suite: Path,
    kind: Suite,
    via: str,
    registry: str,
    results_dir: Path,
    baseline: dict[str, object],
    result: dict[str, object],
    expected: list[tuple[str, str, str]],
) -> dict[str, object]:
    """`result` with each unlisted wrapped-only failure run once more, alone: a test that
    passes then was disturbed by the machine (timing tests under load), not by caproute."""
    reference: dict[str, str] = baseline["outcomes"]  # type: ignore[assignment]
    outcomes: dict[str, str] = result["outcomes"]  # type: ignore[assignment]
    config = f"{via}:{registry}"
    patterns = [p for c, p, _ in expected if fnmatch.fnmatch(config, c)]
    suspects = [
        test for test, outcome in outcomes.items()
        if outcome in FAILED and reference.get(test) not in FAILED
        and not any(fnmatch.fnmatch(test, p) for p in patterns)
    ]  # fmt: skip
    if not suspects:
        return result
    ids = results_dir / f"rerun-{via}-{registry}.txt"
    ids.write_text("\n".join(suspects))
    rerun = results_dir / f"rerun-{via}-{registry}.json"
    code = (
        "import sys, pytest; ids = open(sys.argv[1]).read().splitlines(); "
        "sys.exit(pytest.main([*sys.argv[2:], *ids]))"
    )
    env = _env(suite, via, registry, rerun, results_dir)
    command = [sys.executable, "-c", code, str(ids), "-q", "-p", "no:cacheprovider",
               *kind.pytest_args, "-p", "caproute_sdk_suite"]  # fmt: skip
    subprocess.run(command, cwd=suite, env=env, stdout=subprocess.DEVNULL, check=False)
    again: dict[str, str] = json.loads(rerun.read_text())["outcomes"]
    flaky = sorted(test for test in suspects if again.get(test) not in FAILED)
    for test in flaky:
        say(f"  {config}: passed when run again (load-sensitive, not counted): {test}")
    return {**result, "outcomes": {**outcomes, **{test: "flaky" for test in flaky}}}


def _env(suite: Path, via: str, registry: str, results: Path, results_dir: Path) -> dict[str, str]:
    name = "unwrapped" if via == "off" else f"{via}-{registry}"
    return {
        **os.environ,
        "CAPROUTE_SDK_SUITE_WRAP": via,
        "CAPROUTE_SDK_SUITE_REGISTRY": registry,
        "CAPROUTE_SDK_SUITE_RESULTS": str(results),
        "PYTHONPATH": os.pathsep.join([str(HERE), str(suite)]),
        # A registry cache written by one run must not decide for the next.
        "XDG_CACHE_HOME": str(results_dir / f"xdg-{name}"),
    }


def _suite(cache: Path, package: str, version: str) -> Path:
    """The unpacked sdist of `package` `version` (downloaded on first use)."""
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"{package.replace('-', '_')}-{version}"  # how the sdist names itself
    suite = cache / stem
    if (suite / "tests").is_dir():
        return suite
    sdist = cache / f"{stem}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", f"{package}=={version}", "-d", str(cache)],
            check=True,
        )  # fmt: skip
    with tarfile.open(sdist) as archive:
        archive.extractall(cache, filter="data")
    return suite


def _run(
    suite: Path,
    kind: Suite,
    via: str,
    registry: str,
    *,
    results_dir: Path,
    reuse: bool,
    extra: list[str],
) -> dict[str, object]:
    name = "unwrapped" if via == "off" else f"{via}-{registry}"
    results = results_dir / f"{name}.json"
    if not (reuse and results.exists()):
        env = _env(suite, via, registry, results, results_dir)
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *kind.pytest_args,
            "-p", "caproute_sdk_suite", "--continue-on-collection-errors", "--tb=line", "-rN",
            *kind.tests, *extra,
        ]  # fmt: skip
        started = time.monotonic()
        subprocess.run(command, cwd=suite, env=env, stdout=subprocess.DEVNULL, check=False)
        elapsed = time.monotonic() - started
        data = json.loads(results.read_text())
        data["seconds"] = round(elapsed, 1)
        results.write_text(json.dumps(data, indent=0))
    data = json.loads(results.read_text())
    outcomes = data["outcomes"]
    failed = sum(1 for outcome in outcomes.values() if outcome in FAILED)
    say(f"{name}: {len(outcomes)} tests, {failed} failed, {data.get('seconds')} s, "
          f"{data.get('wrapped_clients')} clients wrapped")  # fmt: skip
    return data


def _expected(path: Path) -> list[tuple[str, str, str]]:
    """(config pattern, test id pattern, reason) for each listed difference."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = [part.strip() for part in line.split(" :: ")]
        if len(parts) != 3 or not all(parts):
            raise SystemExit(f"{path}:{number}: expected 'CONFIG :: TEST ID :: REASON'")
        entries.append((parts[0], parts[1], parts[2]))
    return entries


def _compare(
    config: str,
    baseline: dict[str, object],
    result: dict[str, object],
    expected: list[tuple[str, str, str]],
) -> int:
    reference: dict[str, str] = baseline["outcomes"]  # type: ignore[assignment]
    outcomes: dict[str, str] = result["outcomes"]  # type: ignore[assignment]
    config = config if ":" in config else f"{config}:live"
    differences = sorted(
        test for test, outcome in outcomes.items()
        if outcome in FAILED and reference.get(test) not in FAILED
    )  # fmt: skip
    missing = sorted(set(reference) - set(outcomes))
    listed = [(c, t, r) for c, t, r in expected if fnmatch.fnmatch(config, c)]
    unexplained = [t for t in differences if not any(fnmatch.fnmatch(t, p) for _, p, _ in listed)]
    stale = [p for _, p, _ in listed if not any(fnmatch.fnmatch(t, p) for t in differences)]
    fixed = sorted(t for t, o in outcomes.items() if o not in FAILED and reference.get(t) in FAILED)
    say(f"  {config}: {len(differences)} wrapped-only failures "
          f"({len(differences) - len(unexplained)} listed), {len(unexplained)} unexplained, "
          f"{len(missing)} not run, {len(fixed)} pass only wrapped")  # fmt: skip
    for test in unexplained:
        say(f"    UNEXPLAINED {test}")
    for test in missing:
        say(f"    NOT RUN {test}")
    for pattern in stale:
        say(f"    listed but passes now (remove it): {pattern}")
    return 1 if unexplained or missing else 0


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
