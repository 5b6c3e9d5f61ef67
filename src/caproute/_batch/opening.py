"""Opening a batch job: planning a new one into its state directory, or reopening one.

Blocking (files, SQLite, maybe a registry fetch); an async job runs these in a worker
thread. The keyword options `BatchJob.create`, `open` and `dry_run` take are declared
here once (`CreateOptions` and its parts) and documented on `BatchJob.create`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypedDict

from .._exceptions import ConfigError
from .._runtime.live import LiveRouter, PolicyInput
from .api import DEFAULT_API_VERSION, ApiSettings, api_settings, resolve_base_url
from .input import check_input
from .plan import BatchLimits, BatchPlan
from .rounds import RouterLink, RoutingSettings, plan_first_round
from .steps import EventHook, JobSettings, JobSteps, Timing
from .store import BatchStateError, StateDir

__all__ = [
    "ApiOptions",
    "CreateOptions",
    "JobOptions",
    "PlanOptions",
    "create_job",
    "dry_run_plan",
    "open_job",
    "retry_router",
    "routing_headers",
]

logger = logging.getLogger("caproute.batch")


class ApiOptions(TypedDict, total=False):
    """Where the API is and the credentials for it (never written anywhere)."""

    base_url: str | None
    api_key: str | None
    auth_token: str | None


class JobOptions(ApiOptions, total=False):
    """What `BatchJob.open` takes: the API, how to poll, where events go."""

    poll_interval: float
    max_poll_interval: float
    reconcile_grace: float
    on_event: EventHook | None


class PlanOptions(ApiOptions, total=False):
    """What `BatchJob.dry_run` takes: how every request is routed."""

    router: LiveRouter | None
    policy: PolicyInput
    limits: BatchLimits | None
    api_version: str
    betas: Sequence[str]
    headers: Mapping[str, str] | None
    allow_unknown: bool


class CreateOptions(PlanOptions, JobOptions, total=False):
    """What `BatchJob.create` takes: everything."""


def check_keywords(options: Mapping[str, object], accepted: Any) -> None:
    """Refuse a keyword the method does not take, as a plain signature would.

    Raises:
        TypeError: One of `options` is not a key of `accepted`.
    """
    unknown = options.keys() - accepted.__optional_keys__  # a TypedDict class
    if unknown:
        raise TypeError(f"unexpected keyword argument {min(unknown)!r}")


def job_settings(options: JobOptions) -> JobSettings:
    """The settings an opened job keeps (defaults filled in)."""
    timing = Timing(
        poll_interval=options.get("poll_interval", 10.0),
        max_poll_interval=options.get("max_poll_interval", 300.0),
        reconcile_grace=options.get("reconcile_grace", 60.0),
    )
    return JobSettings(
        base_url=options.get("base_url"),
        api_key=options.get("api_key"),
        auth_token=options.get("auth_token"),
        timing=timing,
        on_event=options.get("on_event"),
    )


def routing_settings(options: PlanOptions) -> RoutingSettings:
    """How every request of the job is routed (defaults filled in, headers checked)."""
    return RoutingSettings(
        api_version=options.get("api_version", DEFAULT_API_VERSION),
        betas=tuple(options.get("betas", ())),
        limits=options.get("limits") or BatchLimits(),
        headers=tuple(routing_headers(options.get("headers")).items()),
        allow_unknown=options.get("allow_unknown", False),
    )


_CREDENTIAL_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "cookie"}
)


def routing_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers a job routes with: names lower-cased, no credentials (they would be
    written to ``job.json``).

    Raises:
        ConfigError: A credential header, or a name or value that is not a string.
    """
    result: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigError(f"headers: expected strings, got {name!r}: {value!r}")
        if name.lower() in _CREDENTIAL_HEADERS:
            raise ConfigError(
                f"headers: {name!r} carries a credential, which a job never records; "
                "give credentials as api_key / auth_token or in ANTHROPIC_API_KEY"
            )
        result[name.lower()] = value
    return result


def _default_router(
    router: LiveRouter | None,
    policy: PolicyInput,
    *,
    base_url: str,
    api_key: str | None,
    auth_token: str | None,
    api_version: str,
    betas: Sequence[str],
) -> tuple[LiveRouter, bool]:
    """`router`, or a new one on the freshest registry there is; True if it is ours."""
    if router is not None:
        if policy is not None:
            raise TypeError("pass either `router` or `policy`, not both")
        return router, False
    env = os.environ
    if api_key or auth_token or env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_AUTH_TOKEN"):
        from .._registry.fetch import RegistryFetcher

        fetcher = RegistryFetcher(
            api_key=api_key,
            auth_token=auth_token,
            base_url=base_url,
            api_version=api_version,
            betas=betas,
            # Retired models too: a line naming one is rerouted now rather than erroring
            # hours later. Not written to the shared user cache, which holds the default list.
            lifecycle=("active", "deprecated", "retired"),
            cache_file=False,
            background=False,
        )
        # A batch waits hours: route it on live data, not on a snapshot, when possible.
        try:
            fetcher.refresh()
        except Exception as exc:  # offline: the snapshot still routes, and says so
            logger.warning("caproute batch: live registry fetch failed (%s); using a snapshot", exc)
        return LiveRouter(fetcher, policy=policy), True
    return LiveRouter(policy=policy), True


def _policy_file(policy: PolicyInput) -> str | None:
    return str(Path(policy).resolve()) if isinstance(policy, str | Path) else None


