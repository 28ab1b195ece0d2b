"""A MIDI file in; its separated MIDI, audio, picture (and JSON) out.

:func:`separate_midi_file` reads any MIDI file within :class:`Limits`, separates it note by
note with a :class:`utils.separation.separator.Separator`
(:meth:`~utils.separation.separator.Separator.separate_notes`), and writes the separated
MIDI (every input note exactly once, see :func:`data.notes.separated_midi`), audio of the
separation and of the mixture, a picture of an excerpt and, optionally, a JSON of every
note -- all under temporary names, renamed only when all of them succeeded. What the job
does beyond the notes is one record, :class:`FileOptions`; which outputs are written and
the instruments the pitched notes are kept within are its ``choices``
(:class:`utils.separation.file_choices.FileChoices`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data.contract import (
    MAX_SONG_BARS,
    PIANO,
    STEPS_PER_BAR,
)
from data.fileio import atomic_write_many, claim_outputs
from data.instruments import PAPER, InstrumentSet
from data.midi import (
    MAX_FILE_BYTES,
    MidiError,
    SongNotes,
    describe_time_signatures,
    read_notes,
    unclosed_warning,
)
from data.notes import overlap_layers, separated_midi
from data.song_roll import load_mixture, notes_roll
from utils.rendering.audio import (
    MAX_AUDIO_SECONDS,
)
from utils.rendering.pictures import STEP_PX, excerpt_steps, plot_comparison, set_layouts
from utils.separation.file_choices import FileChoices
from utils.separation.file_outputs import (
    AudioWriter,
    SongOutputs,
    check_outputs,
    output_paths,
    song_outputs,
    write_notes_json,
)
from utils.separation.first_pass import MixtureSong
from utils.separation.notes import SongSeparator, instruments_of

MAX_NOTES = 2_000_000
"""Default most notes (and most controller and pitch-bend events) of a file separated."""
MAX_OVERLAP = 4096
"""Default most notes of one pitch sounding at once (each needs a track of its own)."""
MAX_PICTURE_BARS = 64
"""Most bars drawn in the picture; a longer ``bars`` range is cut, with a warning."""



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


@dataclass(frozen=True)
class FileOptions:
    """What the MIDI file job does beyond separating the notes (``separate.py``'s options).

    Attributes:
        reference: add the file's own multitrack to the picture when it has one.
        bars: ``(A, B)`` bars to draw, from 1, both included; None = the first 16 bars that
            hold notes.
        write_json: also write ``<name>.notes.json``.
        drums_by_model: let the model choose for drum-channel notes too.
        overwrite: replace existing outputs (otherwise they are an error).
        sample_rate: audio sample rate in Hz (FluidSynth renders 8,000..96,000 Hz; another
            rate is rendered at the nearest one, with a warning, and the WAV files say so).
        progress: show a progress bar in windows/s.
        limits: every limit on the input (:class:`Limits`).
        choices: which of the outputs are written, and the instruments the pitched notes
            are kept within (:class:`utils.separation.file_choices.FileChoices`); the
            default: every output, any instrument.
    """

    reference: bool = False
    bars: tuple[int, int] | None = None
    write_json: bool = False
    drums_by_model: bool = False
    overwrite: bool = False
    sample_rate: int = 22050
    progress: bool = False
    limits: Limits = field(default_factory=Limits)
    choices: FileChoices = field(default_factory=FileChoices)

    def written_paths(self, midi_path: Path, out_dir: str | Path) -> dict[str, Path]:
        """The outputs this job writes for ``midi_path``: the names of
        :func:`utils.separation.file_outputs.output_paths` that the choices keep."""
        return self.choices.select(output_paths(midi_path, out_dir, self.write_json))


def separate_midi_file(separator: SongSeparator, midi_path: str | Path, out_dir: str | Path,
                       options: FileOptions | None = None) -> SongOutputs:
    """Separate a MIDI file note by note and write MIDI, audio, a picture (and JSON).

    Writes (names from :func:`utils.separation.file_outputs.output_paths`): the separated
    MIDI, its audio (each instrument with its program), the mixture's audio (every pitched
    note on a piano, the drum channel on drums), a picture of an excerpt (separated notes
    above the input mixture, and the file's own unified multitrack with
    ``options.reference``), and with ``options.write_json`` every note's instrument and
    probabilities; ``options.choices`` may name fewer of them, and keep every pitched note
    within the instruments of a hint. All files are written under temporary names and
    renamed only when all of them succeeded.

    Bounded whatever the file: its size, notes, events and overlaps are checked against
    ``options.limits`` before anything of the song's size exists; the audio is at most
    ``limits.max_audio_seconds`` long and rendered in one pass of one synthesizer (each
    instrument a channel, however many tracks hold its notes); the picture at most
    :data:`MAX_PICTURE_BARS` bars. The outputs are claimed
    (:func:`data.fileio.claim_outputs`) before the separation starts, so a second run
    into the same files is refused, and released however the run ends.

    Args:
        separator: separates the song note by note, its second pass included (a
            :class:`utils.separation.separator.Separator`, or a
            :class:`utils.separation.notes.NoteSeparator`); silent windows are skipped.
        midi_path: any MIDI file (a file without time signature is read as 4/4).
        out_dir: folder for the outputs (created if missing).
        options: the job's options (:class:`FileOptions`; None: the defaults).

    Returns:
        The :class:`SongOutputs`.

    Raises:
        FileExistsError: an output exists and ``overwrite`` is False (before any work), or
            another run holds it (:class:`data.fileio.OutputsBusy`).
        data.midi.MidiError: not MIDI, truncated, no notes, or over a limit (one-line
            message).
        ValueError: ``bars`` starts after the song's end; an output is the input.
    """
    options = FileOptions() if options is None else options
    limits, hint = options.limits, options.choices.hint
    instruments = instruments_of(separator)
    midi_path = Path(midi_path)
    paths = options.written_paths(midi_path, out_dir)
    check_outputs(paths, options.overwrite, midi_path)
    notes = read_song(midi_path, limits)
    mixture, ref_roll, timing = load_mixture(midi_path, limits.max_song_bars, notes,
                                             instruments)
    # everything that can be refused or warned about is known before the long work
    begin, end, cut = (_picture_steps(mixture, options.bars) if "png" in paths
                       else (0, 0, None))
    first_bar, last_bar = begin // STEPS_PER_BAR + 1, end // STEPS_PER_BAR
    found = [meter_warning(midi_path, timing.time_signatures), cut,
             unclosed_warning(midi_path, notes.n_unclosed)]
    if options.reference and ref_roll is None and "png" in paths:
        found.append(f"{midi_path}: no reference multitrack (fewer than 2 instrument classes "
                     "after track unification); picture without it")
    warnings = [line for line in found if line]

    paths[next(iter(paths))].parent.mkdir(parents=True, exist_ok=True)
    with claim_outputs(paths.values()):
        # again: another run may have finished
        check_outputs(paths, options.overwrite, midi_path)
        result = separator.separate_notes(MixtureSong(notes, mixture), skip_silent=True,
                                          drums_by_model=options.drums_by_model,
                                          progress=options.progress)
        if hint is not None:
            result.instrument = hint.apply(result.instrument, result.probs, notes.is_drum)
        separated, tracks = separated_midi(notes, result.instrument, instruments=instruments)
        audio = AudioWriter(notes, timing, options.sample_rate, limits.max_audio_seconds,
                            instruments=instruments)
        writers = {
            "midi": lambda p: separated.save(p),
            "wav": lambda p: audio.write(p, result.instrument),
            # the mixture as played: every pitched note on a piano, the drum channel on drums
            "mixture_wav": lambda p: audio.write(p, np.where(notes.is_drum, instruments.drum,
                                                             PIANO)),
            "png": lambda p: plot_comparison(
                _picture_panels(notes, result.instrument, mixture,
                                ref_roll if options.reference else None, (begin, end),
                                instruments),
                p, first_bar=first_bar, step_px=STEP_PX),
            "json": lambda p: write_notes_json(p, midi_path, notes, result,
                                               None if hint is None else hint.names,
                                               instruments),
        }
        atomic_write_many({path: writers[key] for key, path in paths.items()})
    warnings += [f"{midi_path}: {line}" for line in audio.remarks()]
    outputs = song_outputs(paths, mixture, notes, result, tracks, (first_bar, last_bar),
                           audio.rendered[0] if audio.rendered else None, warnings)
    outputs.per_instrument = result.counts(instruments.music)
    outputs.hint = None if hint is None else hint.describe()
    return outputs


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
    """The steps ``begin .. end - 1`` the picture shows (``excerpt_steps``),
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
                    reference: np.ndarray | None, steps: tuple[int, int],
                    instruments: InstrumentSet = PAPER) -> list[tuple[str, np.ndarray, Any]]:
    """The picture's panels over steps ``begin .. end - 1`` (``steps``): the separated
    notes, the input mixture and, when given, the file's own multitrack ``reference``
    (bool ``[T, 72, 6]``, the set's instruments), each as ``(title, roll, layout)`` for
    :func:`utils.rendering.pictures.plot_comparison`."""
    begin, end = steps
    first, stop = notes.steps()
    separated_roll = notes_roll(first, stop, notes.rows(), instrument, begin, end,
                                instruments.n_music)
    layouts = set_layouts(instruments)
    panels = [
        ("separated notes", np.moveaxis(separated_roll, -1, 0), layouts["model"]),  # (C, t, 72)
        ("input mixture", _excerpt(mixture, begin, end), layouts["mixture"]),  # (t, 72)
    ]
    if reference is not None:
        panels.append(("original multitrack", _excerpt(reference, begin, end),
                       layouts["phrase"]))
    return panels


def meter_warning(path: str | Path, time_signatures: list[tuple[int, int, int]]) -> str | None:
    """A one-line warning when a song is not entirely in 4/4 (the model's only meter).

    Args:
        path: the MIDI file (named in the message).
        time_signatures: ``[(tick, numerator, denominator), ...]``; an empty list is 4/4.
    """
    other = [(tick, n, d) for tick, n, d in time_signatures if (n, d) != (4, 4)]
    if not other:
        return None
    found = describe_time_signatures(other)
    return (f"{path}: time signature {found}; the model was trained on 4/4 only, "
            "separating on the 16th-note grid anyway")
