"""Inference off the event loop: a pool of detectors (one per worker thread) behind a bounded wait."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio.to_thread
import cv2

from facexpr.detection.detector import Detector
from facexpr.detection.drawing import draw_results
from facexpr.detection.tracking import FaceTracker
from facexpr.preprocessing import read_image
from facexpr.serving.errors import ServerBusy

T = TypeVar("T")


class DetectorPool:
    """Runs work on one free detector at a time per detector: ``cv2.FaceDetectorYN`` is not thread-safe, so each
    detector is used by a single thread at once. At most ``max_queue`` callers wait for a detector; the next one
    gets :class:`ServerBusy` (HTTP 503) at once, as does a caller that waits longer than ``timeout_s``."""

    def __init__(self, detectors: Sequence[Detector], *, max_queue: int, timeout_s: float) -> None:
        if not detectors:
            raise ValueError("DetectorPool needs at least one detector")
        self.detectors = tuple(detectors)
        self.max_queue, self.timeout_s = max_queue, timeout_s
        self._free = list(self.detectors)
        self._slots = asyncio.Semaphore(len(self.detectors))
        self.waiting = 0
        self.running = 0

    @property
    def size(self) -> int:
        return len(self.detectors)

    async def run(self, work: Callable[[Detector], T]) -> T:
        if self._slots.locked():
            if self.waiting >= self.max_queue:
                raise ServerBusy(f"{self.waiting} requests already waiting")
            self.waiting += 1
            try:
                await asyncio.wait_for(self._slots.acquire(), self.timeout_s)
            except asyncio.TimeoutError:
                raise ServerBusy(f"no detector free within {self.timeout_s:g} s") from None
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()  # a free slot: taken without suspending
        detector = self._free.pop()
        self.running += 1
        try:
            # anyio's worker is not abandoned when the request is cancelled, so the detector is never reused while
            # its thread still runs (asyncio.to_thread would return here early on cancellation).
            return await anyio.to_thread.run_sync(work, detector)
        finally:
            self.running -= 1
            self._free.append(detector)
            self._slots.release()


def analyse_image(
    detector: Detector,
    data: bytes,
    *,
    max_pixels: int,
    source: str = "<upload>",
    frame: int = 0,
    time_s: float = 0.0,
    tracker: FaceTracker | None = None,
    annotated: bool = False,
) -> dict[str, Any]:
    """Decode ``data`` and find every face: the ``/v1/predict`` body (faces in ``facexpr predict``'s schema)."""
    started = time.perf_counter()
    image = read_image(data, max_pixels=max_pixels)
    faces = detector.predict_image(image, frame=frame, time=time_s, source=source, tracker=tracker)
    height, width = image.shape[:2]
    result: dict[str, Any] = {
        "faces": faces,
        "width": width,
        "height": height,
        "time_ms": round((time.perf_counter() - started) * 1000.0, 2),
        "model": detector.config.name,
    }
    if annotated:
        ok, encoded = cv2.imencode(".jpg", draw_results(image, faces), [cv2.IMWRITE_JPEG_QUALITY, 88])
        if ok:
            result["annotated_jpeg"] = base64.b64encode(encoded.tobytes()).decode("ascii")
    return result
