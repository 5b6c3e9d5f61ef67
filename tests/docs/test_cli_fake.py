"""`caproute fake` / `python -m caproute.testing`: the quickstart's fake, as a real process."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import anthropic
import pytest

import caproute
from caproute.cli import main
from caproute.testing import make_model


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "caproute.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    match = re.search(r"on (http://127\.0\.0\.1:\d+) \((\d+) models\)", first)
    assert match, first + process.stderr.read() if process.stderr else first
    return process, match[1]


def stop(process: subprocess.Popen[str], how: signal.Signals) -> int:
    process.send_signal(how)
    code = process.wait(timeout=10)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return code


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_fake_serves_until_stopped_and_exits_cleanly(how: signal.Signals) -> None:
    process, url = start()
    try:
        with anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0) as client:
            reply = caproute.wrap(client, registry=caproute.embedded_registry()).messages.create(
                model="claude-haiku-4-5",
                max_tokens=100,
                output_config={"effort": "max"},
                messages=[{"role": "user", "content": "Hello"}],
            )
        assert reply.content[0].text.startswith("Hello from claude-haiku-4-5")
    finally:
        assert stop(process, how) == 0


def test_a_catalogue_file_and_a_required_key(tmp_path: Path) -> None:
    catalogue = tmp_path / "models.json"
    catalogue.write_text(json.dumps({"data": [make_model("claude-tiny-1", max_tokens=100)]}))
    process, url = start("--catalogue", str(catalogue), "--api-key", "sekret")
    try:
        with (
            anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0) as client,
            pytest.raises(anthropic.AuthenticationError),
        ):
            client.models.list()
        with anthropic.Anthropic(base_url=url, api_key="sekret", max_retries=0) as client:
            assert [m.id for m in client.models.list()] == ["claude-tiny-1"]
    finally:
        assert stop(process, signal.SIGINT) == 0


def test_json_announces_where_it_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "caproute", "fake", "--port", "0", "--json", "--api-key", "k1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        announced = json.loads(process.stdout.readline())
        assert set(announced) == {"url", "port", "models", "api_key"}
        assert announced["url"] == f"http://127.0.0.1:{announced['port']}"
        assert announced["api_key"] == "k1" and announced["models"] > 0
        with anthropic.Anthropic(base_url=announced["url"], api_key="k1", max_retries=0) as client:
            # The list leaves retired models out, as the API does by default.
            assert 0 < len(list(client.models.list())) <= announced["models"]
    finally:
        assert stop(process, signal.SIGINT) == 0


def test_a_bad_catalogue_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"models": [{"name": "x"}]}')
    assert main(["fake", "--catalogue", str(bad)]) == 1
    assert "expected a registry snapshot" in capsys.readouterr().err
    assert main(["fake", "--catalogue", str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().err
