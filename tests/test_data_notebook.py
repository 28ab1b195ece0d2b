"""preprocess.ipynb executes end to end (on a few demo files, via nbclient)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.notebooks import ROOT, execute_notebook

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
    outputs = execute_notebook("preprocess.ipynb")
    text = "".join(o.get("text", "") for o in outputs)
    assert '"files_kept": 4' in text and "instrument" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert (tmp_path / "dataset" / "manifest.json").exists()
