"""Whole-song windowing: a song of any length through a window-probability function.

A whole song is cut into 64-step windows by the one windowing rule of
:func:`data.roll.window_starts` (a window every bar, the last one zero-padded past the
end); the windows are separated in batches and the per-window instrument probabilities
are averaged over all windows that cover a cell (:func:`song_prob_chunks`, which yields
the averaged probabilities chunk by chunk, so memory does not grow with the song).

Axis orders: song mixture ``bool [T, 72]``; stitched probabilities ``float32 [n, 72, C]``
(instrument last, as the storage rolls of ``data/``); model tensors
``float32 [B, C, 64, 72]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from data.contract import N_PITCH, PHRASE_STEPS, PHRASE_STRIDE
from data.roll import window_starts

# Maps model inputs float32 [B, 1, 64, 72] (the mixture) or [B, 2, 64, 72] (the mixture and
# its note starts) to instrument probabilities float32 [B, 5, 64, 72].
ProbFn = Callable[[torch.Tensor], torch.Tensor]


def song_prob_chunks(prob_fn: ProbFn, mixture: np.ndarray, batch_size: int = 64,
                     device: torch.device | None = None, progress: bool = False,
                     onsets: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Stitched instrument probabilities of a whole song, chunk by chunk, in bounded memory.

    The windows of :func:`data.roll.window_starts` are cut and separated ``batch_size``
    at a time; their probabilities are summed into a buffer of ``batch_size * 16 + 64``
    steps. After each batch, the steps that no later window covers are final: they are
    averaged over the windows that cover them, yielded, and dropped from the buffer.
    Memory therefore depends on ``batch_size``, not on the song's length.

    Args:
        prob_fn: model inputs ``float32 [B, F, 64, 72]`` -> probabilities
            ``float [B, C, 64, 72]`` (:data:`ProbFn`).
        mixture: ``bool [T, 72]`` song mixture (any T).
        batch_size: windows passed to ``prob_fn`` at once.
        device: where the mixture tensors are put (default CPU).
        progress: show a tqdm bar in windows/s.
        onsets: ``bool [T, 72]`` the mixture's note starts; when given, ``prob_fn`` gets
            them as a second input channel (``F = 2``), else only the mixture (``F = 1``).

    Yields:
        ``(first step, probs)``: ``probs`` float32 ``[n, 72, C]`` for the steps
        ``first .. first + n - 1``; the chunks follow each other and cover ``0 .. T - 1``.
    """
    if batch_size <= 0:
        raise ValueError(f"'batch_size' must be > 0, got {batch_size}")
    mixture = np.asarray(mixture, dtype=bool)
    if mixture.ndim != 2 or mixture.shape[1] != N_PITCH:
        raise ValueError(f"song mixture must have shape [T, {N_PITCH}], got {list(mixture.shape)}")
    n_steps = mixture.shape[0]
    planes = mixture[:, None, :]  # (T, F, 72)
    if onsets is not None:
        onsets = np.asarray(onsets, dtype=bool)
        if onsets.shape != mixture.shape:
            raise ValueError(f"onsets must have the mixture's shape {list(mixture.shape)}, "
                             f"got {list(onsets.shape)}")
        planes = np.stack([mixture, onsets], axis=1)
    starts = window_starts(n_steps)
    stitch = WindowStitch(n_steps, batch_size * PHRASE_STRIDE + PHRASE_STEPS)
    with tqdm(total=len(starts), unit="window", desc="separating", disable=not progress,
              dynamic_ncols=True) as bar:
        for b in range(0, len(starts), batch_size):
            batch_starts = starts[b: b + batch_size]
            batch = torch.from_numpy(cut_windows(planes, batch_starts)).float()
            if device is not None:
                batch = batch.to(device)
            probs = prob_fn(batch).float().cpu().numpy()  # (B, C, 64, 72)
            for start, window in zip(batch_starts, probs):
                stitch.add(start, window)
            yield stitch.flush(starts[b + batch_size] if b + batch_size < len(starts)
                               else n_steps)
            bar.update(len(batch_starts))


def cut_windows(planes: np.ndarray, starts: list[int]) -> np.ndarray:
    """The windows of a song that start at ``starts``, the last ones zero-padded past the end.

    Args:
        planes: bool ``[T, F, 72]`` the song's input planes (the mixture, its note starts).
        starts: first steps of the windows.

    Returns:
        bool ``[B, F, 64, 72]``.
    """
    windows = np.zeros((len(starts), PHRASE_STEPS, planes.shape[1], N_PITCH), dtype=bool)
    for i, start in enumerate(starts):
        piece = planes[start: start + PHRASE_STEPS]
        windows[i, : len(piece)] = piece
    return windows.transpose(0, 2, 1, 3)  # (B, F, 64, 72)


class WindowStitch:
    """One song's window probabilities averaged over the windows that cover each step, in a
    buffer of ``span`` steps (memory independent of the song's length).

    Windows are added in the order of their starts; :meth:`flush` then hands out the steps
    that no window still to come covers. Every window added between two flushes must end
    within ``span`` steps of the first step not yet flushed.

    Args:
        n_steps: the song's steps T.
        span: steps held at once.
        channels: C, the probabilities' channels (None: those of the first window added).
    """

    def __init__(self, n_steps: int, span: int, channels: int | None = None) -> None:
        self.n_steps, self.span, self.lo = n_steps, span, 0
        self.total: np.ndarray | None = None  # (span, 72, C) float64 sums, step lo + i at i
        if channels is not None:
            self.total = np.zeros((span, N_PITCH, channels), dtype=np.float64)
        self.count = np.zeros((span, 1, 1), dtype=np.float64)  # windows covering each step

    def add(self, start: int, probs: np.ndarray | None) -> None:
        """Add the window starting at song step ``start``: float ``[C, 64, 72]``
        probabilities, or None for a window of zeros (a silent window, never separated)."""
        at = start - self.lo
        if probs is not None:
            if self.total is None:
                self.total = np.zeros((self.span, N_PITCH, probs.shape[0]), dtype=np.float64)
            self.total[at: at + PHRASE_STEPS] += np.transpose(probs, (1, 2, 0))
        self.count[at: at + PHRASE_STEPS] += 1.0

    def flush(self, final: int) -> tuple[int, np.ndarray]:
        """The averaged steps before ``final`` (the first step of the next window to come,
        or T) not yet flushed: ``(first step, float32 [n, 72, C])``; they leave the buffer."""
        assert self.total is not None, "nothing added"
        done = min(final, self.n_steps) - self.lo  # steps [lo, lo + done) are final
        out = (self.total[:done] / np.maximum(self.count[:done], 1.0)).astype(np.float32)
        span, lo = self.span, self.lo
        self.total[: span - done] = self.total[done:].copy()  # shift the buffer by `done`
        self.total[span - done:] = 0.0
        self.count[: span - done] = self.count[done:].copy()
        self.count[span - done:] = 0.0
        self.lo += done
        return lo, out
