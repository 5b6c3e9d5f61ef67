"""Talking to the Message Batches API: actions, their sync and async drivers, errors.

Every multi-step batch operation (submit with reconciliation, polling, downloading
results, planning a retry) is written once, in `caproute._batch.steps`, as a generator
that *yields actions* and receives their outcome, in the style of httpx's
``Auth.auth_flow``:

* `Call`: one HTTP request; the reply is an `Answer` (also for errors: a transport
  failure is an `Answer` with no status, so the flow decides what it means);
* `Download`: stream a URL's body into a file (results are never held in memory);
* `Wait`: sleep;
* `Local`: run a function that does heavy local work (indexing, merging results);
* `Planning`: the same, for work that routes requests with a `LiveRouter` (planning a
  round): the function gets a `RouterLink` fit for where it runs.

`SyncDriver` performs them with `httpx2.Client` and `time.sleep`; `AsyncDriver` with
`httpx2.AsyncClient`, `anyio.sleep`, and runs `Local` and `Planning` work in a worker
thread so the event loop stays responsive (`plan_in_worker`). Both close the flow when
an action fails, so its ``finally`` blocks (a held lock, say) run at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar

import httpx2

from .._core.wire import error_summary
from .._exceptions import APIAnswerError, ConfigError, answer_text
from .._registry.snapshot import DEFAULT_BASE_URL
from .._types import AsyncSleep, Sleep
from .rounds import RouterLink
from .store import open_private

if TYPE_CHECKING:
    from .._runtime.live import LiveRouter

__all__ = [
    "Action",
    "Answer",
    "AsyncDriver",
    "BatchAPIError",
    "Call",
    "Download",
    "Flow",
    "Local",
    "Planning",
    "SyncDriver",
    "Wait",
    "api_settings",
    "plan_in_worker",
]

T = TypeVar("T")
BATCHES_PATH: Final = "/v1/messages/batches"
DEFAULT_API_VERSION: Final = "2023-06-01"
_BLOCK: Final = 1024 * 1024
"""Upload and download block size: the memory a transfer needs, whatever its size."""
_TIMEOUT: Final = httpx2.Timeout(60.0, connect=10.0)
_UPLOAD_TIMEOUT: Final = httpx2.Timeout(600.0, connect=10.0)
"""A 256 MB body on a slow link takes minutes; the read timeout covers the API's work."""


class BatchAPIError(APIAnswerError):
    """The Message Batches API answered with an error (or could not be reached)."""


# -- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request to the API (path relative to the base URL)."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    body_file: Path | None = None
    """A JSON file to send as the body, streamed from disk."""
    upload: bool = False
    """Use the long upload timeout."""


@dataclass(frozen=True, slots=True)
class Download:
    """Stream `url` (absolute, e.g. a ``results_url``) into `dest`."""

    url: str
    dest: Path


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait this many seconds."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Local:
    """Run `fn` (blocking local work) and reply with its return value."""

    fn: Callable[[], Any]


@dataclass(frozen=True, slots=True)
class Planning:
    """Run `fn` (blocking local work that routes requests with `router`, such as
    planning a round) with a `RouterLink` fit for where it runs; reply with its value."""

    router: LiveRouter
    fn: Callable[[RouterLink], Any]


Action: TypeAlias = Call | Download | Wait | Local | Planning
Flow: TypeAlias = Generator[Action, Any, T]


