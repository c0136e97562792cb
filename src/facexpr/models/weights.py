"""Saving and loading weights: our safetensors files, and the checkpoint formats found in the wild.

Loading never unpickles arbitrary objects (safetensors, or ``torch.load(weights_only=True)``) and
never loads partially: a mismatch raises :class:`WeightsMismatchError` naming the first offending keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as serialize_tensors

from facexpr.config import ModelConfig
from facexpr.files import atomic_write
from facexpr.labels import FER2013_CLASSES, OFFICIAL_RESEMOTENET_ORDER, permutation
from facexpr.models.classifier import ExpressionClassifier, ensemble_members
from facexpr.models.registry import MODEL_CONFIGS, get_config

# Models shipped inside the package: name -> file in facexpr/weights/.
PRETRAINED: dict[str, str] = {"fer2013": "fer2013.safetensors", "ferplus": "ferplus.safetensors"}
DEFAULT_MODEL = "fer2013"


class WeightsError(ValueError):
    pass


class WeightsMismatchError(WeightsError):
    pass


def save_weights(model: ExpressionClassifier, path: str | os.PathLike, *, half: bool = False) -> Path:
    """Write ``model.net`` weights and its config to a safetensors file (atomically)."""
    path = Path(path)
    tensors = {}
    for key, value in model.net.state_dict().items():
        value = value.detach().cpu().contiguous()
        if half and value.is_floating_point():
            value = value.half()
        tensors[key] = value
    # serialised here and written with open() so the file gets the usual umask permissions (safetensors'
    # save_file creates it readable by its owner only, and installed copies would keep that mode)
    with atomic_write(path) as handle:
        handle.write(serialize_tensors(tensors, metadata={"facexpr_config": model.config.to_json(), "format": "pt"}))
    return path


def read_config(path: str | os.PathLike) -> ModelConfig:
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "facexpr_config" not in metadata:
        raise WeightsError(f"{path}: safetensors file has no facexpr_config metadata; pass config=")
    return ModelConfig.from_json(metadata["facexpr_config"])


def _extract_state_dict(checkpoint: Any, path: Path) -> tuple[dict[str, torch.Tensor], str, dict | None]:
    """Return (state dict with official key names, format name, our config dict if present)."""
    if not isinstance(checkpoint, Mapping):
        raise WeightsError(f"{path}: expected a state dict or a checkpoint dict, got {type(checkpoint).__name__}")
    if "model_state_dict" in checkpoint:
        return dict(checkpoint["model_state_dict"]), "official", None
    if "state_dict" in checkpoint and isinstance(checkpoint["state_dict"], Mapping):
        state = checkpoint["state_dict"]
        hparams = checkpoint.get("hyper_parameters") or {}
        config = hparams.get("model_config") if isinstance(hparams, Mapping) else None
        for prefix in ("model.net.", "model."):
            if any(k.startswith(prefix) for k in state):
                stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
                return stripped, ("facexpr-lightning" if config else "lightning"), config
        return dict(state), "lightning", config
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return dict(checkpoint), "raw", None
    raise WeightsError(f"{path}: no state dict found (keys: {sorted(checkpoint)[:5]})")


def _infer_config(state: Mapping[str, torch.Tensor], path: Path) -> ModelConfig:
    """Describe a foreign ResEmoteNet checkpoint from its tensor shapes."""
    try:
        in_chans = state["conv1.weight"].shape[1]
        width = state["conv1.weight"].shape[0] / 64
        num_classes = state["fc4.weight"].shape[0]
    except KeyError as exc:
        raise WeightsMismatchError(f"{path}: not a ResEmoteNet checkpoint (missing {exc.args[0]!r})") from None
    if in_chans == 3:
        base = MODEL_CONFIGS["resemotenet"]
    else:
        base = MODEL_CONFIGS["resemotenet_w025_g48"]
    names = FER2013_CLASSES if num_classes == 7 else tuple(f"class_{i}" for i in range(num_classes))
    return base.replace(name=path.stem, width=width, class_names=names, meta={"source": str(path)})


def load_state_strict(model: ExpressionClassifier, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load every tensor or fail, naming the first mismatching keys and shapes."""
    expected = model.net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if wrong:
        problems.append(f"shape mismatch {wrong[:3]}{' ...' if len(wrong) > 3 else ''}")
    if problems:
        raise WeightsMismatchError(f"{source}: checkpoint does not fit {model.config.name}: " + "; ".join(problems))
    model.net.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def _reorder_classes(
    state: dict[str, torch.Tensor], source: tuple[str, ...], target: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    order = permutation(source, target)
    state = dict(state)
    state["fc4.weight"] = state["fc4.weight"][order]
    state["fc4.bias"] = state["fc4.bias"][order]
    return state


def load_weights_file(
    path: str | os.PathLike,
    config: ModelConfig | str | None = None,
    *,
    class_names: tuple[str, ...] | None = None,
) -> ExpressionClassifier:
    """Load a .safetensors file (ours) or a .pt/.pth/.ckpt checkpoint (official, raw, Lightning).

    ``class_names`` is the output order of a foreign checkpoint (default: the official ResEmoteNet
    order for 7-class checkpoints); the model is re-ordered to the canonical facexpr order when the
    class sets match.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    if isinstance(config, str):
        config = get_config(config)
    if path.suffix == ".safetensors":
        stored = read_config(path) if config is None else config
        with safe_open(str(path), framework="pt") as handle:
            state = {k: handle.get_tensor(k) for k in handle.keys()}
        model = ExpressionClassifier(stored)
        load_state_strict(model, state, str(path))
        return model.eval()
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors come in many types
        raise WeightsError(f"{path}: cannot load safely with weights_only=True ({exc.__class__.__name__})") from None
    state, fmt, stored = _extract_state_dict(checkpoint, path)
    if config is None and stored is not None:
        config = ModelConfig.from_dict(stored)
    if config is None:
        config = _infer_config(state, path)
    if class_names is not None:
        source = tuple(class_names)
    elif fmt == "facexpr-lightning" or config.num_classes != len(OFFICIAL_RESEMOTENET_ORDER):
        source = config.class_names
    else:
        source = OFFICIAL_RESEMOTENET_ORDER  # foreign 7-class ResEmoteNet weights use the official order
    outputs = state["fc4.weight"].shape[0] if "fc4.weight" in state else None
    if source != config.class_names and outputs == len(source):
        if sorted(source) == sorted(config.class_names):
            state = _reorder_classes(state, source, config.class_names)
        else:
            config = config.replace(class_names=source)
    model = ExpressionClassifier(config)
    load_state_strict(model, state, str(path))
    return model.eval()


def pretrained_path(name: str) -> Path:
    if name not in PRETRAINED:
        raise KeyError(f"unknown pretrained model {name!r}; shipped: {', '.join(PRETRAINED)}")
    ref = resources.files("facexpr") / "weights" / PRETRAINED[name]
    path = Path(str(ref))
    if not path.is_file():
        raise FileNotFoundError(f"pretrained model {name!r} is not installed (expected {path})")
    return path


def load_model(
    name_or_path: str | os.PathLike | None = None,
    *,
    config: ModelConfig | str | None = None,
    class_names: tuple[str, ...] | None = None,
) -> ExpressionClassifier:
    """Load the shipped default model, a shipped model by name, or a weights file by path.

    A registered config name (``resemotenet_w025_g48``...) gives randomly initialised weights.
    """
    name = DEFAULT_MODEL if name_or_path is None else name_or_path
    if isinstance(name, str) and name in PRETRAINED:
        return load_weights_file(pretrained_path(name))
    if isinstance(name, str) and name in MODEL_CONFIGS and not Path(name).exists():
        return ExpressionClassifier(get_config(name)).eval()
    return load_weights_file(name, config, class_names=class_names)


def describe(model: ExpressionClassifier) -> dict[str, Any]:
    return {
        "config": model.config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def load_networks(
    sources: Sequence[str | os.PathLike], only: str | Sequence[int] | None = None
) -> list[tuple[str, ExpressionClassifier]]:
    """The single networks in ``sources`` (files or shipped names), an ensemble split into its members.

    Each comes with a label (``path``, or ``path[i]`` for member i of an ensemble); ``only`` (indices into that
    list, or the same as comma-separated text such as ``"2,0"``) keeps those networks, in that order.
    """
    networks: list[tuple[str, ExpressionClassifier]] = []
    for source in sources:
        members = ensemble_members(load_model(source))
        labels = [str(source)] if len(members) == 1 else [f"{source}[{i}]" for i in range(len(members))]
        networks += zip(labels, members, strict=True)
    if only is None:
        return networks
    text = only if isinstance(only, str) else ",".join(map(str, only))
    try:
        keep = [int(i) for i in text.split(",")]
    except ValueError:
        keep = []
    if not keep or any(not 0 <= i < len(networks) for i in keep):
        raise ValueError(f"only={text}: give indices from 0 to {len(networks) - 1}")
    return [networks[i] for i in keep]


__all__ = [
    "DEFAULT_MODEL",
    "PRETRAINED",
    "WeightsError",
    "WeightsMismatchError",
    "describe",
    "load_model",
    "load_networks",
    "load_weights_file",
    "read_config",
    "save_weights",
]