def open_job(state: Path, options: JobOptions) -> JobSteps:
    """The job planned in `state`.

    Raises:
        BatchStateError: There is no (finished) plan in `state`.
    """
    store = StateDir(state)
    if not store.exists():
        raise BatchStateError(f"{state}: no batch job here (run submit first)")
    return _opened(store, store.read_job(), job_settings(options))


def _opened(store: StateDir, job: dict[str, Any], settings: JobSettings) -> JobSteps:
    base_url = settings.base_url or job["base_url"]

    def api() -> ApiSettings:
        return api_settings(
            base_url=base_url,
            api_key=settings.api_key,
            auth_token=settings.auth_token,
            api_version=job["api_version"],
            betas=job["betas"],
        )

    opened = JobSteps(store, job, api=api, settings=settings)
    if store.make_private():
        opened.event(f"{store.path}: made the job's files readable by their owner only")
    store.discard_unfinished_rounds(opened.conn)
    if 1 not in store.committed_rounds(opened.conn):
        opened.close()
        raise BatchStateError(f"{store.path}: the job's planning never finished; submit again")
    return opened


def create_job(
    requests: Path, state: Path, options: CreateOptions, *, from_worker: bool = False
) -> tuple[JobSteps, BatchPlan, bool]:
    """Plan a new job in `state`, or reopen the one already there for the same input.

    Returns the job, its first round's plan and whether it was planned just now.
    `from_worker`: this runs in an async job's worker thread (`RouterLink`).
    """
    store = StateDir(state)
    absolute = requests.resolve()
    routing = routing_settings(options)
    settings = job_settings(options)
    with store.locked():
        conn = store.connect()
        try:
            store.discard_unfinished_rounds(conn)
            planned = 1 in store.committed_rounds(conn)
        finally:
            conn.close()
        if planned:
            job = store.read_job()
            check_input(requests, job)
            if Path(job["input"]["path"]) != absolute:  # the same content, moved
                job = {**job, "input": {**job["input"], "path": str(absolute)}}
                store.write_job({k: v for k, v in job.items() if k != "format"})
            opened = _opened(store, job, settings)
            _say_what_resuming_ignores(opened, options, routing)
            return opened, opened.plans()[0], False
        base_url = resolve_base_url(settings.base_url)
        job = {
            "input": {"path": str(absolute)},
            "base_url": base_url,
            "api_version": routing.api_version,
            "betas": list(routing.betas),
            "headers": dict(routing.headers),
            "allow_unknown": routing.allow_unknown,
            "limits": dataclasses.asdict(routing.limits),
            "policy": _policy_file(options.get("policy")),
            "created_at": time.time(),
        }
        # Start clean: a crash during an earlier planning may have left a partial index.
        for leftover in store.path.glob(store.db_file.name + "*"):
            leftover.unlink()
        plan = _plan_first_round(store, requests, options, routing, job, from_worker)
        return _opened(store, store.read_job(), settings), plan, True


def _say_what_resuming_ignores(
    opened: JobSteps, options: CreateOptions, routing: RoutingSettings
) -> None:
    """Tell what this call asked for that differs from the plan (a setting left at its
    default asked for nothing: a plain resume repeats no options)."""
    job = opened.job
    asked = {
        "policy": _policy_file(options.get("policy")),
        "limits": dataclasses.asdict(routing.limits) if options.get("limits") else None,
        "api_version": routing.api_version if routing.api_version != DEFAULT_API_VERSION else None,
        "betas": list(routing.betas) or None,
        "headers": dict(routing.headers) or None,
        "allow_unknown": routing.allow_unknown or None,
    }
    ignored = [
        key
        for key, value in asked.items()
        if value is not None and value != job.get(key, {} if key == "headers" else None)
    ]
    if ignored:
        opened.event(
            f"{opened.store.path} was planned earlier with other settings "
            f"({', '.join(ignored)}); resuming keeps that plan and its settings. To plan "
            "with the new ones, use a new state directory"
        )


def _plan_first_round(
    store: StateDir,
    requests: Path,
    options: PlanOptions,
    routing: RoutingSettings,
    job: dict[str, Any],
    from_worker: bool,
) -> BatchPlan:
    chosen, owned = _default_router(
        options.get("router"),
        options.get("policy"),
        base_url=resolve_base_url(options.get("base_url")),
        api_key=options.get("api_key"),
        auth_token=options.get("auth_token"),
        api_version=routing.api_version,
        betas=routing.betas,
    )
    conn = store.connect()
    try:
        link = RouterLink(chosen, from_worker=from_worker)
        return plan_first_round(store, conn, link, requests, routing, job)
    finally:
        conn.close()
        if owned:
            chosen.close()


def dry_run_plan(requests: Path, options: PlanOptions) -> BatchPlan:
    """Plan into a temporary directory and throw it away: only the summary is kept."""
    routing = routing_settings(options)
    with tempfile.TemporaryDirectory(prefix="caproute-batch-") as tmp:
        job = {"input": {"path": str(requests)}}
        return _plan_first_round(StateDir(Path(tmp)), requests, options, routing, job, False)


def retry_router(
    job: JobSteps, router: LiveRouter | None, policy: PolicyInput
) -> tuple[LiveRouter, bool]:
    """The router a retry round uses: given, else built like `create` builds one (with
    the job's policy file unless another policy is given); True if it is ours."""
    settings = job.settings
    return _default_router(
        router,
        policy if policy is not None or router is not None else job.job.get("policy"),
        base_url=job.api().base_url,
        api_key=settings.api_key,
        auth_token=settings.auth_token,
        api_version=job.job["api_version"],
        betas=job.job["betas"],
    )
