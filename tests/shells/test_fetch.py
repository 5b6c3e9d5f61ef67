"""The registry fetchers: paging, retries, TTL cache, single-flight, stale-while-revalidate.

Three layers of tests:

* the pure decisions (`should_retry`, `retry_after`, `backoff`, ...) as plain functions;
* the fetchers over `httpx2.MockTransport` with a fake clock and a recording sleep,
  so every wait is asserted exactly and nothing really sleeps;
* the fetchers against `caproute.testing.FakeAnthropic`, a real HTTP server on
  127.0.0.1, for paging, injected faults, single-flight and stale-while-revalidate.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from caproute import (
    AsyncRegistryFetcher,
    ConfigError,
    Registry,
    RegistryFetcher,
    RegistryHTTPError,
    RegistryUnavailableError,
    load_snapshot,
)
from caproute._exceptions import RegistryError
from caproute._registry.fetch import (
    FAILURE_BACKOFF,
    backoff,
    error_from_answer,
    list_params,
    next_cursor,
    retry_after,
    should_retry,
)
from caproute.testing import FakeAnthropic, make_model

KEY = "sk-ant-test-0123456789-SECRET"
BASE = "https://models.test"
START = 1_795_000_000.0  # a Unix time in November 2026


class FakeClock:
    """Seconds that only move when told (serves as both monotonic and wall clock)."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """A sleep that records each wait and advances the fake clock instead of blocking."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))
        self.clock.tick(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self(seconds)


def models(n: int, prefix: str = "claude-test") -> list[dict[str, Any]]:
    return [make_model(f"{prefix}-{i}") for i in range(n)]


class ModelsAPI:
    """A MockTransport handler serving `GET /v1/models` pages, with scripted failures.

    `script` is consumed first, one entry per request: an `httpx2.Response`, or an
    exception instance to raise (a connect/read error).
    """

    def __init__(self, catalogue: list[dict[str, Any]], *script: Any) -> None:
        self.catalogue = catalogue
        self.script = list(script)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            assert isinstance(step, httpx2.Response)
            return step
        if request.url.path == "/v1/models":
            return httpx2.Response(200, json=self.page(request.url.params))
        model_id = request.url.path.removeprefix("/v1/models/")
        for model in self.catalogue:
            if model["id"] == model_id:
                return httpx2.Response(200, json=model)
        return error_response(404, "not_found_error", f"model: {model_id}")

    def page(self, params: httpx2.QueryParams) -> dict[str, Any]:
        limit = int(params.get("limit", "20"))
        ids = [m["id"] for m in self.catalogue]
        start = ids.index(params["after_id"]) + 1 if "after_id" in params else 0
        data = self.catalogue[start : start + limit]
        return {
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": start + limit < len(ids),
        }


def error_response(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> httpx2.Response:
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": "req_test",
    }
    return httpx2.Response(status, json=body, headers=headers)


def fetcher(api: ModelsAPI, clock: FakeClock | None = None, **options: Any) -> RegistryFetcher:
    clock = clock or FakeClock()
    options.setdefault("api_key", KEY)
    return RegistryFetcher(
        base_url=BASE,
        transport=httpx2.MockTransport(api),
        clock=clock,
        wall_clock=clock,
        sleep=options.pop("sleep", None) or RecordingSleep(clock),
        jitter=lambda: 0.0,
        cache_file=options.pop("cache_file", False),
        **options,
    )


def waits_of(f: RegistryFetcher) -> list[float]:
    sleep = f._sleep
    assert isinstance(sleep, RecordingSleep)
    return sleep.waits


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition a background thread will make true (tiny real sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the background refresh"
        time.sleep(0.002)


# -- pure decisions -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses(status: int) -> None:
    assert should_retry(status, {}) is True


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 413, 422])
def test_non_retryable_statuses(status: int) -> None:
    assert should_retry(status, {}) is False


def test_x_should_retry_overrides_the_status() -> None:
    assert should_retry(400, {"x-should-retry": "true"}) is True
    assert should_retry(529, {"x-should-retry": "false"}) is False
    assert should_retry(503, {"x-should-retry": "maybe"}) is True


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after": email.utils.formatdate(START + 7, usegmt=True)}, 7.0),
        ({"retry-after": "0"}, None),
        ({"retry-after": "61"}, None),
        ({"retry-after": email.utils.formatdate(START - 5, usegmt=True)}, None),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers, now=START) == expected


