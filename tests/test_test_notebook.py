"""melody2music_test.ipynb executes end to end on the tiny trained run (via nbclient), and
its whole-song cell separates a song as separate.py does."""

from __future__ import annotations

from pathlib import Path

import pytest

import separate
from data.manifest import Manifest
from tests.notebooks import execute_notebook
from utils.core.config import load_config


def test_test_notebook_runs_and_separates_as_separate_py(
        song_pass_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model has a learned song pass: the notebook and the command both use it, and
    give the same notes for the same song (the separated MIDI files are equal)."""
    monkeypatch.setenv("M2M_CONFIG", str(song_pass_run))
    monkeypatch.setenv("M2M_LIMIT", "6")
    monkeypatch.setenv("M2M_SHOW", "2")
    monkeypatch.setenv("M2M_BARS", "2:3")
    monkeypatch.setenv("M2M_SONG_OUT", str(tmp_path / "notebook"))
    outputs = execute_notebook("melody2music_test.ipynb")
    text = "".join(o.get("text", "") for o in outputs)
    assert "phrases/s" in text and "learned song pass" in text
    for system in ("diffusion", "most_common", "zone", "pitch_row", "oracle"):
        assert system in text, system
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5  # two phrases, the song excerpt, and it without and with a hint
    audio = [o for o in outputs if "<audio" in o.get("data", {}).get("text/html", "")]
    assert len(audio) == 6  # original and separated for each phrase; the song and its mixture
    assert "notes, each once with its own pitch, ticks and velocity" in text
    assert "bars 2-3 shown" in text
    assert "no hint: {" in text and "instruments given: " in text  # the song's own set
    assert text.count("pitched note accuracy") == 2

    manifest = Manifest.read(load_config(song_pass_run).data_dir)
    song = manifest.midi_dir / manifest.songs_of("test")[0]
    assert separate.main([str(song), "--config", str(song_pass_run), "-o",
                          str(tmp_path / "command"), "--no-progress"]) == 0
    name = f"{song.stem}.separated.mid"
    notebook = (tmp_path / "notebook" / name).read_bytes()
    assert notebook == (tmp_path / "command" / name).read_bytes()
