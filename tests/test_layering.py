"""The one-way package order: data <- models <- utils <- scripts, and one inside utils/.

Every module of ``data/``, ``models/`` and ``utils/`` (and the scripts on top) is parsed,
and every import it makes -- at the top or inside a function -- is checked against the
order: a package may import only itself and the packages below it. Inside ``utils/`` the
subpackages keep their own order, ``core <- rendering <- separation <- evaluation <-
training``, with the command modules at the top of ``utils/`` above them all.
Function-local imports of the project's own modules are refused too: they hide the
dependency graph.
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
# inside utils/: its subpackages, bottom to top; the modules at the top of utils/ (the
# commands) rank above them all
UTILS_ORDER = ["core", "rendering", "separation", "evaluation", "training"]
UTILS_COMMANDS = len(UTILS_ORDER)


def project_modules() -> list[Path]:
    files = [p for package in RANK for p in sorted((ROOT / package).rglob("*.py"))]
    return files + sorted(ROOT.glob("*.py")) + sorted((ROOT / "bench").glob("*.py"))


def rank_of(path: Path) -> int:
    rel = path.relative_to(ROOT)
    return RANK.get(rel.parts[0], SCRIPT_RANK) if len(rel.parts) > 1 else SCRIPT_RANK


def utils_rank(parts: tuple[str, ...] | list[str]) -> int:
    """The rank inside utils/ of a module given by its path parts after ``utils``."""
    return UTILS_ORDER.index(parts[0]) if len(parts) > 1 else UTILS_COMMANDS


def utils_subpackages() -> set[str]:
    return {p.name for p in (ROOT / "utils").iterdir() if (p / "__init__.py").exists()}


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


@pytest.mark.parametrize("path", sorted((ROOT / "utils").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_utils_subpackages_keep_their_order(path: Path) -> None:
    """A subpackage of utils/ imports only itself and those below it; nothing in utils/
    imports a command module (one at the top of utils/)."""
    own = utils_rank(path.relative_to(ROOT / "utils").with_suffix("").parts)
    for module, line, _ in imports(ast.parse(path.read_text(encoding="utf-8"))):
        parts = module.split(".")
        if parts[0] != "utils" or len(parts) < 2:
            continue
        rank = utils_rank(parts[1:])
        assert rank < UTILS_COMMANDS and rank <= own, (
            f"{path.relative_to(ROOT)}:{line} imports {module}: an upward import inside "
            f"utils/ (order: {' <- '.join(UTILS_ORDER)} <- commands)")


def test_utils_order_names_every_subpackage() -> None:
    assert utils_subpackages() == set(UTILS_ORDER) and len(UTILS_ORDER) >= 3
    assert utils_rank(["training", "runs"]) > utils_rank(["core", "config"])
    assert utils_rank(["pretrained"]) == UTILS_COMMANDS


def test_the_walk_sees_every_package() -> None:
    walked = {p.relative_to(ROOT).parts[0] for p in project_modules()}
    assert set(RANK) <= walked and "bench" in walked
    assert len(project_modules()) > 40


def test_the_walk_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an upward import and a hidden one are both found."""
    tree = ast.parse("import numpy\nfrom utils.core.config import Config\n"
                     "def f():\n    from data.roll import runs\n")
    found = {(m, top) for m, _, top in imports(tree)}
    assert ("utils.core.config", True) in found and ("data.roll", False) in found
    assert target_rank("utils.core.config") > RANK["models"] and target_rank("numpy") is None


def test_the_data_commands_do_not_load_torch() -> None:
    """Every worker of the dataset build imports its command's module; torch would cost
    each one about 200 MB and two seconds, for nothing."""
    code = ("import sys, utils.preprocess, utils.synthesize, utils.core.config; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
