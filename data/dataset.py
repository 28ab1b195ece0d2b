"""PyTorch / Lightning access to a built phrase dataset (see :mod:`data.store`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from data.roll import music_and_mixture
from data.store import SPLITS, PhraseStore


class PhraseDataset(Dataset):
    """One split of a built dataset as model tensors.

    Each item is a dict of float32 tensors (0/1 values):

    * ``music``: ``[5, 64, 72]`` -- piano, guitar, bass, string, drum;
    * ``mixture``: ``[1, 64, 72]`` -- OR of the five.

    The melody channel of the stored phrases is not part of the mixture and is not
    loaded (it is only used to filter windows at build time).

    Args:
        data_dir: dataset folder written by ``python -m utils.preprocess``.
        split: "train", "val" or "test".

    Raises:
        FileNotFoundError: one line naming the missing split file.
        data.store.DatasetError: the folder's files disagree (an interrupted build); one
            line ending "re-run the build".
    """

    def __init__(self, data_dir: str | Path, split: str) -> None:
        self.store = PhraseStore(data_dir, split)

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        phrase = self.store[index][None]  # (1, 64, 72, 6)
        music, mixture = music_and_mixture(phrase)  # (1, 5, 64, 72), (1, 1, 64, 72)
        return {"music": torch.from_numpy(music[0].astype(np.float32)),
                "mixture": torch.from_numpy(mixture[0].astype(np.float32))}


class PhraseDataModule(pl.LightningDataModule):
    """Train/val/test loaders over a built dataset (the split is by song, made at build time).

    Args:
        data_dir: dataset folder.
        batch_size: phrases per batch (per device).
        num_workers: DataLoader worker processes.
        pin_memory: pin host memory (for GPU training).

    Under DDP, Lightning replaces the samplers with distributed ones, so each process sees
    its own shard of every split.
    """

    def __init__(self, data_dir: str | Path, batch_size: int, num_workers: int = 0,
                 pin_memory: bool = False) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.datasets: dict[str, PhraseDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        """Open the split files needed for ``stage`` (all of them when None)."""
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                  "predict": ("test",)}.get(stage or "", SPLITS)
        for split in needed:
            if split not in self.datasets:
                self.datasets[split] = PhraseDataset(self.data_dir, split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        return DataLoader(self.datasets[split], batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in stored order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches in stored order."""
        return self._loader("test", shuffle=False)