def test_backoff_doubles_from_half_a_second_and_caps_at_eight() -> None:
    assert [backoff(n, jitter=0.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff(2, jitter=0.5) == pytest.approx(2.0 * 0.875)
    assert backoff(2, jitter=0.999) > 2.0 * 0.75


def test_list_params() -> None:
    assert list_params(after_id=None) == [("limit", "1000")]
    assert list_params(after_id="m-3", limit=2, lifecycle=("active", "retired")) == [
        ("limit", "2"),
        ("after_id", "m-3"),
        ("lifecycle[]", "active"),
        ("lifecycle[]", "retired"),
    ]


def test_next_cursor() -> None:
    assert next_cursor({"has_more": False, "last_id": "x"}, page_number=1, previous=None) is None
    assert next_cursor({"has_more": True, "last_id": "b"}, page_number=1, previous="a") == "b"
    fallback = {"has_more": True, "last_id": None, "data": [{"id": "a"}, {"id": "c"}]}
    assert next_cursor(fallback, page_number=1, previous=None) == "c"
    with pytest.raises(RegistryError, match="page 2 says has_more but gives no new last_id"):
        next_cursor({"has_more": True, "last_id": "b"}, page_number=2, previous="b")


def test_error_from_answer_names_status_type_message_and_request_id() -> None:
    body = json.dumps({"type": "error", "error": {"type": "permission_error", "message": "no"}})
    error = error_from_answer(403, body.encode(), {"request-id": "req_1"})
    assert (error.status_code, error.error_type, error.request_id) == (
        403,
        "permission_error",
        "req_1",
    )
    assert str(error) == "Models API answered HTTP 403 permission_error: no (request-id req_1)"
    assert "bad gateway" in str(error_from_answer(502, b"bad gateway", {}))
    assert "(empty body)" in str(error_from_answer(502, b"", {}))


def test_error_from_answer_masks_secrets() -> None:
    body = json.dumps({"error": {"type": "authentication_error", "message": f"bad key {KEY}"}})
    error = error_from_answer(401, body.encode(), {}, secrets=[KEY])
    assert KEY not in str(error)
    assert "bad key ***" in str(error)


# -- paging and headers (MockTransport) ---------------------------------------------------


def test_refresh_follows_every_page() -> None:
    api = ModelsAPI(models(5))
    registry = fetcher(api, page_size=2).refresh()
    assert registry.ids == tuple(f"claude-test-{i}" for i in range(5))
    queries = [dict(r.url.params) for r in api.requests]
    assert queries == [
        {"limit": "2"},
        {"limit": "2", "after_id": "claude-test-1"},
        {"limit": "2", "after_id": "claude-test-3"},
    ]
    assert registry.source.kind == "live"
    assert registry.source.location == BASE
    assert registry.source.fetched_at == START


def test_requests_carry_version_key_betas_and_workspace() -> None:
    api = ModelsAPI(models(1))
    fetcher(api, betas=["b-1", "b-2"], workspace_id="wrkspc_1", lifecycle=["active"]).refresh()
    request = api.requests[0]
    assert request.headers["x-api-key"] == KEY
    assert "authorization" not in request.headers
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == "b-1,b-2"
    assert request.headers["anthropic-workspace-id"] == "wrkspc_1"
    assert request.url.params.get_list("lifecycle[]") == ["active"]


def test_bearer_token_and_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "token-123")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://proxy.test/")
    api = ModelsAPI(models(1))
    clock = FakeClock()
    RegistryFetcher(transport=httpx2.MockTransport(api), clock=clock, cache_file=False).refresh()
    request = api.requests[0]
    assert str(request.url).startswith("https://proxy.test/v1/models?")
    assert request.headers["authorization"] == "Bearer token-123"
    assert "x-api-key" not in request.headers


def test_missing_credentials_is_a_config_error_and_current_still_serves() -> None:
    api = ModelsAPI(models(1))
    f = fetcher(api, api_key=None)
    with pytest.raises(ConfigError, match="no API key"):
        f.refresh()
    assert f.current().source.kind == "embedded"
    assert api.requests == []


def test_page_size_must_be_one_the_api_accepts() -> None:
    with pytest.raises(ConfigError, match="page_size must be between 1 and 1000, not 0"):
        RegistryFetcher(api_key=KEY, page_size=0)


# -- retries (MockTransport, fake clock) --------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503, 529])
def test_each_retryable_status_is_retried_with_exponential_backoff(status: int) -> None:
    failing = error_response(status, "api_error", "try again")
    api = ModelsAPI(models(2), failing, failing, failing)
    f = fetcher(api)
    assert len(f.refresh()) == 2
    assert waits_of(f) == [0.5, 1.0, 2.0]
    assert len(api.requests) == 4


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": email.utils.formatdate(START + 7, usegmt=True)}, 7.0),
        ({"retry-after": "600"}, 0.5),  # beyond 60 s: ignored, our backoff instead
    ],
)
def test_retry_after_headers_set_the_wait(headers: dict[str, str], wait: float) -> None:
    api = ModelsAPI(models(1), error_response(429, "rate_limit_error", "slow down", headers))
    f = fetcher(api)
    f.refresh()
    assert waits_of(f) == [wait]


