"""Execute a notebook of the repository root the way a user would, for the notebook tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def execute_notebook(name: str, timeout: int = 300) -> list[dict[str, Any]]:
    """Run ``ROOT/name`` top to bottom in a fresh python3 kernel started in the root.

    Returns:
        The outputs of every code cell, in order (a failing cell raises instead).
    """
    notebook = nbformat.read(ROOT / name, as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
