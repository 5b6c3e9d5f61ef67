"""`caproute batch`: a JSONL file of requests through the Message Batches API, crash-safely.

    caproute batch submit REQUESTS.jsonl --state DIR [--policy P] [--dry-run]
    caproute batch status --state DIR [--json]
    caproute batch wait --state DIR
    caproute batch results --state DIR --out RESULTS.jsonl [--retry-errored]
    caproute batch cancel --state DIR

Every command works on the job kept in ``DIR`` (see docs/batches.md); `submit` can be
run again after any interruption and picks up where it stopped. Progress goes to
stderr: a progress bar (rich) on a terminal, plain lines otherwise. rich and the batch
machinery are imported inside the commands, so ``caproute --help`` stays quick.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._output import print_json

if TYPE_CHECKING:
    from .._batch.job import BatchJob, BatchStatus
    from .._batch.plan import BatchLimits, BatchPlan


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `batch` command and its subcommands."""
    batch = subparsers.add_parser(
        "batch",
        help="run a JSONL file of requests through the Message Batches API",
        description=(
            "Route every request of a JSONL file, submit them as Message Batches, follow "
            "them and merge their results. The job lives in a state directory: every "
            "command can be interrupted and run again."
        ),
    )
    commands = batch.add_subparsers(dest="batch_command", metavar="SUBCOMMAND")
    batch.set_defaults(func=lambda _args: _usage(batch))

    submit = commands.add_parser(
        "submit",
        help="check, route and submit a JSONL file (resumes an interrupted submission)",
        description=(
            "Check every line ({custom_id, params}), route every request, print what "
            "was rerouted, adjusted or refused, then submit API-sized batches. Run it "
            "again with the same --state after any interruption: nothing is submitted "
            "twice. Exit status 1 when the file has bad lines (nothing is submitted)."
        ),
    )
    submit.add_argument("requests", metavar="REQUESTS.jsonl", help="one request per line")
    _state_option(submit, required=False)
    submit.add_argument("--policy", metavar="FILE", help="routing policy (YAML)")
    submit.add_argument(
        "--dry-run", action="store_true", help="route and summarise only; nothing is kept or sent"
    )
    submit.add_argument("--json", action="store_true", help="print the plan as JSON")
    submit.add_argument(
        "--max-requests",
        type=int,
        metavar="N",
        help="requests per batch (default and maximum: 100000)",
    )
    submit.add_argument(
        "--max-bytes",
        type=int,
        metavar="N",
        help="bytes per batch (default and maximum: 256000000)",
    )
    submit.add_argument(
        "--api-version",
        default="2023-06-01",
        metavar="VERSION",
        help="the anthropic-version to send (default: 2023-06-01)",
    )
    submit.add_argument(
        "--beta",
        action="append",
        default=[],
        metavar="NAME",
        help="an anthropic-beta value for the batches (repeatable)",
    )
    submit.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a header for policy routes that match on headers (repeatable); "
        "used for routing only, never sent; recorded for retries",
    )
    submit.add_argument(
        "--allow-unknown",
        action="store_true",
        help="send requests to a model whose support of what they need is unknown "
        "(refused locally by default: the API would error them only when the batch "
        "ends); recorded for retries",
    )
    _api_options(submit, submits=True)
    submit.set_defaults(func=run_submit)

    _job_command(
        commands,
        "status",
        "check every batch of the job once",
        "Check every batch of the job once: one row per batch, then the totals.",
        "print the status as JSON",
        run_status,
    )
    _job_command(
        commands,
        "wait",
        "follow the batches until all have ended",
        "Check the batches until every one has ended: progress bars on a terminal, "
        "a line on stderr whenever the counts change otherwise.",
        "print the final status as JSON",
        run_wait,
        polls=True,
    )
    results = _job_command(
        commands,
        "results",
        "merge every result into one JSONL file (one line per custom_id)",
        "Download the results of every batch and write one line per input custom_id: "
        "the API's result, or {type: refused, reason} for a request caproute refused, "
        "each with its routing decision.",
        "print what was written as JSON (the retry plan goes to stderr)",
        run_results,
        polls=True,
        submits=True,
    )
    results.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    results.add_argument(
        "--retry-errored",
        action="store_true",
        help="first resubmit (re-routed) the requests that came back errored or expired, "
        "and wait for them",
    )
    results.add_argument("--policy", metavar="FILE", help="policy for re-routing the retries")
    _job_command(
        commands,
        "cancel",
        "cancel the job and its running batches",
        "Submit nothing more and cancel the batches still running; requests never sent "
        "come out as {type: canceled} in the results.",
        "print the final status as JSON",
        run_cancel,
        submits=True,
    )


