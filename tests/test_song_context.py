"""utils/separation/register_prior.py: the song-level second pass over pitched notes."""

from __future__ import annotations

import numpy as np
import pytest

from utils.separation.register_prior import apply_song_context, song_prior


def test_prior_is_a_smoothed_per_row_distribution() -> None:
    sums = np.zeros((72, 5))
    sums[10, 2] = 30.0  # bass plays row 10 a lot
    sums[40, 0] = 10.0  # piano row 40
    prior = song_prior(sums, width=2.0)
    assert prior.shape == (72, 4)
    np.testing.assert_allclose(prior.sum(axis=1), 1.0)
    assert prior[10].argmax() == 2 and prior[11].argmax() == 2  # a neighbour row too
    assert prior[40].argmax() == 0
    np.testing.assert_allclose(prior[70], 0.25, atol=1e-6)  # nothing near: uniform
    with pytest.raises(ValueError, match="width"):
        song_prior(sums, 0.0)


def test_ambiguous_notes_follow_their_songs_register() -> None:
    sums = np.zeros((72, 5))
    sums[20:24, 2] = 50.0  # the song's low register is mostly bass
    sums[20:24, 0] = 10.0  # with some piano
    probs = np.array([[0.45, 0.10, 0.40, 0.05, 0.0],  # a low note the first pass calls piano
                      [0.90, 0.02, 0.05, 0.03, 0.0],  # a confident piano note, same row
                      [0.40, 0.30, 0.20, 0.10, 0.9],  # a drum-channel note: no row given
                      [0.50, 0.50, 0.00, 0.00, 0.0]])
    rows = np.array([21, 21, -1, 60])
    out = apply_song_context(probs, rows, sums, weight=1.0, width=2.0)
    assert out[0, :4].argmax() == 2  # moved to bass
    assert out[1, :4].argmax() == 0  # a confident note keeps its instrument
    np.testing.assert_array_equal(out[2], probs[2])  # no row: unchanged
    np.testing.assert_allclose(out[3, :2], [0.5, 0.5])  # uniform prior: unchanged
    np.testing.assert_allclose(out[:, :4].sum(axis=1), probs[:, :4].sum(axis=1))
    np.testing.assert_array_equal(out[:, 4], probs[:, 4])
    np.testing.assert_array_equal(apply_song_context(probs, rows, sums, 0.0, 2.0), probs)
    stronger = apply_song_context(probs, rows, sums, weight=3.0, width=2.0)
    assert stronger[1, 2] > out[1, 2]  # the weight sharpens the prior's pull
    with pytest.raises(ValueError, match="weight"):
        apply_song_context(probs, rows, sums, -1.0, 2.0)
