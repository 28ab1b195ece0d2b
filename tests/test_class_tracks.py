"""The build option ``class_tracks``: the largest track of a class, or every track of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import data.preprocess as pre
from data.contract import BASS, DRUM, GUITAR, MELODY, PIANO, PITCH_LOW, STRING
from data.midi import read_notes
from data.song_roll import choose_tracks, load_song
from data.store import PhraseStore, unpack
from tests.fixtures_midi import Track, dense_tracks, write_midi

ROOT = Path(__file__).resolve().parents[1]
STEP = 120  # ticks of a 16th note at 480 ticks per quarter


def two_guitars(path: Path, bars: int = 8) -> Path:
    """Piano, bass and drums dense enough for phrases; two guitar tracks -- 'Guitar 1' (64
    notes at 52, the larger) and 'Guitar 2' (56 notes at 55, both below middle C, so
    neither is taken for a melody) -- and a short strings track
    (8 notes at 74, 50 or fewer: dropped by the paper's unification)."""
    notes = lambda n, pitch, every: [(k * every * STEP, (k * every + 1) * STEP, pitch)  # noqa: E731
                                     for k in range(n)]
    tracks = [*dense_tracks(bars=bars), Track("Guitar 1", 25, notes(64, 52, 2)),
              Track("Guitar 2", 26, notes(56, 55, 2)), Track("Pad", 48, notes(8, 74, 16))]
    return write_midi(path, tracks)


def test_largest_keeps_one_guitar_and_all_keeps_every_track(tmp_path: Path) -> None:
    path = two_guitars(tmp_path / "song.mid")
    names = [t.name for t in read_notes(path).tracks]
    lead, rhythm, pad = names.index("Guitar 1"), names.index("Guitar 2"), names.index("Pad")
    largest = load_song(path)
    dense = load_song(path, class_tracks="all")
    assert largest.class_tracks[GUITAR] == [lead] and STRING not in largest.class_tracks
    assert dense.class_tracks[GUITAR] == [lead, rhythm] and dense.class_tracks[STRING] == [pad]
    guitar_rows = lambda song: set(np.flatnonzero(song.roll[..., GUITAR].any(axis=0)))  # noqa: E731
    assert guitar_rows(largest) == {52 - PITCH_LOW}
    assert guitar_rows(dense) == {52 - PITCH_LOW, 55 - PITCH_LOW}
    assert dense.roll[..., STRING].any(axis=0)[74 - PITCH_LOW]
    assert not largest.roll[..., STRING].any()
    for cls in (PIANO, BASS, DRUM):  # the other classes are the same either way
        assert np.array_equal(largest.roll[..., cls], dense.roll[..., cls])
    assert np.array_equal(dense.onsets[..., GUITAR].any(axis=0),
                          dense.roll[..., GUITAR].any(axis=0))


def test_all_keeps_the_melody_apart_or_in_its_class(tmp_path: Path) -> None:
    tracks = [*dense_tracks(bars=8),
              Track("Melody", 24, [(k * 2 * STEP, (k * 2 + 1) * STEP, 84) for k in range(64)]),
              Track("Guitar", 25, [(k * 4 * STEP, (k * 4 + 1) * STEP, 60) for k in range(10)])]
    notes = read_notes(write_midi(tmp_path / "tune.mid", tracks))
    kinds = notes.track_notes()
    melody = [t.name for t in notes.tracks].index("Melody")
    guitar = [t.name for t in notes.tracks].index("Guitar")
    apart = choose_tracks(kinds, notes.tpq, None, class_tracks="all")
    assert apart[MELODY] == [melody] and apart[GUITAR] == [guitar]
    joined = choose_tracks(kinds, notes.tpq, None, melody_in_mixture=True, class_tracks="all")
    assert joined[GUITAR] == [guitar, melody]
    with pytest.raises(ValueError, match="class_tracks must be one of 'largest', 'all'"):
        choose_tracks(kinds, notes.tpq, None, class_tracks="every")


def test_build_records_the_option_and_refuses_to_mix(tmp_path: Path) -> None:
    midi = tmp_path / "midi"
    midi.mkdir()
    for i in range(3):
        two_guitars(midi / f"song{i}.mid", bars=8 + i)
    plain = pre.build(midi, tmp_path / "plain", workers=1, progress=False,
                      fractions=(1.0, 0.0, 0.0))
    dense = pre.build(midi, tmp_path / "dense", workers=1, progress=False,
                      fractions=(1.0, 0.0, 0.0), class_tracks="all")
    assert plain["settings"]["class_tracks"] == "largest"
    assert dense["settings"]["class_tracks"] == "all"
    assert plain["phrases"] == dense["phrases"]
    cells = lambda out: unpack(PhraseStore(out, "train").rows(np.arange(  # noqa: E731
        plain["phrases"]["train"])))
    plain_cells, dense_cells = cells(tmp_path / "plain"), cells(tmp_path / "dense")
    assert dense_cells[..., GUITAR].sum() > plain_cells[..., GUITAR].sum()
    assert dense_cells[..., STRING].any() and not plain_cells[..., STRING].any()
    with pytest.raises(pre.BuildError, match="class_tracks"):
        pre.build(midi, tmp_path / "plain", workers=1, progress=False, class_tracks="all")
    with pytest.raises(pre.BuildError, match="class_tracks must be one of 'largest', 'all'"):
        pre.build(midi, tmp_path / "x", workers=1, progress=False, class_tracks="every")
    # a folder built before the option existed (no key in its fingerprint) resumes as "largest"
    settings = tmp_path / "plain" / "shards" / "settings.json"
    stored = json.loads(settings.read_text())
    del stored["class_tracks"]
    settings.write_text(json.dumps(stored))
    again = pre.build(midi, tmp_path / "plain", workers=1, progress=False,
                      fractions=(1.0, 0.0, 0.0))
    assert again["files_this_run"] == 0


def test_cli_flag_and_config_key(tmp_path: Path) -> None:
    midi = tmp_path / "midi"
    midi.mkdir()
    two_guitars(midi / "song.mid")
    run = subprocess.run([sys.executable, "-m", "utils.preprocess", "--midi-dir", str(midi),
                          "--out-dir", str(tmp_path / "out"), "--workers", "1",
                          "--class-tracks", "all", "--no-progress"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["settings"]["class_tracks"] == "all"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"midi_dir": str(midi), "data_dir": str(tmp_path / "y"),
                                  "class_tracks": "every"}))
    run = subprocess.run([sys.executable, "-m", "utils.preprocess", "--config", str(config)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and "'class_tracks'" in run.stderr
    assert "'largest'" in run.stderr and "'all'" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
