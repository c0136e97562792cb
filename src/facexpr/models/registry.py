"""Named model configurations (``timm``-style registry) and model construction."""

from __future__ import annotations

from facexpr.config import ModelConfig
from facexpr.labels import FER2013_CLASSES, FERPLUS_CLASSES

_GRAY = {"in_chans": 1, "mean": (0.5,), "std": (0.25,)}

MODEL_CONFIGS: dict[str, ModelConfig] = {
    cfg.name: cfg
    for cfg in (
        # The paper's network: 3x64x64 input (gray replicated), 80,238,599 parameters.
        ModelConfig(name="resemotenet", width=1.0, in_chans=3, input_size=64),
        # Smaller variants that train on a laptop CPU, on FER2013's native 48x48 grayscale.
        ModelConfig(name="resemotenet_w050_g48", width=0.5, input_size=48, **_GRAY),
        ModelConfig(name="resemotenet_w025_g48", width=0.25, input_size=48, **_GRAY),
        ModelConfig(name="resemotenet_w025_g64", width=0.25, input_size=64, **_GRAY),
        ModelConfig(name="resemotenet_w0125_g48", width=0.125, input_size=48, **_GRAY),
        ModelConfig(
            name="resemotenet_w025_g48_ferplus", width=0.25, input_size=48, class_names=FERPLUS_CLASSES, **_GRAY
        ),
    )
}


def list_models() -> list[str]:
    return sorted(MODEL_CONFIGS)


def get_config(name: str, **overrides: object) -> ModelConfig:
    """A registered configuration, optionally with fields replaced (e.g. ``class_names``)."""
    try:
        config = MODEL_CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown model config {name!r}; registered: {', '.join(list_models())}") from None
    for key in ("mean", "std", "class_names"):
        if key in overrides:
            overrides[key] = tuple(overrides[key])  # type: ignore[arg-type]
    return config.replace(**overrides) if overrides else config


__all__ = ["MODEL_CONFIGS", "FER2013_CLASSES", "get_config", "list_models"]
