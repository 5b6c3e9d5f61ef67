"""The Python API against the fake: plan, submit, wait, merge results, retry, cancel."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from batch_helpers import (
    API_KEY,
    BIG,
    GONE,
    NOBATCH,
    SMALL,
    creates,
    item,
    job_options,
    journal,
    lineup,
    read_results,
    sent_custom_ids,
    write_jsonl,
    write_mixed,
)

import caproute
from caproute import (
    AsyncBatchJob,
    BatchAPIError,
    BatchJob,
    BatchLimits,
    BatchStateError,
    LiveRouter,
    Registry,
)
from caproute._batch.api import SyncDriver
from caproute._exceptions import ConfigError
from caproute.testing import FakeAnthropic


def test_mixed_workload_end_to_end(fake: FakeAnthropic, tmp_path: Path) -> None:
    kinds = write_mixed(tmp_path / "in.jsonl", 60)
    fake.batches.configure(errored=0.1, expired=0.1, seed=5)
    with BatchJob.create(
        tmp_path / "in.jsonl", tmp_path / "state", limits=BatchLimits(7), **job_options(fake)
    ) as job:
        plan = job.plan
        expected = Counter(kinds.values())
        assert plan.requests == 60
        assert plan.outcomes["unchanged"] == expected["unchanged"]
        assert plan.outcomes["adjusted"] == expected["adjusted"]
        assert plan.outcomes["rerouted"] == expected["rerouted"]
        assert "passthrough" not in plan.outcomes  # batches never gamble on a name
        assert plan.unknown_refused == expected["unknown_model"]
        refused = expected["refused"] + expected["unknown_model"]
        assert plan.refused == refused
        assert plan.sent_requests == 60 - refused
        assert plan.chunks == -(-plan.sent_requests // 7)
        assert f"{NOBATCH} → {BIG}" in plan.summary()
        assert "pdf_input" in plan.refusals[0].label
        assert fake.count("/v1/messages/batches") == 0  # nothing sent while planning

        assert job.submit() == plan.chunks
        status = job.wait()
        assert status.ended
        assert status.refused == refused
        assert status.counts.total == plan.sent_requests
        report = job.write_results(tmp_path / "out.jsonl")

    lines = read_results(tmp_path / "out.jsonl")
    assert [line["custom_id"] for line in lines] == list(kinds)  # input order, each once
    assert report.lines == 60
    by_id = {line["custom_id"]: line for line in lines}
    for custom_id, kind in kinds.items():
        result = by_id[custom_id]["result"]
        decision = by_id[custom_id]["caproute"]["decision"]
        if kind == "refused":
            assert result["type"] == "refused"
            assert "pdf_input" in result["reason"]
            assert decision["outcome"] == "rejected"
            assert by_id[custom_id]["caproute"]["batch_id"] is None
        elif kind == "unknown_model":
            assert result["type"] == "refused"
            assert f"{GONE}: unknown to the registry" in result["reason"]
            assert decision["outcome"] == "rejected"
        else:
            assert result["type"] in ("succeeded", "errored", "expired")
            assert decision["outcome"] == kind
            if result["type"] == "succeeded":
                assert result["message"]["model"] == (
                    BIG if kind == "rerouted" else decision["model"]
                )
    types = Counter(line["result"]["type"] for line in lines)
    assert types["expired"] > 0
    assert sum(report.counts.values()) == 60
    assert report.counts["refused"] == refused
    assert sorted(sent_custom_ids(fake)) == sorted(
        cid for cid, kind in kinds.items() if kind not in ("refused", "unknown_model")
    )


def test_each_result_line_carries_the_routing_decision(fake: FakeAnthropic, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a", SMALL, output_config={"effort": "max"})])
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(fake)) as job:
        job.submit()
        job.wait()
        job.write_results(tmp_path / "out.jsonl")
    (line,) = read_results(tmp_path / "out.jsonl")
    decision = line["caproute"]["decision"]
    assert decision["outcome"] == "adjusted"
    assert decision["changes"][0]["path"] == "output_config.effort"
    assert line["caproute"]["line"] == 1 and line["caproute"]["round"] == 1
    sent = fake.requests[-1]
    # what was sent is what the decision says
    posts = [r for r in fake.requests if r.method == "POST" and r.path == "/v1/messages/batches"]
    assert posts[0].body["requests"][0]["params"]["output_config"] == {"effort": "xhigh"}
    assert sent.path.endswith("/results")


def test_unchanged_lines_are_sent_byte_for_byte(fake: FakeAnthropic, tmp_path: Path) -> None:
    raw = (
        '{"params": {"max_tokens": 5, "model": "claude-big-2", '
        '"messages": [{"role": "user", "content": "caf\\u00e9"}]}, "custom_id": "x"}'
    )
    (tmp_path / "in.jsonl").write_text(raw + "\n")
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(fake)) as job:
        body = job.state_dir / "rounds" / "1" / "chunk-000001.body.json"
        assert body.read_bytes() == b'{"requests":[' + raw.encode() + b"]}"
        job.submit()
        assert not body.exists()  # dropped once the batch is recorded


def test_a_windows_file_bom_crlf_and_no_final_newline(fake: FakeAnthropic, tmp_path: Path) -> None:
    # Notepad / PowerShell write a BOM and CRLF; the last line often has no line ending.
    lines = [json.dumps(item(f"w{n}")) for n in range(4)]
    (tmp_path / "in.jsonl").write_bytes(
        b"\xef\xbb\xbf" + "\r\n".join(lines[:2] + ["", "  "] + lines[2:]).encode()
    )
    fake.batches.configure(errored=1.0)
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(fake)) as job:
        body = job.state_dir / "rounds" / "1" / "chunk-000001.body.json"
        assert body.read_bytes() == ('{"requests":[' + ",".join(lines) + "]}").encode()
        job.submit()
        job.wait()
        assert job.write_results(tmp_path / "out.jsonl").counts == {"errored": 4}
        # A retry re-reads the lines by byte offset: the first must not pick up the BOM.
        fake.batches.configure(errored=0.0)
        plan = job.retry_errored()
        assert plan is not None and plan.outcomes == {"unchanged": 4}
        job.wait()
        assert job.write_results(tmp_path / "out.jsonl").counts == {"succeeded": 4}
    assert [line["caproute"]["line"] for line in read_results(tmp_path / "out.jsonl")] == [
        1,
        2,
        5,
        6,
    ]


NIGHTLY_POLICY = """\
version: 1
routes:
  - name: nightly
    match: {headers: {x-job: "nightly-*"}}
    candidates: [claude-small-1]
