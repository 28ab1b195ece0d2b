"""The instrument set: which classes a model separates (config key ``instrument_set``).

The data contract's instrument axis is ``[melody, class 1, ..., class N]``: channel 0 is
the melody (the tune kept apart, or only found, by the build), then the set's classes in
order, its pitched classes first and the drum class (the drum channel's tracks) last. A
pitched class is the General MIDI programs it takes; a track on none of the set's
programs is dropped by the build, as the paper drops organ or brass.

Presets (:data:`PRESETS`):

* ``"paper"``: piano 0-7, guitar 24-31, bass 32-39, string 48-55, drum -- the paper's
  five classes, the default, and the module constants of :mod:`data.contract`;
* ``"arranger"``: Arranger's Lakh set -- piano 0-7, guitar 24-31, bass 32-39, string
  40-45 and 48-51, brass 56-63, drum;
* ``"wide"``: the paper's plus organ 16-23, brass 56-63, reed 64-71, synth_lead 80-87
  and synth_pad 88-95.

A user names a preset or writes a list of ``{"name", "programs", "drum"?}``
(:func:`resolve_set`). A set is refused with one :class:`InstrumentSetError` line when a
program is in two classes, a pitched class has no program, there is not exactly one drum
class, a name repeats or is not a plain lower-case word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from data.contract import N_PITCH, PHRASE_STEPS
from data.errors import UserError

MELODY_NAME = "melody"
MELODY_RENDER_PROGRAM = 40  # violin: the melody channel rendered back to MIDI
DEFAULT_VELOCITY = 80
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
N_PROGRAMS = 128
DRUM_CHANNEL = 9  # General MIDI's channel 10, 0-based
# MIDI channels of a rendered file: 16, less the drum channel and the melody's
MAX_PITCHED = 14


class InstrumentSetError(UserError, ValueError):
    """An instrument set that cannot be used, in one line naming the class or preset."""


@dataclass(frozen=True)
class InstrumentClass:
    """One class of a set.

    Attributes:
        name: its name in tables, JSON outputs and ``--instruments`` (lower case).
        programs: the General MIDI programs (0..127) whose tracks it takes; empty for the
            drum class, which takes the drum channel's tracks.
        is_drum: the drum class.
        render_program: the program its notes are written with when rendered to MIDI.
        render_velocity: the velocity its notes are written with.
    """

    name: str
    programs: tuple[int, ...]
    is_drum: bool = False
    render_program: int = 0
    render_velocity: int = DEFAULT_VELOCITY

    def record(self) -> dict[str, Any]:
        """The class as a config or manifest writes it."""
        out: dict[str, Any] = {"name": self.name, "programs": list(self.programs)}
        return out | ({"drum": True} if self.is_drum else {})


@dataclass(frozen=True)
class InstrumentSet:
    """The classes a model separates, pitched ones first and the drum class last.

    Contract indices: 0 is the melody, ``1..n_music`` the classes in order, so the drum
    class is :attr:`drum` = ``n_music`` and the pitched classes are ``1..n_pitched``.
    """

    name: str  # the preset's name, or "custom"
    classes: tuple[InstrumentClass, ...]

    @property
    def instruments(self) -> tuple[str, ...]:
        """Names of the contract's instrument axis, the melody first."""
        return (MELODY_NAME, *(c.name for c in self.classes))

    @property
    def music(self) -> tuple[str, ...]:
        """Names of the classes the model separates (channels of the model's tensors)."""
        return tuple(c.name for c in self.classes)

    @property
    def pitched(self) -> tuple[str, ...]:
        """Names of the pitched classes, the choices of a pitched note."""
        return self.music[: self.n_pitched]

    @property
    def n_instruments(self) -> int:
        return len(self.classes) + 1

    @property
    def n_music(self) -> int:
        return len(self.classes)

    @property
    def n_pitched(self) -> int:
        return len(self.classes) - 1

    @property
    def drum(self) -> int:
        """Contract index of the drum class (the last one)."""
        return len(self.classes)

    @property
    def phrase_shape(self) -> tuple[int, int, int]:
        """A phrase's shape, ``(64, 72, n_instruments)``."""
        return (PHRASE_STEPS, N_PITCH, self.n_instruments)

    def class_of(self, program: int, is_drum: bool) -> int | None:
        """Contract index of the class a track goes to by its channel and program (None:
        no class takes it)."""
        if is_drum:
            return self.drum
        for k, cls in enumerate(self.classes, start=1):
            if program in cls.programs:
                return k
        return None

    def render_programs(self) -> dict[int, int]:
        """``{contract index: program}`` to render each pitched class and the melody with."""
        return {0: MELODY_RENDER_PROGRAM} | {k: c.render_program
                                             for k, c in enumerate(self.classes, start=1)
                                             if not c.is_drum}

    def midi_channels(self) -> dict[int, int]:
        """``{contract index: MIDI channel (0-based)}`` of a rendered file: the pitched
        classes on channels 0.. in order, then the melody, the drum on channel 9 (the
        paper's set: piano 0, guitar 1, bass 2, string 3, melody 4, drum 9)."""
        free = [c for c in range(16) if c != DRUM_CHANNEL]
        out = {k: free[k - 1] for k in range(1, self.n_pitched + 1)}
        return out | {0: free[self.n_pitched], self.drum: DRUM_CHANNEL}

    def render_velocities(self) -> dict[int, int]:
        """``{contract index: velocity}`` of every instrument, the melody's 80."""
        return {0: DEFAULT_VELOCITY} | {k: c.render_velocity
                                        for k, c in enumerate(self.classes, start=1)}

    def record(self) -> list[dict[str, Any]]:
        """The classes' names and programs (the manifest's and a checkpoint's record)."""
        return [c.record() for c in self.classes]

    def describe(self) -> str:
        """The set in a few words: its name and classes."""
        return f"{self.name!r} ({', '.join(self.music)})"

    def folds_onto(self, other: InstrumentSet) -> bool:
        """Whether this set holds every class of ``other`` (names, programs, drum) and more:
        its figures can be folded back onto ``other``'s classes
        (:meth:`utils.evaluation.metrics.NoteConfusion.folded`)."""
        mine = self.record()
        return len(mine) > len(other.classes) and all(c in mine for c in other.record())

    def same_classes(self, other: InstrumentSet) -> bool:
        """Whether two sets have the same classes (names, programs, drum), whatever their
        names."""
        return self.record() == other.record()


