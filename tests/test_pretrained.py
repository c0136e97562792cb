"""The shipped model: loads offline with no argument, its config round-trips, and it recognises real faces."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from facexpr.config import ModelConfig
from facexpr.data.datasets import load_split
from facexpr.evaluation.evaluate import predict_proba
from facexpr.models import load_model, read_config
from facexpr.models.weights import DEFAULT_MODEL, PRETRAINED, pretrained_path


def _shipped(name: str) -> Path:
    try:
        return pretrained_path(name)
    except FileNotFoundError:
        if name == DEFAULT_MODEL:
            raise  # the default model must ship with the package
        pytest.skip(f"{name} is not shipped")


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_shipped_weights_are_safetensors_with_a_round_tripping_config(name: str) -> None:
    path = _shipped(name)
    assert path.suffix == ".safetensors"
    assert path.stat().st_size <= 25 * 1024 * 1024
    config = read_config(path)
    assert ModelConfig.from_json(config.to_json()) == config
    assert config.meta["val_split"] == "val" and 0 < config.meta["val_accuracy"] <= 1
    assert set(config.meta["val_recall"]) == set(config.class_names)


def test_load_model_without_argument_is_the_shipped_default() -> None:
    model = load_model()
    assert model.config == read_config(_shipped(DEFAULT_MODEL))
    assert not model.training


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_shipped_model_classifies_committed_val_faces_as_well_as_its_card_implies(name: str, faces_dir: Path) -> None:
    path = _shipped(name)
    model = load_model(path)
    meta = model.config.meta
    if tuple(model.class_names) != tuple(sorted(model.class_names)) or len(model.class_names) != 7:
        pytest.skip("the committed fixture faces carry FER2013 folder labels")
    faces = load_split(faces_dir, "val", model.config.input_size, class_names=model.class_names, use_cache=False)
    assert model.config.tta == meta["val_tta"]  # the card's figures were measured the way predict runs
    probs = predict_proba(model, faces.images)
    accuracy = float((probs.argmax(1) == faces.labels).mean())
    # What the stored per-class validation recall implies for exactly these faces, and its sampling spread.
    recalls = np.array([meta["val_recall"][faces.class_names[label]] for label in faces.labels])
    implied = float(recalls.mean())
    spread = math.sqrt(float((recalls * (1 - recalls)).sum())) / len(recalls)
    assert accuracy >= implied - 2 * spread, (accuracy, implied, spread)
    assert accuracy > 1.5 / len(model.class_names)  # far above chance
