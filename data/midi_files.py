"""The MIDI files of a folder, and the splits its first-level folders name.

:func:`find_midi_files` walks the folder recursively and follows symbolic links to folders
(a corpus's ``test/`` may well be a link to where that split is kept), each real folder
once: a link back to a folder above (a cycle) or a second way into a folder already read
is not walked again, and is reported in ``repeats``. Only regular files (or links to them)
named ``*.mid``/``*.midi`` in any case count; FIFOs and devices are never opened.

With ``split_by="named"`` the first-level folder of a song names its split
(:func:`named_split`); :func:`empty_named_folders` finds the folders that name a split but
hold no MIDI file (an empty folder, a link to a missing one), which the build refuses.
"""

from __future__ import annotations

import os
from pathlib import Path

MIDI_SUFFIXES = (".mid", ".midi")
TOP_LEVEL = "."  # the folder name given to files directly in the MIDI folder
# split_by="named": the first-level folder names each split may have (any case)
SPLIT_FOLDER_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def find_midi_files(midi_dir: str | Path, repeats: dict[str, str] | None = None) -> list[str]:
    """Relative POSIX paths of every MIDI file under ``midi_dir`` (recursive, sorted),
    through links to folders too.

    Args:
        midi_dir: the folder.
        repeats: if given, filled with ``{relative folder: relative folder first read}`` for
            every way into a folder that was already read (a cycle, or two links to one
            folder), which is not walked again.
    """
    root = os.fspath(midi_dir)
    seen = {_identity(root): TOP_LEVEL}
    found: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        prefix = "" if folder == root else Path(os.path.relpath(folder, root)).as_posix() + "/"
        dirs.sort()
        for name in list(dirs):
            key = _identity(os.path.join(folder, name))
            first = seen.setdefault(key, prefix + name) if key is not None else None
            if key is None or first != prefix + name:
                dirs.remove(name)
                if repeats is not None and first is not None:
                    repeats[prefix + name] = first
        found += [prefix + name for name in files
                  if os.path.splitext(name)[1].lower() in MIDI_SUFFIXES
                  and os.path.isfile(os.path.join(folder, name))]
    return sorted(found)


def _identity(path: str) -> tuple[int, int] | None:
    """``(device, inode)`` of the folder a path leads to, or None when it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def song_folder(rel_path: str) -> str:
    """First-level folder of a song's relative POSIX path (``"."`` for a top-level file)."""
    parts = rel_path.split("/")
    return parts[0] if len(parts) > 1 else TOP_LEVEL


def named_split(folder: str) -> str | None:
    """The split a first-level folder's name names (``train``; ``val``/``valid``/
    ``validation``; ``test``; any case), or None."""
    lowered = folder.lower()
    return next((split for split, names in SPLIT_FOLDER_NAMES.items() if lowered in names),
                None)


def empty_named_folders(midi_dir: str | Path, files: list[str],
                        repeats: dict[str, str] | None = None) -> list[str]:
    """The first-level folders (or links) of ``midi_dir`` that name a split but hold none
    of ``files``, each with why, e.g. ``"'test' holds no MIDI file (a link to a missing
    folder, /x)"``."""
    root = Path(midi_dir)
    holding = {song_folder(rel) for rel in files}
    problems = []
    for entry in sorted(root.iterdir()):
        name = entry.name
        if named_split(name) is None or name in holding:
            continue
        if entry.is_symlink() and not entry.exists():
            why = f" (a link to a missing folder, {os.readlink(entry)})"
        elif not entry.is_dir():
            continue  # a file named like a split is no folder
        elif repeats and name in repeats:
            why = f" (it is the folder {repeats[name]!r}, read already)"
        else:
            why = ""
        problems.append(f"{name!r} holds no MIDI file{why}")
    return problems


def empty_split_lines(split_songs: dict[str, list[str]], statuses: dict[str, str],
                      split_by: str) -> list[str]:
    """A warning line for each split left without songs, saying why when it can.

    Args:
        split_songs: ``{split: songs}`` of the build.
        statuses: ``{relative path: "kept" or the skip reason}`` of every file seen.
        split_by: the build's ``split_by``.
    """
    lines = []
    for split, songs in split_songs.items():
        if songs:
            continue
        text = f"split {split!r} has no song"
        if split_by == "named":
            reasons: dict[str, int] = {}
            for rel, status in statuses.items():
                if named_split(song_folder(rel)) == split:
                    reasons[status] = reasons.get(status, 0) + 1
            text += (": every file of its folder was skipped (" + ", ".join(
                f"{reason}: {n}" for reason, n in sorted(reasons.items())) + ")"
                if reasons else ": no folder names it")
        else:
            kept = sum(status == "kept" for status in statuses.values())
            text += f" ({kept} song(s) kept in all)"
        lines.append(text)
    return lines
