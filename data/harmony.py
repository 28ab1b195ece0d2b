"""Chord progressions from a small functional-harmony model, spelled as MMA chord names.

The model walks a Markov chain over the three harmonic functions -- tonic (T),
subdominant / pre-dominant (S) and dominant (D) -- and realises each function as a scale
degree of the key:

    major:  T = I, vi, iii     S = IV, ii        D = V, vii(dim)
    minor:  T = i, III         S = iv, ii(dim), VI   D = V (harmonic minor), VII

Progressions are built from phrases of 4 or 8 bars. Every phrase starts on the tonic;
it ends with an authentic cadence (D -> I) or, in a phrase that is not the last, a half
cadence (ending on V). A song repeats some of its phrases (forms such as AABA), as real
songs do, and always ends with an authentic cadence on the tonic.

Everything draws from the ``numpy.random.Generator`` it is given, so a seeded generator
gives the same progression every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Mode = Literal["major", "minor"]
Function = Literal["T", "S", "D"]
Cadence = Literal["authentic", "half"]

PITCH_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
FUNCTIONS: tuple[Function, ...] = ("T", "S", "D")
# P(next function | current function), rows and columns in FUNCTIONS order
TRANSITIONS = np.array([[0.20, 0.50, 0.30],   # from T
                        [0.15, 0.25, 0.60],   # from S
                        [0.75, 0.05, 0.20]])  # from D


@dataclass(frozen=True)
class Degree:
    """A diatonic chord: semitones above the tonic, triad quality and its seventh form."""

    semitones: int
    triad: str  # MMA suffix of the triad: "" major, "m" minor, "dim" diminished
    seventh: str  # MMA suffix of the diatonic seventh chord


MAJOR_DEGREES = {"I": Degree(0, "", "M7"), "ii": Degree(2, "m", "m7"),
                 "iii": Degree(4, "m", "m7"), "IV": Degree(5, "", "M7"),
                 "V": Degree(7, "", "7"), "vi": Degree(9, "m", "m7"),
                 "vii": Degree(11, "dim", "m7b5")}
MINOR_DEGREES = {"i": Degree(0, "m", "m7"), "ii": Degree(2, "dim", "m7b5"),
                 "III": Degree(3, "", "M7"), "iv": Degree(5, "m", "m7"),
                 "V": Degree(7, "", "7"), "VI": Degree(8, "", "M7"),
                 "VII": Degree(10, "", "7")}
# function -> ((degree, weight), ...)
REALISATIONS: dict[Mode, dict[Function, tuple[tuple[str, float], ...]]] = {
    "major": {"T": (("I", 0.6), ("vi", 0.3), ("iii", 0.1)),
              "S": (("IV", 0.6), ("ii", 0.4)),
              "D": (("V", 0.85), ("vii", 0.15))},
    "minor": {"T": (("i", 0.8), ("III", 0.2)),
              "S": (("iv", 0.55), ("ii", 0.15), ("VI", 0.3)),
              "D": (("V", 0.8), ("VII", 0.2))},
}
SEVENTH_PROB = {"V": 0.5}  # dominant sevenths are common; other degrees use `sevenths`


@dataclass(frozen=True)
class Key:
    """A key: tonic pitch class (0 = C) and mode."""

    tonic: int
    mode: Mode

    @property
    def name(self) -> str:
        """E.g. ``"Bb major"``, ``"F# minor"``."""
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"

    def degrees(self) -> dict[str, Degree]:
        """The diatonic chords of the mode by Roman numeral."""
        return MAJOR_DEGREES if self.mode == "major" else MINOR_DEGREES

    def tonic_degree(self) -> str:
        """Roman numeral of the tonic chord."""
        return "I" if self.mode == "major" else "i"


def random_key(rng: np.random.Generator, minor_prob: float = 0.3) -> Key:
    """A uniformly random tonic; minor with probability ``minor_prob``."""
    return Key(int(rng.integers(12)), "minor" if rng.random() < minor_prob else "major")


def chord_name(key: Key, numeral: str, seventh: bool) -> str:
    """MMA chord name of a degree of the key, e.g. ``("G major", "V", True) -> "D7"``."""
    degree = key.degrees()[numeral]
    root = PITCH_NAMES[(key.tonic + degree.semitones) % 12]
    return root + (degree.seventh if seventh else degree.triad)


def _function_walk(rng: np.random.Generator, slots: int, cadence: Cadence
                   ) -> list[Function]:
    """Functions of one phrase (``slots >= 3``): T, Markov steps, then the cadence."""
    tail: list[Function] = ["D", "T"] if cadence == "authentic" else ["D"]
    functions: list[Function] = ["T"]
    while len(functions) < slots - len(tail):
        row = TRANSITIONS[FUNCTIONS.index(functions[-1])]
        functions.append(FUNCTIONS[int(rng.choice(3, p=row))])
    return functions + tail


def phrase(rng: np.random.Generator, key: Key, bars: int, chords_per_bar: int,
           cadence: Cadence, sevenths: float = 0.2) -> list[list[str]]:
    """One phrase of chords.

    Args:
        rng: source of randomness.
        key: the key.
        bars: phrase length in bars.
        chords_per_bar: 1 (a chord per bar) or 2 (a chord on beats 1 and 3).
        cadence: "authentic" (ends D -> tonic) or "half" (ends on V).
        sevenths: probability that a non-dominant chord is played as its diatonic seventh.

    Returns:
        ``bars`` lists of ``chords_per_bar`` MMA chord names.
    """
    slots = bars * chords_per_bar
    if slots < 3:
        raise ValueError(f"a phrase needs at least 3 chords, got {bars} x {chords_per_bar}")
    functions = _function_walk(rng, slots, cadence)
    chords: list[str] = []
    for k, function in enumerate(functions):
        if k == 0 or (k == slots - 1 and cadence == "authentic"):
            numeral = key.tonic_degree()
        elif k >= slots - 2 and function == "D":
            numeral = "V"  # the cadential dominant
        else:
            options = REALISATIONS[key.mode][function]
            weights = np.array([w for _, w in options])
            numeral = options[int(rng.choice(len(options), p=weights / weights.sum()))][0]
        seventh = rng.random() < SEVENTH_PROB.get(numeral, sevenths)
        chords.append(chord_name(key, numeral, seventh))
    return [chords[b * chords_per_bar:(b + 1) * chords_per_bar] for b in range(bars)]


def progression(rng: np.random.Generator, key: Key, phrases: int, phrase_bars: int,
                chords_per_bar: int, sevenths: float = 0.2) -> tuple[list[list[str]], str]:
    """A song's chords: distinct phrases arranged in a form with repeats.

    Args:
        rng: source of randomness.
        key: the key.
        phrases: number of phrases in the song (>= 1).
        phrase_bars: bars per phrase (4 or 8).
        chords_per_bar: 1 or 2.
        sevenths: see :func:`phrase`.

    Returns:
        ``(bars, form)``: ``phrases * phrase_bars`` lists of chord names, and the form as
        letters (e.g. ``"AABA"``); phrase A ends with an authentic cadence, so does the song.
    """
    if phrases < 1:
        raise ValueError(f"phrases must be >= 1, got {phrases}")
    letters = ["A"]
    for _ in range(phrases - 1):
        if rng.random() < 0.5 or len(set(letters)) >= 3:
            letters.append(letters[int(rng.integers(len(letters)))])
        else:
            letters.append(chr(ord("A") + len(set(letters))))
    cadences = {letter: "authentic" if letter == "A" or rng.random() < 0.6 else "half"
                for letter in dict.fromkeys(letters)}
    if cadences[letters[-1]] == "half":
        letters[-1] = "A"
    bodies = {letter: phrase(rng, key, phrase_bars, chords_per_bar, cadences[letter], sevenths)
              for letter in dict.fromkeys(letters)}
    bars = [bar for letter in letters for bar in bodies[letter]]
    return bars, "".join(letters)
