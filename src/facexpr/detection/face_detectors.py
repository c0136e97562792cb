"""Face detectors: YuNet (``cv2.FaceDetectorYN``, the default) and OpenCV's Haar cascade (the fallback)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from facexpr.detection.model_files import ModelFileError, yunet_model_path

log = logging.getLogger("facexpr")

DETECTORS = ("auto", "yunet", "haar")


@dataclass(frozen=True)
class Face:
    """One detected face: box ``(x, y, w, h)`` in image pixels and the detector's confidence."""

    box: tuple[int, int, int, int]
    score: float


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...


def _clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[int, int, int, int] | None:
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1 - x0, y1 - y0


class YuNetDetector:
    """YuNet through ``cv2.FaceDetectorYN``; large frames are scaled down to ``max_side`` for detection."""

    name = "yunet"

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        *,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        max_side: int = 1280,
    ) -> None:
        self.model_path = yunet_model_path(model_path)
        try:
            self._net = cv2.FaceDetectorYN.create(str(self.model_path), "", (320, 320), score_threshold, nms_threshold)
        except cv2.error as exc:
            raise ModelFileError(
                f"{self.model_path}: OpenCV cannot load this YuNet model ({exc.msg.strip()})"
            ) from None
        self._size = (320, 320)
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        frame = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        size = (frame.shape[1], frame.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, rows = self._net.detect(np.ascontiguousarray(frame))
        faces = []
        for row in [] if rows is None else rows:
            box = _clip_box(*(row[:4] / scale), width, height)
            if box is not None:
                faces.append(Face(box, float(row[-1])))
        return faces


class HaarDetector:
    """OpenCV's ``haarcascade_frontalface_default``: no confidence, so ``score`` is 1.0."""

    name = "haar"

    def __init__(self, *, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24) -> None:
        if not hasattr(cv2, "CascadeClassifier"):
            raise ModelFileError("this OpenCV build has no CascadeClassifier (OpenCV 5.x); install opencv-python 4.x")
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise ModelFileError(f"{path}: cannot load the Haar cascade")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, image: np.ndarray) -> list[Face]:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        rects = self._cascade.detectMultiScale(
            gray, self.scale_factor, self.min_neighbors, minSize=(self.min_size, self.min_size)
        )
        height, width = gray.shape[:2]
        faces = []
        for x, y, w, h in rects if len(rects) else []:
            box = _clip_box(x, y, w, h, width, height)
            if box is not None:
                faces.append(Face(box, 1.0))
        return faces


def create_face_detector(
    name: str = "auto", *, yunet_path: str | os.PathLike | None = None, score_threshold: float = 0.6
) -> FaceDetector:
    """``yunet``, ``haar``, or ``auto``: YuNet, falling back to Haar (with one log line) when YuNet is unavailable."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose from {', '.join(DETECTORS)}")
    if name == "haar":
        return HaarDetector()
    try:
        return YuNetDetector(yunet_path, score_threshold=score_threshold)
    except (ModelFileError, AttributeError) as exc:
        if name == "yunet":
            raise
        log.warning("YuNet unavailable (%s); falling back to the OpenCV Haar cascade (lower recall)", exc)
        return HaarDetector()
