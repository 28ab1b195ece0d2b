"""MMA (Musical MIDI Accompaniment): find the program, read its groove library, render charts.

MMA turns a chord chart into a multitrack General MIDI arrangement with a human-written
groove (drums, bass, chords, strings, ...). It is a separate program (Debian package
``mma``, GPL-2) that this module runs as a subprocess; nothing of MMA is imported or copied.

The groove library is a folder of ``.mma`` style files. Each file sets the beats per bar
(``Time N``) and the MIDI time signature (``TimeSig N D``) and then defines grooves with
``DefGroove NAME description``; a groove keeps the time setting in force where it is
defined. :func:`read_grooves` reads those definitions line by line (no list is hard-coded)
and :func:`song_grooves` keeps the ones a song can be built from: 4/4 and not an intro,
ending or fill.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from data.errors import UserError

INSTALL_HINT = "install the Debian/Ubuntu package 'mma' (sudo apt-get install mma)"
STANDARD_LIBRARY = "stdlib"  # MMA's standard groove library, under <MMA home>/lib/
MMA_HOMES = ("/usr/local/share/mma", "/usr/share/mma")  # where MMA itself looks (after $MMA_HOME)
SECTION_WORDS = frozenset({"intro", "end", "ending", "fill"})  # groove names to skip
DEFAULT_TIME = 4  # MMA's beats per bar before any Time command
DEFAULT_TIMESIG = (4, 4)  # MMA's MIDI time signature before any TimeSig command


class MmaMissing(UserError, RuntimeError):
    """MMA is not installed (or its groove library cannot be found)."""


class MmaFailed(RuntimeError):
    """MMA could not render a chart; ``reason`` is a short count key, the message a detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Groove:
    """One ``DefGroove`` of the library.

    Attributes:
        name: the groove's name as defined (``Groove NAME`` selects it).
        style: stem of the style file that defines it (e.g. ``"8beat"``).
        path: the style file.
        time: beats per bar in force at the definition (None if not a number).
        timesig: MIDI time signature (numerator, denominator) in force (None if unreadable).
    """

    name: str
    style: str
    path: Path
    time: int | None
    timesig: tuple[int, int] | None

    @property
    def is_4_4(self) -> bool:
        """Whether the groove plays four beats per bar under a 4/4 time signature."""
        return self.time == 4 and self.timesig == (4, 4)

    @property
    def is_section(self) -> bool:
        """Whether the name marks an intro, ending or fill (``8BeatIntro``, ``BalladEnd``)."""
        words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", self.name)
        return any(word.lower() in SECTION_WORDS for word in words)


# ----------------------------------------------------------------------------- program
def find_mma() -> str:
    """Path of the ``mma`` executable.

    Raises:
        MmaMissing: not on PATH.
    """
    exe = shutil.which("mma")
    if exe is None:
        raise MmaMissing(f"MMA (Musical MIDI Accompaniment) not found on PATH; {INSTALL_HINT}")
    return exe


def mma_version(exe: str) -> str:
    """The version MMA prints for ``mma -v`` (e.g. ``"21.09"``)."""
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=60, check=False)
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    if out.returncode != 0 or not lines:
        raise MmaMissing(f"{exe} -v failed (exit {out.returncode}); {INSTALL_HINT}")
    return lines[-1]


def library_dir(exe: str, library: str = STANDARD_LIBRARY) -> Path:
    """The folder of one of MMA's groove libraries, found where MMA itself looks.

    MMA reads ``$MMA_HOME`` if set, else the folder of its own script, then
    ``/usr/local/share/mma`` and ``/usr/share/mma``.

    Raises:
        MmaMissing: no such library folder.
    """
    homes = [os.environ["MMA_HOME"]] if os.environ.get("MMA_HOME") else []
    homes += [str(Path(exe).resolve().parent), *MMA_HOMES]
    for home in homes:
        folder = Path(home) / "lib" / library
        if folder.is_dir() and any(folder.glob("*.mma")):
            return folder
    raise MmaMissing(f"MMA's groove library 'lib/{library}' not found under "
                     f"{', '.join(homes)}; {INSTALL_HINT}")


# ----------------------------------------------------------------------------- library
def _logical_lines(text: str) -> Iterable[str]:
    """Lines without ``//`` comments, backslash continuations joined, blanks dropped."""
    pending = ""
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            yield line


def _int_or_none(word: str) -> int | None:
    return int(word) if word.isdigit() else None


def read_style(path: Path) -> list[Groove]:
    """The grooves one style file defines, each with the time settings in force there.

    Only top-level commands count: text inside ``Begin ... End`` blocks (documentation,
    track definitions) never changes the time.
    """
    time: int | None = DEFAULT_TIME
    timesig: tuple[int, int] | None = DEFAULT_TIMESIG
    depth = 0
    grooves = []
    for line in _logical_lines(path.read_text(errors="replace")):
        words = line.split()
        keyword = words[0].lower()
        if keyword == "begin":
            depth += 1
        elif keyword == "end" and len(words) == 1:
            depth = max(depth - 1, 0)
        elif depth:
            continue
        elif keyword == "time" and len(words) > 1:
            time = _int_or_none(words[1])
        elif keyword == "timesig" and len(words) > 1:
            parts = " ".join(words[1:]).replace("/", " ").split()
            values = [_int_or_none(p) for p in parts[:2]]
            timesig = (values[0], values[1]) if len(values) == 2 and None not in values \
                else None
        elif keyword == "defgroove" and len(words) > 1:
            grooves.append(Groove(words[1], path.stem, path, time, timesig))
    return grooves


def read_grooves(folder: Path) -> list[Groove]:
    """Every groove defined by the style files of a library folder (sorted by style, then
    order of definition). A name defined twice in one file keeps its last definition."""
    grooves: list[Groove] = []
    for path in sorted(folder.glob("*.mma")):
        by_name = {g.name.lower(): g for g in read_style(path)}
        grooves += by_name.values()
    return grooves


def song_grooves(grooves: Iterable[Groove]) -> list[Groove]:
    """The grooves a song body can use: 4/4, and not an intro, ending or fill."""
    return [g for g in grooves if g.is_4_4 and not g.is_section]


# ----------------------------------------------------------------------------- render
def render(exe: str, chart: str, timeout: float = 60.0) -> bytes:
    """Run MMA on a chart and return the MIDI file it writes.

    The chart is given on stdin and MMA's credit text (which names the input file) is
    switched off, so equal charts give equal bytes wherever they are rendered.

    Args:
        exe: the ``mma`` executable.
        chart: MMA source text.
        timeout: seconds before MMA is stopped.

    Raises:
        MmaFailed: ``reason`` is ``"mma_error"`` (non-zero exit; the detail is MMA's first
            error line), ``"timeout"`` or ``"no_output"``.
    """
    with tempfile.TemporaryDirectory(prefix="mma-") as tmp:
        out = Path(tmp) / "song.mid"
        try:
            run = subprocess.run([exe, "-xNOCREDIT", "-f", str(out), "-"], input=chart,
                                 capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise MmaFailed("timeout", f"MMA took longer than {timeout:g} s") from None
        if run.returncode != 0:
            text = run.stdout + run.stderr
            errors = [ln.strip() for ln in text.splitlines() if ln.startswith("Error")]
            detail = errors[0] if errors else (text.strip().splitlines() or ["no message"])[-1]
            raise MmaFailed("mma_error", f"MMA exit {run.returncode}: {detail}")
        if not out.is_file() or out.stat().st_size == 0:
            raise MmaFailed("no_output", "MMA wrote no MIDI file")
        return out.read_bytes()
