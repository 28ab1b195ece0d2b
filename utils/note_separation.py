"""Note-level separation: the input's own notes back, each given one instrument.

The song's mixture is separated window by window and the per-cell instrument
probabilities are stitched (:func:`utils.separation.song_prob_chunks`). Each input note
then gets exactly one instrument from the cells it covers -- its quantised steps at its
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
flat in the song's length. :func:`separate_midi_file` writes the separated MIDI (every
input note exactly once, see :func:`data.notes.separated_midi`), audio of the separation
and of the mixture, a picture of an excerpt and, optionally, a JSON of every note.

Arrays: ``mixture`` bool ``[T, 72]``; chunk probabilities float32 ``[n, 72, 5]``
(instrument last, :data:`data.contract.MUSIC_INSTRUMENTS` order); per-note values are
``[K]`` or ``[K, 5]`` in :class:`data.midi.SongNotes` order.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from data.contract import (
    DRUM,
    INSTRUMENTS,
    MAX_SONG_BARS,
    MUSIC_INSTRUMENTS,
    N_MUSIC,
    N_PITCH,
    PIANO,
    RENDER_PROGRAM,
    STEPS_PER_BAR,
)
from data.errors import InputError
from data.fileio import atomic_write_many, claim_outputs
from data.midi import (
    MAX_FILE_BYTES,
    MidiError,
    SongNotes,
    Timing,
    load_mixture,
    read_notes,
    unclosed_warning,
)
from data.notes import (
    OUTPUT_CHANNEL,
    OutputTrack,
    nearest_rows,
    notes_roll,
    out_of_range,
    overlap_layers,
    separated_midi,
)
from data.roll import onset_plane, window_starts
from utils.render import (
    MAX_AUDIO_SECONDS,
    STEP_PX,
    AudioNotes,
    RenderedAudio,
    excerpt_steps,
    plot_comparison,
    render_notes,
    write_wav,
)
from utils.separation import ProbFn, meter_warning, song_prob_chunks
from utils.song_context import apply_song_context
from utils.song_pass import SongPass

N_PITCHED = DRUM - 1  # piano, guitar, bass, string: the choices of a pitched note
DECIDED_BY: tuple[str, ...] = ("model", "nearest_row", "drum_channel")
"""How a note's instrument was decided (:attr:`NoteAssignment.decided_by` indexes this)."""
MODEL, NEAREST_ROW, DRUM_CHANNEL = range(len(DECIDED_BY))


class NoteProbAccumulator:
    """Sums each note's cell probabilities over stitched chunks of a song.

    Args:
        first, stop: int ``[K]`` grid steps of each note (stop exclusive, > first).
        rows: int ``[K]`` row each note is read at (-1: none).
    """

    def __init__(self, first: np.ndarray, stop: np.ndarray, rows: np.ndarray) -> None:
        self.first = np.asarray(first, dtype=np.int64)
        self.stop = np.asarray(stop, dtype=np.int64)
        self.rows = np.asarray(rows, dtype=np.int64)
        k = self.rows.size
        self.sums = np.zeros((k, N_MUSIC), dtype=np.float64)  # probability sums per note
        self.cells = np.zeros(k, dtype=np.int64)  # sounding cells under each note
        self.row_sums = np.zeros((N_PITCH, N_MUSIC), dtype=np.float64)  # whole-song, per row
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
        cum = np.zeros((n + 1, N_PITCH, N_MUSIC), dtype=np.float64)  # prefix sums in time
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


@dataclass
class NoteAssignment:
    """One instrument per input note.

    Attributes:
        instrument: int64 ``[K]`` contract class 1..5 (piano .. drum).
        probs: float32 ``[K, 5]`` mean instrument probabilities behind each decision (NaN
            for a drum-channel note with no cell in the roll).
        decided_by: int64 ``[K]`` index into :data:`DECIDED_BY`.
    """

    instrument: np.ndarray
    probs: np.ndarray
    decided_by: np.ndarray

    def counts(self) -> dict[str, int]:
        """Notes per instrument, in :data:`MUSIC_INSTRUMENTS` order."""
        per = np.bincount(self.instrument - 1, minlength=N_MUSIC)
        return dict(zip(MUSIC_INSTRUMENTS, per.tolist()))


