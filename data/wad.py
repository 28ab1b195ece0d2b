"""Doom WAD archives read lazily, and package song files read, within stated limits.

A WAD is a 12-byte header (``IWAD``/``PWAD``, lump count int32 LE, directory offset int32
LE) and a directory of 16-byte entries (offset int32 LE, size int32 LE, name 8 bytes
padded with NULs). Only the header and the directory are read up front; a lump's bytes
are read when asked for, by seeking to its offset, so entries that share one lump (as
markers and repeated songs do) cost nothing until read, and are read once by a caller
that keys them by :attr:`Lump.span`.

Limits (module constants, checked before anything of the size they bound is read):

* :data:`MAX_WAD_BYTES` -- a WAD larger than this is refused (Doom's own IWADs are under
  30 MB);
* :data:`MAX_WAD_LUMPS` -- a directory of more entries is refused from the header's count,
  before the directory is read;
* :data:`MAX_SONG_BYTES` -- the largest song (a lump, or a MIDI file of a package) read
  into memory; a larger one is skipped by the collector with one warning line. It is the
  build's own limit on an input file (``--max-file-mb``), so nothing the build would
  keep is skipped.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from data.errors import UserError

MAX_WAD_BYTES = 512 * 2**20
MAX_WAD_LUMPS = 65_536
MAX_SONG_BYTES = 32 * 2**20
WAD_MAGICS = (b"IWAD", b"PWAD")
WAD_HEADER = struct.Struct("<4sii")  # magic, lump count, directory offset
WAD_ENTRY = struct.Struct("<ii8s")  # lump offset, lump size, name


class WadError(UserError, ValueError):
    """A WAD file that cannot be read; the message names the file and what is wrong."""


class TooLarge(Exception):  # noqa: N818 -- an outcome the collector reports, not a bug
    """A song over :data:`MAX_SONG_BYTES`; the message says what and how large."""


@dataclass(frozen=True)
class Lump:
    """One directory entry of a WAD.

    Attributes:
        index: its position in the directory.
        name: the name with its NUL padding removed (decoded as Latin-1).
        offset: where its bytes start in the file.
        size: how many bytes it has (0 for a marker).
    """

    index: int
    name: str
    offset: int
    size: int

    @property
    def span(self) -> tuple[int, int]:
        """``(offset, size)``: entries with the same span hold the same bytes."""
        return self.offset, self.size


def _header(path: Path, handle: BinaryIO, size: int) -> tuple[int, int]:
    """The lump count and directory offset, checked against the file and the limits."""
    if size > MAX_WAD_BYTES:
        raise WadError(f"{path}: {size} bytes, over the limit of {MAX_WAD_BYTES} bytes "
                       f"for a WAD file")
    head = handle.read(WAD_HEADER.size)
    if len(head) < WAD_HEADER.size:
        raise WadError(f"{path}: not a WAD file ({len(head)} bytes, shorter than the "
                       f"{WAD_HEADER.size}-byte header)")
    magic, count, dir_offset = WAD_HEADER.unpack(head)
    if magic not in WAD_MAGICS:
        raise WadError(f"{path}: not a WAD file (header {magic!r}, expected b'IWAD' or "
                       f"b'PWAD')")
    if count < 0 or dir_offset < 0:
        raise WadError(f"{path}: corrupt WAD header (lump count {count}, directory offset "
                       f"{dir_offset})")
    if count > MAX_WAD_LUMPS:
        raise WadError(f"{path}: its header says {count} lumps, over the limit of "
                       f"{MAX_WAD_LUMPS} lumps for a WAD file")
    dir_end = dir_offset + count * WAD_ENTRY.size
    if dir_end > size:
        raise WadError(f"{path}: truncated or corrupt WAD: the directory of {count} lumps "
                       f"ends at byte {dir_end}, past the end of the file ({size} bytes)")
    return count, dir_offset


def _directory(path: Path, handle: BinaryIO, size: int) -> list[Lump]:
    """Every entry of the open WAD, each checked to lie inside the file."""
    count, dir_offset = _header(path, handle, size)
    handle.seek(dir_offset)
    raw = handle.read(count * WAD_ENTRY.size)
    if len(raw) < count * WAD_ENTRY.size:
        raise WadError(f"{path}: truncated WAD: the file ended while its directory was "
                       f"read")
    lumps = []
    for index, (offset, length, name) in enumerate(WAD_ENTRY.iter_unpack(raw)):
        text = name.split(b"\0", 1)[0].decode("latin-1")
        if length < 0 or offset < 0 or offset + length > size:
            raise WadError(f"{path}: truncated or corrupt WAD: lump {index} ({text!r}) "
                           f"spans bytes {offset}..{offset + length}, outside the file "
                           f"({size} bytes)")
        lumps.append(Lump(index, text, offset, length))
    return lumps


class WadFile:
    """An open WAD: its directory (:attr:`lumps`) and lumps read on demand."""

    def __init__(self, path: Path, handle: BinaryIO) -> None:
        self.path = path
        self.handle = handle
        self.size = os.fstat(handle.fileno()).st_size
        self.lumps = _directory(path, handle, self.size)

    def read(self, lump: Lump, limit: int | None = None) -> bytes:
        """The first ``limit`` bytes of a lump (all of it when None).

        Raises:
            WadError: the file ended before the lump did (it shrank while being read).
        """
        want = lump.size if limit is None else min(limit, lump.size)
        self.handle.seek(lump.offset)
        data = self.handle.read(want)
        if len(data) < want:
            raise WadError(f"{self.path}: truncated WAD: the file ended inside lump "
                           f"{lump.index} ({lump.name!r})")
        return data


@contextmanager
def open_wad(path: str | Path) -> Iterator[WadFile]:
    """Open a WAD and read its directory (see :class:`WadFile`).

    Raises:
        WadError: unreadable file, no IWAD/PWAD header, a file or directory over the
            limits, or a directory or lump that lies outside the file.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise WadError(f"{path}: cannot read file ({exc.strerror})") from None
    with handle:
        yield WadFile(path, handle)


