"""What the CLI prints: tables that fit, plain text in pipes, JSON everywhere, errors once.

The table (`caproute models`, `caproute demo`) is drawn with rich: it must fit the width
it is given, be plain ASCII in a pipe and styled on a terminal (a real pseudo-terminal
here), and show what a running app learned (tombstones, learned facts) from the user
cache file. Every command that prints data takes ``--json``; the output is parsed here.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import caproute
from caproute import LearnedFact, Registry, RegistrySource, embedded_registry, save_snapshot
from caproute._core.policy import policy_json_schema
from caproute._registry.snapshot import user_cache_path
from caproute.cli import main
from caproute.cli.table import render_registry
from caproute.testing import FakeAnthropic, make_model
from terminal_output import read_terminal

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-ant-output-test-SECRET"
NOW = 1_800_000_000.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
WIDTHS = [40, 60, 80, 100, 120, 200]
EMBEDDED_FILE = ROOT / "src" / "caproute" / "data" / "embedded_registry.json"


def learned_registry(now: float = NOW) -> Registry:
    """Three listed models, one tombstone, two facts in force and one expired (at `now`)."""
    return Registry.from_models(
        [
            make_model("claude-x-2", unsupported=["effort.xhigh"]),
            make_model("claude-y-1", max_tokens=128_000),
            make_model("claude-z-1"),
            make_model("claude-old-1"),
        ],
        source=RegistrySource("live", fetched_at=now - 7200, location="https://x"),
        tombstones={"claude-old-1": "not in the Models API list any more (retired?)"},
        learned=[
            LearnedFact(
                "claude-x-2", "effort.max", False, now - 600, now + 3600, "400 naming effort"
            ),
            LearnedFact("claude-y-1", "max_tokens", 64_000, now - 60, now + 7200, "400 max_tokens"),
            LearnedFact("claude-z-1", "citations", False, now - 90_000, now - 3600, "old refusal"),
        ],
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a fresh process, stdout and stderr piped."""
    return subprocess.run(
        [sys.executable, "-m", "caproute", *argv],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=60,
        check=False,
    )


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what changes the output (colour forcing,
    keys) and with the test's private cache directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "COLUMNS", "CAPROUTE_DEBUG"}
        and not k.startswith("ANTHROPIC_")
    }
    return {**env, **extra}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the table fits ---------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("terminal", [False, True], ids=["plain", "terminal"])
@pytest.mark.parametrize("which", ["embedded", "learned"])
def test_every_line_fits_the_width(width: int, terminal: bool, which: str) -> None:
    registry = embedded_registry() if which == "embedded" else learned_registry()
    text = render_registry(registry, width=width, terminal=terminal, now=NOW)
    lines = ANSI.sub("", text).splitlines()
    too_wide = [line for line in lines if len(line) > width]
    assert not too_wide, f"{len(too_wide)} lines wider than {width}: {too_wide[:3]}"
    # Nothing is lost to the fitting: every model is still named.
    for model_id in (*registry.ids, *registry.tombstones):
        assert model_id in text.replace("\n", "") or width < 60


@pytest.mark.parametrize("width", ["60", "80"])
@pytest.mark.parametrize("command", ["models", "demo"])
def test_the_commands_fit_width(
    width: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    save_snapshot(learned_registry(time.time()), user_cache_path())
    code, out, err = run(capsys, command, "--width", width)
    assert (code, err) == (0, "")
    assert max(len(line) for line in out.splitlines()) <= int(width)


def test_the_layout_degrades_in_order() -> None:
    registry = embedded_registry()
    headers = {
        width: render_registry(registry, width=width).split("\n\n")[1].splitlines()[0].split()
        for width in (200, 125, 60)
    }
    assert headers[200][:3] == ["MODEL", "NAME", "LIFECYCLE"]
    assert "NAME" not in headers[125] and "THINKING" in headers[125]
    # Stacked: the lists moved to an indented line under each model.
    assert headers[60] == ["MODEL", "LIFECYCLE", "CTX", "OUT", "FLAGS"]
    table = render_registry(registry, width=60).split("\n\n")[1].splitlines()
    assert table[2].startswith("claude-") and table[3].startswith("  tools:")


def test_a_zero_width_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "models", "--width", "0")
    assert code == 1 and err == "caproute: error: --width must be 1 or more, not 0\n"


