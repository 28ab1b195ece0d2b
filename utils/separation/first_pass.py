"""The first pass of note-level separation: each note's probabilities from the windows.

The song's mixture is separated window by window and the per-cell instrument
probabilities are stitched (:func:`utils.separation.windows.song_prob_chunks`); each note
sums the probabilities of the cells it covers -- its quantised steps at its pitch row, one
cell for a note shorter than a step (the data contract's quantisation) -- in a
:class:`NoteProbAccumulator`, chunk by chunk, so memory stays flat in the song's length.
A :class:`FirstPass` is what the second passes read: every note's mean probabilities and
what is derived from the notes once (their rows, steps, which are pitched and which the
second pass decides).

Arrays: ``mixture`` bool ``[T, 72]``; chunk probabilities float32 ``[n, 72, 5]``
(instrument last, :data:`data.contract.MUSIC_INSTRUMENTS` order); per-note values are
``[K]`` or ``[K, 5]`` in :class:`data.midi.SongNotes` order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from data.contract import N_MUSIC, N_PITCH
from data.midi import SongNotes
from data.roll import onset_plane
from data.song_roll import nearest_rows
from utils.separation.windows import ProbFn, song_prob_chunks


@dataclass
class MixtureSong:
    """A song to separate note by note: its notes and the mixture they make.

    Attributes:
        notes: the song's notes (:func:`data.midi.notes_from_score`).
        mixture: bool ``[T, 72]`` the song's mixture (:func:`data.song_roll.load_mixture`).
        in_mixture: bool ``[K]`` the notes that make up ``mixture`` (their starts are the
            mixture's note starts, and only they are decided by a second pass); None =
            every note.
    """

    notes: SongNotes
    mixture: np.ndarray
    in_mixture: np.ndarray | None = None


class NoteProbAccumulator:
    """Sums each note's cell probabilities over stitched chunks of a song.

    Args:
        first, stop: int ``[K]`` grid steps of each note (stop exclusive, > first).
        rows: int ``[K]`` row each note is read at (-1: none).
        n_music: the model's classes (the instrument set's; the paper's five by default).
    """

    def __init__(self, first: np.ndarray, stop: np.ndarray, rows: np.ndarray,
                 n_music: int = N_MUSIC) -> None:
        self.first = np.asarray(first, dtype=np.int64)
        self.stop = np.asarray(stop, dtype=np.int64)
        self.rows = np.asarray(rows, dtype=np.int64)
        k = self.rows.size
        self.sums = np.zeros((k, n_music), dtype=np.float64)  # probability sums per note
        self.cells = np.zeros(k, dtype=np.int64)  # sounding cells under each note
        self.row_sums = np.zeros((N_PITCH, n_music), dtype=np.float64)  # whole-song, per row
        self.row_cells = np.zeros(N_PITCH, dtype=np.int64)

    def add(self, begin: int, probs: np.ndarray, mixture: np.ndarray) -> None:
        """Add one chunk.

        Args:
            begin: song step of the chunk's first step.
            probs: float ``[n, 72, 5]`` stitched probabilities of steps ``begin..begin+n-1``.
            mixture: bool ``[n, 72]`` the mixture at those steps (only sounding cells count).
        """
        n = probs.shape[0]
        on = np.asarray(mixture, dtype=bool)
        masked = np.where(on[..., None], probs, 0.0)  # (n, 72, 5)
        self.row_sums += masked.sum(axis=0)
        self.row_cells += on.sum(axis=0)
        cum = np.zeros((n + 1, N_PITCH, self.sums.shape[1]), dtype=np.float64)  # prefix sums
        np.cumsum(masked, axis=0, out=cum[1:])
        cum_on = np.zeros((n + 1, N_PITCH), dtype=np.int64)
        np.cumsum(on, axis=0, out=cum_on[1:])
        hit = np.flatnonzero((self.rows >= 0) & (self.first < begin + n) & (self.stop > begin))
        lo = np.clip(self.first[hit] - begin, 0, n)
        hi = np.clip(self.stop[hit] - begin, 0, n)
        row = self.rows[hit]
        self.sums[hit] += cum[hi, row] - cum[lo, row]
        self.cells[hit] += cum_on[hi, row] - cum_on[lo, row]

    def row_average(self, row: int) -> np.ndarray | None:
        """Mean probabilities over the song at the nearest row that sounds, or None."""
        sounding = np.flatnonzero(self.row_cells)
        if sounding.size == 0:
            return None
        nearest = int(sounding[np.argmin(np.abs(sounding - row))])  # ties: the lower row
        return self.row_sums[nearest] / self.row_cells[nearest]


def first_pass_probs(acc: NoteProbAccumulator, notes: SongNotes) -> np.ndarray:
    """Each note's mean cell probabilities: float64 ``[K, 5]``.

    A pitched note with no sounding cell (outside the covered rows, with nothing at its
    nearest row then) takes that row's average over the song; a drum-channel note without
    a cell reads NaN.
    """
    probs = np.full((len(notes), acc.sums.shape[1]), np.nan, dtype=np.float64)
    has = acc.cells > 0
    probs[has] = acc.sums[has] / acc.cells[has, None]
    for i in np.flatnonzero(~notes.is_drum & ~has).tolist():  # silent row: song average
        fallback = acc.row_average(int(acc.rows[i]))
        probs[i] = 0.0 if fallback is None else fallback
    return probs


def note_grid(notes: SongNotes, n_steps: int, n_music: int = N_MUSIC) -> NoteProbAccumulator:
    """An empty accumulator for the notes of a song of ``n_steps`` steps.

    Notes are read at :func:`data.song_roll.nearest_rows` on their quantised steps; steps
    past the song's end are ignored.
    """
    first, stop = notes.steps()
    return NoteProbAccumulator(np.minimum(first, n_steps), np.minimum(stop, n_steps),
                               nearest_rows(notes), n_music)


def skip_silent_windows(prob_fn: ProbFn, n_music: int = N_MUSIC) -> ProbFn:
    """``prob_fn`` that never runs the model on a window whose mixture is silent.

    A silent window holds no sounding cell, and only sounding cells are read (every window
    that covers a sounding cell holds it), so its probabilities -- zero here -- change no
    note's instrument. A song with one note in bar 1999 then costs the few windows around
    that note, not 2,000. A batch without silent windows goes to ``prob_fn`` unchanged.
    """
    def probs(batch: torch.Tensor) -> torch.Tensor:
        sounding = batch[:, 0].flatten(1).any(dim=1)  # channel 0: the mixture
        if bool(sounding.all()):
            return prob_fn(batch)
        out = torch.zeros((batch.shape[0], n_music, *batch.shape[2:]), device=batch.device)
        if bool(sounding.any()):
            out[sounding] = prob_fn(batch[sounding]).to(out.dtype)
        return out
    return probs


def note_probabilities(prob_fn: ProbFn, song: MixtureSong, batch_size: int = 64,
                       device: torch.device | None = None, progress: bool = False,
                       n_music: int = N_MUSIC) -> NoteProbAccumulator:
    """Every note's summed cell probabilities, the song stitched in bounded memory, the
    note starts of ``song.in_mixture``'s notes given to the model (the first pass of
    :meth:`utils.separation.separator.Separator.separate_notes`)."""
    mixture = np.asarray(song.mixture, dtype=bool)
    acc = note_grid(song.notes, mixture.shape[0], n_music)
    for begin, probs in song_prob_chunks(prob_fn, mixture, batch_size, device, progress,
                                         model_onsets(song)):
        acc.add(begin, probs, mixture[begin: begin + len(probs)])
    return acc


def model_onsets(song: MixtureSong) -> np.ndarray:
    """bool ``[T, 72]`` the note starts the model is given: those of ``song.in_mixture``'s
    notes, where the mixture sounds."""
    mixture = np.asarray(song.mixture, dtype=bool)
    notes, in_mixture = song.notes, song.in_mixture
    first, _ = notes.steps()
    rows = notes.rows() if in_mixture is None else np.where(in_mixture, notes.rows(), -1)
    return onset_plane(first, rows, mixture.shape[0]) & mixture


@dataclass
class FirstPass:
    """A song's first pass, as the second passes read it: the notes' stitched
    probabilities and what is derived from the notes, once.

    Attributes:
        probs: float ``[K, 5]`` each note's mean cell probabilities
            (:func:`first_pass_probs`; NaN for a drum-channel note without a cell).
        rows: int64 ``[K]`` the row each note is read at (-1: none).
        first, stop: int64 ``[K]`` grid steps of each note (stop exclusive).
        velocity: int64 ``[K]`` note-on velocities 1..127.
        pitched: bool ``[K]`` the notes not on the drum channel.
        chosen: bool ``[K]`` the pitched notes of the mixture: those a learned song pass
            decides again.
        row_sums: float ``[72, 5]`` the song's probability sums per row
            (:attr:`NoteProbAccumulator.row_sums`).
    """

    probs: np.ndarray
    rows: np.ndarray
    first: np.ndarray
    stop: np.ndarray
    velocity: np.ndarray
    pitched: np.ndarray
    chosen: np.ndarray
    row_sums: np.ndarray

    @classmethod
    def of(cls, acc: NoteProbAccumulator, song: MixtureSong) -> FirstPass:
        """The first pass of ``song`` from its accumulator (fed with every chunk)."""
        notes = song.notes
        pitched = ~notes.is_drum
        chosen = pitched if song.in_mixture is None else \
            pitched & np.asarray(song.in_mixture, dtype=bool)
        first, stop = notes.steps()
        return cls(probs=first_pass_probs(acc, notes), rows=acc.rows, first=first,
                   stop=stop, velocity=notes.velocity.astype(np.int64), pitched=pitched,
                   chosen=chosen, row_sums=acc.row_sums)
