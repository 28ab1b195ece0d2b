"""Pure numpy piano-roll functions (SPEC section 2).

Axis orders (see :mod:`data.contract`):

* song / phrase roll: ``bool [time, pitch, instrument]`` -- a phrase is ``[64, 72, 6]``;
* model order: ``[N, channel, time, pitch]`` -- ``music [N, 5, 64, 72]``,
  ``mixture [N, 1, 64, 72]``.

Windowing policy: bars are counted from step 0 (4/4 from tick 0). A song of ``T`` steps has
``ceil(T / 16)`` bars; its last, partial bar is zero-padded to 16 steps. Windows of 4 bars
start at every bar whose window fits inside those padded bars, so a song shorter than 4 bars
yields no window. Windows are never padded past the song's last bar (a padded bar would be
empty and fail the bar-density filter anyway).
"""

from __future__ import annotations

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

BAR_CELLS = STEPS_PER_BAR * N_PITCH * N_INSTRUMENTS  # 6,912 cells in one bar of a phrase


def _check_roll(roll: np.ndarray, name: str = "roll") -> None:
    if roll.ndim != 3 or roll.shape[1:] != (N_PITCH, N_INSTRUMENTS):
        raise ValueError(f"{name} must have shape [T, {N_PITCH}, {N_INSTRUMENTS}], "
                         f"got {list(roll.shape)}")


