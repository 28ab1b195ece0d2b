"""What the separator sees: onsets, beat position, the melody option, the corpus mix and
warm starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_lightning.callbacks import Callback

from data.build_plan import BuildError
from data.contract import BASS, GUITAR, MELODY, PIANO, PITCH_LOW, STRING
from data.preprocess import build
from data.song_roll import load_song
from data.store import PhraseStore
from models.direct import DirectSeparation
from models.inputs import run_onsets
from models.transunet import TransUNet, beat_planes
from tests.fixtures_midi import Track, write_midi
from tests.test_train import QUIET, tiny_cfg
from utils.core.checkpoints import (
    PRETRAINED_DIR,
    PRETRAINED_SEPARATOR,
    SeparatorSpec,
    build_separator,
    load_separator,
)
from utils.core.config import ConfigError
from utils.training.runs import train_separator

TPQ = 480
STEP = TPQ // 4  # one 16th-note step in ticks


def _band(pitch: int, bars: int = 16) -> list[tuple[int, int, int]]:
    """A quarter note every beat for ``bars`` bars (enough notes to keep the track)."""
    return [(b * TPQ, (b + 1) * TPQ, pitch) for b in range(4 * bars)]


# ----------------------------------------------------------------------------- onsets
def test_onsets_tell_repeated_notes_from_one_held_note(tmp_path: Path) -> None:
    # piano: two eighth notes at C4 (steps 0-1, 2-3) then a held quarter at E4 (steps 4-7)
    piano = [(0, 2 * STEP, 60), (2 * STEP, 4 * STEP, 60), (4 * STEP, 8 * STEP, 64)]
    piano += [(t + 16 * STEP, e + 16 * STEP, p) for t, e, p in _band(72, 15) + _band(76, 15)]
    # (chords: a monophonic high line would be taken for the melody)
    path = write_midi(tmp_path / "song.mid", [Track("piano", 0, piano),
                                              Track("bass", 33, _band(36))])
    song = load_song(path)
    c4, e4 = 60 - PITCH_LOW, 64 - PITCH_LOW
    roll, onsets = song.roll[..., PIANO], song.onsets[..., PIANO]
    assert roll[0:4, c4].all() and roll[4:8, e4].all()  # cells alone: one run each
    np.testing.assert_array_equal(onsets[0:4, c4], [True, False, True, False])
    np.testing.assert_array_equal(onsets[4:8, e4], [True, False, False, False])
    assert not (onsets & ~roll).any()  # an onset is a sounding cell
    bass_starts = np.flatnonzero(song.onsets[:, 36 - PITCH_LOW, BASS])
    np.testing.assert_array_equal(bass_starts, np.arange(0, 16 * 16, 4))
    # the phrase store keeps them cell by cell
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(path, corpus / "song.mid")
    build(corpus, tmp_path / "data", workers=1, fractions=(1.0, 0.0, 0.0), progress=False,
          min_bar_density=0.0)
    store = PhraseStore(tmp_path / "data", "train")
    np.testing.assert_array_equal(store.onsets(0), song.onsets[:64])
    np.testing.assert_array_equal(store[0], song.roll[:64])


def test_run_onsets_from_cells_alone() -> None:
    mixture = torch.zeros(1, 1, 8, 3)
    mixture[0, 0, 0:4, 1] = 1  # one run of four steps
    mixture[0, 0, 6, 1] = 1
    starts = run_onsets(mixture)[0, 0, :, 1]
    assert starts.tolist() == [1, 0, 0, 0, 0, 0, 1, 0]
    assert run_onsets(mixture)[..., [0, 2]].sum() == 0


# ----------------------------------------------------------------------------- beat
def test_beat_planes_give_each_steps_place_in_bar_and_beat() -> None:
    planes = beat_planes(64, 72)
    assert planes.shape == (4, 64, 72)
    bar = torch.atan2(planes[0], planes[1])[:, 0] % (2 * np.pi)  # angle of the bar phase
    beat = torch.atan2(planes[2], planes[3])[:, 0] % (2 * np.pi)
    steps = torch.arange(64, dtype=torch.float64)
    torch.testing.assert_close(bar.double(), (2 * np.pi * (steps % 16) / 16) % (2 * np.pi),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(beat.double(), (2 * np.pi * (steps % 4) / 4) % (2 * np.pi),
                               atol=1e-5, rtol=0)
    assert torch.equal(planes[:, 16], planes[:, 0]) and torch.equal(planes[:, 20], planes[:, 4])
    assert not torch.equal(planes[:, 4], planes[:, 0])  # beat 2 differs from beat 1
    assert torch.equal(planes[:, :, 0], planes[:, :, 71])  # the same on every pitch row


def test_inputs_add_network_channels_and_change_the_output() -> None:
    spec = SeparatorSpec.of(tiny_cfg(Path("/nonexistent"), separator="direct"))
    plain, _ = build_separator(spec)
    onset, process = build_separator(SeparatorSpec(**{**vars(spec), "onset_channel": True}))
    beat, _ = build_separator(SeparatorSpec(**{**vars(spec), "beat_channel": True}))
    assert plain.stem.in_channels == 1
    assert onset.stem.in_channels == 2 and beat.stem.in_channels == 5
    assert isinstance(process, DirectSeparation) and process.onset_channel
    torch.manual_seed(0)
    onset.eval()
    mixture = torch.zeros(1, 1, 64, 72)
    mixture[0, 0, 0:8, 30] = 1
    held = process.probs(onset, mixture, run_onsets(mixture))
    repeated = torch.zeros_like(mixture)
    repeated[0, 0, [0, 2, 4, 6], 30] = 1
    assert not torch.allclose(held, process.probs(onset, mixture, repeated))
    # without onsets given, the cells' runs stand in for them
    torch.testing.assert_close(process.probs(onset, mixture), held)
    # beat planes: the same chord on beat 1 and on beat 2 is seen differently
    beat.eval()
    a, b = torch.zeros(1, 1, 64, 72), torch.zeros(1, 1, 64, 72)
    a[0, 0, 16:18, 30] = 1
    b[0, 0, 20:22, 30] = 1
    t = torch.zeros(1, dtype=torch.long)
    assert not torch.allclose(beat(a, t)[..., 16:18, 30], beat(b, t)[..., 20:22, 30])


def test_checkpoints_from_before_the_new_inputs_load_unchanged(tmp_path: Path) -> None:
    """A checkpoint whose stored config predates onset_channel/beat_channel loads with both
    off, into the network it was trained as; the shipped model loads with its own inputs."""
    cfg = tiny_cfg(tmp_path, separator="direct", pitch_channel=True)
    old_net, _ = build_separator(SeparatorSpec.of(cfg))
    stored = cfg.to_dict()
    for key in ("onset_channel", "beat_channel", "transpose", "train_mix", "init_from",
                "melody_in_mixture", "song_context_weight", "song_context_width"):
        stored.pop(key)  # keys that did not exist when it was written
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in old_net.state_dict().items()},
                "hyper_parameters": {"config": stored}}, path)
    net, _, config = load_separator(path)
    assert not config.onset_channel and not config.beat_channel
    assert net.stem.in_channels == 2  # the mixture and the pitch channel, as trained
    for name, value in old_net.state_dict().items():
        assert torch.equal(net.state_dict()[name], value), name
    shipped, process, shipped_cfg = load_separator(PRETRAINED_DIR / PRETRAINED_SEPARATOR)
    assert isinstance(shipped, TransUNet) and process.kind == shipped_cfg.separator
    assert shipped.stem.in_channels == (1 + int(shipped_cfg.pitch_channel)
                                        + int(shipped_cfg.onset_channel)
                                        + 4 * int(shipped_cfg.beat_channel))


# ----------------------------------------------------------------------------- melody
def _melody_song(path: Path) -> Path:
    """A song whose named melody track plays on a guitar program, with piano and bass."""
    melody = [(b * TPQ, b * TPQ + TPQ // 2, 76 + (b % 5)) for b in range(64)]
    return write_midi(path, [Track("Melody", 26, melody), Track("piano", 0, _band(60)),
                             Track("bass", 33, _band(40))])


def test_melody_in_mixture_puts_the_tune_in_its_program_class(tmp_path: Path) -> None:
    path = _melody_song(tmp_path / "tune.mid")
    paper = load_song(path)
    joined = load_song(path, melody_in_mixture=True)
    assert paper.has_melody and joined.has_melody
    tune = paper.roll[..., MELODY]
    assert tune.any() and not paper.roll[..., GUITAR].any()  # the paper keeps it apart
    np.testing.assert_array_equal(joined.roll[..., GUITAR], tune)  # now it is the guitar
    np.testing.assert_array_equal(joined.roll[..., MELODY], tune)  # still stored
    for cls in (PIANO, BASS, STRING):
        np.testing.assert_array_equal(joined.roll[..., cls], paper.roll[..., cls])
    # the build: the default is byte for byte the paper's contract, the option differs
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(path, corpus / "tune.mid")
    kw = {"workers": 1, "fractions": (1.0, 0.0, 0.0), "progress": False,
          "min_bar_density": 0.0}
    build(corpus, tmp_path / "a", **kw)
    build(corpus, tmp_path / "b", **kw, melody_in_mixture=False)
    build(corpus, tmp_path / "c", **kw, melody_in_mixture=True)
    a, b, c = ((tmp_path / x / "train.phrases.npy").read_bytes() for x in "abc")
    assert a == b and a != c
    store = PhraseStore(tmp_path / "c", "train")
    np.testing.assert_array_equal(store[0][..., GUITAR], tune[:64])
    # a folder built one way is not resumed the other way
    with pytest.raises(BuildError, match="melody_in_mixture"):
        build(corpus, tmp_path / "a", **kw, melody_in_mixture=True)


# ----------------------------------------------------------------------------- splits
def test_named_splits_follow_the_folders(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for folder, n in (("train", 3), ("Validation", 2), ("test", 1)):
        (corpus / folder).mkdir(parents=True)
        for k in range(n):
            write_midi(corpus / folder / f"s{k}.mid", [Track("piano", 0, _band(60 + k)),
                                                       Track("bass", 33, _band(40))])
    manifest = build(corpus, tmp_path / "data", workers=1, progress=False, split_by="named",
                     min_bar_density=0.0)
    assert manifest["songs"] == {"train": 3, "val": 2, "test": 1}
    assert manifest["settings"]["split_by"] == "named"
    assert all(s.startswith("Validation/") for s in manifest["split_songs"]["val"])
    (corpus / "extra").mkdir()
    write_midi(corpus / "extra" / "x.mid", [Track("piano", 0, _band(60))])
    with pytest.raises(BuildError, match=r"found 'extra'") as info:
        build(corpus, tmp_path / "other", workers=1, progress=False, split_by="named")
    assert len(str(info.value).splitlines()) == 1
    assert not (tmp_path / "other" / "manifest.json").exists()


# ----------------------------------------------------------------------------- training
class DrawRecorder(Callback):
    """Records the indices the training sampler hands out in the first epoch."""

    def __init__(self) -> None:
        self.drawn: list[int] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.drawn = list(trainer.train_dataloader.sampler)


def test_training_draws_two_datasets_by_weight(tiny_dataset: Path, tmp_path: Path) -> None:
    small = tmp_path / "small"
    for folder in ("train", "val"):
        (small / "corpus" / folder).mkdir(parents=True)
        write_midi(small / "corpus" / folder / "s.mid", [Track("piano", 0, _band(62)),
                                                         Track("guitar", 25, _band(50))])
    build(small / "corpus", small / "data", workers=1, progress=False, split_by="named",
          min_bar_density=0.0)
    sizes = [len(PhraseStore(d, "train")) for d in (tiny_dataset, small / "data")]
    cfg = tiny_cfg(tmp_path, separator="direct", data_dir=str(tiny_dataset),
                   train_mix={str(tiny_dataset): 1.0, str(small / "data"): 3.0},
                   transpose=[-2, 2], limit_train_batches=2, limit_val_batches=1)
    recorder = DrawRecorder()
    best = train_separator(cfg, callbacks=[recorder], **QUIET)
    drawn = np.array(recorder.drawn)
    assert len(drawn) == sum(sizes)
    share = (drawn >= sizes[0]).mean()  # ConcatDataset order: the small dataset second
    assert abs(share - 0.75) < 0.01
    assert (Path(cfg.model_dir) / "baselines.json").is_file()
    assert best.is_file()


def test_warm_start_loads_weights_and_refuses_a_mismatch(tmp_path: Path) -> None:
    from tests.test_train import SyntheticPhrases, synthetic_phrases

    data = SyntheticPhrases(synthetic_phrases(8), batch_size=4)
    first = tiny_cfg(tmp_path / "a", separator="direct", limit_train_batches=1,
                     limit_val_batches=1)
    source = train_separator(first, datamodule=data, **QUIET)
    source_net, _, _ = load_separator(source)

    seen: dict[str, torch.Tensor] = {}

    class Snapshot(Callback):
        def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
            seen.update({k: v.clone() for k, v in pl_module.net.state_dict().items()})

    warm = tiny_cfg(tmp_path / "b", separator="direct", init_from=str(source),
                    limit_train_batches=1, limit_val_batches=1, seed=7)
    train_separator(warm, datamodule=data, callbacks=[Snapshot()], **QUIET)
    for name, value in source_net.state_dict().items():
        assert torch.equal(seen[name], value), name
    mismatched = tiny_cfg(tmp_path / "c", separator="direct", init_from=str(source),
                          onset_channel=True, limit_train_batches=1, limit_val_batches=1)
    with pytest.raises(ConfigError, match=r"'init_from'.*'onset_channel'") as info:
        train_separator(mismatched, datamodule=data, **QUIET)
    assert len(str(info.value).splitlines()) == 1
    with pytest.raises(ConfigError, match="'init_from'.*not found"):
        train_separator(tiny_cfg(tmp_path / "d", separator="direct",
                                 init_from=str(tmp_path / "none.ckpt")), datamodule=data,
                        **QUIET)
