"""utils/evaluation/song_modes.py: whole songs as users bring them beside the unified
tracks, and the ``(instruments given)`` rows of ``evaluate.py --songs``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import symusic
import torch

import evaluate
from data.contract import BASS, GUITAR, INSTRUMENTS, N_MUSIC, PIANO
from tests.test_song_evaluation import TPQ, counted_song, low_is_bass, train_split
from utils.core.config import Config
from utils.evaluation.phrases import fit_train_baselines
from utils.evaluation.song_modes import evaluate_song_modes, whole_song_truth
from utils.evaluation.songs import (
    NoteConfusion,
    SongScorer,
    pitched_rule,
    song_model_row,
    song_truth,
)
from utils.separation.file_batch import separate_file
from utils.separation.file_choices import FileChoices
from utils.separation.file_job import FileOptions
from utils.separation.instrument_hints import given_row
from utils.separation.notes import NoteSeparator


def crowded_song(path: Path) -> Path:
    """:func:`counted_song` (a flute melody of 60 notes, piano 60, bass 60, drums 60, a
    short guitar track of 10 notes) plus a second bass track (55 notes at 40: fewer than the
    first, so track unification drops it) and a brass track (20 notes at 67, a program of
    no class)."""
    counted_song(path)
    score = symusic.Score(str(path))
    for name, program, pitch, n in (("Bass 2", 34, 40, 55), ("Brass", 61, 67, 20)):
        track = symusic.Track(name, program, False)
        for beat in range(n):
            track.notes.append(symusic.Note(beat * TPQ + 17, TPQ - 50, pitch, 90))
        score.tracks.append(track)
    score.dump_midi(str(path))
    return path


def test_whole_song_scores_every_classed_track_and_feeds_every_note(tmp_path: Path) -> None:
    path = crowded_song(tmp_path / "song.mid")
    whole = whole_song_truth(path, "song.mid")
    unified = song_truth(path, "song.mid")
    count = lambda truth: np.bincount(truth.true[truth.true > 0], minlength=6).tolist()  # noqa: E731
    # whole: the short guitar track and the second bass track too; melody (flute) and
    # brass are fed, not scored
    assert count(whole) == [0, 60, 10, 115, 0, 60]
    assert count(unified) == [0, 60, 0, 60, 0, 60]
    names = [whole.notes.tracks[t].name for t in whole.notes.track]
    unscored = {n for n, t in zip(names, whole.true) if t == -1}
    assert unscored == {"Melody", "Brass"}
    assert whole.fed.all() and unified.fed is None
    # the mixture is every note's: the tune (79), brass (67), guitar (60), bass 2 (40)
    for pitch in (79, 67, 60, 40):
        assert whole.mixture[:, pitch - 24].any(), pitch
        assert not unified.mixture[:, pitch - 24].any(), pitch


def test_whole_and_unified_rows_against_a_hand_count(tmp_path: Path) -> None:
    train_split(tmp_path)
    rules = {name: pitched_rule(b) for name, b in fit_train_baselines(tmp_path).items()}
    path = crowded_song(tmp_path / "song.mid")
    scorers = {mode: SongScorer(NoteSeparator(low_is_bass, batch_size=4), rules)
               for mode in ("w", "u")}
    scorers["w"].add(whole_song_truth(path, "song.mid"))
    scorers["u"].add(song_truth(path, "song.mid"))
    whole, unified = (scorers[m].rows()[song_model_row()] for m in ("w", "u"))
    # low_is_bass: piano at 72 right, piano at 50 -> bass, guitar at 60 -> bass, both bass
    # tracks right (36 and 40), drums right
    assert whole["notes"] == 245 and unified["notes"] == 180
    assert whole["pitched_note_accuracy"] == pytest.approx((45 + 60 + 55) / 185)
    assert unified["pitched_note_accuracy"] == pytest.approx((45 + 60) / 120)
    assert whole["guitar_recall"] == 0.0 and unified["guitar_f1"] == 1.0  # none true there
    assert scorers["w"].per_instrument.tolist() == [60, 10, 115, 0, 60]
    for name in rules:  # the baselines are scored on the same notes
        assert scorers["w"].rows()[name]["notes"] == 245
        assert scorers["u"].rows()[name]["notes"] == 180


def low_guitar(batch: torch.Tensor) -> torch.Tensor:
    """A fake model: rows below 40 are bass (0.9), then guitar (0.3); the rest piano."""
    probs = torch.full((batch.shape[0], N_MUSIC, *batch.shape[2:]), 0.05)
    probs[:, BASS - 1, :, :40] = 0.9
    probs[:, GUITAR - 1, :, :40] = 0.3
    probs[:, PIANO - 1, :, 40:] = 0.9
    return probs * batch[:, :1]


def test_instruments_given_rows(tmp_path: Path) -> None:
    """A song of piano (72), a low guitar (45) and drums: the model calls the guitar bass;
    told that the song holds piano and guitar, it calls it guitar."""
    train_split(tmp_path)
    baselines = fit_train_baselines(tmp_path)
    rules = {name: pitched_rule(b) for name, b in baselines.items()}
    score = symusic.Score(TPQ)
    for name, program, is_drum, pitch in (("Piano", 0, False, 72), ("Guitar", 25, False, 45),
                                          ("Drums", 0, True, 36)):
        track = symusic.Track(name, program, is_drum)
        for beat in range(60):
            track.notes.append(symusic.Note(beat * TPQ, TPQ // 2, pitch, 90))
        score.tracks.append(track)
    score.dump_midi(str(tmp_path / "band.mid"))
    scorer = SongScorer(NoteSeparator(low_guitar, batch_size=4), rules, given=baselines)
    scorer.add(whole_song_truth(tmp_path / "band.mid", "band.mid"))
    rows = scorer.rows()
    model = song_model_row()
    assert list(rows)[:4] == [model, given_row(model), "most_common",
                              given_row("most_common")]
    assert rows[model]["pitched_note_accuracy"] == 0.5
    assert rows[given_row(model)]["pitched_note_accuracy"] == 1.0
    for name in rules:  # a rule told the instruments never gives a note to bass
        assert rows[given_row(name)]["bass_f1"] == 1.0, name
        assert rows[given_row(name)]["notes"] == rows[name]["notes"] == 180


def test_evaluate_songs_prints_whole_then_unified(tiny_run: Config, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = tmp_path / "cfg.json"
    model_dir = tmp_path / "models"
    cfg_path.write_text(json.dumps({**tiny_run.to_dict(), "model_dir": str(model_dir)}))
    code = evaluate.main(["--config", str(cfg_path), "--songs", "--limit", "1",
                          "--no-progress", "--instruments-given"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert 0 <= out.index("whole songs") < out.index("unified tracks")
    whole = json.loads((model_dir / "evaluation_test_songs_whole.json").read_text())
    unified = json.loads((model_dir / "evaluation_test_songs.json").read_text())
    assert whole["mode"] == "whole" and unified["mode"] == "unified"
    assert whole["rows"]["zone"]["notes"] >= unified["rows"]["zone"]["notes"] > 0
    assert given_row("zone") in whole["rows"] and given_row("zone") in unified["rows"]
    assert "whole songs" in (model_dir / "evaluation_test_songs_whole.md").read_text()
    assert "unified tracks" in (model_dir / "evaluation_test_songs.md").read_text()
    with pytest.raises(SystemExit) as exc:  # argparse: one usage line, status 2
        evaluate.main(["--config", str(cfg_path), "--instruments-given"])
    assert exc.value.code == 2


def test_whole_mode_scores_what_separate_writes(tmp_path: Path) -> None:
    """The whole mode's model row is what separate.py writes for the song (a deterministic
    stand-in model: the tiny one samples a diffusion)."""
    separator = NoteSeparator(low_guitar, batch_size=4, device=torch.device("cpu"))
    song = crowded_song(tmp_path / "song.mid")
    options = FileOptions(write_json=True, choices=FileChoices(outputs=("json",)))
    out = separate_file(separator, song, tmp_path / "out", options)
    written = json.loads(Path(out.paths["json"]).read_text())["notes"]
    pred = np.array([INSTRUMENTS.index(n["instrument"]) for n in written])
    truth = whole_song_truth(song, "song.mid")
    scorer = SongScorer(NoteSeparator(low_guitar, batch_size=4), {}, "model")
    scorer.add(truth)
    expected = NoteConfusion()
    expected.update(truth.true[truth.true > 0], pred[truth.true > 0])
    assert np.array_equal(scorer.confusion["model"].counts, expected.counts)
    assert expected.counts[GUITAR - 1, GUITAR - 1] == 0 < expected.counts.trace()


def test_a_modes_table_does_not_depend_on_the_modes_before_it(tiny_run: Config) -> None:
    """The tiny model samples a diffusion: scoring the whole songs first draws noise, and the
    unified table must still be the one a run of that mode alone gives."""
    alone = evaluate_song_modes(tiny_run, "test", 1, "cpu", progress=False,
                                modes=("unified",))[0]
    both = evaluate_song_modes(tiny_run, "test", 1, "cpu", progress=False)
    assert [report.mode for report in both] == ["whole", "unified"]
    assert both[1].rows == alone.rows
