"""Melody-track detection (docs/data.md), replacing the release's midi-miner step.

Detector, applied to the non-drum tracks that survive the note-count filter
(more than ``MIN_TRACK_NOTES`` notes):

1. **Track name.** A track whose name contains one of :data:`MELODY_KEYWORDS`
   (``melody``, ``vocal``, ``voice``, ``lead``, ``sing``, ...; case-insensitive) is the
   melody; among several such tracks, the one with the most notes.
2. **Otherwise, features.** A track qualifies when it is

   * monophonic: at least :data:`MIN_MONOPHONY` of its notes start while no other note of
     the track sounds (overlaps shorter than a 32nd note are legato, not chords);
   * dense enough: its notes cover at least :data:`MIN_COVERAGE` of the song's duration;
   * high enough: its mean pitch is at least :data:`MIN_MEAN_PITCH` (middle C);
   * not a bass (GM programs 32-39), percussive (112-119) or sound-effect (120-127) program.

   Among qualifying tracks the one with the **highest mean pitch** is the melody.
3. Otherwise the file has no melody.

A midi-miner style JSON ``{"<file name>": {"melody": <program>}}`` overrides the detector
for the files it lists: the non-drum track with that program (the one with the most
notes if several) is the melody. Keys are matched against the file's path relative to the
MIDI folder, then its file name, then its file name without extension.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.fileio import not_a_file

MELODY_KEYWORDS: tuple[str, ...] = ("melod", "vocal", "voice", "vox", "lead", "sing",
                                    "solo", "lyric", "tune")
MIN_MONOPHONY = 0.9  # fraction of notes that start while nothing else sounds
MIN_COVERAGE = 0.2  # fraction of the song's span covered by the track's notes
MIN_MEAN_PITCH = 60.0  # middle C
EXCLUDED_PROGRAMS = frozenset(range(32, 40)) | frozenset(range(112, 128))


@dataclass
class Track:
    """What names a MIDI track.

    Attributes:
        name: track name ("" if none).
        program: GM program 0..127.
        is_drum: whether the track plays on the drum channel.
    """

    name: str
    program: int
    is_drum: bool


@dataclass
class TrackNotes(Track):
    """The notes of one MIDI track, in ticks (besides :class:`Track`'s attributes).

    Attributes:
        start: int64 ``[K]`` note-on ticks.
        end: int64 ``[K]`` note-off ticks (``end >= start``).
        pitch: int64 ``[K]`` MIDI pitches.
    """

    start: np.ndarray
    end: np.ndarray
    pitch: np.ndarray

    def __len__(self) -> int:
        return int(self.start.shape[0])


def monophony(track: TrackNotes, tolerance: float) -> float:
    """Fraction of notes that start while no earlier note of the track still sounds.

    Args:
        track: the track's notes.
        tolerance: ticks of overlap still counted as legato (not a chord).

    Returns:
        A value in [0, 1]; 1 for a strictly monophonic line, 0 for an empty track.
    """
    if len(track) == 0:
        return 0.0
    order = np.lexsort((track.end, track.start))
    start, end = track.start[order], track.end[order]
    prev_end = np.maximum.accumulate(end)[:-1]  # latest end among earlier notes
    overlapped = start[1:] < prev_end - tolerance
    return float(1.0 - overlapped.sum() / len(track))


def coverage(track: TrackNotes, song_start: int, song_end: int) -> float:
    """Fraction of ``[song_start, song_end)`` ticks covered by the union of the notes."""
    span = song_end - song_start
    if len(track) == 0 or span <= 0:
        return 0.0
    order = np.argsort(track.start, kind="stable")
    start, end = track.start[order], track.end[order]
    run_end = np.maximum.accumulate(end)
    # a new union segment starts where a note begins after everything before it ended
    new = np.ones(len(start), dtype=bool)
    new[1:] = start[1:] > run_end[:-1]
    seg_id = np.cumsum(new) - 1
    seg_start = start[new]
    seg_end = np.zeros(seg_start.shape[0], dtype=np.int64)
    np.maximum.at(seg_end, seg_id, end)
    return float((seg_end - seg_start).sum() / span)


def name_matches(name: str) -> bool:
    """Whether a track name marks a melody (contains one of :data:`MELODY_KEYWORDS`)."""
    lowered = name.lower()
    return any(word in lowered for word in MELODY_KEYWORDS)


def find_melody(tracks: Sequence[TrackNotes], tpq: int) -> int | None:
    """Index of the melody track among ``tracks``, or None (module docstring).

    Args:
        tracks: candidate tracks (drum tracks are ignored).
        tpq: ticks per quarter note of the file (sets the legato tolerance).

    Returns:
        An index into ``tracks`` or None when no track qualifies.
    """
    pitched = [i for i, t in enumerate(tracks) if not t.is_drum and len(t) > 0]
    if not pitched:
        return None
    named = [i for i in pitched if name_matches(tracks[i].name)]
    if named:
        return max(named, key=lambda i: len(tracks[i]))
    song_start = min(int(tracks[i].start.min()) for i in pitched)
    song_end = max(int(tracks[i].end.max()) for i in pitched)
    best, best_pitch = None, -1.0
    for i in pitched:
        track = tracks[i]
        if track.program in EXCLUDED_PROGRAMS:
            continue
        mean_pitch = float(track.pitch.mean())
        if mean_pitch < MIN_MEAN_PITCH or mean_pitch <= best_pitch:
            continue
        if monophony(track, tolerance=tpq / 8) < MIN_MONOPHONY:
            continue
        if coverage(track, song_start, song_end) < MIN_COVERAGE:
            continue
        best, best_pitch = i, mean_pitch
    return best


def track_with_program(tracks: Sequence[TrackNotes], program: int) -> int | None:
    """Index of the non-drum track with GM ``program`` (most notes wins), or None."""
    hits = [i for i, t in enumerate(tracks) if not t.is_drum and t.program == program]
    if not hits:
        return None
    return max(hits, key=lambda i: len(tracks[i]))


def load_melody_json(path: str | Path) -> dict[str, int]:
    """Read a midi-miner style ``{"<file name>": {"melody": <program>}}`` table.

    Args:
        path: the JSON file.

    Returns:
        ``{file key: melody program}``.

    Raises:
        ValueError: one line naming the file and the problem.
    """
    path = Path(path)
    problem = not_a_file(path, "melody JSON")
    if problem:
        raise ValueError(f"{path}: {problem}")
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: melody JSON not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the top level must be an object {{file: {{\"melody\": "
                         f"program}}}}")
    table: dict[str, int] = {}
    for key, value in raw.items():
        program = value.get("melody") if isinstance(value, dict) else None
        if isinstance(program, bool) or not isinstance(program, int) or not 0 <= program < 128:
            raise ValueError(f"{path}: entry {key!r} needs {{\"melody\": <program 0..127>}}, "
                             f"got {value!r}")
        table[str(key)] = program
    return table


def melody_program_for(table: dict[str, int], rel_path: str) -> int | None:
    """Look a file up in a melody table by relative path, file name, then stem."""
    path = Path(rel_path)
    for key in (path.as_posix(), path.name, path.stem):
        if key in table:
            return table[key]
    return None
