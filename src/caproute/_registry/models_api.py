"""The Models API as the fetchers speak it: queries, answers, retry decisions.

Pure decisions (no IO): which query comes next (`list_params`, `next_cursor`), whether
an answer is retried (`should_retry`) and how long to wait (`retry_after`, `backoff`,
`retry_wait`), what error an answer means (`error_from_answer`). They mirror the
anthropic SDK's ``_should_retry`` and ``_calculate_retry_timeout`` so the registry
behaves like the client users call. Also how one HTTP answer reads (`read_answer`)
and which failures tenacity retries (`is_retryable`).
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx2
from pydantic import ValidationError

from .._core.model_info import ModelInfo
from .._core.secrets import redact
from .._core.wire import error_summary
from .._exceptions import RegistryError, RegistryHTTPError
from .._types import JSONObject

__all__ = [
    "RetryableAnswer",
    "backoff",
    "describe_failure",
    "error_from_answer",
    "is_retryable",
    "list_params",
    "model_info",
    "next_cursor",
    "read_answer",
    "retry_after",
    "retry_wait",
    "should_retry",
]

DEFAULT_API_VERSION = "2023-06-01"
PAGE_LIMIT = 1000
"""The largest page the Models API serves (its default is 20)."""
MAX_PAGES = 1000
"""A guard against a server that keeps saying ``has_more`` forever."""

# Retry policy, as the SDK's `_base_client`: 0.5 s doubling up to 8 s, minus up to 25 %
# jitter; a server's retry-after is honoured only within (0, 60] seconds.
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MAX_RETRY_TIME = 30.0
"""Bound on one refresh, in seconds: no retry is started that would end after it."""
_RETRYABLE_STATUSES = frozenset({408, 409, 429})


# -- pure decisions -------------------------------------------------------------------------


def should_retry(status_code: int, headers: Mapping[str, str]) -> bool:
    """Whether an error answer is worth retrying.

    The server's ``x-should-retry`` hint wins over the status code, as in the SDK.
    Otherwise 408, 409, 429 and every 5xx (529 overloaded included) are retried.
    """
    hint = headers.get("x-should-retry", "").strip().lower()
    if hint == "true":
        return True
    if hint == "false":
        return False
    return status_code in _RETRYABLE_STATUSES or status_code >= 500


def retry_after(headers: Mapping[str, str], *, now: float) -> float | None:
    """The wait the server asks for, in seconds, or None to use our own backoff.

    ``retry-after-ms`` (non-standard, sent by the API) comes first, then
    ``retry-after`` as seconds or as an HTTP date (relative to `now`, Unix time).
    Like the SDK, only waits in (0, 60] seconds are honoured.
    """
    seconds: float | None = None
    if (ms := _float(headers.get("retry-after-ms"))) is not None:
        seconds = ms / 1000
    elif (raw := headers.get("retry-after")) is not None:
        seconds = _float(raw)
        if seconds is None and (date := email.utils.parsedate_tz(raw)) is not None:
            seconds = email.utils.mktime_tz(date) - now
    if seconds is None or not 0 < seconds <= MAX_RETRY_AFTER:
        return None
    return seconds


def backoff(retries_taken: int, *, jitter: float) -> float:
    """Exponential backoff: 0.5 s · 2^n capped at 8 s, reduced by ``25 % · jitter``.

    Args:
        retries_taken: Retries already made (0 before the first retry).
        jitter: A number in [0, 1), normally `random.random()`.
    """
    delay = min(INITIAL_RETRY_DELAY * 2.0**retries_taken, MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * jitter)


def retry_wait(
    retries_taken: int, headers: Mapping[str, str] | None, *, now: float, jitter: float
) -> float:
    """Seconds to wait before the next attempt: the server's wish, else our backoff."""
    asked = retry_after(headers, now=now) if headers is not None else None
    return asked if asked is not None else backoff(retries_taken, jitter=jitter)


def list_params(
    *, after_id: str | None, limit: int = PAGE_LIMIT, lifecycle: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """The query of one ``GET /v1/models`` page.

    `lifecycle` uses the SDK's array encoding (``lifecycle[]=active&lifecycle[]=retired``);
    empty means the API default (active and deprecated).
    """
    params = [("limit", str(limit))]
    if after_id is not None:
        params.append(("after_id", after_id))
    params.extend(("lifecycle[]", value) for value in lifecycle)
    return params


def next_cursor(page: Mapping[str, Any], *, page_number: int, previous: str | None) -> str | None:
    """The ``after_id`` of the next page, or None when this page is the last.

    Raises:
        RegistryError: The page says there is more but gives no new cursor, which
            would otherwise loop forever.
    """
    if not page.get("has_more"):
        return None
    cursor = page.get("last_id")
    if cursor is None and isinstance(data := page.get("data"), list) and data:
        last = data[-1]
        cursor = last.get("id") if isinstance(last, Mapping) else None
    if not isinstance(cursor, str) or not cursor or cursor == previous:
        raise RegistryError(f"Models API page {page_number} says has_more but gives no new last_id")
    return cursor


def error_from_answer(
    status_code: int, content: bytes, headers: Mapping[str, str], *, secrets: Iterable[str] = ()
) -> RegistryHTTPError:
    """The error an HTTP error answer means, with the API's own type and message.

    `secrets` are masked out of the message (the key must never reach an error).
    """
    error_type, message, request_id = error_summary(content, headers.get("request-id"))
    return RegistryHTTPError(
        status_code, _redact(message, secrets), error_type=error_type, request_id=request_id
    )


def _float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    # Also a key prefix the API echoes ("invalid x-api-key: sk-ant-api03-SECRE…").
    return redact(text)


# -- attempt outcomes, as tenacity sees them ---------------------------------------------


class RetryableAnswer(Exception):
    """An answer worth another attempt; carries the error to raise if none is left."""

    def __init__(self, error: RegistryError, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.headers = headers


def is_retryable(exc: BaseException) -> bool:
    # Connect/read failures, timeouts and a connection cut mid-page are transient;
    # a malformed URL (UnsupportedProtocol) or our own bug (LocalProtocolError) is not.
    return isinstance(
        exc,
        RetryableAnswer
        | httpx2.TimeoutException
        | httpx2.NetworkError
        | httpx2.RemoteProtocolError,
    )


def read_answer(response: httpx2.Response, secrets: Iterable[str]) -> JSONObject:
    """The JSON object of a 2xx answer; raises what any other answer means."""
    status = response.status_code
    headers = response.headers
    if 200 <= status < 300:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
        # A 2xx that is not a JSON object is a damaged answer (proxy, truncation): retry.
        error = RegistryError(f"Models API answered HTTP {status} with a body that is not JSON")
        raise RetryableAnswer(error, headers)
    error = error_from_answer(status, response.content, headers, secrets=secrets)
    if should_retry(status, headers):
        raise RetryableAnswer(error, headers)
    raise error


def model_info(body: JSONObject) -> ModelInfo:
    try:
        return ModelInfo.model_validate(body)
    except ValidationError as exc:
        raise RegistryError(f"Models API sent an invalid model: {exc.errors()[0]['msg']}") from exc


def describe_failure(exc: BaseException | None) -> str:
    if isinstance(exc, RetryableAnswer):
        return str(exc.error)
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
