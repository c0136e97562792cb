"""Helpers shared by the detection tests (not a test module)."""

from __future__ import annotations

import shutil
from pathlib import Path

from facexpr import create_model, save_weights
from facexpr.detection.model_files import YUNET_FILE, model_cache_dir


def seed_yunet_cache(shared_dir: Path) -> Path:
    """Copy ../shared/models' YuNet into the (per-session) download cache, as a first run's download would."""
    target = model_cache_dir() / YUNET_FILE
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_dir / "models" / YUNET_FILE, target)
    return target


def tiny_weights(folder: Path) -> str:
    """A random-weight tiny model saved as a weights file (until the shipped model exists)."""
    return str(save_weights(create_model("resemotenet_w0125_g48"), folder / "tiny.safetensors"))
