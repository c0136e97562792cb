"""Detector boxes -> face crops that look like the training data (FER2013: tight, square, gray faces)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facexpr.config import ModelConfig
from facexpr.preprocessing import prepare_faces, to_gray

# Square side = FACE_SCALE * max(box w, box h), centre moved down by FACE_SHIFT * side (negative: up).
# Tuned with scripts/tune_face_margin.py: 300 FER2013 val faces pasted (96-200 px) into 640x480 scenes, found
# by YuNet, cropped and compared with the original 48x48 face (mean pixel correlation). Best on a blurred-photo
# background: 0.95/-0.0125 (0.528; bare box 1.0/0: 0.507); on a plain background: 1.0/-0.025 (0.600). This
# setting is the best mean of both (0.528 and 0.592).
FACE_SCALE = 0.95
FACE_SHIFT = -0.025


def square_box(box: Sequence[int], *, scale: float = FACE_SCALE, shift: float = FACE_SHIFT) -> tuple[int, int, int]:
    """``(x, y, w, h)`` -> ``(x0, y0, side)`` of the square crop (may extend past the image)."""
    x, y, w, h = box
    side = max(2, int(round(max(w, h) * scale)))
    cx, cy = x + w / 2.0, y + h / 2.0 + shift * side
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side


def crop_square(image: np.ndarray, square: tuple[int, int, int]) -> np.ndarray:
    """The square region of ``image``; parts outside the image repeat the border pixels."""
    x0, y0, side = square
    height, width = image.shape[:2]
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(width, x0 + side), min(height, y0 + side)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"face box {square} lies outside the {width}x{height} image")
    crop = image[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y0 + side - cy1, cx0 - x0, x0 + side - cx1)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, cv2.BORDER_REPLICATE)
    return crop


def face_crops(
    image: np.ndarray,
    boxes: Sequence[Sequence[int]],
    config: ModelConfig,
    *,
    scale: float = FACE_SCALE,
    shift: float = FACE_SHIFT,
) -> np.ndarray:
    """N x S x S uint8 model input for the faces at ``boxes`` (shared preprocessing)."""
    if not len(boxes):
        return np.empty((0, config.input_size, config.input_size), dtype=np.uint8)
    gray = to_gray(image)
    crops = [crop_square(gray, square_box(box, scale=scale, shift=shift)) for box in boxes]
    return prepare_faces(crops, config)