def first_pass_probs(acc: NoteProbAccumulator, notes: SongNotes) -> np.ndarray:
    """Each note's mean cell probabilities: float64 ``[K, 5]``.

    A pitched note with no sounding cell (outside the covered rows, with nothing at its
    nearest row then) takes that row's average over the song; a drum-channel note without
    a cell reads NaN.
    """
    probs = np.full((len(notes), N_MUSIC), np.nan, dtype=np.float64)
    has = acc.cells > 0
    probs[has] = acc.sums[has] / acc.cells[has, None]
    for i in np.flatnonzero(~notes.is_drum & ~has).tolist():  # silent row: song average
        fallback = acc.row_average(int(acc.rows[i]))
        probs[i] = 0.0 if fallback is None else fallback
    return probs


def assign_notes(acc: NoteProbAccumulator, notes: SongNotes,
                 drums_by_model: bool = False,
                 song_context: tuple[float, float] = (0.0, 3.0),
                 song_pass: SongPass | None = None,
                 in_mixture: np.ndarray | None = None) -> NoteAssignment:
    """Decide each note's instrument from accumulated probabilities (module docstring).

    Args:
        acc: the accumulator, fed with every chunk of the song, built with
            :func:`note_grid` of the same ``notes``.
        notes: the song's notes.
        drums_by_model: let the model choose the instrument of drum-channel notes too.
        song_context: ``(weight, width)`` of the fixed song-level second pass over the
            pitched notes (:mod:`utils.song_context`; weight 0 = off); not used when a
            ``song_pass`` is given.
        song_pass: the learned song pass (:mod:`utils.song_pass`), which then decides the
            pitched notes of the mixture again.
        in_mixture: bool ``[K]`` the notes that make up the mixture (what the song pass
            reads); None = every note.

    Returns:
        The :class:`NoteAssignment`.
    """
    k = len(notes)
    probs = first_pass_probs(acc, notes)
    has = acc.cells > 0
    pitched = ~notes.is_drum
    if song_pass is not None:
        chosen = pitched if in_mixture is None else pitched & np.asarray(in_mixture, bool)
        first, stop = notes.steps()
        probs = song_pass.apply(probs, acc.rows, first, stop, notes.velocity, chosen,
                                acc.row_sums)
    else:
        probs = apply_song_context(probs, np.where(pitched, acc.rows, -1), acc.row_sums,
                                   *song_context)
    instrument = np.full(k, DRUM, dtype=np.int64)
    instrument[pitched] = np.argmax(probs[pitched, :N_PITCHED], axis=1) + 1
    by_model = notes.is_drum & has & drums_by_model
    instrument[by_model] = np.argmax(probs[by_model], axis=1) + 1
    decided_by = np.full(k, MODEL, dtype=np.int64)
    decided_by[out_of_range(notes)] = NEAREST_ROW
    decided_by[notes.is_drum & ~by_model] = DRUM_CHANNEL
    return NoteAssignment(instrument=instrument, probs=probs.astype(np.float32),
                          decided_by=decided_by)


def note_grid(notes: SongNotes, n_steps: int) -> NoteProbAccumulator:
    """An empty accumulator for the notes of a song of ``n_steps`` steps.

    Notes are read at :func:`data.notes.nearest_rows` on their quantised steps; steps
    past the song's end are ignored.
    """
    first, stop = notes.steps()
    return NoteProbAccumulator(np.minimum(first, n_steps), np.minimum(stop, n_steps),
                               nearest_rows(notes))


def skip_silent_windows(prob_fn: ProbFn) -> ProbFn:
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
        out = torch.zeros((batch.shape[0], N_MUSIC, *batch.shape[2:]), device=batch.device)
        if bool(sounding.any()):
            out[sounding] = prob_fn(batch[sounding]).to(out.dtype)
        return out
    return probs


