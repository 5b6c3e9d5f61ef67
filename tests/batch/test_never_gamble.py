"""Batches never gamble, and learn from what comes back errored (issue 16, items 4 and 5).

Sequences against the fake, which validates each item when it processes the batch and
reads a capability its catalogue leaves out as unsupported, as the API does. caproute
reads the same absence as *unknown*: a single request may try such a model once and
learn from the 400, a batch item may not (it would come back errored only when the
batch ends), unless the job allows it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import (
    API_KEY,
    BIG,
    NOBATCH,
    PDF_MESSAGES,
    SMALL,
    item,
    job_options,
    lineup,
    read_results,
    write_jsonl,
)

from caproute import AsyncBatchJob, BatchJob, LiveRouter, Registry
from caproute.cli import main
from caproute.testing import FakeAnthropic, make_model

OLD, PLAIN, READER = "claude-old-1", "claude-plain-2", "claude-reader-3"
"""`OLD`'s listing says nothing about PDFs (unknown to caproute, unsupported at the fake);
`PLAIN` is known not to read them; `READER` is known to."""


@pytest.fixture(scope="module")
def unknown_fake() -> Iterator[FakeAnthropic]:
    models = [
        make_model(OLD, omit=["pdf_input"]),
        make_model(PLAIN, unsupported=["pdf_input"]),
    ]
    with FakeAnthropic(models=models, api_key=API_KEY) as running:
        yield running


@pytest.fixture
def vague(unknown_fake: FakeAnthropic) -> FakeAnthropic:
    unknown_fake.reset()
    return unknown_fake


def _posted(fake: FakeAnthropic) -> list[dict[str, Any]]:
    """Every request item the fake received in a batch creation, in order."""
    return [
        entry
        for r in fake.requests
        if r.method == "POST" and r.path == "/v1/messages/batches" and isinstance(r.body, dict)
        for entry in r.body["requests"]
    ]


def _results(path: Path) -> dict[str, dict[str, Any]]:
    return {line["custom_id"]: line for line in read_results(path)}


def test_an_item_only_a_model_of_unknown_support_could_take_is_refused_locally(
    vague: FakeAnthropic, tmp_path: Path
) -> None:
    write_jsonl(
        tmp_path / "in.jsonl", [item("hello", OLD), item("pdf", OLD, messages=PDF_MESSAGES)]
    )
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(vague)) as job:
        plan = job.plan
        assert plan.outcomes == {"unchanged": 1, "rejected": 1}
        assert (plan.refused, plan.unknown_refused, plan.unknown_sent) == (1, 1, 0)
        (unknown,) = plan.unknowns
        assert unknown.label == f"{OLD}: pdf_input" and unknown.lines == (2,)
        job.submit()
        job.wait()
        job.write_results(tmp_path / "out.jsonl")
    assert [entry["custom_id"] for entry in _posted(vague)] == ["hello"]  # never sent
    refused = _results(tmp_path / "out.jsonl")["pdf"]
    reason = refused["result"]["reason"]
    assert refused["result"]["type"] == "refused"
    assert f"no model is known to take this request ({OLD}: pdf_input: support unknown)" in reason
    assert "--allow-unknown" in reason and "allow_unknown_in_batches" in reason
    assert refused["caproute"]["decision"]["extra"]["unknown_support"] == f"{OLD}: pdf_input"


def test_with_the_opt_in_it_is_sent_then_what_comes_back_is_learned(
    vague: FakeAnthropic, tmp_path: Path
) -> None:
    write_jsonl(
        tmp_path / "in.jsonl", [item("hello", OLD), item("pdf", OLD, messages=PDF_MESSAGES)]
    )
    router = LiveRouter(Registry.from_models(vague.models()))  # what the list says, kept
    with BatchJob.create(
        tmp_path / "in.jsonl",
        tmp_path / "s",
        router=router,
        allow_unknown=True,
        **job_options(vague),
    ) as job:
        plan = job.plan
        assert plan.outcomes == {"unchanged": 2} and plan.unknown_sent == 1
        assert "sent although support is unknown" in plan.summary()
        job.submit()
        job.wait()
        first = job.write_results(tmp_path / "out.jsonl")
        assert first.counts == {"succeeded": 1, "errored": 1}
        errored = _results(tmp_path / "out.jsonl")["pdf"]["result"]["error"]["error"]
        assert errored["type"] == "invalid_request_error"

        retry = job.retry_errored(router=router)
        assert retry is not None
        # Known now to lack PDFs, and the only other model lacks them too: refused here,
        # not sent to the same model for the same refusal.
        assert retry.outcomes == {"rejected": 1} and retry.unknown_refused == 0
        assert retry.chunks == 0
        (learned,) = retry.learned
        assert learned.label == f"{OLD}: pdf_input = False" and learned.lines == (2,)
        job.wait()
        second = job.write_results(tmp_path / "out.jsonl")
    assert second.counts == {"succeeded": 1, "refused": 1}
    assert [entry["custom_id"] for entry in _posted(vague)] == ["hello", "pdf"]  # pdf once
    assert (OLD, "pdf_input") in {(f.model, f.key) for f in router.learned}
    line = _results(tmp_path / "out.jsonl")["pdf"]
    assert line["caproute"]["round"] == 2 and "pdf_input" in line["result"]["reason"]


def test_a_refusal_the_list_does_not_know_of_teaches_the_retry_round(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    # The list keeps claiming what the API now refuses: the errored result must teach the
    # fact, or the retry sends the same item to the same model for the same refusal.
    router = LiveRouter(Registry.from_models(lineup()))  # SMALL: effort.high supported
    lines = [item(f"e{n}", SMALL, output_config={"effort": "high"}) for n in range(3)]
    write_jsonl(tmp_path / "in.jsonl", [item("plain", SMALL), *lines])
    with BatchJob.create(
        tmp_path / "in.jsonl", tmp_path / "s", router=router, **job_options(fake)
    ) as job:
        assert job.plan.outcomes == {"unchanged": 4}
        job.submit()
        fake.update_model(SMALL, unsupported=["effort.high"])  # before the batch runs
        job.wait()
        assert job.write_results(tmp_path / "out.jsonl").counts == {"succeeded": 1, "errored": 3}
        retry = job.retry_errored(router=router)
        assert retry is not None
        assert retry.outcomes == {"adjusted": 3}
        (learned,) = retry.learned
        assert learned.label == f"{SMALL}: effort.high = False" and learned.count == 3
        job.wait()
        assert job.write_results(tmp_path / "out.jsonl").counts == {"succeeded": 4}
    sent = _posted(fake)
    assert [e["custom_id"] for e in sent] == ["plain", "e0", "e1", "e2", "e0", "e1", "e2"]
    for entry in sent[4:]:  # the same model, its effort adjusted to one it takes
        assert entry["params"]["model"] == SMALL
        assert entry["params"]["output_config"]["effort"] not in ("high", "max")
    assert [(f.model, f.key, f.value) for f in router.learned] == [(SMALL, "effort.high", False)]


def test_a_model_retired_meanwhile_is_learned_from_its_404s(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    router = LiveRouter(Registry.from_models(lineup()))  # still lists SMALL as active
    write_jsonl(tmp_path / "in.jsonl", [item("s0", SMALL), item("s1", SMALL), item("b", BIG)])
    with BatchJob.create(
        tmp_path / "in.jsonl", tmp_path / "s", router=router, **job_options(fake)
    ) as job:
        job.submit()
        fake.retire(SMALL)  # before the batch runs: its items come back 404
        job.wait()
        assert job.write_results(tmp_path / "out.jsonl").counts == {"succeeded": 1, "errored": 2}
        retry = job.retry_errored(router=router)
        assert retry is not None and retry.outcomes == {"rerouted": 2}
        (learned,) = retry.learned
        assert learned.label == f"{SMALL}: retired (404 not_found_error)" and learned.count == 2
        job.wait()
        assert job.write_results(tmp_path / "out.jsonl").counts == {"succeeded": 3}
    resent = _posted(fake)[3:]
    assert [e["custom_id"] for e in resent] == ["s0", "s1"]
    assert all(e["params"]["model"] not in (SMALL, NOBATCH) for e in resent)
    assert SMALL in router.retired


def test_unknown_supported_in_the_policy_still_prefers_a_known_model(
    tmp_path: Path,
) -> None:
    models = [
        make_model(OLD, omit=["pdf_input"]),
        make_model(READER),
    ]
    registry = Registry.from_models(models)
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaults: {unknown: supported}\n")
    single = LiveRouter(registry, policy=policy).route(
        item("x", OLD, messages=PDF_MESSAGES)["params"]
    )
    assert (single.decision.outcome, single.decision.model) == ("unchanged", OLD)  # it gambles
    write_jsonl(tmp_path / "in.jsonl", [item("pdf", OLD, messages=PDF_MESSAGES)])
    plan = BatchJob.dry_run(tmp_path / "in.jsonl", router=LiveRouter(registry, policy=policy))
    assert plan.outcomes == {"rerouted": 1} and plan.unknown_refused == plan.unknown_sent == 0
    (reroute,) = plan.reroutes
    assert reroute.label.startswith(f"{OLD} → {READER}")


def test_the_policy_can_allow_unknown_support_in_batches(tmp_path: Path) -> None:
    registry = Registry.from_models([make_model(OLD, omit=["pdf_input"])])
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaults: {allow_unknown_in_batches: true}\n")
    write_jsonl(tmp_path / "in.jsonl", [item("pdf", OLD, messages=PDF_MESSAGES)])
    plan = BatchJob.dry_run(tmp_path / "in.jsonl", router=LiveRouter(registry, policy=policy))
    assert plan.outcomes == {"unchanged": 1} and plan.unknown_sent == 1
    plan = BatchJob.dry_run(tmp_path / "in.jsonl", router=LiveRouter(registry))
    assert plan.outcomes == {"rejected": 1} and plan.unknown_refused == 1


def test_cli_counts_unknown_lines_and_takes_the_opt_in(
    vague: FakeAnthropic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", vague.url)
    lines = [item("a", OLD), item("b", OLD, stream=True)]  # b: no model takes it in a batch
    lines += [item(f"u{n}", OLD, messages=PDF_MESSAGES) for n in range(3)]
    write_jsonl(tmp_path / "in.jsonl", lines)
    args = ["batch", "submit", str(tmp_path / "in.jsonl"), "--dry-run"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "refused              1  (refused locally, never sent)" in out
    assert "unknown              3  (refused locally: no model is known to take them;" in out
    assert f"         3  {OLD}: pdf_input  (lines 3, 4, 5)" in out
    assert "To send: 1 requests in 1 batch" in out
    assert main([*args, "--allow-unknown", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["unknown_sent"], plan["unknown_refused"], plan["sent_requests"]) == (3, 0, 4)
    assert plan["unknowns"] == [{"label": f"{OLD}: pdf_input", "count": 3, "lines": [3, 4, 5]}]


@pytest.mark.anyio
async def test_an_async_job_on_an_async_fetcher_looks_names_up(
    tmp_path: Path,
) -> None:
    from caproute._registry.fetch import AsyncRegistryFetcher

    with FakeAnthropic(
        models=lineup(), api_key=API_KEY, aliases={"claude-small-latest": SMALL}
    ) as fake:
        fetcher = AsyncRegistryFetcher(
            api_key=API_KEY, base_url=fake.url, background=False, cache_file=False
        )
        await fetcher.refresh()
        router = LiveRouter(fetcher)
        lines = [
            item(f"r{n}", "claude-small-latest", output_config={"effort": "max"}) for n in range(3)
        ]
        write_jsonl(tmp_path / "in.jsonl", lines)
        async with await AsyncBatchJob.create(
            tmp_path / "in.jsonl", tmp_path / "s", router=router, **job_options(fake)
        ) as job:
            # Looked up once, then routed like a model it knows: effort adjusted.
            assert job.plan.outcomes == {"adjusted": 3}
            assert fake.count("/v1/models/claude-small-latest") == 1
        await fetcher.aclose()


@pytest.mark.parametrize(
    ("error", "teaches"),
    [
        # About the model: the parameter it refuses.
        ({"type": "invalid_request_error", "message": "effort: not supported by this model"}, True),
        # About the organization (its error code) or the payload (a limit of the content):
        # an errored item like these teaches the retry round nothing about the model.
        (
            {
                "type": "invalid_request_error",
                "message": "output_config.effort 'high' is not available",
                "details": {"error_code": "organization_url_fetch_disabled"},
            },
            False,
        ),
        (
            {
                "type": "invalid_request_error",
                "message": "messages.0.content.0.image.source.base64: image exceeds 5 MB maximum",
            },
            False,
        ),
    ],
)
def test_an_errored_item_teaches_only_what_is_about_the_model(
    error: dict[str, Any], teaches: bool
) -> None:
    from caproute._batch.lessons import lesson

    router = LiveRouter(Registry.from_models(lineup()))
    image = {"type": "base64", "media_type": "image/png", "data": "AAAA"}
    sent = item("x", SMALL, output_config={"effort": "high"})["params"]
    blocks = [{"type": "image", "source": image}, {"type": "text", "text": "What is this?"}]
    sent["messages"] = [{"role": "user", "content": blocks}]
    learned = lesson(router.view(), {"type": "error", "error": error}, sent, SMALL)
    assert (learned is not None) is teaches


@pytest.mark.anyio
async def test_an_async_retry_routes_on_what_an_async_fetcher_holds(tmp_path: Path) -> None:
    # Routing starts from the router's view as an async single request's does (awaited):
    # a router on an async fetcher that holds live data but was never read yet routes
    # the retry round on that data, not on the offline start-up registry (which says
    # this model takes batches; the live list says it does not).
    from caproute._registry.fetch import AsyncRegistryFetcher

    listed = "claude-opus-4-6"  # a model the offline registry knows too
    models = [*lineup(), make_model(listed, unsupported=["pdf_input", "batch"])]
    write_jsonl(tmp_path / "in.jsonl", [item("a", listed), item("b", listed)])
    with FakeAnthropic(models=models, api_key=API_KEY) as fake:
        fake.batches.configure(processing_s=0.0, errored=1.0, seed=1)
        async with await AsyncBatchJob.create(
            tmp_path / "in.jsonl",
            tmp_path / "s",
            router=LiveRouter(Registry.from_models(models)),
            **job_options(fake),
        ) as job:
            assert job.plan.outcomes == {"rerouted": 2}
            await job.submit()
            await job.wait()
        # Resumed in another process, with a router of its own.
        fetcher = AsyncRegistryFetcher(
            api_key=API_KEY, base_url=fake.url, background=False, cache_file=False
        )
        await fetcher.refresh()
        async with await AsyncBatchJob.open(tmp_path / "s", **job_options(fake)) as resumed:
            retry = await resumed.retry_errored(router=LiveRouter(fetcher))
        await fetcher.aclose()
    assert retry is not None and retry.outcomes == {"rerouted": 2}


def test_what_a_retry_round_learned_is_kept_for_a_resumed_job(tmp_path: Path) -> None:
    # The router's listing says OLD takes effort "max"; the API refuses it. Round 2
    # learns that from round 1's errored results and lowers the effort; the items
    # expire. Round 3, resumed by another process (a router that learned nothing), must
    # not send them to OLD with "max" again for the same refusal.
    listing = [make_model(OLD), make_model(READER)]
    truth = [make_model(OLD, unsupported=["effort.max"]), make_model(READER)]
    lines = [item(f"e{n}", OLD, output_config={"effort": "max"}) for n in range(2)]
    write_jsonl(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"

    def fresh_router() -> LiveRouter:
        return LiveRouter(Registry.from_models(listing))

    with FakeAnthropic(models=truth, api_key=API_KEY) as fake:
        with BatchJob.create(
            tmp_path / "in.jsonl", tmp_path / "s", router=fresh_router(), **job_options(fake)
        ) as job:
            assert job.plan.outcomes == {"unchanged": 2}
            job.submit()
            job.wait()
            assert job.write_results(out).counts == {"errored": 2}
            fake.batches.configure(expired=1.0)
            second = job.retry_errored(router=fresh_router())
            assert second is not None and second.outcomes == {"adjusted": 2}
            job.wait()
            assert job.write_results(out).counts == {"expired": 2}
        with BatchJob.open(tmp_path / "s", **job_options(fake)) as resumed:
            third = resumed.retry_errored(router=fresh_router())
        efforts = [entry["params"]["output_config"]["effort"] for entry in _posted(fake)]
    assert third is not None and third.outcomes == {"adjusted": 2}
    assert efforts[:2] == ["max", "max"] and "max" not in efforts[2:]