# -- plain in a pipe, styled on a terminal --------------------------------------------------


def test_in_a_pipe_the_table_is_plain_ascii_one_line_per_model() -> None:
    result = cli("models")
    assert (result.returncode, result.stderr) == (0, "")
    out = result.stdout
    assert "\x1b" not in out and out.isascii()
    assert all(line == line.rstrip() for line in out.splitlines())
    rows = [line for line in out.splitlines() if line.startswith("claude-")]
    assert [row.split()[0] for row in rows] == list(embedded_registry().ids)
    # No width to fit: every column, NAME included, each model on one line.
    header = next(line for line in out.splitlines() if line.startswith("MODEL"))
    assert header.split() == [
        "MODEL", "NAME", "LIFECYCLE", "CTX", "OUT", "FLAGS", "TOOLS", "EDITS", "EFFORT", "THINKING"
    ]  # fmt: skip
    assert all(row.split()[-1] in {"?", "-"} or "," in row or "+?" in row for row in rows)


def run_in_terminal(*argv: str, columns: int) -> str:
    """Run the CLI with stdout on a pseudo-terminal `columns` wide; return what it drew."""
    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = clean_env(TERM="xterm-256color")
    process = subprocess.Popen(
        [sys.executable, "-m", "caproute", *argv],
        stdout=child_fd,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(child_fd)
    drawn = read_terminal(main_fd, process)
    assert process.wait(timeout=10) == 0
    assert process.stderr is not None and process.stderr.read() == b""
    process.stderr.close()
    return drawn.decode().replace("\r\n", "\n")


def test_on_a_terminal_the_table_fits_it_and_is_styled() -> None:
    drawn = run_in_terminal("models", columns=72)
    assert "\x1b[" in drawn and "─" in drawn
    lines = ANSI.sub("", drawn).splitlines()
    assert max(len(line) for line in lines) <= 72
    assert "claude-opus-5-5" in drawn


# -- what a running app learned ----------------------------------------------------------------


def test_models_shows_learned_facts_and_tombstones_from_the_cache(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = save_snapshot(learned_registry(time.time()), user_cache_path())
    code, out, err = run(capsys, "models", "--width", "200")
    assert (code, err) == (0, "")
    assert out.startswith(f"3 models (+1 no longer listed) from cache ({cache}, ")
    table = out.split("\n\n")[1].splitlines()
    rows = {line.split()[0]: line.split() for line in table if line[:7] == "claude-"}
    assert rows["claude-x-2"][-2] == "low,med,high*"  # effort.max learned unsupported
    assert rows["claude-y-1"][5] == "64K*"  # max_tokens learned
    assert rows["claude-z-1"][6] == "bcipsx"  # the expired fact is no longer in force
    assert rows["claude-old-1"][3] == "unlisted"
    assert "* learned from the API's answers" in out
    facts = out.split("Learned from the API's answers (3):\n")[1]
    assert re.search(r"claude-x-2\s+effort\.max\s+unsupported\s+\S+ ago\s+expires in", facts)
    assert re.search(r"claude-y-1\s+max_tokens\s+64000\s+", facts)
    assert re.search(r"claude-z-1\s+citations\s+unsupported\s+\S+ ago\s+expired \S+ ago", facts)
    assert "400 naming effort" in facts and "old refusal" in facts
    assert "No longer listed (1), kept and routed as retired:" in out
    assert "not in the Models API list any more (retired?):\n  claude-old-1" in out


def test_models_json_includes_tombstones_and_learned_facts_and_loads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_snapshot(learned_registry(time.time()), user_cache_path())
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["tombstones"] == {
        "claude-old-1": "not in the Models API list any more (retired?)"
    }
    assert [(f["model"], f["key"], f["value"]) for f in document["learned"]] == [
        ("claude-x-2", "effort.max", False),
        ("claude-y-1", "max_tokens", 64000),
        ("claude-z-1", "citations", False),
    ]
    assert set(document["learned"][0]) == {
        "model",
        "key",
        "value",
        "learned_at",
        "expires_at",
        "reason",
    }
    saved = tmp_path / "copy.json"
    saved.write_text(out)
    code, out, _ = run(capsys, "models", "--snapshot", str(saved), "--json")
    again = json.loads(out)
    assert again["source"]["kind"] == "snapshot"  # where it was read from this time
    assert {**again, "source": document["source"]} == document


def test_what_a_running_app_learned_shows_in_models(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    effort_max: dict[str, Any] = {
        "model": "claude-small-1",
        "max_tokens": 100,
        "output_config": {"effort": "max"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    models = [make_model("claude-big-2"), make_model("claude-small-1", max_tokens=8192)]
    with FakeAnthropic(models=models, api_key=KEY) as fake:
        with caproute.wrap(fake.client()) as client:  # fetches the lineup, caches it
            client.messages.create(**effort_max)
            fake.update_model("claude-small-1", unsupported=["effort.max"])
            client.messages.create(**effort_max)  # a 400, learned, adjusted, resent
        # Cache files are per key: offline, `models` reads the one of the key in the
        # environment (the same key the app used).
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        code, out, err = run(capsys, "models", "--base-url", fake.url, "--width", "200")
    assert (code, err) == (0, "")
    small = next(line for line in out.splitlines() if line.startswith("claude-small-1"))
    assert small.split()[-2] == "low,med,high,xhigh*"
    assert re.search(r"claude-small-1\s+effort\.max\s+unsupported", out)
    assert KEY not in out


# -- --json on every command that prints data --------------------------------------------------


def test_check_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nroutes:\n  - name: x\n    candidates: [requested]\n    nope: 1\n")
    code, out, err = run(capsys, "check", str(bad), "--json")
    assert (code, err) == (1, "")
    document = json.loads(out)
    assert document["valid"] is False and document["routes"] is None
    assert document["exit_status"] == 1 and document["warnings"] == []
    (error,) = document["errors"]
    assert (error["file"], error["line"], error["column"]) == (str(bad), 5, 5)
    assert "nope" in error["message"]

    warns = tmp_path / "warns.yaml"
    warns.write_text("version: 1\nroutes:\n  - name: x\n    candidates: [claude-nothing-9]\n")
    code, out, _ = run(capsys, "check", str(warns), "--json", "--strict")
    document = json.loads(out)
    assert code == 1 and document["exit_status"] == 1 and document["strict"] is True
    assert document["valid"] is True and document["routes"] == 1 and document["errors"] == []
    warning = document["warnings"][-1]
    assert warning["path"] == "routes[0].candidates[0]"
    assert (warning["line"], warning["column"]) == (4, 18)
    assert "claude-nothing-9" in warning["message"]
    assert document["registry"].startswith("embedded")

    code, out, _ = run(capsys, "check", str(warns), "--json", "--no-registry")
    document = json.loads(out)
    assert (code, document["registry"], document["warnings"]) == (0, None, [])


CHECK_KEYS = [
    "kind", "file", "valid", "routes", "errors", "warnings", "registry", "server", "strict",
    "exit_status",
]  # fmt: skip


def test_check_json_has_one_shape_for_a_policy_and_a_server_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "routing.yaml"
    policy.write_text("version: 1\nroutes:\n  - name: x\n    candidates: [requested]\n")
    config = tmp_path / "server.yaml"
    config.write_text("upstream: http://127.0.0.1:1\nworkers: 2\npolicy: routing.yaml\n")

    code, out, err = run(capsys, "check", str(policy), "--json")
    as_policy = json.loads(out)
    assert (code, err, list(as_policy)) == (0, "", CHECK_KEYS)
    assert (as_policy["kind"], as_policy["server"], as_policy["routes"]) == ("policy", None, 1)

    code, out, err = run(capsys, "check", str(config), "--json")
    as_config = json.loads(out)
    assert (code, err, list(as_config)) == (0, "", CHECK_KEYS)
    assert as_config["kind"] == "server-config" and as_config["valid"] is True
    assert as_config["server"] == {
        "mode": "pass-through",
        "upstream": "http://127.0.0.1:1",
        "settings": 3,
        "policy": str(policy),
        "snapshot": None,
    }
    assert as_config["routes"] == 1 and as_config["registry"].startswith("embedded")


def test_a_server_config_check_locates_the_problems_of_the_files_it_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "routing.yaml").write_text("version: 1\ndefaults:\n  on_unsuported: reject\n")
    config = tmp_path / "server.yaml"
    config.write_text("policy: routing.yaml\nsnapshot: missing.json\n")

    code, out, err = run(capsys, "check", str(config))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{config}:2:11: snapshot file not found: {tmp_path / 'missing.json'} (at snapshot)",
        f"{tmp_path / 'routing.yaml'}:3:3: unknown key 'on_unsuported' in defaults; "
        "did you mean 'on_unsupported'? (at defaults.on_unsuported)",
        f"2 errors in {config} and the files it names",
    ]

    code, out, err = run(capsys, "check", str(config), "--json")
    document = json.loads(out)
    assert (code, err, document["exit_status"], document["valid"]) == (1, "", 1, False)
    where = [(e["file"], e["line"], e["column"], e["path"]) for e in document["errors"]]
    assert where == [
        (str(config), 2, 11, "snapshot"),
        (str(tmp_path / "routing.yaml"), 3, 3, "defaults.on_unsuported"),
    ]

    config.write_text("upstream: https://api.anthropic.com\npolicy: nowhere.yaml\n")
    code, out, err = run(capsys, "check", str(config), "--json")
    (error,) = json.loads(out)["errors"]
    assert code == 1 and (error["line"], error["column"], error["path"]) == (2, 9, "policy")
    assert "cannot read the policy file" in error["message"]


def test_a_server_configs_policy_is_checked_against_its_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "routing.yaml").write_text(
        "version: 1\nroutes:\n  - name: tiny\n    candidates: [claude-tiny-1]\n"
    )
    save_snapshot(Registry.from_models([make_model("claude-tiny-1")]), tmp_path / "lineup.json")
    config = tmp_path / "server.yaml"
    config.write_text("policy: routing.yaml\nsnapshot: lineup.json\n")

    code, out, err = run(capsys, "check", str(config), "--strict")
    assert (code, err) == (0, "")
    assert out.startswith("ok: server config (pass-through, upstream https://api.anthropic.com")
    assert f"; policy {tmp_path / 'routing.yaml'}: 1 route, 0 warnings (registry: snapshot" in out

    # --snapshot wins over the file's, as flags win over the file for `caproute serve`.
    code, out, _ = run(
        capsys, "check", str(config), "--strict", "--json", "--snapshot", str(EMBEDDED_FILE)
    )
    document = json.loads(out)
    assert code == 1 and "routes[0].candidates[0]" in [w["path"] for w in document["warnings"]]
    code, out, _ = run(capsys, "check", str(config), "--strict", "--json", "--no-registry")
    assert code == 0 and json.loads(out)["registry"] is None


def test_own_key_mode_without_a_token_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("credentials:\n  api_key_env: TEAM_KEY\n")
    code, out, err = run(capsys, "check", str(config))
    assert code == 0 and out.startswith("ok: server config (own-key")
    assert err.startswith(f"{config}: warning: own-key mode needs a local token")
    assert main(["check", str(config), "--strict"]) == 1


def test_schema_json_is_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema", "--json")
    assert code == 0 and json.loads(out) == policy_json_schema()


def test_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "demo", "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert Registry.from_json(document["registry"]) == embedded_registry()
    example = document["example"]
    assert example["file"] == "examples/requests/retired-with-thinking.json"
    assert example["request"]["model"] == "claude-opus-4-1"
    assert example["decision"]["outcome"] == "rerouted"
    assert example["body"]["model"] == example["decision"]["model"]


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": [make_model("claude-out-1")], "api_key": KEY}


def test_snapshot_json(
    fake: FakeAnthropic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    target = tmp_path / "snap.json"
    code, out, _ = run(capsys, "snapshot", "--out", str(target), "--base-url", fake.url, "--json")
    assert code == 0
    document = json.loads(out)
    assert document["path"] == str(target) and document["models"] == 1
    assert document["source"]["kind"] == "live" and document["source"]["location"] == fake.url
    assert KEY not in out


# -- --live: the key and the errors ------------------------------------------------------------


def test_a_live_failure_is_printed_once() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    env = clean_env(ANTHROPIC_API_KEY=KEY)
    result = cli("models", "--live", "--base-url", url, "--retries", "0", env=env)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"caproute: error: cannot reach the Models API at {url}")


def test_a_rejected_key_is_printed_once(fake: FakeAnthropic) -> None:
    env = clean_env(ANTHROPIC_API_KEY="sk-ant-wrong")
    result = cli("models", "--live", "--base-url", fake.url, env=env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "HTTP 401" in result.stderr
    assert "sk-ant-wrong" not in result.stderr


def test_without_a_key_the_message_names_the_clis_own_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in (["models", "--live"], ["snapshot", "--out", "x.json"]):
        code, _, err = run(capsys, *command)
        assert code == 1 and err.count("\n") == 1
        assert "ANTHROPIC_API_KEY" in err and "--api-key-env NAME" in err
        assert "api_key=" not in err  # the library's way, not the CLI's


def test_api_key_env_reads_the_key_from_the_named_variable(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEAM_ANTHROPIC_KEY", KEY)
    argv = ["models", "--live", "--base-url", fake.url, "--api-key-env", "TEAM_ANTHROPIC_KEY"]
    code, out, err = run(capsys, *argv, "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    kept = {*document["tombstones"], *document.get("unlisted", {})}
    listed = [m["id"] for m in document["models"] if m["id"] not in kept]
    assert listed == ["claude-out-1"]
    assert KEY not in out and KEY not in user_cache_path(fake.url, KEY).read_text()


def test_api_key_env_naming_an_unset_variable_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "models", "--live", "--api-key-env", "NOT_SET_ANYWHERE")
    assert code == 1
    expected = "caproute: error: --api-key-env: environment variable NOT_SET_ANYWHERE is not set"
    assert err == expected + " or empty\n"


# -- imports ------------------------------------------------------------------------------------


def test_rich_is_imported_only_when_a_table_is_printed() -> None:
    code = (
        "import sys, caproute, caproute.cli; caproute.cli.build_parser(); "
        "print('rich' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- --help ------------------------------------------------------------------------------------


def _commands() -> Iterator[tuple[str, Any]]:
    """(name, parser) for every command and subcommand of `caproute`."""
    import argparse

    from caproute.cli import build_parser

    def walk(prefix: str, parser: argparse.ArgumentParser) -> Iterator[tuple[str, Any]]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield f"{prefix} {name}".strip(), sub
                    yield from walk(f"{prefix} {name}", sub)

    yield from walk("", build_parser())


def test_every_command_says_what_it_does_and_every_option_what_it_means() -> None:
    undescribed = [name for name, parser in _commands() if not parser.description]
    assert undescribed == []
    unexplained = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, parser in _commands()
        for action in parser._actions
        if action.help is None and action.dest != "help"
        and not action.__class__.__name__.startswith("_SubParsers")
    ]  # fmt: skip
    assert unexplained == []


def test_every_data_command_takes_json() -> None:
    long_running = {"serve"}  # logs, not data: --log-format json
    groups = {"batch"}  # the subcommands print, the group only lists them
    without = [
        name
        for name, parser in _commands()
        if name not in long_running | groups
        and not any("--json" in action.option_strings for action in parser._actions)
    ]
    assert without == []
