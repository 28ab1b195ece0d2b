"""The data contract shared by every part of Mixture2Music (docs/data.md).

Axis orders used throughout the project:

* phrase / song roll (numpy, storage): ``bool [time, pitch, instrument]``,
  e.g. a phrase is ``[64, 72, 6]``;
* model tensors (torch): ``float32 [channel, time, pitch]``, ``music`` is
  ``[5, 64, 72]`` (instruments 1..5, melody removed) and ``mixture`` is ``[1, 64, 72]``.
"""

from __future__ import annotations

# --- time grid -------------------------------------------------------------------
STEPS_PER_BEAT = 4  # 16th-note grid
BEATS_PER_BAR = 4  # only 4/4 files are kept
STEPS_PER_BAR = STEPS_PER_BEAT * BEATS_PER_BAR  # 16
BARS_PER_PHRASE = 4
PHRASE_STEPS = STEPS_PER_BAR * BARS_PER_PHRASE  # 64
PHRASE_STRIDE = STEPS_PER_BAR  # a window starts every bar (75% overlap)

# --- pitch axis --------------------------------------------------------------------
PITCH_LOW = 24  # C1 -> row 0
PITCH_HIGH = 95  # B6 -> row 71
N_PITCH = PITCH_HIGH - PITCH_LOW + 1  # 72

# --- instrument axis ---------------------------------------------------------------
INSTRUMENTS: tuple[str, ...] = ("melody", "piano", "guitar", "bass", "string", "drum")
N_INSTRUMENTS = len(INSTRUMENTS)  # 6
MELODY, PIANO, GUITAR, BASS, STRING, DRUM = range(N_INSTRUMENTS)
MUSIC_INSTRUMENTS: tuple[str, ...] = INSTRUMENTS[1:]  # what the model separates
N_MUSIC = len(MUSIC_INSTRUMENTS)  # 5
N_PITCHED = DRUM - 1  # 4: piano, guitar, bass, string, the choices of a pitched note

PHRASE_SHAPE = (PHRASE_STEPS, N_PITCH, N_INSTRUMENTS)  # (64, 72, 6)
PHRASE_CELLS = PHRASE_STEPS * N_PITCH * N_INSTRUMENTS  # 27,648

# General MIDI program families (program // 8) kept for each pitched class.
PROGRAM_FAMILY: dict[int, int] = {0: PIANO, 3: GUITAR, 4: BASS, 6: STRING}
# Programs used when rendering each class back to MIDI.
RENDER_PROGRAM: dict[int, int] = {MELODY: 40, PIANO: 0, GUITAR: 25, BASS: 33, STRING: 49}
RENDER_VELOCITY: dict[int, int] = {i: 80 for i in range(N_INSTRUMENTS)} | {STRING: 50}

# --- drums -------------------------------------------------------------------------
# GM drum keys merged into 9 components, applied in this order.
DRUM_MERGE: tuple[tuple[frozenset[int], int], ...] = (
    (frozenset({35, 36}), 35),  # kick
    (frozenset({37, 38, 39, 40}), 38),  # snare
    (frozenset({42, 44}), 42),  # closed hi-hat
    (frozenset({41, 43, 45}), 45),  # low tom
    (frozenset({47, 48}), 48),  # mid tom
    (frozenset({49, 55, 57}), 49),  # crash
    (frozenset({51, 59}), 51),  # ride
)
DRUM_KEYS: tuple[int, ...] = (35, 38, 42, 45, 46, 48, 49, 50, 51)
DRUM_ROW0 = N_PITCH - len(DRUM_KEYS)  # 63: drum component k lives in row 63 + k

# --- filters -----------------------------------------------------------------------
MIN_TRACK_NOTES = 50  # tracks with this many notes or fewer are dropped
MIN_CLASSES = 2  # files left with fewer classes are dropped
MIN_BAR_DENSITY = 0.01  # every bar of a window needs >= 1% of its cells on
MIN_MELODY_CELLS = 24  # melody windows need this many melody cells

# --- limits ------------------------------------------------------------------------
# Longest song read, in 4/4 bars (about 66 minutes at 120 bpm; config key max_song_bars).
# A longer file -- or one note placed hours after the rest -- is refused before any array
# of its length is allocated: a roll costs 432 bytes a step, so 2,000 bars take 14 MB.
MAX_SONG_BARS = 2_000


def drum_row(key: int) -> int | None:
    """Row (0..71) of a GM drum key after merging, or None if the key is not kept."""
    for keys, target in DRUM_MERGE:
        if key in keys:
            key = target
            break
    if key in DRUM_KEYS:
        return DRUM_ROW0 + DRUM_KEYS.index(key)
    return None


def check_option(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise ValueError naming the option.

    Every option's allowed values live beside the code that reads it, as a ``Literal``
    type (``models.diffusion.Sampler``, ``utils.separation.assignment.AssignMode``, ...);
    ``allowed`` is ``typing.get_args`` of it, and the config validator reads the same type.
    """
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value