@dataclass(frozen=True)
class Answer:
    """What came back for a `Call` or a `Download`."""

    status: int | None
    """HTTP status, or `None` when no answer arrived (see `error`, `sent`)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""
    error: str | None = None
    """For a transport failure: what happened."""
    sent: bool = True
    """False only when the request certainly never reached the server (connect failed)."""

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    def json(self) -> Any:
        """The decoded body (a `BatchAPIError` when it is not JSON)."""
        try:
            return json.loads(self.content)
        except ValueError:
            raise BatchAPIError(
                f"the API answered HTTP {self.status} with a body that is not JSON",
                status_code=self.status,
            ) from None

    def error_detail(self) -> tuple[str | None, str, str | None]:
        """``(error.type, error.message, request_id)`` of an error answer."""
        if self.status is None:
            return None, self.error or "no answer", None
        return error_summary(self.content, self.headers.get("request-id"))

    def to_error(self, what: str) -> BatchAPIError:
        """The `BatchAPIError` this answer means, naming `what` was being done."""
        error_type, message, request_id = self.error_detail()
        if self.status is None:
            return BatchAPIError(f"{what}: {message}")
        return BatchAPIError(
            f"{what}: {answer_text(self.status, error_type, message, request_id)}",
            status_code=self.status,
            error_type=error_type,
            request_id=request_id,
        )


# -- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiSettings:
    """Where and how to reach the API. The key lives only in `headers` (repr hides it)."""

    base_url: str
    headers: Mapping[str, str] = field(repr=False)


def api_settings(
    *,
    base_url: str | None,
    api_key: str | None,
    auth_token: str | None,
    api_version: str,
    betas: Sequence[str],
) -> ApiSettings:
    """Base URL and headers from the arguments, else ``ANTHROPIC_*`` environment variables.

    Raises:
        ConfigError: There is no API key or auth token anywhere.
    """
    env = os.environ
    key = api_key or env.get("ANTHROPIC_API_KEY") or None
    token = auth_token or env.get("ANTHROPIC_AUTH_TOKEN") or None
    if key is None and token is None:
        raise ConfigError(
            "no credentials for the Message Batches API: set ANTHROPIC_API_KEY "
            "(or ANTHROPIC_AUTH_TOKEN), or pass api_key="
        )
    headers = {"anthropic-version": api_version}
    if key is not None:
        headers["x-api-key"] = key
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if betas:
        headers["anthropic-beta"] = ",".join(betas)
    url = (base_url or env.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    return ApiSettings(url, headers)


def resolve_base_url(base_url: str | None) -> str:
    """The base URL requests will go to (argument, else environment, else the API's)."""
    return (base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


# -- drivers -----------------------------------------------------------------------------------


def _file_blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while block := stream.read(_BLOCK):
            yield block


async def _async_file_blocks(path: Path) -> AsyncIterator[bytes]:
    # Plain reads: a 1 MB read from a local file is far shorter than a network write.
    with path.open("rb") as stream:
        while block := stream.read(_BLOCK):
            yield block


def _request_args(action: Call) -> dict[str, Any]:
    args: dict[str, Any] = {"params": action.params}
    if action.body_file is not None:
        args["headers"] = {
            "content-type": "application/json",
            "content-length": str(action.body_file.stat().st_size),
        }
    args["timeout"] = _UPLOAD_TIMEOUT if action.upload else _TIMEOUT
    return args


def _without_query(url: str) -> httpx2.URL:
    """`url` fit for a message (a signed download link's query never is)."""
    return httpx2.URL(url).copy_with(query=None)


def _failure(exc: httpx2.TransportError, url: object) -> Answer:
    # A connect failure means the request never left this machine: nothing was created.
    never_sent = isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout)
    return Answer(None, error=f"{type(exc).__name__} ({url}): {exc}", sent=not never_sent)


@dataclass(frozen=True, slots=True)
class _Done(Generic[T]):
    value: T


def _advance(flow: Flow[T], reply: Any) -> Action | _Done[T]:
    """The flow's next action, or `_Done` with its value once it returned."""
    try:
        return flow.send(reply)
    except StopIteration as done:
        return _Done(done.value)


async def plan_in_worker(router: LiveRouter, fn: Callable[[RouterLink], T]) -> T:
    """Run `fn` in a worker thread, routing with `router` as an async driver does.

    The router's view is read on the event loop first (an async fetcher's data is only
    reachable there), and the flow's actions that change its state are carried out
    there too (`RouterLink` with ``from_worker``).
    """
    import anyio.to_thread

    await router.aview()
    return await anyio.to_thread.run_sync(fn, RouterLink(router, from_worker=True))


class SyncDriver:
    """Performs a flow's actions with an `httpx2.Client` (blocking)."""

    def __init__(self, settings: ApiSettings, *, sleep: Sleep = time.sleep) -> None:
        self._client = httpx2.Client(base_url=settings.base_url, headers=dict(settings.headers))
        self._sleep = sleep

    def run(self, flow: Flow[T]) -> T:
        """Drive `flow` to its end and return its value (its exceptions propagate)."""
        with contextlib.closing(flow):
            step = _advance(flow, None)
            while not isinstance(step, _Done):
                step = _advance(flow, self._perform(step))
            return step.value

    def _perform(self, action: Action) -> Any:
        if isinstance(action, Local):
            return action.fn()
        if isinstance(action, Planning):
            return action.fn(RouterLink(action.router))
        if isinstance(action, Wait):
            self._sleep(action.seconds)
            return None
        if isinstance(action, Download):
            return self._download(action)
        return self._call(action)

    def _call(self, action: Call) -> Answer:
        args = _request_args(action)
        content = _file_blocks(action.body_file) if action.body_file is not None else None
        try:
            response = self._client.request(action.method, action.path, content=content, **args)
        except httpx2.TransportError as exc:
            return _failure(exc, self._client.base_url.join(action.path))
        return Answer(response.status_code, dict(response.headers), response.content)

    def _download(self, action: Download) -> Answer:
        try:
            with self._client.stream("GET", action.url, timeout=_TIMEOUT) as response:
                if response.status_code != 200:
                    response.read()
                    return Answer(response.status_code, dict(response.headers), response.content)
                with open_private(action.dest) as out:
                    for block in response.iter_bytes(_BLOCK):
                        out.write(block)
                return Answer(response.status_code, dict(response.headers))
        except httpx2.TransportError as exc:
            return _failure(exc, _without_query(action.url))

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


class AsyncDriver:
    """Performs a flow's actions with an `httpx2.AsyncClient`; `Local` work runs in a thread."""

    def __init__(self, settings: ApiSettings, *, sleep: AsyncSleep | None = None) -> None:
        self._client = httpx2.AsyncClient(
            base_url=settings.base_url, headers=dict(settings.headers)
        )
        self._sleep = sleep

    async def run(self, flow: Flow[T]) -> T:
        """Drive `flow` to its end and return its value (its exceptions propagate)."""
        with contextlib.closing(flow):
            step = _advance(flow, None)
            while not isinstance(step, _Done):
                step = _advance(flow, await self._perform(step))
            return step.value

    async def _perform(self, action: Action) -> Any:
        import anyio
        import anyio.to_thread

        if isinstance(action, Local):
            return await anyio.to_thread.run_sync(action.fn)
        if isinstance(action, Planning):
            return await plan_in_worker(action.router, action.fn)
        if isinstance(action, Wait):
            await (self._sleep or anyio.sleep)(action.seconds)
            return None
        if isinstance(action, Download):
            return await self._download(action)
        return await self._call(action)

    async def _call(self, action: Call) -> Answer:
        args = _request_args(action)
        content = _async_file_blocks(action.body_file) if action.body_file is not None else None
        try:
            response = await self._client.request(
                action.method, action.path, content=content, **args
            )
        except httpx2.TransportError as exc:
            return _failure(exc, self._client.base_url.join(action.path))
        return Answer(response.status_code, dict(response.headers), response.content)

    async def _download(self, action: Download) -> Answer:
        try:
            async with self._client.stream("GET", action.url, timeout=_TIMEOUT) as response:
                if response.status_code != 200:
                    await response.aread()
                    return Answer(response.status_code, dict(response.headers), response.content)
                with open_private(action.dest) as out:
                    async for block in response.aiter_bytes(_BLOCK):
                        out.write(block)
                return Answer(response.status_code, dict(response.headers))
        except httpx2.TransportError as exc:
            return _failure(exc, _without_query(action.url))

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
