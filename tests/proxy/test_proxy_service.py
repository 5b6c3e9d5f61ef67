"""`caproute serve` as a service: settings from flags, variables and a file; health;
logs; per-request controls; token metrics; a busy port; several workers."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import pytest
from proxy_helpers import API_KEY, RunningProxy, free_port, sdk_client, start_proxy, wait_until

from caproute import ConfigError, PolicyError
from caproute._proxy._settings import SETTINGS, from_environment, resolve
from caproute.cli import build_parser, main
from caproute.cli.serve import build_config
from caproute.testing import FakeAnthropic
from running_proxy import wait_for_health

HI = [{"role": "user", "content": "hi"}]
ROUTES = (
    "routes:\n"
    "  - name: haiku-only\n"
    "    match: {model: claude-haiku-*}\n"
    "    candidates: [requested]\n"
    "  - name: to-sonnet\n"
    "    match: {model: claude-opus-*}\n"
    "    candidates: [claude-sonnet-4-6]\n"
)


# -- settings: flags > environment > file ----------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_every_setting_is_a_flag_a_variable_and_mostly_a_file_key() -> None:
    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    flags = {option for action in serve._actions for option in action.option_strings}
    for setting in SETTINGS:
        assert setting.flag in flags
        assert setting.env.startswith("CAPROUTE_")
    docs = (Path(__file__).parents[2] / "docs" / "proxy.md").read_text()
    for setting in SETTINGS:
        assert setting.env in docs, f"docs/proxy.md does not list {setting.env}"


def test_precedence_is_flag_then_environment_then_file(tmp_path: Path) -> None:
    config_file = write(
        tmp_path / "caproute.yaml",
        "upstream: http://127.0.0.1:1111\n"
        "listen: {port: 9001, host: 127.0.0.2}\n"
        "registries: {max: 5, cache_dir: cache}\n"
        "limits: {max_body_bytes: 1000}\n"
        "controls: {bypass: true}\n"
        "logging: {format: json}\n",
    )
    environ = {
        "CAPROUTE_CONFIG": str(config_file),
        "CAPROUTE_PORT": "9002",
        "CAPROUTE_MAX_REGISTRIES": "6",
        "CAPROUTE_ALLOW_BYPASS": "no",
    }
    config, origin = resolve({"port": 9003}, environ)

    assert config.port == 9003 and origin["port"] == "flag"
    assert config.max_registries == 6 and origin["max_registries"] == "env"
    assert config.allow_bypass is False
    assert config.host == "127.0.0.2" and origin["host"] == "file"
    assert config.upstream == "http://127.0.0.1:1111"
    assert config.max_body_bytes == 1000
    assert config.log_format == "json"
    assert config.registry_cache_dir == tmp_path / "cache"  # relative to the file


def test_the_command_line_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPROUTE_MAX_JSON_VALUES", "77")
    monkeypatch.setenv("CAPROUTE_METRICS", "off")

    config = build_config(build_parser().parse_args(["serve", "--port", "1"]))

    assert (config.port, config.max_json_values, config.metrics) == (1, 77, False)


def test_secrets_come_from_named_variables_and_never_show(tmp_path: Path) -> None:
    config_file = write(
        tmp_path / "own.yaml",
        "credentials:\n  api_key_env: MY_KEY\n  require_token_env: MY_TOKEN\n",
    )
    environ = {"MY_KEY": "sk-ant-secret-value", "MY_TOKEN": "tok-secret-value"}

    config, _ = resolve({"config": config_file}, environ)
    with pytest.raises(ConfigError) as caught:
        resolve({"config": config_file}, {"MY_KEY": "sk-ant-secret-value"})

    assert config.api_key == "sk-ant-secret-value" and config.own_key
    assert "MY_TOKEN is not set" in str(caught.value)
    assert "secret-value" not in repr(config) + str(caught.value)


@pytest.mark.parametrize(
    ("text", "where", "complaint"),
    [
        ("listen:\n  prot: 80\n", ":2:3:", "did you mean 'port'?"),
        ("limits:\n  max_body_bytes: -1\n", ":2:19:", "greater than 0"),
        ("timeouts:\n  connect: soon\n", ":2:12:", "expected a number"),
        ("logging:\n  format: jsn\n", ":2:11:", "did you mean 'json'?"),
        ("upstream: ftp://example.com\n", ":1:11:", "http(s) URL"),
        ("workers: 2\nworkers: 3\n", ":2:1:", "duplicate key"),
        ("contrls: {bypass: true}\n", ":1:1:", "did you mean 'controls'?"),
    ],
)
def test_config_file_errors_point_at_the_text(
    tmp_path: Path, text: str, where: str, complaint: str
) -> None:
    config_file = write(tmp_path / "bad.yaml", text)

    with pytest.raises(PolicyError) as caught:
        resolve({"config": config_file}, {})

    assert str(caught.value).startswith(f"{config_file}{where}")
    assert complaint in str(caught.value)


def test_a_bad_variable_is_named_and_an_empty_one_is_unset() -> None:
    with pytest.raises(ConfigError, match="CAPROUTE_PORT: expected a port number, got 'eighty'"):
        from_environment({"CAPROUTE_PORT": "eighty"})
    with pytest.raises(ConfigError, match="CAPROUTE_LOG_FORMAT: expected one of text, json"):
        from_environment({"CAPROUTE_LOG_FORMAT": "xml"})

    assert from_environment({"CAPROUTE_REQUIRE_TOKEN": " ", "CAPROUTE_PORT": ""}) == {}


def test_caproute_check_validates_a_server_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "routing.yaml", "defaults:\n  on_unsuported: reject\n")
    good = write(tmp_path / "ok.yaml", "upstream: http://127.0.0.1:1\nworkers: 2\n")
    bad = write(tmp_path / "bad.yaml", "listen: {prot: 1}\n")
    names_bad_policy = write(tmp_path / "server.yaml", "policy: routing.yaml\n")

    assert main(["check", str(good)]) == 0
    assert "ok: server config" in capsys.readouterr().out
    assert main(["check", str(bad)]) == 1
    assert f"{bad}:1:10: unknown key 'prot'" in capsys.readouterr().err
    assert main(["check", str(names_bad_policy)]) == 1
    assert "routing.yaml:2:3: unknown key 'on_unsuported'" in capsys.readouterr().err


# -- health ---------------------------------------------------------------------------------


def test_health_is_degraded_when_a_reload_was_rejected(fake: FakeAnthropic, tmp_path: Path) -> None:
    policy = write(tmp_path / "routing.yaml", "defaults:\n  on_unsupported: auto\n")
    running = start_proxy(fake, policy=policy, poll_interval=0.02)
    try:
        ok = httpx.get(f"{running.url}/caproute/health").json()
        staging = tmp_path / "new.yaml"
        staging.write_text("defaults:\n  on_unsuported: reject\n")
        staging.replace(policy)
        wait_until(lambda: httpx.get(f"{running.url}/caproute/health").json()["status"] != "ok")
        degraded = httpx.get(f"{running.url}/caproute/health")
    finally:
        running.stop()

    assert ok["status"] == "ok" and ok["reasons"] == []
    assert degraded.status_code == 200  # still serving: liveness must not restart it
    assert degraded.json()["status"] == "degraded"
    assert degraded.json()["reasons"] == [
        "policy reload rejected, the previous policy stays in force"
    ]


def test_health_is_degraded_when_the_registry_is_older_than_the_threshold(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    from caproute._core.registry_source import RegistrySource
    from caproute._registry.snapshot import embedded_registry, save_snapshot

    snapshot = tmp_path / "registry.json"
    old = embedded_registry().with_source(RegistrySource("live", fetched_at=time.time() - 7200))
    save_snapshot(old, snapshot)
    running = start_proxy(fake, snapshot=snapshot, stale_after=3600)
    try:
        health = httpx.get(f"{running.url}/caproute/health").json()
    finally:
        running.stop()

    assert health["status"] == "degraded"
    assert health["reasons"][0].startswith("registry is 720")
    assert "stale after 3600s" in health["reasons"][0]


# -- logs -------------------------------------------------------------------------------------


def test_each_request_is_logged_once(
    fake: FakeAnthropic, proxy: RunningProxy, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="caproute"):
        sdk_client(proxy.url).messages.create(
            model="claude-haiku-4-5",
            max_tokens=8,
            messages=HI,
            extra_body={"output_config": {"effort": "high"}},  # adjusted: a loud outcome
        )
        wait_until(lambda: any(r.name == "caproute.access" for r in caplog.records))

    about_it = [
        r for r in caplog.records if "adjusted" in r.getMessage() and r.levelno >= logging.INFO
    ]
    assert [r.name for r in about_it] == ["caproute.access"]


def test_json_log_lines_carry_the_access_fields() -> None:
    from caproute._proxy._logging import ACCESS_FIELDS, JsonFormatter, TextFormatter

    record = logging.LogRecord("caproute.access", logging.INFO, "x", 1, "method=POST", (), None)
    setattr(record, ACCESS_FIELDS, {"method": "POST", "status": 200, "model": "m"})
    line = json.loads(JsonFormatter().format(record))
    uvicorn_line = logging.LogRecord("uvicorn.error", logging.INFO, "x", 1, "Started", (), None)

    assert line["logger"] == "caproute.access" and line["status"] == 200 and line["model"] == "m"
    assert json.loads(JsonFormatter().format(uvicorn_line))["message"] == "Started"
    assert TextFormatter().format(uvicorn_line).endswith("Z INFO uvicorn.error: Started")


def test_the_real_process_logs_uvicorn_and_caproute_lines_alike(fake: FakeAnthropic) -> None:
    port = free_port()
    command = [sys.executable, "-m", "caproute", "serve", "--port", str(port)]
    env = {**os.environ, "CAPROUTE_UPSTREAM": fake.url, "CAPROUTE_LOG_FORMAT": "json"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process)
        sdk_client(f"http://127.0.0.1:{port}").messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=HI
        )
    finally:
        process.terminate()
        _, err = process.communicate(timeout=15)

    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "caproute.proxy", "caproute.access"} <= loggers
    access = [line for line in lines if line.get("path") == "/v1/messages"]
    assert len(access) == 1 and access[0]["logger"] == "caproute.access"
    assert not [line for line in lines if "POST /v1/messages" in line["message"]]  # no uvicorn line
    assert access[0]["tokens"]["output"] > 0
    assert API_KEY not in err


# -- per-request controls ------------------------------------------------------------------


def test_controls_are_off_unless_enabled_and_never_forwarded(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    client = sdk_client(proxy.url)
    answer = client.messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=8,
        messages=HI,
        extra_body={"output_config": {"effort": "high"}},
        extra_headers={"caproute-bypass": "1", "caproute-route": "nope"},
    )

    assert answer.headers["caproute-outcome"] == "adjusted"  # routed as usual
    sent = [r for r in fake.requests if r.path == "/v1/messages"][-1]
    assert "caproute-bypass" not in sent.headers and "caproute-route" not in sent.headers


def test_bypass_forwards_untouched_and_is_recorded(fake: FakeAnthropic) -> None:
    running = start_proxy(fake, allow_bypass=True)
    try:
        with pytest.raises(anthropic.BadRequestError):  # haiku 4.5 has no effort: the API says so
            sdk_client(running.url).messages.create(
                model="claude-haiku-4-5",
                max_tokens=8,
                messages=HI,
                extra_body={"output_config": {"effort": "high"}},
                extra_headers={"caproute-bypass": "1"},
            )
        bypassed = running.metric('caproute_proxy_requests_total{outcome="bypassed"}')
    finally:
        running.stop()

    sent = [r for r in fake.requests if r.path == "/v1/messages"][-1]
    assert sent.body["output_config"] == {"effort": "high"}  # not adjusted
    assert "caproute-bypass" not in sent.headers
    assert bypassed == 1


def test_route_header_selects_a_policy_route(fake: FakeAnthropic, tmp_path: Path) -> None:
    policy = write(tmp_path / "routing.yaml", ROUTES)
    running = start_proxy(fake, policy=policy, allow_route_header=True)
    client = sdk_client(running.url)
    try:
        normal = client.messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=8, messages=HI
        )
        forced = client.messages.with_raw_response.create(
            model="claude-haiku-4-5",
            max_tokens=8,
            messages=HI,
            extra_headers={"caproute-route": "to-sonnet"},
        )
        with pytest.raises(anthropic.BadRequestError) as unknown:
            client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=8,
                messages=HI,
                extra_headers={"caproute-route": "to-sonet"},
            )
    finally:
        running.stop()

    assert normal.headers["caproute-model"] == "claude-haiku-4-5"
    assert forced.headers["caproute-model"] == "claude-sonnet-4-6"
    assert "did you mean 'to-sonnet'?" in str(unknown.value)
    assert all("caproute-route" not in r.headers for r in fake.requests)


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_label_models_and_status_and_count_tokens_of_streams(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    def tokens(kind: str) -> float:
        return proxy.metric(
            f'caproute_proxy_tokens_total{{model="claude-haiku-4-5-20251001",kind="{kind}"}}'
        )

    client = sdk_client(proxy.url)
    before_out, before_in = tokens("output"), tokens("input")
    message = client.messages.create(model="claude-haiku-4-5-20251001", max_tokens=32, messages=HI)
    with client.messages.stream(
        model="claude-haiku-4-5-20251001", max_tokens=32, messages=HI
    ) as stream:
        streamed = stream.get_final_message()
    selector = (
        'caproute_proxy_requests_total{outcome="unchanged",'
        'requested_model="claude-haiku-4-5-20251001",model="claude-haiku-4-5-20251001",'
        'status="200"}'
    )

    assert (
        tokens("output") - before_out == message.usage.output_tokens + streamed.usage.output_tokens
    )
    assert tokens("input") - before_in == message.usage.input_tokens + streamed.usage.input_tokens
    assert proxy.metric(selector) >= 2


def test_metrics_can_be_turned_off(fake: FakeAnthropic) -> None:
    running = start_proxy(fake, metrics=False)
    try:
        page = httpx.get(f"{running.url}/caproute/metrics")
    finally:
        running.stop()
    assert page.status_code == 404


# -- running it -------------------------------------------------------------------------------


def test_a_busy_port_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--port", str(port), "--log-level", "error"])

    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [
        f"caproute: error: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(another caproute serve? pick another --port)"
    ]


def test_two_workers_share_the_port_and_sum_their_metrics(fake: FakeAnthropic) -> None:
    port = free_port()
    command = [sys.executable, "-m", "caproute", "serve", "--port", str(port), "--workers", "2"]
    env = {**os.environ, "CAPROUTE_UPSTREAM": fake.url, "CAPROUTE_LOG_LEVEL": "warning"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process)
        for _ in range(12):  # new connections: the kernel spreads them over the workers
            with anthropic.Anthropic(base_url=url, api_key=API_KEY, max_retries=0) as client:
                client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI)
        time.sleep(0.3)
        pages = [httpx.get(f"{url}/caproute/metrics").text for _ in range(4)]
        pids = {httpx.get(f"{url}/caproute/health").json()["pid"] for _ in range(12)}
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)

    from proxy_helpers import metric_value

    totals = {
        metric_value(page, 'caproute_proxy_requests_total{outcome="unchanged"}') for page in pages
    }
    assert totals == {12.0}  # every worker reports the sum over all of them
    assert len(pids) == 2, err
    assert "Traceback" not in err
