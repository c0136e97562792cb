"""The live loop behind ``facexpr cam``: every face boxed, tracked and smoothed, FPS, optional recording.

The loop takes any iterable of frames, so it runs on a video file as well as on a camera, with or without
a window.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facexpr.detection.detector import Detector
from facexpr.detection.drawing import draw_results
from facexpr.detection.sources import Frame
from facexpr.detection.tracking import FaceTracker

QUIT_KEYS = frozenset({ord("q"), ord("Q"), 27, 13, 10})  # q, Esc, Enter (CR or LF)
WINDOW = "facexpr (q / Esc / Enter to quit)"


class DisplayUnavailableError(OSError):
    """No window can be opened (no display, or a GUI-less OpenCV build)."""


def display_problem() -> str | None:
    """Why a window cannot be opened here, or None when it can."""
    if os.name == "posix" and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        if not Path("/System").is_dir():  # macOS has no DISPLAY variable
            return "no display (DISPLAY is not set)"
    try:
        cv2.namedWindow("facexpr-probe", cv2.WINDOW_AUTOSIZE)
        cv2.destroyWindow("facexpr-probe")
    except cv2.error:
        return "this OpenCV build has no GUI support (opencv-python-headless); install opencv-python for a window"
    return None


@dataclass
class LiveStats:
    frames: int = 0
    inferences: int = 0
    faces: int = 0
    fps: float = 0.0
    quit_key: int | None = None


def run_live(
    detector: Detector,
    frames: Iterable[Frame],
    *,
    show: bool = True,
    record: str | os.PathLike | None = None,
    interval: float | None = None,
    smoothing: float = 0.35,
    on_frame: Callable[[Frame, list[dict[str, Any]], np.ndarray], None] | None = None,
) -> LiveStats:
    """Annotate frames as they come. ``interval``: seconds between inferences (boxes persist in between).

    Ends at the end of the frames, on q / Esc / Enter in the window, or on Ctrl+C (the recording is kept).
    """
    tracker = FaceTracker(alpha=smoothing)
    stats = LiveStats()
    writer: cv2.VideoWriter | None = None
    faces: list[dict[str, Any]] = []
    last_inference: float | None = None
    clock = time.perf_counter()
    try:
        for frame in frames:
            if frame.image is None:
                continue
            if interval is None or last_inference is None or frame.time - last_inference >= interval:
                faces = detector.predict_image(
                    frame.image, frame=frame.index, time=frame.time, source=frame.source, tracker=tracker
                )
                last_inference = frame.time
                stats.inferences += 1
                stats.faces += len(faces)
            now = time.perf_counter()
            instant = 1.0 / max(now - clock, 1e-6)
            stats.fps = instant if stats.frames == 0 else 0.9 * stats.fps + 0.1 * instant
            clock = now
            stats.frames += 1
            canvas = draw_results(frame.image, faces, fps=stats.fps)
            if record is not None:
                if writer is None:
                    Path(record).parent.mkdir(parents=True, exist_ok=True)
                    size = (canvas.shape[1], canvas.shape[0])
                    writer = cv2.VideoWriter(str(record), cv2.VideoWriter_fourcc(*"mp4v"), frame.fps or 25.0, size)
                    if not writer.isOpened():
                        raise OSError(f"{record}: cannot write video")
                writer.write(canvas)
            if on_frame is not None:
                on_frame(frame, faces, canvas)
            if show:
                cv2.imshow(WINDOW, canvas)
                key = cv2.waitKey(1) & 0xFF
                if key in QUIT_KEYS:
                    stats.quit_key = key
                    break
    except KeyboardInterrupt:
        pass
    finally:
        if writer is not None:
            writer.release()
        if show:
            cv2.destroyAllWindows()
    return stats