def test_connect_and_read_errors_and_malformed_pages_are_retried() -> None:
    api = ModelsAPI(
        models(1),
        httpx2.ConnectError("connection refused"),
        httpx2.ReadTimeout("read timed out"),
        httpx2.RemoteProtocolError("peer closed connection mid-body"),
        httpx2.Response(200, content=b'{"data": [tru'),
    )
    f = fetcher(api)
    assert f.refresh().ids == ("claude-test-0",)
    assert waits_of(f) == [0.5, 1.0, 2.0, 4.0]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
    ],
)
def test_non_retryable_errors_raise_at_once(status: int, error_type: str) -> None:
    api = ModelsAPI(models(1), error_response(status, error_type, "refused here"))
    f = fetcher(api)
    with pytest.raises(RegistryHTTPError) as caught:
        f.refresh()
    assert caught.value.status_code == status
    assert str(caught.value) == (
        f"Models API answered HTTP {status} {error_type}: refused here (request-id req_test)"
    )
    assert len(api.requests) == 1
    assert waits_of(f) == []
    assert f.last_error is caught.value


def test_x_should_retry_true_retries_a_400_and_false_stops_a_529() -> None:
    retry_400 = error_response(400, "invalid_request_error", "x", {"x-should-retry": "true"})
    f = fetcher(ModelsAPI(models(1), retry_400))
    assert len(f.refresh()) == 1
    assert waits_of(f) == [0.5]

    stop_529 = error_response(529, "overloaded_error", "busy", {"x-should-retry": "false"})
    api = ModelsAPI(models(1), stop_529)
    with pytest.raises(RegistryHTTPError, match="HTTP 529 overloaded_error: busy"):
        fetcher(api).refresh()
    assert len(api.requests) == 1


def test_retries_end_after_max_attempts_with_an_unavailable_error() -> None:
    api = ModelsAPI(models(1), *[error_response(529, "overloaded_error", "busy")] * 10)
    f = fetcher(api, max_attempts=4)
    with pytest.raises(RegistryUnavailableError) as caught:
        f.refresh()
    assert str(caught.value) == (
        f"the Models API at {BASE} kept failing: "
        "Models API answered HTTP 529 overloaded_error: busy (request-id req_test)"
    )
    assert isinstance(caught.value.__cause__, RegistryHTTPError)
    assert len(api.requests) == 4
    assert waits_of(f) == [0.5, 1.0, 2.0]


def test_total_retry_time_is_bounded() -> None:
    rate_limited = error_response(429, "rate_limit_error", "slow", {"retry-after": "4"})
    api = ModelsAPI(models(1), *[rate_limited] * 10)
    clock = FakeClock()
    f = fetcher(api, clock, max_attempts=100, max_retry_time=10.0)
    with pytest.raises(RegistryUnavailableError):
        f.refresh()
    # 4 + 4 = 8 s fits in 10 s; a third wait would end at 12 s, so it is never started.
    assert waits_of(f) == [4.0, 4.0]
    assert len(api.requests) == 3
    assert clock.now - START <= 10.0


def test_network_down_without_data_raises_unavailable() -> None:
    api = ModelsAPI(models(1), *[httpx2.ConnectError("[Errno 111] Connection refused")] * 5)
    with pytest.raises(RegistryUnavailableError) as caught:
        fetcher(api).refresh()
    assert str(caught.value) == (
        f"cannot reach the Models API at {BASE}: ConnectError: [Errno 111] Connection refused"
    )


# -- TTL cache and stale-while-revalidate (MockTransport) ---------------------------------


def test_current_serves_the_cache_within_the_ttl_and_revalidates_after() -> None:
    api = ModelsAPI(models(2))
    clock = FakeClock()
    f = fetcher(api, clock, ttl=100.0)
    first = f.refresh()
    clock.tick(99)
    assert f.current() is first
    assert f.is_fresh
    assert len(api.requests) == 1

    clock.tick(2)
    assert not f.is_fresh
    assert f.current() is first  # stale, served at once; a background refresh starts
    wait_until(lambda: f.is_fresh)
    assert len(api.requests) == 2
    assert f.current() is not first
    assert f.age() == 0.0


