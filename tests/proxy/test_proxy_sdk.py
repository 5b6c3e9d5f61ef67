"""The anthropic SDK and raw httpx, pointed at the real proxy in front of the fake API."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from proxy_helpers import API_KEY, RunningProxy, sdk_client

from caproute.testing import FakeAnthropic

HI = [{"role": "user", "content": "hi"}]
# claude-haiku-4-5 has no effort levels: the default policy drops output_config.
NEEDS_EFFORT = {"output_config": {"effort": "high"}}


def test_sync_sdk_call_is_routed_and_reaches_the_upstream(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    client = sdk_client(proxy.url)

    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=64, messages=HI, extra_body=NEEDS_EFFORT
    )

    assert raw.headers["caproute-outcome"] == "adjusted"
    assert raw.headers["caproute-model"] == "claude-haiku-4-5"
    assert "output_config" in raw.headers["caproute-changes"]
    assert raw.parse().content[0].text.startswith("Hello from claude-haiku-4-5")
    forwarded = fake.requests[-1]
    assert forwarded.path == "/v1/messages"
    assert "output_config" not in forwarded.body
    # The caller's own credential travels as it was sent (SDK 2.x: a bearer token).
    assert forwarded.headers["authorization"] == f"Bearer {API_KEY}"


def test_sync_sdk_stream_arrives_event_by_event(fake: FakeAnthropic, proxy: RunningProxy) -> None:
    client = sdk_client(proxy.url)

    with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=HI) as stream:
        kinds = [event.type for event in stream]
        text = stream.get_final_text()

    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds
    assert text.startswith("Hello from claude-haiku-4-5")


@pytest.mark.anyio
async def test_async_sdk_call_and_stream(fake: FakeAnthropic, proxy: RunningProxy) -> None:
    client = anthropic.AsyncAnthropic(base_url=proxy.url, api_key=API_KEY, max_retries=0)

    message = await client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=HI)
    async with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=64, messages=HI
    ) as stream:
        streamed = await stream.get_final_text()
    await client.close()

    assert message.model.startswith("claude-sonnet-4-6")
    assert streamed == message.content[0].text


def test_non_messages_endpoints_pass_through(fake: FakeAnthropic, proxy: RunningProxy) -> None:
    client = sdk_client(proxy.url)

    page = client.models.list(limit=3)
    count = client.messages.count_tokens(model="claude-haiku-4-5", messages=HI)

    assert len(page.data) == 3
    assert count.input_tokens > 0
    # The caller's listing went through as asked (the proxy's own registry fetch, made
    # for the routed count_tokens, is another request).
    listed = [r.query.get("limit") for r in fake.requests if r.path == "/v1/models"]
    assert ["3"] in listed


def test_upstream_errors_reach_the_sdk_unchanged(fake: FakeAnthropic, proxy: RunningProxy) -> None:
    fake.faults.add("/v1/messages", status=429, headers={"retry-after": "7"})
    before = proxy.metric('caproute_proxy_upstream_errors_total{status="429"}')
    client = sdk_client(proxy.url)

    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=HI)

    assert caught.value.response.headers["retry-after"] == "7"
    assert proxy.metric('caproute_proxy_upstream_errors_total{status="429"}') == before + 1


def test_a_wrong_key_is_the_upstreams_401(fake: FakeAnthropic, proxy: RunningProxy) -> None:
    client = sdk_client(proxy.url, "sk-wrong")

    with pytest.raises(anthropic.AuthenticationError):
        client.models.list()


def test_raw_httpx_passthrough_is_byte_for_byte(fake: FakeAnthropic, proxy: RunningProxy) -> None:
    direct = httpx.get(f"{fake.url}/v1/models?limit=5", headers=fake.headers())
    proxied = httpx.get(f"{proxy.url}/v1/models?limit=5", headers=fake.headers())

    assert proxied.status_code == direct.status_code == 200
    assert proxied.content == direct.content
    assert proxied.headers["content-type"] == direct.headers["content-type"]
    assert "caproute-outcome" not in proxied.headers  # not a Messages request