def _span(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(range(lo, hi + 1))


def _paper_classes() -> tuple[InstrumentClass, ...]:
    return (InstrumentClass("piano", _span(0, 7), render_program=0),
            InstrumentClass("guitar", _span(24, 31), render_program=25),
            InstrumentClass("bass", _span(32, 39), render_program=33),
            InstrumentClass("string", _span(48, 55), render_program=49, render_velocity=50))


DRUM_CLASS = InstrumentClass("drum", (), is_drum=True)
PAPER = InstrumentSet("paper", (*_paper_classes(), DRUM_CLASS))
PRESETS: dict[str, InstrumentSet] = {
    "paper": PAPER,
    "arranger": InstrumentSet("arranger", (
        InstrumentClass("piano", _span(0, 7), render_program=0),
        InstrumentClass("guitar", _span(24, 31), render_program=25),
        InstrumentClass("bass", _span(32, 39), render_program=33),
        InstrumentClass("string", _span(40, 45) + _span(48, 51), render_program=49,
                        render_velocity=50),
        InstrumentClass("brass", _span(56, 63), render_program=61),
        DRUM_CLASS)),
    "wide": InstrumentSet("wide", (
        *_paper_classes(),
        InstrumentClass("organ", _span(16, 23), render_program=16),
        InstrumentClass("brass", _span(56, 63), render_program=61),
        InstrumentClass("reed", _span(64, 71), render_program=65),
        InstrumentClass("synth_lead", _span(80, 87), render_program=80),
        InstrumentClass("synth_pad", _span(88, 95), render_program=88),
        DRUM_CLASS)),
}


def _class_of_entry(entry: Any, where: str) -> InstrumentClass:
    """One ``{"name", "programs", "drum"?}`` entry of a written set."""
    if not isinstance(entry, dict) or not set(entry) <= {"name", "programs", "drum"} \
            or "name" not in entry:
        raise InstrumentSetError(f"{where} must be an object with 'name', 'programs' and an "
                                 f"optional 'drum', got {entry!r}")
    name, programs, drum = entry["name"], entry.get("programs", []), entry.get("drum", False)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name == MELODY_NAME:
        raise InstrumentSetError(f"{where}: 'name' must be a lower-case word (letters, digits, "
                                 f"_) other than {MELODY_NAME!r}, got {name!r}")
    if not isinstance(drum, bool):
        raise InstrumentSetError(f"{where} ({name}): 'drum' must be true or false, "
                                 f"got {drum!r}")
    if not isinstance(programs, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 <= p < N_PROGRAMS
            for p in programs):
        raise InstrumentSetError(f"{where} ({name}): 'programs' must be a list of General "
                                 f"MIDI programs 0..127, got {programs!r}")
    if drum and programs:
        raise InstrumentSetError(f"{where} ({name}): the drum class takes the drum channel's "
                                 f"tracks and names no programs, got {programs!r}")
    if not drum and not programs:
        raise InstrumentSetError(f"{where} ({name}): an empty class (no programs)")
    if len(set(programs)) != len(programs):
        raise InstrumentSetError(f"{where} ({name}): a program listed twice in {programs!r}")
    return InstrumentClass(name, tuple(programs), drum, render_program=min(programs, default=0))


def check_classes(classes: tuple[InstrumentClass, ...], where: str) -> None:
    """Refuse overlapping programs, repeated names and any number of drum classes but one.

    Raises:
        InstrumentSetError: one line naming ``where`` and the classes.
    """
    owner: dict[int, str] = {}
    for cls in classes:
        for program in cls.programs:
            if program in owner:
                raise InstrumentSetError(f"{where}: program {program} is in two classes, "
                                         f"{owner[program]!r} and {cls.name!r}")
            owner[program] = cls.name
    names = [c.name for c in classes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InstrumentSetError(f"{where}: class name {repeated[0]!r} used twice")
    drums = [c.name for c in classes if c.is_drum]
    if len(drums) != 1:
        raise InstrumentSetError(f"{where}: needs exactly one drum class (\"drum\": true), "
                                 f"got {len(drums)}" + (f" ({', '.join(drums)})" if drums
                                                        else ""))
    if len(classes) < 2:
        raise InstrumentSetError(f"{where}: needs at least one pitched class beside the drum")
    if len(classes) - 1 > MAX_PITCHED:
        raise InstrumentSetError(f"{where}: {len(classes) - 1} pitched classes, more than "
                                 f"the {MAX_PITCHED} MIDI channels a separated file has for "
                                 f"them")


def resolve_set(spec: str | list[Any], where: str = "instrument_set") -> InstrumentSet:
    """A preset's name or a written list of classes -> the :class:`InstrumentSet`.

    A written list keeps its pitched classes' order and puts the drum class last; a class
    is rendered with its lowest program at velocity 80.

    Raises:
        InstrumentSetError: an unknown preset name or a set :func:`check_classes` refuses.
    """
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise InstrumentSetError(f"{where}: unknown preset {spec!r}; the presets are "
                                     f"{', '.join(map(repr, PRESETS))}, or a list of classes")
        return PRESETS[spec]
    if not isinstance(spec, list) or not spec:
        raise InstrumentSetError(f"{where} must be a preset's name or a non-empty list of "
                                 f"classes, got {spec!r}")
    classes = tuple(_class_of_entry(e, f"{where}[{i}]") for i, e in enumerate(spec))
    check_classes(classes, where)
    ordered = tuple(c for c in classes if not c.is_drum) + tuple(c for c in classes if c.is_drum)
    for preset in PRESETS.values():
        if preset.record() == [c.record() for c in ordered]:
            return preset
    return InstrumentSet("custom", ordered)


def set_of_record(record: Any, where: str) -> InstrumentSet:
    """The set a manifest or checkpoint recorded (None: made before sets, the paper's).

    Raises:
        InstrumentSetError: a record that is no valid set.
    """
    return PAPER if record is None else resolve_set(record, where)


def set_mismatch(model: InstrumentSet, data: InstrumentSet, model_what: str,
                 data_what: str) -> str | None:
    """Why a model of one set cannot be used on data of another, or None when their
    classes are the same (names, programs, drum), in words naming both."""
    if model.same_classes(data):
        return None
    return (f"{model_what} separates the instrument set {model.describe()} but {data_what} "
            f"was built with {data.describe()}; build the data with the model's "
            f"'instrument_set' or use a model trained on it")


def channels_problem(instruments: InstrumentSet, channels: dict[str, int]) -> str | None:
    """Why network channel counts (``{"in_ch": n, "out_ch": n}``) do not fit a set (each
    must be its class count), or None."""
    for key, value in channels.items():
        if value != instruments.n_music:
            return (f"'{key}' must be {instruments.n_music}, the classes of 'instrument_set' "
                    f"{instruments.describe()}, got {value}")
    return None
