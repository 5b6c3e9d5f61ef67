"""`caproute route`: the decision and the body diff, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caproute import Registry, RegistrySource
from caproute._registry.snapshot import embedded_registry
from caproute.cli import main

EXAMPLES = Path(__file__).parents[2] / "examples" / "requests"

MODELS = [
    {
        "id": "small-1",
        "line": "x",
        "lifecycle": "active",
        "max_tokens": 4_000,
        "capabilities": {"image_input": {"supported": False}},
    },
    {
        "id": "big-1",
        "line": "x",
        "lifecycle": "active",
        "max_tokens": 64_000,
        # Thinking stated (and off by default): a model that might always think would
        # make caproute drop top_k under any API version.
        "capabilities": {
            "image_input": {"supported": True},
            "thinking": {"supported": True, "types": {"disabled": {"supported": True}}},
        },
    },
]


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    registry = Registry.from_models(MODELS, source=RegistrySource("static"))
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry.to_json()))
    return path


def _write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


IMAGE_REQUEST = {
    "model": "small-1",
    "max_tokens": 10_000,
    "messages": [
        {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}
    ],
}


def test_prints_the_decision_and_the_diff(
    tmp_path: Path, snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = _write(tmp_path, "req.json", IMAGE_REQUEST)
    assert main(["route", str(request), "--snapshot", str(snapshot)]) == 0
    out = capsys.readouterr().out
    assert "outcome:    rerouted" in out
    assert "✗ small-1: lacks image_input (messages[0].content[0])" in out
    assert '-  "model": "small-1"\n+  "model": "big-1"' in out
    assert "--- request\n+++ routed" in out


def test_json_output(tmp_path: Path, snapshot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = _write(tmp_path, "req.json", IMAGE_REQUEST)
    assert main(["route", str(request), "--snapshot", str(snapshot), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["decision"]["outcome"] == "rerouted"
    assert data["body"]["model"] == "big-1"


def test_jsonl_is_one_object_per_file_whatever_the_count(
    tmp_path: Path, snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _write(tmp_path, "image.json", IMAGE_REQUEST)
    plain = _write(tmp_path, "plain.json", {**IMAGE_REQUEST, "messages": [
        {"role": "user", "content": "hi"}]})  # fmt: skip
    by_count = {}
    for files in ([image], [image, plain]):
        argv = ["route", *map(str, files), "--snapshot", str(snapshot)]
        assert main([*argv, "--jsonl"]) == 0
        lines = capsys.readouterr().out.splitlines()
        by_count[len(files)] = [json.loads(line) for line in lines]
        assert [list(d) for d in by_count[len(files)]] == [["file", "decision", "body"]] * len(
            files
        )
        assert [d["file"] for d in by_count[len(files)]] == list(map(str, files))
    assert by_count[2][0] == by_count[1][0]
    assert [d["decision"]["outcome"] for d in by_count[2]] == ["rerouted", "adjusted"]

    # --json keeps its shapes: an object for one file (now naming it), a list for several.
    assert main(["route", str(image), "--snapshot", str(snapshot), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == by_count[1][0]
    assert main(["route", str(image), str(plain), "--snapshot", str(snapshot), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == by_count[2]


def test_policy_and_rejection_exit_status(
    tmp_path: Path, snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = _write(tmp_path, "req.json", IMAGE_REQUEST)
    policy = _write(tmp_path, "p.yaml", "version: 1\ndefaults:\n  actions: {image_input: reject}\n")
    code = main(["route", str(request), "--snapshot", str(snapshot), "--policy", str(policy)])
    assert code == 1
    out = capsys.readouterr().out
    assert "outcome:    rejected" in out
    assert "body: unchanged" in out


def test_api_version_and_endpoint(
    tmp_path: Path, snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"model": "big-1", "messages": [{"role": "user", "content": "hi"}], "top_k": 3}
    request = _write(tmp_path, "req.json", body)
    argv = ["route", str(request), "--snapshot", str(snapshot), "--endpoint", "count_tokens"]
    assert main([*argv, "--api-version", "2026-10-21"]) == 0
    assert "top_k: 3 → (absent)" in capsys.readouterr().out
    assert main(argv) == 0
    assert "outcome:    unchanged" in capsys.readouterr().out


def test_malformed_json_is_one_line_with_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = _write(tmp_path, "bad.json", '{\n  "model": "x",\n  "max_tokens": ,\n}')
    assert main(["route", str(request)]) == 1
    err = capsys.readouterr().err
    assert err == f"caproute: error: {request}:3:17: invalid JSON: Expecting value\n"


def test_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", str(tmp_path / "nope.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("caproute: error: cannot read ") and err.count("\n") == 1


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_example_routes_against_the_embedded_snapshot(example: Path) -> None:
    from caproute._core.engine import PolicyEngine
    from caproute.cli.route import guess_endpoint

    body = json.loads(example.read_text())
    version = "2026-10-21" if "new-version" in example.stem else None
    result = PolicyEngine(embedded_registry()).route(
        body, endpoint=guess_endpoint(body), api_version=version
    )
    assert result.decision.outcome != "passthrough", result.decision.reason
    assert result.decision.needs or result.decision.changes or result.decision.rejected


def test_the_demo_example_needs_a_reroute_and_an_adjustment() -> None:
    from caproute._core.engine import PolicyEngine

    body = json.loads((EXAMPLES / "retired-with-thinking.json").read_text())
    decision = PolicyEngine(embedded_registry()).route(body).decision
    assert decision.outcome == "rerouted"
    assert [c.action for c in decision.changes][0] == "reroute"
    assert any(c.action == "adjust" for c in decision.changes)


def test_the_demo_request_is_the_example_file() -> None:
    from caproute.cli.route import DEMO_EXAMPLE, DEMO_REQUEST

    assert json.loads((EXAMPLES.parents[1] / DEMO_EXAMPLE).read_text()) == DEMO_REQUEST


def test_demo_prints_the_routed_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--width", "100"]) == 0
    out = capsys.readouterr().out
    assert "Routing examples/requests/retired-with-thinking.json" in out
    assert "outcome:    rerouted" in out
    assert "--- request\n+++ routed" in out


def test_reads_stdin_and_guesses_a_batch(
    snapshot: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    batch = {"requests": [{"custom_id": "a", "params": IMAGE_REQUEST}]}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(batch)))
    assert main(["route", "-", "--snapshot", str(snapshot)]) == 0
    out = capsys.readouterr().out
    assert "[a] rerouted small-1 → big-1" in out
    assert '+        "model": "big-1"' in out
