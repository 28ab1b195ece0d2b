"""The one-way package order: data <- models <- utils <- scripts.

Every module of ``data/``, ``models/`` and ``utils/`` (and the scripts on top) is parsed,
and every import it makes -- at the top or inside a function -- is checked against the
order: a package may import only itself and the packages below it. Function-local
imports of the project's own modules are refused too: they hide the dependency graph.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RANK = {"data": 0, "models": 1, "utils": 2}  # scripts (top level, bench/) rank above all
SCRIPTS = {p.stem for p in ROOT.glob("*.py")}  # evaluate, separate, melody2music_*, ...
SCRIPT_RANK = len(RANK)


def project_modules() -> list[Path]:
    files = [p for package in RANK for p in sorted((ROOT / package).glob("*.py"))]
    return files + sorted(ROOT.glob("*.py")) + sorted((ROOT / "bench").glob("*.py"))


def rank_of(path: Path) -> int:
    rel = path.relative_to(ROOT)
    return RANK.get(rel.parts[0], SCRIPT_RANK) if len(rel.parts) > 1 else SCRIPT_RANK


def imports(tree: ast.Module) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at top level)`` for every import statement."""
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno, id(node) in top))
    return found


def target_rank(module: str) -> int | None:
    """The rank of an imported project module; None for the standard library and others."""
    head = module.split(".")[0]
    if head in RANK:
        return RANK[head]
    if head in SCRIPTS:
        return SCRIPT_RANK + 1  # nothing imports a script
    return None


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_upward_or_hidden_import(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    own = rank_of(path)
    for module, line, at_top in imports(tree):
        rank = target_rank(module)
        if rank is None:
            continue
        where = f"{path.relative_to(ROOT)}:{line} imports {module}"
        assert rank <= own, f"{where}: an upward import (order: data <- models <- utils <- scripts)"
        assert at_top, f"{where} inside a function: import it at the top of the module"


def test_the_walk_sees_every_package() -> None:
    walked = {p.relative_to(ROOT).parts[0] for p in project_modules()}
    assert set(RANK) <= walked and "bench" in walked
    assert len(project_modules()) > 40


def test_the_walk_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an upward import and a hidden one are both found."""
    tree = ast.parse("import numpy\nfrom utils.config import Config\n"
                     "def f():\n    from data.roll import runs\n")
    found = {(m, top) for m, _, top in imports(tree)}
    assert ("utils.config", True) in found and ("data.roll", False) in found
    assert target_rank("utils.config") > RANK["models"] and target_rank("numpy") is None


def test_the_data_commands_do_not_load_torch() -> None:
    """Every worker of the dataset build imports its command's module; torch would cost
    each one about 200 MB and two seconds, for nothing."""
    code = ("import sys, utils.preprocess, utils.synthesize, utils.config; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
