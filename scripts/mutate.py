# ruff: noqa: T201 (a command-line script: printing is its job)
"""Mutation testing by area: mutmut over one part of the package with the tests that
cover it, a score per area, and the surviving mutants in a report.

Usage (``make mutate`` runs the first form in its own venv, ``.venv-mutate``)::

    python scripts/mutate.py                       # every area, one after another
    python scripts/mutate.py --area core           # one area (repeat --area for more)
    python scripts/mutate.py --changed             # the areas whose files changed vs main,
                                                   # and only the mutants of those files
    python scripts/mutate.py --report-only         # rebuild the report from the last runs
    python scripts/mutate.py --jobs 2              # two areas side by side

Each area runs in its own copy of the tree (``.venv-mutate/work/<area>``: mutmut
writes its ``mutants/`` directory next to the ``pyproject.toml`` it reads, and the
copy's ``pyproject.toml`` gets the area's ``[tool.mutmut]`` section), so areas can run
in parallel, the repository's own config stays untouched (``make test`` never sees
mutmut), and a later run of the same area is incremental: mutmut re-runs only the
mutants of functions that changed.

Score = (killed + timed out) / (every mutant - the reviewed equivalents). A mutant no
test reaches ("no tests") counts as a survivor: a line nothing runs is a gap too.
Equivalent mutants (no test can kill them: the program behaves the same) are listed
in ``tests/mutation/equivalent.txt``, one per line with the reason after ``#``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".venv-mutate" / "work"
EQUIVALENTS = ROOT / "tests" / "mutation" / "equivalent.txt"
REPORT = ROOT / "docs" / "mutation-report.md"
TIMINGS = WORK / "timings.json"


@dataclass(frozen=True)
class Area:
    name: str
    files: tuple[str, ...]
    """Globs (relative to the repository) of the files to mutate."""
    tests: tuple[str, ...]
    """The tests that cover them (mutmut runs, per mutant, only those that reach the
    mutated function)."""
    target: float
    """The score this area must reach."""
    exclude: tuple[str, ...] = ()
    """Globs matched by `files` that belong to another area (mutmut's ``do_not_mutate``)."""

    def mutates(self, path: str) -> bool:
        """Whether `path` (relative to the repository) is one of this area's files."""
        return any(fnmatch.fnmatch(path, p) for p in self.files) and not any(
            fnmatch.fnmatch(path, p) for p in self.exclude
        )


# Test selections name directories where they can: a test file added there later is
# picked up without changing the selection (which would make mutmut start over).
REGRESSIONS = "tests/regressions"
AREAS: tuple[Area, ...] = (
    Area(
        "core",
        ("src/caproute/_core/*.py",),
        ("tests/core", REGRESSIONS, "tests/test_sans_io.py"),
        0.95,
        # Their own areas below, with the tests that cover them.
        exclude=("src/caproute/_core/body.py", "src/caproute/_core/secrets.py"),
    ),
    Area(
        "runtime",
        ("src/caproute/_runtime/*.py", "src/caproute/_registry/*.py", "src/caproute/_http/*.py"),
        (
            "tests/shells",
            "tests/integration/test_self_healing.py",
            "tests/integration/test_transports.py",
            "tests/integration/test_middleware.py",
            "tests/integration/test_live_rules.py",
            REGRESSIONS,
        ),
        0.90,
    ),
    Area("proxy", ("src/caproute/_proxy/*.py",), ("tests/proxy", REGRESSIONS), 0.90),
    Area("batch", ("src/caproute/_batch/*.py",), ("tests/batch", REGRESSIONS), 0.90),
    Area(
        "body",
        ("src/caproute/_core/body.py",),
        (
            "tests/reliability/test_sidestep.py",
            "tests/reliability/test_malformed_bodies.py",
            REGRESSIONS,
        ),
        0.90,
    ),
    Area(
        "redaction",
        ("src/caproute/_core/secrets.py", "src/caproute/_logs.py"),
        (
            "tests/reliability/test_secrets.py",
            "tests/core/test_features.py",
            "tests/regressions/test_redaction_regressions.py",
        ),
        0.90,
    ),
)
BY_NAME = {area.name: area for area in AREAS}

# mutmut's exit-code verdicts (mutmut.stats.status_by_exit_code), grouped.
KILLED = {1, 3, 36, 37, -24, 24, 152, 255}  # failed test, timeout, type check
SURVIVED = {0}
NO_TESTS = {5, 33}
SKIPPED = {34}


@dataclass
class Result:
    area: Area
    killed: int = 0
    survived: list[str] = field(default_factory=list)
    no_tests: list[str] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)
    import_time: list[str] = field(default_factory=list)
    """Mutants in code that runs only while the module loads (a rule table, the
    catalogue): mutmut's workers fork after the import, so it can't activate them;
    listed in the equivalents file with an ``import-time:`` reason, checked by hand."""
    unchecked: int = 0
    stale: list[str] = field(default_factory=list)
    """Entries of the equivalents list that name no mutant of the area any more (a
    function changed and mutmut renumbered its mutants): review them again."""
    killed_equivalent: list[str] = field(default_factory=list)
    """Listed as equivalent, yet a test killed it: the entry is wrong, remove it."""
    seconds: float | None = None
    by_file: dict[str, list[int]] = field(default_factory=dict)
    """file -> [killed, left (survived + no test), not run yet]."""

    @property
    def counted(self) -> int:
        return self.killed + len(self.survived) + len(self.no_tests)

    @property
    def score(self) -> float | None:
        return self.killed / self.counted if self.counted else None


