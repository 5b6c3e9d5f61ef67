"""Item 4: a malformed request never crashes caproute, on any path.

Before the fix, a ``document.source.type`` that was a list or an object raised
``TypeError`` in detection: the middleware let it escape raw, the transports turned it
into ``APIConnectionError`` (which the SDK retried), the proxy answered 500
``text/plain`` (which the SDK retried three times). A 100,000-deep JSON body raised
``RecursionError`` the same ways. Now:

* a body caproute can read but not route is forwarded unchanged (the API judges it);
* a body caproute can't read safely is refused locally, API-shaped, never retried;
* an error in routing itself is an API-shaped 500 with ``x-should-retry: false``.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from reliability_helpers import (
    API_KEY,
    LIBRARY_PATHS,
    compact,
    deep_json,
    proxy_for,
    raw_post,
    sdk_client,
)

import caproute
from caproute import Decision, LiveRouter, PolicyEngine, embedded_registry
from caproute._core.flow import View
from caproute._http.transports import httpx_transport
from caproute.testing import FakeAnthropic

ODD_SOURCES = [["base64"], {"type": "base64"}, [], {}]
HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}


def odd_document(source_type: Any) -> dict[str, Any]:
    block = {"type": "document", "source": {"type": source_type, "data": "JVBERi0x"}}
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": [block]}],
    }


class BrokenEngine(PolicyEngine):
    """A routing core with a bug: routing raises."""

    def route(self, *args: Any, **options: Any) -> Any:  # type: ignore[override]
        raise TypeError("a bug in routing")


def _broken(view: View) -> View:
    return view._replace(engine=BrokenEngine(view.engine.registry, view.engine.policy))


class BrokenRouter(LiveRouter):
    """A router whose core has a bug. (Fault injection: every path must contain it.)"""

    def view(self) -> View:
        return _broken(super().view())

    async def aview(self) -> View:
        return _broken(await super().aview())


# -- document.source.type is a list or an object ------------------------------------------


@pytest.mark.parametrize("source_type", ODD_SOURCES, ids=json.dumps)
@pytest.mark.parametrize("path", LIBRARY_PATHS)
def test_an_odd_source_type_is_forwarded_on_every_sdk_path(
    path: str, source_type: Any, fake: FakeAnthropic
) -> None:
    decisions: list[Decision] = []
    router = LiveRouter(embedded_registry(), on_decision=decisions.append)
    with sdk_client(path, fake, router) as client:
        response = client.messages.with_raw_response.create(**odd_document(source_type))

    assert response.status_code == 200  # what the fake says: caproute forwarded it
    assert response.headers["caproute-outcome"] == "unchanged"
    assert fake.count("/v1/messages") == 1
    assert fake.requests[-1].body == odd_document(source_type)
    assert [d.outcome for d in decisions] == ["unchanged"]


@pytest.mark.anyio
@pytest.mark.parametrize("path", LIBRARY_PATHS)
async def test_an_odd_source_type_is_forwarded_on_every_async_sdk_path(
    path: str, fake: FakeAnthropic
) -> None:
    async with sdk_client(path, fake, LiveRouter(embedded_registry()), is_async=True) as client:
        message = await client.messages.create(**odd_document({"a": 1}))
    assert message.type == "message"
    assert fake.count("/v1/messages") == 1


@pytest.mark.parametrize("source_type", ODD_SOURCES, ids=json.dumps)
def test_an_odd_source_type_is_forwarded_by_the_proxy(
    source_type: Any, fake: FakeAnthropic
) -> None:
    with proxy_for(fake) as proxy:
        answer = raw_post(proxy, "/v1/messages", compact(odd_document(source_type)))
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["caproute-outcome"] == "unchanged"
    assert fake.count("/v1/messages") == 1


# -- 100,000-deep JSON --------------------------------------------------------------------

DEEP = deep_json(100_000)


def _assert_refused_as_too_deep(status: int, headers: Any, body: bytes) -> None:
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert headers["x-should-retry"] == "false"
    assert headers["caproute-outcome"] == "rejected"
    assert json.loads(body) == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "caproute: the request body is nested too deeply to read",
        },
    }


@pytest.mark.parametrize("module", [httpx2, httpx])
def test_deep_json_is_refused_by_the_transports(module: Any, fake: FakeAnthropic) -> None:
    if module is httpx2:
        transport: Any = caproute.RoutingTransport(router=LiveRouter(embedded_registry()))
    else:
        transport = httpx_transport(router=LiveRouter(embedded_registry()))
    with module.Client(transport=transport, base_url=fake.url, headers=HEADERS) as http:
        response = http.post("/v1/messages", content=DEEP)
    _assert_refused_as_too_deep(response.status_code, response.headers, response.content)
    assert fake.count("/v1/messages") == 0  # nothing went upstream


@pytest.mark.anyio
async def test_deep_json_is_refused_by_the_async_transport(fake: FakeAnthropic) -> None:
    transport = caproute.AsyncRoutingTransport(router=LiveRouter(embedded_registry()))
    async with httpx2.AsyncClient(transport=transport, base_url=fake.url, headers=HEADERS) as http:
        response = await http.post("/v1/messages", content=DEEP)
    _assert_refused_as_too_deep(response.status_code, response.headers, response.content)


def test_deep_json_is_refused_by_the_proxy_api_shaped(fake: FakeAnthropic) -> None:
    with proxy_for(fake) as proxy:
        answer = raw_post(proxy, "/v1/messages", DEEP)
        assert proxy.metric("caproute_proxy_refusals_total") == 1
    _assert_refused_as_too_deep(answer.status, answer.headers, answer.body)
    assert fake.count("/v1/messages") == 0


# -- a bug in routing ---------------------------------------------------------------------


@pytest.mark.parametrize("path", LIBRARY_PATHS)
def test_a_routing_error_is_an_api_500_never_retried_on_every_sdk_path(
    path: str, fake: FakeAnthropic
) -> None:
    client = sdk_client(path, fake, BrokenRouter(embedded_registry()), max_retries=3)
    with client, pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=16,
            messages=[{"role": "user", "content": "hi"}],
        )
    assert caught.value.status_code == 500
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "api_error",
            "message": "caproute: internal error while routing this request (TypeError); "
            "it was not sent",
        },
    }
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert fake.count("/v1/messages") == 0


@pytest.mark.anyio
@pytest.mark.parametrize("path", LIBRARY_PATHS)
async def test_a_routing_error_is_an_api_500_on_every_async_sdk_path(
    path: str, fake: FakeAnthropic
) -> None:
    router = BrokenRouter(embedded_registry())
    async with sdk_client(path, fake, router, is_async=True, max_retries=3) as client:
        with pytest.raises(anthropic.InternalServerError):
            await client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=16,
                messages=[{"role": "user", "content": "hi"}],
            )
    assert fake.count("/v1/messages") == 0


def test_a_routing_error_is_an_api_500_from_the_proxy(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Own-key mode: the proxy's own router routes every caller, so the fault reaches all.
    with proxy_for(fake, api_key=API_KEY, require_token="caller-token") as proxy:
        router = proxy.app.router
        view, aview = router.view, router.aview

        async def broken_aview() -> View:
            return _broken(await aview())

        monkeypatch.setattr(router, "view", lambda: _broken(view()))
        monkeypatch.setattr(router, "aview", broken_aview)
        client = anthropic.Anthropic(base_url=proxy.url, api_key="caller-token", max_retries=3)
        with pytest.raises(anthropic.InternalServerError) as caught:
            client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=16,
                messages=[{"role": "user", "content": "hi"}],
            )
        client.close()
        # One attempt (x-should-retry: false), counted as a refusal, not a crash.
        assert proxy.metric('caproute_proxy_requests_total{outcome="rejected"}') == 1
        assert proxy.metric('caproute_proxy_requests_total{outcome="local"}') == 0
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert caught.value.response.headers["content-type"] == "application/json"
    assert fake.count("/v1/messages") == 0


def test_errors_of_the_inner_transport_still_reach_the_client_as_before(
    fake: FakeAnthropic,
) -> None:
    # The guard is for routing only: a connection error stays a connection error (the
    # SDK retries those), it is not turned into a local 500.
    def refuse_connection(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    transport = caproute.RoutingTransport(
        httpx2.MockTransport(refuse_connection), router=LiveRouter(embedded_registry())
    )
    with (
        httpx2.Client(transport=transport, base_url=fake.url) as http,
        pytest.raises(httpx2.ConnectError),
    ):
        http.post("/v1/messages", json=odd_document("base64"))
