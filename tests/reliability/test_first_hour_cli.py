"""Issue 17, first hour: what the command line says to a newcomer.

* ``caproute fake`` on a busy port printed ``caproute: OSError: [Errno 98] …`` where
  ``caproute serve`` prints a clear ``caproute: error: …`` with a hint; both now share
  the code that says it (real subprocesses, a real busy socket).
* The first ``caproute models --live`` against a new URL said models of the embedded
  lineup were "not listed … any more", as if they had been listed there before; a
  first fetch now says they are in the embedded lineup but not listed for this key.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from caproute import embedded_registry
from caproute.cli import main
from caproute.testing import FakeAnthropic


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caproute", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_fake_and_serve_say_a_busy_port_the_same_way(busy_port: int) -> None:
    fake = run("fake", "--port", str(busy_port))
    serve = run("serve", "--port", str(busy_port))
    said = (
        f"caproute: error: cannot listen on 127.0.0.1:{busy_port}: the address is already in use ("
    )
    for process, hint in (
        (fake, "pick another --port, or --port 0"),
        (serve, "pick another --port"),
    ):
        assert process.returncode == 1
        lines = [line for line in process.stderr.splitlines() if line.startswith("caproute:")]
        assert len(lines) == 1, process.stderr
        assert lines[0].startswith(said), lines[0]
        assert hint in lines[0]
        assert "Traceback" not in process.stderr and "OSError" not in process.stderr


MISSING = 2  # models of the embedded lineup this key does not see


@pytest.fixture
def narrow_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no earlier fetch of any URL
    models = [info.to_api_dict() for info in embedded_registry().models]
    with FakeAnthropic(models[MISSING:], api_key="narrow-key") as fake:  # retired: unlisted
        monkeypatch.setenv("ANTHROPIC_API_KEY", "narrow-key")
        monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
        yield fake


def tombstones(capsys: pytest.CaptureFixture[str], url: str) -> dict[str, str]:
    assert main(["models", "--live", "--base-url", url, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    found: dict[str, str] = document.get("unlisted", {})  # left out, still routed
    return found


def test_a_first_live_fetch_says_the_models_were_never_listed_there(
    narrow_key: FakeAnthropic, capsys: pytest.CaptureFixture[str]
) -> None:
    embedded = embedded_registry().models
    unseen = [info.id for info in embedded[:MISSING]]
    retired = [info.id for info in embedded[MISSING:] if info.lifecycle == "retired"]
    assert retired  # the list leaves these out for every key
    first = tombstones(capsys, narrow_key.url)
    assert sorted(first) == sorted(unseen + retired)
    assert not [reason for reason in first.values() if "any more" in reason]
    for model in unseen:
        assert first[model].startswith("in the embedded lineup (of ")
        assert first[model].endswith(
            f"not listed for this key by the Models API at {narrow_key.url}"
        )
    for model in retired:
        assert first[model].startswith("retired in the embedded lineup (of ")

    # The second fetch starts from the first one's data: a model it no longer lists
    # really is "not listed any more"; the first two keep what they were told.
    dropped = narrow_key.models()[0]["id"]
    narrow_key.set_models(narrow_key.models()[1:])
    second = tombstones(capsys, narrow_key.url)
    assert "any more" in second[dropped]
    assert all(second[model] == first[model] for model in unseen)
