"""preprocess.ipynb executes end to end (on a few demo files, via nbclient)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo" / "openmsx"
FILES = ("be_sharp_bw_redfarn.mid", "careless_perc_redfarn.mid", "no_work_song_redfarn.mid",
         "tttheme2.mid", "boogi_marabi_redfarn.mid")


def test_preprocess_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    midi = tmp_path / "midi"
    midi.mkdir()
    for name in FILES:
        shutil.copy(DEMO / name, midi / name)
    monkeypatch.setenv("M2M_MIDI_DIR", str(midi))
    monkeypatch.setenv("M2M_DATA_DIR", str(tmp_path / "dataset"))
    monkeypatch.setenv("M2M_WORKERS", "1")
    notebook = nbformat.read(ROOT / "preprocess.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert '"files_kept": 4' in text and "instrument" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert (tmp_path / "dataset" / "manifest.json").exists()
