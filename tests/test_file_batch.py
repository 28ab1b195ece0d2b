"""separate.py on many files (utils/separation/file_batch.py), --outputs
(utils/separation/file_choices.py) and --instruments (utils/separation/instrument_hints.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data.contract import BASS, DRUM, GUITAR, PIANO, STRING
from data.midi import read_notes
from tests.test_separate_cli import note_tuples, run_main, short_song, write_config
from utils.core.config import Config
from utils.separation.file_choices import FileChoices, parse_outputs
from utils.separation.instrument_hints import InstrumentHint, restrict
from utils.separation.separator import Separator


@pytest.fixture()
def cfg(tiny_run: Config, tmp_path: Path) -> Path:
    return write_config(tiny_run, tmp_path / "cfg.json", assign="partition")


def test_many_files_one_model_a_failure_named_the_others_written(
        cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "songs"
    folder.mkdir()
    short_song(folder / "b.mid", bars=2)
    short_song(folder / "a.MIDI", bars=3)
    (folder / "bad.mid").write_text("not music")
    (folder / "notes.txt").write_text("not a MIDI suffix")
    single = short_song(tmp_path / "c.mid", bars=2)
    loads = []
    real = Separator.from_config.__func__
    monkeypatch.setattr(Separator, "from_config", classmethod(
        lambda cls, *a, **k: loads.append(1) or real(cls, *a, **k)))
    out = tmp_path / "out"
    code, stdout, stderr = run_main([str(single), str(folder), "-o", str(out), "--config",
                                     str(cfg), "--outputs", "midi,json"], capsys)
    assert code == 1 and len(loads) == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bad.mid" in errors[0]
    assert "separating" in stderr  # the progress bar over the files
    assert {p.name for p in out.iterdir()} == {
        f"{s}.{kind}" for s in ("a", "b", "c") for kind in ("separated.mid", "notes.json")}
    for name in ("a.MIDI", "b.mid"):
        original = read_notes(folder / name)
        separated = read_notes(out / f"{Path(name).stem}.separated.mid")
        assert note_tuples(separated) == note_tuples(original)
    # files in command-line order, a folder's files sorted
    order = [stdout.index(f"separated {p}") for p in (single, folder / "a.MIDI",
                                                       folder / "b.mid")]
    assert order == sorted(order) and stdout.count("model: ") == 1
    assert "3 of 4 files separated" in stdout and "1 failed" in stdout


def test_refused_before_any_work(cfg: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        short_song(tmp_path / sub / "song.mid", bars=2)
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    cases = {
        "would write the same outputs": [str(tmp_path / "x"), str(tmp_path / "y" / "song.mid")],
        "is a folder with no .mid or .midi file": [str(tmp_path / "empty")],
        "'pdf' is not an output": [str(tmp_path / "x"), "--outputs", "midi,pdf"],
        "'kazoo' is not an instrument": [str(tmp_path / "x"), "--instruments", "piano,kazoo"],
        "names no pitched instrument": [str(tmp_path / "x"), "--instruments", "drums"],
    }
    for words, args in cases.items():
        code, stdout, stderr = run_main([*args, "-o", str(out), "--config", str(cfg)], capsys)
        assert code == 2 and stdout == "", words
        assert stderr.startswith("error: ") and len(stderr.strip().splitlines()) == 1, stderr
        assert words in stderr, stderr
        assert not out.exists()
    _, _, stderr = run_main([str(tmp_path / "x"), str(tmp_path / "y"), "-o", str(out),
                             "--config", str(cfg)], capsys)
    assert str(tmp_path / "x" / "song.mid") in stderr and str(tmp_path / "y" / "song.mid") in stderr


def test_outputs_choose_the_files(cfg: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    song = short_song(tmp_path / "song.mid", bars=2)
    code, stdout, _ = run_main([str(song), "-o", str(tmp_path / "a"), "--config", str(cfg),
                                "--outputs", "picture,midi", "--no-progress"], capsys)
    assert code == 0 and "audio by" not in stdout
    assert {p.name for p in (tmp_path / "a").iterdir()} == {"song.separated.mid", "song.png"}
    code, _, _ = run_main([str(song), "-o", str(tmp_path / "b"), "--config", str(cfg),
                           "--outputs", "mixture", "--json", "--no-progress"], capsys)
    assert code == 0
    assert {p.name for p in (tmp_path / "b").iterdir()} == {"song.mixture.wav",
                                                            "song.notes.json"}
    assert parse_outputs("JSON, midi") == ("midi", "json")
    assert FileChoices().select({"midi": Path("m")}) == {"midi": Path("m")}


def test_restrict_keeps_pitched_notes_within_the_hint() -> None:
    instrument = np.array([BASS, PIANO, BASS, DRUM, STRING])
    probs = np.array([[0.1, 0.3, 0.9, 0.0, 0.0],   # bass -> guitar (0.3 > 0.1)
                      [0.9, 0.0, 0.0, 0.0, 0.0],   # piano, allowed: kept
                      [0.2, 0.2, 0.9, 0.5, 0.0],   # bass -> piano (a tie: the lower class)
                      [0.0, 0.0, 0.9, 0.0, 0.1],   # drum channel: kept
                      [np.nan] * 5])               # no probabilities: the first allowed
    pitched = np.array([True, True, True, False, True])
    out = restrict(instrument, probs, pitched, {PIANO, GUITAR})
    assert out.tolist() == [GUITAR, PIANO, PIANO, DRUM, PIANO]
    assert restrict(instrument, probs, pitched, set()).tolist() == instrument.tolist()
    hint = InstrumentHint.parse("Strings, piano,drums")
    assert hint.names == ("piano", "string", "drum") and hint.classes == {PIANO, STRING}


def test_instruments_hint_changes_the_answer(cfg: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    song = short_song(tmp_path / "song.mid", bars=4)
    args = [str(song), "--config", str(cfg), "--outputs", "json", "--no-progress"]
    code, stdout, _ = run_main([*args, "-o", str(tmp_path / "free")], capsys)
    assert code == 0 and "instruments given" not in stdout
    free = json.loads((tmp_path / "free" / "song.notes.json").read_text())
    assert "instruments_given" not in free
    pitched = [n["instrument"] for n in free["notes"] if n["decided_by"] != "drum_channel"]
    most = max(set(pitched), key=pitched.count)  # the hint leaves this one out
    named = [n for n in ("piano", "guitar", "bass", "string") if n != most]
    code, stdout, _ = run_main([*args, "-o", str(tmp_path / "hint"), "--instruments",
                                ",".join(named)], capsys)
    assert code == 0 and f"instruments given: {', '.join(named)}" in stdout
    hinted = json.loads((tmp_path / "hint" / "song.notes.json").read_text())
    assert hinted["instruments_given"] == named
    for before, after in zip(free["notes"], hinted["notes"]):
        if before["decided_by"] == "drum_channel":
            assert after["instrument"] == "drum"
        elif before["instrument"] == most:  # moved to the most probable instrument named
            probs = dict(zip(free["instruments"], before["probabilities"]))
            assert after["instrument"] == max(named, key=lambda n: probs[n])
        else:
            assert after["instrument"] == before["instrument"]
    assert sum(b["instrument"] != a["instrument"]
               for b, a in zip(free["notes"], hinted["notes"])) == pitched.count(most) > 0
