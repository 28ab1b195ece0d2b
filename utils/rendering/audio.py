"""Listening: MIDI -> audio, WAV files (docs/method.md section 9).

FluidSynth with the General MIDI SoundFont that pretty_midi ships (TimGM6mb.sf2).
Where the FluidSynth library (Debian package ``libfluidsynth3``) or its Python binding
(``pyfluidsynth``) is missing, :func:`midi_to_audio` falls back to pretty_midi's sine
synthesis with a warning that names what is missing (sine synthesis has no drums).
"""

from __future__ import annotations

import ctypes
import functools
import io
import warnings
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi

from data.fileio import atomic_write
from data.notes import EncodedMidi

SOUNDFONT = Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"
"""The General MIDI SoundFont bundled with pretty_midi."""

SYNTH_METHODS: tuple[str, ...] = ("auto", "fluidsynth", "sine")

PEAK = 0.9  # audio is scaled to this peak amplitude (headroom for 16-bit PCM)


@dataclass(frozen=True)
class Synth:
    """One synthesizer (the ``method`` a rendering names).

    Attributes:
        name: its name, as ``method`` and the results give it.
        rates: the sample rates it renders at, ``(lo, hi)`` (None: any).
        unavailable: ``() -> None`` where it works here, else what it lacks, in words.
        midi: ``(pretty_midi.PrettyMIDI, fs) -> raw audio`` (:func:`midi_to_audio`).
        notes: ``(song, rate, seconds, remarks) -> (audio, rate rendered)``
            (:func:`render_notes`).
    """

    name: str
    rates: tuple[int, int] | None
    unavailable: Callable[[], str | None]
    midi: Callable[[pretty_midi.PrettyMIDI, int], np.ndarray]
    notes: Callable[[AudioNotes, int, float, list[str]], tuple[np.ndarray, int]]


def _synthesizer(method: str) -> Synth:
    """The synthesizer ``method`` gets here (``"auto"``: FluidSynth where it works, else
    sine with a warning).

    Raises:
        RuntimeError: a synthesizer named that is unavailable here (FluidSynth).
    """
    wanted = SYNTHS.get(method, SYNTHS["fluidsynth"])
    missing = wanted.unavailable()
    if missing is None:
        return wanted
    if method in SYNTHS:
        raise RuntimeError(f"FluidSynth synthesis unavailable: {missing}")
    warnings.warn(f"{missing}; falling back to sine synthesis (no drums)", stacklevel=3)
    return SYNTHS["sine"]


def fluidsynth_missing() -> str | None:
    """Say what FluidSynth synthesis lacks on this machine, or ``None`` when it works.

    Returns:
        ``None``, or a one-line description of the missing piece (Python binding, shared
        library, or SoundFont file).
    """
    try:
        import fluidsynth  # noqa: F401  (binding; raises ImportError without the library)
    except ModuleNotFoundError:
        return "the Python package pyfluidsynth is not installed"
    except (ImportError, OSError) as err:
        return f"the FluidSynth library is missing (install libfluidsynth3): {err}"
    if not SOUNDFONT.is_file():
        return f"the SoundFont {SOUNDFONT} is missing"
    return None


def midi_to_audio(
    midi: EncodedMidi | pretty_midi.PrettyMIDI, fs: int = 22050, *, method: str = "auto"
) -> tuple[np.ndarray, str]:
    """Render MIDI to mono audio.

    Args:
        midi: the MIDI to render: an encoded file (e.g. :func:`data.notes.roll_to_midi`'s)
            or a ``pretty_midi.PrettyMIDI``.
        fs: sample rate in Hz.
        method: ``"auto"`` (FluidSynth, else sine with a warning), ``"fluidsynth"``
            (error when unavailable) or ``"sine"``.

    Returns:
        ``(audio, used)``: float32 ``[samples]`` scaled to a peak of 0.9 (silence stays
        zero; a MIDI without notes gives at least one zero sample), and the method used,
        ``"fluidsynth"`` or ``"sine"``.

    Raises:
        ValueError: unknown ``method``, non-positive ``fs``, or with FluidSynth an ``fs``
            outside the rates it renders at (:data:`FLUID_RATES`).
        RuntimeError: ``method="fluidsynth"`` where FluidSynth is unavailable.
    """
    if method not in SYNTH_METHODS:
        raise ValueError(f"method: unknown value {method!r}, allowed: {', '.join(SYNTH_METHODS)}")
    if fs <= 0:
        raise ValueError(f"fs: sample rate must be positive, got {fs}")
    used = _synthesizer(method)
    if used.rates is not None and not used.rates[0] <= fs <= used.rates[1]:
        # FluidSynth would render at another rate than the one the caller writes
        raise ValueError(f"fs: FluidSynth renders at {FLUID_RATES[0]}..{FLUID_RATES[1]} Hz, "
                         f"got {fs}")
    pm = pretty_midi.PrettyMIDI(io.BytesIO(midi.data)) if isinstance(midi, EncodedMidi) else midi
    has_notes = any(inst.notes for inst in pm.instruments)
    if not has_notes:
        audio = np.zeros(max(1, int(round(pm.get_end_time() * fs))), dtype=np.float32)
        return audio, used.name
    audio = np.asarray(used.midi(pm, fs), dtype=np.float64).reshape(-1)
    if audio.size == 0:
        audio = np.zeros(1)
    peak = float(np.abs(audio).max())
    if peak > 0:
        audio = audio * (PEAK / peak)
    return audio.astype(np.float32), used.name


