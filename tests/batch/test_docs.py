"""Every code block of docs/batches.md runs as pasted, or says why not (``<!-- not-run -->``).

Python blocks run here in a subprocess of their own; tests/docs/test_doc_blocks.py runs
the whole page again, ``console`` blocks (the ``caproute`` commands, against the fake)
and ``<!-- file: NAME -->`` blocks (written out for the commands after them) included.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "batches.md"
FENCE = re.compile(r"(?P<before>[^\n]*)\n```(?P<lang>\w*)\n(?P<code>.*?)\n```", re.S)


def _blocks() -> list[tuple[int, str, str, bool]]:
    return [(line, lang, code, skipped) for line, lang, code, skipped, _ in _marked_blocks()]


def _marked_blocks() -> list[tuple[int, str, str, bool, bool]]:
    """(line, language, code, not-run, a file for the blocks after it) per block."""
    text = DOC.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start("lang")) + 1
        before = match.group("before").strip()
        skipped = before.startswith("<!-- not-run:")
        found.append((line, match.group("lang"), match.group("code"), skipped,
                      before.startswith("<!-- file:")))  # fmt: skip
    return found


def test_every_block_runs_or_says_why_not() -> None:
    blocks = _marked_blocks()
    assert len(blocks) >= 8
    for line, lang, _code, skipped, file in blocks:
        runs = lang in ("python", "console") or file
        assert skipped or runs, f"docs/batches.md:{line}: a {lang} block that won't run"


@pytest.mark.parametrize(
    ("line", "code"),
    [(line, code) for line, lang, code, skipped in _blocks() if lang == "python" and not skipped],
    ids=lambda value: f"line{value}" if isinstance(value, int) else "",
)
def test_python_block_runs(line: int, code: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"docs/batches.md:{line}:\n{done.stderr}"
