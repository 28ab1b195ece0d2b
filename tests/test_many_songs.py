"""utils/separation/many_songs.py: the first pass of many songs, batched across songs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from data.contract import N_PITCH, PHRASE_STEPS, STEPS_PER_BAR, STEPS_PER_BEAT
from data.midi import SongNotes
from data.roll import window_starts
from models.direct import DirectSeparation
from models.transunet import InputPlanes, TransUNet
from tests.test_separation import tiny_separator
from utils.separation.first_pass import MixtureSong, note_probabilities
from utils.separation.many_songs import song_note_probabilities
from utils.separation.notes import assign_notes
from utils.separation.separator import Separator
from utils.separation.windows import WindowStitch


def tiny_direct(batch_size: int = 3) -> Separator:
    """A freshly initialised tiny direct separator that reads note starts."""
    torch.manual_seed(0)
    model = TransUNet(1, 5, latent_dim=32, d_model=64, num_layers=1, time_emb_dim=16,
                      planes=InputPlanes(cond_ch=1, pitch_channel=True))
    return Separator(model=model, process=DirectSeparation("bce", onset_channel=True),
                     batch_size=batch_size)


def random_song(bars: list[int], seed: int) -> MixtureSong:
    """Six notes in each of the given bars (a few drum notes, a few outside MIDI 24..95),
    one tick a step; the mixture of the notes the model is given (most of them)."""
    rng = np.random.default_rng(seed)
    start = np.array([bar * STEPS_PER_BAR + int(rng.integers(0, STEPS_PER_BAR))
                      for bar in bars for _ in range(6)], dtype=np.int64)
    k = start.size
    is_drum = rng.random(k) < 0.2
    notes = SongNotes(tpq=STEPS_PER_BEAT, track=np.zeros(k, np.int64), index=np.arange(k),
                      pitch=np.where(is_drum, 36, rng.integers(20, 100, k)).astype(np.int64),
                      start=start, end=start + rng.integers(1, 9, k),
                      velocity=rng.integers(1, 128, k).astype(np.int64), is_drum=is_drum,
                      tracks=[], tempos=np.zeros((0, 2), np.int64), time_signatures=[],
                      key_signatures=[])
    n_steps = (max(bars) + 1) * STEPS_PER_BAR if bars else 0
    in_mixture = rng.random(k) < 0.9
    mixture = np.zeros((n_steps, N_PITCH), dtype=bool)
    first, stop = notes.steps()
    for f, s, r in zip(first[in_mixture], stop[in_mixture], notes.rows()[in_mixture]):
        if r >= 0:
            mixture[f:s, r] = True
    return MixtureSong(notes, mixture, in_mixture)


SONGS = {"short": [0, 1], "one bar": [0], "long": list(range(12)),
         "silent stretch": [0, 1, 30], "no steps": [], "late start": [9, 10, 11]}


def songs() -> list[MixtureSong]:
    return [random_song(bars, seed) for seed, bars in enumerate(SONGS.values())]


class Recorder:
    """A separator's window probabilities, recording the windows of every call."""

    def __init__(self, separator: Separator) -> None:
        self.separator, self.calls = separator, []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls.append(batch.clone())
        return self.separator.probs(batch)


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batched_songs_equal_one_song_at_a_time(batch_size: int) -> None:
    sep = tiny_direct(batch_size)
    given = songs()
    batched = list(song_note_probabilities(sep.probs, iter(given), batch_size))
    assert [song for song, _ in batched] == given  # in order, every song once
    for song, (_, acc) in zip(given, batched):
        alone = note_probabilities(sep.probs, song, batch_size)
        assert np.array_equal(acc.cells, alone.cells)
        assert np.array_equal(acc.row_cells, alone.row_cells)
        assert np.allclose(acc.sums, alone.sums, rtol=1e-5, atol=1e-5)
        assert np.allclose(acc.row_sums, alone.row_sums, rtol=1e-5, atol=1e-5)
        assert np.array_equal(assign_notes(acc, song).instrument,
                              assign_notes(alone, song).instrument)
    assert batched[SONGS_INDEX["no steps"]][1].sums.sum() == 0


SONGS_INDEX = {name: i for i, name in enumerate(SONGS)}


def test_batches_are_filled_across_songs_and_never_hold_a_silent_window() -> None:
    sep = tiny_direct()
    given = songs()
    for kept in (given, [s for s, name in zip(given, SONGS) if name != "silent stretch"]):
        record = Recorder(sep)
        list(song_note_probabilities(record, kept, batch_size=4))
        sizes = [len(c) for c in record.calls]
        sounding = [sum(bool(s.mixture[a: a + PHRASE_STEPS].any())
                        for a in window_starts(len(s.mixture))) for s in kept]
        assert sum(sizes) == sum(sounding)  # each sounding window once, no silent one
        assert all(bool(c[:, 0].flatten(1).any(dim=1).all()) for c in record.calls)
    # without more silent windows in a row than a round holds (ROUND_WINDOWS batches),
    # every batch is full but the last
    assert all(size == 4 for size in sizes[:-1])
    one_by_one = Recorder(sep)
    for song in given:
        note_probabilities(one_by_one, song, 4)
    assert len(one_by_one.calls) > len(record.calls)


def test_songs_are_read_only_as_the_batches_need_them() -> None:
    read: list[int] = []

    def source() -> Iterator[MixtureSong]:
        for i, bars in enumerate(SONGS.values()):
            read.append(i)
            yield random_song(bars, i)

    out = song_note_probabilities(tiny_direct().probs, source(), batch_size=1)
    next(out)  # the first song's one window fills the first batch
    assert read == [0]
    next(out)
    assert read == [0, 1]
    with pytest.raises(ValueError, match="batch_size"):
        next(song_note_probabilities(tiny_direct().probs, [], batch_size=0))


def test_a_stitch_averages_windows_and_counts_silent_ones() -> None:
    stitch = WindowStitch(n_steps=40, span=96, channels=2)
    stitch.add(0, np.full((2, PHRASE_STEPS, N_PITCH), 3.0))
    stitch.add(16, None)  # a silent window: zeros
    lo, first = stitch.flush(16)
    assert lo == 0 and first.shape == (16, N_PITCH, 2) and np.all(first == 3.0)
    lo, rest = stitch.flush(40)
    assert lo == 16 and rest.shape == (24, N_PITCH, 2) and np.all(rest == 1.5)


def test_a_separator_separates_many_songs_as_one_at_a_time() -> None:
    given = songs()
    direct = tiny_direct(batch_size=4)
    batched = list(direct.separate_songs(iter(given)))
    alone = [direct.separate_notes(song) for song in given]
    assert len(batched) == len(given)
    for a, b in zip(batched, alone):
        assert np.array_equal(a.instrument, b.instrument)
        assert np.array_equal(a.decided_by, b.decided_by)
        assert np.allclose(a.probs, b.probs, rtol=1e-5, atol=1e-5, equal_nan=True)
    # a process that samples: one song at a time, the same noise on the same windows
    sampling = tiny_separator(batch_size=4)
    drawn = list(sampling.separate_songs(given[:3]))
    sampling.reseed()
    again = [sampling.separate_notes(song) for song in given[:3]]
    for a, b in zip(drawn, again):
        assert np.array_equal(a.probs, b.probs, equal_nan=True)
