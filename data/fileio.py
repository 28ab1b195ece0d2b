"""Atomic file output: readers see either the old file, nothing, or the whole new file.

Every file the project writes (phrase shards, manifests, tables, MIDI, audio, pictures)
goes through :func:`atomic_write_many`: each target is first written to a temporary file
beside it, and only when all writers have succeeded are the temporaries renamed into
place. On any error the temporaries are removed and the targets are left untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Writer = Callable[[Path], None]  # writes the whole file at the path it is given
TEMP_GLOB = ".*.tmp*"  # names of the temporaries below: .<target name>.<random>.tmp<suffix>


def atomic_write_many(writers: Mapping[Path, Writer]) -> None:
    """Write several files all-or-nothing.

    Args:
        writers: ``{target path: writer}``; each writer is called with a temporary path in
            the target's folder (same suffix, so format detection by name still works).
    """
    temps: dict[Path, Path] = {}
    try:
        for target, write in writers.items():
            target = Path(target)
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                        suffix=f".tmp{target.suffix}")
            os.close(fd)
            temps[target] = Path(name)
            write(temps[target])
            os.chmod(temps[target], 0o644)  # mkstemp makes 0600; give the usual mode
        for target, tmp in temps.items():
            os.replace(tmp, target)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Writer) -> None:
    """Write one file atomically with ``write(temporary path)``."""
    atomic_write_many({Path(path): write})


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON (with a trailing newline) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def remove_temporaries(folder: str | Path) -> int:
    """Delete the temporaries a killed writer left in ``folder`` (not in sub-folders).

    Only names of the form :data:`TEMP_GLOB` are touched. Call it when no writer is
    running in the folder (e.g. at the start of a build that owns it).

    Returns:
        How many files were removed.
    """
    removed = 0
    for tmp in Path(folder).glob(TEMP_GLOB):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def writable_dir_problem(path: str | Path) -> str | None:
    """Why files cannot be written in the folder ``path`` (made later if missing), or None.

    Nothing is left behind: the folder -- or, when it does not exist yet, its nearest
    existing parent, where it would be created -- is probed by creating and removing a
    temporary file, so permissions, ACLs and read-only mounts all count, as they will
    for the real writes.

    Returns:
        None when the folder can be used, else a short reason ("it is a file",
        "Permission denied", ...).
    """
    path = Path(path)
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        return "it is a file" if probe == path else f"{str(probe)!r} is a file"
    try:
        fd, name = tempfile.mkstemp(dir=probe, prefix=".write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None
