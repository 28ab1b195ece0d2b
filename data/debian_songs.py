"""A corpus of General MIDI songs from Debian game packages, one sub-folder per package.

Its command line is ``python -m utils.debian_songs`` (:mod:`utils.debian_songs`).

Where the songs are (the paths the Debian packages install):

* ``simutrans-data``: standard MIDI files ``/usr/share/games/simutrans/music/*.mid``,
  copied as they are;
* ``freedoom`` (``freedoom1.wad``, ``freedoom2.wad``) and ``freedm`` (``freedm.wad``) under
  ``/usr/share/games/doom``: the music is stored as lumps inside the WAD archives. Every
  lump whose data starts with ``MThd`` (a standard MIDI file) is written out as
  ``<wad stem>_<LUMP NAME>.mid``. Lumps in Doom's own MUS format (``MUS\\x1a``) are not
  converted: they are counted and listed as skipped (the packages above ship none). Every
  other lump (maps, graphics, sounds) is only counted.

A song whose bytes (sha256) were already written -- earlier in the same package, or by a
package before it in the order of :data:`PACKAGES` -- is written once only; the
duplicate is counted and listed with the file it repeats.

Output: ``OUT/<package>/<file>.mid`` and ``OUT/SOURCES.json`` (every written file with
its package, source path, lump and sha256; the duplicates and the skipped lumps). Every
file is written atomically (:mod:`data.fileio`), a file whose bytes are already in place
is not rewritten, and ``SOURCES.json`` is written last. Songs listed in an earlier
``SOURCES.json`` that this run no longer produces are removed; nothing else in ``OUT`` is
touched. Re-running the same collection therefore changes nothing.

A WAD is a 12-byte header (``IWAD``/``PWAD``, lump count int32 LE, directory offset int32
LE) and a directory of 16-byte entries (offset int32 LE, size int32 LE, name 8 bytes
padded with NULs).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.errors import UserError
from data.fileio import atomic_write, atomic_write_json, remove_temporaries, writable_dir_problem

SOURCES_NAME = "SOURCES.json"
MIDI_MAGIC = b"MThd"
MUS_MAGIC = b"MUS\x1a"
WAD_MAGICS = (b"IWAD", b"PWAD")
WAD_HEADER = struct.Struct("<4sii")  # magic, lump count, directory offset
WAD_ENTRY = struct.Struct("<ii8s")  # lump offset, lump size, name


@dataclass(frozen=True)
class Package:
    """Where a Debian package keeps its songs.

    Attributes:
        name: the Debian package (also the output sub-folder).
        root: the folder its files are installed in.
        files: names (glob patterns for ``kind == "midi"``) of its files inside ``root``.
        kind: "midi" (standard MIDI files, copied) or "wad" (MIDI lumps extracted).
    """

    name: str
    root: str
    files: tuple[str, ...]
    kind: str


# the order decides where a song shared by several packages is written: the first one
PACKAGES: tuple[Package, ...] = (
    Package("simutrans-data", "/usr/share/games/simutrans/music", ("*.mid",), "midi"),
    Package("freedoom", "/usr/share/games/doom", ("freedoom1.wad", "freedoom2.wad"), "wad"),
    Package("freedm", "/usr/share/games/doom", ("freedm.wad",), "wad"),
)
PACKAGE_NAMES: tuple[str, ...] = tuple(p.name for p in PACKAGES)


class WadError(UserError, ValueError):
    """A WAD file that cannot be read; the message names the file and what is wrong."""


class CollectError(UserError, ValueError):
    """A problem with the collection's inputs or output folder, as one line."""


class PackageMissing(CollectError):  # noqa: N818 -- a missing input, phrased for the user
    """Requested packages whose files are not installed.

    Attributes:
        packages: the missing package names, in :data:`PACKAGES` order.
    """

    def __init__(self, missing: Sequence[tuple[str, str]]) -> None:
        self.packages = [name for name, _ in missing]
        what = "; ".join(f"{name}: {why}" for name, why in missing)
        if len(missing) == 1:
            head = f"package {self.packages[0]} is not installed"
        else:
            head = f"packages {', '.join(self.packages)} are not installed"
        super().__init__(f"{head} (its files are missing: {what}); install "
                         f"{'it' if len(missing) == 1 else 'them'} with: "
                         f"apt-get install {' '.join(self.packages)}")


