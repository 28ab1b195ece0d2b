"""The Debian song collector's limits, names and unpacked trees.

Hostile package files (a WAD whose entries all share one lump, a huge or endless
directory, lumps that overlap, a huge sparse ``.mid``, a gzip bomb) cost bounded memory
and end in one line; lump names that clash get unique, stable file names; ``--root``
collects from a folder where the packages were unpacked. Every file is made here.
"""

from __future__ import annotations

import gzip
import json
import struct
import tracemalloc
from pathlib import Path

import pytest

import data.debian_packages as debian_packages
import data.debian_songs as debian_songs
import data.wad as wad
from data.debian_songs import SOURCES_NAME, collect
from data.wad import WadError
from tests.test_data_debian_songs import midi_bytes, wad_bytes
from utils.debian_songs import main


def doom_root(tmp_path: Path, lumps: list[tuple[str, bytes]]) -> dict[str, Path]:
    """A freedoom install whose freedoom1.wad holds ``lumps`` (freedoom2.wad: one song)."""
    doom = tmp_path / "doom"
    doom.mkdir(exist_ok=True)
    (doom / "freedoom1.wad").write_bytes(wad_bytes(lumps))
    (doom / "freedoom2.wad").write_bytes(wad_bytes([("D_RUNNIN", midi_bytes(72))]))
    return {"freedoom": doom}


def shared_lump_wad(path: Path, entries: int, lump: bytes) -> None:
    """A WAD of one lump's data and ``entries`` directory entries that all point at it."""
    directory = b"".join(struct.pack("<ii8s", 12, len(lump), f"D_{i:06d}".encode())
                         for i in range(entries))
    path.write_bytes(struct.pack("<4sii", b"PWAD", entries, 12 + len(lump)) + lump
                     + directory)


def test_entries_sharing_one_lump_are_read_once(tmp_path: Path) -> None:
    """3,000 entries of one 64 kB song: one song written, 2,999 duplicates, and the
    memory of one lump, not of 3,000 copies."""
    song = midi_bytes(60) + bytes(64_000)
    roots = doom_root(tmp_path, [])
    shared_lump_wad(roots["freedoom"] / "freedoom1.wad", 3_000, song)
    tracemalloc.start()
    try:
        summary = collect(tmp_path / "out", packages=["freedoom"], roots=roots)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    counts = summary["packages"]["freedoom"]
    assert counts["written"] == 2 and counts["duplicates"] == 2_999
    assert (tmp_path / "out/freedoom/freedoom1_D_000000.mid").read_bytes() == song
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("limit, what", [("MAX_WAD_LUMPS", "lumps"),
                                         ("MAX_WAD_BYTES", "bytes")])
