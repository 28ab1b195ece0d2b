"""data/roll.py: windows, phrase filters, axis orders, note runs."""

from __future__ import annotations

import numpy as np
import pytest

from data.contract import BASS, DRUM, MELODY, PHRASE_STEPS, PHRASE_STRIDE, PIANO
from data.roll import (
    bar_counts,
    keep_phrases,
    music_and_mixture,
    note_lengths,
    roll_notes,
    runs,
    to_bool_array,
    window_starts,
    window_view,
)


def test_window_starts_cover_every_step() -> None:
    assert window_starts(0) == []
    assert window_starts(1) == [0]
    assert window_starts(64) == [0]
    assert window_starts(65) == [0, 16]
    assert window_starts(80) == [0, 16]
    assert window_starts(81) == [0, 16, 32]
    for n in (1, 17, 63, 64, 100, 129, 300):
        starts = window_starts(n)
        covered = np.zeros(n, dtype=bool)
        for s in starts:
            covered[s: s + PHRASE_STEPS] = True
        assert covered.all()
        assert all(b - a == PHRASE_STRIDE for a, b in zip(starts, starts[1:]))
        assert starts[-1] < n  # no window lies entirely in the padding


def test_training_windows_are_the_song_windows_of_songs_of_four_bars_or_more() -> None:
    for n in (49, 63, 64, 65, 100, 129, 300):
        _, starts = window_view(np.zeros((n, 72, 6), dtype=bool))
        assert starts.tolist() == (window_starts(n) if n >= PHRASE_STEPS else [])


def test_windows_every_bar_with_padded_tail() -> None:
    roll = np.zeros((16 * 5 + 3, 72, 6), dtype=bool)  # 5 bars and 3 steps -> 6 bars
    roll[np.arange(roll.shape[0]), 0, PIANO] = True
    phrases, starts = window_view(roll)
    assert phrases.shape == (3, 64, 72, 6) and phrases.dtype == bool
    np.testing.assert_array_equal(starts, [0, 16, 32])
    np.testing.assert_array_equal(phrases[1], roll[16:80])
    assert phrases[2, :51, 0, PIANO].all() and not phrases[2, 51:].any()  # zero-padded tail
    assert window_view(roll[:48])[0].shape == (0, 64, 72, 6)  # 3 bars: no window
    assert window_view(roll[:64])[0].shape == (1, 64, 72, 6)  # 4 whole bars


def _phrase_with_bar_cells(cells: list[int]) -> np.ndarray:
    phrase = np.zeros((64, 72, 6), dtype=bool)
    for bar, n in enumerate(cells):
        flat = phrase[bar * 16:(bar + 1) * 16].reshape(-1)  # a view of one bar
        flat[:n] = True
    return phrase


def test_bar_density_filter() -> None:
    # 1% of 16 x 72 x 6 = 69.12 cells: 70 keeps, 69 drops (in any bar)
    phrases = np.stack([_phrase_with_bar_cells([70, 70, 70, 70]),
                        _phrase_with_bar_cells([70, 70, 69, 70]),
                        _phrase_with_bar_cells([500, 500, 500, 0])])
    np.testing.assert_array_equal(keep_phrases(phrases, has_melody=False), [True, False, False])
    # a looser threshold (0.5% = 34.56 cells) keeps the 69-cell bar but not the empty one
    np.testing.assert_array_equal(keep_phrases(phrases, has_melody=False, min_bar_density=0.005),
                                  [True, True, False])


def test_no_window_is_an_empty_result_not_an_error() -> None:
    """A song shorter than 4 bars, or with no note in range, gives zero windows."""
    for steps in (0, 1, 47):
        windows, starts = window_view(np.zeros((steps, 72, 6), dtype=bool))
        assert windows.shape == (0, 64, 72, 6) and starts.shape == (0,)
        assert bar_counts(windows).shape == (0, 4)
        for melody in (False, True):
            keep = keep_phrases(windows, has_melody=melody)
            assert keep.shape == (0,) and keep.dtype == bool


def test_melody_filter_only_in_melody_files() -> None:
    phrase = np.zeros((64, 72, 6), dtype=bool)
    phrase[:, :, DRUM] = True  # dense enough everywhere
    low, enough = phrase.copy(), phrase.copy()
    low[:23, 40, MELODY] = True
    enough[:24, 40, MELODY] = True
    phrases = np.stack([low, enough])
    np.testing.assert_array_equal(keep_phrases(phrases, has_melody=True), [False, True])
    np.testing.assert_array_equal(keep_phrases(phrases, has_melody=False), [True, True])
    with pytest.raises(ValueError, match="phrases must have shape"):
        keep_phrases(phrases[:, :32], has_melody=False)


def test_music_and_mixture_axis_order_and_inverse() -> None:
    rng = np.random.default_rng(0)
    phrases = rng.random((3, 64, 72, 6)) < 0.05
    music, mixture = music_and_mixture(phrases)
    assert music.shape == (3, 5, 64, 72) and mixture.shape == (3, 1, 64, 72)
    assert music.dtype == bool and mixture.dtype == bool
    np.testing.assert_array_equal(music[:, BASS - 1], phrases[..., BASS])
    np.testing.assert_array_equal(mixture[:, 0], phrases[..., 1:].any(axis=-1))
    assert not (mixture[:, 0] & ~phrases[..., 1:].any(-1)).any()


def test_runs_lengths_and_bool_rolls() -> None:
    row = np.array([[1, 1, 0, 1, 0, 0, 1, 1, 1], [0] * 9], dtype=bool)
    r, s, e = runs(row)
    assert list(zip(r.tolist(), s.tolist(), e.tolist())) == [(0, 0, 2), (0, 3, 4), (0, 6, 9)]
    assert all(a.size == 0 for a in runs(np.zeros((2, 4))))
    assert note_lengths(row.T)[:, 0].tolist() == [2, 2, 0, 1, 0, 0, 3, 3, 3]
    assert to_bool_array(np.array([0, 1]), "x").dtype == bool
    with pytest.raises(ValueError, match="x: expected a binary roll"):
        to_bool_array(np.array([0, 2]), "x")
    roll2d = np.zeros((6, 3), dtype=bool)
    roll2d[0:2, 2] = roll2d[4:6, 2] = roll2d[1:5, 0] = True
    rows, starts, ends = roll_notes(roll2d)
    assert list(zip(rows.tolist(), starts.tolist(), ends.tolist())) == [
        (0, 1, 5), (2, 0, 2), (2, 4, 6)]
