"""Note-level separation: the input's own notes back, each given one instrument.

The song's mixture is separated window by window and the per-cell instrument
probabilities are stitched (:mod:`utils.separation.first_pass`). Each input note then
gets exactly one instrument from the cells it covers -- its quantised steps at its
pitch row, one cell for a note shorter than a step (the data contract's quantisation):

* a pitched note takes the most probable of piano, guitar, bass and strings, averaged over
  its cells (cells where several notes overlap share their probabilities);
* a note of the input's drum channel stays drums (with ``drums_by_model`` it takes the
  most probable of all five instruments at its drum row instead; a drum key that the drum
  merge does not keep has no row and stays drums);
* a pitched note outside MIDI 24..95 is read at the nearest row the model covers (row 0
  or 71) during the note; if nothing sounds there then, at that row's average over the
  song (or the nearest row that sounds at all).

The probabilities are accumulated chunk by chunk as they are stitched, so memory stays
flat in the song's length; the song's second pass (:mod:`utils.separation.second_pass`)
then decides the pitched notes again. :mod:`utils.separation.file_job` reads a MIDI
file and writes the separation out.

Arrays: ``mixture`` bool ``[T, 72]``; chunk probabilities float32 ``[n, 72, 5]``
(instrument last, :data:`data.contract.MUSIC_INSTRUMENTS` order); per-note values are
``[K]`` or ``[K, 5]`` in :class:`data.midi.SongNotes` order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from data.contract import MUSIC_INSTRUMENTS, N_MUSIC
from data.instruments import PAPER, InstrumentSet
from data.song_roll import out_of_range
from utils.separation.first_pass import (
    FirstPass,
    MixtureSong,
    NoteProbAccumulator,
    note_probabilities,
    skip_silent_windows,
)
from utils.separation.many_songs import song_note_probabilities
from utils.separation.register_prior import NoSecondPass
from utils.separation.second_pass import SecondPass
from utils.separation.windows import ProbFn

NO_SECOND_PASS = NoSecondPass()
"""The default of the functions here: the first pass decides."""
DECIDED_BY: tuple[str, ...] = ("model", "nearest_row", "drum_channel")
"""How a note's instrument was decided (:attr:`NoteAssignment.decided_by` indexes this)."""
MODEL, NEAREST_ROW, DRUM_CHANNEL = range(len(DECIDED_BY))


@dataclass
class NoteAssignment:
    """One instrument per input note.

    Attributes:
        instrument: int64 ``[K]`` contract class 1..C (piano .. drum for the paper's set;
            the drum is the last class C).
        probs: float32 ``[K, C]`` mean instrument probabilities behind each decision (NaN
            for a drum-channel note with no cell in the roll).
        decided_by: int64 ``[K]`` index into :data:`DECIDED_BY`.
        presence: bool ``[4]`` the pitched instruments the second pass predicts in the song
            (a learned song pass with a presence head), or None.
    """

    instrument: np.ndarray
    probs: np.ndarray
    decided_by: np.ndarray
    presence: np.ndarray | None = None

    def counts(self, names: tuple[str, ...] = MUSIC_INSTRUMENTS) -> dict[str, int]:
        """Notes per instrument of the classes ``names``, in their order."""
        per = np.bincount(self.instrument - 1, minlength=len(names))
        return dict(zip(names, per.tolist()))


def assign_notes(acc: NoteProbAccumulator, song: MixtureSong,
                 second_pass: SecondPass = NO_SECOND_PASS,
                 drums_by_model: bool = False) -> NoteAssignment:
    """Decide each note's instrument from accumulated probabilities (module docstring).

    Args:
        acc: the accumulator, fed with every chunk of the song, built with
            :func:`utils.separation.first_pass.note_grid` of the same notes.
        song: the song (its notes, and those that make up the mixture).
        second_pass: the song-level second pass over the pitched notes
            (:mod:`utils.separation.second_pass`).
        drums_by_model: let the model choose the instrument of drum-channel notes too.

    Returns:
        The :class:`NoteAssignment`.
    """
    notes = song.notes
    k = len(notes)
    first_pass = FirstPass.of(acc, song)
    probs, presence = second_pass.decide_song(first_pass)
    pitched = first_pass.pitched
    drum = probs.shape[1]  # the last class; the pitched ones come before it
    instrument = np.full(k, drum, dtype=np.int64)
    instrument[pitched] = np.argmax(probs[pitched, :drum - 1], axis=1) + 1
    by_model = notes.is_drum & (acc.cells > 0) & drums_by_model
    instrument[by_model] = np.argmax(probs[by_model], axis=1) + 1
    decided_by = np.full(k, MODEL, dtype=np.int64)
    decided_by[out_of_range(notes)] = NEAREST_ROW
    decided_by[notes.is_drum & ~by_model] = DRUM_CHANNEL
    return NoteAssignment(instrument=instrument, probs=probs.astype(np.float32),
                          decided_by=decided_by, presence=presence)


