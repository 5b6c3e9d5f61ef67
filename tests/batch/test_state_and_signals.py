"""What the state directory lets others see, and what Ctrl-C leaves behind (real processes)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from batch_helpers import API_KEY, item, write_jsonl

from caproute.testing import FakeAnthropic

QUICK = ["--poll-interval", "0.01", "--max-poll-interval", "0.05"]


def _caproute(
    fake: FakeAnthropic, *args: str, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.url}
    return subprocess.run(
        [sys.executable, "-m", "caproute", "batch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
        check=False,
    )


def test_state_is_readable_by_its_owner_only_under_umask_022(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    # Prompts (index, chunk bodies) and answers (downloaded results) are the user's alone.
    fake.batches.configure(errored=0.5, seed=3)
    write_jsonl(tmp_path / "in.jsonl", [item(f"r{n}") for n in range(8)])
    state = tmp_path / "job"
    submit = ["submit", str(tmp_path / "in.jsonl"), "--state", str(state), "--max-requests", "4"]
    steps = [
        submit,
        ["wait", "--state", str(state), *QUICK],
        ["results", "--state", str(state), "--out", str(tmp_path / "out.jsonl"), *QUICK],
        ["results", "--state", str(state), "--out", str(tmp_path / "out.jsonl"), "--retry-errored"]
        + [*QUICK, "--reconcile-grace", "0"],
        ["cancel", "--state", str(state), "--reconcile-grace", "0"],
    ]
    for step in steps:
        done = _caproute(fake, *step, umask=0o022)
        assert done.returncode == 0, done.stderr
    paths = [state, *state.rglob("*")]
    names = {p.relative_to(state).as_posix() for p in paths}
    # Every kind of file the job writes was there to be checked.
    for expected in ("index.sqlite3", "job.json", "lock", "canceled", "downloads"):
        assert expected in names
    assert {"rounds/1/plan.json", "rounds/2/refused.jsonl", "rounds/1/chunk-000001.json"} <= names
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_a_pending_chunk_body_is_private_too(fake: FakeAnthropic, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    old = os.umask(0o022)
    try:
        from caproute import BatchJob

        with BatchJob.create(
            tmp_path / "in.jsonl", tmp_path / "s", base_url=fake.url, api_key=API_KEY
        ) as job:
            body = job.state_dir / "rounds" / "1" / "chunk-000001.body.json"
            assert stat.S_IMODE(body.stat().st_mode) == 0o600
            assert stat.S_IMODE((job.state_dir / "rounds").stat().st_mode) == 0o700
    finally:
        os.umask(old)


def test_ctrl_c_in_wait_says_the_batches_keep_running(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.batches.configure(processing_s=60)
    write_jsonl(tmp_path / "in.jsonl", [item("a"), item("b")])
    state = str(tmp_path / "s")
    assert _caproute(fake, "submit", str(tmp_path / "in.jsonl"), "--state", state).returncode == 0
    env = {**os.environ, "ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.url}
    process = subprocess.Popen(
        [sys.executable, "-m", "caproute", "batch", "wait", "--state", state, *QUICK],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # the first poll's line: it is following the batches
    assert "0/1 batches ended" in first
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert "interrupted: stopped following; the batches already submitted keep running" in err
    assert f"caproute batch wait --state {state}" in err
    assert f"caproute batch cancel --state {state}" in err
    assert out == ""
    assert fake.batches.ids() and all(
        fake.batches.retrieve(b, fake.url)["processing_status"] == "in_progress"
        for b in fake.batches.ids()
    )


def test_a_job_written_with_wide_modes_is_made_private_when_opened(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    # A job planned by an older caproute (or files copied with their modes) still holds
    # prompts: opening it takes group and other access away, and says so.
    from caproute import BatchJob

    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    BatchJob.create(
        tmp_path / "in.jsonl", tmp_path / "s", base_url=fake.url, api_key=API_KEY
    ).close()
    state = tmp_path / "s"
    state.chmod(0o755)  # the directory itself: a --state DIR the user made, left alone
    for path in state.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    events: list[str] = []
    BatchJob.open(state, base_url=fake.url, api_key=API_KEY, on_event=events.append).close()
    assert [e for e in events if "readable by their owner only" in e]
    for path in state.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    assert stat.S_IMODE(state.stat().st_mode) == 0o755
    events.clear()
    BatchJob.open(state, base_url=fake.url, api_key=API_KEY, on_event=events.append).close()
    assert not events  # nothing left to change
