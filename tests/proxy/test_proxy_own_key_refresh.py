"""Own-key mode: a response-driven registry refresh really reads the Models API again."""

from __future__ import annotations

import pytest
from proxy_helpers import API_KEY, sdk_client, start_proxy, wait_until

from caproute.testing import FakeAnthropic

HI = [{"role": "user", "content": "hi"}]


def test_a_stale_registry_400_makes_the_proxy_refetch_and_reroute(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fetcher starts at most one background refresh per 10 s; the test can't wait.
    monkeypatch.setattr("caproute._registry.fetch_state.MIN_BACKGROUND_INTERVAL", 0.0)
    efforts = ["effort", "effort.low", "effort.medium", "effort.high"]
    fake.update_model("claude-sonnet-4-6", supported=efforts)  # what the proxy will read
    running = start_proxy(fake, api_key=API_KEY, require_token="local-token")
    try:
        client = sdk_client(running.url, "local-token")
        # The first request makes the fetcher read the lineup in the background.
        client.messages.create(model="claude-sonnet-4-6", max_tokens=32, messages=HI)
        wait_until(lambda: fake.count("/v1/models") >= 1)
        wait_until(lambda: running.app.router.registry.source.kind == "live")
        fetched = fake.count("/v1/models")
        # The API changes under the proxy: its registry now says "supported" wrongly.
        fake.update_model("claude-sonnet-4-6", unsupported=["effort"])

        answer = client.messages.with_raw_response.create(
            model="claude-sonnet-4-6",
            max_tokens=32,
            messages=HI,
            extra_body={"output_config": {"effort": "high"}},
        )
        # What the 400 taught is used at once; the refresh it asks for runs in the
        # background, in the fetcher's thread.
        wait_until(lambda: fake.count("/v1/models") == fetched + 1)
    finally:
        running.stop()

    assert fake.count("/v1/models") == fetched + 1  # the refresh reached the Models API
    assert answer.status_code == 200
    assert answer.headers["caproute-changes"] != "none"  # routed again on the new lineup


@pytest.mark.parametrize("variable", ["ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"])
def test_own_key_fetches_send_only_the_configured_key(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "sk-ant-from-the-environment")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # never to be used
    running = start_proxy(fake, api_key=API_KEY, require_token="local-token")
    try:
        sdk_client(running.url, "local-token").messages.create(
            model="claude-sonnet-4-6", max_tokens=32, messages=HI
        )
        wait_until(lambda: fake.count("/v1/models") >= 1)
    finally:
        running.stop()

    listing = [r for r in fake.requests if r.path == "/v1/models"]
    assert listing
    for request in listing:
        assert request.headers["x-api-key"] == API_KEY
        assert "authorization" not in request.headers
