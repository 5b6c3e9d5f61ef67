"""The SDK middleware's own behaviour: laziness, pass-through, self-healing, fallback.

The sync/async x every-path matrix lives in test_sdk_matrix.py (which also runs under
SDK 0.x); these tests pin down what only the middleware does, through the real SDK and
the fake API, with the catalogue changing mid-run.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from typing import Any

import anthropic
import pytest
from sdk_helpers import API_KEY, BIG, PDF_BLOCK, SMALL, opened, resolve

import caproute
from caproute import Decision, LiveRouter, Registry
from caproute.testing import FakeAnthropic, make_model

pytestmark = pytest.mark.anyio

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])

HELLO: dict[str, Any] = {
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Hello"}],
}


def client_with(
    fake: FakeAnthropic, router: LiveRouter, *, is_async: bool = False, **options: Any
) -> Any:
    sdk_class = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    options = {"base_url": fake.url, "api_key": fake.api_key, "max_retries": 0, **options}
    return sdk_class(middleware=[caproute.middleware(router=router)], **options)


def spy(seen: list[Any]) -> Any:
    """A plain-function middleware recording each request it is handed."""

    def record(request: Any, call_next: Any) -> Any:
        seen.append(request)
        return call_next(request)

    return record


# -- the object itself -------------------------------------------------------------------


def test_creating_a_middleware_is_what_imports_the_sdk() -> None:
    code = (
        "import sys, caproute\n"
        "assert 'anthropic' not in sys.modules and 'caproute._http.middleware' not in sys.modules\n"
        "m = caproute.middleware()\n"
        "import anthropic\n"
        "assert isinstance(m, anthropic.Middleware), type(m).__mro__\n"
        "assert type(m) is caproute._http.middleware.RoutingMiddleware\n"
        "print(repr(m))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("RoutingMiddleware(LiveRouter(")


def test_one_instance_serves_sync_and_async_clients() -> None:
    routing = caproute.middleware()
    # The SDK validates middleware at construction: `handle` for sync clients,
    # an `async def handle_async` for async ones.
    assert anthropic.Anthropic(api_key="k").with_middleware(routing).middleware == (routing,)
    assert anthropic.AsyncAnthropic(api_key="k").with_middleware(routing).middleware == (routing,)


def test_router_and_its_ingredients_are_exclusive(registry: Registry) -> None:
    with pytest.raises(TypeError, match="not both"):
        caproute.middleware(router=LiveRouter(registry), policy=None, registry=registry)


# -- what it touches and what it doesn't ---------------------------------------------------


async def test_other_endpoints_pass_through_unrouted(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    router = LiveRouter(registry, on_decision=decisions.append)
    async with opened(client_with(fake, router)) as client:
        models = [m.id for m in client.models.list()]

    assert models == [BIG, SMALL]
    assert decisions == []


async def test_unchanged_requests_are_forwarded_as_the_same_object(
    fake: FakeAnthropic, registry: Registry
) -> None:
    outer: list[Any] = []
    inner: list[Any] = []
    routing = caproute.middleware(router=LiveRouter(registry))
    options = {"base_url": fake.url, "api_key": fake.api_key, "max_retries": 0}
    client = anthropic.Anthropic(middleware=[spy(outer), routing, spy(inner)], **options)
    async with opened(client):
        client.messages.create(model=BIG, **HELLO)
        client.messages.create(model=SMALL, **{**HELLO, "max_tokens": 20_000})

    assert inner[0] is outer[0]  # unchanged: nothing copied
    # Changed: a new request for this attempt; the caller's request is left alone.
    assert inner[1] is not outer[1]
    assert outer[1].json["max_tokens"] == 20_000
    assert inner[1].json["max_tokens"] == 8192


async def test_parsed_calls_reach_the_decision_through_the_hook(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision], caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="caproute")
    router = LiveRouter(registry, on_decision=decisions.append)
    async with opened(client_with(fake, router)) as client:
        message = client.messages.create(model=SMALL, **{**HELLO, "max_tokens": 20_000})

    assert message.model == SMALL
    [decision] = decisions
    assert decision.outcome == "adjusted"
    [record] = [r for r in caplog.records if r.name == "caproute"]
    assert record.levelno == logging.INFO
    assert record.caproute_decision is decision  # type: ignore[attr-defined]
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(decision.to_dict())


async def test_async_clients_read_an_async_fetcher_before_routing(
    fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    class AsyncFetcher:  # only `current()` is needed to route
        calls = 0

        async def current(self) -> Registry:
            AsyncFetcher.calls += 1
            return registry

        async def refresh(self) -> Registry:
            return registry

    router = LiveRouter(AsyncFetcher(), on_decision=decisions.append)
    async with opened(client_with(fake, router, is_async=True)) as client:
        await client.messages.create(model=SMALL, **{**HELLO, "max_tokens": 20_000})

    assert AsyncFetcher.calls == 1  # awaited, never called synchronously
    [decision] = decisions
    # The fetcher's catalogue was used (the offline data doesn't know SMALL at all).
    assert decision.outcome == "adjusted"
    assert router.registry is registry


# -- the client's API version --------------------------------------------------------------


async def test_api_version_comes_from_the_call_or_the_sdk_default(
    fake: FakeAnthropic, registry: Registry
) -> None:
    # SDK 2.x sends 2026-10-21, where sampling parameters are a 400 (the middleware
    # knows the SDK's default without seeing the client's headers); a call that pins
    # 2023-06-01 keeps them.
    request = {**HELLO, "model": BIG, "extra_body": {"temperature": 0.2}}
    async with opened(client_with(fake, LiveRouter(registry))) as client:
        client.messages.create(**request)
        assert "temperature" not in fake.requests[-1].body
        client.messages.create(**request, extra_headers={"anthropic-version": "2023-06-01"})
        assert fake.requests[-1].body["temperature"] == 0.2


async def test_api_version_argument_for_clients_that_override_it(
    fake: FakeAnthropic, registry: Registry
) -> None:
    pinned = caproute.middleware(router=LiveRouter(registry), api_version="2023-06-01")
    client = anthropic.Anthropic(
        base_url=fake.url,
        api_key=fake.api_key,
        default_headers={"anthropic-version": "2023-06-01"},
        middleware=[pinned],
    )
    async with opened(client):
        client.messages.create(model=BIG, **HELLO, extra_body={"temperature": 0.2})

    assert fake.requests[-1].headers["anthropic-version"] == "2023-06-01"
    assert fake.requests[-1].body["temperature"] == 0.2


# -- self-healing and fallback against a catalogue that changes --------------------------


@both
async def test_stale_registry_400_is_learned_and_rerouted(
    is_async: bool, fake: FakeAnthropic, decisions: list[Decision]
) -> None:
    # caproute still believes SMALL reads PDFs; the API (the fake) no longer does.
    stale = Registry.from_models([make_model(BIG), make_model(SMALL)])
    request = {
        "model": SMALL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [PDF_BLOCK]}],
    }
    router = LiveRouter(stale, on_decision=decisions.append)
    async with opened(client_with(fake, router, is_async=is_async)) as client:
        raw = await resolve(client.messages.with_raw_response.create(**request))

    assert raw.status_code == 200
    assert [r.model for r in fake.requests if r.path == "/v1/messages"] == [SMALL, BIG]
    assert [d.outcome for d in decisions] == ["unchanged", "rerouted"]
    assert decisions[-1].extra["attempt"] == 2
    assert "learned pdf_input" in decisions[-1].extra["cause"]
    assert raw.headers["caproute-model"] == BIG
    assert [(f.model, f.key, f.value) for f in router.learned] == [(SMALL, "pdf_input", False)]


@both
async def test_retired_model_404_is_marked_and_routed_around(
    is_async: bool, fake: FakeAnthropic, registry: Registry, decisions: list[Decision]
) -> None:
    router = LiveRouter(registry, on_decision=decisions.append)
    fake.retire(SMALL)  # after caproute read the catalogue
    async with opened(client_with(fake, router, is_async=is_async)) as client:
        first = await resolve(client.messages.create(model=SMALL, **HELLO))
        second = await resolve(client.messages.create(model=SMALL, **HELLO))

    assert first.model == second.model == BIG
    # One 404, then straight to BIG: the router remembers the model is gone.
    assert [r.model for r in fake.requests] == [SMALL, BIG, BIG]
    assert SMALL in router.retired


@both
async def test_overloaded_model_falls_back_to_the_next_capable_candidate(
    is_async: bool, fake: FakeAnthropic, registry: Registry
) -> None:
    fake.overload(BIG)
    router = LiveRouter(registry)
    async with opened(client_with(fake, router, is_async=is_async)) as client:
        raw = await resolve(client.messages.with_raw_response.create(model=BIG, **HELLO))
        # A PDF needs BIG: no other candidate can take it, so the 529 reaches the caller.
        with pytest.raises(anthropic.APIStatusError) as caught:
            await resolve(
                client.messages.create(
                    model=BIG, max_tokens=100, messages=[{"role": "user", "content": [PDF_BLOCK]}]
                )
            )

    assert raw.headers["caproute-model"] == SMALL
    assert caught.value.status_code == 529
    assert [r.model for r in fake.requests] == [BIG, SMALL, BIG]


async def test_sdk_retries_and_fallbacks_do_not_multiply(
    fake: FakeAnthropic, registry: Registry
) -> None:
    # Every send fails with 529 (the SDK retries at once: retry-after-ms is honoured).
    fake.faults.add("/v1/messages", status=529, headers={"retry-after-ms": "1"}, times=None)
    async with opened(client_with(fake, LiveRouter(registry), max_retries=2)) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(model=BIG, **HELLO)

    assert caught.value.status_code == 529
    # 3 SDK attempts (max_retries=2), each allowed at most ONE fallback hop: between 3
    # and 6 sends, never attempts x max_attempts (9) or more.
    assert 3 <= fake.count("/v1/messages") <= 6


# -- streaming -----------------------------------------------------------------------------


async def test_streams_are_not_buffered(fake: FakeAnthropic, registry: Registry) -> None:
    delay = 0.02
    fake.stream_delay = delay  # between events, none before the first
    async with opened(client_with(fake, LiveRouter(registry))) as client:
        with client.messages.stream(model=SMALL, **{**HELLO, "max_tokens": 20_000}) as stream:
            arrivals = [time.perf_counter() for _ in stream]

    assert len(arrivals) >= 5
    # Events arrive spread out as the fake sends them; a buffered stream would hand
    # them all over at once, after the last one was sent.
    assert arrivals[-1] - arrivals[0] >= 0.5 * delay * (len(arrivals) - 1)
    assert fake.requests[-1].body["max_tokens"] == 8192


# -- the one SDK internal the middleware writes (docs/architecture.md) ---------------------


def test_a_routed_copy_does_not_merge_an_unmerged_extra_body_again() -> None:
    # SDK 0.x hands middleware ``extra_body`` apart (``options.extra_json``) and merges it
    # after the chain; `request.copy()` carries it over, so a routed copy must drop it or
    # the caller's values would undo what routing changed. No public API drops it: this
    # fails loudly (AttributeError, or a merged value back) if the SDK moves it.
    from anthropic._models import FinalRequestOptions

    from caproute._core.flow import Forward as Send
    from caproute._http.middleware import _outgoing

    options = FinalRequestOptions(
        method="post",
        url="/v1/messages",
        json_data={**HELLO, "model": BIG},
        extra_json={"temperature": 0.2},
    )
    request = anthropic.APIRequest(options=options, cast_to=object)
    assert request.copy(body={}).options.extra_json == {"temperature": 0.2}
    routed_body = {**HELLO, "model": SMALL}  # routing dropped `temperature`
    routed = _outgoing(request, Send(routed_body, Decision("adjusted", BIG, SMALL), True, 1))
    assert routed.json == routed_body
    assert routed.options.extra_json is None
    assert request.options.extra_json == {"temperature": 0.2}  # the caller's, untouched
    unchanged = _outgoing(request, Send(request.json, Decision("unchanged", BIG, BIG), False, 1))
    assert unchanged is request


def test_the_sdk_default_api_version_is_what_a_client_sends(fake: FakeAnthropic) -> None:
    # Read from the SDK's private `_constants` (docs/architecture.md): this fails loudly
    # when the SDK moves or renames it, or its clients send another default.
    from caproute._http.middleware import _sdk_default_api_version

    with fake.client() as client:
        sent = client.default_headers["anthropic-version"]
    assert _sdk_default_api_version() == sent
    if int(anthropic.__version__.partition(".")[0]) >= 2:
        from anthropic import _constants

        assert sent == _constants.ANTHROPIC_API_VERSION


@both
async def test_an_error_building_the_routed_request_is_the_sdks_500(
    is_async: bool, fake: FakeAnthropic, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Any, **changes: Any) -> Any:
        raise TypeError("a bug while copying the request")

    monkeypatch.setattr(anthropic.APIRequest, "copy", broken)
    request = {**HELLO, "model": BIG, "extra_body": {"temperature": 0.2}}  # dropped: a copy
    async with opened(client_with(fake, LiveRouter(registry), is_async=is_async)) as client:
        with pytest.raises(anthropic.InternalServerError) as caught:
            await resolve(client.messages.create(**request))
    assert "internal error while routing this request (TypeError)" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert fake.count("/v1/messages") == 0
