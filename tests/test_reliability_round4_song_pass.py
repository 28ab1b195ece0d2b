"""Song pass checkpoints of any structure, size or weights, and a first-pass cache that is
truncated or holds other contents: one line naming the file, or taken as stale."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import separate
from models.song_pass import SongPassNet, SongPassSpec
from tests.test_train import tiny_cfg
from utils import song_pass as song_pass_module
from utils.config import ConfigError
from utils.song_pass import SONG_PASS_FILE, load_song_pass, song_pass_state

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