def test_first_current_serves_start_up_data_and_fetches_in_the_background() -> None:
    api = ModelsAPI(models(3))
    f = fetcher(api)
    assert f.current().source.kind == "embedded"
    wait_until(lambda: f.is_fresh)
    assert f.current().source.kind == "live"
    assert len(f.current()) == 3


def test_background_off_never_fetches_from_current() -> None:
    api = ModelsAPI(models(1))
    f = fetcher(api, background=False)
    assert f.current().source.kind == "embedded"
    assert api.requests == []


def test_a_failing_refresh_keeps_serving_the_last_good_data() -> None:
    api = ModelsAPI(models(2))
    clock = FakeClock()
    f = fetcher(api, clock, ttl=100.0)
    good = f.refresh()
    clock.tick(101)
    api.script = [error_response(500, "api_error", "down")] * 100

    assert f.current() is good
    wait_until(lambda: f.last_error is not None)
    assert isinstance(f.last_error, RegistryUnavailableError)
    assert f.current() is good
    # refresh() with earlier live data returns it instead of raising.
    assert f.refresh() is good
    requests_so_far = len(api.requests)
    # After a failure current() waits FAILURE_BACKOFF before trying again.
    f.current()
    assert len(api.requests) == requests_so_far

    api.script = []
    clock.tick(FAILURE_BACKOFF)
    f.current()
    wait_until(lambda: f.is_fresh)
    assert f.last_error is None
    assert f.current() is not good


# -- retrieve -------------------------------------------------------------------------------


def test_retrieve_learns_aliases_and_unlisted_models() -> None:
    hidden = make_model("claude-hidden-1")
    api = ModelsAPI(models(1))
    f = fetcher(api, background=False)
    f.refresh()
    api.script = [httpx2.Response(200, json=hidden)]  # GET /v1/models/claude-hidden, an alias
    info = f.retrieve("claude-hidden")
    assert info is not None and info.id == "claude-hidden-1"
    assert api.requests[-1].url.path == "/v1/models/claude-hidden"
    assert f.current().resolve("claude-hidden") == "claude-hidden-1"
    assert f.retrieve("claude-hidden") == info
    assert len(api.requests) == 2
    # A later refresh keeps what retrieve learned.
    assert f.refresh().resolve("claude-hidden") == "claude-hidden-1"


def test_retrieve_not_found_is_remembered_briefly() -> None:
    api = ModelsAPI(models(1))
    clock = FakeClock()
    f = fetcher(api, clock, background=False, not_found_ttl=60.0)
    assert f.retrieve("claude-nope") is None
    assert f.retrieve("claude-nope") is None
    assert [r.url.path for r in api.requests] == ["/v1/models/claude-nope"]
    clock.tick(61)
    assert f.retrieve("claude-nope") is None
    assert len(api.requests) == 2


def test_retrieve_answers_known_models_without_a_request() -> None:
    api = ModelsAPI(models(1))
    f = fetcher(api, background=False)
    info = f.retrieve("claude-haiku-4-5")  # the embedded snapshot resolves the alias
    assert info is not None and info.id == "claude-haiku-4-5-20251001"
    assert api.requests == []


# -- the key stays secret ---------------------------------------------------------------


