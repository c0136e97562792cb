"""Lightning data module over in-memory uint8 arrays: batches are gathered by index, not per sample."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from facexpr.data.datasets import ImageSet


class TensorSplit(Dataset):
    """Returns whole batches through ``__getitems__`` (one gather instead of N tensor copies)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, soft: np.ndarray | None = None) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.soft = None if soft is None else torch.from_numpy(np.asarray(soft, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        batch = (self.images[idx].unsqueeze(1), self.labels[idx])
        return batch if self.soft is None else (*batch, self.soft[idx])


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

    def _split(self, data: ImageSet, *, soft_labels: bool) -> TensorSplit:
        soft = data.soft_labels if soft_labels else None
        if soft_labels and soft is None:
            raise ValueError("soft_labels needs FER+ vote targets (data.labels: ferplus)")
        return TensorSplit(data.images, data.labels, soft)

    def train_dataloader(self) -> DataLoader:
        split = self._split(self.train_set, soft_labels=self.soft_labels)
        if self.sampler == "balanced":
            counts = np.bincount(self.train_set.labels, minlength=len(self.train_set.class_names))
            weights = 1.0 / np.maximum(counts[self.train_set.labels], 1)
            sampler = WeightedRandomSampler(torch.as_tensor(weights), num_samples=len(split), replacement=True)
            return DataLoader(split, batch_size=self.batch_size, sampler=sampler, collate_fn=_as_batch, drop_last=True)
        return DataLoader(split, batch_size=self.batch_size, shuffle=True, collate_fn=_as_batch, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            return []  # type: ignore[return-value]
        split = self._split(self.val_set, soft_labels=False)  # validation scores the hard labels
        return DataLoader(split, batch_size=self.eval_batch_size, collate_fn=_as_batch)