def read_equivalents(path: Path = EQUIVALENTS) -> dict[str, str]:
    """``mutant name or glob -> reason`` from the reviewed list (a reason is required).

    A glob (``...__post_init____mutmut_*``) is for a whole function, and only for the
    ``import-time:`` kind: every mutant of such a function is out of mutmut's reach.
    """
    found: dict[str, str] = {}
    if not path.exists():
        return found
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, reason = line.partition("#")
        if not sep or not reason.strip():
            raise SystemExit(f"{path}:{number}: an equivalent mutant needs '# reason'")
        found[name.strip()] = reason.strip()
    return found


def reason_for(name: str, equivalents: dict[str, str]) -> str | None:
    """Why `name` is listed as equivalent (by name, or by an ``import-time`` glob)."""
    if name in equivalents:
        return equivalents[name]
    for pattern, reason in equivalents.items():
        if "*" in pattern and reason.startswith("import-time") and fnmatch.fnmatch(name, pattern):
            return reason
    return None


def changed_files(base: str) -> list[str]:
    out = subprocess.run(
        ["git", "diff", "--name-only", f"{base}...HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    dirty = subprocess.run(
        ["git", "diff", "--name-only", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return sorted(set(out) | set(dirty))


def module_of(path: str) -> str:
    """``src/caproute/_core/learning.py`` -> ``caproute._core.learning``."""
    return path.removeprefix("src/").removesuffix(".py").replace("/", ".")


ALSO_COPY: Final = ("examples", "docs", "scripts")
"""What some tests read besides the code: the shipped policies, the docs, generators."""


def prepare(area: Area) -> Path:
    """A copy of the tree for `area` whose pyproject.toml carries its mutmut config."""
    work = WORK / area.name
    work.mkdir(parents=True, exist_ok=True)
    for name in ("src", "tests", *ALSO_COPY):
        target = work / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    tests = [t for t in area.tests if (ROOT / t).exists()]
    config = (
        "\n[tool.mutmut]\n"
        f"source_paths = {json.dumps(['src/caproute'])}\n"
        f"only_mutate = {json.dumps(list(area.files))}\n"
        f"do_not_mutate = {json.dumps(list(area.exclude))}\n"
        f"also_copy = {json.dumps(list(ALSO_COPY))}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        # -p no:cacheprovider: the copies share nothing; -x: one failure kills the mutant.
        f"pytest_add_cli_args = {json.dumps(['-p', 'no:cacheprovider', '-x', '-q'])}\n"
        "use_git_change_detection = false\n"
    )
    (work / "pyproject.toml").write_text(pyproject + config, encoding="utf-8")
    return work


def read_timings() -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads(TIMINGS.read_text())
    except (OSError, ValueError):  # none yet, or another area is writing it
        return {}
    return found


def run_area(area: Area, *, names: Sequence[str], max_children: int, limit: float) -> float:
    """Run mutmut for `area` (niced, bounded by `limit` seconds); the seconds it took."""
    work = prepare(area)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = ["nice", "-n", "10", str(Path(sys.executable).parent / "mutmut"), "run"]
    command += ["--max-children", str(max_children), *names]
    log = (work / "mutmut.log").open("w")
    started = time.monotonic()
    print(f"[{area.name}] mutmut run ({' '.join(names) or 'all mutants'}); log: {log.name}")
    # A session of its own: on the time limit, mutmut and its workers stop together.
    process = subprocess.Popen(
        command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        print(f"[{area.name}] stopped after {limit:.0f}s: the report shows what was checked")
    seconds = time.monotonic() - started
    timings = read_timings()
    timings[area.name] = {"seconds": round(seconds), "mutants": " ".join(names) or "all"}
    TIMINGS.write_text(json.dumps(timings, indent=2) + "\n")
    print(f"[{area.name}] done in {seconds:.0f}s")
    return seconds


def collect(area: Area, equivalents: dict[str, str]) -> Result:
    """What the last run of `area` found (from mutmut's ``.meta`` files)."""
    result = Result(area)
    mutants = WORK / area.name / "mutants"
    timings = read_timings()
    result.seconds = timings.get(area.name, {}).get("seconds")
    seen: set[str] = set()
    modules: set[str] = set()
    for meta in sorted(mutants.glob("src/**/*.py.meta")):
        source = str(meta.relative_to(mutants)).removesuffix(".meta")
        if not area.mutates(source):
            continue
        try:
            codes = json.loads(meta.read_text())["exit_code_by_key"]
        except ValueError:  # being written by a run in progress: read it next time
            continue
        modules.add(module_of(source))
        seen.update(codes)
        tally = result.by_file.setdefault(source, [0, 0, 0])
        for name, code in sorted(codes.items()):
            reason = reason_for(name, equivalents)
            if reason is not None and code in KILLED and not reason.startswith("import-time"):
                result.killed_equivalent.append(name)
            if reason is None or code in KILLED:  # the listed ones are counted apart
                tally[0 if code in KILLED else 1 if code in SURVIVED | NO_TESTS else 2] += 1
            if reason is not None and code not in KILLED:
                kind = result.import_time if reason.startswith("import-time") else None
                (kind if kind is not None else result.equivalent).append(name)
            elif code in KILLED:
                result.killed += 1
            elif code in SURVIVED:
                result.survived.append(name)
            elif code in NO_TESTS:
                result.no_tests.append(name)
            else:  # not checked yet (None), skipped, interrupted
                result.unchecked += 1
    result.stale = sorted(
        name
        for name in equivalents
        if "*" not in name and name.split(".x", 1)[0] in modules and name not in seen
    )
    return result


def diff_lines(area: Area, name: str) -> list[str]:
    """The lines a mutant changes (``-`` original, ``+`` mutant), from mutmut itself."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant  # .venv-mutate only

    path = "src/" + name.split(".x", 1)[0].replace(".", "/") + ".py"
    here = Path.cwd()
    os.chdir(WORK / area.name)
    try:
        diff = get_diff_for_mutant(name, path=path)
    except Exception as exc:  # a mutant mutmut can't show: say so, keep the report
        return [f"(no diff: {type(exc).__name__})"]
    finally:
        os.chdir(here)
    return [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def write_report(results: Sequence[Result], *, diffs: bool) -> None:
    lines = [
        "# Mutation report",
        "",
        "Written by `make mutate` (scripts/mutate.py); see docs/testing.md for how to run",
        "it and what to do with a survivor. Score = (killed + timed out) / (mutants -",
        "reviewed equivalents); a mutant no test reaches counts as a survivor. Import-time",
        "mutants (code that runs only while a module loads, which mutmut's forked workers",
        "can't activate) are listed apart, in tests/mutation/equivalent.txt, and were",
        "checked by hand.",
        "",
        "| area | files | score | target | killed | survived | no test | equivalent "
        "| import-time | not run | time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        score = "—" if r.score is None else f"{100 * r.score:.1f} %"
        took = "—" if r.seconds is None else f"{r.seconds / 60:.0f} min"
        names = ", ".join(f"`{Path(p).name}`" for p in r.area.exclude)
        excluded = f" but {names}" if names else ""
        lines.append(
            f"| {r.area.name} | `{'`, `'.join(r.area.files)}`{excluded} | {score} | "
            f"{100 * r.area.target:.0f} % | {r.killed} | {len(r.survived)} | "
            f"{len(r.no_tests)} | {len(r.equivalent)} | {len(r.import_time)} | "
            f"{r.unchecked} | {took} |"
        )
    for r in results:
        if len(r.by_file) > 1:
            lines += ["", f"## {r.area.name} by file", ""]
            lines += [
                "| file | killed | left | not run | score so far |",
                "| --- | --- | --- | --- | --- |",
            ]
            for source, (killed, left, waiting) in sorted(r.by_file.items()):
                so_far = f"{100 * killed / (killed + left):.1f} %" if killed + left else "—"
                lines.append(f"| `{source}` | {killed} | {left} | {waiting} | {so_far} |")
    for r in results:
        if r.stale or r.killed_equivalent:
            lines += ["", f"## {r.area.name}: equivalents list entries to review", ""]
            lines += [f"* `{name}` (names no mutant any more)" for name in r.stale]
            lines += [
                f"* `{name}` (a test kills it: not equivalent)" for name in r.killed_equivalent
            ]
    for r in results:
        left = r.survived + r.no_tests
        if not left:
            continue
        lines += ["", f"## {r.area.name}: {len(left)} mutants left", ""]
        for name in left:
            kind = "no test reaches it" if name in r.no_tests else "survived"
            lines.append(f"* `{name}` ({kind})")
            if diffs:
                lines += [f"  `{line.strip()[:150]}`" for line in diff_lines(r.area, name)[:4]]
    REPORT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"report: {REPORT.relative_to(ROOT)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--area", action="append", choices=sorted(BY_NAME), default=[])
    parser.add_argument("--changed", action="store_true", help="only files changed vs --base")
    parser.add_argument("--base", default="main")
    parser.add_argument("--jobs", type=int, default=1, help="areas run side by side (max 2)")
    parser.add_argument("--max-children", type=int, default=None)
    parser.add_argument("--limit", type=float, default=3 * 3600, help="seconds per area")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="run again only the mutants left (survived or unreached) by the last run, "
        "e.g. after adding tests",
    )
    parser.add_argument("--no-diffs", action="store_true", help="report names without diffs")
    args = parser.parse_args(argv)

    areas = [BY_NAME[name] for name in args.area] or list(AREAS)
    names: dict[str, list[str]] = {area.name: [] for area in areas}
    if args.changed:
        changed = changed_files(args.base)
        picked = []
        for area in areas:
            files = [f for f in changed if area.mutates(f)]
            if files:
                picked.append(area)
                names[area.name] = [f"{module_of(f)}.*" for f in files]
        areas = picked
        if not areas:
            print(f"no mutated file changed since {args.base}")
    if args.rerun:
        equivalents = read_equivalents()
        for area in areas:
            left = collect(area, equivalents)
            names[area.name] = left.survived + left.no_tests
        areas = [area for area in areas if names[area.name]]
    jobs = max(1, min(args.jobs, 2))
    children = args.max_children or max(1, (os.cpu_count() or 2) // jobs)
    if not args.report_only:
        WORK.mkdir(parents=True, exist_ok=True)
        if jobs == 1:
            for area in areas:
                run_area(area, names=names[area.name], max_children=children, limit=args.limit)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(jobs) as pool:
                for area in areas:
                    pool.submit(
                        run_area,
                        area,
                        names=names[area.name],
                        max_children=children,
                        limit=args.limit,
                    )
    equivalents = read_equivalents()
    reported = [a for a in AREAS if (WORK / a.name / "mutants").exists()]
    results = [collect(area, equivalents) for area in reported]
    write_report(results, diffs=not args.no_diffs)
    failing = [r for r in results if r.score is not None and r.score < r.area.target]
    for r in results:
        print(f"{r.area.name:10} {'—' if r.score is None else f'{100 * r.score:5.1f} %'}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