def write_wav(path: str | Path, audio: np.ndarray, fs: int) -> None:
    """Write mono audio as a 16-bit PCM WAV file, atomically (temp file + rename).

    Args:
        path: target file; its folder must exist.
        audio: float ``[samples]`` in [-1, 1] (values outside are clipped).
        fs: sample rate in Hz.

    Raises:
        ValueError: ``audio`` not 1-D or ``fs`` outside 1..:data:`MAX_WAV_RATE`.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio: expected mono [samples], got shape {list(audio.shape)}")
    if not 0 < fs <= MAX_WAV_RATE:
        raise ValueError(f"fs: sample rate must be 1..{MAX_WAV_RATE}, got {fs}")
    atomic_write(path, lambda tmp: _write_pcm(tmp, audio, int(fs)))


_PCM_BLOCK = 1 << 20  # samples converted to 16-bit at a time


def _write_pcm(tmp: Path, audio: np.ndarray, fs: int) -> None:
    """Write float ``audio [samples]`` to ``tmp`` as a mono 16-bit WAV file, block by block
    (no copy of the whole audio)."""
    with wave.open(str(tmp), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(fs)
        for lo in range(0, audio.size, _PCM_BLOCK):
            block = np.clip(audio[lo: lo + _PCM_BLOCK].astype(np.float64), -1.0, 1.0)
            fh.writeframes(np.round(block * 32767).astype("<i2").tobytes())


# --- audio of note arrays: bounded in length, one synthesizer for every channel ------
MAX_AUDIO_SECONDS = 600.0
"""Default longest audio rendered by :func:`render_notes`, in seconds."""
TAIL_SECONDS = 1.0  # rendered after the last note ends (its release)
FLUID_RATES = (8000, 96000)  # sample rates FluidSynth renders at (synth.sample-rate)
MAX_WAV_RATE = 2**31 - 1  # a WAV header holds the byte rate (2 x the rate) in 32 bits
_BLOCK = 1 << 16  # samples rendered by one call into FluidSynth
POLYPHONY = 128  # FluidSynth's voices; its cost per sample grows with them (default 256)
_DRUM_CHANNEL = 9  # General MIDI's channel 10: bank 128, the drum kits


@dataclass
class AudioNotes:
    """What :func:`render_notes` plays: notes and channel events, in seconds.

    Attributes:
        channel, pitch, velocity: int ``[K]`` each note's MIDI channel (9: drums), key and
            velocity (1..127).
        start, end: float ``[K]`` note-on and note-off in seconds.
        programs: ``{channel: GM program}`` (the drum channel takes a drum kit).
        control_time, control_channel, control_number, control_value: ``[C]`` controller
            events.
        bend_time, bend_channel, bend_value: ``[B]`` pitch bends (value -8192..8191).
    """

    channel: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    start: np.ndarray
    end: np.ndarray
    programs: dict[int, int]
    control_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    control_channel: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    control_number: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    control_value: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    bend_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bend_channel: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    bend_value: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass
class RenderedAudio:
    """Audio made by :func:`render_notes`.

    Attributes:
        audio: float32 ``[samples]`` mono, scaled to a peak of 0.9 (silence stays zero).
        fs: the sample rate it was rendered at (what a WAV header must say).
        method: ``"fluidsynth"`` or ``"sine"``.
        notes: one-line remarks: what was cut, a rate FluidSynth could not render at,
            FluidSynth's warnings (counted, never printed one by one).
    """

    audio: np.ndarray
    fs: int
    method: str
    notes: list[str] = field(default_factory=list)


def render_notes(song: AudioNotes, fs: int = 22050, *,
                 max_seconds: float = MAX_AUDIO_SECONDS, method: str = "auto"
                 ) -> RenderedAudio:
    """Render notes to mono audio, at most ``max_seconds`` long, in bounded time and memory.

    Every channel plays in one synthesizer, in one pass over the events in time order, so
    the cost is the audio's length plus the number of events, however many tracks or
    overlapping notes the song has. Audio starts at 0 s and lasts until 1 s after the last
    note ends, cut at ``max_seconds`` (saying so in :attr:`RenderedAudio.notes`; later
    events are not played). Nothing is longer than ``max_seconds * fs`` samples.

    FluidSynth renders at 8,000..96,000 Hz: a rate outside is rendered at the nearest one,
    said in a note, and :attr:`RenderedAudio.fs` is the rate rendered. It plays at most
    :data:`POLYPHONY` voices at once (its time per second of audio grows with them); its
    warnings (notes that found no free voice, ...) are counted into one note, never
    printed one by one. Without FluidSynth
    (``method="auto"``), sine tones (no drums) with a Python warning naming what is missing.

    Args:
        song: the notes and channel events.
        fs: sample rate in Hz.
        max_seconds: longest audio rendered (> 0).
        method: ``"auto"``, ``"fluidsynth"`` or ``"sine"``.

    Raises:
        ValueError: unknown ``method``, ``fs`` outside 1..2**31 - 1, ``max_seconds`` <= 0.
        RuntimeError: ``method="fluidsynth"`` where FluidSynth is unavailable.
    """
    if method not in SYNTH_METHODS:
        raise ValueError(f"method: unknown value {method!r}, allowed: {', '.join(SYNTH_METHODS)}")
    if not 0 < fs <= MAX_WAV_RATE:
        raise ValueError(f"fs: sample rate must be 1..{MAX_WAV_RATE}, got {fs}")
    if not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
    used = _synthesizer(method)
    notes: list[str] = []
    rate = int(np.clip(fs, *used.rates)) if used.rates is not None else fs
    song_end = float(max(np.max(song.end, initial=0.0), np.max(song.start, initial=0.0)))
    length = song_end + TAIL_SECONDS if np.size(song.start) else 0.0
    if length > max_seconds:
        notes.append(f"audio cut at {max_seconds:,g} s of the song's {song_end:,.0f} s "
                     "(max_audio_seconds); later notes are not heard")
        length = max_seconds
    audio, rate = used.notes(song, rate, length, notes)
    if rate != fs:
        notes.append(f"audio rendered at {rate:,} Hz, the nearest rate FluidSynth renders "
                     f"at ({FLUID_RATES[0]:,}..{FLUID_RATES[1]:,} Hz), not {fs:,} Hz")
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > 0:
        audio *= np.float32(PEAK / peak)
    return RenderedAudio(audio=audio, fs=int(rate), method=used.name, notes=notes)


_EVENTS_AT_ONCE = 1 << 16  # events turned into Python numbers at a time


def _event_table(song: AudioNotes, rate: int, n_samples: int
                 ) -> Iterator[list[tuple[int, int, int, int, int]]]:
    """Every event before sample ``n_samples`` as ``(sample, kind, channel, a, b)``, in
    time order (at one sample: controllers and bends, note-offs, note-ons, then the
    note-offs of zero-length notes), in lists of at most :data:`_EVENTS_AT_ONCE`.

    Kinds: 0 controller (a = number, b = value), 1 pitch bend (a = value), 2 note-off
    (a = key), 3 note-on (a = key, b = velocity).
    """
    def at(seconds: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(seconds, dtype=np.float64) * rate).astype(np.int64)

    k, c, b = np.size(song.start), np.size(song.control_time), np.size(song.bend_time)
    sample = np.concatenate([at(song.control_time), at(song.bend_time), at(song.end),
                             at(song.start)])
    kind = np.concatenate([np.zeros(c, np.int64), np.ones(b, np.int64),
                           np.full(k, 2, np.int64), np.full(k, 3, np.int64)])
    channel = np.concatenate([song.control_channel, song.bend_channel, song.channel,
                              song.channel]).astype(np.int64)
    first = np.concatenate([song.control_number, song.bend_value, song.pitch,
                            song.pitch]).astype(np.int64)
    second = np.concatenate([song.control_value, np.zeros(b, np.int64), np.zeros(k, np.int64),
                             song.velocity]).astype(np.int64)
    rank = np.select([kind < 2, kind == 3], [0, 2], 1)
    zero = np.asarray(song.end) <= np.asarray(song.start)
    rank[c + b: c + b + k][zero] = 3  # after its own note-on
    order = np.lexsort((np.arange(sample.size), rank, sample))
    order = order[(sample[order] >= 0) & (sample[order] < n_samples)]
    for lo in range(0, order.size, _EVENTS_AT_ONCE):
        part = order[lo: lo + _EVENTS_AT_ONCE]
        yield list(zip(sample[part].tolist(), kind[part].tolist(), channel[part].tolist(),
                       first[part].tolist(), second[part].tolist()))


def _fluid_render(song: AudioNotes, rate: int, seconds: float, notes: list[str]
                  ) -> tuple[np.ndarray, int]:
    """FluidSynth, every channel in one synthesizer; returns ``(audio, rate rendered)``."""
    import fluidsynth  # the binding needs the shared library: imported where it is used

    fl = _fluid_calls(fluidsynth)
    counter = _LogCounter()
    previous = fl.set_log(_WARN, counter.callback)
    synth = fluidsynth.Synth(samplerate=float(rate), **{"synth.polyphony": POLYPHONY})
    try:
        rate = int(round(float(synth.get_setting("synth.sample-rate"))))  # what it renders
        sfid = synth.sfload(str(SOUNDFONT))
        for channel, program in sorted(song.programs.items()):
            if channel == _DRUM_CHANNEL:
                if synth.program_select(channel, sfid, 128, program) == -1:
                    synth.program_select(channel, sfid, 128, 0)
            else:
                synth.program_select(channel, sfid, 0, program)
        n_samples = max(1, int(np.ceil(seconds * rate)))
        out = np.zeros(n_samples, dtype=np.float32)
        right = np.zeros(min(_BLOCK, n_samples), dtype=np.float32)
        handle = synth.synth
        left_at, right_at = out.ctypes.data, right.ctypes.data  # addresses, taken once
        pos = 0

        def render_to(stop: int) -> None:
            nonlocal pos
            while pos < stop:
                n = min(_BLOCK, stop - pos)
                fl.write_float(handle, n, left_at + 4 * pos, 0, 1, right_at, 0, 1)
                out[pos: pos + n] += right[:n]
                pos += n

        for events in _event_table(song, rate, n_samples):
            for sample, kind, channel, a, b in events:
                if sample > pos:
                    render_to(sample)
                if kind == 3:
                    fl.noteon(handle, channel, a & 0x7F, min(max(b, 1), 127))
                elif kind == 2:
                    fl.noteoff(handle, channel, a & 0x7F)
                elif kind == 0:
                    fl.cc(handle, channel, a & 0x7F, b & 0x7F)
                else:
                    fl.bend(handle, channel, min(max(a + 8192, 0), 16383))
        render_to(n_samples)
        out *= np.float32(0.5)  # mean of the left and right channels
    finally:
        synth.delete()
        fl.set_log(_WARN, previous)
    if counter.voices:
        notes.append(f"some notes not heard: more notes at once than FluidSynth's "
                     f"{POLYPHONY} voices (its warnings, one per note, silenced)")
    if counter.other:
        notes.append(f"FluidSynth warned {counter.other:,} times (first: "
                     f"{counter.first!r})")
    return out, rate


_WARN = 2  # FluidSynth's log level FLUID_WARN
_LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class _LogCounter:
    """A FluidSynth log function that counts its warnings instead of printing them: notes
    that found no free voice, and others (keeping the first)."""

    def __init__(self) -> None:
        self.voices = 0
        self.other = 0
        self.first = ""
        self.callback = _LOG_FN(self._log)

    def _log(self, level: int, message: bytes | None, data: int | None) -> None:
        text = (message or b"").decode("utf-8", "replace").strip()
        if "allocate" in text or "polyphony" in text:  # every voice is in use
            self.voices += 1
            return
        if not self.other:
            self.first = text
        self.other += 1


@dataclass
class _FluidCalls:
    """The FluidSynth C functions called per event or block, bound once."""

    write_float: Any
    noteon: Any
    noteoff: Any
    cc: Any
    bend: Any
    set_log_function: Any

    def set_log(self, level: int, function: Any) -> int | None:
        """Install a log function (a ctypes callback or pointer; None: silence) for
        ``level``; returns the previous one, as a pointer."""
        pointer = None if function is None else ctypes.cast(function, ctypes.c_void_p)
        return self.set_log_function(level, pointer, None)


@functools.cache
def _fluid_calls(module: Any) -> _FluidCalls:
    """Bind the C functions of the library the ``fluidsynth`` binding loaded."""
    c_int, c_void_p = ctypes.c_int, ctypes.c_void_p
    lib = ctypes.CDLL(module.lib)
    functions = {}
    for name, args in (("synth_write_float", [c_void_p, c_int, c_void_p, c_int, c_int,
                                              c_void_p, c_int, c_int]),
                       ("synth_noteon", [c_void_p, c_int, c_int, c_int]),
                       ("synth_noteoff", [c_void_p, c_int, c_int]),
                       ("synth_cc", [c_void_p, c_int, c_int, c_int]),
                       ("synth_pitch_bend", [c_void_p, c_int, c_int]),
                       ("set_log_function", [c_int, c_void_p, c_void_p])):
        fn = getattr(lib, f"fluid_{name}")
        fn.argtypes = args
        fn.restype = c_void_p if name == "set_log_function" else c_int
        functions[name] = fn
    return _FluidCalls(write_float=functions["synth_write_float"],
                       noteon=functions["synth_noteon"], noteoff=functions["synth_noteoff"],
                       cc=functions["synth_cc"], bend=functions["synth_pitch_bend"],
                       set_log_function=functions["set_log_function"])


def _sine_render(song: AudioNotes, rate: int, n_samples: int) -> np.ndarray:
    """Sine tones of the pitched notes (drums are silent), one pass per pitch.

    Each pitch's loudness over time (the velocities of its sounding notes, summed) is
    built from its note-ons and note-offs in time linear in the audio's length, however
    long or many the notes are.
    """
    out = np.zeros(n_samples, dtype=np.float32)
    pitched = np.asarray(song.channel) != _DRUM_CHANNEL
    pitch = np.asarray(song.pitch)[pitched]
    on = np.clip(np.round(np.asarray(song.start)[pitched] * rate), 0, n_samples).astype(np.int64)
    off = np.clip(np.round(np.asarray(song.end)[pitched] * rate), 0, n_samples).astype(np.int64)
    loud = np.asarray(song.velocity)[pitched].astype(np.float32) / 127.0
    sounding = off > on
    for p in np.unique(pitch[sounding]).tolist():
        mine = sounding & (pitch == p)
        lo, hi = int(on[mine].min()), int(off[mine].max())
        level = np.zeros(hi - lo + 1, dtype=np.float32)
        np.add.at(level, on[mine] - lo, loud[mine])
        np.add.at(level, off[mine] - lo, -loud[mine])
        level = np.cumsum(level[:-1], dtype=np.float32)
        step = 2 * np.pi * 440.0 * 2.0 ** ((p - 69) / 12.0) / rate  # radians per sample
        # sin(step * (b + m)) = sin(step b) cos(step m) + cos(step b) sin(step m): one
        # table per pitch, two multiply-adds per sample
        m = np.arange(min(_BLOCK, hi - lo), dtype=np.float64) * step
        cos_m, sin_m = np.cos(m).astype(np.float32), np.sin(m).astype(np.float32)
        for b in range(lo, hi, _BLOCK):
            n = min(_BLOCK, hi - b)
            wave_ = (np.float32(np.sin(step * b)) * cos_m[:n]
                     + np.float32(np.cos(step * b)) * sin_m[:n])
            out[b: b + n] += level[b - lo: b - lo + n] * wave_
    return out


def _sine_notes(song: AudioNotes, rate: int, seconds: float, notes: list[str]
                ) -> tuple[np.ndarray, int]:
    return _sine_render(song, rate, max(1, int(np.ceil(seconds * rate)))), rate


SYNTHS: dict[str, Synth] = {synth.name: synth for synth in (
    Synth("fluidsynth", FLUID_RATES, lambda: fluidsynth_missing(),
          lambda pm, fs: pm.fluidsynth(fs=fs, synthesizer=str(SOUNDFONT), normalize=False),
          lambda song, rate, seconds, notes: _fluid_render(song, rate, seconds, notes)),
    Synth("sine", None, lambda: None, lambda pm, fs: pm.synthesize(fs=fs), _sine_notes),
)}
"""Every synthesizer by name; ``method="auto"`` picks FluidSynth where it works."""
