"""A corpus of General MIDI songs from Debian packages, one sub-folder per package.

Its command line is ``python -m utils.debian_songs`` (:mod:`utils.debian_songs`).

Where the songs are (the paths the Debian packages install, :data:`PACKAGES`):

* standard MIDI files (``kind == "midi"``), copied as they are: ``simutrans-data``,
  ``freedink-data``, ``planetblupi-music-midi``, ``pianobooster`` (whose courses Debian
  compresses in part: a ``.mid.gz`` is decompressed). A file in a sub-folder is written
  as ``<sub-folder>_<name>``;
* ``freedoom`` (``freedoom1.wad``, ``freedoom2.wad``) and ``freedm`` (``freedm.wad``): the
  music is stored as lumps inside the WAD archives (:mod:`data.wad`). Every lump whose data
  starts with ``MThd`` (a standard MIDI file) is written out as
  ``<wad stem>_<LUMP NAME>.mid``. Lumps in Doom's own MUS format (``MUS\\x1a``) are not
  converted: they are counted and listed as skipped (the packages above ship none). Every
  other lump (maps, graphics, sounds) is only counted.

With ``root`` (``--root DIR``) every package is looked for under ``DIR`` (``DIR`` +
its installed path), a folder where ``dpkg -x`` unpacked the ``.deb`` files, so the songs
can be collected on a machine that is not Debian.

A song whose bytes (sha256) were already written -- earlier in the same package, or by a
package before it in the order of :data:`PACKAGES` -- is written once only; the
duplicate is counted and listed with the file it repeats. Two songs of a package that
would get the same file name (lumps of the same name, names that differ only in case)
get unique names: the first keeps it, a later one gets ``<name>.<n>.mid`` (n = 2, 3, ...)
-- the same names on every run.

Limits (:mod:`data.wad`): a WAD over ``MAX_WAD_BYTES`` or ``MAX_WAD_LUMPS`` entries, or
whose music lumps overlap, is refused in one line; a song (a lump or a file, after
decompression) over ``MAX_SONG_BYTES`` is skipped with one warning line, counted as
``too_large`` and listed. Songs are never all held in memory: each is read to be hashed,
and read again when it is written.

Output: ``OUT/<package>/<file>.mid`` and ``OUT/SOURCES.json`` (every written file with
its package, source path, lump and sha256; the duplicates and the skipped songs; each
package's licence). Every file is written atomically (:mod:`data.fileio`), a file whose
bytes are already in place is not rewritten, and ``SOURCES.json`` is written last. Songs
listed in an earlier ``SOURCES.json`` that this run no longer produces are removed;
nothing else in ``OUT`` is touched. Re-running the same collection therefore changes
nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data import wad
from data.debian_packages import (
    PACKAGE_NAMES,
    PACKAGES,
    CollectError,
    Package,
    PackageMissing,
    find_packages,
    requested,
)
from data.errors import WorkFailed, one_line
from data.fileio import atomic_write, atomic_write_json, remove_temporaries, writable_dir_problem
from data.wad import Lump, TooLarge, WadError, WadFile, open_wad, read_song_file

__all__ = ["PACKAGES", "PACKAGE_NAMES", "SOURCES_NAME", "CollectError", "Package",
           "PackageMissing", "WadError", "collect", "unique_names"]

SOURCES_NAME = "SOURCES.json"
MAX_SOURCES_BYTES = 64 * 2**20  # an earlier SOURCES.json larger than this is refused
MIDI_MAGIC = b"MThd"
MUS_MAGIC = b"MUS\x1a"
COUNTS = ("written", "duplicates", "mus_skipped", "not_midi", "too_large", "other_lumps")


def warn(message: str) -> None:
    """One ``warning:`` line on stderr."""
    print(f"warning: {one_line(Exception(message))}", file=sys.stderr)


# ----------------------------------------------------------------------------- sources
@dataclass
class Song:
    """One song found in a package (before duplicates are removed); its bytes are read
    again, and checked against ``sha256``, when it is written.

    Attributes:
        package: the Debian package.
        source: the file it comes from (a MIDI file or a WAD).
        lump: the lump name inside the WAD, None for a MIDI file.
        name: the output file name wanted inside ``OUT/<package>`` (made unique later).
        sha256: the digest of its bytes.
        size: how many bytes it has.
        offset: where it starts inside the WAD; None for a MIDI file.
    """

    package: str
    source: str
    lump: str | None
    name: str
    sha256: str
    size: int
    offset: int | None = None

    def read(self) -> bytes:
        """The song's bytes, as hashed when it was found.

        Raises:
            WorkFailed: the source changed since (or cannot be read any more).
        """
        try:
            if self.offset is None:
                data = read_song_file(Path(self.source))
            else:
                with open(self.source, "rb") as handle:
                    handle.seek(self.offset)
                    data = handle.read(self.size)
        except (OSError, ValueError, TooLarge) as exc:
            raise WorkFailed(f"{self.source}: cannot be read again ({exc})") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise WorkFailed(f"{self.source}{f' lump {self.lump}' if self.lump else ''}: "
                             f"changed while the songs were collected; run again")
        return data


def _safe_name(name: str) -> str:
    """A lump name as a portable file-name part (characters other than A-Z a-z 0-9 _ -
    become ``_``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "_"


def _skip(skipped: list[dict[str, Any]], counts: dict[str, int], record: dict[str, Any],
          reason: str, detail: str) -> None:
    """List one skipped song and count it under its reason."""
    skipped.append({**record, "reason": reason, "detail": detail})
    counts["mus_skipped" if reason == "mus_format" else reason] += 1


def _classify(archive: WadFile, lump: Lump, budget: list[int]) -> tuple[str, str]:
    """What a lump holds: ``("midi", sha256)``, ``("mus", "")``, ``("too_large", "")``
    or ``("other", "")``; a MIDI lump is read whole, within the WAD's byte budget.

    Raises:
        WadError: the music lumps read so far add up to more than the file (they overlap).
    """
    head = archive.read(lump, len(MIDI_MAGIC))
    if head == MUS_MAGIC:
        return "mus", ""
    if head != MIDI_MAGIC:
        return "other", ""
    if lump.size > wad.MAX_SONG_BYTES:
        return "too_large", ""
    budget[0] -= lump.size
    if budget[0] < 0:
        raise WadError(f"{archive.path}: corrupt WAD: its music lumps overlap (lump "
                       f"{lump.index}, {lump.name!r}, brings the bytes read past the "
                       f"file's {archive.size})")
    return "midi", hashlib.sha256(archive.read(lump)).hexdigest()


def wad_songs(package: str, path: Path, skipped: list[dict[str, Any]],
              counts: dict[str, int]) -> list[Song]:
    """The MIDI lumps of one WAD; MUS and too large lumps go to ``skipped``, other lumps
    are counted. Entries that share a lump (the same offset and size) are read once.

    Args:
        package: the package the WAD belongs to.
        path: the WAD.
        skipped: receives one record per skipped lump.
        counts: its ``mus_skipped``, ``too_large`` and ``other_lumps`` entries are
            increased.
    """
    songs: list[Song] = []
    known: dict[tuple[int, int], tuple[str, str]] = {}
    with open_wad(path) as archive:
        budget = [archive.size]
        for lump in archive.lumps:
            kind, digest = known.get(lump.span) or ("", "")
            if not kind:
                kind, digest = known[lump.span] = _classify(archive, lump, budget)
                if kind == "too_large":
                    warn(f"{path}: lump {lump.name} is {lump.size} bytes, over the limit "
                         f"of {wad.MAX_SONG_BYTES} bytes for a song; skipped")
            record = {"package": package, "source": str(path), "lump": lump.name}
            if kind == "mus":
                _skip(skipped, counts, record, "mus_format",
                      "Doom MUS music, not converted to MIDI")
            elif kind == "too_large":
                _skip(skipped, counts, record, "too_large",
                      f"{lump.size} bytes, over the limit of {wad.MAX_SONG_BYTES}")
            elif kind == "other":
                counts["other_lumps"] += 1
            else:
                songs.append(Song(package, str(path), lump.name,
                                  f"{path.stem}_{_safe_name(lump.name)}.mid", digest,
                                  lump.size, lump.offset))
    return songs


def _file_name(folder: Path, path: Path) -> str:
    """A package file's output name: its path under the package's folder, sub-folders
    joined by ``_``, without ``.gz``."""
    name = "_".join(path.relative_to(folder).parts)
    return name[: -len(".gz")] if name.endswith(".gz") else name


def midi_songs(package: str, folder: Path, paths: Sequence[Path],
               skipped: list[dict[str, Any]], counts: dict[str, int]) -> list[Song]:
    """The standard MIDI files among ``paths`` (files of ``folder``); others go to
    ``skipped`` (``not_midi``), as do files over the song limit (``too_large``, with one
    warning line).

    Raises:
        CollectError: a file that cannot be read.
    """
    songs = []
    for path in paths:
        record = {"package": package, "source": str(path), "lump": None}
        try:
            data = read_song_file(path)
        except TooLarge as exc:
            warn(f"{path}: {exc}, over the limit of {wad.MAX_SONG_BYTES} bytes for a song; "
                 f"skipped")
            _skip(skipped, counts, record, "too_large", f"{exc}, over the limit of "
                  f"{wad.MAX_SONG_BYTES}")
            continue
        except ValueError as exc:
            _skip(skipped, counts, record, "not_midi", str(exc))
            continue
        except OSError as exc:
            raise CollectError(f"{path}: cannot read file ({exc.strerror})") from None
        if not data.startswith(MIDI_MAGIC):
            _skip(skipped, counts, record, "not_midi", "no MThd header")
            continue
        songs.append(Song(package, str(path), None, _file_name(folder, path),
                          hashlib.sha256(data).hexdigest(), len(data)))
    return songs


def unique_names(wanted: Sequence[str]) -> list[str]:
    """File names, unique whatever the case: the first song that wants a name keeps it, a
    later one gets ``<stem>.<n><suffix>`` with the smallest free n >= 2. The same list
    always gives the same names, and a name wanted first is never taken by a later one."""
    firsts: set[str] = set()
    keep = []
    for name in wanted:
        keep.append(name.lower() not in firsts)
        firsts.add(name.lower())
    used = set(firsts)
    following: dict[str, int] = {}
    names = []
    for name, kept in zip(wanted, keep):
        if kept:
            names.append(name)
            continue
        stem, dot, suffix = name.rpartition(".")
        stem, suffix = (stem, f".{suffix}") if dot else (name, "")
        n = following.get(name.lower(), 2)
        while f"{stem}.{n}{suffix}".lower() in used:
            n += 1
        following[name.lower()] = n + 1
        used.add(f"{stem}.{n}{suffix}".lower())
        names.append(f"{stem}.{n}{suffix}")
    return names


# ----------------------------------------------------------------------------- collect
def _previous_files(out_dir: Path) -> list[str]:
    """Relative paths of the songs an earlier run listed in ``OUT/SOURCES.json``."""
    sources = out_dir / SOURCES_NAME
    if not sources.is_file():
        return []
    try:
        if sources.stat().st_size > MAX_SOURCES_BYTES:
            raise ValueError(f"{sources.stat().st_size} bytes, over {MAX_SOURCES_BYTES}")
        listed = json.loads(sources.read_text())["files"]
        return [str(item["path"]) for item in listed]
    except (ValueError, KeyError, TypeError) as exc:
        raise CollectError(f"{sources}: not a SOURCES.json this command wrote ({exc}); "
                           f"use another --out or delete it") from None


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` atomically unless the file already holds exactly it. True if written."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return True


def _read_songs(chosen: Sequence[Package], found: Mapping[str, tuple[Path, list[Path]]],
                summary: dict[str, dict[str, int]], skipped: list[dict[str, Any]]
                ) -> list[Song]:
    """Every song of the packages, in order (files by name, lumps in directory order)."""
    songs: list[Song] = []
    for package in chosen:
        counts = summary[package.name] = dict.fromkeys(COUNTS, 0)
        folder, files = found[package.name]
        if package.kind == "midi":
            songs += midi_songs(package.name, folder, files, skipped, counts)
        else:
            for path in files:
                songs += wad_songs(package.name, path, skipped, counts)
    return songs


def _write_songs(out_dir: Path, songs: Sequence[Song], summary: dict[str, dict[str, int]]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Write each song once, under a unique name. Returns the files, the duplicates and
    how many files were written."""
    first_of: dict[str, str] = {}  # sha256 -> relative path written
    duplicates: list[dict[str, Any]] = []
    unique: list[Song] = []
    for song in songs:
        source = {"package": song.package, "source": song.source, "lump": song.lump,
                  "sha256": song.sha256}
        if song.sha256 in first_of:
            duplicates.append({**source, "same_as": first_of[song.sha256]})
            summary[song.package]["duplicates"] += 1
            continue
        first_of[song.sha256] = ""
        unique.append(song)
    names: dict[int, str] = {}
    for package in dict.fromkeys(song.package for song in unique):
        mine = [i for i, song in enumerate(unique) if song.package == package]
        names.update(zip(mine, unique_names([unique[i].name for i in mine])))
    rel_of = {song.sha256: f"{song.package}/{names[i]}" for i, song in enumerate(unique)}
    for item in duplicates:
        item["same_as"] = rel_of[item["sha256"]]
    files: list[dict[str, Any]] = []
    changed = 0
    for package in dict.fromkeys(song.package for song in unique):
        folder = out_dir / package
        folder.mkdir(parents=True, exist_ok=True)
        remove_temporaries(folder)  # leftovers of a killed run go first
    for song in unique:
        rel = rel_of[song.sha256]
        changed += _write_if_changed(out_dir / rel, song.read())
        files.append({"path": rel, "package": song.package, "source": song.source,
                      "lump": song.lump, "sha256": song.sha256, "bytes": song.size})
        summary[song.package]["written"] += 1
    return files, duplicates, changed


def _remove_stale(out_dir: Path, previous: Sequence[str], written: set[str]) -> int:
    """Remove the songs an earlier run listed that this one does not write. Returns how
    many were removed."""
    removed = 0
    for rel in previous:
        parts = rel.split("/")
        stale = out_dir / rel
        ours = len(parts) == 2 and parts[0] in PACKAGE_NAMES and parts[1].endswith(".mid")
        if ours and rel not in written and stale.is_file():
            stale.unlink()
            removed += 1
    return removed


def collect(out_dir: str | Path, packages: Sequence[str] | None = None,
            roots: Mapping[str, str | Path] | None = None,
            root: str | Path | None = None) -> dict[str, Any]:
    """Collect the songs of the packages into ``out_dir`` (see the module docstring).

    Args:
        out_dir: the corpus folder (created); ``<out_dir>/<package>/`` holds each package.
        packages: package names (default: all of :data:`PACKAGE_NAMES`); they are always
            processed in :data:`PACKAGES` order.
        roots: ``{package: folder}`` replacing the folder a package's files are looked
            for in (tests, or a package unpacked elsewhere).
        root: a folder where ``dpkg -x`` unpacked the packages: each package's files are
            looked for under it, at their installed path.

    Returns:
        The summary: per package ``written`` (songs in the corpus), ``duplicates``
        (songs already written, not written again), ``mus_skipped``, ``not_midi``,
        ``too_large`` and ``other_lumps`` (non-music lumps); the totals; ``changed``
        (song files written or removed by this run: 0 when re-run) and the ``sources``
        file.

    Raises:
        PackageMissing: a requested package's files are not there (before anything is
            written).
        CollectError: an unknown package, a root that is not a folder, an output folder
            that cannot be written, or an unreadable earlier SOURCES.json.
        WadError: a WAD that cannot be read or is over the limits (before anything is
            written).
        WorkFailed: a package file changed while the songs were collected.
    """
    out_dir = Path(out_dir)
    chosen = requested(packages)
    found = find_packages(chosen, dict(roots or {}), root)
    problem = writable_dir_problem(out_dir)
    if problem:
        raise CollectError(f"out {str(out_dir)!r} is not a writable folder ({problem})")
    previous = _previous_files(out_dir)
    # read everything first: a corrupt input stops the run before any file is written
    summary: dict[str, dict[str, int]] = {}
    skipped: list[dict[str, Any]] = []
    songs = _read_songs(chosen, found, summary, skipped)
    files, duplicates, changed = _write_songs(out_dir, songs, summary)
    changed += _remove_stale(out_dir, previous, {item["path"] for item in files})
    record = {"packages": summary, "licences": {p.name: p.licence for p in chosen},
              "files": files, "duplicates": duplicates, "skipped": skipped}
    sources_path = out_dir / SOURCES_NAME
    old = sources_path.read_text() if sources_path.is_file() else None
    if old != json.dumps(record, indent=2) + "\n":
        atomic_write_json(sources_path, record)
    totals = {key: sum(c[key] for c in summary.values()) for key in COUNTS}
    return {"out_dir": str(out_dir), "packages": summary, "total": totals,
            "changed": changed, "sources": str(sources_path)}