def window_view(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Read-only windows of a song roll, without copying.

    Args:
        roll: bool ``[T, 72, 6]`` song roll.

    Returns:
        ``(windows, starts)``: a strided view bool ``[N, 64, 72, 6]`` and int64 ``[N]``
        start steps (multiples of 16). ``N = max(ceil(T / 16) - 3, 0)``.
    """
    _check_roll(roll)
    n_bars = -(-roll.shape[0] // STEPS_PER_BAR)
    n_windows = max(n_bars - BARS_PER_PHRASE + 1, 0)
    padded = np.zeros((n_bars * STEPS_PER_BAR, N_PITCH, N_INSTRUMENTS), dtype=bool)
    padded[: roll.shape[0]] = roll
    starts = np.arange(n_windows, dtype=np.int64) * PHRASE_STRIDE
    if n_windows == 0:
        return np.zeros((0, PHRASE_STEPS, N_PITCH, N_INSTRUMENTS), dtype=bool), starts
    view = np.lib.stride_tricks.sliding_window_view(padded, PHRASE_STEPS, axis=0)
    # (n_steps - 63, 72, 6, 64) -> every bar -> (N, 64, 72, 6)
    view = np.moveaxis(view[::PHRASE_STRIDE], -1, 1)
    return view, starts


def phrase_windows(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut a song roll into 4-bar windows, one starting at every bar.

    Args:
        roll: bool ``[T, 72, 6]`` song roll.

    Returns:
        ``(phrases, starts)``: bool ``[N, 64, 72, 6]`` (a copy) and int64 ``[N]`` start
        steps. The song's last partial bar is zero-padded (module docstring).
    """
    view, starts = window_view(roll)
    return np.ascontiguousarray(view), starts


def bar_counts(phrases: np.ndarray) -> np.ndarray:
    """On-cells per bar of each phrase.

    Args:
        phrases: bool ``[N, 64, 72, 6]``.

    Returns:
        int64 ``[N, 4]`` (``[0, 4]`` when there are no phrases).
    """
    n = phrases.shape[0]
    # explicit sizes: ``-1`` cannot be inferred when there are no phrases (n == 0)
    bars = phrases.reshape(n, BARS_PER_PHRASE, STEPS_PER_BAR, N_PITCH * N_INSTRUMENTS)
    return bars.sum(axis=(2, 3), dtype=np.int64)


def keep_phrases(phrases: np.ndarray, has_melody: bool,
                 min_bar_density: float = MIN_BAR_DENSITY) -> np.ndarray:
    """The phrase filters of SPEC section 2.

    A window is dropped when any of its 4 bars has fewer than ``min_bar_density`` (1%)
    of the bar's ``16 x 72 x 6`` cells on, and -- in a file with a melody -- when its
    melody channel has fewer than 24 cells on.

    Args:
        phrases: bool ``[N, 64, 72, 6]``.
        has_melody: whether the song has a melody track.
        min_bar_density: fraction of a bar's cells that must be on (SPEC: 0.01).

    Returns:
        bool ``[N]`` mask of the windows to keep.
    """
    if phrases.ndim != 4 or phrases.shape[1:] != (PHRASE_STEPS, N_PITCH, N_INSTRUMENTS):
        raise ValueError(f"phrases must have shape [N, {PHRASE_STEPS}, {N_PITCH}, "
                         f"{N_INSTRUMENTS}], got {list(phrases.shape)}")
    keep = (bar_counts(phrases) >= min_bar_density * BAR_CELLS).all(axis=1)
    if has_melody:
        melody_cells = phrases[..., MELODY].sum(axis=(1, 2))
        keep &= melody_cells >= MIN_MELODY_CELLS
    return keep


def music_and_mixture(phrases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contract order -> model order; mixture = OR over the five music instruments.

    Args:
        phrases: bool ``[N, T, 72, 6]`` (T is 64 for a phrase).

    Returns:
        ``(music, mixture)``: bool ``[N, 5, T, 72]`` (instruments 1..5, melody removed) and
        bool ``[N, 1, T, 72]``.
    """
    if phrases.ndim != 4 or phrases.shape[2:] != (N_PITCH, N_INSTRUMENTS):
        raise ValueError(f"phrases must have shape [N, T, {N_PITCH}, {N_INSTRUMENTS}], "
                         f"got {list(phrases.shape)}")
    music = np.ascontiguousarray(np.moveaxis(phrases[..., MELODY + 1:], -1, 1))  # (N, 5, T, P)
    mixture = music.any(axis=1, keepdims=True)  # (N, 1, T, P)
    return music, mixture


def music_to_roll(music: np.ndarray) -> np.ndarray:
    """Model order -> contract order, with an empty melody channel.

    Args:
        music: ``[N, 5, T, P]`` (any dtype; non-zero means on).

    Returns:
        bool ``[N, T, P, 6]`` with channel 0 (melody) all False.
    """
    if music.ndim != 4 or music.shape[1] != N_INSTRUMENTS - 1:
        raise ValueError(f"music must have shape [N, {N_INSTRUMENTS - 1}, T, P], "
                         f"got {list(music.shape)}")
    n, _, t, p = music.shape
    roll = np.zeros((n, t, p, N_INSTRUMENTS), dtype=bool)
    roll[..., MELODY + 1:] = np.moveaxis(music != 0, 1, -1)
    return roll


def note_runs(row: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive on-cells of one pitch: each run is one note.

    Args:
        row: ``[T]`` (bool or numeric; non-zero means on).

    Returns:
        ``[(start, end), ...]`` with ``end`` exclusive, in time order.
    """
    on = np.asarray(row).reshape(-1) != 0
    edges = np.diff(np.concatenate(([False], on, [False])).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), ends.tolist()))


def roll_notes(roll2d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised :func:`note_runs` over every pitch of a 2-D roll.

    Args:
        roll2d: ``[T, P]`` (non-zero means on).

    Returns:
        ``(rows, starts, ends)``: int64 ``[K]`` each -- the pitch row, first step and
        end step (exclusive) of every run, sorted by row then start.
    """
    on = np.asarray(roll2d) != 0  # (T, P)
    padded = np.zeros((on.shape[0] + 2, on.shape[1]), dtype=np.int8)
    padded[1:-1] = on
    edges = np.diff(padded, axis=0).T  # (P, T + 1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    return rows.astype(np.int64), starts.astype(np.int64), ends.astype(np.int64)
