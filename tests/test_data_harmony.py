"""data/harmony.py: functional-harmony progressions are diatonic, cadence and repeat."""

from __future__ import annotations

import numpy as np
import pytest

from data.harmony import (
    MAJOR_DEGREES,
    MINOR_DEGREES,
    PITCH_NAMES,
    TRANSITIONS,
    Key,
    chord_name,
    phrase,
    progression,
    random_key,
)


def _diatonic(key: Key) -> set[str]:
    """Every chord name the key's degrees can give (triads and sevenths)."""
    degrees = MAJOR_DEGREES if key.mode == "major" else MINOR_DEGREES
    return {chord_name(key, numeral, seventh) for numeral in degrees
            for seventh in (False, True)}


def test_chord_names() -> None:
    g_major, a_minor = Key(7, "major"), Key(9, "minor")
    assert chord_name(g_major, "V", True) == "D7"
    assert chord_name(g_major, "ii", False) == "Am"
    assert chord_name(g_major, "vii", False) == "F#dim"
    assert chord_name(a_minor, "V", False) == "E"  # harmonic minor dominant
    assert chord_name(a_minor, "ii", True) == "Bm7b5"
    assert chord_name(Key(10, "major"), "IV", True) == "EbM7"
    np.testing.assert_allclose(TRANSITIONS.sum(axis=1), 1.0)


@pytest.mark.parametrize("seed", range(6))
def test_progression_is_diatonic_cadences_and_repeats(seed: int) -> None:
    rng = np.random.default_rng(seed)
    key = random_key(rng)
    bars, form = progression(rng, key, phrases=5, phrase_bars=4, chords_per_bar=2)
    assert len(bars) == 20 and len(form) == 5 and form[0] == "A"
    assert all(len(bar) == 2 for bar in bars)
    assert {c for bar in bars for c in bar} <= _diatonic(key)
    tonic = PITCH_NAMES[key.tonic]
    tonic_chords = {tonic + ("" if key.mode == "major" else "m"),
                    tonic + ("M7" if key.mode == "major" else "m7")}
    assert bars[0][0] in tonic_chords  # starts on the tonic
    assert bars[-1][-1] in tonic_chords  # ends on it ...
    dominant = PITCH_NAMES[(key.tonic + 7) % 12]
    assert bars[-1][0] in {dominant, dominant + "7"}  # ... after the dominant (V - I)
    for k, letter in enumerate(form):  # a repeated letter repeats its chords
        first = form.index(letter)
        assert bars[4 * k: 4 * k + 4] == bars[4 * first: 4 * first + 4]


def test_seeded_generator_repeats_and_half_cadence() -> None:
    def draw(seed: int) -> tuple[list[list[str]], str]:
        rng = np.random.default_rng(seed)
        return progression(rng, random_key(rng), 6, 8, 1)

    assert draw(3) == draw(3) and draw(3) != draw(4)
    key = Key(0, "major")
    half = phrase(np.random.default_rng(0), key, bars=4, chords_per_bar=1, cadence="half")
    assert half[0] in (["C"], ["CM7"]) and half[-1] in (["G"], ["G7"])
    with pytest.raises(ValueError, match="at least 3 chords"):
        phrase(np.random.default_rng(0), key, bars=1, chords_per_bar=2, cadence="authentic")