# ----------------------------------------------------------------------------- WAD
def read_wad(path: str | Path) -> list[tuple[str, bytes]]:
    """Every lump of a WAD file, in directory order.

    Args:
        path: an IWAD or PWAD file.

    Returns:
        ``[(name, data), ...]``: the name with its NUL padding removed (decoded as
        Latin-1), the lump's bytes (empty for marker lumps).

    Raises:
        WadError: unreadable file, no IWAD/PWAD header, or a directory or lump that lies
            outside the file (truncated or corrupt); the message names the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WadError(f"{path}: cannot read file ({exc.strerror})") from None
    if len(data) < WAD_HEADER.size:
        raise WadError(f"{path}: not a WAD file ({len(data)} bytes, shorter than the "
                       f"{WAD_HEADER.size}-byte header)")
    magic, count, dir_offset = WAD_HEADER.unpack_from(data, 0)
    if magic not in WAD_MAGICS:
        raise WadError(f"{path}: not a WAD file (header {magic!r}, expected b'IWAD' or "
                       f"b'PWAD')")
    if count < 0 or dir_offset < 0:
        raise WadError(f"{path}: corrupt WAD header (lump count {count}, directory offset "
                       f"{dir_offset})")
    dir_end = dir_offset + count * WAD_ENTRY.size
    if dir_end > len(data):
        raise WadError(f"{path}: truncated or corrupt WAD: the directory of {count} lumps "
                       f"ends at byte {dir_end}, past the end of the file ({len(data)} bytes)")
    lumps = []
    for index in range(count):
        offset, size, raw = WAD_ENTRY.unpack_from(data, dir_offset + index * WAD_ENTRY.size)
        name = raw.split(b"\0", 1)[0].decode("latin-1")
        if size < 0 or offset < 0 or offset + size > len(data):
            raise WadError(f"{path}: truncated or corrupt WAD: lump {index} ({name!r}) "
                           f"spans bytes {offset}..{offset + size}, outside the file "
                           f"({len(data)} bytes)")
        lumps.append((name, data[offset: offset + size]))
    return lumps


# ----------------------------------------------------------------------------- sources
@dataclass
class Song:
    """One song found in a package (before duplicates are removed).

    Attributes:
        package: the Debian package.
        source: the file it comes from (a MIDI file or a WAD).
        lump: the lump name inside the WAD, None for a MIDI file.
        name: the output file name inside ``OUT/<package>``.
        data: the MIDI bytes.
    """

    package: str
    source: str
    lump: str | None
    name: str
    data: bytes


def package_files(package: Package, root: str | Path | None = None) -> tuple[list[Path], str]:
    """The installed files of a package and, when there are none or some are missing, why.

    Returns:
        ``(files, problem)``: sorted paths; ``problem`` is "" when every file is there.
    """
    folder = Path(root if root is not None else package.root)
    if package.kind == "midi":
        found = sorted({p for pattern in package.files for p in folder.glob(pattern)
                        if p.is_file()})
        problem = "" if found else f"no {' or '.join(package.files)} in {folder}"
        return found, problem
    paths = [folder / name for name in package.files]
    absent = [str(p) for p in paths if not p.is_file()]
    return [p for p in paths if p.is_file()], ", ".join(absent)


def _safe_name(name: str) -> str:
    """A lump name as a portable file-name part (characters other than A-Z a-z 0-9 _ -
    become ``_``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "_"


def wad_songs(package: str, path: Path, skipped: list[dict[str, Any]],
              counts: dict[str, int]) -> list[Song]:
    """The MIDI lumps of one WAD; MUS lumps go to ``skipped``, other lumps are counted.

    Args:
        package: the package the WAD belongs to.
        path: the WAD.
        skipped: receives one record per MUS lump.
        counts: its ``mus_skipped`` and ``other_lumps`` entries are increased.
    """
    songs: list[Song] = []
    used: set[str] = set()
    for index, (lump, data) in enumerate(read_wad(path)):
        if data.startswith(MUS_MAGIC):
            skipped.append({"package": package, "source": str(path), "lump": lump,
                            "reason": "mus_format",
                            "detail": "Doom MUS music, not converted to MIDI"})
            counts["mus_skipped"] += 1
            continue
        if not data.startswith(MIDI_MAGIC):
            counts["other_lumps"] += 1
            continue
        name = f"{path.stem}_{_safe_name(lump)}"
        if name.lower() in used:  # a repeated lump name (PWADs may have them)
            name = f"{name}_{index}"
        used.add(name.lower())
        songs.append(Song(package, str(path), lump, f"{name}.mid", data))
    return songs


def midi_songs(package: str, paths: Sequence[Path], skipped: list[dict[str, Any]],
               counts: dict[str, int]) -> list[Song]:
    """The standard MIDI files among ``paths``; others go to ``skipped`` (``not_midi``)."""
    songs = []
    for path in paths:
        data = path.read_bytes()
        if not data.startswith(MIDI_MAGIC):
            skipped.append({"package": package, "source": str(path), "lump": None,
                            "reason": "not_midi", "detail": "no MThd header"})
            counts["not_midi"] += 1
            continue
        songs.append(Song(package, str(path), None, path.name, data))
    return songs


# ----------------------------------------------------------------------------- collect
def _requested(packages: Sequence[str] | None) -> list[Package]:
    """The requested packages in :data:`PACKAGES` order (the order duplicates follow)."""
    if packages is None:
        return list(PACKAGES)
    unknown = [p for p in packages if p not in PACKAGE_NAMES]
    if unknown:
        raise CollectError(f"unknown package(s) {', '.join(unknown)}; known: "
                           f"{', '.join(PACKAGE_NAMES)}")
    if not packages:
        raise CollectError("no package requested")
    return [p for p in PACKAGES if p.name in packages]


def _previous_files(out_dir: Path) -> list[str]:
    """Relative paths of the songs an earlier run listed in ``OUT/SOURCES.json``."""
    sources = out_dir / SOURCES_NAME
    if not sources.is_file():
        return []
    try:
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


def _found_files(chosen: list[Package], roots: dict[str, str | Path]
                 ) -> dict[str, list[Path]]:
    """``{package: its song files}`` of every chosen package (:func:`package_files`).

    Raises:
        CollectError: roots given for an unknown package.
        PackageMissing: a chosen package's files are not there.
    """
    unknown_roots = [name for name in roots if name not in PACKAGE_NAMES]
    if unknown_roots:
        raise CollectError(f"roots given for unknown package(s) {', '.join(unknown_roots)}")
    found: dict[str, list[Path]] = {}
    missing = []
    for package in chosen:
        files, problem = package_files(package, roots.get(package.name))
        if problem:
            missing.append((package.name, problem))
        found[package.name] = files
    if missing:
        raise PackageMissing(missing)
    return found


def collect(out_dir: str | Path, packages: Sequence[str] | None = None,
            roots: Mapping[str, str | Path] | None = None) -> dict[str, Any]:
    """Collect the songs of the packages into ``out_dir`` (see the module docstring).

    Args:
        out_dir: the corpus folder (created); ``<out_dir>/<package>/`` holds each package.
        packages: package names (default: all of :data:`PACKAGE_NAMES`); they are always
            processed in :data:`PACKAGES` order.
        roots: ``{package: folder}`` replacing the folder a package's files are looked
            for in (tests, or a package unpacked elsewhere).

    Returns:
        The summary: per package ``written`` (songs in the corpus), ``duplicates``
        (songs already written, not written again), ``mus_skipped``, ``not_midi`` and
        ``other_lumps`` (non-music lumps); the totals; ``changed`` (song files written
        or removed by this run: 0 when re-run) and the ``sources`` file.

    Raises:
        PackageMissing: a requested package's files are not there (before anything is
            written).
        CollectError: an unknown package, an output folder that cannot be written, or an
            unreadable earlier SOURCES.json.
        WadError: a WAD that cannot be read (before anything is written).
    """
    out_dir = Path(out_dir)
    chosen = _requested(packages)
    found = _found_files(chosen, dict(roots or {}))
    problem = writable_dir_problem(out_dir)
    if problem:
        raise CollectError(f"out {str(out_dir)!r} is not a writable folder ({problem})")
    previous = _previous_files(out_dir)

    # read everything first: a corrupt input stops the run before any file is written
    summary: dict[str, dict[str, int]] = {}
    skipped: list[dict[str, Any]] = []
    songs: list[Song] = []
    for package in chosen:
        counts = {"written": 0, "duplicates": 0, "mus_skipped": 0, "not_midi": 0,
                  "other_lumps": 0}
        summary[package.name] = counts
        if package.kind == "midi":
            songs += midi_songs(package.name, found[package.name], skipped, counts)
        else:
            for wad in found[package.name]:
                songs += wad_songs(package.name, wad, skipped, counts)

    files: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    first_of: dict[str, str] = {}  # sha256 -> relative path written
    changed = 0
    prepared: set[Path] = set()
    for song in songs:
        digest = hashlib.sha256(song.data).hexdigest()
        source = {"package": song.package, "source": song.source, "lump": song.lump,
                  "sha256": digest}
        if digest in first_of:
            duplicates.append({**source, "same_as": first_of[digest]})
            summary[song.package]["duplicates"] += 1
            continue
        rel = f"{song.package}/{song.name}"
        first_of[digest] = rel
        folder = out_dir / song.package
        if folder not in prepared:  # leftovers of a killed run go first
            folder.mkdir(parents=True, exist_ok=True)
            remove_temporaries(folder)
            prepared.add(folder)
        changed += _write_if_changed(out_dir / rel, song.data)
        files.append({"path": rel, **source, "bytes": len(song.data)})
        summary[song.package]["written"] += 1

    written = {item["path"] for item in files}
    for rel in previous:  # songs of an earlier run that this one does not produce
        parts = rel.split("/")
        stale = out_dir / rel
        ours = len(parts) == 2 and parts[0] in PACKAGE_NAMES and parts[1].endswith(".mid")
        if ours and rel not in written and stale.is_file():
            stale.unlink()
            changed += 1
    record = {"packages": summary, "files": files, "duplicates": duplicates,
              "skipped": skipped}
    sources_path = out_dir / SOURCES_NAME
    old = sources_path.read_text() if sources_path.is_file() else None
    if old != json.dumps(record, indent=2) + "\n":
        atomic_write_json(sources_path, record)
    totals = {key: sum(c[key] for c in summary.values())
              for key in ("written", "duplicates", "mus_skipped", "not_midi", "other_lumps")}
    return {"out_dir": str(out_dir), "packages": summary, "total": totals,
            "changed": changed, "sources": str(sources_path)}
