"""Song pass checkpoints of any structure, size or weights, and a first-pass cache that is
truncated or holds other contents: one line naming the file, or taken as stale."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import separate
from models.song_pass import SongPassNet, SongPassSpec
from tests.test_train import tiny_cfg
from utils.core.config import ConfigError
from utils.separation import song_pass as song_pass_module
from utils.separation.song_pass import SONG_PASS_FILE, load_song_pass, song_pass_state

ROOT = Path(__file__).resolve().parents[1]
DEMO_SONG = ROOT / "data" / "demo" / "openmsx" / "tttheme2.mid"
SMALL = SongPassSpec(width=8, levels=1, stacks=1)


def _state() -> dict:
    torch.manual_seed(0)
    return song_pass_state(SongPassNet(SMALL), {"separator_digest": "0" * 16, "steps": 1})


def _spoilt(kind: str) -> object:
    state = _state()
    if kind == "trained list":
        state["trained"] = ["separator_digest"]
    elif kind == "trained string":
        state["trained"] = "separator_digest"
    elif kind == "bare tensor":
        return torch.zeros(3)
    elif kind == "nan weights":
        state["state_dict"]["out.weight"][0, 0] = float("nan")
    elif kind == "huge weights":
        state["state_dict"]["inp.weight"] *= 1e30
    elif kind == "integer weights":
        state["state_dict"]["out.bias"] = torch.ones(4, dtype=torch.int64)
    elif kind == "width 1e7":
        state["song_pass"]["width"] = 10**7
    elif kind == "width as text":
        state["song_pass"]["width"] = "96"
    elif kind == "velocity as number":
        state["song_pass"]["velocity"] = 1
    elif kind == "weights not a dict":
        state["state_dict"] = [torch.zeros(2)]
    return state


BAD = {"trained list": "'trained'", "trained string": "'trained'",
       "bare tensor": "not a dict", "nan weights": "out.weight.*not finite",
       "huge weights": "inp.weight.* reaches .*, over 1000", "integer weights": "out.bias.*int64",
       "width 1e7": "'width' must be", "width as text": "'width' must be",
       "velocity as number": "'velocity' must be", "weights not a dict": "'state_dict'"}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_spoilt_song_pass_checkpoint_is_one_line_naming_the_file(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / SONG_PASS_FILE
    torch.save(_spoilt(kind), path)
    built = []

    def network(spec: SongPassSpec) -> SongPassNet:
        built.append(spec)
        return SongPassNet(spec)

    monkeypatch.setattr(song_pass_module, "SongPassNet", network)
    with pytest.raises(ConfigError) as info:
        load_song_pass(path)
    line = str(info.value)
    assert len(line.splitlines()) == 1 and line.startswith(f"{path}: ")
    assert re.search(BAD[kind], line), line
    if kind in ("width 1e7", "width as text", "velocity as number", "bare tensor"):
        assert not built  # refused before any network exists


def test_a_whole_song_pass_checkpoint_still_loads(tmp_path: Path) -> None:
    path = tmp_path / SONG_PASS_FILE
    torch.save(_state(), path)
    loaded = load_song_pass(path)
    assert loaded.spec == SMALL and loaded.trained == {"separator_digest": "0" * 16, "steps": 1}
    state = _state()
    del state["trained"]  # a record is optional
    torch.save(state, path)
    assert load_song_pass(path).trained is None


def test_an_oversized_song_pass_file_is_refused_unread(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / SONG_PASS_FILE
    with open(path, "wb") as f:
        f.truncate(song_pass_module.MAX_SONG_PASS_BYTES + 1)  # sparse: no disk used
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read"))
    with pytest.raises(ConfigError, match=f"{path}: .*larger than"):
        load_song_pass(path)


@pytest.mark.parametrize("kind", ["trained list", "bare tensor", "huge weights"])
def test_separate_with_a_spoilt_song_pass_exits_2_in_one_line(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"  # no separator of its own: the shipped one, this song pass
    models.mkdir()
    torch.save(_spoilt(kind), models / SONG_PASS_FILE)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(tiny_cfg(tmp_path, model_dir=str(models)).to_dict()))
    out = tmp_path / "out"
    status = separate.main([str(DEMO_SONG), "--config", str(cfg), "-o", str(out),
                            "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {models / SONG_PASS_FILE}: ")
    assert not out.exists() or not any(out.iterdir())


@pytest.fixture()
def cached_first_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """A built split's first pass with a stand-in separator: ``(run, calls)``; ``run()``
    returns the songs and the cache file, ``calls`` counts the songs separated."""
    from data.preprocess import build
    from tests.test_reliability_data import _corpus
    from utils import song_pass_training as training
    from utils.separation.first_pass import FirstPass

    data = tmp_path / "data"
    build(_corpus(tmp_path / "corpus"), data, workers=1, progress=False, split_by="named",
          min_bar_density=0.0)
    calls: list[str] = []
    rng = np.random.default_rng(0)

    def first_pass_songs(separator: object, truths: object) -> object:
        for truth in truths:
            calls.append(truth.name)
            k = len(truth.true)
            yield training.TrainingSong(FirstPass(
                probs=rng.random((k, 5), dtype=np.float32), rows=np.full(k, 3),
                first=np.arange(k), stop=np.arange(k) + 1, velocity=np.full(k, 64),
                pitched=np.ones(k, dtype=bool), chosen=truth.true > 0,
                row_sums=rng.random((72, 5), dtype=np.float32)),
                target=truth.true.astype(np.int64))

    monkeypatch.setattr(training, "first_pass_songs", first_pass_songs)
    monkeypatch.setattr(training, "first_pass_key", lambda *a: "0123456789abcdef")
    cache = tmp_path / "cache"

    def run() -> tuple[list, Path]:
        songs = training.first_pass_split(None, str(data), "train", cache, progress=False)
        files = list(cache.glob("first_pass_*.npz"))
        assert len(files) == 1 and not list(cache.glob(".*tmp*"))
        return songs, files[0]

    return run, calls


def _same(a: list, b: list) -> bool:
    from utils.song_pass_training import FIRST_PASS_FIELDS

    return len(a) == len(b) and all(
        (getattr(x.first_pass, f) == getattr(y.first_pass, f)).all()
        for x, y in zip(a, b) for f in FIRST_PASS_FIELDS) and all(
        (x.target == y.target).all() for x, y in zip(a, b))


@pytest.mark.parametrize("spoil", ["truncated", "other arrays", "counts disagree",
                                   "not a zip", "fewer songs"])
def test_a_spoilt_first_pass_cache_is_computed_again(
        cached_first_pass, spoil: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    run, calls = cached_first_pass
    first, path = run()
    assert len(calls) == 3
    again, _ = run()  # a whole cache is read, not computed
    assert len(calls) == 3 and _same(first, again)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    if spoil == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif spoil == "other arrays":
        np.savez(path, probs=arrays["probs"])
    elif spoil == "counts disagree":
        np.savez(path, **{**arrays, "counts": arrays["counts"] + 1})
    elif spoil == "not a zip":
        path.write_bytes(b"\x00" * 100)
    else:
        np.savez(path, **{**arrays, "counts": arrays["counts"][:2],
                          "row_sums": arrays["row_sums"][:2]})
    capsys.readouterr()
    recomputed, rewritten = run()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(calls) == 6  # computed again
    assert len(err) == 1 and err[0].startswith(f"warning: {path}: "), err
    assert rewritten == path
    third, _ = run()  # the rewritten cache is whole: read again, not computed
    assert len(calls) == 6 and _same(recomputed, third)
