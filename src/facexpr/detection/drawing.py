"""Draw face results on a frame: box, label with probability, per-class probability bars, FPS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

# BGR colour per expression (unknown classes get gray).
COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 60),
    "fear": (160, 60, 160),
    "happy": (40, 200, 240),
    "neutral": (200, 200, 200),
    "sad": (200, 120, 40),
    "surprise": (40, 160, 250),
    "contempt": (120, 120, 60),
}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float, color: tuple[int, int, int]) -> None:
    thickness = max(1, int(round(scale * 2)))
    cv2.putText(image, text, origin, _FONT, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(image, text, origin, _FONT, scale, color, thickness, cv2.LINE_AA)


def _bars(image: np.ndarray, scores: dict[str, float], x: int, y: int, scale: float) -> None:
    row = max(10, int(16 * scale * 2))
    width = int(70 * scale * 2)
    height, img_w = image.shape[:2]
    label_w = int(62 * scale * 2)
    if x + label_w + width > img_w:
        x = max(0, img_w - label_w - width)
    for i, (name, prob) in enumerate(scores.items()):
        top = y + i * row
        if top + row > height:
            break
        color = COLORS.get(name, (180, 180, 180))
        _text(image, name[:8], (x, top + row - 3), scale * 0.8, (255, 255, 255))
        cv2.rectangle(image, (x + label_w, top + 2), (x + label_w + width, top + row - 2), (60, 60, 60), -1)
        cv2.rectangle(image, (x + label_w, top + 2), (x + label_w + int(width * prob), top + row - 2), color, -1)


def draw_results(
    image: np.ndarray,
    faces: Sequence[dict[str, Any]],
    *,
    bars: bool = True,
    fps: float | None = None,
    copy: bool = True,
) -> np.ndarray:
    """Annotate ``image`` (BGR) with face records as returned by ``Detector.predict_image``."""
    canvas = image.copy() if copy else image
    height, width = canvas.shape[:2]
    scale = max(0.35, min(1.2, width / 1600))
    for face in faces:
        x, y, w, h = face["box"]
        color = COLORS.get(face["label"], (180, 180, 180))
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, max(1, int(round(scale * 4))))
        caption = f"{face['label']} {face['score']:.0%}"
        if "track_id" in face:
            caption = f"#{face['track_id']} {caption}"
        _text(canvas, caption, (x, max(12, y - 6)), scale, color)
        if bars and face.get("scores"):
            _bars(canvas, face["scores"], x + w + 4, y, scale)
    if fps is not None:
        _text(canvas, f"{fps:.1f} FPS", (8, int(30 * scale * 2)), scale, (255, 255, 255))
    return canvas
