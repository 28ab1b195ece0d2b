"""melody2music_test.ipynb executes end to end on the tiny trained run (via nbclient)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.notebooks import execute_notebook
from utils.config import Config


def test_test_notebook_runs(tiny_run: Config, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(tiny_run.to_dict()))
    monkeypatch.setenv("M2M_CONFIG", str(cfg_path))
    monkeypatch.setenv("M2M_LIMIT", "6")
    monkeypatch.setenv("M2M_SHOW", "2")
    monkeypatch.setenv("M2M_BARS", "2:3")
    outputs = execute_notebook("melody2music_test.ipynb")
    text = "".join(o.get("text", "") for o in outputs)
    assert "phrases/s" in text
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