def read_wad(path: str | Path) -> list[Lump]:
    """The directory of a WAD, in order (no lump is read)."""
    with open_wad(path) as wad:
        return wad.lumps


def read_lump(path: str | Path, lump: Lump) -> bytes:
    """The bytes of one lump of a WAD."""
    with open_wad(path) as wad:
        return wad.read(lump)


def _read_at_most(handle: BinaryIO, limit: int, chunk: int = 2**20) -> bytes:
    """Up to ``limit`` bytes of a stream, read in chunks (a read of ``limit`` bytes at once
    would allocate them all whatever the stream holds)."""
    parts = []
    left = limit
    while left > 0:
        part = handle.read(min(chunk, left))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_song_file(path: Path) -> bytes:
    """A song file's bytes, decompressed when its name ends in ``.gz``, never more than
    :data:`MAX_SONG_BYTES`.

    Raises:
        TooLarge: the file (or what it decompresses to) is over the limit; judged from
            its size before it is read, or while decompressing.
        OSError: the file cannot be read; ``ValueError`` for a corrupt gzip stream.
    """
    size = path.stat().st_size
    if not path.name.endswith(".gz"):
        if size > MAX_SONG_BYTES:
            raise TooLarge(f"{size} bytes")
        with path.open("rb") as handle:  # one byte more than its size says: it may grow
            data = handle.read(size + 1)
        if len(data) > MAX_SONG_BYTES:
            raise TooLarge(f"more than {MAX_SONG_BYTES} bytes")
        return data
    if size > MAX_SONG_BYTES:
        raise TooLarge(f"{size} bytes compressed")
    try:
        with gzip.open(path, "rb") as handle:
            data = _read_at_most(handle, MAX_SONG_BYTES + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"not a readable gzip file ({exc})") from None
    if len(data) > MAX_SONG_BYTES:
        raise TooLarge(f"more than {MAX_SONG_BYTES} bytes decompressed")
    return data
