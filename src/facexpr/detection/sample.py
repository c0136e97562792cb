"""The bundled sample media (real FER2013 faces composed into a still and a short clip)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SAMPLE_FILES = ("sample_faces.jpg", "sample_clip.mp4")


def sample_paths() -> list[Path]:
    """Paths of the bundled sample image and video (made by scripts/make_sample_assets.py)."""
    base = Path(str(resources.files("facexpr") / "assets"))
    paths = [base / name for name in SAMPLE_FILES]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"bundled sample missing: {missing[0]} (run scripts/make_sample_assets.py)")
    return paths
