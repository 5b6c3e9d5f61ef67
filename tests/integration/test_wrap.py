"""`caproute.wrap()` and the routed HTTP clients, with the real anthropic 2.x SDK."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any, Literal

import anthropic
import httpx
import httpx2
import pytest
from sdk_helpers import EFFORT_MAX, HI, PDF_BLOCK

import caproute
from caproute import LiveRouter, Policy, Registry
from caproute._core.decision import Decision
from caproute._wrap.http_clients import routed_copy
from caproute.testing import FakeAnthropic, make_model

MODELS = [
    make_model("claude-big-2", max_tokens=128_000),
    make_model(
        "claude-small-1", unsupported=["effort.max", "effort.xhigh", "pdf_input"], max_tokens=8192
    ),
]
REGISTRY = Registry.from_models(MODELS)
KEY = "test-key-wrap"
PDF_MESSAGES = [{"role": "user", "content": [PDF_BLOCK, {"type": "text", "text": "summarise"}]}]
WITH_PDF: dict[str, Any] = {"model": "claude-small-1", "max_tokens": 100, "messages": PDF_MESSAGES}


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": MODELS, "api_key": KEY}


@pytest.fixture
def plain(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with fake.client() as client:
        yield client


Via = Literal["transport", "middleware"]


@pytest.fixture(params=["transport", "middleware"])
def via(request: pytest.FixtureRequest) -> Via:
    """Both paths `wrap()` can take: every behaviour below must hold on each."""
    path: Via = request.param
    return path


def test_auto_takes_the_transport(plain: anthropic.Anthropic) -> None:
    """The path the SDK's own test suite finds most transparent (docs/sdk.md): installing
    any SDK middleware changes what the SDK does."""
    client = caproute.wrap(plain, registry=REGISTRY)
    assert isinstance(client._client._transport, caproute.RoutingTransport)
    assert client.middleware == plain.middleware
    routed = caproute.wrap(plain, registry=REGISTRY, via="middleware")
    assert len(routed.middleware) == len(plain.middleware) + 1
    assert routed._client is plain._client  # no routing transport underneath


def test_the_middleware_path_reads_the_clients_api_version(fake: FakeAnthropic) -> None:
    new_version = fake.client().with_options(default_headers={"anthropic-version": "2026-10-21"})
    client = caproute.wrap(new_version, registry=REGISTRY, via="middleware")
    # Sampling parameters are a 400 under 2026-10-21: the middleware must strip them
    # although the call itself sets no version header.
    raw = client.messages.with_raw_response.create(**EFFORT_MAX, extra_body={"temperature": 0.5})
    assert "temperature: 0.5 -> (absent)" in raw.headers["caproute-changes"]
    assert fake.requests[-1].headers["anthropic-version"] == "2026-10-21"
    assert "temperature" not in (fake.requests[-1].body or {})


def test_the_fake_refuses_the_same_calls_without_caproute(plain: anthropic.Anthropic) -> None:
    for call in (EFFORT_MAX, WITH_PDF):
        with pytest.raises(anthropic.BadRequestError):
            plain.messages.create(**call)
    with pytest.raises(anthropic.BadRequestError):
        plain.messages.count_tokens(
            model="claude-small-1", output_config={"effort": "max"}, messages=HI
        )


def test_wrapped_client_behaves_like_the_original(plain: anthropic.Anthropic, via: Via) -> None:
    client = caproute.wrap(plain, via=via, registry=REGISTRY)
    assert type(client) is type(plain)
    assert client.max_retries == plain.max_retries
    assert client.timeout == plain.timeout
    assert client.base_url == plain.base_url
    assert client._client.follow_redirects is plain._client.follow_redirects
    # The original is untouched and still unrouted.
    assert not isinstance(plain._client._transport, caproute.RoutingTransport)
    # with_options keeps the routed HTTP client.
    copy = client.with_options(timeout=12.0, max_retries=1)
    message = copy.messages.create(**EFFORT_MAX)
    assert message.model == "claude-small-1"
    assert copy.max_retries == 1


def test_messages_are_adjusted_and_rerouted_with_headers(
    plain: anthropic.Anthropic, via: Via
) -> None:
    seen: list[Decision] = []
    client = caproute.wrap(plain, via=via, registry=REGISTRY, on_decision=seen.append)
    raw = client.messages.with_raw_response.create(**EFFORT_MAX)
    assert raw.headers["caproute-outcome"] == "adjusted"
    assert raw.headers["caproute-changes"] == "output_config.effort: max -> high"
    assert raw.http_response.extensions["caproute_decision"] is seen[0]
    assert raw.parse().content[0].type == "text"
    message = client.messages.create(**WITH_PDF)
    assert message.model == "claude-big-2"
    assert [d.outcome for d in seen] == ["adjusted", "rerouted"]


def test_streaming(plain: anthropic.Anthropic, via: Via) -> None:
    client = caproute.wrap(plain, via=via, registry=REGISTRY)
    with client.messages.stream(**WITH_PDF) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.model == "claude-big-2"
    assert "claude-big-2" in text
    events = [e.type for e in client.messages.create(**EFFORT_MAX, stream=True)]
    assert events[0] == "message_start" and events[-1] == "message_stop"


def test_count_tokens(plain: anthropic.Anthropic, via: Via) -> None:
    client = caproute.wrap(plain, via=via, registry=REGISTRY)
    raw = client.messages.with_raw_response.count_tokens(
        model="claude-small-1", output_config={"effort": "max"}, messages=HI
    )
    assert raw.parse().input_tokens > 0
    assert raw.headers["caproute-outcome"] == "adjusted"


def test_batches(plain: anthropic.Anthropic, via: Via) -> None:
    requests: Any = [
        {"custom_id": "effort", "params": EFFORT_MAX},
        {"custom_id": "pdf", "params": WITH_PDF},
    ]

    def outcome(client: anthropic.Anthropic) -> dict[str, str]:
        batch = client.messages.batches.create(requests=requests)
        client.messages.batches.retrieve(batch.id)  # the fake ends a batch when retrieved
        return {r.custom_id: r.result.type for r in client.messages.batches.results(batch.id)}

    assert outcome(plain) == {"effort": "errored", "pdf": "errored"}
    assert outcome(caproute.wrap(plain, via=via, registry=REGISTRY)) == {
        "effort": "succeeded",
        "pdf": "succeeded",
    }


def test_a_refusal_is_the_usual_bad_request_error(
    plain: anthropic.Anthropic, via: Via, fake: FakeAnthropic
) -> None:
    strict = Policy.from_text("defaults:\n  on_unsupported: reject\n")
    client = caproute.wrap(
        plain.with_options(max_retries=2), via=via, registry=REGISTRY, policy=strict
    )
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**EFFORT_MAX)
    assert "caproute: " in str(caught.value)
    assert caught.value.response.headers["caproute-outcome"] == "rejected"
    assert fake.count("/v1/messages") == 0


def test_the_copy_survives_the_original_being_collected(fake: FakeAnthropic) -> None:
    client = caproute.wrap(fake.client(), registry=REGISTRY)
    gc.collect()
    assert client.messages.create(**EFFORT_MAX).model == "claude-small-1"
    client.close()


def test_the_middleware_path(plain: anthropic.Anthropic) -> None:
    seen: list[Decision] = []
    client = caproute.wrap(plain, registry=REGISTRY, on_decision=seen.append, via="middleware")
    assert client.messages.create(**WITH_PDF).model == "claude-big-2"
    assert not isinstance(client._client._transport, caproute.RoutingTransport)
    assert [d.outcome for d in seen] == ["rerouted"]


def test_the_middleware_path_keeps_the_clients_own_middleware(fake: FakeAnthropic) -> None:
    calls: list[str] = []

    def audit(request: Any, call_next: Any) -> Any:
        calls.append(request.url)
        return call_next(request)

    original = fake.client().with_options(middleware=[audit])
    client = caproute.wrap(original, registry=REGISTRY, via="middleware")
    assert client.messages.create(**WITH_PDF).model == "claude-big-2"
    assert calls == ["/v1/messages"]
    client.close()


def test_wrap_rejects_what_it_cannot_wrap(plain: anthropic.Anthropic) -> None:
    with pytest.raises(TypeError):
        caproute.wrap(object())
    with pytest.raises(ValueError):
        caproute.wrap(plain, registry=REGISTRY, via="carrier-pigeon")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        caproute.wrap(plain, router=LiveRouter(REGISTRY), registry=REGISTRY)


@pytest.mark.anyio
async def test_async_client(fake: FakeAnthropic) -> None:
    seen: list[Decision] = []
    async with fake.async_client() as original:
        client = caproute.wrap(original, registry=REGISTRY, on_decision=seen.append)
        assert type(client) is anthropic.AsyncAnthropic
        raw = await client.messages.with_raw_response.create(**EFFORT_MAX)
        assert raw.headers["caproute-outcome"] == "adjusted"
        async with client.messages.stream(**WITH_PDF) as stream:
            final = await stream.get_final_message()
        assert final.model == "claude-big-2"
        counted = await client.messages.count_tokens(
            model="claude-small-1", output_config={"effort": "max"}, messages=HI
        )
        assert counted.input_tokens > 0
        batch = await client.messages.batches.create(
            requests=[{"custom_id": "pdf", "params": WITH_PDF}]  # type: ignore[list-item]
        )
        await client.messages.batches.retrieve(batch.id)
        results = [r.result.type async for r in await client.messages.batches.results(batch.id)]
        assert results == ["succeeded"]
    assert [d.outcome for d in seen] == ["adjusted", "rerouted", "adjusted", "rerouted"]


@pytest.mark.anyio
async def test_async_middleware_path(fake: FakeAnthropic) -> None:
    async with fake.async_client() as original:
        client = caproute.wrap(original, registry=REGISTRY, via="middleware")
        assert (await client.messages.create(**WITH_PDF)).model == "claude-big-2"


def test_routed_http_client_for_the_sdk(fake: FakeAnthropic) -> None:
    http = caproute.routed_http_client(registry=REGISTRY)
    assert isinstance(http, httpx2.Client)
    assert http.follow_redirects is True
    assert http.timeout == httpx2.Timeout(600.0, connect=5.0)
    with anthropic.Anthropic(base_url=fake.url, api_key=KEY, http_client=http) as client:
        raw = client.messages.with_raw_response.create(**WITH_PDF)
    assert raw.headers["caproute-model"] == "claude-big-2"


@pytest.mark.parametrize("flavour", ["httpx2", "httpx"])
def test_routed_http_clients_for_other_libraries(fake: FakeAnthropic, flavour: str) -> None:
    module: Any = httpx2 if flavour == "httpx2" else httpx
    with caproute.routed_http_client(
        registry=REGISTRY, flavour=flavour, base_url=fake.url, headers=fake.headers(), timeout=5.0
    ) as http:
        assert isinstance(http, module.Client)
        response = http.post("/v1/messages", json=EFFORT_MAX)
    assert response.status_code == 200
    assert response.headers["caproute-outcome"] == "adjusted"


@pytest.mark.parametrize("flavour", ["httpx2", "httpx"])
@pytest.mark.anyio
async def test_routed_async_http_clients(fake: FakeAnthropic, flavour: str) -> None:
    module: Any = httpx2 if flavour == "httpx2" else httpx
    async with caproute.routed_async_http_client(
        registry=REGISTRY, flavour=flavour, base_url=fake.url, headers=fake.headers()
    ) as http:
        assert isinstance(http, module.AsyncClient)
        response = await http.post("/v1/messages", json=WITH_PDF)
    assert response.headers["caproute-model"] == "claude-big-2"


def test_wrap_of_an_httpx_based_client_uses_the_httpx_transport(fake: FakeAnthropic) -> None:
    # What anthropic 0.x hands to wrap(): a client whose HTTP client is an httpx.Client.
    # (The full 0.x SDK runs in its own environment; this checks the plumbing here.)
    http = httpx.Client(base_url=fake.url, headers=fake.headers())
    routed = routed_copy(http, LiveRouter(REGISTRY))
    assert isinstance(routed, httpx.Client)
    with routed:
        response = routed.post("/v1/messages", json=EFFORT_MAX)
    assert response.headers["caproute-outcome"] == "adjusted"
    http.close()