def separate_notes(prob_fn: ProbFn, song: MixtureSong, second_pass: SecondPass = NO_SECOND_PASS,
                   *, batch_size: int = 64, device: torch.device | None = None,
                   drums_by_model: bool = False, progress: bool = False,
                   n_music: int = N_MUSIC) -> NoteAssignment:
    """Separate a song note by note (module docstring), in bounded memory.

    Args:
        prob_fn: model inputs ``float32 [B, 2, 64, 72]`` (the mixture and its note starts)
            -> probabilities ``float [B, 5, 64, 72]`` (e.g.
            :meth:`utils.separation.separator.Separator.probs`; a separator's own
            :meth:`~utils.separation.separator.Separator.separate_notes` calls this).
        song: the song's notes and mixture (:class:`MixtureSong`).
        second_pass: the song-level second pass (:func:`assign_notes`).
        batch_size: windows separated at once.
        device: where the windows are put.
        drums_by_model: let the model choose for drum-channel notes too.
        progress: show a progress bar in windows/s.
        n_music: the classes ``prob_fn`` gives (the instrument set's; 5 for the paper's).

    Returns:
        The :class:`NoteAssignment`.
    """
    acc = note_probabilities(prob_fn, song, batch_size, device, progress, n_music)
    return assign_notes(acc, song, second_pass, drums_by_model)


def separate_songs(prob_fn: ProbFn, songs: Iterable[MixtureSong],
                   second_pass: SecondPass = NO_SECOND_PASS, *, batch_size: int = 64,
                   device: torch.device | None = None, n_music: int = N_MUSIC
                   ) -> Iterator[NoteAssignment]:
    """Separate songs note by note as :func:`separate_notes` does, the windows of
    consecutive songs in one batch and silent windows never separated
    (:func:`utils.separation.many_songs.song_note_probabilities`); one assignment per song,
    in order, the songs read as the batches need them. ``n_music``: the classes
    ``prob_fn`` gives."""
    for song, acc in song_note_probabilities(prob_fn, songs, batch_size, device, n_music):
        yield assign_notes(acc, song, second_pass)


class SongSeparator(Protocol):
    """What separates a song note by note: a :class:`NoteSeparator`, or a trained
    :class:`utils.separation.separator.Separator`; :func:`instruments_of` tells the classes
    it gives."""

    def separate_notes(self, song: MixtureSong, *, drums_by_model: bool = False,
                       skip_silent: bool = False, progress: bool = False) -> NoteAssignment:
        ...

    def separate_songs(self, songs: Iterable[MixtureSong]) -> Iterator[NoteAssignment]:
        ...


def instruments_of(separator: object) -> InstrumentSet:
    """The instrument set a song separator gives: its ``instruments``, the paper's for one
    that does not say (a stand-in giving the paper's five channels)."""
    found = getattr(separator, "instruments", PAPER)
    return found if isinstance(found, InstrumentSet) else PAPER


@dataclass
class NoteSeparator:
    """A window-probability function and a second pass: a song separator.

    Attributes:
        prob_fn: the window-probability function (:func:`separate_notes`).
        second_pass: the song-level second pass.
        batch_size: windows separated at once.
        device: where the windows are put.
        instruments: the classes ``prob_fn`` gives (the paper's five by default).
    """

    prob_fn: ProbFn
    second_pass: SecondPass = NO_SECOND_PASS
    batch_size: int = 64
    device: torch.device | None = None
    instruments: InstrumentSet = PAPER

    def separate_notes(self, song: MixtureSong, *, drums_by_model: bool = False,
                       skip_silent: bool = False, progress: bool = False) -> NoteAssignment:
        """Separate ``song`` note by note (:func:`separate_notes`); with ``skip_silent`` the
        model never runs on a silent window (:func:`skip_silent_windows`)."""
        n_music = self.instruments.n_music
        prob_fn = skip_silent_windows(self.prob_fn, n_music) if skip_silent else self.prob_fn
        return separate_notes(prob_fn, song, self.second_pass, batch_size=self.batch_size,
                              device=self.device, drums_by_model=drums_by_model,
                              progress=progress, n_music=n_music)

    def separate_songs(self, songs: Iterable[MixtureSong]) -> Iterator[NoteAssignment]:
        """Separate many songs, batched across songs (:func:`separate_songs`)."""
        return separate_songs(self.prob_fn, songs, self.second_pass,
                              batch_size=self.batch_size, device=self.device,
                              n_music=self.instruments.n_music)
