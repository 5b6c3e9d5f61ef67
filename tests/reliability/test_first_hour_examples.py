"""Issue 17, first hour: the example table says what the router does.

``examples/requests/README.md`` said ``pdf.json`` is forwarded; it is rerouted. Every
row of the table is now routed here with its options, and its ``Outcome`` and ``Sent
to`` columns compared with what ``caproute route --json`` answers; every example file
has a row.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from caproute.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "requests"
ROW = re.compile(r"^\| `(?P<file>[\w.-]+\.json)` \|(?P<cells>.*)\|$")


def rows() -> list[tuple[str, list[str], str, str | None]]:
    """``(file, options, outcome, sent to)`` for each row of the table."""
    found = []
    for line in (EXAMPLES / "README.md").read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match is None:
            continue
        _family, options, outcome, sent_to, _what = (c.strip() for c in match["cells"].split("|"))
        found.append(
            (
                match["file"],
                shlex.split(options.strip("`")),
                outcome,
                None if sent_to in ("—", "") else sent_to,
            )
        )
    return found


def test_every_example_has_a_row() -> None:
    files = {path.name for path in EXAMPLES.glob("*.json")}
    assert files and files == {file for file, *_ in rows()}


@pytest.mark.parametrize(
    ("file", "options", "outcome", "sent_to"),
    rows(),
    ids=[" ".join([file, *options]) for file, options, *_ in rows()],
)
def test_the_table_says_what_the_router_does(
    file: str,
    options: list[str],
    outcome: str,
    sent_to: str | None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)  # the options name files relative to the repository
    code = main(["route", f"examples/requests/{file}", *options, "--json"])
    decision = json.loads(capsys.readouterr().out)["decision"]
    assert (decision["outcome"], decision["model"]) == (outcome, sent_to)
    assert code == (1 if outcome == "rejected" else 0)