def _job_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    json_help: str,
    run: Callable[[argparse.Namespace], int],
    *,
    polls: bool = False,
    submits: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand acting on the job in ``--state``."""
    parser = commands.add_parser(name, help=summary, description=description)
    _state_option(parser)
    _json_option(parser, json_help)
    _api_options(parser, polls=polls, submits=submits)
    parser.set_defaults(func=run)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _state_option(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--state",
        required=required,
        metavar="DIR",
        help="the job's state directory" + ("" if required else " (required unless --dry-run)"),
    )


def _json_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--json", action="store_true", help=help_text)


def _print_plan(plan: BatchPlan, *, as_json: bool) -> None:
    if as_json:
        print_json(plan.to_dict())
    else:
        print(plan.summary())


def _api_options(
    parser: argparse.ArgumentParser, *, polls: bool = False, submits: bool = False
) -> None:
    """Where the API is and how to reach it; the timing options only for the commands
    that use them (`polls`: follows batches until they end; `submits`: may resolve an
    interrupted submission)."""
    parser.add_argument(
        "--base-url", metavar="URL", help="the API's base URL (default: ANTHROPIC_BASE_URL)"
    )
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="read the API key from this environment variable (default: ANTHROPIC_API_KEY, "
        "else ANTHROPIC_AUTH_TOKEN as a bearer token)",
    )
    if polls:
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=10.0,
            metavar="SECONDS",
            help="first wait between status checks; grows while nothing changes (default: 10)",
        )
        parser.add_argument(
            "--max-poll-interval",
            type=float,
            default=300.0,
            metavar="SECONDS",
            help="longest wait between status checks (default: 300)",
        )
    if submits:
        parser.add_argument(
            "--reconcile-grace",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="after an interrupted submission, seconds to let pass since it before "
            "checking the API's batch list (default: 60)",
        )


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _on_interrupt(state: str, what: str) -> Iterator[None]:
    """Say what a Ctrl-C leaves behind (the batches run on at the API) and how to go on;
    the exit status stays 130."""
    try:
        yield
    except KeyboardInterrupt:
        _note(
            f"\ninterrupted: {what}; the batches already submitted keep running at the API "
            "(nothing was canceled). Follow them with "
            f"`caproute batch wait --state {state}`, merge with "
            f"`caproute batch results --state {state} --out FILE`, or stop them with "
            f"`caproute batch cancel --state {state}`."
        )
        raise


def _credentials(args: argparse.Namespace) -> dict[str, Any]:
    from .models import secret_from_env

    return {
        "base_url": args.base_url,
        "api_key": secret_from_env(args.api_key_env, "--api-key-env"),
    }


def _job_options(args: argparse.Namespace) -> dict[str, Any]:
    timing = {
        name: getattr(args, name)
        for name in ("poll_interval", "max_poll_interval", "reconcile_grace")
        if hasattr(args, name)  # only the commands that use an option take it
    }
    return {**_credentials(args), **timing, "on_event": _note}


def _open(args: argparse.Namespace) -> BatchJob:
    from .._batch.job import BatchJob

    return BatchJob.open(args.state, **_job_options(args))


def _limits(args: argparse.Namespace) -> BatchLimits | None:
    from .._batch.plan import BatchLimits
    from .._exceptions import ConfigError

    if args.max_requests is None and args.max_bytes is None:
        return None  # the API's limits; and a resume asks for nothing new
    defaults = BatchLimits()
    try:
        return BatchLimits(
            args.max_requests if args.max_requests is not None else defaults.max_requests,
            args.max_bytes if args.max_bytes is not None else defaults.max_bytes,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


# -- submit ------------------------------------------------------------------------------------


def run_submit(args: argparse.Namespace) -> int:
    """Plan (or reopen) the job, print the plan, submit what is left."""
    from .._batch.job import BatchJob
    from .._exceptions import ConfigError
    from .route import parse_headers

    routing = {
        "policy": args.policy,
        "limits": _limits(args),
        "api_version": args.api_version,
        "betas": tuple(args.beta),
        "headers": parse_headers(args.header),
        "allow_unknown": args.allow_unknown,
    }
    if args.dry_run:
        plan = BatchJob.dry_run(args.requests, **_credentials(args), **routing)
        _print_plan(plan, as_json=args.json)
        return 0
    if not args.state:
        raise ConfigError("--state DIR is required (unless --dry-run)")
    with BatchJob.create(args.requests, args.state, **routing, **_job_options(args)) as job:
        if job.canceled:
            # Exit 1: a script that re-runs submit must not read "nothing sent" as success.
            raise ConfigError(
                f"{args.state}: the job was canceled, so nothing more is submitted; "
                "to run these requests again, submit them with a new --state directory"
            )
        if not job.planned_now:
            _note(f"resuming the job in {args.state} (planned earlier):")
        _print_plan(job.plan, as_json=args.json)
        sys.stdout.flush()
        what = "run the same submit command again to submit the rest (nothing twice)"
        with _on_interrupt(args.state, what):
            sent = job.submit()
        status = job.status()
        _note(f"submitted {sent} batch(es) now; " + status.summary())
    return 0


# -- status and wait ---------------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    """Check every batch once and print a table (or JSON)."""
    with _open(args) as job:
        status = job.status()
    if args.json:
        print_json(status.to_dict())
    else:
        print(render_status(status))
    return 0


def render_status(status: BatchStatus) -> str:
    """One row per chunk, then the totals (plain text: it goes to files and pipes too)."""
    header = ("chunk", "lines", "batch", "status", "proc", "ok", "err", "exp", "cancel")
    rows: list[tuple[str, ...]] = [header]
    for b in status.batches:
        state = b.processing_status or b.submission
        c = b.counts
        rows.append(
            (
                f"r{b.round}c{b.chunk}",
                f"{b.first_line}-{b.last_line}",
                b.batch_id or "-",
                state,
                *(str(n) for n in (c.processing, c.succeeded, c.errored, c.expired, c.canceled)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 4 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.append(status.summary())
    return "\n".join(lines)


def run_wait(args: argparse.Namespace) -> int:
    """Poll until every batch has ended, with a progress display on stderr."""
    with (
        _on_interrupt(args.state, "stopped following"),
        _open(args) as job,
        _progress_display() as show,
    ):
        status = job.wait(on_progress=show)
    if args.json:
        print_json(status.to_dict())
    else:
        _note(status.summary())
    return 0


class _PlainProgress:
    """A line on stderr whenever the counts change (for logs and pipes)."""

    def __init__(self) -> None:
        self._last = ""

    def __call__(self, status: BatchStatus) -> None:
        text = status.summary()
        if text != self._last:
            self._last = text
            _note(time.strftime("%H:%M:%S ") + text)

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


_MAX_BATCH_ROWS = 20
"""Per-batch bars shown (the unfinished ones first); the overall bar is always shown."""


class _RichProgress:
    """Bars on a terminal: one overall, one per batch (up to `_MAX_BATCH_ROWS`)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            console=Console(stderr=True),
        )
        self._overall = self._progress.add_task("all batches", total=None, counts="")
        self._rows: dict[str, Any] = {}

    def __call__(self, status: BatchStatus) -> None:
        total = sum(b.requests for b in status.batches if b.submission == "submitted")
        self._progress.update(
            self._overall,
            total=total or None,
            completed=status.counts.done,
            counts=_counts_text(status.counts) + f"  refused {status.refused:,}",
        )
        running = sorted(
            (b for b in status.batches if b.batch_id is not None),
            key=lambda b: (b.ended, b.round, b.chunk),
        )
        for batch in running[:_MAX_BATCH_ROWS]:
            assert batch.batch_id is not None
            task = self._rows.get(batch.batch_id)
            if task is None:
                name = f"r{batch.round}c{batch.chunk} {batch.batch_id[-8:]}"
                task = self._progress.add_task(name, total=batch.requests, counts="")
                self._rows[batch.batch_id] = task
            self._progress.update(
                task, completed=batch.counts.done, counts=_counts_text(batch.counts)
            )

    def __enter__(self) -> _RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()


