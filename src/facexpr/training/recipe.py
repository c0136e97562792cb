"""Experiment recipes: a YAML file per experiment, with ``section.key=value`` overrides from the CLI."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from facexpr.config import ModelConfig
from facexpr.models.registry import get_config

DEFAULT_RECIPE: dict[str, Any] = {
    "name": "experiment",
    "model": "resemotenet_w025_g48",
    # Fields of the registered model config to replace, e.g. {head_dropout: 0.1}; saved with the weights.
    "model_args": {},
    "data": {
        "root": "../shared/datasets/fer2013",
        "train_split": "train",
        "val_split": "val",
        "labels": "folder",  # folder | ferplus (FER+ majority votes, 8 classes)
        "soft_labels": False,  # FER+ only: train on the vote distribution
        # folder labels: mix the FER+ crowd's vote distribution (root/ferplus_votes.csv) into each training target
        "ferplus_votes_weight": 0.0,
        # Offline distillation: weight files or shipped model names whose mean probabilities on each training face
        # are mixed into its target with teacher_weight (facexpr.training.distill); both or neither.
        "teacher": [],
        "teacher_weight": 0.0,
    },
    "train": {
        "epochs": 30,
        "batch_size": 64,
        "optimizer": "sgd",  # sgd | adamw
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "nesterov": False,
        "schedule": "cosine",  # none | cosine | onecycle | step | plateau
        "warmup_epochs": 0,
        "step_size": 10,
        "gamma": 0.1,
        "label_smoothing": 0.0,
        "mixup": 0.0,  # Beta(alpha, alpha); 0 disables
        # Per-step exponential moving average of the weights (e.g. 0.999): validated, checkpointed and saved in
        # place of the raw weights; 0 disables.
        "ema_decay": 0.0,
        # Progressive self-knowledge distillation (PS-KD, Kim et al., ICCV 2021): each training target becomes
        # (1 - a) x its label + a x the network's own softmax for that image at its previous epoch, with a ramping
        # linearly from 0 at the first epoch to this value at the last; 0 disables. Single process only.
        "self_distill": 0.0,
        "class_weighting": "none",  # none | balanced (loss weights)
        "sampler": "random",  # random | balanced
        "patience": 0,  # early stopping on val accuracy; 0 disables
        "precision": "32-true",  # 32-true | bf16-mixed | 16-mixed | auto (bf16 where the hardware has it)
        "seed": 0,
        "ckpt_every_n_steps": 200,
        "val_tta": "none",
    },
    "augment": {
        "hflip": 0.5,
        "rotate": 10.0,
        "scale": [0.9, 1.1],
        "translate": 0.1,
        "brightness": 0.2,
        "contrast": 0.2,
        "erase": 0.0,
        "erase_area": [0.02, 0.2],
    },
}


class RecipeError(ValueError):
    pass


# Sections whose keys are not fixed by DEFAULT_RECIPE (they are checked where they are used).
_FREE_FORM = {"model_args."}


def _merge(base: dict[str, Any], update: dict[str, Any], where: str = "") -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        path = f"{where}{key}"
        if key not in merged and where not in _FREE_FORM:
            raise RecipeError(f"unknown recipe key {path!r}")
        if isinstance(merged.get(key), dict):
            if not isinstance(value, dict):
                raise RecipeError(f"recipe key {path!r} must be a mapping")
            merged[key] = _merge(merged[key], value, path + ".")
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> dict[str, Any]:
    """``train.lr=0.01`` -> ``{"train": {"lr": 0.01}}`` (the value is parsed as YAML)."""
    if "=" not in text:
        raise RecipeError(f"override {text!r} is not KEY=VALUE")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw else ""
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_recipe(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Defaults, then the recipe file (and the ``base:`` recipes it extends), then ``section.key=value`` overrides."""
    recipe = copy.deepcopy(DEFAULT_RECIPE) if path is None else _read_recipe(path, ())
    for override in overrides:
        recipe = _merge(recipe, parse_override(override))
    return recipe


def _find_recipe(path: str | os.PathLike, relative_to: Path | None = None) -> Path:
    path = Path(path)
    candidates = [path, recipes_dir() / f"{path}.yaml"]
    if relative_to is not None:
        candidates.insert(0, relative_to / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise RecipeError(f"{path}: recipe file not found")


def _read_recipe(path: str | os.PathLike, chain: tuple[Path, ...], relative_to: Path | None = None) -> dict[str, Any]:
    path = _find_recipe(path, relative_to)
    if path.resolve() in chain:
        raise RecipeError(f"{path}: recipe extends itself (base: chain {' -> '.join(p.stem for p in chain)})")
    with open(path) as handle:
        content = yaml.safe_load(handle) or {}
    if not isinstance(content, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping")
    base = content.pop("base", None)
    if base is None:
        recipe = copy.deepcopy(DEFAULT_RECIPE)
    else:
        # A recipe that extends another lists only what it changes; the run's recipe.yaml holds the result.
        recipe = _read_recipe(str(base), (*chain, path.resolve()), path.parent)
    recipe = _merge(recipe, content)
    recipe["name"] = content.get("name", path.stem)
    return recipe


# tta is set by train.val_tta during training and by scripts/package_model.py for shipping; ensembles are
# assembled from trained models (scripts/make_ensemble.py), not trained as one.
_FIXED_MODEL_FIELDS = {"name", "arch", "class_names", "meta", "tta", "members"}


def model_config_for(recipe: dict[str, Any]) -> ModelConfig:
    """The registered config named by ``recipe["model"]`` with ``recipe["model_args"]`` applied."""
    args = dict(recipe.get("model_args") or {})
    allowed = set(ModelConfig.__dataclass_fields__) - _FIXED_MODEL_FIELDS
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise RecipeError(f"unknown model_args {unknown}; allowed: {', '.join(sorted(allowed))}")
    try:
        return get_config(recipe["model"], **args)
    except KeyError as exc:
        raise RecipeError(str(exc.args[0])) from None


def recipes_dir() -> Path:
    """The repository's ``recipes/`` folder (recipes may also be given by path)."""
    return Path(os.environ.get("FACEXPR_RECIPES", Path(__file__).resolve().parents[3] / "recipes"))


def dump_recipe(recipe: dict[str, Any], path: str | os.PathLike) -> None:
    with open(path, "w") as handle:
        yaml.safe_dump(recipe, handle, sort_keys=False)
