"""`caproute batch ...` as users run it: exit statuses, what goes to stdout and stderr."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from batch_helpers import API_KEY, NOBATCH, SMALL, creates, item, read_results, write_jsonl

from caproute.cli import main
from caproute.testing import FakeAnthropic
from terminal_output import read_terminal

STRICT_POLICY = """\
version: 1
routes:
  - name: strict-small
    match: {model: claude-small-1}
    candidates: [requested]
    actions: {effort: reject}
"""


@pytest.fixture
def api_env(fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> FakeAnthropic:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    return fake


POLL = ["--poll-interval", "0.01", "--max-poll-interval", "0.05"]
GRACE = ["--reconcile-grace", "0"]
QUICK = {"submit": GRACE, "status": [], "wait": POLL, "results": POLL + GRACE, "cancel": GRACE}
"""Fast timing, for each command the options it takes."""


def test_dry_run_prints_the_plan_and_sends_nothing(
    api_env: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "policy.yaml").write_text(STRICT_POLICY)
    write_jsonl(
        tmp_path / "in.jsonl",
        [item("a"), item("b", SMALL, output_config={"effort": "max"}), item("c", NOBATCH)],
    )
    args = ["batch", "submit", str(tmp_path / "in.jsonl"), "--dry-run"]
    assert main([*args, "--policy", str(tmp_path / "policy.yaml")]) == 0
    out = capsys.readouterr().out
    assert "refused              1" in out
    assert "the policy says reject" in out
    assert f"{NOBATCH} → claude-big-2" in out
    assert main([*args, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["outcomes"] == {"unchanged": 1, "adjusted": 1, "rerouted": 1}
    assert creates(api_env) == 0
    assert not list(tmp_path.glob("*/rounds"))


def test_header_option_selects_header_matched_routes(
    api_env: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "policy.yaml").write_text(
        "version: 1\nroutes:\n  - name: nightly\n    match: {headers: {x-job: 'nightly-*'}}\n"
        "    candidates: [claude-small-1]\n"
    )
    write_jsonl(tmp_path / "in.jsonl", [item("a"), item("b")])
    args = [
        "batch",
        "submit",
        str(tmp_path / "in.jsonl"),
        "--policy",
        str(tmp_path / "policy.yaml"),
    ]
    assert main([*args, "--dry-run", "--json", "--header", "X-Job: nightly-7"]) == 0
    assert json.loads(capsys.readouterr().out)["outcomes"] == {"rerouted": 2}
    assert main([*args, "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outcomes"] == {"unchanged": 2}
    assert main([*args, "--state", str(tmp_path / "s"), "--header", "x-api-key:k", *GRACE]) == 1
    assert "carries a credential" in capsys.readouterr().err


def test_bad_lines_exit_1_with_locations(
    api_env: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a"), "{", item("a")])
    path = str(tmp_path / "in.jsonl")
    assert main(["batch", "submit", path, "--state", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert "2 bad lines, nothing submitted" in err
    assert f"{path}:2: invalid JSON" in err
    assert f"{path}:3: custom_id 'a' is also on line 1" in err
    assert creates(api_env) == 0


def test_state_is_required_to_submit(
    api_env: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    assert main(["batch", "submit", str(tmp_path / "in.jsonl")]) == 1
    assert "--state DIR is required" in capsys.readouterr().err
    assert (
        main(["batch", "submit", str(tmp_path / "in.jsonl"), "--dry-run", "--max-requests", "0"])
        == 1
    )
    assert "max_requests must be between 1 and 100000" in capsys.readouterr().err


def test_the_whole_cycle(
    api_env: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api_env.batches.configure(errored=0.3, seed=4)
    (tmp_path / "policy.yaml").write_text(STRICT_POLICY)
    write_jsonl(
        tmp_path / "in.jsonl",
        [item(f"r{n}") for n in range(12)] + [item("x", SMALL, output_config={"effort": "max"})],
    )
    state = str(tmp_path / "s")
    submit = ["batch", "submit", str(tmp_path / "in.jsonl"), "--state", state]
    assert (
        main(
            [
                *submit,
                "--policy",
                str(tmp_path / "policy.yaml"),
                "--max-requests",
                "5",
                *QUICK["submit"],
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "To send: 12 requests in 3 batches" in captured.out
    assert "r1c1 (lines 1-5): submitted as msgbatch_" in captured.err
    assert "submitted 3 batch(es) now" in captured.err

    assert main([*submit, *QUICK["submit"]]) == 0  # again: resumes, sends nothing
    assert "resuming the job" in capsys.readouterr().err
    assert creates(api_env) == 3

    assert main(["batch", "status", "--state", state, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert len(status["batches"]) == 3 and status["refused"] == 1

    assert main(["batch", "wait", "--state", state, *QUICK["wait"]]) == 0
    err = capsys.readouterr().err
    assert "3/3 batches ended" in err  # plain lines: stderr is not a terminal here

    assert main(["batch", "status", "--state", state]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == [
        "chunk",
        "lines",
        "batch",
        "status",
        "proc",
        "ok",
        "err",
        "exp",
        "cancel",
    ]
    rows = [row.split() for row in table.splitlines()[1:4]]
    assert [row[:2] for row in rows] == [["r1c1", "1-5"], ["r1c2", "6-10"], ["r1c3", "11-12"]]
    assert all(row[3] == "ended" for row in rows)

    out = tmp_path / "out.jsonl"
    results = ["batch", "results", "--state", state, "--out", str(out), *QUICK["results"]]
    assert main([*results, "--retry-errored"]) == 0
    captured = capsys.readouterr()
    assert "retry round 2" in captured.out
    lines = read_results(out)
    assert len(lines) == 13
    refused = [line for line in lines if line["result"]["type"] == "refused"]
    assert [line["custom_id"] for line in refused] == ["x"]
    assert "the policy says reject" in refused[0]["result"]["reason"]
    assert "wrote 13 results" in captured.err


def test_cancel(api_env: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api_env.batches.configure(processing_s=60)
    write_jsonl(tmp_path / "in.jsonl", [item(f"r{n}") for n in range(4)])
    state = str(tmp_path / "s")
    assert (
        main(["batch", "submit", str(tmp_path / "in.jsonl"), "--state", state, *QUICK["submit"]])
        == 0
    )
    assert main(["batch", "cancel", "--state", state, *QUICK["cancel"]]) == 0
    assert "canceled;" in capsys.readouterr().err
    assert main(["batch", "wait", "--state", state, *QUICK["wait"]]) == 0
    out = ["--out", str(tmp_path / "o.jsonl")]
    assert main(["batch", "results", "--state", state, *out, *QUICK["results"]]) == 0
    assert {line["result"]["type"] for line in read_results(tmp_path / "o.jsonl")} == {"canceled"}
    # Submitting a canceled job again is an error that says what to do, not a quiet 0.
    submit = ["batch", "submit", str(tmp_path / "in.jsonl"), "--state", state, *QUICK["submit"]]
    assert main(submit) == 1
    assert "with a new --state directory" in capsys.readouterr().err
    assert creates(api_env) == 1


def test_every_command_prints_json_on_request(
    api_env: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api_env.batches.configure(processing_s=60)
    write_jsonl(tmp_path / "in.jsonl", [item(f"r{n}") for n in range(4)] + [item("x", SMALL)])
    state = str(tmp_path / "s")
    submit = ["batch", "submit", str(tmp_path / "in.jsonl"), "--state", state, "--json"]
    assert main([*submit, *QUICK["submit"]]) == 0
    assert json.loads(capsys.readouterr().out)["sent_requests"] == 5

    assert main(["batch", "cancel", "--state", state, "--json", *QUICK["cancel"]]) == 0
    canceled = json.loads(capsys.readouterr().out)
    assert canceled["canceled"] is True
    assert [b["submission"] for b in canceled["batches"]] == ["submitted"]

    assert main(["batch", "wait", "--state", state, "--json", *QUICK["wait"]]) == 0
    waited = json.loads(capsys.readouterr().out)
    assert waited["ended"] is True
    assert waited["request_counts"]["canceled"] == 5

    out = tmp_path / "o.jsonl"
    assert (
        main(["batch", "results", "--state", state, "--out", str(out), "--json", *QUICK["results"]])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report == {"path": str(out), "lines": 5, "counts": {"canceled": 5}}
    assert len(read_results(out)) == report["lines"]


def test_errors_without_a_job_or_a_key(
    fake: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["batch", "status", "--state", str(tmp_path / "nope")]) == 1
    assert "no batch job here" in capsys.readouterr().err
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    state = str(tmp_path / "s")
    assert main(["batch", "submit", str(tmp_path / "in.jsonl"), "--state", state]) == 1
    assert "no credentials for the Message Batches API" in capsys.readouterr().err
    assert main(["batch"]) == 2


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]], ids=["submit", "dry-run"])
def test_a_missing_input_file_is_one_line_naming_it(
    api_env: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: list[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    state = ["--state", str(tmp_path / "s")]
    assert main(["batch", "submit", str(missing), *state, *dry_run]) == 1
    err = capsys.readouterr().err
    assert err == f"caproute: error: {missing}: No such file or directory\n"


def test_progress_bar_on_a_terminal(api_env: FakeAnthropic, tmp_path: Path) -> None:
    api_env.batches.configure(processing_s=0.3)
    write_jsonl(tmp_path / "in.jsonl", [item(f"r{n}") for n in range(6)])
    state = str(tmp_path / "s")
    assert (
        main(
            [
                "batch",
                "submit",
                str(tmp_path / "in.jsonl"),
                "--state",
                state,
                "--max-requests",
                "3",
                *QUICK["submit"],
            ]
        )
        == 0
    )
    # stderr on a pseudo-terminal: rich draws bars (one overall, one per batch)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "caproute", "batch", "wait", "--state", state, *QUICK["wait"]],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    drawn = read_terminal(leader, process)
    assert process.wait(timeout=30) == 0
    screen = drawn.decode("utf-8", "replace")
    assert "all batches" in screen
    assert "━" in screen  # a bar, drawn by rich
    assert "6/6" in screen and "3/3" in screen


def test_rich_is_only_loaded_by_the_progress_display() -> None:
    code = (
        "import sys, caproute, caproute.cli.batch; caproute.BatchJob; print('rich' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_key_can_come_from_a_named_variable_and_is_never_written(
    fake: FakeAnthropic,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("TEAM_KEY", API_KEY)
    write_jsonl(tmp_path / "in.jsonl", [item(f"r{n}") for n in range(3)])
    state = tmp_path / "s"
    api = ["--base-url", fake.url, "--api-key-env", "TEAM_KEY"]
    submit = ["batch", "submit", str(tmp_path / "in.jsonl"), "--state", str(state)]
    assert main([*submit, *api, *QUICK["submit"]]) == 0
    assert creates(fake) == 1
    capsys.readouterr()
    assert main(["batch", "status", "--state", str(state), "--json", *api]) == 0
    assert json.loads(capsys.readouterr().out)["batches"][0]["submission"] == "submitted"
    assert all(
        API_KEY.encode() not in path.read_bytes() for path in state.rglob("*") if path.is_file()
    )

    assert main(["batch", "status", "--state", str(state), "--api-key-env", "NOPE"]) == 1
    assert "--api-key-env: environment variable NOPE is not set" in capsys.readouterr().err


def test_options_are_taken_only_by_the_commands_that_use_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["batch", "status", "--state", "s", "--poll-interval", "1"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --poll-interval" in capsys.readouterr().err


def test_results_out_may_not_be_the_input(
    api_env: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api_env.batches.configure(errored=1.0)
    source = write_jsonl(tmp_path / "in.jsonl", [item("a")])
    before = source.read_bytes()
    state = ["--state", str(tmp_path / "s")]
    assert main(["batch", "submit", str(source), *state, *GRACE]) == 0
    retry = ["batch", "results", *state, "--out", str(source), "--retry-errored", *POLL, *GRACE]
    assert main(retry) == 1
    assert "the job's input file" in capsys.readouterr().err
    assert source.read_bytes() == before
    assert creates(api_env) == 1  # refused before a retry round was submitted
