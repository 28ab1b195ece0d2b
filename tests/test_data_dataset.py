"""data/dataset.py: PhraseDataset items and the LightningDataModule on the demo build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from data import read_phrases
from data.dataset import PhraseDataModule, PhraseDataset


def test_items_are_model_tensors(tiny_dataset: Path) -> None:
    dataset = PhraseDataset(tiny_dataset, "train")
    phrases = read_phrases(tiny_dataset, "train")
    assert len(dataset) == len(phrases) > 0
    item = dataset[0]
    assert item["music"].shape == (5, 64, 72) and item["music"].dtype == torch.float32
    assert item["mixture"].shape == (1, 64, 72) and item["mixture"].dtype == torch.float32
    assert set(item) == {"music", "mixture"}
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
    assert len(module.test_dataloader().dataset) > 0


def test_missing_split_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        PhraseDataset(tmp_path, "val")
    assert "val.phrases.npy" in str(info.value) and len(str(info.value).splitlines()) == 1
