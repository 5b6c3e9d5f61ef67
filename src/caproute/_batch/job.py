"""Big offline workloads: a JSONL file of requests → Message Batches → merged results.

`BatchJob` (blocking) and `AsyncBatchJob` (asyncio/trio) are two thin drivers of one
implementation. Every operation is written once, as a flow of actions: the steps of
`caproute._batch.steps` (submit, poll, results, retry, cancel), wrapped here with the
state directory's lock and the retry round's router. `BatchJob` runs a flow with a
`SyncDriver`, `AsyncBatchJob` awaits it with an `AsyncDriver` (`caproute._batch.api`).
Planning a job (`caproute._batch.opening`, `caproute._batch.rounds`) is the one step
outside a flow: the async job runs it in a worker thread. docs/batches.md explains the
trade-offs.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from types import TracebackType
from typing import Generic, TypeVar, Unpack

from .._runtime.live import LiveRouter, PolicyInput
from .api import AsyncDriver, Flow, Local, SyncDriver
from .opening import (
    CreateOptions,
    JobOptions,
    PlanOptions,
    check_keywords,
    create_job,
    dry_run_plan,
    open_job,
    retry_router,
)
from .plan import BatchPlan
from .reports import BatchCounts, BatchProgress, BatchResults, BatchStatus
from .steps import JobSteps, ProgressHook

__all__ = [
    "AsyncBatchJob",
    "BatchCounts",
    "BatchJob",
    "BatchProgress",
    "BatchResults",
    "BatchStatus",
]

DriverT = TypeVar("DriverT", SyncDriver, AsyncDriver)
HandleT = TypeVar("HandleT", bound="_JobHandle[SyncDriver] | _JobHandle[AsyncDriver]")


class _JobHandle(Generic[DriverT]):
    """What `BatchJob` and `AsyncBatchJob` share: the job, its plans, where it lives,
    and every operation as a flow (the subclasses only run them)."""

    _driver_class: type[DriverT]

    def __init__(self, job: JobSteps, plan: BatchPlan, planned_now: bool) -> None:
        self._job = job
        self._plan = plan
        self._driver: DriverT | None = None
        self.planned_now = planned_now
        """True when `create` planned the job (False: it reopened an existing one)."""

    @classmethod
    def _reopen(cls: type[HandleT], state: str | os.PathLike[str], options: JobOptions) -> HandleT:
        check_keywords(options, JobOptions)
        job = open_job(Path(state), options)
        return cls(job, job.plans()[0], False)

    @property
    def state_dir(self) -> Path:
        """The job's state directory."""
        return self._job.store.path

    @property
    def plan(self) -> BatchPlan:
        """The first round's plan: what routing did to every request."""
        return self._plan

    @property
    def plans(self) -> list[BatchPlan]:
        """Every round's plan (the submission, then each retry)."""
        return self._job.plans()

    @property
    def canceled(self) -> bool:
        """The job was canceled: nothing more of it is ever submitted."""
        return self._job.store.canceled

    def check_output(self, out: str | os.PathLike[str]) -> None:
        """Refuse a results path that would overwrite the job's own files (its input, or
        anything in its state directory); `write_results` checks the same.

        Raises:
            ConfigError: `out` is one of those.
        """
        self._job.check_output(Path(out))

    def _drive(self) -> DriverT:
        if self._driver is None:
            self._driver = self._driver_class(self._job.api())
        return self._driver

    # -- the operations, each one flow ------------------------------------------------------

    def _submitting(self) -> Flow[int]:
        with self._job.store.locked():
            return (yield from self._job.submit())

    def _polling(self, wait: bool, on_progress: ProgressHook | None = None) -> Flow[BatchStatus]:
        return self._job.poll(wait=wait, on_progress=on_progress)

    def _writing_results(self, out: str | os.PathLike[str]) -> Flow[BatchResults]:
        with self._job.store.locked():
            return (yield from self._job.results(Path(out)))

    def _retrying(self, router: LiveRouter | None, policy: PolicyInput) -> Flow[BatchPlan | None]:
        with self._job.store.locked():
            # Building a router may fetch the registry: local work, off an event loop.
            chosen, owned = yield Local(functools.partial(retry_router, self._job, router, policy))
            try:
                return (yield from self._job.retry(chosen))
            finally:
                if owned:
                    chosen.close()

    def _canceling(self) -> Flow[BatchStatus]:
        self._job.store.mark_canceled()
        with contextlib.ExitStack() as held:
            # Waits until a running submit has stopped (in a worker thread when async);
            # the lock is released whenever the flow ends, however it ends.
            yield Local(functools.partial(held.enter_context, self._job.store.locked(wait=True)))
            return (yield from self._job.cancel())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state_dir}>"


