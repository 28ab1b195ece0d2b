"""data/dataset.py: PhraseDataset items and the LightningDataModule on the demo build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from data import read_phrases
from data.dataset import MixSampler, PhraseDataModule, PhraseDataset, transpose_music
from data.store import PhraseStore


def test_items_are_model_tensors(tiny_dataset: Path) -> None:
    dataset = PhraseDataset(tiny_dataset, "train")
    phrases = read_phrases(tiny_dataset, "train")
    assert len(dataset) == len(phrases) > 0
    item = dataset[0]
    assert item["music"].shape == (5, 64, 72) and item["music"].dtype == torch.float32
    assert item["mixture"].shape == (1, 64, 72) and item["mixture"].dtype == torch.float32
    assert set(item) == {"music", "mixture", "onsets"}
    onsets = PhraseStore(tiny_dataset, "train").onsets(0)[..., 1:].any(axis=-1)
    torch.testing.assert_close(item["onsets"][0], torch.from_numpy(onsets).float())
    # an onset is a sounding cell, and every note has one (its first cell)
    assert bool((item["onsets"] <= item["mixture"]).all())
    starts = item["mixture"][0, 0] > 0  # step 0: every sounding cell starts a note there
    assert bool((item["onsets"][0, 0][starts] > 0).all())
    torch.testing.assert_close(item["mixture"][0], item["music"].amax(dim=0))
    torch.testing.assert_close(item["music"][3], torch.from_numpy(phrases[0, ..., 4]).float())
    manifest = json.loads((tiny_dataset / "manifest.json").read_text())
    assert manifest["phrases"]["train"] == len(dataset)


def test_datamodule_loaders(tiny_dataset: Path) -> None:
    module = PhraseDataModule(tiny_dataset, batch_size=4)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["music"].shape[1:] == (5, 64, 72) and batch["music"].shape[0] <= 4
    assert len(module.val_dataloader().dataset) > 0


def test_transpose_moves_pitched_rows_and_keeps_drums() -> None:
    planes = np.zeros((5, 64, 72), dtype=bool)
    planes[0, 0, 10] = planes[3, 0, 70] = planes[4, 0, 65] = True  # piano, string, drum
    up = transpose_music(planes, 2)
    assert up[0, 0, 12] and not up[0, 0, 10]
    assert not up[3].any()  # moved past the top row: dropped
    assert up[4, 0, 65] and up[4].sum() == 1  # drums stay
    down = transpose_music(planes, -11)
    assert not down[0].any() and down[3, 0, 59] and down[4, 0, 65]


def test_training_items_are_transposed_within_range(tiny_dataset: Path) -> None:
    plain = PhraseDataset(tiny_dataset, "train")
    moved = PhraseDataset(tiny_dataset, "train", transpose=(-3, 3))
    torch.manual_seed(0)
    shifts = set()
    for i in range(min(len(plain), 12)):
        a, b = plain[i], moved[i]
        found = [k for k in range(-3, 4)
                 if torch.equal(torch.from_numpy(transpose_music(a["music"].numpy() > 0, k))
                                .float(), b["music"])]
        assert found, f"item {i} is not a transposition of -3..3"
        shifts.update(found)
        assert torch.equal(b["music"][4], a["music"][4])  # drums stay
        torch.testing.assert_close(b["mixture"][0], b["music"].amax(dim=0))
    assert len(shifts) > 1


def test_mix_sampler_draws_each_share() -> None:
    sampler = MixSampler([100, 30], [0.75, 0.25], epoch_size=200, seed=3)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        drawn = np.array(list(sampler))
        assert len(drawn) == len(sampler) == 200
        assert (drawn < 100).sum() == 150 and (drawn >= 100).sum() == 50
        assert drawn.max() < 130
        # the small dataset is repeated to fill its share; the large one is not repeated
        assert len(set(drawn[drawn < 100].tolist())) == 100
    sampler.set_epoch(0)
    again = np.array(list(sampler))
    sampler.set_epoch(1)
    assert np.array_equal(again, sampler.draw(0)) and not np.array_equal(again, sampler.draw(1))


def test_datamodule_mixes_two_datasets(tiny_dataset: Path, tmp_path: Path) -> None:
    n = len(PhraseDataset(tiny_dataset, "train"))
    module = PhraseDataModule(tiny_dataset, batch_size=8,
                              train_mix={str(tiny_dataset): 1.0, str(tiny_dataset) + "/": 3.0})
    loader = module.train_dataloader()
    assert len(loader.sampler) == 2 * n
    drawn = np.array(list(loader.sampler))
    assert abs((drawn >= n).mean() - 0.75) < 0.01


def test_missing_split_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        PhraseDataset(tmp_path, "val")
    assert "val.phrases.npy" in str(info.value) and len(str(info.value).splitlines()) == 1
