"""Deterministic evaluation of a model on a labelled image set, with optional test-time augmentation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facexpr.data.audit import pixel_hashes
from facexpr.data.datasets import SPLIT_ALIASES, ImageSet, is_class_folder_root, load_split
from facexpr.evaluation.metrics import accuracy_interval, classification_metrics
from facexpr.models import ExpressionClassifier, load_model
from facexpr.models.weights import describe


@torch.inference_mode()
def predict_proba(
    model: ExpressionClassifier, images: np.ndarray, *, tta: str | None = None, batch_size: int = 256
) -> np.ndarray:
    """N x S x S prepared faces -> N x C softmax probabilities (averaged over the model's TTA views)."""
    model = model.with_tta(tta)
    if batch_size < 1:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = np.zeros((len(images), model.config.num_classes), dtype=np.float32)
    try:
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
            probs = model(batch.unsqueeze(1)).float().softmax(dim=1)
            out[start : start + len(batch)] = probs.cpu().numpy()
    finally:
        model.train(was_training)
    return out


def _labels_in_model_order(images: ImageSet, model_classes: tuple[str, ...]) -> np.ndarray:
    if tuple(images.class_names) == tuple(model_classes):
        return images.labels
    if sorted(images.class_names) != sorted(model_classes):
        raise ValueError(
            f"data classes {list(images.class_names)} do not match the model classes {list(model_classes)}"
        )
    index = {name: model_classes.index(name) for name in images.class_names}
    return np.array([index[images.class_names[label]] for label in images.labels], dtype=np.int64)


def evaluate(
    model: ExpressionClassifier, images: ImageSet, tta: str | None = None, batch_size: int = 256
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows = true class)."""
    model = model.with_tta(tta)
    labels = _labels_in_model_order(images, model.class_names)
    probs = predict_proba(model, images.images, batch_size=batch_size)
    result = classification_metrics(labels, probs.argmax(axis=1), model.class_names)
    result["tta"] = model.config.tta
    return result


def _split_argument(data_dir: Path, split: str | None) -> str | None:
    """``split``, or None when ``data_dir`` is itself a split folder (holds class folders, no split folders)."""
    if split is None or data_dir.suffix == ".csv" or not data_dir.is_dir():
        return split
    if any((data_dir / name).is_dir() for names in SPLIT_ALIASES.values() for name in names):
        return split
    return None if is_class_folder_root(data_dir) else split


def evaluate_dir(
    data_dir: str | os.PathLike,
    model: ExpressionClassifier | str | os.PathLike | None = None,
    *,
    split: str | None = "val",
    tta: str | None = None,
    labels: str = "folder",
    batch_size: int = 256,
    exclude_duplicates_of: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Evaluate on a data directory (or fer2013.csv / FER+ votes), decoded with the model's own input size.

    With ``exclude_duplicates_of`` (a training data dir), the report also holds ``leakage_free``: the same
    metrics on the images whose pixels (after the shared preprocessing at the model's input size) are not
    identical to any training image.
    """
    if not isinstance(model, ExpressionClassifier):
        model = load_model(model)
    model = model.with_tta(tta)
    config = model.config
    data_dir = Path(data_dir)
    split = _split_argument(data_dir, split)
    class_names = config.class_names if labels == "folder" else None
    images = load_split(data_dir, split, config.input_size, labels=labels, class_names=class_names)
    if len(images) == 0:
        raise ValueError(f"{data_dir}: no readable images in split {split!r}")
    labels_model = _labels_in_model_order(images, config.class_names)
    probs = predict_proba(model, images.images, batch_size=batch_size)
    predictions = probs.argmax(axis=1)

    report: dict[str, Any] = classification_metrics(labels_model, predictions, config.class_names)
    report.update(
        accuracy_ci95=accuracy_interval(labels_model, predictions),
        model=config.name,
        model_config=config.to_dict(),
        parameters=describe(model)["parameters"],
        data_dir=str(data_dir),
        split=split,
        labels=labels,
        tta=config.tta,
        unreadable={
            "count": len(images.errors),
            "files": [name for name, _ in images.errors],
            "problems": [problem for _, problem in images.errors],
        },
    )
    if exclude_duplicates_of is not None:
        train_dir = Path(exclude_duplicates_of)
        train = load_split(train_dir, _split_argument(train_dir, "train"), config.input_size)
        train_hashes = set(pixel_hashes(train.images))
        leaked = np.array([h in train_hashes for h in pixel_hashes(images.images)], dtype=bool)
        clean = classification_metrics(labels_model[~leaked], predictions[~leaked], config.class_names)
        clean.update(
            accuracy_ci95=accuracy_interval(labels_model[~leaked], predictions[~leaked]),
            n_excluded=int(leaked.sum()),
            excluded_files=[path for path, is_leaked in zip(images.paths, leaked, strict=True) if is_leaked],
            reference_dir=str(train_dir),
            reference_images=len(train),
        )
        report["leakage_free"] = clean
    return report
