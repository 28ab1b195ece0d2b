"""A built dataset's ``manifest.json``, read once, typed, its contract checked.

The build (:func:`data.preprocess.build`) writes the manifest last, as its commit marker:
the phrase and song counts of every split, the songs of each split (paths relative to the
MIDI folder it read), the files' sizes and times at the build (``song_sources``) and the
build's ``settings`` -- among them the data contract it used (steps per beat, phrase
length and stride, pitch range, instruments). Every reader -- the phrase store, the
song-level evaluation, the song pass's training, ``bench/`` -- opens it through
:meth:`Manifest.read`, which refuses a manifest built with another contract than this
code's (:data:`CONTRACT_SETTINGS`) with one :class:`DatasetError` line.

Paths: ``settings["midi_dir"]`` and ``settings["melody_json"]`` are recorded as the build
was given them. A relative one was relative to the folder the build ran in, which the
recorded ``out_dir`` tells (the manifest's folder is ``<that folder>/<out_dir>``), so
:attr:`Manifest.midi_dir` finds the songs from any working folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.contract import (
    MAX_SONG_BARS,
    PHRASE_STEPS,
    PHRASE_STRIDE,
    PITCH_HIGH,
    PITCH_LOW,
    STEPS_PER_BEAT,
)
from data.errors import UserError
from data.instruments import InstrumentSet, InstrumentSetError, set_of_record

MANIFEST_NAME = "manifest.json"
REBUILD = "re-run the build"  # how every DatasetError ends

# manifest["settings"] keys that must equal the contract this code reads phrases with
CONTRACT_SETTINGS: dict[str, Any] = {
    "steps_per_beat": STEPS_PER_BEAT, "phrase_steps": PHRASE_STEPS,
    "phrase_stride": PHRASE_STRIDE, "pitch_range": [PITCH_LOW, PITCH_HIGH]}
# the settings key of the build's instrument set (data.instruments; absent: the paper's)
SET_KEY = "instrument_set"


class DatasetError(UserError, ValueError):
    """A built dataset that cannot be read as it is (one line ending "re-run the build")."""


def contract_mismatch(manifest: dict[str, Any]) -> str | None:
    """How a build's recorded contract differs from this code's, or None.

    A manifest without recorded settings (written by hand) is not checked.
    """
    settings = manifest.get("settings")
    if not isinstance(settings, dict):
        return None
    for key, expected in CONTRACT_SETTINGS.items():
        if key in settings and settings[key] != expected:
            return f"{key} {settings[key]!r}, this code reads {expected!r}"
    try:
        names = list(set_of_record(settings.get(SET_KEY), SET_KEY).instruments)
    except InstrumentSetError as exc:
        return str(exc)
    if "instruments" in settings and settings["instruments"] != names:
        return f"instruments {settings['instruments']!r}, its {SET_KEY} names {names!r}"
    return None


@dataclass(frozen=True)
class Manifest:
    """A finished build's manifest.

    Attributes:
        folder: the dataset folder that holds it.
        data: the manifest's JSON object, as written by the build.
    """

    folder: Path
    data: dict[str, Any]

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST_NAME

    @classmethod
    def read(cls, data_dir: str | Path) -> Manifest:
        """The manifest of the build in ``data_dir``, its contract checked.

        Raises:
            DatasetError: no manifest (the build never finished, or was interrupted while
                it wrote the split files), one that is not a JSON object, or one built with
                another data contract than this code's.
        """
        folder = Path(data_dir)
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise DatasetError(f"{data_dir}: no {MANIFEST_NAME}, the build did not finish; "
                               f"{REBUILD}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise DatasetError(f"{path}: unreadable ({type(exc).__name__}); {REBUILD}") \
                from None
        if not isinstance(data, dict):
            raise DatasetError(f"{path}: not a manifest (no JSON object); {REBUILD}")
        mismatch = contract_mismatch(data)
        if mismatch:
            raise DatasetError(f"{data_dir}: built with another data contract ({mismatch}); "
                               f"{REBUILD}")
        return cls(folder, data)

    @property
    def settings(self) -> dict[str, Any]:
        """The build's settings (empty for a manifest written without them)."""
        settings = self.data.get("settings")
        return settings if isinstance(settings, dict) else {}

    def songs_of(self, split: str) -> list[str]:
        """The songs of ``split``, paths relative to the MIDI folder.

        Raises:
            DatasetError: the manifest lists no songs for the split.
        """
        try:
            songs = self.data["split_songs"][split]
        except (KeyError, TypeError):
            songs = None
        if not isinstance(songs, list):
            raise DatasetError(f"{self.path}: no 'split_songs'/'settings' for the {split} "
                               f"split; {REBUILD}")
        return list(songs)

    def count(self, what: str, split: str) -> int:
        """The manifest's ``phrases`` or ``songs`` count of ``split``.

        Raises:
            DatasetError: the manifest has no such count.
        """
        try:
            return int(self.data[what][split])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{self.folder}: {MANIFEST_NAME} has no phrase and song counts "
                               f"for the {split} split; {REBUILD}") from None

    @property
    def song_sources(self) -> dict[str, Any]:
        """``{song: [size, mtime]}`` of the files at the build (empty: not recorded)."""
        return self.data.get("song_sources") or {}

    @property
    def midi_dir_as_built(self) -> str:
        """The MIDI folder as the build was given it (what reports name).

        Raises:
            DatasetError: the manifest records none.
        """
        midi_dir = self.settings.get("midi_dir")
        if not isinstance(midi_dir, str):
            raise DatasetError(f"{self.path}: no 'split_songs'/'settings' with a midi_dir; "
                               f"{REBUILD}")
        return midi_dir

    @property
    def midi_dir(self) -> Path:
        """The MIDI folder the build read, found from any working folder."""
        return self.built_path(self.midi_dir_as_built)

    @property
    def melody_json(self) -> Path | None:
        """The melody JSON the build used (None: none, the detector decided)."""
        recorded = self.settings.get("melody_json")
        return None if not recorded else self.built_path(recorded)

    @property
    def instruments(self) -> InstrumentSet:
        """The build's instrument set (the paper's for a build made before sets were
        recorded); checked by :meth:`read`."""
        return set_of_record(self.settings.get(SET_KEY), f"{self.path}: {SET_KEY}")

    @property
    def melody_in_mixture(self) -> bool:
        return bool(self.settings.get("melody_in_mixture", False))

    @property
    def default_meter_4_4(self) -> bool:
        """The build's option: a song without a time signature is read as 4/4."""
        return bool(self.settings.get("default_meter_4_4", False))

    @property
    def class_tracks(self) -> str:
        """The build's track choice, "largest" (the paper's; a folder built before the
        option) or "all"."""
        return str(self.settings.get("class_tracks", "largest"))

    @property
    def max_song_bars(self) -> int:
        """The build's longest song, in bars (the default for a folder built before the
        setting was recorded)."""
        return int(self.settings.get("max_song_bars", MAX_SONG_BARS))

    def build_folder(self) -> Path | None:
        """The working folder the build ran in: the manifest's folder less the recorded
        relative ``out_dir`` (None where that cannot be told: an absolute or non-matching
        ``out_dir``, or none recorded)."""
        out_dir = self.settings.get("out_dir")
        if not isinstance(out_dir, str) or Path(out_dir).is_absolute():
            return None
        parts = tuple(p for p in Path(out_dir).parts if p != ".")
        folder = self.folder.resolve()
        if not parts or ".." in parts or folder.parts[-len(parts):] != parts:
            return None
        return Path(*folder.parts[:-len(parts)])

    def built_path(self, recorded: str) -> Path:
        """A path the build recorded: as it is when absolute; a relative one joined to the
        folder the build ran in (:meth:`build_folder`), or, where that cannot be told, to
        the current folder."""
        path = Path(recorded)
        if path.is_absolute():
            return path
        root = self.build_folder()
        return path if root is None else root / path

    def digest(self) -> str:
        """sha256 of the manifest file's bytes (what a cache of the build depends on)."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()
