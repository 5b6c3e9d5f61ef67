"""Running the proxy: policy reload, own-key mode, local endpoints, metrics, access log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
from proxy_helpers import API_KEY, RunningProxy, sdk_client, start_proxy, wait_until

from caproute._registry.snapshot import embedded_registry, save_snapshot
from caproute.testing import FakeAnthropic

HI = [{"role": "user", "content": "hi"}]
REROUTE_TO_SONNET = "routes:\n  - name: everything\n    candidates: [claude-sonnet-4-6]\n"
REJECT_GAPS = "defaults:\n  on_unsupported: reject\n"
NEEDS_EFFORT = {"output_config": {"effort": "high"}}  # claude-haiku-4-5 has no effort


def rewrite(file: Path, text: str) -> None:
    # A new inode and mtime each time, like an editor's atomic save.
    staging = file.with_suffix(".tmp")
    staging.write_text(text)
    staging.replace(file)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    file = tmp_path / "routing.yaml"
    file.write_text(REROUTE_TO_SONNET)
    return file


@pytest.fixture
def reloading(fake: FakeAnthropic, policy_file: Path) -> Iterator[RunningProxy]:
    running = start_proxy(fake, policy=policy_file, poll_interval=0.02)
    yield running
    running.stop()


def create(proxy: RunningProxy, **extra: object) -> anthropic.types.Message:
    client = sdk_client(proxy.url)
    return client.messages.create(
        model="claude-haiku-4-5", max_tokens=32, messages=HI, extra_body=extra or None
    )


def test_policy_change_takes_effect_without_restart(
    fake: FakeAnthropic, reloading: RunningProxy, policy_file: Path
) -> None:
    assert create(reloading).model.startswith("claude-sonnet-4-6")
    assert reloading.metric("caproute_proxy_reroutes_total") == 1

    rewrite(policy_file, REJECT_GAPS)
    wait_until(lambda: reloading.metric('caproute_proxy_policy_reloads_total{result="ok"}') == 1)

    assert create(reloading).model.startswith("claude-haiku-4-5")  # no reroute any more
    sent_upstream = fake.count("/v1/messages")
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(reloading, **NEEDS_EFFORT)
    assert "caproute:" in str(caught.value)
    assert fake.count("/v1/messages") == sent_upstream  # refused locally
    assert reloading.metric("caproute_proxy_refusals_total") == 1
    assert reloading.metric('caproute_proxy_requests_total{outcome="rejected"}') == 1


def test_invalid_policy_is_rejected_and_the_old_one_stays(
    reloading: RunningProxy, policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="caproute.proxy"):
        rewrite(policy_file, "defaults:\n  on_unsuported: reject\n")
        wait_until(
            lambda: reloading.metric('caproute_proxy_policy_reloads_total{result="error"}') == 1
        )

    assert f"{policy_file}:2:3: unknown key 'on_unsuported'" in caplog.text
    assert create(reloading).model.startswith("claude-sonnet-4-6")  # old policy in force
    health = httpx.get(f"{reloading.url}/caproute/health").json()
    assert health["policy"]["file"] == str(policy_file)
    assert health["policy"]["last_error"].startswith(f"{policy_file}:2:3:")


def test_own_key_mode_requires_the_local_token(fake: FakeAnthropic) -> None:
    running = start_proxy(fake, api_key=API_KEY, require_token="local-token")
    try:
        caller = sdk_client(running.url, "local-token")
        stranger = sdk_client(running.url)

        assert caller.messages.create(model="claude-haiku-4-5", max_tokens=32, messages=HI)
        forwarded = [r for r in fake.requests if r.path == "/v1/messages"]
        with pytest.raises(anthropic.AuthenticationError) as caught:
            stranger.messages.create(model="claude-haiku-4-5", max_tokens=32, messages=HI)
        missing = httpx.get(f"{running.url}/v1/models")
    finally:
        running.stop()

    assert len(forwarded) == 1
    assert forwarded[0].headers["x-api-key"] == API_KEY  # the proxy's own key
    assert "authorization" not in forwarded[0].headers  # the local token never leaves
    assert "proxy token" in str(caught.value)
    assert missing.status_code == 401
    assert len([r for r in fake.requests if r.path == "/v1/messages"]) == 1


def test_health_and_registry_endpoints(fake: FakeAnthropic, proxy: RunningProxy) -> None:
    health = httpx.get(f"{proxy.url}/caproute/health")
    registry = httpx.get(f"{proxy.url}/caproute/registry")

    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["registry"]["models"] == len(registry.json()["models"]) > 0
    ids = {model["id"] for model in registry.json()["models"]}
    assert "claude-haiku-4-5-20251001" in ids
    assert API_KEY not in health.text + registry.text
    assert fake.requests == []  # answered locally
    assert httpx.get(f"{proxy.url}/caproute/nothing").status_code == 404
    assert httpx.post(f"{proxy.url}/caproute/health").status_code == 405


def test_shared_snapshot_file_is_reloaded(fake: FakeAnthropic, tmp_path: Path) -> None:
    snapshot = tmp_path / "registry.json"
    full = embedded_registry()
    save_snapshot(full, snapshot)
    running = start_proxy(fake, snapshot=snapshot, poll_interval=0.02)
    try:
        first = httpx.get(f"{running.url}/caproute/registry").json()
        smaller = type(full).from_models(list(full.models)[:3], source=full.source)
        save_snapshot(smaller, snapshot)
        wait_until(lambda: len(httpx.get(f"{running.url}/caproute/registry").json()["models"]) == 3)
        health = httpx.get(f"{running.url}/caproute/health").json()
    finally:
        running.stop()

    assert len(first["models"]) == len(full)
    assert first["source"]["kind"] == "snapshot"
    assert health["registry"]["models"] == 3


def test_metrics_count_outcomes_errors_and_latency(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    def metric(line: str) -> float:
        return proxy.metric(line)

    before_adjusted = metric('caproute_proxy_requests_total{outcome="adjusted"}')
    before_forwarded = metric('caproute_proxy_requests_total{outcome="forwarded"}')
    before_529 = metric('caproute_proxy_upstream_errors_total{status="529"}')
    before_count = metric("caproute_proxy_response_seconds_count")
    create(proxy, **NEEDS_EFFORT)  # (reads the caller's registry first, if not yet read)
    fake.faults.add("/v1/models", status=529)
    httpx.get(f"{proxy.url}/v1/models", headers=fake.headers())
    wait_until(
        lambda: metric('caproute_proxy_requests_total{outcome="adjusted"}') > before_adjusted
    )
    wait_until(
        lambda: metric('caproute_proxy_requests_total{outcome="forwarded"}') > before_forwarded
    )
    page = httpx.get(f"{proxy.url}/caproute/metrics")

    assert page.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert metric('caproute_proxy_requests_total{outcome="adjusted"}') == before_adjusted + 1
    assert metric('caproute_proxy_requests_total{outcome="forwarded"}') == before_forwarded + 1
    assert metric('caproute_proxy_upstream_errors_total{status="529"}') == before_529 + 1
    assert metric("caproute_proxy_adjustments_total") >= 1
    assert metric("caproute_proxy_response_seconds_count") >= before_count + 2
    assert 'caproute_proxy_response_seconds_bucket{le="+Inf"}' in page.text


def test_access_log_has_one_line_per_request_and_no_secret(
    fake: FakeAnthropic, proxy: RunningProxy, caplog: pytest.LogCaptureFixture
) -> None:
    def lines() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "caproute.access" and "path=/v1/messages" in r.getMessage()
        ]

    with caplog.at_level(logging.INFO, logger="caproute.access"):
        create(proxy, **NEEDS_EFFORT)
        wait_until(lambda: len(lines()) == 1)  # written after the last byte went out

    assert len(lines()) == 1
    line = lines()[0]
    assert line.startswith("method=POST path=/v1/messages status=200 outcome=adjusted ")
    assert "requested=claude-haiku-4-5 model=claude-haiku-4-5" in line
    assert 'changes="output_config:' in line
    assert "duration_ms=" in line
    assert API_KEY not in line and "hi" not in line.split("changes=")[0]


def test_access_line_names_the_upstreams_request_id(
    fake: FakeAnthropic, proxy: RunningProxy, caplog: pytest.LogCaptureFixture
) -> None:
    # The id a caller quotes (SDK errors carry it, so does Anthropic support's first
    # question) finds the proxy's line for that request.
    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "caproute.access"]

    client = sdk_client(proxy.url)
    with caplog.at_level(logging.INFO, logger="caproute.access"):
        answer = client.messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=32, messages=HI
        )
        with pytest.raises(anthropic.NotFoundError) as caught:
            client.messages.create(model="claude-nonexistent-9", max_tokens=32, messages=HI)
        wait_until(lambda: len(lines()) == 2)

    ok_id = answer.headers["request-id"]
    error_id = caught.value.request_id
    assert ok_id and error_id
    assert f"request_id={ok_id}" in lines()[0]
    assert f"request_id={error_id}" in lines()[1]