def _counts_text(counts: Any) -> str:
    return (
        f"ok {counts.succeeded:,}  err {counts.errored:,}  "
        f"exp {counts.expired:,}  cancel {counts.canceled:,}"
    )


def _progress_display() -> _PlainProgress | _RichProgress:
    return _RichProgress() if sys.stderr.isatty() else _PlainProgress()


# -- results and cancel ------------------------------------------------------------------------


def run_results(args: argparse.Namespace) -> int:
    """Write the merged results (after an optional retry round)."""
    with _open(args) as job:
        # Before a retry round is submitted, not after: --out must not be the input.
        job.check_output(args.out)
        if args.retry_errored:
            plan = job.retry_errored(policy=args.policy)
            if plan is not None:
                if args.json:
                    _note(plan.summary())
                else:
                    print(plan.summary())
                    sys.stdout.flush()
                what = "the retry round is submitted; no results file was written"
                with _on_interrupt(args.state, what), _progress_display() as show:
                    job.wait(on_progress=show)
        report = job.write_results(args.out)
    if args.json:
        print_json(report.to_dict())
    else:
        _note(report.summary())
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    """Cancel the job: nothing more is submitted; running batches are canceled."""
    with _open(args) as job:
        status = job.cancel()
    if args.json:
        print_json(status.to_dict())
    else:
        _note("canceled; " + status.summary())
    return 0
