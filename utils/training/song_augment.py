"""Song-level augmentation of the learned song pass's training songs.

A song pass trained on one corpus learns its habits: "every song has strings", or "the
bass sits in this register". Each training song is therefore also given, ``copies`` times,
as a changed song whose first pass is computed again (the separator sees the changed
mixture, not the original one with labels moved):

* **transposed**: every pitched note moved by ``shift`` semitones, drawn per copy from
  ``-semitones..semitones`` (drum-channel notes stay; a note moved out of the roll's
  MIDI 24..95 leaves the mixture, as in :func:`data.song_roll.load_mixture`);
* **reduced**: one or two of the song's pitched instruments (drawn per copy) taken out of
  the mixture: their notes are neither fed nor scored, and the mixture is rebuilt from the
  notes still fed. At least one pitched instrument always stays, so a song of one
  pitched instrument is only transposed.

Copy ``c`` of the ``i``-th song of a split draws from ``numpy.random.default_rng([seed,
i, c])``: the copies do not depend on how many were asked for or which songs came
before, and the first-pass cache (:mod:`utils.song_pass_training`) holds them under a key
of :meth:`SongAugment.key`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from data.contract import N_PITCH, N_PITCHED
from data.song_roll import paint_notes
from utils.evaluation.song_modes import mode_truths
from utils.evaluation.songs import SongTruth, SplitSongs

AUGMENT_SEMITONES = 5
"""Largest transposition of an augmented copy, in semitones either way."""
MAX_REMOVED = 2
"""Most pitched instruments taken out of one copy."""
AUGMENT_FORMAT = 1  # changes when the copies' recipe changes: cached copies are redone


def fed_mixture(truth: SongTruth, fed: np.ndarray) -> np.ndarray:
    """bool ``[T, 72]`` the mixture of the ``fed`` notes of a song (``T`` as the song's).

    Each fed note paints its quantised steps at its roll row (:meth:`data.midi.SongNotes.rows`:
    drum keys through the drum merge; a note without a row paints nothing).
    """
    n_steps = truth.mixture.shape[0]
    first, stop = truth.notes.steps()
    rows = truth.notes.rows()
    keep = np.asarray(fed, dtype=bool) & (rows >= 0) & (first < n_steps)
    mixture = np.zeros((n_steps, N_PITCH), dtype=bool)
    paint_notes(mixture, first[keep], np.minimum(stop[keep], n_steps), rows[keep])
    return mixture


def changed_song(truth: SongTruth, shift: int, removed: Iterable[int]) -> SongTruth:
    """``truth`` transposed by ``shift`` semitones and without the instruments ``removed``.

    Args:
        truth: the song and its notes' true classes.
        shift: semitones every pitched note moves (pitches stay within MIDI 0..127).
        removed: true classes (1..4) whose notes leave the mixture and the scoring.

    Returns:
        A new :class:`utils.evaluation.songs.SongTruth`: its notes moved, ``true`` -1 and
        ``fed`` False for the removed notes, the mixture rebuilt from the fed notes
        (:func:`fed_mixture`).
    """
    notes = truth.notes
    pitch = np.where(notes.is_drum, notes.pitch, np.clip(notes.pitch + shift, 0, 127))
    gone = np.isin(truth.true, list(removed))
    fed = (truth.true > 0) if truth.fed is None else np.asarray(truth.fed, dtype=bool)
    fed = fed & ~gone
    changed = replace(truth, notes=replace(notes, pitch=pitch.astype(notes.pitch.dtype)),
                      true=np.where(gone, -1, truth.true), fed=fed)
    return replace(changed, mixture=fed_mixture(changed, fed))


@dataclass(frozen=True)
class SongAugment:
    """How many changed copies of each training song, and how they are drawn.

    Attributes:
        copies: changed copies per song (config key ``song_pass_augment``).
        seed: the draws' seed (config key ``seed``).
        semitones: largest transposition either way.
    """

    copies: int
    seed: int
    semitones: int = AUGMENT_SEMITONES

    def key(self) -> list[int]:
        """What the copies depend on, for the first-pass cache's key."""
        return [self.copies, self.seed, self.semitones, MAX_REMOVED, AUGMENT_FORMAT]

    def copy_of(self, truth: SongTruth, song: int, copy: int) -> SongTruth:
        """Copy ``copy`` of the ``song``-th song (module docstring)."""
        rng = np.random.default_rng([self.seed, song, copy])
        shift = int(rng.integers(-self.semitones, self.semitones + 1))
        present = [c for c in range(1, N_PITCHED + 1) if (truth.true == c).any()]
        k = min(int(rng.integers(1, MAX_REMOVED + 1)), len(present) - 1)
        removed = rng.choice(present, size=k, replace=False).tolist() if k > 0 else []
        return changed_song(truth, shift, removed)

    def expand(self, truths: Iterable[SongTruth]) -> Iterator[SongTruth]:
        """Each song, then its ``copies`` changed copies."""
        for i, truth in enumerate(truths):
            yield truth
            for c in range(self.copies):
                yield self.copy_of(truth, i, c)


@dataclass(frozen=True)
class SongReading:
    """How the songs of a split are read for the song pass: the evaluation mode of their
    truth (config key ``song_pass_songs``: "unified", the build's tracks, or "whole", every
    track, as :func:`utils.evaluation.song_modes.whole_song_truth`) and the changed copies
    added (training songs only; None: none)."""

    songs: str = "unified"
    augment: SongAugment | None = None

    def key(self) -> list[object]:
        """What the songs read depend on besides the split (``[]`` for the default, so the
        first-pass cache of unified songs without copies keeps its key)."""
        return ([] if self.songs == "unified" else [self.songs]) + \
            ([] if self.augment is None else ["augment", *self.augment.key()])

    def count(self, n_songs: int) -> int:
        """Songs read from a split of ``n_songs`` songs, copies included."""
        return n_songs * (1 + (0 if self.augment is None else self.augment.copies))

    def truths(self, songs: SplitSongs) -> Iterator[SongTruth]:
        """The split's songs with their truth, each followed by its copies, read when
        asked for."""
        truths = mode_truths(songs, self.songs)
        return truths if self.augment is None else self.augment.expand(truths)