class BatchJob(_JobHandle[SyncDriver]):
    """A batch workload kept in a state directory (blocking API).

    Example::

        job = BatchJob.create("requests.jsonl", "state/")
        print(job.plan.summary())      # what routing did, before anything is sent
        job.submit()                   # safe to run again after a crash
        job.wait()
        job.write_results("results.jsonl")

    Use `create` (plan a new job, or reopen one) or `open` (an existing job); close it
    with `close()` or a ``with`` block.
    """

    _driver_class = SyncDriver

    @classmethod
    def create(
        cls,
        requests: str | os.PathLike[str],
        state: str | os.PathLike[str],
        **options: Unpack[CreateOptions],
    ) -> BatchJob:
        """Check and route every line and cut the chunks, or reopen the job in `state`.

        Nothing is sent: read `plan`, then call `submit`.

        Args:
            requests: The JSONL file: one ``{"custom_id", "params"}`` per line.
            state: The job's state directory (created if needed). Running `create`
                again with the same directory and file reopens the job; another file
                is an error.
            router: A shared `LiveRouter` to route with (else one is built from
                `policy`, on live registry data when credentials are configured).
            policy: A `Policy` or policy file (with no `router`).
            limits: Batch size limits (default: the API's).
            api_version: The ``anthropic-version`` the batches are sent with
                (default ``2023-06-01``).
            betas: ``anthropic-beta`` values for the batches.
            headers: Request headers for policy routes that match on headers
                (``match.headers``). Used for routing only, never sent; recorded in
                the job for retries. Credential headers are refused.
            allow_unknown: Send requests whose model's support of what they need is
                unknown (the policy's ``allow_unknown_in_batches`` does the same). By
                default they are refused locally: the API would error them only when
                the batch ends. Recorded in the job for retries.
            base_url: Default ``ANTHROPIC_BASE_URL``, else the API; recorded in the job.
            api_key: Default ``ANTHROPIC_API_KEY`` (never written anywhere).
            auth_token: Default ``ANTHROPIC_AUTH_TOKEN``.
            poll_interval: First wait between status checks, in seconds (default 10);
                it grows by half while nothing changes, up to `max_poll_interval`.
            max_poll_interval: Longest wait between status checks (default 300).
            reconcile_grace: After an interrupted submission, how long (seconds since
                the attempt, default 60) to wait before trusting the API's batch list.
            on_event: Called with a line of text for each notable step.

        Raises:
            BatchInputError: Bad lines (all listed with line numbers); nothing recorded.
            BatchStateError: `state` holds a job for another file, or is busy.
            TypeError: A keyword this method does not take.
        """
        check_keywords(options, CreateOptions)
        return cls(*create_job(Path(requests), Path(state), options))

    @classmethod
    def open(cls, state: str | os.PathLike[str], **options: Unpack[JobOptions]) -> BatchJob:
        """The job already planned in `state` (`base_url`, `api_key`, `auth_token`,
        `poll_interval`, `max_poll_interval`, `reconcile_grace` and `on_event` as for
        `create`).

        Raises:
            BatchStateError: There is no (finished) plan in `state`.
        """
        return cls._reopen(state, options)

    @staticmethod
    def dry_run(requests: str | os.PathLike[str], **options: Unpack[PlanOptions]) -> BatchPlan:
        """Check and route every line and return the plan; nothing is kept or sent
        (`router`, `policy`, `limits`, `api_version`, `betas`, `headers`,
        `allow_unknown`, `base_url`, `api_key` and `auth_token` as for `create`).

        Raises:
            BatchInputError: Bad lines (all listed with line numbers).
        """
        check_keywords(options, PlanOptions)
        return dry_run_plan(Path(requests), options)

    # -- acting ------------------------------------------------------------------------------

    def submit(self) -> int:
        """Submit every chunk not submitted yet; returns how many this call submitted.

        Safe to call again after any crash or interruption (docs/batches.md says how).

        Raises:
            BatchAPIError: The API refused a batch (the job can be resumed once fixed).
            BatchStateError: Another process is working on the job, or an interrupted
                submission can't be resolved safely.
        """
        return self._drive().run(self._submitting())

    def status(self) -> BatchStatus:
        """Check every batch once."""
        return self._drive().run(self._polling(wait=False))

    def wait(self, *, on_progress: ProgressHook | None = None) -> BatchStatus:
        """Poll until every batch has ended, calling `on_progress` after each round.

        Raises:
            BatchStateError: Some chunks are not submitted (call `submit` first).
        """
        return self._drive().run(self._polling(True, on_progress))

    def write_results(self, out: str | os.PathLike[str]) -> BatchResults:
        """Download what is new and write one line per input ``custom_id`` to `out`.

        Each line is ``{"custom_id", "result", "caproute": {"line", "round",
        "batch_id", "decision"}}``: `result` is the API's (``succeeded``, ``errored``,
        ``expired``, ``canceled``) or, for a request refused locally,
        ``{"type": "refused", "reason": ...}``.

        Raises:
            BatchStateError: A batch has not ended (call `wait` first).
        """
        return self._drive().run(self._writing_results(out))

    def retry_errored(
        self, *, router: LiveRouter | None = None, policy: PolicyInput = None
    ) -> BatchPlan | None:
        """Re-route and resubmit every request whose latest result is errored or expired.

        Routing runs again (on fresh registry data when credentials are configured), so
        a model retired meanwhile is routed around. Returns the new round's plan, or
        `None` when nothing needed retrying. Then `wait` and `write_results` again.
        """
        return self._drive().run(self._retrying(router, policy))

    def cancel(self) -> BatchStatus:
        """Cancel the job: nothing more is submitted, running batches are canceled.

        If another process is submitting, this waits for it to stop (it checks before
        each chunk).
        """
        return self._drive().run(self._canceling())

    def close(self) -> None:
        """Release the HTTP client and the index."""
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.close()
        self._job.close()

    def __enter__(self) -> BatchJob:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncBatchJob(_JobHandle[AsyncDriver]):
    """`BatchJob` for async code: the same steps, awaitable (asyncio or trio).

    Network IO uses `httpx2.AsyncClient`; the heavy local steps (planning, indexing and
    merging results) run in a worker thread, so the event loop keeps running.
    """

    _driver_class = AsyncDriver

    @classmethod
    async def create(
        cls,
        requests: str | os.PathLike[str],
        state: str | os.PathLike[str],
        **options: Unpack[CreateOptions],
    ) -> AsyncBatchJob:
        """`BatchJob.create`, with planning in a worker thread."""
        import anyio.to_thread

        check_keywords(options, CreateOptions)
        router = options.get("router")
        if router is not None:
            await router.aview()  # an async fetcher's data, for the views read in the thread
        plan = functools.partial(create_job, Path(requests), Path(state), options, from_worker=True)
        return cls(*await anyio.to_thread.run_sync(plan))

    @classmethod
    async def open(
        cls, state: str | os.PathLike[str], **options: Unpack[JobOptions]
    ) -> AsyncBatchJob:
        """`BatchJob.open`."""
        return cls._reopen(state, options)

    async def submit(self) -> int:
        """`BatchJob.submit`."""
        return await self._drive().run(self._submitting())

    async def status(self) -> BatchStatus:
        """`BatchJob.status`."""
        return await self._drive().run(self._polling(wait=False))

    async def wait(self, *, on_progress: ProgressHook | None = None) -> BatchStatus:
        """`BatchJob.wait` (cancel the task to stop waiting)."""
        return await self._drive().run(self._polling(True, on_progress))

    async def write_results(self, out: str | os.PathLike[str]) -> BatchResults:
        """`BatchJob.write_results`."""
        return await self._drive().run(self._writing_results(out))

    async def retry_errored(
        self, *, router: LiveRouter | None = None, policy: PolicyInput = None
    ) -> BatchPlan | None:
        """`BatchJob.retry_errored` (planning runs in a worker thread)."""
        return await self._drive().run(self._retrying(router, policy))

    async def cancel(self) -> BatchStatus:
        """`BatchJob.cancel` (waiting for the lock happens in a worker thread)."""
        return await self._drive().run(self._canceling())

    async def aclose(self) -> None:
        """Release the HTTP client and the index."""
        driver, self._driver = self._driver, None
        if driver is not None:
            await driver.aclose()
        self._job.close()

    async def __aenter__(self) -> AsyncBatchJob:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
