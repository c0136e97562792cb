"""Offline knowledge distillation: trained teachers' probabilities on the training faces, mixed into the targets.

The teachers run once, before training, on the prepared (un-augmented) training faces with their own test-time
augmentation; each epoch's augmented views of a face are then trained towards that face's mixed target. This
costs one inference pass over the training set instead of a teacher forward pass at every step.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facexpr.data.datasets import ImageSet
from facexpr.evaluation.evaluate import predict_proba
from facexpr.files import atomic_write
from facexpr.models import load_networks

log = logging.getLogger(__name__)

TEACHER_PROBABILITIES_FILE = "teacher_probabilities.npy"  # in the run folder


def teacher_probabilities(
    sources: Sequence[str | os.PathLike],
    data: ImageSet,
    input_size: int,
    cache: str | os.PathLike | None = None,
    reuse: bool = False,
) -> np.ndarray:
    """N x C mean probabilities of the networks in ``sources`` (ensembles split) over ``data``'s faces and classes.

    They are written to ``cache`` (the run's file); with ``reuse`` (a resumed run) that file is read instead of
    running the teachers again. A fresh start never reuses it: an old folder may hold other teachers' answers.
    """
    if reuse and cache is not None and Path(cache).is_file():
        stored = np.load(cache)
        if stored.shape == (len(data), len(data.class_names)):
            log.info("teacher probabilities from %s", cache)
            return stored
        log.warning(
            "%s holds %s probabilities, not %d x %d: computing them again",
            cache,
            stored.shape,
            len(data),
            len(data.class_names),
        )
    probabilities = _mean_probabilities(sources, data, input_size)
    if cache is not None:
        with atomic_write(cache) as handle:
            np.save(handle, probabilities)
    return probabilities


def _mean_probabilities(sources: Sequence[str | os.PathLike], data: ImageSet, input_size: int) -> np.ndarray:
    networks = load_networks(sources)
    total = np.zeros((len(data), len(data.class_names)), dtype=np.float64)
    for label, model in networks:
        config = model.config
        if config.input_size != input_size:
            raise ValueError(f"{label}: teacher input size {config.input_size} differs from the student's {input_size}")
        if sorted(config.class_names) != sorted(data.class_names):
            raise ValueError(
                f"{label}: teacher classes {list(config.class_names)} differ from the data's {list(data.class_names)}"
            )
        order = [config.class_names.index(name) for name in data.class_names]
        probabilities = predict_proba(model, data.images)[:, order]
        agreement = float((probabilities.argmax(1) == data.labels).mean())
        log.info("teacher %s agrees with %.1f %% of the training labels", label, 100 * agreement)
        total += probabilities
    return (total / len(networks)).astype(np.float32)


def mix_teacher_predictions(data: ImageSet, probabilities: np.ndarray, weight: float) -> ImageSet:
    """``data`` with targets (1 - weight) x its own (soft if it has them, else one-hot) + weight x the teachers'."""
    if not 0.0 < weight <= 1.0:
        raise ValueError(f"teacher weight must be in (0, 1], got {weight}")
    if probabilities.shape != (len(data), len(data.class_names)):
        raise ValueError(f"teacher probabilities of shape {probabilities.shape} do not fit {len(data)} faces")
    own = data.soft_labels if data.soft_labels is not None else np.eye(len(data.class_names))[data.labels]
    targets = ((1.0 - weight) * own + weight * probabilities).astype(np.float32)
    return ImageSet(data.images, data.labels, data.class_names, data.paths, targets, list(data.errors))