def test_key_never_in_repr_logs_errors_or_snapshots(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "registry.json"
    echo = error_response(401, "authentication_error", f"invalid x-api-key {KEY}")
    api = ModelsAPI(models(2), error_response(500, "api_error", "oops"))
    f = fetcher(api, cache_file=True, cache_path=cache, background=False)
    f.refresh()
    api.script = [echo]
    f._fresh.clear()
    f.refresh()  # fails; earlier live data is served
    assert isinstance(f.last_error, RegistryHTTPError)

    assert api.requests[0].headers["x-api-key"] == KEY  # it was sent...
    assert "x-api-key ***" in str(f.last_error)
    assert "authentication_error" in caplog.text and "req_test" in caplog.text
    for text in (repr(f), str(f.__dict__), caplog.text, str(f.last_error), cache.read_text()):
        assert KEY not in text  # ...and nowhere else
    assert load_snapshot(cache).ids == ("claude-test-0", "claude-test-1")


# -- async (MockTransport) ----------------------------------------------------------------


def async_fetcher(api: ModelsAPI, clock: FakeClock | None = None, **options: Any) -> Any:
    clock = clock or FakeClock()
    sleep = RecordingSleep(clock)
    f = AsyncRegistryFetcher(
        api_key=KEY,
        base_url=BASE,
        transport=httpx2.MockTransport(api),
        clock=clock,
        wall_clock=clock,
        sleep=sleep.async_sleep,
        jitter=lambda: 0.0,
        cache_file=False,
        **options,
    )
    return f, sleep


@pytest.mark.anyio
async def test_async_pages_and_retries() -> None:
    api = ModelsAPI(
        models(5),
        error_response(429, "rate_limit_error", "slow", {"retry-after-ms": "250"}),
        httpx2.ConnectError("refused"),
    )
    f, sleep = async_fetcher(api, page_size=2)
    registry = await f.refresh()
    assert len(registry) == 5
    assert sleep.waits == [0.25, 1.0]
    assert [r.url.params.get("after_id") for r in api.requests[2:]] == [
        None,
        "claude-test-1",
        "claude-test-3",
    ]
    await f.aclose()


@pytest.mark.anyio
async def test_async_errors_and_stale_while_revalidate() -> None:
    api = ModelsAPI(models(2), error_response(401, "authentication_error", "bad key"))
    clock = FakeClock()
    f, _ = async_fetcher(api, clock, ttl=10.0)
    with pytest.raises(RegistryHTTPError, match="HTTP 401"):
        await f.refresh()
    good = await f.refresh()
    clock.tick(11)
    api.script = [error_response(503, "api_error", "down")] * 20
    assert await f.current() is good  # stale, at once; a task revalidates
    assert f._flight is not None
    assert await f.refresh() is good  # joins the failing flight, serves the stale data
    assert isinstance(f.last_error, RegistryUnavailableError)
    await f.aclose()


@pytest.mark.anyio
async def test_async_retrieve_and_not_found() -> None:
    api = ModelsAPI([make_model("claude-dated-20260101")])
    f, _ = async_fetcher(api, background=False)
    info = await f.retrieve("claude-dated-20260101")
    assert info is not None
    assert await f.retrieve("claude-missing") is None
    assert await f.retrieve("claude-missing") is None
    assert len(api.requests) == 2
    await f.aclose()


# -- against the fake Anthropic server (real HTTP on 127.0.0.1) --------------------------


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"api_key": KEY}


@pytest.fixture
def live(fake: FakeAnthropic) -> Iterator[FakeAnthropic]:
    fake.reset()
    yield fake
    fake.faults.clear()


def listed_ids(fake: FakeAnthropic) -> list[str]:
    """What `GET /v1/models` lists by default: every model but the retired ones."""
    return [m["id"] for m in fake.models() if m.get("lifecycle") != "retired"]


def fake_fetcher(fake: FakeAnthropic, clock: FakeClock | None = None, **options: Any) -> Any:
    clock = clock or FakeClock()
    sleep = RecordingSleep(clock)
    options.setdefault("api_key", KEY)
    f = RegistryFetcher(
        base_url=fake.url,
        clock=clock,
        wall_clock=clock,
        sleep=sleep,
        jitter=lambda: 0.0,
        cache_file=False,
        **options,
    )
    return f, sleep


