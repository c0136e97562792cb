"""Lightning data module over in-memory uint8 arrays: batches are gathered by index, not per sample."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from facexpr.data.datasets import ImageSet


class TensorSplit(Dataset):
    """Returns whole batches through ``__getitems__`` (one gather instead of N tensor copies).

    Validation batches are ``(faces, labels)``. Training batches (``targets`` given: one row of class probabilities
    per image, one-hot or soft) are ``(faces, labels, targets, indices)``; the indices into the split let the training
    step keep per-image state across epochs (``train.self_distill``).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, targets: np.ndarray | None = None) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.targets = None if targets is None else torch.from_numpy(np.asarray(targets, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        batch = (self.images[idx].unsqueeze(1), self.labels[idx])
        return batch if self.targets is None else (*batch, self.targets[idx], idx)


def _as_batch(batch: Any) -> Any:
    return batch


class ImageSetDataModule(L.LightningDataModule):
    def __init__(
        self,
        train: ImageSet,
        val: ImageSet | None,
        *,
        batch_size: int,
        sampler: str = "random",
        soft_labels: bool = False,
        eval_batch_size: int = 512,
    ) -> None:
        super().__init__()
        self.train_set, self.val_set = train, val
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.sampler = sampler
        self.soft_labels = soft_labels
        if sampler not in ("random", "balanced"):
            raise ValueError(f"unknown sampler {sampler!r} (random, balanced)")

    def _training_split(self) -> TensorSplit:
        data = self.train_set
        targets = data.soft_labels if self.soft_labels else None
        if self.soft_labels and targets is None:
            raise ValueError("soft_labels needs FER+ vote targets (data.labels: ferplus)")
        if targets is None:
            targets = np.eye(len(data.class_names), dtype=np.float32)[data.labels]
        return TensorSplit(data.images, data.labels, targets)

    def train_dataloader(self) -> DataLoader:
        split = self._training_split()
        if self.sampler == "balanced":
            counts = np.bincount(self.train_set.labels, minlength=len(self.train_set.class_names))
            weights = 1.0 / np.maximum(counts[self.train_set.labels], 1)
            sampler = WeightedRandomSampler(torch.as_tensor(weights), num_samples=len(split), replacement=True)
            return DataLoader(split, batch_size=self.batch_size, sampler=sampler, collate_fn=_as_batch, drop_last=True)
        return DataLoader(split, batch_size=self.batch_size, shuffle=True, collate_fn=_as_batch, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            return []  # type: ignore[return-value]
        split = TensorSplit(self.val_set.images, self.val_set.labels)  # validation scores the hard labels
        return DataLoader(split, batch_size=self.eval_batch_size, collate_fn=_as_batch)
