"""Classification metrics from integer labels: confusion matrix, accuracy, per-class and macro F1, and bootstrap
confidence intervals for accuracy and for the accuracy difference of two models on the same images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """C x C counts; rows are the true class, columns the predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"labels and predictions differ in shape: {y_true.shape} vs {y_pred.shape}")
    for name, values in (("label", y_true), ("prediction", y_pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} outside 0..{num_classes - 1}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = numerator.astype(np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def metrics_from_confusion(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy over all images, macro-F1 and per-class precision/recall/F1/support.

    A class never predicted has precision 0. Macro-F1 averages over the classes that occur in the labels
    or the predictions (scikit-learn's default), so an absent class that is never predicted does not count.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    if matrix.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix {matrix.shape} does not fit {len(class_names)} classes")
    true_positive = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _safe_divide(true_positive, predicted)
    recall = _safe_divide(true_positive, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    total = int(matrix.sum())
    present = (support > 0) | (predicted > 0)
    return {
        "accuracy": float(true_positive.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
        "n_images": total,
    }


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    return metrics_from_confusion(confusion_matrix(y_true, y_pred, len(class_names)), class_names)


def accuracy_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_pred_other: np.ndarray | None = None,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the accuracy of ``y_pred``, or, with ``y_pred_other``, of the paired
    difference accuracy(y_pred) - accuracy(y_pred_other) over the same resampled images.

    The paired interval is the one to read when two models are compared on one split: both are scored on the same
    faces, so it is far narrower than the two single intervals suggest. Seeded, so a report is reproducible.
    """
    y_true = np.asarray(y_true)
    if y_true.size == 0:
        raise ValueError("no images to resample")
    scores = (np.asarray(y_pred) == y_true).astype(np.float64)
    if y_pred_other is not None:
        scores -= np.asarray(y_pred_other) == y_true
    rng = np.random.default_rng(seed)
    means = np.concatenate(
        [
            scores[rng.integers(0, scores.size, size=(min(250, resamples - start), scores.size))].mean(axis=1)
            for start in range(0, resamples, 250)
        ]
    )
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
