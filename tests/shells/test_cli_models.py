"""`caproute models`, `caproute snapshot` and `caproute demo`, run through `main(argv)`."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from caproute import RegistrySource, embedded_registry, load_snapshot, save_snapshot
from caproute._core.registry import Registry
from caproute._registry.snapshot import user_cache_path
from caproute.cli import main
from caproute.cli.table import render_registry
from caproute.testing import FakeAnthropic, make_model

KEY = "sk-ant-cli-test-SECRET"


@pytest.fixture
def isolated_environment(tmp_path: Path) -> Path:
    """This test's user cache file (tests/conftest.py points XDG_CACHE_HOME at its folder)."""
    return tmp_path / "xdg-cache" / "caproute" / "registry.json"


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    models = [
        make_model("claude-cli-big-2", unsupported=["effort.xhigh", "thinking.types.enabled"]),
        make_model("claude-cli-small-1", max_input_tokens=200_000, max_tokens=64_000),
    ]
    return {"models": models, "api_key": KEY}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("caproute: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err
    assert KEY not in err


def table_lines(registry: Registry, *, width: int) -> list[str]:
    """The table's lines (header, rule, rows) of `render_registry`, without heading and legend."""
    return render_registry(registry, width=width).split("\n\n")[1].splitlines()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the table -----------------------------------------------------------------------------


def test_models_prints_the_embedded_table_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "models", "--width", "120")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{len(embedded_registry())} models from embedded (lineup of 2026-11-26)"
    headers = ["MODEL", "LIFECYCLE", "CTX", "OUT", "FLAGS", "TOOLS", "EDITS", "EFFORT", "THINKING"]
    assert lines[2].split() == headers
    haiku = next(line for line in lines if line.startswith("claude-haiku-4-5-20251001"))
    haiku_cells = ["claude-haiku-4-5-20251001", "active", "200K", "64K", "bcip??", "?", "?", "-"]
    assert haiku.split() == [*haiku_cells, "enabled+?"]
    assert all(len(line) <= 120 for line in lines)
    assert "b batch" in out


def test_table_spells_out_levels_and_types_and_adds_the_name_when_it_fits() -> None:
    r = Registry.from_models(
        [
            make_model("claude-x-2", unsupported=["effort.xhigh", "thinking.types.enabled"]),
            make_model("claude-y-1", capabilities={"effort": {"supported": False}}),
        ]
    )
    wide = table_lines(r, width=200)
    assert wide[0].split()[:3] == ["MODEL", "NAME", "LIFECYCLE"]
    assert wide[2].split() == [
        "claude-x-2", "X", "2", "active", "1M", "128K", "bcipsx", "code,search",
        "think,tools,compact", "low,med,high,max", "adaptive,disabled,between_tools",
    ]  # fmt: skip
    y_cells = ["claude-y-1", "Y", "1", "active", "1M", "128K", "??????", "?", "?", "-", "?"]
    assert wide[3].split() == y_cells
    narrower = table_lines(r, width=105)
    assert "NAME" not in narrower[0]
    assert narrower[2].split()[-4:] == [
        "all",
        "all",
        "low,med,high,max",
        "adaptive,disabled,between_tools",
    ]
    # Too narrow for one line per model: the lists go on a line of their own, labelled.
    stacked = table_lines(r, width=60)
    assert stacked[0].split() == ["MODEL", "LIFECYCLE", "CTX", "OUT", "FLAGS"]
    assert stacked[2].split() == ["claude-x-2", "active", "1M", "128K", "bcipsx"]
    assert stacked[3:6] == [
        "  tools:code,search  edits:think,tools,compact",
        "  effort:low,med,high,max",
        "  thinking:adaptive,disabled,between_tools",
    ]
    assert stacked[7] == "  tools:?  edits:?  effort:-  thinking:?"


def test_models_json_is_the_snapshot_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    document = json.loads(out)
    # The snapshot document, with the (here empty) tombstones and learned facts present.
    assert document == {**embedded_registry().to_json(), "tombstones": {}, "learned": []}
    assert list(document)[-2:] == ["tombstones", "learned"]
    assert Registry.from_json(document) == embedded_registry()


def test_models_from_a_snapshot_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = Registry.from_models(
        [make_model("claude-file-1")], source=RegistrySource("live", fetched_at=0.0)
    )
    path = save_snapshot(registry, tmp_path / "snap.json")
    code, out, _ = run(capsys, "models", "--snapshot", str(path), "--width", "120")
    assert code == 0
    assert out.startswith(f"1 model from snapshot ({path}, ")
    assert "claude-file-1" in out


