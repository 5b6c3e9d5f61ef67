"""`caproute check` / `caproute schema` and `load_policy`: the file-reading shell of policies."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from caproute import Policy, PolicyError, Registry, RegistrySource, load_policy
from caproute._core.policy import policy_json_schema
from caproute._core.policy_check import registry_warnings
from caproute._core.policy_fields import CAPABILITY_NAMES
from caproute._registry.snapshot import embedded_registry
from caproute.cli import main

ROOT = Path(__file__).parent.parent.parent
EXAMPLES = sorted((ROOT / "examples" / "policies").glob("*.yaml"))
FIXTURES = ROOT / "tests" / "fixtures" / "policies"

GOOD = """\
version: 1
routes:
  - name: haiku
    match: {model: "claude-haiku-*"}
    candidates: [requested, claude-sonnet-5-5]
  - name: opus
    match: {model: "claude-opus-*"}
    candidates: [claude-opus-4-1, claude-mythos-*]
"""


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    registry = Registry.from_models(
        [
            {"id": "claude-sonnet-5-5", "lifecycle": "active"},
            {"id": "claude-haiku-5-5", "lifecycle": "active"},
            {"id": "claude-opus-4-1-20250805", "lifecycle": "retired"},
        ],
        source=RegistrySource("static"),
    )
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry.to_json()))
    return path


def _write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- caproute check -------------------------------------------------------------------------------


def test_check_ok_without_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, GOOD)
    assert main(["check", str(path), "--no-registry"]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("ok: 2 routes\n", "")


def test_check_warns_against_a_snapshot(
    tmp_path: Path, snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, GOOD)
    assert main(["check", str(path), "--snapshot", str(snapshot)]) == 0
    out, err = capsys.readouterr()
    assert out == f"ok: 2 routes, 2 warnings (registry: snapshot ({snapshot}))\n"
    assert err.splitlines() == [
        f"{path}:8:17: warning: route 'opus' has no usable candidate: every model it lists is "
        "unknown to the registry or retired or deprecated (at routes[1].candidates)",
        f"{path}:8:35: warning: candidate 'claude-mythos-*' matches no model in the registry "
        "(at routes[1].candidates[1])",
    ]


def test_check_strict_fails_on_warnings(
    tmp_path: Path, snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, GOOD)
    assert main(["check", str(path), "--snapshot", str(snapshot), "--strict"]) == 1
    clean = _write(tmp_path, GOOD.split("  - name: opus")[0], "clean.yaml")
    assert main(["check", str(clean), "--snapshot", str(snapshot), "--strict"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(f"ok: 1 route, 0 warnings (registry: snapshot ({snapshot}))\n")


def test_check_uses_the_best_offline_registry_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    path = _write(tmp_path, GOOD)
    main(["check", str(path)])
    out = capsys.readouterr().out
    assert out.startswith("ok: 2 routes, ")
    assert f"(registry: {embedded_registry().source.describe()})" in out


def test_check_prints_every_error_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "routes:\n  - name: a\n    candiates: [x]\n    actions: {pdf_input: strp}\n",
    )
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:3:5: unknown key 'candiates' in route; did you mean 'candidates'? "
        "(at routes[0].candiates)",
        f"{path}:4:26: expected one of auto, reroute, adjust, strip, reject; got 'strp'; "
        "did you mean 'strip'? (at routes[0].actions.pdf_input)",
        f"2 errors in {path}",
    ]


def test_check_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["check", str(missing)]) == 1
    assert capsys.readouterr().err == (
        f"caproute: error: {missing}: cannot read the policy file: No such file or directory\n"
    )


def test_check_bad_snapshot_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, GOOD)
    bad = _write(tmp_path, "{}", "snap.json")
    assert main(["check", str(path), "--snapshot", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("caproute: error: ") and err.count("\n") == 1


@pytest.mark.parametrize("path", sorted((FIXTURES / "invalid").glob("*.yaml"))[:5], ids=str)
def test_check_reports_fixture_locations(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    assert main(["check", str(path), "--no-registry"]) == 1
    assert capsys.readouterr().err.startswith(f"{path}:{expected}")


def test_check_exit_code_from_a_real_process(tmp_path: Path) -> None:
    path = _write(tmp_path, "routes: {}\n")
    done = subprocess.run(
        [sys.executable, "-m", "caproute", "check", str(path), "--no-registry"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"{path}:1:9: expected a list, got a mapping")
    assert "Traceback" not in done.stderr


# -- caproute schema ------------------------------------------------------------------------------


def test_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == policy_json_schema()
    assert out.startswith('{\n  "$schema": ')


def test_shipped_schema_file_is_up_to_date() -> None:
    shipped = json.loads((ROOT / "examples" / "policies" / "policy.schema.json").read_text())
    regenerate = "caproute schema > examples/policies/policy.schema.json"
    assert shipped == policy_json_schema(), f"stale schema file; run: {regenerate}"


# -- load_policy ---------------------------------------------------------------------------------


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    policy = load_policy(path)
    assert policy == Policy.from_text(GOOD)
    assert policy.match("claude-haiku-5-5").name == "haiku"


def test_load_policy_errors_name_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: 1\nrutes: []\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(str(path))
    assert (caught.value.file, caught.value.line, caught.value.column) == (str(path), 2, 1)


def test_load_policy_refuses_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("routes:\n  - name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(PolicyError, match=r"latin1\.yaml: not UTF-8 text"):
        load_policy(path)


def test_load_policy_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path)


# -- the examples ----------------------------------------------------------------------------------


def test_there_are_examples() -> None:
    assert 3 <= len(EXAMPLES) <= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid_and_clean(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=./policy.schema.json\n")
    policy = load_policy(path)
    assert registry_warnings(policy, embedded_registry()) == ()


# -- the reference documentation ------------------------------------------------------------------


def test_docs_mention_every_key_and_capability_name() -> None:
    docs = (ROOT / "docs" / "policy.md").read_text()
    schema = policy_json_schema()
    keys = set(schema["properties"])
    for model in schema["$defs"].values():
        keys |= set(model.get("properties", {}))
    documented = set(re.findall(r"`([$\w.]+)`", docs))
    assert keys - documented == set()
    assert set(CAPABILITY_NAMES) - documented == set()
