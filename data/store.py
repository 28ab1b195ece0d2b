"""Bit-packed, memory-mapped phrase storage.

A built dataset folder ``OUT`` holds, per split (``train``, ``val``, ``test``):

* ``OUT/<split>.phrases.npy`` -- uint8 ``[N, 6912]``: each phrase is two bool planes
  ``[2, 64, 72, 6]`` -- the cells each instrument plays, then the first cell of each of
  its notes (onsets: repeated notes and one held note differ only there) -- flattened in C
  order and bit-packed (``np.packbits``, 8 cells per byte, 6,912 bytes a phrase instead of
  55,296); a set of ``I`` instruments (:mod:`data.instruments`) gives ``[N, 1152 * I]``,
  planes ``[2, 64, 72, I]``. Builds before onsets were stored wrote one plane (3,456
  bytes) and are refused with "re-run the build";
* ``OUT/<split>.song_ids.npy`` -- int32 ``[N]``: index of each phrase's song in
  ``manifest.json["split_songs"][<split>]`` (song = MIDI path relative to the MIDI folder).

Both are ordinary ``.npy`` files opened with ``mmap_mode="r"``, so a split of millions of
phrases costs no memory until read. ``OUT/shards/`` holds the per-chunk build output the
split files are assembled from (see :mod:`data.preprocess`).

``OUT/manifest.json`` is written last by the build and is its commit marker. A reader
(:class:`PhraseStore`, hence :func:`read_phrases` and :class:`data.dataset.PhraseDataset`)
opens a split only when the folder agrees with itself -- a manifest exists, and the
phrase file, the song-id file and the manifest's phrase count, song count and song list
match -- and otherwise raises :class:`DatasetError`, one line ending "re-run the build".
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from data.contract import (
    N_PITCH,
    PHRASE_CELLS,
    PHRASE_STEPS,
    check_option,
)
from data.fileio import atomic_write
from data.manifest import MANIFEST_NAME, REBUILD, DatasetError, Manifest

SPLITS: tuple[str, ...] = ("train", "val", "test")
PLANES = 2  # on-cells, onsets
PLANE_BYTES = PHRASE_CELLS // 8  # 3,456 bytes per plane
PACKED_BYTES = PLANES * PLANE_BYTES  # 6,912 bytes per phrase
INSTRUMENT_BYTES = PLANES * PHRASE_STEPS * N_PITCH // 8  # 1,152 bytes per instrument


def packed_bytes(n_instruments: int) -> int:
    """Bytes of one packed phrase of ``n_instruments`` instruments (6,912 for the paper's)."""
    return n_instruments * INSTRUMENT_BYTES


def check_split(split: str) -> str:
    """Validate a split name (one of :data:`SPLITS`)."""
    return check_option("split", split, SPLITS)


def pack(phrases: np.ndarray, onsets: np.ndarray | None = None) -> np.ndarray:
    """bool ``[N, 64, 72, I]`` cells and onsets -> uint8 ``[N, 1152 * I]`` (``[N, 6912]``
    for the paper's six instruments).

    ``onsets=None`` stores every cell as its own onset (a roll read from cells alone).
    """
    if phrases.ndim != 4 or phrases.shape[1:3] != (PHRASE_STEPS, N_PITCH):
        raise ValueError(f"phrases must have shape [N, {PHRASE_STEPS}, {N_PITCH}, "
                         f"instruments], got {list(phrases.shape)}")
    if onsets is None:
        onsets = phrases
    if onsets.shape != phrases.shape:
        raise ValueError(f"onsets must have the phrases' shape {list(phrases.shape)}, "
                         f"got {list(onsets.shape)}")
    n, cells = phrases.shape[0], int(np.prod(phrases.shape[1:]))
    planes = np.concatenate([phrases.reshape(n, cells), onsets.reshape(n, cells)],
                            axis=1)  # (N, 2 * 27648) for six instruments
    return np.packbits(planes, axis=1)


def _unpack_plane(packed: np.ndarray, plane: int) -> np.ndarray:
    packed = np.asarray(packed)
    n_inst = packed.shape[-1] // INSTRUMENT_BYTES  # the width tells the instruments
    width = packed.shape[-1] // PLANES
    part = packed[..., plane * width: (plane + 1) * width]
    bits = np.unpackbits(part, axis=-1, count=width * 8).view(bool)
    return bits.reshape(*packed.shape[:-1], PHRASE_STEPS, N_PITCH, n_inst)


def unpack(packed: np.ndarray) -> np.ndarray:
    """uint8 ``[N, 1152 * I]`` (or ``[1152 * I]``) -> bool ``[N, 64, 72, I]`` (or
    ``[64, 72, I]``) cells; ``I`` = 6 instruments for the paper's set."""
    return _unpack_plane(packed, 0)


def unpack_onsets(packed: np.ndarray) -> np.ndarray:
    """uint8 ``[N, 6912]`` (or ``[6912]``) -> bool ``[N, 64, 72, 6]`` onsets (first cell of
    every note)."""
    return _unpack_plane(packed, 1)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """Write a ``.npy`` file so that readers see either nothing or the whole file."""
    atomic_write(path, lambda tmp: np.save(tmp, array))


def split_paths(out_dir: str | Path, split: str) -> tuple[Path, Path]:
    """``(phrases file, song-id file)`` of a split."""
    out_dir = Path(out_dir)
    check_split(split)
    return out_dir / f"{split}.phrases.npy", out_dir / f"{split}.song_ids.npy"


def write_split(out_dir: str | Path, split: str, total: int,
                parts: Iterable[tuple[np.ndarray, np.ndarray]],
                width: int = PACKED_BYTES) -> None:
    """Stream packed phrases into a split's files, atomically.

    Args:
        out_dir: dataset folder.
        split: "train", "val" or "test".
        total: number of phrases the parts add up to.
        parts: ``(packed uint8 [n, width], song_ids int32 [n])`` pieces, in order.
        width: bytes of a packed phrase (:func:`packed_bytes`; the paper's 6,912).
    """
    phrases_path, ids_path = split_paths(out_dir, split)
    ids = np.zeros(total, dtype=np.int32)

    def write(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                        shape=(total, width))
        row = 0
        for packed, song_ids in parts:
            out[row: row + len(packed)] = packed
            ids[row: row + len(packed)] = song_ids
            row += len(packed)
        if row != total:
            raise RuntimeError(f"{phrases_path}: expected {total} phrases, got {row}")
        out.flush()
        del out

    atomic_write(phrases_path, write)
    atomic_save_npy(ids_path, ids)


def _open(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found (build the dataset with "
                                f"python -m utils.preprocess)")
    try:
        try:
            return np.load(path, mmap_mode="r")
        except ValueError:  # a zero-length array cannot be memory-mapped
            return np.load(path)
    except (ValueError, OSError, EOFError) as exc:  # truncated or not a .npy file
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"{path}: unreadable ({text}); {REBUILD}") from None


def check_split_files(out_dir: str | Path, split: str) -> int:
    """Refuse a split whose files disagree with each other or with the manifest.

    Checks: the manifest exists and records the contract this code reads
    (:meth:`data.manifest.Manifest.read`); ``<split>.phrases.npy`` is uint8 ``[N, 6912]``
    (``[N, 1152 * I]`` for a set of ``I`` instruments);
    ``<split>.song_ids.npy`` is integer ``[N]`` with ids in ``0..S-1``; ``N`` is the
    manifest's ``phrases[split]`` and ``S`` = ``songs[split]`` = the length of
    ``split_songs[split]``. Reads only the file headers, the song ids and the manifest.

    Returns:
        The bytes of one packed phrase (:func:`packed_bytes` of the build's instruments).

    Raises:
        FileNotFoundError: a split file is missing.
        DatasetError: anything else, one line naming the folder and ending "re-run the build".
    """
    out_dir = Path(out_dir)
    phrases_path, ids_path = split_paths(out_dir, split)
    packed, ids = _open(phrases_path), _open(ids_path)
    manifest = Manifest.read(out_dir)  # the contract is checked there
    width = packed_bytes(manifest.instruments.n_instruments)
    n_phrases = manifest.count("phrases", split)
    n_songs = manifest.count("songs", split)
    songs = manifest.data.get("split_songs", {}).get(split)

    def refuse(why: str) -> DatasetError:
        return DatasetError(f"{out_dir}: {why}; {REBUILD}")

    if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != width:
        older = " (built before onsets were stored)" if packed.ndim == 2 and \
            packed.shape[1] == width // PLANES else ""
        raise refuse(f"{phrases_path.name} is {packed.dtype} {list(packed.shape)}{older}, "
                     f"not uint8 [N, {width}]")
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise refuse(f"{ids_path.name} is {ids.dtype} {list(ids.shape)}, not int32 [N]")
    if len(packed) != len(ids):
        raise refuse(f"{phrases_path.name} holds {len(packed)} phrases but {ids_path.name} "
                     f"{len(ids)} song ids")
    if len(packed) != n_phrases:
        raise refuse(f"{phrases_path.name} holds {len(packed)} phrases but {MANIFEST_NAME} "
                     f"says {n_phrases}")
    if not isinstance(songs, list) or len(songs) != n_songs:
        raise refuse(f"{MANIFEST_NAME} lists {len(songs) if isinstance(songs, list) else 0} "
                     f"{split} songs but counts {n_songs}")
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= n_songs):
        raise refuse(f"{ids_path.name} has song ids {int(ids.min())}..{int(ids.max())}, "
                     f"outside the {n_songs} {split} songs of {MANIFEST_NAME}")
    return width


