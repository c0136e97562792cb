"""Frames from any source: an image array or file, a folder or glob of images and videos, a video, a camera."""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facexpr.preprocessing import IMAGE_SUFFIXES, MAX_IMAGE_PIXELS, ImageError, read_image, to_gray

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"})


class SourceError(ValueError):
    """A source that cannot be read at all; the message names it."""


@dataclass
class Frame:
    """One frame of a source. ``image`` is BGR uint8; ``error`` is set (and ``image`` None) for a bad item.

    ``process`` is False for frames skipped by ``every``/``interval`` that are still yielded (``keep_skipped``),
    e.g. so an annotated video keeps its full frame rate.
    """

    source: str
    index: int
    time: float
    image: np.ndarray | None
    error: str | None = None
    process: bool = True
    fps: float = 0.0  # of the video or camera the frame comes from; 0 for still images

    @property
    def from_stream(self) -> bool:
        return self.fps > 0 or self.index > 0 or self.source.startswith("camera") or is_video_file(self.source)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Any image array -> H x W x 3 BGR uint8 (gray, BGRA and non-uint8 inputs are converted)."""
    array = np.asarray(image)
    if array.ndim not in (2, 3) or array.size == 0:
        raise ImageError(f"unsupported image array shape {array.shape}")
    if array.dtype != np.uint8 or array.ndim == 2 or array.shape[2] == 1:
        return cv2.cvtColor(to_gray(array), cv2.COLOR_GRAY2BGR)
    if array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
    if array.shape[2] != 3:
        raise ImageError(f"unsupported image array shape {array.shape}")
    return array


def is_camera(source: object) -> bool:
    return (isinstance(source, int) and not isinstance(source, bool)) or (
        isinstance(source, str) and source.strip().isdigit()
    )


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _media_files(paths: list[Path]) -> list[Path]:
    return [p for p in paths if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES or is_video_file(p))]


class _Sampler:
    """Decides which frames of a stream to process: every ``every``-th frame, at most one per ``interval`` s."""

    def __init__(self, every: int = 1, interval: float | None = None) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if interval is not None and interval < 0:
            raise ValueError(f"interval must be >= 0, got {interval}")
        self.every, self.interval, self._last = every, interval, None

    def __call__(self, index: int, seconds: float) -> bool:
        if index % self.every:
            return False
        if self.interval and self._last is not None and seconds - self._last < self.interval - 1e-9:
            return False
        self._last = seconds
        return True


class FrameSource:
    """Iterate the frames of ``source``; construction fails with a one-line error for an unusable single source.

    Inside a folder or glob a bad item becomes a :class:`Frame` with ``error`` set and iteration continues.
    """

    def __init__(
        self,
        source: str | os.PathLike | int | np.ndarray,
        *,
        every: int = 1,
        interval: float | None = None,
        keep_skipped: bool = False,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ) -> None:
        self.every, self.interval, self.keep_skipped, self.max_pixels = every, interval, keep_skipped, max_pixels
        _Sampler(every, interval)  # validate early
        self.items: list[Path] = []
        self.total: int | None = None
        self.fps: float | None = None
        if isinstance(source, np.ndarray):
            self.kind, self.name, self._array = "array", "<array>", source
            self.total = 1
        elif is_camera(source):
            self.kind, self.name = "camera", f"camera {int(source)}"
            self.camera_index = int(source)
        else:
            self._resolve_path(str(source))

    def _resolve_path(self, text: str) -> None:
        path = Path(text).expanduser()
        self.name = text
        if any(ch in text for ch in "*?[") and not path.exists():
            self.kind = "glob"
            self.items = _media_files(sorted(Path(p) for p in glob.glob(str(path), recursive=True)))
            if not self.items:
                raise SourceError(f"{text}: no images or videos match this pattern")
        elif path.is_dir():
            self.kind = "folder"
            self.items = _media_files(sorted(path.iterdir()))
            if not self.items:
                raise SourceError(f"{text}: folder contains no images or videos")
        elif not path.exists():
            raise FileNotFoundError(f"{text}: no such file or folder")
        elif is_video_file(path):
            self.kind = "video"
            self.items = [path]
            capture = self._open_video(path)
            self.total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
            self.fps = capture.get(cv2.CAP_PROP_FPS) or None
            capture.release()
        else:
            self.kind = "image"
            self.items = [path]
            self.total = 1
        if self.kind in ("glob", "folder"):
            self.total = len(self.items) if not any(is_video_file(p) for p in self.items) else None

    @staticmethod
    def _open_video(path: Path) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{path}: cannot open video (unreadable or unsupported format)")
        return capture

    def __iter__(self) -> Iterator[Frame]:
        if self.kind == "array":
            yield Frame(self.name, 0, 0.0, as_bgr(self._array))
        elif self.kind == "camera":
            yield from self._camera_frames()
        elif self.kind == "image":
            yield Frame(str(self.items[0]), 0, 0.0, read_image(self.items[0], max_pixels=self.max_pixels))
        elif self.kind == "video":
            yield from self._video_frames(self.items[0])
        else:
            for path in self.items:
                if is_video_file(path):
                    try:
                        yield from self._video_frames(path)
                    except SourceError as exc:
                        yield Frame(str(path), 0, 0.0, None, error=str(exc))
                    continue
                try:
                    image = read_image(path, max_pixels=self.max_pixels)
                except ImageError as exc:
                    yield Frame(str(path), 0, 0.0, None, error=str(exc))
                    continue
                yield Frame(str(path), 0, 0.0, image)

    def _video_frames(self, path: Path) -> Iterator[Frame]:
        capture = self._open_video(path)
        sampler = _Sampler(self.every, self.interval)
        fps = capture.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and fps > 0 else 0.0
        index = 0
        try:
            while True:
                seconds = index / fps if fps else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                wanted = sampler(index, seconds)
                if wanted or self.keep_skipped:
                    ok, image = capture.read()
                else:
                    ok, image = capture.grab(), None
                if not ok:
                    break
                if wanted or self.keep_skipped:
                    yield Frame(str(path), index, round(seconds, 4), image, process=wanted, fps=fps)
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise SourceError(f"{path}: video has no readable frames")

    def _camera_frames(self) -> Iterator[Frame]:
        capture = cv2.VideoCapture(self.camera_index)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.name}: cannot open the camera; run `facexpr predict FILE` on an image or video")
        sampler = _Sampler(self.every, self.interval)
        start, index = time.monotonic(), 0
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        try:
            while True:
                ok, image = capture.read()
                if not ok:
                    if index == 0:
                        raise SourceError(f"{self.name}: camera delivers no frames")
                    break
                seconds = time.monotonic() - start
                wanted = sampler(index, seconds)
                if wanted or self.keep_skipped:
                    yield Frame(self.name, index, round(seconds, 4), image, process=wanted, fps=fps)
                index += 1
        finally:
            capture.release()
