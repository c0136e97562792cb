"""facexpr: face expression recognition with ResEmoteNet."""

from __future__ import annotations

__version__ = "0.1.0"

from facexpr.config import ModelConfig  # noqa: E402
from facexpr.detection import Detector, classify  # noqa: E402
from facexpr.labels import FER2013_CLASSES, FERPLUS_CLASSES  # noqa: E402
from facexpr.models import create_model, list_models, load_model, save_weights  # noqa: E402

__all__ = [
    "FER2013_CLASSES",
    "FERPLUS_CLASSES",
    "Detector",
    "ModelConfig",
    "__version__",
    "classify",
    "create_model",
    "list_models",
    "load_model",
    "save_weights",
]