def separate_notes(prob_fn: ProbFn, mixture: np.ndarray, notes: SongNotes,
                   batch_size: int = 64, device: torch.device | None = None,
                   drums_by_model: bool = False, progress: bool = False,
                   in_mixture: np.ndarray | None = None,
                   song_context: tuple[float, float] = (0.0, 3.0),
                   song_pass: SongPass | None = None) -> NoteAssignment:
    """Separate a song note by note (module docstring), in bounded memory.

    Args:
        prob_fn: model inputs ``float32 [B, 2, 64, 72]`` (the mixture and its note starts)
            -> probabilities ``float [B, 5, 64, 72]`` (e.g.
            :meth:`utils.separation.Separator.probs`).
        mixture: bool ``[T, 72]`` the song's mixture (:func:`data.midi.load_mixture`).
        notes: the song's notes (:func:`data.midi.notes_from_score`).
        batch_size: windows separated at once.
        device: where the windows are put.
        drums_by_model: let the model choose for drum-channel notes too.
        progress: show a progress bar in windows/s.
        in_mixture: bool ``[K]``, the notes that make up ``mixture`` (their starts are the
            mixture's note starts); None = every note.
        song_context: ``(weight, width)`` of the fixed song-level second pass
            (:func:`assign_notes`).
        song_pass: the learned song pass, used instead of ``song_context`` when given.

    Returns:
        The :class:`NoteAssignment`.
    """
    acc = note_probabilities(prob_fn, mixture, notes, batch_size, device, progress, in_mixture)
    return assign_notes(acc, notes, drums_by_model, song_context, song_pass, in_mixture)


def note_probabilities(prob_fn: ProbFn, mixture: np.ndarray, notes: SongNotes,
                       batch_size: int = 64, device: torch.device | None = None,
                       progress: bool = False, in_mixture: np.ndarray | None = None
                       ) -> NoteProbAccumulator:
    """The first pass of :func:`separate_notes`: every note's summed cell probabilities,
    the song stitched in bounded memory, the note starts of ``in_mixture``'s notes given to
    the model. :func:`assign_notes` decides from it (as often as wanted)."""
    mixture = np.asarray(mixture, dtype=bool)
    acc = note_grid(notes, mixture.shape[0])
    first, _ = notes.steps()
    rows = notes.rows() if in_mixture is None else np.where(in_mixture, notes.rows(), -1)
    onsets = onset_plane(first, rows, mixture.shape[0]) & mixture
    for begin, probs in song_prob_chunks(prob_fn, mixture, batch_size, device, progress,
                                         onsets):
        acc.add(begin, probs, mixture[begin: begin + len(probs)])
    return acc


# ----------------------------------------------------------------------------------
# MIDI file in; MIDI, JSON, audio and picture out
# ----------------------------------------------------------------------------------
MAX_NOTES = 2_000_000
"""Default most notes (and most controller and pitch-bend events) of a file separated."""
MAX_OVERLAP = 4096
"""Default most notes of one pitch sounding at once (each needs a track of its own)."""
MAX_PICTURE_BARS = 64
"""Most bars drawn in the picture; a longer ``bars`` range is cut, with a warning."""
NAME_MAX = 255  # bytes in a file name on common file systems


@dataclass(frozen=True)
class Limits:
    """What :func:`separate_midi_file` accepts, checked before anything of the song's size
    exists (see docs/reliability.md).

    Attributes:
        max_song_bars: longest song, in bars (from the notes' end ticks).
        max_file_bytes: largest input file, in bytes (checked before it is read).
        max_notes: most notes, and most controller and pitch-bend events.
        max_overlap: most notes of one pitch sounding at once.
        max_audio_seconds: longest audio rendered (a longer song's audio is cut).
    """

    max_song_bars: int = MAX_SONG_BARS
    max_file_bytes: int = MAX_FILE_BYTES
    max_notes: int = MAX_NOTES
    max_overlap: int = MAX_OVERLAP
    max_audio_seconds: float = MAX_AUDIO_SECONDS


