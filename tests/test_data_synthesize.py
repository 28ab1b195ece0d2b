"""data/mma.py + data/synthesize.py: groove library, seeded songs, resume, the built corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import data.preprocess as pre
import data.synthesize as syn
import utils.synthesize as synth_cli
from data.mma import Groove, MmaFailed, library_dir, read_grooves, read_style, song_grooves
from tests.fixtures_midi import dense_tracks, write_midi

MMA = shutil.which("mma")
needs_mma = pytest.mark.skipif(
    MMA is None, reason="MMA not installed (sudo apt-get install mma): synthetic corpus untested")
SONGS = 32  # enough for every instrument and several styles on each side of a split


def _midi_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*.mid"))}


# ----------------------------------------------------------------------------- no MMA needed
STYLE = """// a made-up style file
Begin Doc
  Time is set to 3 in this sentence, which is documentation.
End
SeqClear
Time 4
Timesig 4 4
Begin Drum Define
  D1 1 0 90
End
DefGroove Rock     A plain rock beat, with a description that \\
                   runs over two lines.
DefGroove RockIntro   A 4 bar introduction.
DefGroove RockFill    A fill.
DefGroove RockEndSus  An ending.
DefGroove DescendingRock  Not an ending: "Descending" only contains "end".
Time 3
Timesig 3 4
DefGroove RockWaltz   Three beats.
Time 4
Timesig 6/8
DefGroove Rock68      Four beats under a 6/8 signature.
"""


def test_read_style_tracks_time_and_skips_sections(tmp_path: Path) -> None:
    path = tmp_path / "myrock.mma"
    path.write_text(STYLE)
    grooves = read_style(path)
    assert [(g.name, g.time, g.timesig) for g in grooves] == [
        ("Rock", 4, (4, 4)), ("RockIntro", 4, (4, 4)), ("RockFill", 4, (4, 4)),
        ("RockEndSus", 4, (4, 4)), ("DescendingRock", 4, (4, 4)),
        ("RockWaltz", 3, (3, 4)), ("Rock68", 4, (6, 8))]
    assert {g.style for g in grooves} == {"myrock"}
    assert [g.name for g in song_grooves(read_grooves(tmp_path))] == ["Rock", "DescendingRock"]


def test_plan_depends_on_seed_and_index_only(tmp_path: Path) -> None:
    grooves = [Groove(f"G{k}", style, tmp_path / f"{style}.mma", 4, (4, 4))
               for k, style in enumerate(("a", "a", "b", "c"))]
    plan = syn.plan_song(7, 3, grooves)
    assert plan == syn.plan_song(7, 3, grooves)
    assert plan != syn.plan_song(7, 4, grooves) and plan != syn.plan_song(8, 3, grooves)
    assert plan.path == f"{plan.style}/00003.mid"
    assert syn.MIN_BARS <= plan.bars <= syn.MAX_BARS and len(plan.chords) == plan.bars
    text = syn.chart(plan, tmp_path / f"{plan.style}.mma")
    assert f"Groove {plan.groove}\n" in text and f"RndSeed {plan.seed}\n" in text
    assert text.rstrip().splitlines()[-1].startswith(f"{plan.bars} ")


def test_check_4_4(tmp_path: Path) -> None:
    write_midi(tmp_path / "four.mid", dense_tracks(bars=4))
    write_midi(tmp_path / "waltz.mid", dense_tracks(bars=4), time_signatures=[(0, 3, 4)])
    syn.check_4_4((tmp_path / "four.mid").read_bytes())
    with pytest.raises(MmaFailed) as caught:
        syn.check_4_4((tmp_path / "waltz.mid").read_bytes())
    assert caught.value.reason == "not_4_4"


def test_missing_mma_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no mma on it
    assert synth_cli.main(["--out-dir", str(tmp_path / "out"), "--songs", "2",
                           "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "'mma'" in err[0] and "apt-get install mma" in err[0]
    assert not (tmp_path / "out").exists()
    assert synth_cli.main(["--out-dir", str(tmp_path / "out"), "--songs", "0"]) == 2


# ----------------------------------------------------------------------------- with MMA
@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("synth") / "midi"
    return out, syn.synthesize(out, SONGS, seed=0, workers=2, progress=False)


@needs_mma
def test_corpus_manifest(corpus: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = corpus
    assert json.loads((out / syn.MANIFEST).read_text()) == manifest
    assert manifest["finished"] and manifest["settings"]["seed"] == 0
    assert manifest["settings"]["mma_version"]
    assert manifest["songs_written"] + manifest["songs_failed"] == SONGS
    assert sum(manifest["failures"].values()) == manifest["songs_failed"]
    written = _midi_files(out)
    ok = [s for s in manifest["songs"] if s["status"] == "ok"]
    assert sorted(s["path"] for s in ok) == sorted(written)
    for song in manifest["songs"]:
        for key in ("groove", "style", "key", "tempo", "bars", "seed", "chords"):
            assert song[key] is not None
        assert song["path"] == f"{song['style']}/{song['index']:05d}.mid"
    assert manifest["melody_songs"] > 0 and len(manifest["styles"]) > 10


@needs_mma
def test_same_seed_same_bytes_on_any_worker_count(corpus: tuple[Path, dict[str, Any]],
                                                  tmp_path: Path) -> None:
    out, manifest = corpus
    again = syn.synthesize(tmp_path / "again", 10, seed=0, workers=1, progress=False)
    first = {s["path"] for s in manifest["songs"][:10] if s["status"] == "ok"}
    assert _midi_files(tmp_path / "again") == {k: v for k, v in _midi_files(out).items()
                                               if k in first}
    assert again["songs"] == manifest["songs"][:10]
    other = syn.synthesize(tmp_path / "other", 4, seed=1, workers=2, progress=False)
    assert [s["chords"] for s in other["songs"]] != [s["chords"] for s in manifest["songs"][:4]]


@needs_mma
def test_interrupted_run_resumes_to_the_same_files(corpus: tuple[Path, dict[str, Any]],
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out, manifest = corpus
    resumed = tmp_path / "resumed"
    calls = {"n": 0}
    original = syn._render_song

    def crashing(*args: Any) -> bytes:
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(syn, "_render_song", crashing)
    with pytest.raises(KeyboardInterrupt):
        syn.synthesize(resumed, 10, seed=0, workers=1, progress=False)
    done = len(_midi_files(resumed))
    assert done <= 4
    assert not json.loads((resumed / syn.MANIFEST).read_text())["finished"]
    style = next(p for p in resumed.iterdir() if p.is_dir())
    (style / ".00099.mid.x1y2.tmp.mid").write_bytes(b"half a file")  # left by a kill
    monkeypatch.setattr(syn, "_render_song", original)
    finished = syn.synthesize(resumed, 10, seed=0, workers=2, progress=False)
    assert finished["songs_this_run"] == 10 - done
    assert finished["songs"] == manifest["songs"][:10]
    expected = {s["path"] for s in manifest["songs"][:10] if s["status"] == "ok"}
    assert _midi_files(resumed) == {k: v for k, v in _midi_files(out).items() if k in expected}
    assert not list(resumed.glob("*/.*"))
    # a finished folder: nothing is rendered or rewritten
    before = {p: p.stat().st_mtime_ns for p in resumed.rglob("*")}
    assert syn.synthesize(resumed, 10, seed=0, workers=1, progress=False) == finished
    assert {p: p.stat().st_mtime_ns for p in resumed.rglob("*")} == before
    with pytest.raises(syn.SynthError, match="another seed"):
        syn.synthesize(resumed, 10, seed=1, workers=1, progress=False)


@needs_mma
def test_built_corpus_has_every_instrument_4_4_grooves_and_styles_on_one_side(
        corpus: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, manifest = corpus
    library = {(g.style, g.name): g for g in read_grooves(library_dir(MMA))}
    for song in manifest["songs"]:  # every groove used is 4/4 per the library, not a section
        groove = library[(song["style"], song["groove"])]
        assert groove.time == 4 and groove.timesig == (4, 4) and not groove.is_section
    built = pre.build(out, tmp_path / "dataset", workers=2, seed=0, fractions=(0.6, 0.2, 0.2),
                      progress=False, min_bar_density=0.005, split_by="folder")
    assert built["files_seen"] == manifest["songs_written"]
    assert "not_4_4" not in built["skipped"]
    assert built["files_kept"] >= SONGS // 2 and built["melody_songs"] > 0
    for instrument in ("piano", "guitar", "bass", "string", "drum"):
        assert built["instrument_phrases"][instrument] > 0, instrument
    sides: dict[str, set[str]] = {}
    for split, songs in built["split_songs"].items():
        assert songs, split
        for song in songs:
            sides.setdefault(song.split("/")[0], set()).add(split)
    assert all(len(s) == 1 for s in sides.values())  # no style on two sides
    assert {f: {s} for s, fs in built["split_folders"].items() for f in fs} == sides


@needs_mma
def test_failed_song_is_counted_and_not_retried(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    original = syn._render_song
    calls: list[int] = []

    def failing_second(exe: str, plan: syn.SongPlan, style_file: Path) -> bytes:
        calls.append(plan.index)
        if plan.index == 1:
            raise MmaFailed("mma_error", "MMA exit 1: made up")
        return original(exe, plan, style_file)

    monkeypatch.setattr(syn, "_render_song", failing_second)
    made = syn.synthesize(tmp_path / "out", 4, seed=0, workers=2, progress=False)
    assert made["songs_written"] == 3 and made["failures"] == {"mma_error": 1}
    assert made["songs"][1]["status"] == "mma_error" and len(_midi_files(tmp_path / "out")) == 3
    calls.clear()
    assert syn.synthesize(tmp_path / "out", 4, seed=0, workers=2, progress=False) == made
    assert calls == []
