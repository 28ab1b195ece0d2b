"""utils/evaluation/songs.py and ``evaluate.py --songs``: note metrics over whole songs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import symusic
import torch

import evaluate
from data.contract import BASS, DRUM, GUITAR, N_MUSIC, PHRASE_SHAPE, PIANO, STRING
from data.store import pack, write_split
from utils.core.config import Config
from utils.evaluation.baselines import FITTED_BASELINES
from utils.evaluation.phrases import fit_train_baselines
from utils.evaluation.songs import (
    NoteConfusion,
    pitched_rule,
    score_songs,
    song_model_row,
    song_truth,
)
from utils.separation.notes import NoteSeparator

TPQ = 480


def counted_song(path: Path) -> Path:
    """A song whose notes are easy to count by hand.

    Melody (named so, flute): 60 notes at 79 -- not scored. Piano: 45 notes at 72 and 15
    at 50. Bass: 60 notes at 36. Drums: 60 kicks. Guitar: 10 notes at 60 -- a track of 50
    notes or fewer is dropped by track unification, so not scored.
    """
    score = symusic.Score(TPQ)
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    parts = [("Melody", 73, False, [79] * 60), ("Piano", 0, False, [72] * 45 + [50] * 15),
             ("Bass", 33, False, [36] * 60), ("Drums", 0, True, [36] * 60),
             ("Guitar", 25, False, [60] * 10)]
    for name, program, is_drum, pitches in parts:
        track = symusic.Track(name, program, is_drum)
        for beat, pitch in enumerate(pitches):
            track.notes.append(symusic.Note(beat * TPQ + 17, TPQ - 50, pitch, 90))
        score.tracks.append(track)
    score.dump_midi(str(path))
    return path


def train_split(data_dir: Path) -> None:
    """Training phrases: piano at rows 26 and 48, bass at row 12, drums at row 63."""
    phrases = np.zeros((2, *PHRASE_SHAPE), dtype=bool)
    phrases[:, :, [26, 48], PIANO] = True
    phrases[:, :, 12, BASS] = True
    phrases[:, :, 63, DRUM] = True
    write_split(data_dir, "train", 2, [(pack(phrases), np.zeros(2, dtype=np.int32))])
    (data_dir / "manifest.json").write_text(json.dumps(  # readers need the build's manifest
        {"phrases": {"train": 2}, "songs": {"train": 1}, "split_songs": {"train": ["toy.mid"]}}))


def low_is_bass(batch: torch.Tensor) -> torch.Tensor:
    """A fake model: rows below 40 (MIDI 64) are bass, the rest piano."""
    probs = torch.full((batch.shape[0], N_MUSIC, *batch.shape[2:]), 0.05)
    probs[:, BASS - 1, :, :40] = 0.9
    probs[:, PIANO - 1, :, 40:] = 0.9
    return probs * batch[:, :1]  # channel 0: the mixture


def test_song_truth_scores_the_unified_tracks_only(tmp_path: Path) -> None:
    truth = song_truth(counted_song(tmp_path / "song.mid"), "song.mid")
    scored = truth.true[truth.true > 0]
    assert np.bincount(scored, minlength=6).tolist() == [0, 60, 0, 60, 0, 60]
    assert (truth.true == -1).sum() == 70  # melody and the short guitar track
    # the model's mixture holds the scored notes only: no melody (row 55) or guitar (36)
    assert truth.mixture[:, 55].sum() == 0
    assert truth.mixture[:, [12, 26, 48, 63]].any(axis=0).all()


def test_song_scores_against_a_hand_count(tmp_path: Path) -> None:
    train_split(tmp_path)
    rules = {name: pitched_rule(b) for name, b in fit_train_baselines(tmp_path).items()}
    song = song_truth(counted_song(tmp_path / "song.mid"), "song.mid")
    rows = score_songs(NoteSeparator(low_is_bass, batch_size=4), rules, [song])
    assert list(rows) == [song_model_row(), "most_common", "zone", "pitch_row"]
    model = rows[song_model_row()]
    # piano at 72 (row 48) right; piano at 50 (row 26) -> bass, wrong; bass and drums right
    assert model["notes"] == 180
    assert model["note_accuracy"] == pytest.approx(165 / 180)
    assert model["pitched_note_accuracy"] == pytest.approx(105 / 120)
    assert model["piano_precision"] == 1.0 and model["piano_recall"] == pytest.approx(0.75)
    assert model["piano_f1"] == pytest.approx(90 / 105)
    assert model["bass_precision"] == pytest.approx(0.8) and model["bass_recall"] == 1.0
    assert model["bass_f1"] == pytest.approx(120 / 135)
    assert model["guitar_f1"] == 1.0 and model["drum_f1"] == 1.0  # none / all right
    assert model["macro_f1"] == pytest.approx((90 / 105 + 120 / 135 + 1.0) / 3)
    # most common pitched instrument in training is piano: every bass note is wrong
    common = rows["most_common"]
    assert common["note_accuracy"] == pytest.approx(120 / 180)
    assert common["pitched_note_accuracy"] == pytest.approx(0.5)
    assert common["bass_recall"] == 0.0 and common["bass_precision"] == 1.0
    assert common["macro_f1"] == pytest.approx((2 / 3 + 0.0 + 1.0) / 3)
    for name in ("zone", "pitch_row"):  # rows 12 -> bass, 26 and 48 -> piano
        assert rows[name]["note_accuracy"] == 1.0, name


def test_pitched_rule_never_gives_drums() -> None:
    counts = np.zeros((N_MUSIC, 72), dtype=np.int64)
    counts[BASS - 1, :20] = 5
    counts[GUITAR - 1, 20:50] = 5
    counts[DRUM - 1, 50:] = 100  # drums dominate the top rows in training
    for name, cls in FITTED_BASELINES.items():
        rule = pitched_rule(cls().fit_counts(counts))
        assert rule.shape == (72,) and set(rule.tolist()) <= {PIANO, GUITAR, BASS, STRING}, name
    rule = pitched_rule(FITTED_BASELINES["pitch_row"]().fit_counts(counts))
    assert rule[:20].tolist() == [BASS] * 20 and rule[20:].tolist() == [GUITAR] * 52


def test_confusion_metrics_with_nothing_to_count() -> None:
    empty = NoteConfusion().compute()
    assert empty["notes"] == 0 and empty["note_accuracy"] == 1.0 and empty["macro_f1"] == 1.0


def test_evaluate_songs_command(tiny_run: Config, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = tmp_path / "cfg.json"
    model_dir = tmp_path / "models"
    cfg_path.write_text(json.dumps({**tiny_run.to_dict(), "model_dir": str(model_dir),
                                    "transunet_model_path": str(next(
                                        (Path(tiny_run.model_dir) / "separator").glob("*.ckpt"))),
                                    "decoder_model_path": str(next(
                                        (Path(tiny_run.model_dir) / "decoder").glob("*.ckpt")))}))
    code = evaluate.main(["--config", str(cfg_path), "--songs", "--limit", "1",
                          "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1 test songs" in out and song_model_row() in out and "pitch_row" in out
    report = json.loads((model_dir / "evaluation_test_songs.json").read_text())
    assert len(report["songs"]) == 1 and report["rows"][song_model_row()]["notes"] > 0
    assert sum(report["notes_by_instrument"].values()) == report["rows"]["zone"]["notes"]
    assert "melody track" in (model_dir / "evaluation_test_songs.md").read_text()
