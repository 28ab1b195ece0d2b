"""The Debian game-music corpus: WAD reading, collection, duplicates, idempotence, errors.

Every package is built by hand in a temporary folder (MIDI files and WADs), so no test
needs the Debian packages installed.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

import data.debian_packages as debian_packages
import data.debian_songs as debian_songs
from data.debian_songs import (
    SOURCES_NAME,
    CollectError,
    PackageMissing,
    WadError,
    collect,
)
from data.midi import load_mixture, load_song, read_score
from data.wad import read_lump, read_wad
from tests.fixtures_midi import add_meta_track, dense_tracks, write_midi
from utils.debian_songs import main


def midi_bytes(pitch: int) -> bytes:
    """A one-note type-0 MIDI file (different pitches give different files)."""
    body = (b"\x00\x90" + bytes([pitch, 64]) + b"\x60\x80" + bytes([pitch, 0])
            + b"\x00\xff\x2f\x00")
    return (b"MThd" + struct.pack(">ihhh", 6, 0, 1, 96)
            + b"MTrk" + struct.pack(">i", len(body)) + body)


MUS = b"MUS\x1a" + bytes(12)  # the start of a Doom MUS lump


def wad_bytes(lumps: list[tuple[str, bytes]], magic: bytes = b"IWAD") -> bytes:
    """A WAD file: header, lump data, then the directory."""
    data, entries = bytearray(), []
    offset = 12
    for name, payload in lumps:
        entries.append(struct.pack("<ii8s", offset, len(payload), name.encode()))
        data += payload
        offset += len(payload)
    return struct.pack("<4sii", magic, len(lumps), offset) + bytes(data) + b"".join(entries)


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    """Hand-made installs of the three packages.

    simutrans-data: two songs (pitches 60, 61) and a .mid that is not MIDI;
    freedoom1.wad: a marker lump, songs 70 and 71, a map lump, a MUS lump;
    freedoom2.wad: song 72 and song 70 again (a duplicate inside the package);
    freedm.wad: song 60 again (a duplicate of simutrans-data) and song 80.
    """
    simutrans, doom, dm = tmp_path / "simutrans", tmp_path / "doom", tmp_path / "dm"
    for folder in (simutrans, doom, dm):
        folder.mkdir()
    (simutrans / "01-Theme.mid").write_bytes(midi_bytes(60))
    (simutrans / "02-Train.mid").write_bytes(midi_bytes(61))
    (simutrans / "03-Broken.mid").write_bytes(b"RIFFnot midi")
    (simutrans / "music.tab").write_text("not a song\n")
    (doom / "freedoom1.wad").write_bytes(wad_bytes([
        ("F_START", b""), ("D_E1M1", midi_bytes(70)), ("MAP01", b"\x01" * 40),
        ("D_E1M2", midi_bytes(71)), ("D_INTER", MUS)]))
    (doom / "freedoom2.wad").write_bytes(wad_bytes([
        ("D_RUNNIN", midi_bytes(72)), ("D_STALKS", midi_bytes(70))], magic=b"PWAD"))
    (dm / "freedm.wad").write_bytes(wad_bytes([
        ("D_DM2TTL", midi_bytes(60)), ("D_SHAWN", midi_bytes(80))]))
    return {"simutrans-data": simutrans, "freedoom": doom, "freedm": dm}


def test_read_wad_returns_every_lump_in_order(tmp_path: Path) -> None:
    path = tmp_path / "x.wad"
    path.write_bytes(wad_bytes([("S_START", b""), ("D_E1M1", midi_bytes(60)),
                                ("PLAYPAL", b"\x00\x01\x02")]))
    lumps = read_wad(path)
    assert [lump.name for lump in lumps] == ["S_START", "D_E1M1", "PLAYPAL"]
    assert [lump.index for lump in lumps] == [0, 1, 2]
    assert [read_lump(path, lump) for lump in lumps] == [b"", midi_bytes(60), b"\x00\x01\x02"]


@pytest.mark.parametrize("damage, words", [
    (lambda b: b[:8], "not a WAD file"),  # shorter than the header
    (lambda b: b"ZWAD" + b[4:], "not a WAD file"),  # wrong magic
    (lambda b: b[:-10], "truncated or corrupt"),  # directory cut off
    (lambda b: b[:12] + b[40:], "truncated or corrupt"),  # lump data cut out
    (lambda b: b[:4] + struct.pack("<i", -1) + b[8:], "corrupt WAD header"),
])
def test_a_damaged_wad_gives_a_clear_error_naming_the_file(tmp_path: Path, damage,
                                                            words: str) -> None:
    good = wad_bytes([("D_E1M1", midi_bytes(60)), ("D_E1M2", midi_bytes(61))])
    path = tmp_path / "broken.wad"
    path.write_bytes(damage(good))
    with pytest.raises(WadError, match=words) as info:
        read_wad(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_collect_extracts_midi_skips_duplicates_and_lists_sources(
        tmp_path: Path, roots: dict[str, Path]) -> None:
    out = tmp_path / "out"
    summary = collect(out, packages=list(roots), roots=roots)
    packages = summary["packages"]
    assert packages["simutrans-data"] == {"written": 2, "duplicates": 0, "mus_skipped": 0,
                                          "not_midi": 1, "too_large": 0,
                                          "other_lumps": 0}
    assert packages["freedoom"] == {"written": 3, "duplicates": 1, "mus_skipped": 1,
                                    "not_midi": 0, "too_large": 0, "other_lumps": 2}
    assert packages["freedm"] == {"written": 1, "duplicates": 1, "mus_skipped": 0,
                                  "not_midi": 0, "too_large": 0, "other_lumps": 0}
    assert summary["total"]["written"] == 6 and summary["changed"] == 6
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mid"))
    assert names == ["freedm/freedm_D_SHAWN.mid", "freedoom/freedoom1_D_E1M1.mid",
                     "freedoom/freedoom1_D_E1M2.mid", "freedoom/freedoom2_D_RUNNIN.mid",
                     "simutrans-data/01-Theme.mid", "simutrans-data/02-Train.mid"]
    assert (out / "freedoom/freedoom1_D_E1M1.mid").read_bytes() == midi_bytes(70)
    sources = json.loads((out / SOURCES_NAME).read_text())
    assert len(sources["files"]) == 6
    for item in sources["files"]:
        written = (out / item["path"]).read_bytes()
        assert item["sha256"] == hashlib.sha256(written).hexdigest()
    e1m1 = next(f for f in sources["files"] if f["path"].endswith("D_E1M1.mid"))
    assert e1m1["package"] == "freedoom" and e1m1["lump"] == "D_E1M1"
    assert e1m1["source"] == str(roots["freedoom"] / "freedoom1.wad")
    same = {(d["package"], d["lump"]): d["same_as"] for d in sources["duplicates"]}
    assert same == {("freedoom", "D_STALKS"): "freedoom/freedoom1_D_E1M1.mid",
                    ("freedm", "D_DM2TTL"): "simutrans-data/01-Theme.mid"}
    reasons = {(s["package"], s["lump"] or Path(s["source"]).name): s["reason"]
               for s in sources["skipped"]}
    assert reasons == {("freedoom", "D_INTER"): "mus_format",
                       ("simutrans-data", "03-Broken.mid"): "not_midi"}
    for song in out.rglob("*.mid"):  # every written song parses as MIDI
        read_score(song)


def test_collect_is_idempotent(tmp_path: Path, roots: dict[str, Path]) -> None:
    out = tmp_path / "out"
    collect(out, packages=list(roots), roots=roots)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    summary = collect(out, packages=list(roots), roots=roots)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    assert summary["changed"] == 0 and after == before


def test_packages_follow_the_fixed_order_and_stale_songs_go(tmp_path: Path,
                                                            roots: dict[str, Path]) -> None:
    """The duplicate goes to the first package of the fixed order, whatever the order
    asked; a later run with fewer packages removes the songs it no longer writes, and
    only those."""
    out = tmp_path / "out"
    collect(out, packages=["freedm", "simutrans-data"], roots=roots)
    assert (out / "simutrans-data/01-Theme.mid").is_file()
    assert not (out / "freedm/freedm_D_DM2TTL.mid").exists()
    (out / "simutrans-data/mine.mid").write_bytes(b"a file the user put there")
    summary = collect(out, packages=["freedm"], roots=roots)
    assert summary["packages"]["freedm"]["written"] == 2
    assert (out / "freedm/freedm_D_DM2TTL.mid").read_bytes() == midi_bytes(60)
    assert not (out / "simutrans-data/01-Theme.mid").exists()
    assert (out / "simutrans-data/mine.mid").is_file()
    listed = [f["path"] for f in json.loads((out / SOURCES_NAME).read_text())["files"]]
    assert sorted(listed) == ["freedm/freedm_D_DM2TTL.mid", "freedm/freedm_D_SHAWN.mid"]


def test_a_corrupt_wad_stops_the_run_before_anything_is_written(
        tmp_path: Path, roots: dict[str, Path]) -> None:
    wad = roots["freedm"] / "freedm.wad"
    wad.write_bytes(wad.read_bytes()[:-5])
    out = tmp_path / "out"
    with pytest.raises(WadError, match="freedm.wad: truncated"):
        collect(out, packages=list(roots), roots=roots)
    assert not out.exists() or not any(out.iterdir())


def test_a_missing_package_names_what_to_install(tmp_path: Path,
                                                 roots: dict[str, Path]) -> None:
    (roots["freedoom"] / "freedoom2.wad").unlink()
    with pytest.raises(PackageMissing) as info:
        collect(tmp_path / "out", packages=list(roots),
                roots={**roots, "freedm": tmp_path / "nowhere"})
    message = str(info.value)
    assert info.value.packages == ["freedoom", "freedm"]
    assert "freedoom2.wad" in message and "apt-get install freedoom freedm" in message
    assert not (tmp_path / "out").exists()
    with pytest.raises(CollectError, match="unknown package"):
        collect(tmp_path / "out", packages=["doom"], roots=roots)


def test_the_command_line(tmp_path: Path, roots: dict[str, Path], capsys,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 0 with the summary; exit 2 with one error line when a package is missing."""
    installed = tuple(
        debian_songs.Package(p.name, str(roots[p.name]), p.files, p.kind, p.licence)
        for p in debian_songs.PACKAGES if p.name in roots)
    monkeypatch.setattr(debian_packages, "PACKAGES", installed)
    assert main(["--out", str(tmp_path / "out")]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["written"] == 6
    (roots["freedm"] / "freedm.wad").unlink()
    assert main(["--out", str(tmp_path / "out"), "--packages", "freedm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: package freedm is not installed")
    assert err[0].endswith("install it with: apt-get install freedm")


def test_a_key_signature_with_mode_255_does_not_break_loading(tmp_path: Path) -> None:
    """Some simutrans songs carry key signatures with mode byte 255 (neither major nor
    minor), which mido refuses; the build reads them with symusic and ignores keys."""
    plain = write_midi(tmp_path / "plain.mid", dense_tracks(bars=8))
    path = write_midi(tmp_path / "mode255.mid", dense_tracks(bars=8))
    add_meta_track(path, b"\x00\xff\x59\x02\xff\xff")  # 1 flat, mode 255
    assert b"\xff\x59\x02\xff\xff" in path.read_bytes()
    assert len(read_score(path).key_signatures) == 1
    song = load_song(path)
    assert song.roll.any() and (song.roll == load_song(plain).roll).all()
    mixture, reference, _ = load_mixture(path)
    plain_mixture, plain_reference, _ = load_mixture(plain)
    assert (mixture == plain_mixture).all() and (reference == plain_reference).all()