def test_models_prefers_the_user_cache_file(
    isolated_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_snapshot(Registry.from_models([make_model("claude-cached-1")]), isolated_environment)
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert out.startswith(f"1 model from cache ({isolated_environment})")


# -- live ----------------------------------------------------------------------------------------


def test_models_live_fetches_and_caches(
    fake: FakeAnthropic,
    isolated_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    code, out, err = run(capsys, "models", "--live", "--base-url", fake.url, "--width", "120")
    assert (code, err) == (0, "")
    # The embedded lineup's models the fake doesn't list are kept (unlisted, not retired).
    unlisted = len(embedded_registry())
    assert out.startswith(f"2 models (+{unlisted} no longer listed) from live ({fake.url}, 0s old)")
    assert "claude-cli-small-1" in out and "200K" in out
    cache = user_cache_path(fake.url, KEY)  # one file per base URL and key
    assert cache.parent == isolated_environment.parent
    assert load_snapshot(cache).ids == ("claude-cli-big-2", "claude-cli-small-1")
    assert KEY not in out and KEY not in cache.read_text()
    assert not isolated_environment.exists()  # the public API's cache is untouched

    # Offline, the same endpoint's cache is what `models --base-url` shows.
    code, out, err = run(capsys, "models", "--base-url", fake.url, "--width", "120")
    assert (code, err) == (0, "")
    assert out.startswith(f"2 models (+{unlisted} no longer listed) from cache")


def test_snapshot_saves_a_live_fetch(
    fake: FakeAnthropic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    out_file = tmp_path / "out" / "registry.json"
    code, out, _ = run(capsys, "snapshot", "--out", str(out_file))
    assert code == 0
    assert out == f"wrote 2 models from {fake.url} to {out_file}\n"
    saved = load_snapshot(out_file)
    assert saved.ids == ("claude-cli-big-2", "claude-cli-small-1")
    assert saved.source.fetched_at is not None
    assert KEY not in out_file.read_text()


# -- errors: one line, no traceback ---------------------------------------------------------


def test_live_without_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "models", "--live")
    assert_one_line_error(code, err, "no API key", "ANTHROPIC_API_KEY")


def test_live_with_a_rejected_key(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong")
    code, _, err = run(capsys, "snapshot", "--out", "x.json", "--base-url", fake.url)
    assert_one_line_error(code, err, "HTTP 401", "authentication_error")
    assert "sk-ant-wrong" not in err


def test_live_with_the_network_down(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    url = f"http://127.0.0.1:{closed_port()}"
    code, _, err = run(capsys, "models", "--live", "--base-url", url, "--retries", "0")
    assert_one_line_error(code, err, f"cannot reach the Models API at {url}", "ConnectError")


def test_corrupt_snapshot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"format": "caproute-registry/1", "models": [')
    code, _, err = run(capsys, "models", "--snapshot", str(path))
    assert_one_line_error(code, err, str(path), "not valid JSON")


def test_missing_snapshot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "models", "--snapshot", str(tmp_path / "nope.json"))
    assert_one_line_error(code, err, "snapshot file not found")


def test_negative_retries(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "models", "--live", "--retries", "-1")
    assert_one_line_error(code, err, "--retries must be 0 or more")


# -- demo ----------------------------------------------------------------------------------


def test_demo_prints_the_embedded_table_and_says_so(
    isolated_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Even with a user cache present, the demo shows the embedded lineup.
    save_snapshot(Registry.from_models([make_model("claude-cached-1")]), isolated_environment)
    code, out, err = run(capsys, "demo", "--width", "120")
    assert (code, err) == (0, "")
    assert out.startswith("The model registry embedded in caproute: ")
    assert "as publicly documented on 2026-11-26" in out
    assert "Offline, no API key." in out
    assert "claude-opus-5-5" in out and "claude-cached-1" not in out
    table = render_registry(embedded_registry(), width=120).split("\n\n")[1]
    assert table in out


def test_table_lists_levels_the_api_adds_later() -> None:
    model = make_model("claude-f-1", unsupported=["effort.low"])
    model["capabilities"]["effort"]["ultra"] = {"supported": True}
    table = table_lines(Registry.from_models([model]), width=200)
    assert "med,high,xhigh,max,ultra" in table[2].split()