"""


def test_header_matched_routes_apply_to_every_round(fake: FakeAnthropic, tmp_path: Path) -> None:
    # The cookbook's batch-only route matches on a header: a job must be able to say it.
    (tmp_path / "policy.yaml").write_text(NIGHTLY_POLICY)
    write_jsonl(tmp_path / "in.jsonl", [item(f"n{n}") for n in range(10)])
    fake.batches.configure(errored=0.5, seed=4)
    with BatchJob.create(
        tmp_path / "in.jsonl",
        tmp_path / "s",
        policy=tmp_path / "policy.yaml",
        headers={"X-Job": "nightly-report"},
        **job_options(fake),
    ) as job:
        assert job.plan.outcomes == {"rerouted": 10}
        job.submit()
        job.wait()
        errored = job.write_results(tmp_path / "out.jsonl").counts["errored"]
    # A later process (the retry) routes with the headers the job recorded.
    with BatchJob.open(tmp_path / "s", **job_options(fake)) as job:
        plan = job.retry_errored()
        assert plan is not None and plan.outcomes == {"rerouted": errored}
    for line in read_results(tmp_path / "out.jsonl"):
        assert (line["caproute"]["decision"]["route"], line["caproute"]["decision"]["model"]) == (
            "nightly",
            SMALL,
        )
    creates_ = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/batches")]
    assert len(creates_) == 2 and all("x-job" not in r.headers for r in creates_)
    # Without the header the route does not apply.
    plan = BatchJob.dry_run(tmp_path / "in.jsonl", policy=tmp_path / "policy.yaml", **_dry(fake))
    assert plan.outcomes == {"unchanged": 10}


def test_a_credential_header_is_never_recorded(fake: FakeAnthropic, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    with pytest.raises(ConfigError, match="'Authorization' carries a credential"):
        BatchJob.create(
            tmp_path / "in.jsonl",
            tmp_path / "s",
            headers={"Authorization": "Bearer secret-token"},
            **job_options(fake),
        )
    assert not any(p.is_file() and b"secret-token" in p.read_bytes() for p in tmp_path.rglob("*"))


def _dry(fake: FakeAnthropic) -> dict[str, str]:
    return {"base_url": fake.url, "api_key": API_KEY}


def test_results_never_overwrite_the_input_or_the_state(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    before = (tmp_path / "in.jsonl").read_bytes()
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(fake)) as job:
        job.submit()
        job.wait()
        (tmp_path / "link.jsonl").symlink_to(tmp_path / "in.jsonl")
        for out in (tmp_path / "in.jsonl", tmp_path / "link.jsonl"):
            with pytest.raises(ConfigError, match="the job's input file"):
                job.write_results(out)
        with pytest.raises(ConfigError, match="inside the job's state directory"):
            job.write_results(tmp_path / "s" / "job.json")
        assert (tmp_path / "in.jsonl").read_bytes() == before
        assert job.write_results(tmp_path / "out.jsonl").counts == {"succeeded": 1}


def test_a_resume_with_other_settings_says_they_are_not_used(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    (tmp_path / "policy.yaml").write_text(NIGHTLY_POLICY)
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    events: list[str] = []
    options = job_options(fake, on_event=events.append)
    BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **options).close()
    BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **options).close()  # a plain resume
    assert not [e for e in events if "other settings" in e]
    with BatchJob.create(
        tmp_path / "in.jsonl",
        tmp_path / "s",
        policy=tmp_path / "policy.yaml",
        limits=BatchLimits(max_requests=10),
        headers={"x-job": "nightly-1"},
        **options,
    ) as job:
        assert job.plan.outcomes == {"unchanged": 1}  # the plan made first stands
    (note,) = [e for e in events if "other settings" in e]
    assert "(policy, limits, headers)" in note and "new state directory" in note


def test_submit_again_submits_nothing_twice(fake: FakeAnthropic, tmp_path: Path) -> None:
    write_mixed(tmp_path / "in.jsonl", 20)
    options = job_options(fake)
    with BatchJob.create(
        tmp_path / "in.jsonl", tmp_path / "s", limits=BatchLimits(5), **options
    ) as job:
        first = job.submit()
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **options) as again:
        assert not again.planned_now
        assert again.submit() == 0
    assert creates(fake) == first
    assert len(sent_custom_ids(fake)) == len(set(sent_custom_ids(fake)))


def test_a_state_dir_belongs_to_one_input(fake: FakeAnthropic, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [item("a")])
    write_jsonl(tmp_path / "b.jsonl", [item("b")])
    BatchJob.create(tmp_path / "a.jsonl", tmp_path / "s", **job_options(fake)).close()
    with pytest.raises(BatchStateError, match="changed since the job was planned"):
        BatchJob.create(tmp_path / "b.jsonl", tmp_path / "s", **job_options(fake))
    write_jsonl(tmp_path / "a.jsonl", [item("a"), item("c")])  # edited in place
    with pytest.raises(BatchStateError, match="changed since the job was planned"):
        BatchJob.create(tmp_path / "a.jsonl", tmp_path / "s", **job_options(fake))
    with pytest.raises(BatchStateError, match="no batch job here"):
        BatchJob.open(tmp_path / "elsewhere", **job_options(fake))


def test_results_before_the_end_say_what_to_do(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.batches.configure(processing_s=30)
    write_jsonl(tmp_path / "in.jsonl", [item("a"), item("b")])
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(fake)) as job:
        with pytest.raises(BatchStateError, match="not submitted yet"):
            job.write_results(tmp_path / "out.jsonl")
        job.submit()
        with pytest.raises(BatchStateError, match="have not ended yet"):
            job.write_results(tmp_path / "out.jsonl")
        status = job.status()
    assert not status.ended
    assert status.batches[0].processing_status == "in_progress"
    assert not (tmp_path / "out.jsonl").exists()


def test_wait_reports_progress_and_backs_off(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.batches.configure(processing_s=0.5)
    write_jsonl(tmp_path / "in.jsonl", [item(f"r{n}") for n in range(40)])
    seen: list[caproute.BatchStatus] = []
    with BatchJob.create(
        tmp_path / "in.jsonl", tmp_path / "s", limits=BatchLimits(20), **job_options(fake)
    ) as job:
        job.submit()
        final = job.wait(on_progress=seen.append)
    assert final.ended and final.counts.succeeded == 40
    done = [s.counts.done for s in seen]
    assert done == sorted(done)  # counts only move forward
    assert any(0 < d < 40 for d in done)  # partial progress was reported
    assert seen[-1] is final


def test_retry_errored_reroutes_from_the_input(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.batches.configure(errored=0.3, seed=2)
    write_jsonl(tmp_path / "in.jsonl", [item(f"r{n}", SMALL) for n in range(30)])
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(fake)) as job:
        job.submit()
        job.wait()
        first = job.write_results(tmp_path / "out.jsonl")
        errored = first.counts["errored"]
        assert errored > 0
        # Meanwhile the model stops taking batches: the retry must route around it.
        fake.update_model(SMALL, unsupported=["batch"])
        plan = job.retry_errored()
        assert plan is not None and plan.round == 2
        assert plan.requests == errored
        assert plan.outcomes == {"rerouted": errored}
        job.wait()
        second = job.write_results(tmp_path / "out.jsonl")
        assert len(job.plans) == 2
    lines = read_results(tmp_path / "out.jsonl")
    assert len(lines) == 30
    retried = [line for line in lines if line["caproute"]["round"] == 2]
    assert len(retried) == errored
    for line in retried:
        assert line["caproute"]["decision"]["model"] == BIG
        if line["result"]["type"] == "succeeded":
            assert line["result"]["message"]["model"] == BIG
    assert second.counts.get("errored", 0) < errored


def test_retry_with_nothing_to_retry(fake: FakeAnthropic, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(fake)) as job:
        job.submit()
        job.wait()
        assert job.retry_errored() is None
        assert len(job.plans) == 1


def test_cancel_stops_submitting_and_cancels_running_batches(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.batches.configure(processing_s=60)
    write_jsonl(tmp_path / "in.jsonl", [item(f"r{n}") for n in range(6)])
    with BatchJob.create(
        tmp_path / "in.jsonl", tmp_path / "s", limits=BatchLimits(2), **job_options(fake)
    ) as job:
        # Submit only the first chunk, as a run interrupted after it would have.
        records = journal(job).records()
        job._drive().run(job._job._submit_chunk(records[0]))
        status = job.cancel()
        assert status.canceled
        assert job.submit() == 0  # a canceled job submits nothing more
        final = job.wait()
        assert final.ended and final.counts.canceled == 2
        report = job.write_results(tmp_path / "out.jsonl")
    assert creates(fake) == 1
    assert report.counts == {"canceled": 6}  # 2 canceled by the API, 4 never sent
    lines = read_results(tmp_path / "out.jsonl")
    assert [line["caproute"]["batch_id"] is None for line in lines] == [False] * 2 + [True] * 4


def test_status_json_shape(fake: FakeAnthropic, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a"), item("b", messages=[])])
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(fake)) as job:
        pending = job.status().to_dict()
        assert pending["unsubmitted"] == 1 and pending["batches"][0]["submission"] == "pending"
        job.submit()
        job.wait()
        data = json.loads(json.dumps(job.status().to_dict()))
    assert data["ended"] is True
    assert data["request_counts"]["succeeded"] + data["request_counts"]["errored"] == 2
    assert data["batches"][0]["batch_id"].startswith("msgbatch_")


def test_a_busy_job_is_refused(fake: FakeAnthropic, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(fake)) as job:
        with journal(job).locked(), pytest.raises(BatchStateError, match="another caproute"):
            BatchJob.open(tmp_path / "s", **job_options(fake)).submit()
        assert fake.count("/v1/messages/batches") == 0


def test_the_key_is_never_written(fake: FakeAnthropic, tmp_path: Path) -> None:
    write_mixed(tmp_path / "in.jsonl", 10)
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(fake)) as job:
        job.submit()
        job.wait()
        job.write_results(tmp_path / "out.jsonl")
    for path in [*tmp_path.rglob("*")]:
        if path.is_file():
            assert b"batch-test-key" not in path.read_bytes(), path


def test_unknown_model_errors_come_back_with_the_apis_reason(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a", GONE)])
    with BatchJob.create(
        tmp_path / "in.jsonl", tmp_path / "s", allow_unknown=True, **job_options(fake)
    ) as job:
        assert job.plan.outcomes == {"passthrough": 1} and job.plan.unknown_sent == 1
        job.submit()
        job.wait()
        job.write_results(tmp_path / "out.jsonl")
    (line,) = read_results(tmp_path / "out.jsonl")
    assert line["result"]["type"] == "errored"
    assert GONE in line["result"]["error"]["error"]["message"]


@pytest.mark.anyio
async def test_async_api(fake: FakeAnthropic, tmp_path: Path) -> None:
    kinds = write_mixed(tmp_path / "in.jsonl", 25)
    fake.batches.configure(processing_s=0.1, errored=0.2, seed=1)
    events: list[str] = []
    async with await AsyncBatchJob.create(
        tmp_path / "in.jsonl",
        tmp_path / "s",
        limits=BatchLimits(6),
        on_event=events.append,
        **job_options(fake),
    ) as job:
        assert job.plan.requests == 25
        sent = await job.submit()
        assert sent == job.plan.chunks
        assert any("submitted as msgbatch_" in e for e in events)
        assert (await job.wait()).ended
        report = await job.write_results(tmp_path / "out.jsonl")
        plan = await job.retry_errored()
        assert plan is not None
        await job.wait()
        await job.write_results(tmp_path / "out.jsonl")
    assert report.lines == 25
    assert [line["custom_id"] for line in read_results(tmp_path / "out.jsonl")] == list(kinds)
    reopened = await AsyncBatchJob.open(tmp_path / "s", **job_options(fake))
    try:
        assert len(reopened.plans) == 2
        assert (await reopened.status()).ended
    finally:
        await reopened.aclose()


def test_polling_honours_retry_after_and_backs_off(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.batches.configure(processing_s=1.0)
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    options = job_options(fake, poll_interval=0.02, max_poll_interval=0.1)
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **options) as job:
        job.submit()
        fake.faults.add(
            "/v1/messages/batches/msgbatch_*",
            method="GET",
            status=429,
            headers={"retry-after": "0.25"},
        )
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            time.sleep(seconds)

        job._drive().close()
        job._driver = SyncDriver(job._job.api(), sleep=sleep)
        assert job.wait().ended
    assert sleeps[0] == pytest.approx(0.25)  # the server asked for it
    polls = sleeps[1:]
    assert polls and all(0.02 <= s <= 0.1 for s in polls)
    assert any(later > earlier for earlier, later in zip(polls, polls[1:], strict=False))


def test_an_unreachable_api_is_named_in_every_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    events: list[str] = []
    router = LiveRouter(Registry.from_models(lineup()))  # routing needs no network here
    with BatchJob.create(
        tmp_path / "in.jsonl",
        tmp_path / "s",
        router=router,
        base_url=url,
        api_key="k",
        on_event=events.append,
    ) as job:
        job._drive().close()
        job._driver = SyncDriver(job._job.api(), sleep=lambda seconds: None)
        with pytest.raises(BatchAPIError) as failed:
            job.submit()
    where = f"ConnectError ({url}/v1/messages/batches)"
    assert where in str(failed.value)
    retries = [e for e in events if e.endswith("trying again")]
    assert retries and all(e.startswith("submitting r1c1 (lines 1-1): " + where) for e in retries)


def test_an_interrupted_submit_lets_go_of_the_job_at_once(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    # Ctrl-C while a submission waits to try again: the state directory's lock is
    # released when the error leaves `submit`, not when the error is forgotten.
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    fake.faults.add("/v1/messages/batches", method="POST", status=529, times=1)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(fake)) as job:
        job._driver = SyncDriver(job._job.api(), sleep=interrupted)
        with pytest.raises(KeyboardInterrupt) as stopped:
            job.submit()
        with BatchJob.open(tmp_path / "s", **job_options(fake)) as again:
            assert again.submit() == 1  # held by `stopped`'s traceback, it would be busy
        assert stopped.value is not None


def test_a_keyword_a_method_does_not_take_is_refused(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    router = LiveRouter(Registry.from_models(lineup()))
    with pytest.raises(TypeError, match="'poll_every'"):
        BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", router=router, poll_every=3)  # type: ignore[call-arg]
    assert not (tmp_path / "s").exists()
    BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", router=router).close()
    with pytest.raises(TypeError, match="'limits'"):
        BatchJob.open(tmp_path / "s", limits=BatchLimits(2))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'on_event'"):
        BatchJob.dry_run(tmp_path / "in.jsonl", router=router, on_event=print)  # type: ignore[call-arg]
