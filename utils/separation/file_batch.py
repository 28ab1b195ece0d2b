"""Many MIDI files separated in one run, with one model (``separate.py a.mid b.mid DIR``).

The inputs are read before any work: a folder stands for its ``.mid``/``.midi`` files
(any case, not its subfolders), sorted by name; a file named twice counts once. Refused
before any work (one line, exit status 2): an input that is missing or not a regular file
(a FIFO, a device: never opened), a folder with no MIDI file, two inputs whose outputs would
have the same names (their stems are equal: ``a/x.mid`` and ``b/x.mid``, or ``x.mid`` and
``x.midi``), and an output that exists without ``--overwrite``. Then the model separates
file after file (:func:`separate_files`); a file that fails (not MIDI, over a limit, its
outputs not writable) is one line on stderr and the others are still written.

One file alone runs as it always did: its failure is the run's (exit status 2 for its
input, 1 for a failure while writing), and its outputs and printed lines are the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from data.errors import InputError, UserError, WorkFailed, one_line
from data.fileio import not_a_file, path_kind
from data.midi_files import MIDI_SUFFIXES
from utils.separation.file_job import FileOptions, separate_midi_file
from utils.separation.file_outputs import SongOutputs, check_outputs
from utils.separation.notes import SongSeparator

OUTPUT_LABELS = {"midi": "MIDI", "wav": "audio", "mixture_wav": "mixture", "png": "picture",
                 "json": "notes"}
"""How the printed summary names each output."""


def input_files(inputs: Sequence[str | Path]) -> list[Path]:
    """The MIDI files of the command line, in order: a folder's files sorted, each once.

    Raises:
        data.errors.InputError: a missing input, one that is neither a folder nor a
            regular file (a FIFO is never opened), or a folder with no MIDI file.
    """
    files: list[Path] = []
    for given in map(Path, inputs):
        kind = path_kind(given)
        if kind == "folder":
            found = sorted(p for p in given.iterdir()
                           if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
            if not found:
                raise InputError(f"{given} is a folder with no .mid or .midi file in it")
            files += found
        elif kind == "file":
            files.append(given)
        else:
            raise InputError(f"{given}: {not_a_file(given, 'input MIDI file')}")
    seen: dict[Path, Path] = {}
    for path in files:
        seen.setdefault(path.resolve(), path)
    return list(seen.values())


def check_batch_outputs(files: Sequence[Path], out_dir: str | Path,
                        options: FileOptions) -> None:
    """Refuse, before any work, inputs whose outputs would overwrite each other and
    outputs that cannot or must not be written (:func:`check_outputs`).

    Raises:
        data.errors.InputError: two inputs of one stem (both named), or an output problem.
    """
    owner: dict[str, Path] = {}
    for path in files:
        if path.stem in owner:
            raise InputError(f"{owner[path.stem]} and {path} would write the same outputs "
                             f"({path.stem}.*); separate them into different --out-dir "
                             "folders")
        owner[path.stem] = path
        check_outputs(options.written_paths(path, out_dir), options.overwrite, path)


def separate_file(separator: SongSeparator, path: Path, out_dir: str | Path,
                  options: FileOptions, progress: bool = False) -> SongOutputs:
    """Separate one file with the loaded model (:func:`separate_midi_file`), with the window
    progress bar or without it."""
    return separate_midi_file(separator, path, out_dir, replace(options, progress=progress))


def file_lines(path: Path, result: SongOutputs) -> list[str]:
    """What is printed for a separated file: what it holds and where the outputs are."""
    audio = ("" if result.synth == "none" else
             f", audio by {result.synth} at {result.sample_rate} Hz")
    lines = [f"separated {one_line(path)}: {result.n_steps} steps in {result.n_windows} "
             f"windows (note by note{audio})"]
    lines += [f"  {line}" for line in result.summary()]
    for key, out in result.paths.items():
        bars = f" (bars {result.excerpt[0]}-{result.excerpt[1]})" if key == "png" else ""
        lines.append(f"  {OUTPUT_LABELS[key]:<10}{one_line(out)}{bars}")
    return lines


@dataclass
class BatchResult:
    """What a run did: the files separated and the failures, one line each."""

    done: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def separate_files(separator: SongSeparator, files: Sequence[Path], out_dir: str | Path,
                   options: FileOptions, progress: bool = True, head: str = "") -> BatchResult:
    """Separate every file with one loaded model, printing ``head`` once and each file's
    lines on stdout.

    One file: :func:`separate_file` with the window progress bar, its failure raised,
    ``head`` printed after it. Several: ``head`` first, a progress bar over the files
    (stderr), and a file that fails -- its input
    (a :class:`data.errors.UserError`) or its writing (an ``OSError``,
    :class:`data.errors.WorkFailed`) -- is one ``error:`` line on stderr and counted; the
    others are still separated and written.
    """
    result = BatchResult()
    if len(files) == 1:
        outputs = separate_file(separator, files[0], out_dir, options, progress)
        _print_warnings(outputs)
        for line in [head, *file_lines(files[0], outputs)]:
            print(line)
        result.done.append(files[0])
        return result
    print(head)
    bar = tqdm(files, unit="file", desc="separating", disable=not progress,
               dynamic_ncols=True, file=sys.stderr)
    for path in bar:
        try:
            outputs = separate_file(separator, path, out_dir, options)
        except (UserError, WorkFailed, OSError) as exc:
            text = one_line(exc)
            line = text if str(path) in text else f"{one_line(path)}: {text}"
            bar.write(f"error: {line}", file=sys.stderr)
            result.failed.append(line)
            continue
        _print_warnings(outputs, bar.write)
        for line in file_lines(path, outputs):
            bar.write(line, file=sys.stdout)
        result.done.append(path)
    return result


def _print_warnings(outputs: SongOutputs, write: Callable[..., None] | None = None) -> None:
    """A file's warnings, one ``warning:`` line each, on stderr."""
    for line in outputs.warnings:
        text = f"warning: {one_line(line)}"
        if write is None:
            print(text, file=sys.stderr)
        else:
            write(text, file=sys.stderr)
