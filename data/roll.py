"""Pure numpy piano-roll functions (docs/data.md).

Axis orders (see :mod:`data.contract`):

* song / phrase roll: ``bool [time, pitch, instrument]`` -- a phrase is ``[64, 72, 6]``;
* model order: ``[N, channel, time, pitch]`` -- ``music [N, 5, 64, 72]``,
  ``mixture [N, 1, 64, 72]``.

Windowing rule (:func:`window_starts`, one rule for training phrases and for separating
whole songs): bars are counted from step 0 (4/4 from tick 0). Windows of 4 bars start at
every bar, from step 0, until the song's last step is covered; the last window is
zero-padded past the song's end. A song of ``T >= 64`` steps has ``ceil(T / 16)`` bars
and ``ceil(T / 16) - 3`` windows, none reaching past its last (partial) bar. A song
shorter than one window is separated as one padded window, but gives no training phrase
(:func:`window_view`): three bars or fewer are not a phrase.

Notes (:func:`runs`): a note is a maximal run of on-cells along time at one pitch. The
run finder is the one place this is written; MIDI reading, the metrics and the
baselines all count notes through it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from data.contract import (
    BARS_PER_PHRASE,
    MELODY,
    MIN_BAR_DENSITY,
    MIN_MELODY_CELLS,
    N_INSTRUMENTS,
    N_PITCH,
    PHRASE_STEPS,
    PHRASE_STRIDE,
    STEPS_PER_BAR,
)

# 6,912 cells in one bar of a phrase of the paper's six instruments: the bar-density
# filter's fraction is of these, whatever the instrument set (the same windows are kept
# of a song's notes however many classes they are spread over)
BAR_CELLS = STEPS_PER_BAR * N_PITCH * N_INSTRUMENTS
MIN_CHANNELS = 3  # melody, one pitched class and the drum class


def _check_roll(roll: np.ndarray, name: str = "roll") -> None:
    if roll.ndim != 3 or roll.shape[1] != N_PITCH or roll.shape[2] < MIN_CHANNELS:
        raise ValueError(f"{name} must have shape [T, {N_PITCH}, instruments], "
                         f"got {list(roll.shape)}")


def window_starts(n_steps: int) -> list[int]:
    """First step of every 64-step window of a song of ``n_steps`` steps.

    Windows start every bar (stride 16) from step 0 until the song's last step is
    covered; the last window may run past the end (it is zero-padded). A song shorter
    than one window gets one window. ``n_steps == 0`` gives no window.
    """
    if n_steps <= 0:
        return []
    n_windows = 1 + max(0, math.ceil((n_steps - PHRASE_STEPS) / PHRASE_STRIDE))
    return [i * PHRASE_STRIDE for i in range(n_windows)]


def window_view(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The training windows of a song roll: a read-only view, without copying.

    Args:
        roll: bool ``[T, 72, I]`` song roll (``I`` instruments, 6 for the paper's set).

    Returns:
        ``(windows, starts)``: a strided view bool ``[N, 64, 72, I]`` and int64 ``[N]``
        start steps, those of :func:`window_starts` -- none for a song shorter than one
        window. ``N = max(ceil(T / 16) - 3, 0)``.
    """
    _check_roll(roll)
    n_steps, n_inst = roll.shape[0], roll.shape[2]
    starts = np.asarray(window_starts(n_steps) if n_steps >= PHRASE_STEPS else [],
                        dtype=np.int64)
    if starts.size == 0:
        return np.zeros((0, PHRASE_STEPS, N_PITCH, n_inst), dtype=bool), starts
    padded = np.zeros((int(starts[-1]) + PHRASE_STEPS, N_PITCH, n_inst), dtype=bool)
    padded[:n_steps] = roll
    view = np.lib.stride_tricks.sliding_window_view(padded, PHRASE_STEPS, axis=0)
    # (n_steps - 63, 72, 6, 64) -> every bar -> (N, 64, 72, 6)
    view = np.moveaxis(view[::PHRASE_STRIDE], -1, 1)
    return view, starts


def bar_counts(phrases: np.ndarray) -> np.ndarray:
    """On-cells per bar of each phrase.

    Args:
        phrases: bool ``[N, 64, 72, I]``.

    Returns:
        int64 ``[N, 4]`` (``[0, 4]`` when there are no phrases).
    """
    n = phrases.shape[0]
    # explicit sizes: ``-1`` cannot be inferred when there are no phrases (n == 0)
    bars = phrases.reshape(n, BARS_PER_PHRASE, STEPS_PER_BAR, N_PITCH * phrases.shape[3])
    return bars.sum(axis=(2, 3), dtype=np.int64)


