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
``[K]`` or ``[K, 5]`` in :class:`data.notes.SongNotes` order.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import torch

from data.contract import (
    DRUM,
    INSTRUMENTS,
    MAX_SONG_BARS,
    MUSIC_INSTRUMENTS,
    N_MUSIC,
    N_PITCH,
    PIANO,
    STEPS_PER_BAR,
)
from data.fileio import atomic_write_many
from data.midi import load_mixture, read_score
from data.notes import (
    OutputTrack,
    SongNotes,
    nearest_rows,
    notes_from_score,
    notes_roll,
    out_of_range,
    separated_midi,
)
from data.roll import onset_plane, window_starts
from utils.render import STEP_PX, excerpt_steps, plot_comparison, synthesize, write_wav
from utils.separation import ProbFn, meter_warning, song_prob_chunks

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


def assign_notes(acc: NoteProbAccumulator, notes: SongNotes,
                 drums_by_model: bool = False) -> NoteAssignment:
    """Decide each note's instrument from accumulated probabilities (module docstring).

    Args:
        acc: the accumulator, fed with every chunk of the song, built with
            :func:`note_grid` of the same ``notes``.
        notes: the song's notes.
        drums_by_model: let the model choose the instrument of drum-channel notes too.

    Returns:
        The :class:`NoteAssignment`.
    """
    k = len(notes)
    probs = np.full((k, N_MUSIC), np.nan, dtype=np.float64)
    has = acc.cells > 0
    probs[has] = acc.sums[has] / acc.cells[has, None]
    pitched = ~notes.is_drum
    for i in np.flatnonzero(pitched & ~has).tolist():  # a silent nearest row: song average
        fallback = acc.row_average(int(acc.rows[i]))
        probs[i] = 0.0 if fallback is None else fallback
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


def separate_notes(prob_fn: ProbFn, mixture: np.ndarray, notes: SongNotes,
                   batch_size: int = 64, device: torch.device | None = None,
                   drums_by_model: bool = False, progress: bool = False,
                   in_mixture: np.ndarray | None = None) -> NoteAssignment:
    """Separate a song note by note (module docstring), in bounded memory.

    Args:
        prob_fn: model inputs ``float32 [B, 2, 64, 72]`` (the mixture and its note starts)
            -> probabilities ``float [B, 5, 64, 72]`` (e.g.
            :meth:`utils.separation.Separator.probs`).
        mixture: bool ``[T, 72]`` the song's mixture (:func:`data.midi.load_mixture`).
        notes: the song's notes (:func:`data.notes.notes_from_score`).
        batch_size: windows separated at once.
        device: where the windows are put.
        drums_by_model: let the model choose for drum-channel notes too.
        progress: show a progress bar in windows/s.
        in_mixture: bool ``[K]``, the notes that make up ``mixture`` (their starts are the
            mixture's note starts); None = every note.

    Returns:
        The :class:`NoteAssignment`.
    """
    mixture = np.asarray(mixture, dtype=bool)
    acc = note_grid(notes, mixture.shape[0])
    first, _ = notes.steps()
    rows = notes.rows() if in_mixture is None else np.where(in_mixture, notes.rows(), -1)
    onsets = onset_plane(first, rows, mixture.shape[0]) & mixture
    for begin, probs in song_prob_chunks(prob_fn, mixture, batch_size, device, progress,
                                         onsets):
        acc.add(begin, probs, mixture[begin: begin + len(probs)])
    return assign_notes(acc, notes, drums_by_model)


# ----------------------------------------------------------------------------------
# MIDI file in; MIDI, JSON, audio and picture out
# ----------------------------------------------------------------------------------
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


