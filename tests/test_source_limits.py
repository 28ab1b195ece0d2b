"""The size limits of the source, checked by parsing it: no module over 500 lines, no
function body over 70 lines, no signature over 8 parameters (``self``/``cls`` not counted).
tests/ is not held to them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 500
MAX_BODY_LINES = 70
MAX_PARAMETERS = 8
SKIPPED = {"tests", ".venv", "runs", ".git"}


def source_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py")
                  if not SKIPPED & set(p.relative_to(ROOT).parts))


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body, its docstring left out."""
    body = node.body
    first = body[0]
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        if len(body) == 1:
            return 0
        first = body[1]
    return node.end_lineno - first.lineno + 1


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Parameters a caller can pass (``self`` and ``cls`` not counted)."""
    args = node.args
    named = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    count = len(named) + (args.vararg is not None) + (args.kwarg is not None)
    return count - (bool(named) and named[0].arg in ("self", "cls"))


def violations(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    rel = path.relative_to(ROOT)
    found = []
    n_lines = len(text.splitlines())
    if n_lines > MAX_MODULE_LINES:
        found.append(f"{rel}: {n_lines} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            where = f"{rel}:{node.lineno} {node.name}"
            if body_lines(node) > MAX_BODY_LINES:
                found.append(f"{where}: body of {body_lines(node)} lines "
                             f"(at most {MAX_BODY_LINES})")
            if parameters(node) > MAX_PARAMETERS:
                found.append(f"{where}: {parameters(node)} parameters "
                             f"(at most {MAX_PARAMETERS})")
    return found


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_source_stays_within_the_limits(path: Path) -> None:
    assert violations(path) == []


def test_the_limits_are_measured_as_meant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """The checker itself: a long module, a long body and a long signature are all found;
    a docstring and ``self`` do not count."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_BODY_LINES))
    ok = tmp_path / "ok.py"
    ok.write_text('class A:\n    def f(self, a, b, c, d, e, f, g, h):\n        """Doc.\n\n'
                  '        More."""\n' + "\n".join("    " + line for line in body.split("\n")))
    assert violations(ok) == []
    bad = tmp_path / "bad.py"
    bad.write_text(f"def f(a, b, c, d, e, f, g, *, h, **i):\n{body}\n    y = 0\n"
                   + "\n" * MAX_MODULE_LINES)
    found = violations(bad)
    assert len(found) == 3 and "lines (at most 500)" in found[0]
    assert "body of 71 lines" in found[1] and "9 parameters" in found[2]
    assert len(source_files()) == 2
