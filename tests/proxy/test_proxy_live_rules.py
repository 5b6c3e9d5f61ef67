"""The proxy follows the same live rules as the library: retired models, learning, the
thinking/sampling rule, the cold start and bounded fallback, for any HTTP client.

Own-key mode reads the upstream's Models API itself (a live registry); pass-through
mode routes on a snapshot file. Each test shows the request failing without the proxy
first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from proxy_helpers import API_KEY, RunningProxy, sdk_client, start_proxy, wait_until

from caproute import Registry, save_snapshot
from caproute.testing import FakeAnthropic, make_model

TOKEN = "local-proxy-token"
HAIKU, RETIRED_HAIKU, SONNET = "claude-haiku-9", "claude-haiku-7-20250101", "claude-sonnet-9"
HI = [{"role": "user", "content": "hi"}]


def truth() -> list[dict[str, Any]]:
    return [
        make_model(SONNET, line="sonnet", omit=["effort.xhigh"]),
        make_model(HAIKU, line="haiku", unsupported=["effort"]),
        make_model(RETIRED_HAIKU, line="haiku", lifecycle="retired"),
    ]


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {
        "models": truth(),
        "aliases": {"claude-haiku-7": RETIRED_HAIKU, "claude-sonnet-latest": SONNET},
        "api_key": API_KEY,
    }


@pytest.fixture
def older_snapshot(tmp_path: Path) -> Path:
    """A snapshot from when the retired haiku was still listed."""
    registry = Registry.from_models(
        [
            make_model(RETIRED_HAIKU, line="haiku"),
            make_model(SONNET, line="sonnet"),
            make_model(HAIKU, line="haiku"),
        ],
        aliases={"claude-haiku-7": RETIRED_HAIKU},
    )
    return save_snapshot(registry, tmp_path / "older.json")


@pytest.fixture
def own_key(fake: FakeAnthropic, older_snapshot: Path) -> Iterator[RunningProxy]:
    running = start_proxy(fake, api_key=API_KEY, require_token=TOKEN, snapshot=older_snapshot)
    yield running
    running.stop()


def messages_sent(fake: FakeAnthropic, mark: int = 0) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests[mark:] if r.path == "/v1/messages"]


def post_through_pass_through_proxy(
    fake: FakeAnthropic, request: dict[str, Any], **proxy_options: Any
) -> httpx.Response:
    """POST `request` to a pass-through proxy (the caller's own key reads /v1/models)
    started for this one request, and stop it."""
    running = start_proxy(fake, **proxy_options)
    try:
        return httpx.post(
            f"{running.url}/v1/messages",
            json=request,
            headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
        )
    finally:
        running.stop()


def bare_status(fake: FakeAnthropic, **request: Any) -> int:
    with httpx.Client(base_url=fake.url, headers=fake.headers()) as client:
        return client.post("/v1/messages", json=request).status_code


def test_own_key_mode_reroutes_a_model_the_live_list_left_out_once_the_api_confirms(
    fake: FakeAnthropic, own_key: RunningProxy
) -> None:
    request = {"model": "claude-haiku-7", "max_tokens": 50, "messages": HI}
    assert bare_status(fake, **request) == 404
    mark = len(fake.requests)
    client = sdk_client(own_key.url, TOKEN)
    raw = client.messages.with_raw_response.create(**request)  # the cold start waits
    assert raw.headers["caproute-outcome"] == "rerouted"
    # Left out of the list, so tried: its 404 confirms the retirement, same call.
    assert [b["model"] for b in messages_sent(fake, mark)] == ["claude-haiku-7", HAIKU]
    registry = httpx.get(f"{own_key.url}/caproute/registry").json()
    assert RETIRED_HAIKU in registry.get("unlisted", {})
    learned = [(f["model"], f["key"], f["value"]) for f in registry["learned"]]
    assert learned == [(RETIRED_HAIKU, "lifecycle", "retired")]
    mark = len(fake.requests)
    client.messages.create(**request)
    assert [b["model"] for b in messages_sent(fake, mark)] == [HAIKU]


def test_own_key_mode_learns_a_refusal_and_shows_it(
    fake: FakeAnthropic, own_key: RunningProxy
) -> None:
    client = sdk_client(own_key.url, TOKEN)
    client.messages.create(model=SONNET, max_tokens=10, messages=HI)  # live data landed
    fake.update_model(SONNET, unsupported=["effort.max"])
    request = {
        "model": SONNET,
        "max_tokens": 50,
        "messages": HI,
        "extra_body": {"output_config": {"effort": "max"}},
    }

    mark = len(fake.requests)
    raw = client.messages.with_raw_response.create(**request)
    assert raw.status_code == 200
    assert [b["output_config"] for b in messages_sent(fake, mark)] == [
        {"effort": "max"},
        {"effort": "high"},
    ]

    mark = len(fake.requests)
    client.messages.create(**request)
    assert [b["output_config"] for b in messages_sent(fake, mark)] == [{"effort": "high"}]
    learned = httpx.get(f"{own_key.url}/caproute/registry").json()["learned"]
    assert [(f["model"], f["key"], f["value"]) for f in learned] == [(SONNET, "effort.max", False)]


def test_what_a_route_header_variant_learns_every_route_knows(
    fake: FakeAnthropic, older_snapshot: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "routing.yaml"
    policy.write_text(f"routes:\n  - name: pinned\n    candidates: [{SONNET}]\n")
    running = start_proxy(
        fake,
        api_key=API_KEY,
        require_token=TOKEN,
        snapshot=older_snapshot,
        policy=policy,
        allow_route_header=True,
    )
    client = sdk_client(running.url, TOKEN)
    request = {
        "model": SONNET,
        "max_tokens": 50,
        "messages": HI,
        "extra_body": {"output_config": {"effort": "max"}},
    }
    try:
        client.messages.create(model=SONNET, max_tokens=10, messages=HI)  # live data landed
        fake.update_model(SONNET, unsupported=["effort.max"])
        mark = len(fake.requests)
        client.messages.create(**request, extra_headers={"caproute-route": "pinned"})
        assert len(messages_sent(fake, mark)) == 2  # refused once, learned, resent

        mark = len(fake.requests)
        raw = client.messages.with_raw_response.create(**request)  # the default route
        assert raw.status_code == 200
        assert [b["output_config"] for b in messages_sent(fake, mark)] == [{"effort": "high"}]
    finally:
        running.stop()


def test_pass_through_mode_applies_the_thinking_sampling_rule_for_any_client(
    fake: FakeAnthropic, older_snapshot: Path
) -> None:
    request = {
        "model": SONNET,
        "max_tokens": 4000,
        "messages": HI,
        "thinking": {"type": "adaptive"},
        "temperature": 0.4,
        "top_k": 3,
    }
    assert bare_status(fake, **request) == 400
    mark = len(fake.requests)
    # A plain HTTP client, not the SDK: the proxy is the way in for any language.
    answer = post_through_pass_through_proxy(fake, request, snapshot=older_snapshot)
    assert answer.status_code == 200
    [forwarded] = messages_sent(fake, mark)
    assert forwarded["thinking"] == {"type": "adaptive"}
    assert "temperature" not in forwarded and "top_k" not in forwarded


def test_overload_fallback_through_the_proxy_stays_in_the_price_class(
    fake: FakeAnthropic, own_key: RunningProxy
) -> None:
    fake.overload(HAIKU)
    client = anthropic.Anthropic(base_url=own_key.url, api_key=TOKEN, max_retries=2)
    try:
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(model=HAIKU, max_tokens=10, messages=HI)
    finally:
        client.close()
    assert caught.value.status_code == 529
    # The haiku line has no other active model: never sonnet, one send per SDK attempt.
    assert [b["model"] for b in messages_sent(fake)] == [HAIKU, HAIKU, HAIKU]
    wait_until(lambda: True)
    assert json.dumps(httpx.get(f"{own_key.url}/caproute/registry").json()).count(API_KEY) == 0


@pytest.mark.parametrize(
    ("extra", "check"),
    [
        # The live list leaves out SONNET's `effort.xhigh`: unsupported, adjusted to high.
        (
            {"output_config": {"effort": "xhigh"}},
            lambda b: b["output_config"] == {"effort": "high"},
        ),
        # Enabled thinking can't fit below max_tokens 1000: adaptive, max_tokens kept.
        (
            {"max_tokens": 1000, "thinking": {"type": "enabled", "budget_tokens": 1024}},
            lambda b: b["max_tokens"] == 1000 and b["thinking"] == {"type": "adaptive"},
        ),
    ],
    ids=["missing-optional-leaf", "max-tokens-never-raised"],
)
def test_pass_through_routes_each_caller_on_its_live_lineup(
    fake: FakeAnthropic, extra: dict[str, Any], check: Any
) -> None:
    request = {"model": SONNET, "max_tokens": 100, "messages": HI, **extra}
    assert bare_status(fake, **request) == 400
    mark = len(fake.requests)
    answer = post_through_pass_through_proxy(fake, request)
    assert answer.status_code == 200, answer.text
    [forwarded] = messages_sent(fake, mark)
    assert check(forwarded), forwarded


@pytest.mark.parametrize("mode", ["pass-through", "own-key"])
def test_an_alias_only_the_models_api_resolves_is_looked_up_with_the_callers_key(
    fake: FakeAnthropic, mode: str
) -> None:
    # SONNET predates effort `xhigh`; the alias is in no list, only GET /v1/models/{alias}.
    request = {
        "model": "claude-sonnet-latest",
        "max_tokens": 100,
        "messages": HI,
        "output_config": {"effort": "xhigh"},
    }
    assert bare_status(fake, **request) == 400
    own_key = mode == "own-key"
    running = start_proxy(fake, **({"api_key": API_KEY, "require_token": TOKEN} if own_key else {}))
    headers = {"x-api-key": TOKEN if own_key else API_KEY, "anthropic-version": "2023-06-01"}
    mark = len(fake.requests)
    try:
        answers = [
            httpx.post(f"{running.url}/v1/messages", json=request, headers=headers)
            for _ in range(2)
        ]
    finally:
        running.stop()
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    assert [b["output_config"] for b in messages_sent(fake, mark)] == [{"effort": "high"}] * 2
    lookups = [r for r in fake.requests[mark:] if r.path == "/v1/models/claude-sonnet-latest"]
    assert len(lookups) == 1  # asked once; the answer is kept
    assert lookups[0].headers["x-api-key"] == API_KEY


def test_own_key_mode_never_relays_the_proxys_key_prefix() -> None:
    own = "sk-ant-api03-PROXYSECRET-0123456789"
    with FakeAnthropic(models=truth(), api_key=own) as fake:
        echo = f"invalid x-api-key: {own[:24]}..."  # what an authentication error echoes
        fake.faults.add("/v1/messages", status=401, message=echo)
        running = start_proxy(fake, api_key=own, require_token=TOKEN)
        try:
            answer = httpx.post(
                f"{running.url}/v1/messages",
                json={"model": SONNET, "max_tokens": 10, "messages": HI},
                headers={"x-api-key": TOKEN, "anthropic-version": "2023-06-01"},
            )
        finally:
            running.stop()
    assert answer.status_code == 401
    assert "PROXYSECRET" not in answer.text and own[:12] not in answer.text
    assert "sk-ant-***" in answer.json()["error"]["message"]
