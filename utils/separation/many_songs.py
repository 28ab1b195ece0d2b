"""The first pass of many songs at once: windows of several songs in one batch.

:func:`utils.separation.first_pass.note_probabilities` separates one song's windows in
batches of ``batch_size``, so a song of 100 windows costs two full batches and one of
36 windows. :func:`song_note_probabilities` fills every batch with the windows of
consecutive songs instead -- a song's last windows and the next song's first ones go to
the model together -- and never gives the model a silent window (its probabilities are
zero, :func:`utils.separation.first_pass.skip_silent_windows`). Each song's windows are
still stitched in the order of their starts, in a buffer of bounded size, into the same
:class:`utils.separation.first_pass.NoteProbAccumulator`: a note's probabilities equal
the one-song path's up to float rounding (the model sees other batches), for a process
that does not sample. Songs are read from the iterable only as the batches need them.

Arrays: ``mixture`` bool ``[T, 72]``; model inputs float32 ``[B, 2, 64, 72]`` (the
mixture and its note starts), probabilities float ``[B, 5, 64, 72]``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from data.contract import N_MUSIC, PHRASE_STEPS, PHRASE_STRIDE
from data.roll import window_starts
from utils.separation.first_pass import (
    MixtureSong,
    NoteProbAccumulator,
    model_onsets,
    note_grid,
)
from utils.separation.windows import ProbFn, WindowStitch, cut_windows

ROUND_WINDOWS = 4  # windows of one round, silent ones included, at most this x batch_size


@dataclass(eq=False)  # hashed by identity
class _SongWindows:
    """One song on its way through the batches: its windows and what is stitched so far."""

    song: MixtureSong
    planes: np.ndarray  # bool (T, 2, 72): the mixture and its note starts
    starts: list[int]
    stitch: WindowStitch
    acc: NoteProbAccumulator
    queued: int = 0  # windows placed in a batch so far
    sounding: np.ndarray = field(init=False)  # bool per window

    def __post_init__(self) -> None:
        on = self.planes[:, 0].any(axis=1)  # (T,) a step with a sounding cell
        cum = np.concatenate([[0], np.cumsum(on)])
        ends = np.minimum(np.asarray(self.starts, dtype=np.int64) + PHRASE_STEPS, on.size)
        self.sounding = cum[ends] > cum[np.asarray(self.starts, dtype=np.int64)]

    @property
    def finished(self) -> bool:
        return self.queued == len(self.starts)

    def flush(self) -> None:
        """Accumulate the steps no window still to come covers."""
        if not self.starts:
            return
        final = self.starts[self.queued] if not self.finished else len(self.planes)
        begin, probs = self.stitch.flush(final)
        self.acc.add(begin, probs, self.planes[begin: begin + len(probs), 0])


def _song_windows(song: MixtureSong, span: int, n_music: int = N_MUSIC) -> _SongWindows:
    mixture = np.asarray(song.mixture, dtype=bool)
    planes = np.stack([mixture, model_onsets(song)], axis=1)  # (T, 2, 72)
    n_steps = mixture.shape[0]
    starts = window_starts(n_steps)
    held = min(span, starts[-1] + PHRASE_STEPS if starts else 1)  # a short song: its length
    return _SongWindows(song, planes, starts, WindowStitch(n_steps, held, n_music),
                        note_grid(song.notes, n_steps, n_music))


def song_note_probabilities(prob_fn: ProbFn, songs: Iterable[MixtureSong],
                            batch_size: int = 64, device: torch.device | None = None,
                            n_music: int = N_MUSIC
                            ) -> Iterator[tuple[MixtureSong, NoteProbAccumulator]]:
    """Every song's summed cell probabilities, the windows of consecutive songs batched
    together and silent windows never separated (module docstring).

    Args:
        prob_fn: model inputs ``float32 [B, 2, 64, 72]`` -> probabilities
            ``float [B, 5, 64, 72]`` (e.g. :meth:`utils.separation.separator.Separator.probs`).
        songs: the songs, read one at a time as the batches need them.
        batch_size: windows passed to ``prob_fn`` at once.
        device: where the windows are put (default CPU).
        n_music: the classes ``prob_fn`` gives (the instrument set's; the paper's 5).

    Yields:
        ``(song, accumulator)`` in the order of ``songs``, each as soon as its last window
        is stitched; the accumulator is
        :func:`utils.separation.first_pass.note_probabilities`'s for that song.
    """
    if batch_size <= 0:
        raise ValueError(f"'batch_size' must be > 0, got {batch_size}")
    per_round = ROUND_WINDOWS * batch_size
    span = per_round * PHRASE_STRIDE + PHRASE_STEPS  # a song adds <= per_round windows a round
    source = iter(songs)
    waiting: deque[_SongWindows] = deque()  # songs not yet yielded, in order
    exhausted = False
    while waiting or not exhausted:
        entries: list[tuple[_SongWindows, int, int | None]] = []  # (song, start, input)
        inputs: list[np.ndarray] = []
        while len(inputs) < batch_size and len(entries) < per_round:
            state = waiting[-1] if waiting and not waiting[-1].finished else None
            if state is None:
                song = next(source, None)
                if song is None:
                    exhausted = True
                    break
                waiting.append(state := _song_windows(song, span, n_music))
                if state.finished:  # a song without steps: no window
                    continue
            j = state.queued
            state.queued += 1
            if not state.sounding[j]:
                entries.append((state, state.starts[j], None))
                continue
            entries.append((state, state.starts[j], len(inputs)))
            inputs.append(cut_windows(state.planes, [state.starts[j]])[0])
        probs = _run(prob_fn, inputs, device)
        for state, start, k in entries:
            state.stitch.add(start, None if k is None else probs[k])
        for state in dict.fromkeys(s for s, _, _ in entries):  # each song touched, once
            state.flush()
        while waiting and waiting[0].finished:
            done = waiting.popleft()
            yield done.song, done.acc


def _run(prob_fn: ProbFn, inputs: list[np.ndarray], device: torch.device | None
         ) -> np.ndarray | None:
    """``prob_fn`` on the stacked windows: float32 ``[B, C, 64, 72]`` (None: no window)."""
    if not inputs:
        return None
    batch = torch.from_numpy(np.stack(inputs)).float()  # (B, 2, 64, 72)
    if device is not None:
        batch = batch.to(device)
    with torch.inference_mode():
        return prob_fn(batch).float().cpu().numpy()