class PhraseStore:
    """Memory-mapped read access to one split of a built dataset.

    Args:
        out_dir: the dataset folder written by :func:`data.preprocess.build`.
        split: "train", "val" or "test".

    The folder is checked when the store is made (:func:`check_split_files`); the files
    are then opened on first access, so a store can be handed to DataLoader worker
    processes before it is used.

    Raises:
        FileNotFoundError: a split file is missing.
        DatasetError: the folder's files disagree (one line ending "re-run the build").
    """

    def __init__(self, out_dir: str | Path, split: str) -> None:
        self.out_dir = Path(out_dir)
        self.split = check_split(split)
        self.phrases_path, self.ids_path = split_paths(self.out_dir, split)
        self.width = check_split_files(self.out_dir, split)  # bytes of a packed phrase
        self._packed: np.ndarray | None = None
        self._ids: np.ndarray | None = None
        self._fd: int | None = None
        self._data_offset = 0
        self._rows = 0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_packed": None, "_ids": None, "_fd": None}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    @property
    def packed(self) -> np.ndarray:
        """The memory-mapped uint8 ``[N, 6912]`` array (for bulk reads of a finished build;
        :meth:`rows` reads phrases without a memory map)."""
        if self._packed is None:
            self._packed = _open(self.phrases_path)
        return self._packed

    @property
    def song_ids(self) -> np.ndarray:
        """int32 ``[N]``: the song of each phrase (index into :attr:`songs`)."""
        if self._ids is None:
            self._ids = _open(self.ids_path)
        return self._ids

    @property
    def songs(self) -> list[str]:
        """Song names (MIDI paths relative to the MIDI folder) of this split."""
        return Manifest.read(self.out_dir).songs_of(self.split)

    def __len__(self) -> int:
        self._open_rows()
        return self._rows

    def _open_rows(self) -> int:
        """The phrase file, opened once per process for positioned reads."""
        if self._fd is None:
            fd = os.open(self.phrases_path, os.O_RDONLY)
            try:
                with os.fdopen(os.dup(fd), "rb") as f:
                    version = np.lib.format.read_magic(f)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, _ = read_header(f)
                    self._data_offset = f.tell()
            except (ValueError, OSError) as exc:
                os.close(fd)
                raise DatasetError(f"{self.phrases_path}: unreadable ({exc}); {REBUILD}") \
                    from None
            self._rows = int(shape[0])
            self._fd = fd
        return self._fd

    def rows(self, indices: np.ndarray | slice | int) -> np.ndarray:
        """Packed phrases read with positioned reads, uint8 ``[n, 6912]`` (or ``[6912]``).

        Unlike a memory map, a file truncated or replaced under a running reader gives a
        :class:`DatasetError` (one line, "re-run the build") instead of a bus error.
        """
        fd = self._open_rows()
        single = np.isscalar(indices)
        wanted = np.arange(self._rows)[indices] if isinstance(indices, slice) \
            else np.atleast_1d(np.asarray(indices, dtype=np.int64))
        if wanted.size and (wanted.min() < -self._rows or wanted.max() >= self._rows):
            raise IndexError(f"phrase index out of range 0..{self._rows - 1}")
        wanted = np.where(wanted < 0, wanted + self._rows, wanted)
        width = self.width
        out = np.empty((wanted.size, width), dtype=np.uint8)
        k = 0
        while k < wanted.size:  # one read for each run of consecutive rows
            end = k + 1
            while end < wanted.size and wanted[end] == wanted[end - 1] + 1:
                end += 1
            size = (end - k) * width
            data = os.pread(fd, size, self._data_offset + int(wanted[k]) * width)
            if len(data) != size:
                raise DatasetError(f"{self.phrases_path}: phrase file shorter than its header "
                                   f"says (changed or truncated while in use); {REBUILD}")
            out[k:end] = np.frombuffer(data, dtype=np.uint8).reshape(end - k, width)
            k = end
        return out[0] if single else out

    def __getitem__(self, index: int) -> np.ndarray:
        """One phrase, bool ``[64, 72, 6]``."""
        return unpack(self.rows(index))

    def batch(self, indices: np.ndarray | slice) -> np.ndarray:
        """Several phrases at once, bool ``[n, 64, 72, 6]``."""
        return unpack(self.rows(indices))

    def onsets(self, index: int) -> np.ndarray:
        """The onsets of one phrase, bool ``[64, 72, 6]``."""
        return unpack_onsets(self.rows(index))


def read_phrases(out_dir: str | Path, split: str) -> np.ndarray:
    """All phrases of a split, bool ``[N, 64, 72, 6]`` (loaded into memory).

    Raises:
        FileNotFoundError: one line naming the missing split file.
        DatasetError: the folder's files disagree (see :class:`PhraseStore`).
    """
    return unpack(np.asarray(PhraseStore(out_dir, split).packed))