def check_outputs(paths: dict[str, Path], overwrite: bool) -> None:
    """Refuse to replace existing outputs unless ``overwrite``.

    Raises:
        FileExistsError: the first output that exists, in one line.
    """
    existing = [p for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass --overwrite to replace it")


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
        warnings: one-line warnings (meter other than 4/4, no reference available).
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
            f"{n_bends} pitch-bend events copied to the tracks holding their track's notes",
        ]
        if self.n_out_of_range:
            lines.append(f"{self.n_out_of_range} pitched notes outside MIDI 24..95 took the "
                         "instrument of the nearest row the model covers")
        if self.n_drum_channel:
            lines.append(f"{self.n_drum_channel} drum-channel notes stayed drums")
        if extra:
            lines.append(f"{len(extra)} extra tracks ({', '.join(extra)}) hold notes that "
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


def notes_json(midi_path: str | Path, notes: SongNotes, result: NoteAssignment) -> dict:
    """Every note with its instrument and the probabilities behind it (JSON-able).

    ``probabilities`` lists the mean probability of each of ``instruments`` over the note's
    cells (null for a drum-channel note with no cell in the roll).
    """
    probs = np.round(result.probs.astype(np.float64), 4)
    rows = []
    for k in range(len(notes)):
        p = probs[k]
        rows.append({
            "track": int(notes.track[k]), "index": int(notes.index[k]),
            "pitch": int(notes.pitch[k]), "start": int(notes.start[k]),
            "end": int(notes.end[k]), "velocity": int(notes.velocity[k]),
            "instrument": INSTRUMENTS[int(result.instrument[k])],
            "decided_by": DECIDED_BY[int(result.decided_by[k])],
            "probabilities": None if np.isnan(p).any() else p.tolist(),
        })
    return {"input": str(midi_path), "ticks_per_quarter": notes.tpq,
            "instruments": list(MUSIC_INSTRUMENTS), "notes": rows}


def _audio(midi: mido.MidiFile, sample_rate: int) -> tuple[np.ndarray, str]:
    """Synthesize a MIDI file (FluidSynth with each track's program, else sine)."""
    data = io.BytesIO()
    midi.save(file=data)
    data.seek(0)
    return synthesize(pretty_midi.PrettyMIDI(data), sample_rate)


def _excerpt(roll: np.ndarray, begin: int, end: int) -> np.ndarray:
    """Steps ``begin .. end - 1`` of a song roll ``[T, ...]``, zero-padded past its end."""
    out = np.zeros((end - begin, *roll.shape[1:]), dtype=roll.dtype)
    piece = roll[begin:end]
    out[: len(piece)] = piece
    return out


def separate_midi_file(prob_fn: ProbFn, midi_path: str | Path, out_dir: str | Path, *,
                       batch_size: int = 64, device: torch.device | None = None,
                       reference: bool = False, bars: tuple[int, int] | None = None,
                       write_json: bool = False, drums_by_model: bool = False,
                       overwrite: bool = False, sample_rate: int = 22050,
                       progress: bool = False,
                       max_song_bars: int = MAX_SONG_BARS) -> SongOutputs:
    """Separate a MIDI file note by note and write MIDI, audio, a picture (and JSON).

    Writes (names from :func:`output_paths`): the separated MIDI, its audio (each
    instrument with its program), the mixture's audio (every pitched note on a piano,
    the drum channel on drums), a picture of an excerpt (separated notes above the input
    mixture, and the file's own unified multitrack with ``reference``), and with
    ``write_json`` every note's instrument and probabilities. All files are written under
    temporary names and renamed only when all of them succeeded.

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
        sample_rate: audio sample rate in Hz.
        progress: show a progress bar in windows/s.
        max_song_bars: longest song accepted, in bars (checked before any roll exists).

    Returns:
        The :class:`SongOutputs`.

    Raises:
        FileExistsError: an output exists and ``overwrite`` is False (before any work).
        data.midi.MidiError: not MIDI, truncated, no notes, or longer than
            ``max_song_bars`` (one-line message).
        ValueError: ``bars`` starts after the song's end.
    """
    midi_path = Path(midi_path)
    paths = output_paths(midi_path, out_dir, write_json)
    check_outputs(paths, overwrite)
    score = read_score(midi_path)  # read once: the mixture and the notes come from it
    mixture, ref_roll, timing = load_mixture(midi_path, max_song_bars, score)  # (T, 72), ...
    notes = notes_from_score(score)
    warnings: list[str] = []
    meter = meter_warning(midi_path, timing.time_signatures)
    if meter:
        warnings.append(meter)
    begin, end = excerpt_steps(mixture, bars)  # checked before the long work

    result = separate_notes(prob_fn, mixture, notes, batch_size, device, drums_by_model,
                            progress)
    separated, tracks = separated_midi(notes, result.instrument)
    audio, synth = _audio(separated, sample_rate)
    mixture_midi, _ = separated_midi(notes, np.where(notes.is_drum, DRUM, PIANO))
    mixture_audio, _ = _audio(mixture_midi, sample_rate)

    first, stop = notes.steps()
    separated_roll = notes_roll(first, stop, notes.rows(), result.instrument, begin, end)
    panels: list[tuple[str, np.ndarray, str]] = [
        ("separated notes", np.moveaxis(separated_roll, -1, 0), "model"),  # (5, t, 72)
        ("input mixture", _excerpt(mixture, begin, end), "mixture"),  # (t, 72)
    ]
    if reference:
        if ref_roll is None:
            warnings.append(f"{midi_path}: no reference multitrack (fewer than 2 instrument "
                            "classes after track unification); picture without it")
        else:  # (t, 72, 6)
            panels.append(("original multitrack", _excerpt(ref_roll, begin, end), "phrase"))
    first_bar, last_bar = begin // STEPS_PER_BAR + 1, end // STEPS_PER_BAR

    writers = {
        paths["midi"]: lambda p: separated.save(str(p)),
        paths["wav"]: lambda p: write_wav(p, audio, sample_rate),
        paths["mixture_wav"]: lambda p: write_wav(p, mixture_audio, sample_rate),
        paths["png"]: lambda p: plot_comparison(panels, p, first_bar=first_bar,
                                                step_px=STEP_PX),
    }
    if write_json:
        payload = notes_json(midi_path, notes, result)
        writers[paths["json"]] = lambda p: p.write_text(json.dumps(payload) + "\n")
    paths["midi"].parent.mkdir(parents=True, exist_ok=True)
    atomic_write_many(writers)

    used = {s for t in tracks for s in t.sources}
    dropped = sum(len(t.controls) + len(t.bends) for i, t in enumerate(notes.tracks)
                  if i not in used)
    return SongOutputs(
        paths=paths, n_steps=int(mixture.shape[0]),
        n_windows=len(window_starts(mixture.shape[0])), n_notes=len(notes),
        per_instrument=result.counts(), n_out_of_range=int(out_of_range(notes).sum()),
        n_drum_channel=int((result.decided_by == DRUM_CHANNEL).sum()), tracks=tracks,
        n_controls_dropped=int(dropped), n_lyrics=notes.n_lyrics, n_markers=notes.n_markers,
        excerpt=(first_bar, last_bar), synth=synth, warnings=warnings)
