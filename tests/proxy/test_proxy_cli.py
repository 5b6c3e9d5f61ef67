"""`caproute serve`: argument handling, and the real process (SIGHUP, graceful SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from proxy_helpers import free_port, sdk_client

import caproute
from caproute.cli import build_parser, main
from caproute.cli.serve import build_config
from caproute.testing import FakeAnthropic

HI = [{"role": "user", "content": "hi"}]


def test_arguments_become_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROXY_KEY", "sk-from-env")
    monkeypatch.setenv("PROXY_TOKEN", "tok-from-env")
    args = build_parser().parse_args(
        [
            "serve",
            "--port",
            "9999",
            "--upstream",
            "http://127.0.0.1:1/base/",
            "--policy",
            str(tmp_path / "p.yaml"),
            "--api-key-env",
            "PROXY_KEY",
            "--require-token-env",
            "PROXY_TOKEN",
            "--max-body-bytes",
            "100",
        ]
    )

    config = build_config(args)

    assert config.port == 9999
    assert config.host == "127.0.0.1"  # loopback unless told otherwise
    assert config.upstream_base == "http://127.0.0.1:1/base"
    assert config.policy == tmp_path / "p.yaml"
    assert config.api_key == "sk-from-env"
    assert config.require_token == "tok-from-env"
    assert config.max_body_bytes == 100
    assert config.read_timeout == 600.0  # defaults come from ProxyConfig


def test_missing_key_variable_is_one_line_without_a_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)

    code = main(["serve", "--api-key-env", "NOT_SET_ANYWHERE", "--require-token", "t"])

    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert "NOT_SET_ANYWHERE is not set" in err


def test_own_key_without_a_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROXY_KEY", "sk-secret-value")

    code = main(["serve", "--api-key-env", "PROXY_KEY"])

    err = capsys.readouterr().err
    assert code == 1
    assert "needs a local token" in err
    assert "sk-secret-value" not in err


def test_process_reloads_on_sighup_and_drains_streams_on_sigterm(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    policy = tmp_path / "routing.yaml"
    policy.write_text("defaults:\n  on_unsupported: auto\n")
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "caproute",
            "serve",
            "--port",
            str(port),
            "--upstream",
            fake.url,
            "--policy",
            str(policy),
            "--shutdown-timeout",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{url}/caproute/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "caproute serve did not come up"
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.05)

        process.send_signal(signal.SIGHUP)  # default action would kill the process
        time.sleep(0.2)
        assert process.poll() is None

        fake.stream_delay = 0.05  # a ~0.5 s stream
        client = sdk_client(url)
        texts: list[str] = []
        started = threading.Event()

        def stream() -> None:
            with client.messages.stream(model="claude-haiku-4-5", max_tokens=32, messages=HI) as s:
                for _ in s.text_stream:
                    started.set()
                texts.append(s.get_final_text())

        reader = threading.Thread(target=stream)
        reader.start()
        assert started.wait(5)
        process.send_signal(signal.SIGTERM)  # mid-stream
        reader.join(10)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert texts == ["Hello from claude-haiku-4-5-20251001."]  # the stream finished
    assert process.returncode == 0  # a signalled shutdown is a clean exit
    assert "SIGHUP: reloading" in output
    assert "policy reloaded from" in output
    assert "Traceback" not in output


def test_missing_uvicorn_gives_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` now fails

    code = main(["serve", "--port", "0"])

    err = capsys.readouterr().err
    assert code == 1
    assert "pip install 'caproute[proxy]'" in err
    assert err.count("\n") == 1


def test_the_config_file_is_read_under_the_policy_limits_of_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config_file = tmp_path / "serve.yaml"
    config_file.write_text("listen:\n  port: 9004\nlimits:\n  max_body_bytes: 5000\n")
    args = build_parser().parse_args(["serve", "--config", str(config_file)])
    assert build_config(args).port == 9004

    monkeypatch.setenv("CAPROUTE_POLICY_MAX_BYTES", "20")
    over = r"over the limit of 20; set CAPROUTE_POLICY_MAX_BYTES"
    with pytest.raises(caproute.ConfigError, match=over):
        build_config(args)

    monkeypatch.setenv("CAPROUTE_POLICY_MAX_BYTES", "1000")
    monkeypatch.setenv("CAPROUTE_POLICY_MAX_DEPTH", "1")
    with pytest.raises(caproute.ConfigError, match="set CAPROUTE_POLICY_MAX_DEPTH"):
        build_config(args)


def test_a_config_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    args = build_parser().parse_args(["serve", "--config", str(missing)])
    with pytest.raises(caproute.ConfigError) as caught:
        build_config(args)
    assert (
        str(caught.value) == f"cannot read the server config {missing}: No such file or directory"
    )
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"listen:\n  host: caf\xe9\n")
    args = build_parser().parse_args(["serve", "--config", str(latin)])
    with pytest.raises(
        caproute.ConfigError, match=r"cannot read the server config .*latin.yaml: 'utf-8'"
    ):
        build_config(args)