def output_paths(midi_path: str | Path, out_dir: str | Path,
                 write_json: bool = False) -> dict[str, Path]:
    """The files :func:`separate_midi_file` writes for ``midi_path`` into ``out_dir``.

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
        synth: how the audio was made (``"fluidsynth"`` or ``"sine"``).
        sample_rate: the audio's sample rate (what the WAV headers say).
        warnings: one-line warnings (meter other than 4/4, no reference available, audio
            cut or rendered at another rate, picture cut).
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


def _note_rows(notes: SongNotes, result: NoteAssignment, lo: int, hi: int) -> list[dict]:
    """The JSON rows of notes ``lo .. hi - 1`` (see :func:`notes_json`)."""
    probs = np.round(result.probs[lo:hi].astype(np.float64), 4)
    rows = []
    for k in range(lo, hi):
        p = probs[k - lo]
        rows.append({
            "track": int(notes.track[k]), "index": int(notes.index[k]),
            "pitch": int(notes.pitch[k]), "start": int(notes.start[k]),
            "end": int(notes.end[k]), "velocity": int(notes.velocity[k]),
            "instrument": INSTRUMENTS[int(result.instrument[k])],
            "decided_by": DECIDED_BY[int(result.decided_by[k])],
            "probabilities": None if np.isnan(p).any() else p.tolist(),
        })
    return rows


def notes_json(midi_path: str | Path, notes: SongNotes, result: NoteAssignment) -> dict:
    """Every note with its instrument and the probabilities behind it (JSON-able).

    ``probabilities`` lists the mean probability of each of ``instruments`` over the note's
    cells (null for a drum-channel note with no cell in the roll).
    """
    return {"input": str(midi_path), "ticks_per_quarter": notes.tpq,
            "instruments": list(MUSIC_INSTRUMENTS), "notes": _note_rows(notes, result, 0,
                                                                        len(notes))}


_JSON_ROWS = 10_000  # notes turned into JSON at a time


def write_notes_json(path: Path, midi_path: str | Path, notes: SongNotes,
                     result: NoteAssignment) -> None:
    """Write :func:`notes_json` to ``path`` row block by row block (memory flat in the
    number of notes); the same text as ``json.dumps(notes_json(...)) + "\\n"``."""
    head = json.dumps({"input": str(midi_path), "ticks_per_quarter": notes.tpq,
                       "instruments": list(MUSIC_INSTRUMENTS), "notes": []})
    with open(path, "w") as fh:
        fh.write(head[:-2])  # without the closing "]}"
        for lo in range(0, len(notes), _JSON_ROWS):
            rows = json.dumps(_note_rows(notes, result, lo, min(lo + _JSON_ROWS, len(notes))))
            fh.write((", " if lo else "") + rows[1:-1])
        fh.write("]}\n")


def audio_notes(notes: SongNotes, instrument: np.ndarray, timing: Timing) -> AudioNotes:
    """The notes as :func:`utils.render.render_notes` plays them: each on its instrument's
    channel and program, in seconds by the file's tempo map, with the controllers and
    pitch bends of every source track of an instrument's notes on its channel once (as
    :func:`data.notes.separated_midi` writes them), however many tracks hold its notes."""
    instrument = np.asarray(instrument, dtype=np.int64)
    to_channel = np.zeros(DRUM + 1, dtype=np.int64)
    for cls, channel in OUTPUT_CHANNEL.items():
        to_channel[cls] = channel
    used = sorted(set(instrument.tolist()))
    c_time, c_chan, c_num, c_val = [], [], [], []
    b_time, b_chan, b_val = [], [], []
    for cls in used:
        for s in sorted(set(notes.track[instrument == cls].tolist())):
            controls, bends = notes.tracks[s].controls, notes.tracks[s].bends
            c_time.append(controls[:, 0])
            c_chan.append(np.full(len(controls), OUTPUT_CHANNEL[cls]))
            c_num.append(controls[:, 1])
            c_val.append(controls[:, 2])
            b_time.append(bends[:, 0])
            b_chan.append(np.full(len(bends), OUTPUT_CHANNEL[cls]))
            b_val.append(bends[:, 1])

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    return AudioNotes(
        channel=to_channel[instrument], pitch=notes.pitch, velocity=notes.velocity,
        start=timing.tick_to_seconds(notes.start), end=timing.tick_to_seconds(notes.end),
        programs={OUTPUT_CHANNEL[c]: RENDER_PROGRAM.get(c, 0) for c in used},
        control_time=timing.tick_to_seconds(cat(c_time)), control_channel=cat(c_chan),
        control_number=cat(c_num), control_value=cat(c_val),
        bend_time=timing.tick_to_seconds(cat(b_time)), bend_channel=cat(b_chan),
        bend_value=cat(b_val))


def _excerpt(roll: np.ndarray, begin: int, end: int) -> np.ndarray:
    """Steps ``begin .. end - 1`` of a song roll ``[T, ...]``, zero-padded past its end."""
    out = np.zeros((end - begin, *roll.shape[1:]), dtype=roll.dtype)
    piece = roll[begin:end]
    out[: len(piece)] = piece
    return out


def check_song(midi_path: Path, notes: SongNotes, limits: Limits) -> None:
    """Refuse a song over the limits that the notes alone show (before any work).

    Raises:
        data.midi.MidiError: reason "too_many_notes" (controller and pitch-bend events
            count against ``max_notes`` too), "too_long" (a note past 2**31 ticks) or
            "too_many_overlaps".
    """
    n_events = sum(len(t.controls) + len(t.bends) for t in notes.tracks)
    if n_events > limits.max_notes:
        raise MidiError(midi_path, "too_many_notes", f"file has {n_events:,} controller and "
                        f"pitch-bend events, over the limit of {limits.max_notes:,} "
                        "(--max-notes)")
    if len(notes) and min(int(notes.start.min()), int(notes.end.min())) < 0:
        raise MidiError(midi_path, "too_long", "a note lies past 2**31 ticks")
    depth = int(overlap_layers(notes.pitch, notes.start, notes.end).max(initial=-1)) + 1
    if depth > limits.max_overlap:
        raise MidiError(midi_path, "too_many_overlaps", f"{depth:,} notes of one pitch sound "
                        f"at once, over the limit of {limits.max_overlap:,} (--max-overlap; "
                        "each needs a track of its own)")


def separate_midi_file(prob_fn: ProbFn, midi_path: str | Path, out_dir: str | Path, *,
                       batch_size: int = 64, device: torch.device | None = None,
                       reference: bool = False, bars: tuple[int, int] | None = None,
                       write_json: bool = False, drums_by_model: bool = False,
                       overwrite: bool = False, sample_rate: int = 22050,
                       progress: bool = False,
                       max_song_bars: int = MAX_SONG_BARS,
                       limits: Limits | None = None,
                       song_context: tuple[float, float] = (0.0, 3.0),
                       song_pass: SongPass | None = None) -> SongOutputs:
    """Separate a MIDI file note by note and write MIDI, audio, a picture (and JSON).

    Writes (names from :func:`output_paths`): the separated MIDI, its audio (each
    instrument with its program), the mixture's audio (every pitched note on a piano,
    the drum channel on drums), a picture of an excerpt (separated notes above the input
    mixture, and the file's own unified multitrack with ``reference``), and with
    ``write_json`` every note's instrument and probabilities. All files are written under
    temporary names and renamed only when all of them succeeded.

    Bounded whatever the file: its size, notes, events and overlaps are checked against
    ``limits`` before anything of the song's size exists; the audio is at most
    ``limits.max_audio_seconds`` long and rendered in one pass of one synthesizer (each
    instrument a channel, however many tracks hold its notes); the picture at most
    :data:`MAX_PICTURE_BARS` bars. The outputs are claimed
    (:func:`data.fileio.claim_outputs`) before the separation starts, so a second run
    into the same files is refused, and released however the run ends.

    Args:
        prob_fn: the window-probability function (e.g. :meth:`Separator.probs`).
        midi_path: any MIDI file (a file without time signature is read as 4/4).
        out_dir: folder for the outputs (created if missing).
        batch_size: windows separated at once.
        device: where the windows are put.
        reference: add the file's own multitrack to the picture when it has one.
        bars: ``(A, B)`` bars to draw, from 1, both included; None = the first 16 bars that
            hold notes.
        write_json: also write ``<name>.notes.json``.
        drums_by_model: let the model choose for drum-channel notes too.
        overwrite: replace existing outputs (otherwise they are an error).
        sample_rate: audio sample rate in Hz (FluidSynth renders 8,000..96,000 Hz; another
            rate is rendered at the nearest one, with a warning, and the WAV files say so).
        progress: show a progress bar in windows/s.
        max_song_bars: longest song accepted, in bars (checked before any roll exists);
            used when ``limits`` is None.
        limits: every limit (:class:`Limits`); None: the defaults, with ``max_song_bars``.
        song_context, song_pass: the song-level second pass (:func:`assign_notes`).

    Returns:
        The :class:`SongOutputs`.

    Raises:
        FileExistsError: an output exists and ``overwrite`` is False (before any work), or
            another run holds it (:class:`data.fileio.OutputsBusy`).
        data.midi.MidiError: not MIDI, truncated, no notes, or over a limit (one-line
            message).
        ValueError: ``bars`` starts after the song's end; an output is the input.
    """
    limits = Limits(max_song_bars=max_song_bars) if limits is None else limits
    midi_path = Path(midi_path)
    paths = output_paths(midi_path, out_dir, write_json)
    check_outputs(paths, overwrite, midi_path)
    notes = read_song(midi_path, limits)
    mixture, ref_roll, timing = load_mixture(midi_path, limits.max_song_bars, notes)
    # everything that can be refused or warned about is known before the long work
    begin, end, cut = _picture_steps(mixture, bars)
    first_bar, last_bar = begin // STEPS_PER_BAR + 1, end // STEPS_PER_BAR
    found = [meter_warning(midi_path, timing.time_signatures), cut,
             unclosed_warning(midi_path, notes.n_unclosed)]
    if reference and ref_roll is None:
        found.append(f"{midi_path}: no reference multitrack (fewer than 2 instrument classes "
                     "after track unification); picture without it")
    warnings = [line for line in found if line]

    paths["midi"].parent.mkdir(parents=True, exist_ok=True)
    with claim_outputs(paths.values()):
        check_outputs(paths, overwrite, midi_path)  # again: another run may have finished
        result = separate_notes(skip_silent_windows(prob_fn), mixture, notes, batch_size,
                                device, drums_by_model, progress, song_context=song_context,
                                song_pass=song_pass)
        separated, tracks = separated_midi(notes, result.instrument)
        panels = _picture_panels(notes, result.instrument, mixture,
                                 ref_roll if reference else None, begin, end)
        audio = _AudioWriter(notes, timing, sample_rate, limits.max_audio_seconds)
        writers = {
            paths["midi"]: lambda p: separated.save(p),
            paths["wav"]: lambda p: audio.write(p, result.instrument),
            # the mixture as played: every pitched note on a piano, the drum channel on drums
            paths["mixture_wav"]: lambda p: audio.write(p, np.where(notes.is_drum, DRUM, PIANO)),
            paths["png"]: lambda p: plot_comparison(panels, p, first_bar=first_bar,
                                                    step_px=STEP_PX),
        }
        if write_json:
            writers[paths["json"]] = lambda p: write_notes_json(p, midi_path, notes, result)
        atomic_write_many(writers)
    warnings += [f"{midi_path}: {line}" for line in audio.remarks()]
    return _song_outputs(paths, mixture, notes, result, tracks, (first_bar, last_bar),
                         audio.rendered[0], warnings)


def read_song(midi_path: Path, limits: Limits) -> SongNotes:
    """Read a file's notes once, within ``limits``: its size and note count before any note
    is built, then what the notes show (:func:`check_song`).

    Raises:
        data.midi.MidiError: not MIDI, truncated, or over a limit (the message names the
            option that sets it).
    """
    try:
        notes = read_notes(midi_path, max_bytes=limits.max_file_bytes,
                           max_notes=limits.max_notes)
    except MidiError as exc:
        flag = {"too_large": "--max-file-mb", "too_many_notes": "--max-notes"}.get(exc.reason)
        if flag is None:
            raise
        raise MidiError(midi_path, exc.reason, f"{str(exc)[len(exc.path) + 2:]} ({flag})") \
            from None
    check_song(midi_path, notes, limits)
    return notes


def _picture_steps(mixture: np.ndarray, bars: tuple[int, int] | None
                   ) -> tuple[int, int, str | None]:
    """The steps ``begin .. end - 1`` the picture shows (:func:`utils.render.excerpt_steps`),
    at most :data:`MAX_PICTURE_BARS` bars, and a warning when they were cut.

    Raises:
        ValueError: ``bars`` starts after the song's end.
    """
    begin, end = excerpt_steps(mixture, bars)
    if end - begin <= MAX_PICTURE_BARS * STEPS_PER_BAR:
        return begin, end, None
    cut = begin + MAX_PICTURE_BARS * STEPS_PER_BAR
    return begin, cut, (f"picture: bars {begin // STEPS_PER_BAR + 1}-{cut // STEPS_PER_BAR} "
                        f"drawn of {begin // STEPS_PER_BAR + 1}-{end // STEPS_PER_BAR} (at "
                        f"most {MAX_PICTURE_BARS} bars)")


def _picture_panels(notes: SongNotes, instrument: np.ndarray, mixture: np.ndarray,
                    reference: np.ndarray | None, begin: int, end: int
                    ) -> list[tuple[str, np.ndarray, str]]:
    """The picture's panels over steps ``begin .. end - 1``: the separated notes, the input
    mixture and, when given, the file's own multitrack ``reference`` (bool ``[T, 72, 6]``),
    each as ``(title, roll, order)`` for :func:`utils.render.plot_comparison`."""
    first, stop = notes.steps()
    separated_roll = notes_roll(first, stop, notes.rows(), instrument, begin, end)
    panels = [
        ("separated notes", np.moveaxis(separated_roll, -1, 0), "model"),  # (5, t, 72)
        ("input mixture", _excerpt(mixture, begin, end), "mixture"),  # (t, 72)
    ]
    if reference is not None:
        panels.append(("original multitrack", _excerpt(reference, begin, end), "phrase"))
    return panels


@dataclass
class _AudioWriter:
    """Writes a song's audio files one at a time, so only one audio is ever held in memory,
    and keeps how each was made (its samples dropped)."""

    notes: SongNotes
    timing: Timing
    sample_rate: int
    max_seconds: float
    rendered: list[RenderedAudio] = field(default_factory=list)

    def write(self, path: Path, instrument: np.ndarray) -> None:
        """Render the notes, each on ``instrument``'s channel and program, into ``path``."""
        audio = render_notes(audio_notes(self.notes, instrument, self.timing),
                             self.sample_rate, max_seconds=self.max_seconds)
        write_wav(path, audio.audio, audio.fs)
        self.rendered.append(RenderedAudio(np.zeros(0, np.float32), audio.fs, audio.method,
                                           audio.notes))

    def remarks(self) -> list[str]:
        """What the renderings said (cuts, another rate), each line once."""
        return list(dict.fromkeys(n for audio in self.rendered for n in audio.notes))


def _song_outputs(paths: dict[str, Path], mixture: np.ndarray, notes: SongNotes,
                  result: NoteAssignment, tracks: list[OutputTrack], excerpt: tuple[int, int],
                  audio: RenderedAudio, warnings: list[str]) -> SongOutputs:
    """What a separation wrote, kept and dropped, counted (:class:`SongOutputs`)."""
    used = {s for t in tracks for s in t.sources}
    dropped = sum(len(t.controls) + len(t.bends) for i, t in enumerate(notes.tracks)
                  if i not in used)
    return SongOutputs(
        paths=paths, n_steps=int(mixture.shape[0]),
        n_windows=len(window_starts(mixture.shape[0])), n_notes=len(notes),
        per_instrument=result.counts(), n_out_of_range=int(out_of_range(notes).sum()),
        n_drum_channel=int((result.decided_by == DRUM_CHANNEL).sum()), tracks=tracks,
        n_controls_dropped=int(dropped), n_lyrics=notes.n_lyrics, n_markers=notes.n_markers,
        excerpt=excerpt, synth=audio.method, sample_rate=audio.fs, warnings=warnings)
