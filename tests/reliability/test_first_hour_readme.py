"""Issue 17, first hour: the README's (and the quickstart page's) set-up installs what
their Python blocks import.

The set-up said ``pip install 'caproute[proxy]'``: a package the index doesn't have
yet, and without ``anthropic``, so the quickstart failed with ``ModuleNotFoundError``.
Here the set-up's ``pip install`` lines are read as pip would read them (``.`` and its
extras from ``pyproject.toml``), and every module the README's Python blocks import
must come from a distribution they install.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PAGES = (ROOT / "README.md", ROOT / "docs" / "quickstart.md")
FENCE = re.compile(
    r"(?P<marker><!-- not-run:[^>]*-->\n)?```(?P<language>\w*)\n(?P<text>.*?)```", re.S
)


def blocks(page: Path, language: set[str]) -> list[str]:
    """The text of `page`'s code blocks in `language` that the docs runner runs."""
    text = page.read_text(encoding="utf-8")
    return [
        m["text"] for m in FENCE.finditer(text) if m["language"] in language and m["marker"] is None
    ]


def setup_installs(page: Path) -> set[str]:
    """Distribution names `page`'s ``pip install`` lines install (with dependencies
    named in ``pyproject.toml`` for ``.``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    installed: set[str] = set()
    for block in blocks(page, {"bash", "sh", "console"}):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] != ["pip", "install"]:
                continue
            for spec in words[2:]:
                if spec.startswith("-"):
                    continue
                assert not spec.startswith("caproute"), (
                    f"caproute is not on the package index: install {spec!r} from the clone ('.')"
                )
                if spec == "." or spec.startswith(".["):
                    extras = re.findall(r"[\w-]+", spec[1:])
                    wanted = list(project["dependencies"])
                    for extra in extras:
                        wanted += project["optional-dependencies"][extra]
                    installed.add("caproute")
                    installed |= {canonicalize_name(Requirement(r).name) for r in wanted}
                else:
                    installed.add(canonicalize_name(Requirement(spec).name))
    return installed


def page_imports(page: Path) -> set[str]:
    """Top-level modules `page`'s Python blocks import."""
    modules: set[str] = set()
    for block in blocks(page, {"python"}):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_set_up_installs_every_module_the_page_imports(page: Path) -> None:
    installed = setup_installs(page)
    assert "caproute" in installed, "the set-up installs no caproute"
    distributions = metadata.packages_distributions()
    missing = []
    for module in sorted(page_imports(page) - set(sys.stdlib_module_names)):
        if module == "caproute":
            continue
        names = {canonicalize_name(d) for d in distributions.get(module, [module])}
        if not names & installed:
            missing.append(module)
    assert missing == [], f"{page.name} imports {missing}, which its set-up never installs"
