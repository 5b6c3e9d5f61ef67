"""`caproute route` with several files and the headers a request would carry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caproute.cli import main

ROOT = Path(__file__).resolve().parents[2]
POLICY = """\
version: 1
routes:
  - name: acme
    match: {headers: {x-tenant: "acme"}}
    candidates: [requested]
    on_unsupported: reject
"""


def test_several_files_one_json_list_and_the_worst_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [str(ROOT / "examples/requests/effort.json"), str(ROOT / "examples/requests/pdf.json")]
    assert main(["route", *files, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [item["file"] for item in out] == files
    assert all({"decision", "body"} <= set(item) for item in out)


def test_a_header_matched_route_is_previewed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    request = str(ROOT / "examples/requests/pdf.json")
    main(["route", request, "--policy", str(policy), "--json"])
    assert json.loads(capsys.readouterr().out)["decision"]["route"] is None

    status = main(["route", request, "--policy", str(policy), "--header", "X-Tenant: acme",
                   "--beta", "files-api-2025-04-14", "--json"])  # fmt: skip
    decision = json.loads(capsys.readouterr().out)["decision"]
    assert decision["route"] == "acme"
    assert (status == 1) == (decision["outcome"] == "rejected")


def test_a_header_without_a_colon_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", str(ROOT / "examples/requests/pdf.json"), "--header", "x-tenant"]) == 1
    assert "expected NAME:VALUE" in capsys.readouterr().err


def test_check_strict_says_why_it_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nroutes:\n  - name: x\n    candidates: [claude-nope-*]\n")
    assert main(["check", str(policy)]) == 0
    capsys.readouterr()
    assert main(["check", str(policy), "--strict"]) == 1
    assert "--strict counts the 2 warnings above as errors" in capsys.readouterr().err
