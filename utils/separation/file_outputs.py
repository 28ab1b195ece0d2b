"""What the MIDI file job writes: output names, the overwrite check, the notes' JSON, the
audio of the separated notes and of the mixture, and the count of what was written
(:class:`SongOutputs`); :mod:`utils.separation.file_job` runs the job.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data.errors import InputError
from data.instruments import PAPER, InstrumentSet
from data.midi import (
    SongNotes,
    Timing,
)
from data.notes import OutputTrack
from data.roll import window_starts
from data.song_roll import out_of_range
from utils.rendering.audio import (
    AudioNotes,
    RenderedAudio,
    render_notes,
    write_wav,
)
from utils.separation.notes import DECIDED_BY, DRUM_CHANNEL, NoteAssignment

NAME_MAX = 255  # bytes in a file name on common file systems


def output_paths(midi_path: str | Path, out_dir: str | Path,
                 write_json: bool = False) -> dict[str, Path]:
    """The files :func:`utils.separation.file_job.separate_midi_file` writes for
    ``midi_path`` into ``out_dir``.

    Returns:
        ``{"midi", "wav", "mixture_wav", "png"[, "json"]: path}``.
    """
    out, name = Path(out_dir), Path(midi_path).stem
    paths = {"midi": out / f"{name}.separated.mid", "wav": out / f"{name}.separated.wav",
             "mixture_wav": out / f"{name}.mixture.wav", "png": out / f"{name}.png"}
    if write_json:
        paths["json"] = out / f"{name}.notes.json"
    return paths


class OutputExists(InputError, FileExistsError):
    """An output that exists, without ``--overwrite`` (one line, exit 2)."""


def check_outputs(paths: dict[str, Path], overwrite: bool,
                  source: str | Path | None = None) -> None:
    """Refuse outputs that cannot or must not be written, before any work.

    Args:
        paths: the outputs (:func:`output_paths`).
        overwrite: replace existing outputs (else an existing one is refused).
        source: the input file: an output that is this file is refused, even with
            ``overwrite``.

    Raises:
        ValueError: an output is the input file or a folder, or its name is longer than a
            file system allows.
        FileExistsError: the first output that exists, without ``overwrite``.
    """
    for path in paths.values():
        if len(os.fsencode(path.name)) > NAME_MAX:
            raise InputError(f"output name {path.name!r} is {len(os.fsencode(path.name))} "
                             f"bytes, over the {NAME_MAX} a file name may have; rename the "
                             "input")
        if path.is_dir():
            raise InputError(f"output {str(path)!r} is a folder; choose another --out-dir "
                             "or remove it")
        if source is not None and _same_file(path, Path(source)):
            raise InputError(f"output {str(path)!r} is the input file itself; choose another "
                             "--out-dir")
    existing = [p for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise OutputExists(f"{existing[0]} exists; pass --overwrite to replace it")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (the same path, or links to one file)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


@dataclass
class SongOutputs:
    """Files written for one separated song, and what the separation kept and dropped.

    Attributes:
        paths: the files written (keys of :func:`output_paths`).
        n_steps: song length in 16th-note steps.
        n_windows: 4-bar windows separated.
        n_notes: input notes (each written exactly once).
        per_instrument: notes given to each instrument.
        n_out_of_range: pitched notes outside MIDI 24..95 (nearest row's instrument).
        n_drum_channel: drum-channel notes kept as drums without asking the model.
        tracks: the separated file's tracks.
        n_controls_dropped: controller and pitch-bend events of source tracks without
            notes (they have no output track to go to).
        n_lyrics: lyric events dropped.
        n_markers: marker events dropped.
        excerpt: ``(first bar, last bar)`` drawn in the picture (from 1, both included).
        synth: how the audio was made (``"fluidsynth"`` or ``"sine"``; ``"none"``: no audio
            written).
        sample_rate: the audio's sample rate (what the WAV headers say).
        warnings: one-line warnings (meter other than 4/4, no reference available, audio
            cut or rendered at another rate, picture cut).
        hint: the instruments the notes were kept within (``--instruments``), or None.
    """

    paths: dict[str, Path]
    n_steps: int
    n_windows: int
    n_notes: int
    per_instrument: dict[str, int]
    n_out_of_range: int
    n_drum_channel: int
    tracks: list[OutputTrack]
    n_controls_dropped: int
    n_lyrics: int
    n_markers: int
    excerpt: tuple[int, int]
    synth: str
    sample_rate: int = 0
    warnings: list[str] = field(default_factory=list)
    hint: str | None = None

    def summary(self) -> list[str]:
        """What the output keeps and drops, as lines for the terminal."""
        per = ", ".join(f"{name} {n}" for name, n in self.per_instrument.items())
        extra = [t.name for t in self.tracks if t.layer > 0]
        n_controls = sum(t.n_controls for t in self.tracks)
        n_bends = sum(t.n_bends for t in self.tracks)
        lines = [
            f"{self.n_notes} notes, each once with its own pitch, ticks and velocity: {per}",
            f"kept: tempo map, time and key signatures; {n_controls} controller and "
            f"{n_bends} pitch-bend events copied once to each instrument track holding "
            "their track's notes",
        ]
        if self.n_out_of_range:
            lines.append(f"{self.n_out_of_range} pitched notes outside MIDI 24..95 took the "
                         "instrument of the nearest row the model covers")
        if self.n_drum_channel:
            lines.append(f"{self.n_drum_channel} drum-channel notes stayed drums")
        if self.hint is not None:
            lines.append(f"instruments given: {self.hint} (every pitched note kept within "
                         "them)")
        if extra:
            shown = ", ".join(extra[:3]) + (", ..." if len(extra) > 3 else "")
            lines.append(f"{len(extra)} extra tracks ({shown}) hold notes that "
                         "overlap another note of their pitch and instrument")
        dropped = ["track names and programs (one track per instrument)"]
        if self.n_controls_dropped:
            dropped.append(f"{self.n_controls_dropped} controller/pitch-bend events of "
                           "tracks without notes")
        if self.n_lyrics:
            dropped.append(f"{self.n_lyrics} lyric events")
        if self.n_markers:
            dropped.append(f"{self.n_markers} markers")
        lines.append("dropped: " + "; ".join(dropped))
        return lines


def _note_rows(notes: SongNotes, result: NoteAssignment, lo: int, hi: int,
               names: tuple[str, ...]) -> list[dict]:
    """The JSON rows of notes ``lo .. hi - 1`` (:func:`write_notes_json`); ``names``: the
    contract's instrument names (melody first)."""
    probs = np.round(result.probs[lo:hi].astype(np.float64), 4)
    rows = []
    for k in range(lo, hi):
        p = probs[k - lo]
        rows.append({
            "track": int(notes.track[k]), "index": int(notes.index[k]),
            "pitch": int(notes.pitch[k]), "start": int(notes.start[k]),
            "end": int(notes.end[k]), "velocity": int(notes.velocity[k]),
            "instrument": names[int(result.instrument[k])],
            "decided_by": DECIDED_BY[int(result.decided_by[k])],
            "probabilities": None if np.isnan(p).any() else p.tolist(),
        })
    return rows


_JSON_ROWS = 10_000  # notes turned into JSON at a time


def write_notes_json(path: Path, midi_path: str | Path, notes: SongNotes,
                     result: NoteAssignment, given: tuple[str, ...] | None = None,
                     instruments: InstrumentSet = PAPER) -> None:
    """Write every note with its instrument and the probabilities behind it to ``path`` as
    JSON, row block by row block (memory flat in the number of notes).

    ``probabilities`` lists the mean probability of each of ``instruments`` over the note's
    cells (null for a drum-channel note with no cell in the roll); with ``given``
    (``--instruments``), ``instruments_given`` names the instruments the notes were kept
    within. ``instruments``: the model's classes (the paper's five by default).
    """
    hint = {} if given is None else {"instruments_given": list(given)}
    head = json.dumps({"input": str(midi_path), "ticks_per_quarter": notes.tpq,
                       "instruments": list(instruments.music), **hint, "notes": []})
    with open(path, "w") as fh:
        fh.write(head[:-2])  # without the closing "]}"
        for lo in range(0, len(notes), _JSON_ROWS):
            rows = json.dumps(_note_rows(notes, result, lo, min(lo + _JSON_ROWS, len(notes)),
                                         instruments.instruments))
            fh.write((", " if lo else "") + rows[1:-1])
        fh.write("]}\n")


def audio_notes(notes: SongNotes, instrument: np.ndarray, timing: Timing,
                instruments: InstrumentSet = PAPER) -> AudioNotes:
    """The notes as :func:`utils.rendering.audio.render_notes` plays them: each on its instrument's
    channel and program, in seconds by the file's tempo map, with the controllers and
    pitch bends of every source track of an instrument's notes on its channel once (as
    :func:`data.notes.separated_midi` writes them), however many tracks hold its notes."""
    instrument = np.asarray(instrument, dtype=np.int64)
    channels, programs = instruments.midi_channels(), instruments.render_programs()
    to_channel = np.zeros(instruments.drum + 1, dtype=np.int64)
    for cls, channel in channels.items():
        to_channel[cls] = channel
    used = sorted(set(instrument.tolist()))
    c_time, c_chan, c_num, c_val = [], [], [], []
    b_time, b_chan, b_val = [], [], []
    for cls in used:
        for s in sorted(set(notes.track[instrument == cls].tolist())):
            controls, bends = notes.tracks[s].controls, notes.tracks[s].bends
            c_time.append(controls[:, 0])
            c_chan.append(np.full(len(controls), channels[cls]))
            c_num.append(controls[:, 1])
            c_val.append(controls[:, 2])
            b_time.append(bends[:, 0])
            b_chan.append(np.full(len(bends), channels[cls]))
            b_val.append(bends[:, 1])

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    return AudioNotes(
        channel=to_channel[instrument], pitch=notes.pitch, velocity=notes.velocity,
        start=timing.tick_to_seconds(notes.start), end=timing.tick_to_seconds(notes.end),
        programs={channels[c]: programs.get(c, 0) for c in used},
        control_time=timing.tick_to_seconds(cat(c_time)), control_channel=cat(c_chan),
        control_number=cat(c_num), control_value=cat(c_val),
        bend_time=timing.tick_to_seconds(cat(b_time)), bend_channel=cat(b_chan),
        bend_value=cat(b_val))


@dataclass
class AudioWriter:
    """Writes a song's audio files one at a time, so only one audio is ever held in memory,
    and keeps how each was made (its samples dropped)."""

    notes: SongNotes
    timing: Timing
    sample_rate: int
    max_seconds: float
    rendered: list[RenderedAudio] = field(default_factory=list)
    instruments: InstrumentSet = PAPER

    def write(self, path: Path, instrument: np.ndarray) -> None:
        """Render the notes, each on ``instrument``'s channel and program, into ``path``."""
        audio = render_notes(audio_notes(self.notes, instrument, self.timing, self.instruments),
                             self.sample_rate, max_seconds=self.max_seconds)
        write_wav(path, audio.audio, audio.fs)
        self.rendered.append(RenderedAudio(np.zeros(0, np.float32), audio.fs, audio.method,
                                           audio.notes))

    def remarks(self) -> list[str]:
        """What the renderings said (cuts, another rate), each line once."""
        return list(dict.fromkeys(n for audio in self.rendered for n in audio.notes))


def song_outputs(paths: dict[str, Path], mixture: np.ndarray, notes: SongNotes,
                 result: NoteAssignment, tracks: list[OutputTrack], excerpt: tuple[int, int],
                 audio: RenderedAudio | None, warnings: list[str]) -> SongOutputs:
    """What a separation wrote, kept and dropped, counted (:class:`SongOutputs`); without
    ``audio`` (none written) its method reads ``"none"`` and its rate 0."""
    used = {s for t in tracks for s in t.sources}
    dropped = sum(len(t.controls) + len(t.bends) for i, t in enumerate(notes.tracks)
                  if i not in used)
    return SongOutputs(
        paths=paths, n_steps=int(mixture.shape[0]),
        n_windows=len(window_starts(mixture.shape[0])), n_notes=len(notes),
        per_instrument=result.counts(), n_out_of_range=int(out_of_range(notes).sum()),
        n_drum_channel=int((result.decided_by == DRUM_CHANNEL).sum()), tracks=tracks,
        n_controls_dropped=int(dropped), n_lyrics=notes.n_lyrics, n_markers=notes.n_markers,
        excerpt=excerpt, synth="none" if audio is None else audio.method,
        sample_rate=0 if audio is None else audio.fs, warnings=warnings)
