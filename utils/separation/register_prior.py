"""A second, song-level pass: each pitched note's probabilities weighed by its song's registers.

A 4-bar window sees little of a song, while an instrument keeps its register for minutes.
After the first pass (the network's stitched probabilities, averaged over each note's
cells), the song's own statistics are known: how much probability each instrument got at
each pitch row over the whole song (:attr:`utils.separation.notes.NoteProbAccumulator.row_sums`).
Smoothed over neighbouring rows, they make a per-song prior of "who plays here"; each
pitched note's probabilities are multiplied by that prior at its row, raised to a weight:

    h_i(r)   = sum_r' exp(-(r - r')^2 / (2 w^2)) * S_i(r')      (S: the song's row sums)
    prior(r) = h(r) / sum_i h_i(r)                             (over the 4 pitched instruments)
    q_k      ~ p_k * prior(row_k) ** weight                     (renormalised over the 4)

``weight = 0`` is the first pass unchanged. This is the simplest form of Arranger's "pitch
hints" (Dong et al., 2021), computed from the model's own first pass instead of given by a
user; the weight and width are chosen on validation songs (``bench/song_context.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from data.contract import N_PITCH, N_PITCHED
from utils.separation.first_pass import FirstPass

EPS = 1e-6


def song_prior(row_sums: np.ndarray, width: float) -> np.ndarray:
    """The song's register prior over the pitched instruments at every row.

    Args:
        row_sums: float ``[72, 5]`` probability summed over the song's sounding cells of
            each row.
        width: Gaussian smoothing over rows, in semitones (> 0).

    Returns:
        float64 ``[72, 4]``, each row summing to 1 (uniform where the song has nothing near).
    """
    if width <= 0:
        raise ValueError(f"song context width must be > 0, got {width}")
    rows = np.arange(N_PITCH, dtype=np.float64)
    kernel = np.exp(-((rows[:, None] - rows[None, :]) ** 2) / (2.0 * width ** 2))  # (72, 72)
    smooth = kernel @ np.asarray(row_sums, dtype=np.float64)[:, :N_PITCHED] + EPS  # (72, 4)
    return smooth / smooth.sum(axis=1, keepdims=True)


def apply_song_context(probs: np.ndarray, rows: np.ndarray, row_sums: np.ndarray,
                       weight: float, width: float) -> np.ndarray:
    """Weigh pitched notes' probabilities by the song's register prior.

    Args:
        probs: float ``[K, 5]`` first-pass probabilities of the song's notes.
        rows: int ``[K]`` row each note is read at (-1: none; left unchanged).
        row_sums: float ``[72, 5]`` the song's probability sums per row.
        weight: the prior's exponent (0: unchanged).
        width: the prior's smoothing over rows, in semitones.

    Returns:
        float64 ``[K, 5]``: the pitched part (first 4 columns) of every note with a row
        replaced by the weighed, renormalised probabilities (summing to what the 4 summed to
        before); the drum column and notes without a row as given.
    """
    out = np.array(probs, dtype=np.float64, copy=True)
    if weight == 0:
        return out
    if weight < 0:
        raise ValueError(f"song context weight must be >= 0, got {weight}")
    rows = np.asarray(rows, dtype=np.int64)
    has = (rows >= 0) & np.isfinite(out[:, :N_PITCHED]).all(axis=1)
    prior = song_prior(row_sums, width)[rows[has]]  # (k, 4)
    first = out[has, :N_PITCHED]
    weighed = first * prior ** weight
    total = first.sum(axis=1, keepdims=True)
    out[has, :N_PITCHED] = weighed / np.maximum(weighed.sum(axis=1, keepdims=True), EPS) * total
    return out


@dataclass(frozen=True)
class RegisterPrior:
    """The fixed second pass: each pitched note weighed by its song's register prior.

    Attributes:
        weight: the prior's exponent (> 0; a weight of 0 is :class:`NoSecondPass`).
        width: the prior's smoothing over rows, in semitones (> 0).
    """

    weight: float
    width: float

    def decide(self, first_pass: FirstPass) -> np.ndarray:
        """float64 ``[K, 5]``: the pitched notes' probabilities weighed by the prior
        (:func:`apply_song_context`); drum-channel notes as the first pass left them."""
        return apply_song_context(first_pass.probs,
                                  np.where(first_pass.pitched, first_pass.rows, -1),
                                  first_pass.row_sums, self.weight, self.width)

    def decide_song(self, first_pass: FirstPass) -> tuple[np.ndarray, None]:
        """:meth:`decide`, and no prediction of the song's instruments."""
        return self.decide(first_pass), None

    def describe(self) -> str | None:
        return None

    def settings(self) -> dict[str, object]:
        """What reports record of the second pass."""
        return {"song_context": [self.weight, self.width], "song_pass": None}

    def to(self, device: torch.device) -> RegisterPrior:
        return self


@dataclass(frozen=True)
class NoSecondPass(RegisterPrior):
    """No second pass: the first pass decides (the register prior at weight 0).

    ``width`` is only recorded: reports name the width the config sets.
    """

    weight: float = 0.0
    width: float = 1.0

    def decide(self, first_pass: FirstPass) -> np.ndarray:
        """float64 ``[K, 5]``: the first pass's probabilities, unchanged."""
        return np.array(first_pass.probs, dtype=np.float64, copy=True)