def keep_phrases(phrases: np.ndarray, has_melody: bool,
                 min_bar_density: float = MIN_BAR_DENSITY) -> np.ndarray:
    """The phrase filters of the data contract (docs/data.md).

    A window is dropped when any of its 4 bars has fewer than ``min_bar_density`` (1%)
    of the bar's ``16 x 72 x 6`` cells on (:data:`BAR_CELLS`, whatever the set), and --
    in a file with a melody -- when its melody channel has fewer than 24 cells on.

    Args:
        phrases: bool ``[N, 64, 72, I]``.
        has_melody: whether the song has a melody track.
        min_bar_density: fraction of a bar's cells that must be on (docs/data.md: 0.01).

    Returns:
        bool ``[N]`` mask of the windows to keep.
    """
    if phrases.ndim != 4 or phrases.shape[1:3] != (PHRASE_STEPS, N_PITCH) \
            or phrases.shape[3] < MIN_CHANNELS:
        raise ValueError(f"phrases must have shape [N, {PHRASE_STEPS}, {N_PITCH}, "
                         f"instruments], got {list(phrases.shape)}")
    keep = (bar_counts(phrases) >= min_bar_density * BAR_CELLS).all(axis=1)
    if has_melody:
        melody_cells = phrases[..., MELODY].sum(axis=(1, 2))
        keep &= melody_cells >= MIN_MELODY_CELLS
    return keep


def music_and_mixture(phrases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contract order -> model order; mixture = OR over the music instruments.

    Args:
        phrases: bool ``[N, T, 72, I]`` (T is 64 for a phrase; ``I`` = 6 for the paper's set).

    Returns:
        ``(music, mixture)``: bool ``[N, I - 1, T, 72]`` (instruments 1.., melody removed) and
        bool ``[N, 1, T, 72]``.
    """
    if phrases.ndim != 4 or phrases.shape[2] != N_PITCH or phrases.shape[3] < MIN_CHANNELS:
        raise ValueError(f"phrases must have shape [N, T, {N_PITCH}, instruments], "
                         f"got {list(phrases.shape)}")
    music = np.ascontiguousarray(np.moveaxis(phrases[..., MELODY + 1:], -1, 1))  # (N, 5, T, P)
    mixture = music.any(axis=1, keepdims=True)  # (N, 1, T, P)
    return music, mixture


def to_bool_array(x: Any, name: str) -> np.ndarray:
    """Convert a numpy array or torch tensor holding a binary roll to numpy ``bool``.

    Args:
        x: array-like of bool, or numbers that are all 0 or 1.
        name: argument name used in the error message.

    Returns:
        ``np.ndarray`` of dtype ``bool`` with the shape of ``x``.

    Raises:
        ValueError: if a numeric ``x`` holds values other than 0 and 1.
    """
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        return arr
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name}: expected a binary roll (bool or 0/1), got other values")
    return arr.astype(bool)


def runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of on-cells along the last axis: the one note finder.

    Args:
        rows: ``[R, T]`` (bool or numeric; non-zero means on).

    Returns:
        ``(row, start, end)``: int64 ``[K]`` each -- the row, first step and end step
        (exclusive) of every run, sorted by row then start.
    """
    on = np.asarray(rows) != 0
    padded = np.zeros((on.shape[0], on.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = on
    edges = np.diff(padded, axis=1)  # (R, T + 1): +1 at a run's start, -1 at its end
    row, start = np.nonzero(edges == 1)  # row-major, so starts and ends pair up
    _, end = np.nonzero(edges == -1)
    return row.astype(np.int64), start.astype(np.int64), end.astype(np.int64)


def time_rows(roll: np.ndarray) -> np.ndarray:
    """``[..., T, P]`` -> ``[R, T]``: one row per pitch of every leading index."""
    return np.moveaxis(roll, -2, -1).reshape(-1, roll.shape[-2])


def roll_notes(roll2d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The notes of a 2-D roll: :func:`runs` over every pitch.

    Args:
        roll2d: ``[T, P]`` (non-zero means on).

    Returns:
        ``(rows, starts, ends)``: int64 ``[K]`` each -- the pitch row, first step and
        end step (exclusive) of every run, sorted by row then start.
    """
    return runs(time_rows(np.asarray(roll2d)))


def note_lengths(roll: np.ndarray) -> np.ndarray:
    """Length of the note (run along time) each on-cell belongs to.

    Args:
        roll: bool ``[..., T, P]``.

    Returns:
        int64 array of ``roll``'s shape: the run length at on-cells, 0 elsewhere.
    """
    rows = time_rows(roll)  # (R, T)
    row, start, end = runs(rows)
    delta = np.zeros((rows.shape[0], rows.shape[1] + 1), dtype=np.int64)
    np.add.at(delta, (row, start), end - start)  # the length from a run's start ...
    np.add.at(delta, (row, end), start - end)  # ... to its end
    out = np.cumsum(delta[:, :-1], axis=1)  # (R, T)
    out = out.reshape(*roll.shape[:-2], roll.shape[-1], roll.shape[-2])
    return np.moveaxis(out, -1, -2)


def onset_plane(first: np.ndarray, rows: np.ndarray, n_steps: int) -> np.ndarray:
    """The note starts of a song: bool ``[n_steps, 72]``, True at ``(first_k, rows_k)``.

    Notes whose row is -1 (outside the roll) or that start at or past ``n_steps`` are
    left out.

    Args:
        first: int ``[K]`` first step of each note.
        rows: int ``[K]`` roll row of each note (0..71, or -1).
        n_steps: the song's length in steps.
    """
    plane = np.zeros((n_steps, N_PITCH), dtype=bool)
    first, rows = np.asarray(first, dtype=np.int64), np.asarray(rows, dtype=np.int64)
    keep = (rows >= 0) & (first >= 0) & (first < n_steps)
    plane[first[keep], rows[keep]] = True
    return plane
