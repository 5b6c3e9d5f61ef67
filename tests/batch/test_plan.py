"""Planning without the network: line checks, routing summary, chunking, the state dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch_helpers import BIG, NOBATCH, PDF_MESSAGES, SMALL, item, lineup, write_jsonl

from caproute import (
    BatchInputError,
    BatchJob,
    BatchLimits,
    BatchPlan,
    LiveRouter,
    Policy,
    Registry,
)
from caproute._batch.input import parse_line, read_lines
from caproute._batch.store import StateDir
from caproute.testing import make_model

ROUTER = LiveRouter(Registry.from_models(lineup()))


def _plan(path: Path, **kw: object) -> BatchPlan:
    return BatchJob.dry_run(path, router=ROUTER, **kw)  # type: ignore[arg-type]


# -- line checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json", "invalid JSON at column 1"),
        (b'{"custom_id": "a", "params": {"x": NaN}}', "NaN is not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got an array"),
        (b'{"params": {}}', "custom_id: missing"),
        (b'{"custom_id": 7, "params": {}}', "custom_id: expected a string, got a number"),
        (b'{"custom_id": "", "params": {}}', "must be 1-64 characters"),
        (b'{"custom_id": "' + b"x" * 65 + b'", "params": {}}', "must be 1-64 characters"),
        (b'{"custom_id": "a b", "params": {}}', "must be 1-64 characters"),
        (b'{"custom_id": "caf\xc3\xa9", "params": {}}', "must be 1-64 characters"),
        (b'{"custom_id": "a"}', "params: missing (custom_id 'a')"),
        (b'{"custom_id": "a", "params": []}', "params: expected a JSON object, got an array"),
        (b'{"custom_id": "a", "params": {}, "extra": 1}', "unknown key 'extra'"),
        (b'{"custom_id": "a", "params": {}}\xff', "not UTF-8 text"),
        (b'\xef\xbb\xbf{"custom_id": "a", "params": {}}', "byte order mark (U+FEFF)"),
    ],
)
def test_bad_lines(raw: bytes, fragment: str) -> None:
    problem = parse_line(raw)
    assert isinstance(problem, str)
    assert fragment in problem


def test_good_line() -> None:
    params = {"model": "m", "max_tokens": 1, "messages": []}
    assert parse_line(json.dumps({"custom_id": "A-z_09", "params": params}).encode()) == (
        "A-z_09",
        params,
    )
    assert parse_line(json.dumps({"custom_id": "x" * 64, "params": params}).encode()) == (
        "x" * 64,
        params,
    )


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "params.model: missing or not a string (custom_id 'a')"),
        ({"model": "m", "max_tokens": 1}, "params.messages: missing or not a list"),
        ({"model": "m", "messages": []}, "params.max_tokens: missing or not an integer"),
        ({"model": 7, "max_tokens": 1, "messages": []}, "params.model: missing or not a string"),
    ],
)
def test_params_that_are_no_messages_request_make_a_bad_line(
    tmp_path: Path, params: dict[str, object], fragment: str
) -> None:
    # The API accepts such an item and errors it only when the batch is processed.
    write_jsonl(tmp_path / "in.jsonl", [item("ok"), {"custom_id": "a", "params": params}])
    with pytest.raises(BatchInputError) as caught:
        _plan(tmp_path / "in.jsonl")
    (problem,) = caught.value.problems
    assert problem.line == 2 and fragment in problem.message
    assert f"in.jsonl:2: {fragment}" in str(caught.value)


def test_read_lines_numbers_offsets_and_blank_lines(tmp_path: Path) -> None:
    data = b'{"a":1}\r\n\n   \n{"b":2}\n{"c":3}'
    (tmp_path / "f").write_bytes(data)
    lines = list(read_lines(tmp_path / "f"))
    assert [(entry.number, entry.raw) for entry in lines] == [
        (1, b'{"a":1}'),
        (4, b'{"b":2}'),
        (5, b'{"c":3}'),
    ]
    for entry in lines:
        assert data[entry.offset : entry.offset + len(entry.raw)] == entry.raw


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path: Path) -> None:
    data = b'\xef\xbb\xbf{"a":1}\r\n{"b":2}'
    (tmp_path / "f").write_bytes(data)
    lines = list(read_lines(tmp_path / "f"))
    assert [(entry.number, entry.offset, entry.raw) for entry in lines] == [
        (1, 3, b'{"a":1}'),
        (2, 12, b'{"b":2}'),
    ]


def test_every_bad_line_is_reported_with_its_number(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "in.jsonl",
        [item("a"), "oops", item("b"), {"custom_id": "bad id", "params": {}}, item("a")],
    )
    with pytest.raises(BatchInputError) as caught:
        BatchJob.create(tmp_path / "in.jsonl", tmp_path / "state", router=ROUTER)
    error = caught.value
    assert [(p.line, p.message.split(":")[0]) for p in error.problems] == [
        (2, "invalid JSON at column 1"),
        (4, "custom_id 'bad id'"),
        (5, "custom_id 'a' is also on line 1; custom_ids must be unique"),
    ]
    text = str(error)
    assert text.startswith(f"{tmp_path / 'in.jsonl'}: 3 bad lines, nothing submitted")
    assert f"{tmp_path / 'in.jsonl'}:5: custom_id 'a' is also on line 1" in text
    assert not (tmp_path / "state" / "rounds" / "1").exists()  # nothing planned


def test_the_error_lists_twenty_and_counts_the_rest(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", ["x"] * 25)
    with pytest.raises(BatchInputError) as caught:
        _plan(tmp_path / "in.jsonl")
    assert caught.value.total == 25
    assert str(caught.value).endswith("... and 5 more bad lines")


def test_an_empty_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("\n\n")
    with pytest.raises(BatchInputError, match="holds no requests"):
        _plan(tmp_path / "in.jsonl")


# -- routing summary ---------------------------------------------------------------------------


def test_summary_names_reroutes_adjustments_and_refusals(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "in.jsonl",
        [
            item("u1"),
            item("a1", SMALL, output_config={"effort": "max"}),
            item("r1", NOBATCH),
            item("r2", NOBATCH),
            item("x1", BIG, messages=PDF_MESSAGES),
            item("p1", "claude-who-1"),
        ],
    )
    plan = _plan(tmp_path / "in.jsonl")
    assert plan.outcomes == {"unchanged": 1, "adjusted": 1, "rerouted": 2, "rejected": 2}
    assert plan.refused == 2 and plan.unknown_refused == 1
    assert plan.sent_requests == 4 and plan.chunks == 1
    (reroute,) = plan.reroutes
    assert reroute.count == 2 and reroute.lines == (3, 4)
    assert reroute.label.startswith(f"{NOBATCH} → {BIG}: ")
    assert "batch" in reroute.label
    (adjust,) = plan.adjustments
    assert adjust.label.startswith("adjust output_config.effort: ") and adjust.lines == (2,)
    (refusal,) = plan.refusals
    assert "pdf_input" in refusal.label and refusal.lines == (5,)
    (unknown,) = plan.unknowns
    assert unknown.label.startswith("claude-who-1: unknown to the registry") and unknown.lines == (
        6,
    )
    text = plan.summary()
    for fragment in (
        "rerouted",
        "refused              1  (refused locally, never sent)",
        "unknown              1  (refused locally: no model is known to take them",
        "Refused:",
        "line 5",
        "Unknown support:",
        "line 6",
        "To send: 4 requests in 1 batch",
    ):
        assert fragment in text
    assert BatchPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_refused_lines_are_recorded_with_their_reason(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a"), item("x", BIG, messages=PDF_MESSAGES)])
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", router=ROUTER) as job:
        assert job.plan.refused == 1
    (entry,) = [
        json.loads(line)
        for line in (tmp_path / "s/rounds/1/refused.jsonl").read_text().split("\n")
        if line
    ]
    assert entry["line"] == 2 and entry["custom_id"] == "x" and "pdf_input" in entry["reason"]
    body = json.loads((tmp_path / "s/rounds/1/chunk-000001.body.json").read_text())
    assert [r["custom_id"] for r in body["requests"]] == ["a"]


def test_a_request_too_big_for_any_batch_is_refused(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("small"), item("huge", BIG, system="x" * 5000)])
    plan = _plan(tmp_path / "in.jsonl", limits=BatchLimits(max_bytes=2000))
    assert plan.refused == 1
    assert "bytes; a batch may be at most 2,000 bytes" in plan.refusals[0].label


# -- chunks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_requests", "max_bytes"), [(7, 256_000_000), (100, 1500), (3, 900)])
def test_chunks_respect_both_limits(tmp_path: Path, max_requests: int, max_bytes: int) -> None:
    items = [item(f"r{n}", system="y" * (n % 13) * 10) for n in range(50)]
    write_jsonl(tmp_path / "in.jsonl", items)
    limits = BatchLimits(max_requests, max_bytes)
    with BatchJob.create(
        tmp_path / "in.jsonl", tmp_path / "s", router=ROUTER, limits=limits
    ) as job:
        records = StateDir(tmp_path / "s").records()
        assert job.plan.chunks == len(records) > 1
    seen = []
    for record in records:
        raw = (tmp_path / "s" / "rounds" / "1" / f"chunk-{record.chunk:06d}.body.json").read_bytes()
        body = json.loads(raw)
        assert len(raw) == record.bytes <= max_bytes
        assert len(body["requests"]) == record.requests <= max_requests
        ids = [r["custom_id"] for r in body["requests"]]
        assert record.first_line == int(ids[0][1:]) + 1 and record.last_line == int(ids[-1][1:]) + 1
        seen += ids
    assert seen == [f"r{n}" for n in range(50)]  # in order, none lost, none twice


def test_limits_are_checked() -> None:
    BatchLimits(100_000, 256_000_000)
    for bad in ((0, 1000), (100_001, 1000), (10, 10), (10, 256_000_001)):
        with pytest.raises(ValueError):
            BatchLimits(*bad)


def test_dry_run_keeps_nothing(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item("a")])
    before = set(tmp_path.iterdir())
    assert _plan(tmp_path / "in.jsonl").requests == 1
    assert set(tmp_path.iterdir()) == before


def test_a_name_only_the_models_api_knows_is_looked_up_once_and_routed(tmp_path: Path) -> None:
    from caproute._registry.fetch import RegistryFetcher
    from caproute.testing import FakeAnthropic

    with FakeAnthropic(models=lineup(), aliases={"claude-small-latest": SMALL}) as fake:
        fetcher = RegistryFetcher(
            api_key=fake.api_key, base_url=fake.url, background=False, cache_file=False
        )
        router = LiveRouter(fetcher)
        fetcher.refresh()
        lines = [
            item(f"r{n}", "claude-small-latest", output_config={"effort": "max"}) for n in range(5)
        ]
        lines.append(item("typo", "claude-smal-1"))
        write_jsonl(tmp_path / "in.jsonl", lines)
        plan = BatchJob.dry_run(tmp_path / "in.jsonl", router=router)
        assert fake.count("/v1/models/claude-small-latest") == 1
        assert fake.count("/v1/models/claude-smal-1") == 1
        fetcher.close()
    # The alias's model has no effort max: adjusted locally rather than sent as is; the
    # typo stays unknown after its look-up, and a batch never gambles on it.
    assert plan.outcomes == {"adjusted": 5, "rejected": 1} and plan.unknown_refused == 1


class _ColdFetcher:
    """A fetcher whose first live fetch never lands: routing waits for it (bounded)."""

    may_go_live = True

    def __init__(self) -> None:
        self.waits = 0

    def current(self) -> Registry:
        return Registry.from_models(lineup())  # not live data

    def refresh(self) -> Registry:
        return self.current()

    def wait_live(self, timeout: float) -> None:
        self.waits += 1


def test_a_cold_start_is_waited_for_once_per_round_not_once_per_line(tmp_path: Path) -> None:
    # The flow's Refresh: a decision on snapshot data waits for the live fetch, once.
    fetcher = _ColdFetcher()
    write_jsonl(tmp_path / "in.jsonl", [item(f"r{n}") for n in range(20)])
    plan = BatchJob.dry_run(tmp_path / "in.jsonl", router=LiveRouter(fetcher))
    assert plan.outcomes == {"unchanged": 20}
    assert fetcher.waits == 1


def test_what_was_sent_is_rebuilt_from_the_line_and_its_recorded_decision() -> None:
    # A retry attributes an errored result against the params as sent: the line's own,
    # with the decision's changes applied (a reroute, a stripped tool flag, an effort).
    from caproute._batch.lessons import sent_params

    tools = [
        {"name": "a", "input_schema": {"type": "object"}},
        {"name": "b", "input_schema": {"type": "object"}, "strict": True},
    ]
    registry = Registry.from_models(
        [*lineup(), make_model("claude-plain-3", unsupported=["structured_outputs", "effort.max"])]
    )
    strip = Policy.from_dict(
        {"version": 1, "defaults": {"actions": {"structured_outputs": "strip"}}}
    )
    expected = {
        SMALL: ["output_config.effort"],
        "claude-plain-3": ["output_config.effort", "tools[1].strict"],
        NOBATCH: ["model"],
    }
    for requested, paths in expected.items():
        params = item("x", requested, tools=tools, output_config={"effort": "max"})["params"]
        body = {"requests": [{"custom_id": "x", "params": params}]}
        result = LiveRouter(registry, policy=strip).route(body, endpoint="batch")
        decision = result.decision.items[0][1]
        assert [c.path for c in decision.changes] == paths
        recorded = json.loads(json.dumps(decision.to_dict()))
        assert sent_params(params, recorded) == result.body["requests"][0]["params"]
    assert params["output_config"] == {"effort": "max"}  # the line itself is untouched


def test_a_retry_round_routes_every_line_with_what_any_errored_line_taught(
    tmp_path: Path,
) -> None:
    # Line 1 expired (it teaches nothing); line 2 errored for a parameter line 1 carries
    # too. Both are planned with the fact, not only the lines after the one that taught it.
    from caproute._batch.rounds import RouterLink, RoutingSettings, plan_retry_round

    old = "claude-old-1"
    listing = Registry.from_models([make_model(old), make_model("claude-reader-3")])
    lines = [item(f"e{n}", old, output_config={"effort": "max"}) for n in range(2)]
    write_jsonl(tmp_path / "in.jsonl", lines)
    BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", router=LiveRouter(listing)).close()
    message = "output_config.effort: 'max' is not supported by this model"
    refusal = {"type": "invalid_request_error", "message": message}
    store = StateDir(tmp_path / "s")
    conn = store.connect()
    try:
        conn.executemany(
            "INSERT INTO results(custom_id, round, type, body) VALUES (?, 1, ?, ?)",
            [
                ("e0", "expired", '{"type": "expired"}'),
                ("e1", "errored", json.dumps({"type": "errored", "error": {"error": refusal}})),
            ],
        )
        link = RouterLink(LiveRouter(listing))
        settings = RoutingSettings("2023-06-01", (), BatchLimits())
        plan = plan_retry_round(store, conn, link, tmp_path / "in.jsonl", 2, settings)
    finally:
        conn.close()
    assert plan is not None and plan.outcomes == {"adjusted": 2}
    (learned,) = plan.learned
    assert learned.label == f"{old}: effort.max = False" and learned.lines == (2,)
