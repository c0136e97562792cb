"""The ``predict`` job: stream a source through a Detector into annotated media, JSONL/CSV and timelines."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from facexpr.detection.detector import Detector, FrameResult
from facexpr.detection.drawing import draw_results
from facexpr.detection.outputs import CsvWriter, JsonlWriter, Timeline
from facexpr.detection.sources import FrameSource

log = logging.getLogger("facexpr")

# Exit status of `facexpr predict` when some items of a folder/glob/video failed (error records written).
EXIT_PARTIAL = 3


@dataclass
class PredictSummary:
    frames: int = 0
    faces: int = 0
    errors: int = 0
    outputs: list[Path] = field(default_factory=list)


class _MediaWriter:
    """Annotated copies of each source in ``out_dir``: images as JPEG/PNG, videos as MP4 (all frames)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._used: set[str] = set()
        self._video: cv2.VideoWriter | None = None
        self.written: list[Path] = []

    def unique(self, name: str) -> Path:
        stem, suffix = os.path.splitext(name)
        candidate, n = name, 1
        while candidate in self._used:
            candidate, n = f"{stem}_{n}{suffix}", n + 1
        self._used.add(candidate)
        return self.out_dir / candidate

    def image(self, source: str, canvas: Any) -> None:
        name = Path(source).name if source and not source.startswith("<") else "image.jpg"
        if Path(name).suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp"):
            name = Path(name).stem + ".jpg"
        path = self.unique(name)
        if not cv2.imwrite(str(path), canvas):
            raise OSError(f"{path}: cannot write image")
        self.written.append(path)

    def start_video(self, source: str, fps: float, size: tuple[int, int]) -> None:
        self.end_video()
        path = self.unique(Path(source).stem + "_annotated.mp4")
        self._video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps or 25.0, size)
        if not self._video.isOpened():
            raise OSError(f"{path}: cannot write video")
        self.written.append(path)

    def frame(self, canvas: Any) -> None:
        if self._video is not None:
            self._video.write(canvas)

    def end_video(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None


def _progress(source: FrameSource, enabled: bool) -> Any:
    from tqdm import tqdm

    unit = "frame" if source.kind in ("video", "camera") else "item"
    return tqdm(total=source.total, unit=unit, disable=not enabled, dynamic_ncols=True, leave=False)


def run_predict(
    detector: Detector,
    source: str | os.PathLike | int,
    *,
    out_dir: str | os.PathLike | None = None,
    jsonl: str | os.PathLike | None = None,
    csv: str | os.PathLike | None = None,
    every: int = 1,
    interval: float | None = None,
    timeline: bool = True,
    progress: bool = True,
) -> PredictSummary:
    """Process ``source`` frame by frame; outputs are flushed as they go, so an interrupted run keeps them."""
    frames = detector.open(source, every, interval, keep_skipped=out_dir is not None)
    summary = PredictSummary()
    media = _MediaWriter(Path(out_dir)) if out_dir is not None else None
    writers: list[Any] = []
    if jsonl:
        writers.append(JsonlWriter(jsonl))
    if csv:
        writers.append(CsvWriter(csv, detector.class_names))
    summary.outputs += [w.path for w in writers]
    timelines: dict[str, Timeline] = {}
    bar = _progress(frames, progress)
    current, last_faces = None, []
    try:
        for result in detector.stream(frames, keep_skipped=out_dir is not None):
            frame = result.frame
            is_video = frame.from_stream
            if frame.source != current:
                current, last_faces = frame.source, []
                if media is not None:
                    media.end_video()
                    if is_video and result.error is None:
                        size = (frame.image.shape[1], frame.image.shape[0])
                        media.start_video(frame.source, frame.fps, size)
                if bar.total is not None and frames.kind not in ("video", "camera"):
                    bar.update(1)
            if frames.kind in ("video", "camera"):
                bar.update(frame.index + 1 - bar.n)
            if result.error is not None:
                summary.errors += 1
                log.error("%s", result.error)
            elif frame.process:
                summary.frames += 1
                summary.faces += len(result.faces)
                last_faces = result.faces
            records = result.records() if (frame.process or result.error is not None) else []
            for writer in writers:
                writer.write(records)
            if timeline and is_video and records:
                timelines.setdefault(frame.source, Timeline(detector.class_names)).add(records)
            if media is not None and result.error is None:
                canvas = draw_results(frame.image, last_faces)
                if is_video:
                    media.frame(canvas)
                else:
                    media.image(frame.source, canvas)
    finally:
        bar.close()
        for writer in writers:
            writer.close()
        if media is not None:
            media.end_video()
            summary.outputs += media.written
        if out_dir is not None:
            for name, line in timelines.items():
                path = line.plot(Path(out_dir) / f"{Path(name).stem}_timeline.png", title=Path(name).name)
                if path is not None:
                    summary.outputs.append(path)
    return summary


def result_summary_line(summary: PredictSummary) -> str:
    return f"{summary.frames} frame(s), {summary.faces} face(s), {summary.errors} error(s)"


__all__ = ["EXIT_PARTIAL", "FrameResult", "PredictSummary", "result_summary_line", "run_predict"]
