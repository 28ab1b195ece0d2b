"""Instrument hints: the pitched instruments a song is known to hold.

A user who knows the band can say which instruments play (``separate.py --instruments
piano,bass``); :func:`utils.evaluation.song_modes.evaluate_song_modes` gives each song's true set
to every system for its ``(instruments given)`` rows. A hint keeps every pitched note
within the instruments named: a note whose instrument is not among them takes the most
probable one that is (the model's probabilities behind its decision; a pitch rule is
refitted on the named instruments, :func:`utils.evaluation.songs.pitched_rule`). Notes of
the drum channel keep their rule (they stay drums, or with ``--drums-by-model`` the
model's choice), and a pitched note is never given drums.

Arrays: ``instrument`` int64 ``[K]`` contract classes 1..5; ``probs`` float ``[K, 5]``
(:data:`data.contract.MUSIC_INSTRUMENTS` order; another instrument set's classes likewise,
:mod:`data.instruments`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from data.errors import InputError
from data.instruments import PAPER, InstrumentSet
from utils.core.cli import comma_list

PITCHED_NAMES: tuple[str, ...] = PAPER.pitched  # piano, guitar, bass, string
ALIASES: dict[str, str] = {"strings": "string", "drums": "drum"}
"""Other spellings a hint accepts, and the instrument each names."""
HINT_NAMES: tuple[str, ...] = (*PITCHED_NAMES, "drum", *ALIASES)
"""Every name ``--instruments`` accepts (the paper's set)."""


def hint_names(instruments: InstrumentSet = PAPER) -> tuple[str, ...]:
    """Every name ``--instruments`` accepts for a set: its classes, and the aliases of
    :data:`ALIASES` whose class it has."""
    music = instruments.music
    return (*music, *(a for a, n in ALIASES.items() if n in music))
GIVEN_SUFFIX = " (instruments given)"
"""Ends the name of a system's row where each song's true instruments were given."""


def given_row(system: str) -> str:
    """The name of ``system``'s row with the instruments given."""
    return f"{system}{GIVEN_SUFFIX}"


def restrict(instrument: np.ndarray, probs: np.ndarray, pitched: np.ndarray,
             allowed: Collection[int]) -> np.ndarray:
    """Keep every pitched note within ``allowed``.

    Args:
        instrument: int ``[K]`` each note's class as decided (1..5).
        probs: float ``[K, 5]`` the probabilities behind each decision.
        pitched: bool ``[K]`` the notes a hint applies to (not of the drum channel).
        allowed: pitched classes (1..4) the song holds; empty = no hint.

    Returns:
        int64 ``[K]``: ``instrument`` where it is allowed or the note is not pitched, else
        the allowed class of highest probability (ties: the lower class).
    """
    out = np.array(instrument, dtype=np.int64)
    classes = np.array(sorted(set(allowed)), dtype=np.int64)
    if classes.size == 0:
        return out
    move = np.asarray(pitched, bool) & ~np.isin(out, classes)
    if move.any():
        scores = np.nan_to_num(np.asarray(probs, np.float64)[move][:, classes - 1], nan=0.0)
        out[move] = classes[np.argmax(scores, axis=1)]
    return out


@dataclass(frozen=True)
class InstrumentHint:
    """The instruments a user named (``--instruments``).

    Attributes:
        names: the instruments, in contract order, canonical names
            (:data:`data.contract.INSTRUMENTS`, or the set's).
        instruments: the instrument set the names are of (the paper's by default).
    """

    names: tuple[str, ...]
    instruments: InstrumentSet = PAPER

    @classmethod
    def parse(cls, text: str, flag: str = "--instruments",
              instruments: InstrumentSet = PAPER) -> InstrumentHint:
        """Read a comma-separated list of names of the set's classes (any case; for the
        paper's set ``strings`` and ``drums`` too).

        Raises:
            data.errors.InputError: an unknown or empty name, or no pitched instrument
                named (one line naming the flag and the allowed names).
        """
        words = comma_list(text, flag, hint_names(instruments), "an instrument")
        named = {ALIASES.get(w, w) for w in words}
        if not named & set(instruments.pitched):
            raise InputError(f"{flag} {text!r} names no pitched instrument (one or more of "
                             f"{', '.join(instruments.pitched)}); drum-channel notes stay "
                             "drums by rule")
        return cls(tuple(n for n in instruments.instruments if n in named), instruments)

    @property
    def classes(self) -> frozenset[int]:
        """The pitched classes (1..4 for the paper's set) named."""
        names = self.instruments.instruments
        return frozenset(names.index(n) for n in self.names if n in self.instruments.pitched)

    def apply(self, instrument: np.ndarray, probs: np.ndarray,
              is_drum: np.ndarray) -> np.ndarray:
        """:func:`restrict` to the named instruments (drum-channel notes keep their rule)."""
        return restrict(instrument, probs, ~np.asarray(is_drum, bool), self.classes)

    def describe(self) -> str:
        """The hint in words, e.g. ``"piano, bass"``."""
        return ", ".join(self.names)
