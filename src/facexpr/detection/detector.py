"""``Detector``: find every face in an image, folder, video or camera and classify its expression."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facexpr.config import ModelConfig
from facexpr.detection.backends import Backend, OnnxRuntimeBackend, create_backend
from facexpr.detection.crops import FACE_SCALE, FACE_SHIFT, face_crops
from facexpr.detection.face_detectors import FaceDetector, create_face_detector
from facexpr.detection.sources import Frame, FrameSource, as_bgr
from facexpr.detection.tracking import FaceTracker
from facexpr.models import ExpressionClassifier, load_model
from facexpr.preprocessing import MAX_IMAGE_PIXELS, prepare_faces, read_image


def resolve_model(model: ExpressionClassifier | str | os.PathLike | None) -> ExpressionClassifier:
    """A model object, a weights path, a shipped or registered name, or None for the shipped default."""
    if isinstance(model, ExpressionClassifier):
        return model.eval()
    try:
        return load_model(model)
    except FileNotFoundError as exc:
        if model is not None:
            raise
        raise FileNotFoundError(
            f"{exc}; pass model=PATH (a trained .safetensors/.pt file) or a config name such as "
            "'resemotenet_w025_g48' for random weights"
        ) from None


@dataclass
class FrameResult:
    """The faces found in one frame, or the error that made the frame (or its file) unusable."""

    frame: Frame
    faces: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def records(self) -> list[dict[str, Any]]:
        if self.error is not None:
            return [{"source": self.frame.source, "error": self.error}]
        return self.faces


class Detector:
    """Face detector + expression classifier.

    ``model``: an ``ExpressionClassifier``, a weights file, a shipped/registered name, an exported ``.onnx``
    file, or None for the shipped model. ``detector``: ``auto`` (YuNet, Haar fallback), ``yunet``, ``haar``
    or any object with ``detect(image) -> list[Face]``. ``backend``: ``auto`` (ONNX Runtime when installed),
    ``onnxruntime`` or ``torch``.
    """

    def __init__(
        self,
        model: ExpressionClassifier | str | os.PathLike | None = None,
        detector: str | FaceDetector = "auto",
        *,
        backend: str = "auto",
        yunet_path: str | os.PathLike | None = None,
        score_threshold: float = 0.6,
        face_scale: float = FACE_SCALE,
        face_shift: float = FACE_SHIFT,
        threads: int | None = None,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ) -> None:
        self.model: ExpressionClassifier | None
        if isinstance(model, str | os.PathLike) and Path(model).suffix == ".onnx":
            from facexpr.detection.export import read_onnx_config

            self.model, self.config = None, read_onnx_config(model)
            self.backend: Backend = OnnxRuntimeBackend(model, threads=threads)
        else:
            self.model = resolve_model(model)
            self.config: ModelConfig = self.model.config
            self.backend = create_backend(self.model, backend, threads=threads)
        self.class_names: tuple[str, ...] = tuple(self.config.class_names)
        self._detector_spec = detector
        self._face_detector: FaceDetector | None = None if isinstance(detector, str) else detector
        self._yunet_path, self._score_threshold = yunet_path, score_threshold
        self.face_scale, self.face_shift, self.max_pixels = face_scale, face_shift, max_pixels

    @property
    def face_detector(self) -> FaceDetector:
        """Created on first use, so ``classify`` works without a face detector model."""
        if self._face_detector is None:
            self._face_detector = create_face_detector(
                str(self._detector_spec), yunet_path=self._yunet_path, score_threshold=self._score_threshold
            )
        return self._face_detector

    # -- classification -------------------------------------------------------------------------
    def probabilities(self, prepared: np.ndarray) -> np.ndarray:
        """N x S x S uint8 prepared faces -> N x C probabilities in ``class_names`` order."""
        if len(prepared) == 0:
            return np.empty((0, len(self.class_names)), dtype=np.float32)
        return self.backend(prepared)

    def _labelled(self, probs: np.ndarray) -> dict[str, Any]:
        best = int(np.argmax(probs))
        return {
            "label": self.class_names[best],
            "score": round(float(probs[best]), 6),
            "scores": {name: round(float(p), 6) for name, p in zip(self.class_names, probs, strict=True)},
        }

    def classify(self, faces: Iterable[np.ndarray | str | os.PathLike] | np.ndarray) -> list[dict[str, Any]]:
        """Classify faces that are already cropped (arrays of any size/colour, or image files)."""
        crops = [read_image(f, max_pixels=self.max_pixels) if isinstance(f, str | os.PathLike) else f for f in faces]
        probs = self.probabilities(prepare_faces(crops, self.config))
        return [self._labelled(p) for p in probs]

    # -- detection ------------------------------------------------------------------------------
    def predict_image(
        self,
        image: np.ndarray,
        *,
        frame: int = 0,
        time: float = 0.0,
        source: str = "<array>",
        tracker: FaceTracker | None = None,
    ) -> list[dict[str, Any]]:
        """Every face in one BGR frame: box, detector score, label, probabilities (and track id)."""
        image = as_bgr(image)
        detections = self.face_detector.detect(image)
        boxes = [d.box for d in detections]
        probs = self.probabilities(face_crops(image, boxes, self.config, scale=self.face_scale, shift=self.face_shift))
        tracks = tracker.update(boxes, probs) if tracker is not None else None
        results = []
        for i, detection in enumerate(detections):
            record: dict[str, Any] = {
                "source": source,
                "frame": int(frame),
                "time": float(time),
                "face": i,
                "box": [int(v) for v in detection.box],
                "detector_score": round(float(detection.score), 4),
            }
            if tracks is not None:
                record.update(self._labelled(tracks[i].probs))
                record["track_id"] = tracks[i].track_id
            else:
                record.update(self._labelled(probs[i]))
            results.append(record)
        return results

    def stream(
        self,
        source: str | os.PathLike | int | np.ndarray | FrameSource,
        *,
        every: int = 1,
        interval: float | None = None,
        track: bool | None = None,
        smoothing: float = 1.0,
        keep_skipped: bool = False,
    ) -> Iterator[FrameResult]:
        """Yield one :class:`FrameResult` per frame, lazily (constant memory for long videos).

        ``track`` (default: on for videos and cameras) adds ``track_id``; ``smoothing`` < 1 also smooths each
        tracked face's probabilities (exponential moving average weight of the newest frame).
        """
        frames = source if isinstance(source, FrameSource) else self.open(source, every, interval, keep_skipped)
        if track is None:
            track = frames.kind in ("video", "camera") or smoothing < 1.0
        tracker, current = None, None
        for frame in frames:
            if frame.error is not None:
                yield FrameResult(frame, error=frame.error)
                continue
            if track and frame.source != current:
                tracker, current = FaceTracker(alpha=smoothing), frame.source
            if not frame.process:
                yield FrameResult(frame)
                continue
            faces = self.predict_image(
                frame.image, frame=frame.index, time=frame.time, source=frame.source, tracker=tracker
            )
            yield FrameResult(frame, faces)

    def open(
        self,
        source: str | os.PathLike | int | np.ndarray,
        every: int = 1,
        interval: float | None = None,
        keep_skipped: bool = False,
    ) -> FrameSource:
        return FrameSource(
            source, every=every, interval=interval, keep_skipped=keep_skipped, max_pixels=self.max_pixels
        )

    def predict(
        self,
        source: str | os.PathLike | int | np.ndarray,
        *,
        every: int = 1,
        interval: float | None = None,
        track: bool | None = None,
    ) -> list[dict[str, Any]]:
        """All face records (and per-item error records) of an image, folder, glob, video or camera."""
        records: list[dict[str, Any]] = []
        for result in self.stream(source, every=every, interval=interval, track=track):
            records.extend(result.records())
        return records


_SHARED: dict[tuple[str, str], Detector] = {}


def classify(
    face_crops: Sequence[np.ndarray | str | os.PathLike] | np.ndarray,
    model: ExpressionClassifier | str | os.PathLike | None = None,
    *,
    backend: str = "auto",
) -> list[dict[str, Any]]:
    """Classify already-cropped faces: ``[{"label", "score", "scores"}, ...]`` (models by name are cached)."""
    if isinstance(model, ExpressionClassifier):
        return Detector(model, backend=backend).classify(face_crops)
    key = (str(model), backend)
    if key not in _SHARED:
        _SHARED[key] = Detector(model, backend=backend)
    return _SHARED[key].classify(face_crops)