def test_fake_three_pages(live: FakeAnthropic) -> None:
    listed = listed_ids(live)
    assert len(listed) > 14
    f, _ = fake_fetcher(live, page_size=7)
    with f:
        registry = f.refresh()
    assert registry.ids == tuple(listed)
    pages = [r for r in live.requests if r.path == "/v1/models"]
    assert len(pages) == -(-len(listed) // 7) >= 3
    assert [r.query.get("after_id") for r in pages] == [None, [listed[6]], [listed[13]]]


def test_fake_faults_are_retried_with_the_right_waits(live: FakeAnthropic) -> None:
    live.faults.add("/v1/models", status=429, headers={"retry-after": "2"})
    live.faults.add("/v1/models", status=500)
    live.faults.add("/v1/models", status=529)
    live.faults.add("/v1/models", malformed=True)
    live.faults.add("/v1/models", truncated=True)
    f, sleep = fake_fetcher(live, max_attempts=6)
    with f:
        assert len(f.refresh()) == len(listed_ids(live))
    assert sleep.waits == [2.0, 1.0, 2.0, 4.0, 8.0]
    assert live.count("/v1/models") == 6


def test_fake_x_should_retry_false_and_a_wrong_key(live: FakeAnthropic) -> None:
    live.faults.add("/v1/models", status=500, x_should_retry=False)
    f, _ = fake_fetcher(live)
    with f, pytest.raises(RegistryHTTPError, match="HTTP 500"):
        f.refresh()
    assert live.count("/v1/models") == 1

    wrong, _ = fake_fetcher(live, api_key="sk-wrong-key")
    with wrong, pytest.raises(RegistryHTTPError) as caught:
        wrong.refresh()
    assert caught.value.status_code == 401
    assert "sk-wrong-key" not in str(caught.value)


def test_fake_stale_while_revalidate_against_a_failing_server(live: FakeAnthropic) -> None:
    clock = FakeClock()
    f, _ = fake_fetcher(live, clock, ttl=60.0)
    with f:
        good = f.refresh()
        clock.tick(61)
        live.faults.add("/v1/models", status=503, times=None)

        started = time.perf_counter()
        assert f.current() is good
        assert time.perf_counter() - started < 0.05
        wait_until(lambda: f.last_error is not None)
        assert isinstance(f.last_error, RegistryUnavailableError)
        assert "HTTP 503" in str(f.last_error)
        assert f.current() is good
        assert f.refresh() is good

        live.faults.clear()
        clock.tick(FAILURE_BACKOFF)
        assert f.current() is good
        wait_until(lambda: f.is_fresh)
        assert f.current() is not good
        assert f.last_error is None


def test_fake_slow_refresh_never_blocks_current(live: FakeAnthropic) -> None:
    clock = FakeClock()
    f, _ = fake_fetcher(live, clock, ttl=60.0)
    with f:
        good = f.refresh()
        clock.tick(61)
        live.faults.add("/v1/models", delay=0.3)
        started = time.perf_counter()
        for _ in range(100):
            assert f.current() is good
        assert time.perf_counter() - started < 0.1
        wait_until(lambda: f.is_fresh)


def _at_once_in_64_threads(ask: Callable[[], None]) -> None:
    """Run `ask` in 64 threads released together by a barrier; return when all are done."""
    barrier = threading.Barrier(64)

    def run() -> None:
        barrier.wait()
        ask()

    threads = [threading.Thread(target=run) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_fake_single_flight_with_64_threads(live: FakeAnthropic) -> None:
    live.faults.add("/v1/models", delay=0.3)  # keep the one fetch in flight meanwhile
    f, _ = fake_fetcher(live, background=False)
    results: list[Registry] = []

    def ask() -> None:
        results.append(f.refresh())

    with f:
        _at_once_in_64_threads(ask)
    assert len(results) == 64
    assert len({id(r) for r in results}) == 1
    assert live.count("/v1/models") == 1


def test_fake_single_flight_shares_a_failure_too(live: FakeAnthropic) -> None:
    live.faults.add("/v1/models", delay=0.2, status=403)
    f, _ = fake_fetcher(live, background=False)
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            f.refresh()
        except RegistryHTTPError as exc:
            errors.append(exc)

    with f:
        _at_once_in_64_threads(ask)
    assert len(errors) == 64
    assert {e.status_code for e in errors if isinstance(e, RegistryHTTPError)} == {403}
    assert live.count("/v1/models") == 1


@pytest.mark.anyio
async def test_fake_single_flight_with_64_tasks(live: FakeAnthropic) -> None:
    clock = FakeClock()
    f = AsyncRegistryFetcher(
        api_key=KEY, base_url=live.url, clock=clock, wall_clock=clock, cache_file=False
    )
    async with f:
        results = await asyncio.gather(*(f.refresh() for _ in range(64)))
    assert len({id(r) for r in results}) == 1
    assert results[0].ids == tuple(listed_ids(live))
    assert live.count("/v1/models") == 1


def test_fake_retrieve_resolves_an_alias(live: FakeAnthropic) -> None:
    live.set_models(
        [make_model("claude-new-5-20261101")], aliases={"claude-new": "claude-new-5-20261101"}
    )
    f, _ = fake_fetcher(live, background=False)
    with f:
        f.refresh()
        assert f.current().resolve("claude-new") is None
        info = f.retrieve("claude-new")
        assert info is not None and info.id == "claude-new-5-20261101"
        assert f.current().resolve("claude-new") == "claude-new-5-20261101"
        assert f.retrieve("claude-newest") is None
    assert [r.path for r in live.requests if r.path.startswith("/v1/models/")] == [
        "/v1/models/claude-new",
        "/v1/models/claude-newest",
    ]
