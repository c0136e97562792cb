from facexpr.models.classifier import ExpressionClassifier, build_network, ensemble_members, make_ensemble
from facexpr.models.registry import MODEL_CONFIGS, get_config, list_models
from facexpr.models.resemotenet import ResEmoteNet
from facexpr.models.weights import (
    DEFAULT_MODEL,
    PRETRAINED,
    WeightsError,
    WeightsMismatchError,
    load_model,
    load_networks,
    load_weights_file,
    read_config,
    save_weights,
)


def create_model(name: str, **overrides: object) -> ExpressionClassifier:
    """A randomly initialised model from a registered config name."""
    return ExpressionClassifier(get_config(name, **overrides))


__all__ = [
    "DEFAULT_MODEL",
    "MODEL_CONFIGS",
    "PRETRAINED",
    "ExpressionClassifier",
    "ResEmoteNet",
    "WeightsError",
    "WeightsMismatchError",
    "build_network",
    "create_model",
    "get_config",
    "list_models",
    "load_model",
    "load_networks",
    "load_weights_file",
    "ensemble_members",
    "make_ensemble",
    "read_config",
    "save_weights",
]