def test_a_wad_over_a_limit_is_refused_in_one_line(tmp_path: Path, monkeypatch,
                                                    limit: str, what: str) -> None:
    """More directory entries or bytes than the limits: refused from the header and the
    file's size, before the directory is read, naming the limit."""
    path = tmp_path / "big.wad"
    shared_lump_wad(path, 50, midi_bytes(60))
    monkeypatch.setattr(wad, limit, 49 if what == "lumps" else path.stat().st_size - 1)
    with pytest.raises(WadError, match=f"over the limit of 49 {what}|over the limit of "
                                       f"\\d+ {what}") as info:
        wad.read_wad(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_ten_million_entries_are_refused_from_the_header(tmp_path: Path) -> None:
    """A header that claims 10 million lumps is refused before its directory is read."""
    path = tmp_path / "many.wad"
    with path.open("wb") as handle:  # a sparse 160 MB directory
        handle.write(struct.pack("<4sii", b"PWAD", 10_000_000, 12))
        handle.truncate(12 + 16 * 10_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(WadError, match="10000000 lumps, over the limit"):
            wad.read_wad(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def test_overlapping_music_lumps_are_refused(tmp_path: Path) -> None:
    """Entries that each start at another byte of one long run of songs would make the
    reader hash the same bytes over and over: refused as corrupt."""
    song = midi_bytes(60)
    data = song * 40
    entries = [struct.pack("<ii8s", 12 + k * len(song), len(data) - k * len(song),
                           f"D_{k}".encode()) for k in range(40)]
    path = tmp_path / "doom" / "freedoom1.wad"
    path.parent.mkdir()
    path.write_bytes(struct.pack("<4sii", b"PWAD", 40, 12 + len(data)) + data
                     + b"".join(entries))
    (path.parent / "freedoom2.wad").write_bytes(wad_bytes([("D_X", midi_bytes(61))]))
    with pytest.raises(WadError, match="overlap"):
        collect(tmp_path / "out", packages=["freedoom"], roots={"freedoom": path.parent})
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.mid"))


def test_a_lump_over_the_song_limit_is_skipped_with_one_warning(tmp_path: Path, capsys,
                                                                monkeypatch) -> None:
    monkeypatch.setattr(wad, "MAX_SONG_BYTES", 100)
    roots = doom_root(tmp_path, [("D_BIG", midi_bytes(60) + bytes(200)),
                                 ("D_SMALL", midi_bytes(61))])
    summary = collect(tmp_path / "out", packages=["freedoom"], roots=roots)
    assert summary["packages"]["freedoom"]["written"] == 2  # D_SMALL, freedoom2's D_RUNNIN
    assert summary["packages"]["freedoom"]["too_large"] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "D_BIG" in err[0]
    skipped = json.loads((tmp_path / "out" / SOURCES_NAME).read_text())["skipped"]
    assert [(s["lump"], s["reason"]) for s in skipped] == [("D_BIG", "too_large")]
    assert not (tmp_path / "out/freedoom/freedoom1_D_BIG.mid").exists()


def test_a_huge_sparse_midi_file_is_skipped_unread(tmp_path: Path, capsys) -> None:
    """A 9 GB sparse .mid in a package folder: skipped from its size, one warning line."""
    folder = tmp_path / "simutrans"
    folder.mkdir()
    (folder / "01-Song.mid").write_bytes(midi_bytes(60))
    with (folder / "02-Huge.mid").open("wb") as handle:
        handle.write(midi_bytes(61))
        handle.truncate(9 * 2**30)
    tracemalloc.start()
    try:
        summary = collect(tmp_path / "out", packages=["simutrans-data"],
                          roots={"simutrans-data": folder})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    counts = summary["packages"]["simutrans-data"]
    assert counts["written"] == 1 and counts["too_large"] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "02-Huge.mid" in err[0] and "limit" in err[0]
    assert peak < 16 * 2**20


def test_a_compressed_song_is_read_and_a_gzip_bomb_skipped(tmp_path: Path, capsys,
                                                           monkeypatch) -> None:
    """Debian compresses large documentation files: ``.mid.gz`` songs are decompressed,
    never past the song limit."""
    monkeypatch.setattr(wad, "MAX_SONG_BYTES", 1_000)
    folder = tmp_path / "courses"
    (folder / "Course").mkdir(parents=True)
    (folder / "Course/01-Small.mid").write_bytes(midi_bytes(60))
    (folder / "Course/02-Packed.mid.gz").write_bytes(gzip.compress(midi_bytes(61)))
    (folder / "Course/03-Bomb.mid.gz").write_bytes(
        gzip.compress(midi_bytes(62) + bytes(10_000_000)))
    summary = collect(tmp_path / "out", packages=["pianobooster"],
                      roots={"pianobooster": folder})
    counts = summary["packages"]["pianobooster"]
    assert counts["written"] == 2 and counts["too_large"] == 1
    out = tmp_path / "out/pianobooster"
    assert (out / "Course_02-Packed.mid").read_bytes() == midi_bytes(61)
    assert sorted(p.name for p in out.iterdir()) == ["Course_01-Small.mid",
                                                      "Course_02-Packed.mid"]
    assert "03-Bomb.mid.gz" in capsys.readouterr().err


def test_clashing_lump_names_get_unique_stable_files(tmp_path: Path) -> None:
    """Lumps X_2, X, X (three different songs): three files, each listed once; a re-run
    changes nothing."""
    roots = doom_root(tmp_path, [("X_2", midi_bytes(60)), ("X", midi_bytes(61)),
                                 ("X", midi_bytes(62)), ("x", midi_bytes(63))])
    out = tmp_path / "out"
    summary = collect(out, packages=["freedoom"], roots=roots)
    assert summary["packages"]["freedoom"]["written"] == 5 and summary["changed"] == 5
    listed = [f["path"] for f in json.loads((out / SOURCES_NAME).read_text())["files"]]
    assert len(listed) == len({p.lower() for p in listed}) == 5
    contents = {(out / path).read_bytes() for path in listed}
    assert contents == {midi_bytes(p) for p in (60, 61, 62, 63, 72)}
    first = sorted(listed)
    again = collect(out, packages=["freedoom"], roots=roots)
    assert again["changed"] == 0
    assert sorted(f["path"] for f in json.loads((out / SOURCES_NAME).read_text())["files"]) \
        == first
    assert "freedoom/freedoom1_X_2.mid" in first and "freedoom/freedoom1_X.mid" in first


@pytest.mark.parametrize("wanted, names", [
    (["a.mid", "b.mid"], ["a.mid", "b.mid"]),
    (["X_2.mid", "X.mid", "X.mid"], ["X_2.mid", "X.mid", "X.2.mid"]),
    (["a.mid", "A.mid", "a.2.mid"], ["a.mid", "A.3.mid", "a.2.mid"]),  # never steals
    (["a.mid"] * 4, ["a.mid", "a.2.mid", "a.3.mid", "a.4.mid"]),
])
def test_unique_names_are_stable_and_keep_first_names(wanted: list[str],
                                                      names: list[str]) -> None:
    assert debian_songs.unique_names(wanted) == names
    assert debian_songs.unique_names(wanted) == names


def unpacked_tree(root: Path) -> Path:
    """A folder laid out as ``dpkg -x`` leaves simutrans-data and freedm."""
    music = root / "usr/share/games/simutrans/music"
    music.mkdir(parents=True)
    (music / "01-Theme.mid").write_bytes(midi_bytes(60))
    doom = root / "usr/share/games/doom"
    doom.mkdir(parents=True)
    (doom / "freedm.wad").write_bytes(wad_bytes([("D_SHAWN", midi_bytes(80))]))
    return root


def test_root_reads_packages_unpacked_under_a_folder(tmp_path: Path, capsys) -> None:
    root = unpacked_tree(tmp_path / "unpacked")
    out = tmp_path / "out"
    code = main(["--out", str(out), "--root", str(root),
                 "--packages", "simutrans-data", "freedm"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["total"]["written"] == 2
    assert (out / "freedm/freedm_D_SHAWN.mid").read_bytes() == midi_bytes(80)
    sources = json.loads((out / SOURCES_NAME).read_text())
    assert {f["source"] for f in sources["files"]} == {
        str(root / "usr/share/games/simutrans/music/01-Theme.mid"),
        str(root / "usr/share/games/doom/freedm.wad")}
    assert sources["licences"]["freedm"].startswith("BSD-3-Clause")
    # a package not unpacked there: one line naming the folder and how to unpack it
    assert main(["--out", str(out), "--root", str(root), "--packages", "freedoom"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(root) in err[0]
    assert "apt-get download freedoom" in err[0] and "dpkg -x" in err[0]
    # a root that is not a folder
    assert main(["--out", str(out), "--root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0] and "not a folder" in err[0]


def test_every_package_has_a_licence_and_an_install_line() -> None:
    for package in debian_packages.PACKAGES:
        assert package.licence and package.files
    message = str(debian_packages.PackageMissing([("pianobooster", "x")]))
    assert message.endswith("apt-get install pianobooster")
