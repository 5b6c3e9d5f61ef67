"""Who may read ``/caproute/*``: ``--admin-listen`` and ``--admin-token`` (issue 17, item 3).

By default the endpoints answer on the main port to anyone who can reach it (they hold
the shared lineup only). ``--admin-listen HOST:PORT`` moves them to a second listener
and ``--admin-token`` (or ``--admin-token-env``) makes them need a token; either way
``/caproute/health`` still tells anyone its status (what probes read), nothing more.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from proxy_helpers import API_KEY

from caproute._exceptions import ConfigError
from caproute._proxy import ProxyConfig
from caproute._proxy._settings import resolve
from caproute.cli import main
from caproute.testing import FakeAnthropic
from running_proxy import RunningProxy, free_port, serve_process

TOKEN = "admin-token-7d1c4e9a2b6f"
BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
CALLER = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}


# -- the admin token ------------------------------------------------------------------------


@pytest.fixture
def guarded(fake: FakeAnthropic) -> Iterator[RunningProxy]:
    with RunningProxy(ProxyConfig(upstream=fake.url, admin_token=TOKEN)) as proxy:
        yield proxy


@pytest.mark.parametrize("path", ["/caproute/metrics", "/caproute/registry"])
@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong-token"}, {"x-api-key": API_KEY}],
    ids=["none", "wrong", "caller-key"],
)
def test_without_the_admin_token_metrics_and_registry_are_refused(
    guarded: RunningProxy, path: str, headers: dict[str, str]
) -> None:
    answer = httpx2.get(guarded.url + path, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == {
        "type": "authentication_error",
        "message": "caproute: a valid admin token is required",
    }


@pytest.mark.parametrize(
    "headers", [{"authorization": f"Bearer {TOKEN}"}, {"x-api-key": TOKEN}], ids=["bearer", "key"]
)
def test_the_admin_token_opens_every_endpoint(
    guarded: RunningProxy, headers: dict[str, str]
) -> None:
    assert httpx2.post(guarded.url + "/v1/messages", json=BODY, headers=CALLER).status_code == 200
    metrics = httpx2.get(guarded.url + "/caproute/metrics", headers=headers)
    assert metrics.status_code == 200
    assert "caproute_proxy_requests_total" in metrics.text
    registry = httpx2.get(guarded.url + "/caproute/registry", headers=headers)
    assert registry.status_code == 200 and registry.json()["models"]
    health = httpx2.get(guarded.url + "/caproute/health", headers=headers).json()
    assert health["status"] == "ok" and "upstream" in health


def test_health_tells_anyone_its_status_and_nothing_more(guarded: RunningProxy) -> None:
    answer = httpx2.get(guarded.url + "/caproute/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_api_traffic_needs_no_admin_token(guarded: RunningProxy) -> None:
    answer = httpx2.post(guarded.url + "/v1/messages", json=BODY, headers=CALLER)
    assert answer.status_code == 200
    assert answer.headers["caproute-outcome"] == "unchanged"


# -- a second listener ----------------------------------------------------------------------


@contextmanager
def serve(
    fake: FakeAnthropic, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    log = tmp_path / "serve.log"
    with serve_process("--upstream", fake.url, *args, log=log, env=env) as (url, process):
        yield url, process, log


def test_admin_listen_serves_the_endpoints_on_their_own_port(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    admin_port = free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    env = {"CAPROUTE_ADMIN_LISTEN": f"127.0.0.1:{admin_port}"}  # the variable, like the flag
    with serve(fake, tmp_path, env=env) as (url, process, log):
        assert process.poll() is None, log.read_text()
        assert httpx2.post(url + "/v1/messages", json=BODY, headers=CALLER).status_code == 200
        # The main port: API traffic, and health's status for probes; nothing else.
        for path in ("/caproute/metrics", "/caproute/registry"):
            refused = httpx2.get(url + path)
            assert refused.status_code == 404
            assert "admin address" in refused.json()["error"]["message"]
        assert httpx2.get(url + "/caproute/health").json() == {"status": "ok"}
        # The admin port: the endpoints in full, and no API traffic.
        metrics = httpx2.get(admin + "/caproute/metrics")
        assert metrics.status_code == 200
        assert 'model="claude-haiku-4-5"' in metrics.text
        assert httpx2.get(admin + "/caproute/health").json()["upstream"] == fake.url
        assert httpx2.get(admin + "/caproute/registry").status_code == 200
        forwarded = fake.count("/v1/messages")
        wrong_door = httpx2.post(admin + "/v1/messages", json=BODY, headers=CALLER)
        assert wrong_door.status_code == 404
        assert fake.count("/v1/messages") == forwarded
    assert f"/caproute/* on http://127.0.0.1:{admin_port}" in log.read_text()


def test_a_busy_admin_port_is_one_clear_line(fake: FakeAnthropic, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with serve(fake, tmp_path, "--admin-listen", str(busy)) as (_url, process, log):
            assert process.wait(20) == 1
    text = log.read_text()
    assert (
        f"caproute: error: cannot listen on 127.0.0.1:{busy}: the address is already in use" in text
    )
    assert "--admin-listen" in text
    assert "Traceback" not in text


# -- settings: flag > variable > file; caproute check ---------------------------------------


def test_admin_settings_follow_the_usual_precedence(tmp_path: Path) -> None:
    config = tmp_path / "caproute.yaml"
    config.write_text("admin:\n  listen: 127.0.0.1:9001\n  token_env: FILE_TOKEN\n")
    environ = {"FILE_TOKEN": "from-the-file-variable", "ENV_TOKEN": "from-the-env-variable"}
    from_file, origin = resolve({"config": config}, environ)
    assert from_file.admin_address == ("127.0.0.1", 9001)
    assert from_file.admin_token == "from-the-file-variable"
    assert origin["admin_listen"] == "file"
    environ |= {"CAPROUTE_ADMIN_LISTEN": "9002", "CAPROUTE_ADMIN_TOKEN_ENV": "ENV_TOKEN"}
    from_env, _ = resolve({"config": config}, environ)
    assert from_env.admin_address == ("127.0.0.1", 9002)
    assert from_env.admin_token == "from-the-env-variable"
    from_flag, _ = resolve({"config": config, "admin_listen": "[::1]:9003"}, environ)
    assert from_flag.admin_address == ("::1", 9003)
    assert "from-the" not in repr(from_flag)  # the token stays out of the repr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("127.0.0.1:0", "a port in 1..65535"),
        ("localhost:http", "a port in 1..65535"),
        ("::1:9000", "in brackets"),
        ("8787", "the main port"),
    ],
)
def test_bad_admin_settings_are_refused(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve({"admin_listen": value}, {})


def test_a_missing_admin_token_variable_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--admin-token-env: environment variable NOPE"):
        resolve({"admin_token_env": "NOPE"}, {})


def test_caproute_check_validates_the_admin_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "caproute.yaml"
    config.write_text("listen: {port: 8787}\nadmin:\n  listen: 127.0.0.1:8787\n  tokn_env: X\n")
    assert main(["check", str(config)]) == 1
    err = capsys.readouterr()
    text = err.out + err.err
    assert "caproute.yaml:4:3: unknown key 'tokn_env'" in text
    assert "did you mean 'token_env'" in text
    config.write_text("listen: {port: 8787}\nadmin:\n  listen: 127.0.0.1:8787\n")
    assert main(["check", str(config)]) == 1
    err = capsys.readouterr()
    assert "caproute.yaml:3:11: port 8787 is the main port" in err.out + err.err
    config.write_text("admin:\n  listen: '9090'\n  token_env: CAPROUTE_ADMIN\n")
    assert main(["check", str(config)]) == 0
