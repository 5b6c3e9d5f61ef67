"""Issue 17, first hour: ``make demo`` with a wrong Python says what to do.

``make demo PYTHON=python3.9`` made a ``.venv`` with that Python, failed to install
into it, and every later ``make demo`` (whatever ``PYTHON``) reused that ``.venv`` and
failed the same way. Now the Python is checked before ``.venv`` is made, and ``.venv``
is checked before it is used: a bad one is reported with ``make clean``.

Real ``make`` runs in a temporary copy of the Makefile; the wrong Python is a small
script that answers like Python 3.9 (and logs how it was called), so nothing is
installed.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OLD_PYTHON = """#!/bin/sh
echo "$0 $*" >> "{log}"
case "$1" in
  --version) echo "Python 3.9.18"; exit 0 ;;
  -c) exit 1 ;;  # sys.exit(sys.version_info < (3, 11)) on 3.9
  -m)
    if [ "$2" = venv ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi
    echo "ERROR: Package 'caproute' requires a different Python: 3.9.18 not in '>=3.11'" >&2
    exit 1 ;;
esac
exit 1
"""

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A directory with the Makefile and pyproject.toml (all `make demo` reads first)."""
    work = tmp_path / "clone"
    work.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, work / name)
    return work


def old_python(where: Path, log: Path) -> Path:
    script = where / "python3.9"
    script.write_text(OLD_PYTHON.format(log=log))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def make(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_a_wrong_python_makes_no_venv(clone: Path, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    wrong = old_python(tmp_path, log)
    result = make(clone, "demo", f"PYTHON={wrong}")
    assert result.returncode != 0
    assert f"PYTHON={wrong} is not Python >= 3.11 (Python 3.9.18)" in result.stderr
    assert not (clone / ".venv").exists()
    assert "-m venv" not in log.read_text()


@pytest.mark.parametrize("broken", ["old-python", "python-gone"])
def test_a_bad_venv_from_before_says_make_clean(clone: Path, tmp_path: Path, broken: str) -> None:
    log = tmp_path / "calls.log"
    log.touch()
    bin_dir = clone / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    if broken == "old-python":  # what `make demo PYTHON=python3.9` used to leave
        shutil.copy(old_python(tmp_path, log), bin_dir / "python")
    else:  # the Python the venv was made with was uninstalled since
        (bin_dir / "python").symlink_to(tmp_path / "no-such-python")
    for _ in range(2):  # every run says it, and installs nothing
        result = make(clone, "demo")
        assert result.returncode != 0
        assert "make: .venv has no working Python >= 3.11" in result.stderr
        assert "run 'make clean'" in result.stderr
        assert "-m pip" not in log.read_text()
    assert make(clone, "clean").returncode == 0
    assert not (clone / ".venv").exists()
