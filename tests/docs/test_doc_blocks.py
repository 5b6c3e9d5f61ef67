"""Every code block in README.md and docs/*.md runs as pasted, so the docs can't rot.

* ``python``: executed, block after block in one namespace per page (a later block may
  use what an earlier one defined); top-level ``await`` is allowed.
* ``yaml``: parsed; a document shaped like a policy (only ``version``, ``defaults``,
  ``routes``, ``$schema`` at the top) must be a valid policy.
* ``json``: parsed.
* ``bash`` / ``sh`` / ``shell`` / ``console``: each ``caproute ...`` command runs through
  the CLI's ``main(argv)`` and must exit 0 (or the status its trailing comment names,
  ``# exit status 1``); ``> FILE`` is honoured; other commands (pip, export, curl) are
  not run. In ``console`` blocks only ``$ `` lines are commands.

Each page runs in a fresh working directory holding a copy of ``examples/``, with a
`FakeAnthropic` (the default lineup) standing in for the API: ``ANTHROPIC_BASE_URL``
and ``ANTHROPIC_API_KEY`` point at it, so an example written for the real API
(``anthropic.Anthropic()``) runs unchanged. ``<!-- not-run: reason -->`` on the line
before a fence skips a block (the reason is required); ``<!-- file: NAME -->`` writes
the block to NAME first (see `doc_blocks`).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import gc
import inspect
import io
import json
import os
import re
import shlex
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from doc_blocks import Block, blocks

from caproute import Policy
from caproute.cli import main
from caproute.testing import FakeAnthropic

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = {"python", "py"}
SHELL = {"bash", "sh", "shell", "console", "shell-session", "zsh"}
YAML = {"yaml", "yml"}
POLICY_KEYS = {"version", "defaults", "routes", "$schema"}
LONG_RUNNING = {"serve", "fake"}
"""Subcommands that serve until interrupted: a block with one must be marked not-run."""


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {}  # the default catalogue, any key


@pytest.fixture
def page_env(
    fake: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    before = set(threading.enumerate())
    yield tmp_path
    # Registry refreshes the examples started in the background read the environment
    # (proxy settings): let them finish before it is restored under their feet.
    for thread in set(threading.enumerate()) - before:
        if thread.name.startswith("caproute-registry"):
            thread.join(timeout=20)


def test_every_page_is_linked_from_the_readme_and_the_index() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    pages = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.name != "index.md"]
    assert [p for p in pages if f"(docs/{p})" not in readme] == [], "not linked from README.md"
    assert [p for p in pages if f"]({p})" not in index] == [], "not linked from docs/index.md"


def test_every_not_run_marker_gives_a_reason() -> None:
    missing = [b.where for page in PAGES for b in blocks(page) if b.not_run == ""]
    assert not missing, f"<!-- not-run: reason --> needs a reason: {missing}"


# Examples are written like application code: they don't close every client they make.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_page_runs_as_pasted(page: Path, page_env: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__doc__"}
    for block in blocks(page):
        if block.file:
            (page_env / block.file).parent.mkdir(parents=True, exist_ok=True)
            (page_env / block.file).write_text(block.text, encoding="utf-8")
        if block.not_run is not None:
            continue
        try:
            run_block(block, namespace, page_env)
        except Exception as exc:  # one message naming the page, the line and the language
            pytest.fail(f"{block.where} ({block.language} block): {type(exc).__name__}: {exc}")
    namespace.clear()
    gc.collect()  # the examples' unclosed clients go now, under this test's filter


def run_block(block: Block, namespace: dict[str, Any], cwd: Path) -> None:
    if block.language in PYTHON:
        run_python(block, namespace)
    elif block.language in YAML:
        for document in yaml.safe_load_all(block.text):
            if isinstance(document, dict) and document and set(document) <= POLICY_KEYS:
                Policy.from_text(block.text, filename=block.where)
    elif block.language == "json":
        json.loads(block.text)
    elif block.language in SHELL:
        for command, expected in shell_commands(block):
            run_command(command, expected, cwd, block)


def run_python(block: Block, namespace: dict[str, Any]) -> None:
    code = compile(block.text, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    with contextlib.redirect_stdout(io.StringIO()):
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            asyncio.run(result)


_EXIT = re.compile(r"exit(?:s| status)\s+(\d+)")


def shell_commands(block: Block) -> Iterator[tuple[str, int]]:
    """(command, expected exit status) for each command line of a shell block."""
    text = block.text.replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.strip()
        if block.language == "console" and not line.startswith("$ "):
            continue
        line = line.removeprefix("$ ")
        if not line or line.startswith("#"):
            continue
        comment = line.partition(" #")[2]
        expected = int(m[1]) if (m := _EXIT.search(comment)) else 0
        yield line, expected


def run_command(line: str, expected: int, cwd: Path, block: Block) -> None:
    first = line.split()[0]
    if first != "caproute" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", first):
        return  # pip, export, curl, make...: not ours to run (nor to parse)
    words = shlex.split(line, comments=True)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if not words or words[0] != "caproute":
        return  # pip, export, curl, make...: not ours to run
    if "|" in words:
        words = words[: words.index("|")]
    out_file = None
    if ">" in words:
        at = words.index(">")
        out_file, words = cwd / words[at + 1], words[:at]
    argv = words[1:]
    if argv and argv[0] in LONG_RUNNING:
        raise AssertionError(f"`{line}` serves until interrupted: mark the block not-run")
    stdout, stderr = io.StringIO(), io.StringIO()
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = main(argv)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if out_file is not None:
        out_file.write_text(stdout.getvalue(), encoding="utf-8")
    assert status == expected, (
        f"`{line}` exited {status}, expected {expected}\n{stderr.getvalue()}{stdout.getvalue()}"
    )
