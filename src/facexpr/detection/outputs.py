"""Result writers: JSON lines, CSV (both flushed per frame so partial output survives) and the timeline plot."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

CSV_FIELDS = ("source", "frame", "time", "face", "track_id", "x", "y", "w", "h", "detector_score", "label", "score")


class JsonlWriter:
    """One JSON object per line: a face record or an error record. ``-`` writes to standard output."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if str(path) == "-":
            self._handle: TextIO = sys.stdout
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "w", encoding="utf-8")

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not sys.stdout:
            self._handle.close()


class CsvWriter:
    """One row per face (probability columns ``p_<class>``) or per error (``error`` column filled)."""

    def __init__(self, path: str | os.PathLike, class_names: Sequence[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.class_names = tuple(class_names)
        self._handle: TextIO = open(self.path, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow([*CSV_FIELDS, *(f"p_{name}" for name in self.class_names), "error"])

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            if "error" in record:
                row = [record.get("source", "")] + [""] * (len(CSV_FIELDS) - 1 + len(self.class_names))
                self._writer.writerow([*row, record["error"]])
                continue
            x, y, w, h = record["box"]
            base = {**record, "x": x, "y": y, "w": w, "h": h}
            row = [base.get(name, "") for name in CSV_FIELDS]
            row += [record["scores"].get(name, "") for name in self.class_names]
            self._writer.writerow([*row, ""])
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class _Series:
    """Points that each average ``stride`` consecutive samples; the stride doubles whenever the series fills."""

    def __init__(self, max_points: int) -> None:
        self.max_points, self.stride = max_points, 1
        self.points: list[np.ndarray] = []
        self._sum: np.ndarray | None = None
        self._count = 0

    def add(self, sample: np.ndarray) -> None:
        self._sum = sample.astype(np.float64) if self._sum is None else self._sum + sample
        self._count += 1
        if self._count == self.stride:
            self.points.append((self._sum / self._count).astype(np.float32))
            self._sum, self._count = None, 0
            if len(self.points) >= self.max_points:
                self.points = list(np.stack(self.points).reshape(-1, 2, sample.size).mean(axis=1))
                self.stride *= 2

    def array(self) -> np.ndarray:
        pending = [(self._sum / self._count).astype(np.float32)] if self._count else []
        return np.stack(self.points + pending)


class Timeline:
    """Probabilities over time per face track in bounded memory: past ``max_points`` points per track, the
    resolution halves (neighbouring points are averaged), so memory stays constant for any video length."""

    def __init__(self, class_names: Sequence[str], *, max_points: int = 2048) -> None:
        self.class_names = tuple(class_names)
        self.max_points = max_points + max_points % 2  # even, so halving pairs every point
        self._tracks: dict[tuple[str, int], _Series] = {}

    def add(self, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            if "error" in record:
                continue
            key = (record["source"], int(record.get("track_id", record["face"])))
            point = np.array([record["time"], *(record["scores"][n] for n in self.class_names)], np.float32)
            self._tracks.setdefault(key, _Series(self.max_points)).add(point)

    @property
    def tracks(self) -> dict[tuple[str, int], np.ndarray]:
        return {key: series.array() for key, series in self._tracks.items()}

    def plot(self, path: str | os.PathLike, *, max_tracks: int = 6, title: str = "") -> Path | None:
        """Write one panel per face track (the longest ``max_tracks``); None when nothing was recorded."""
        tracks = sorted(self.tracks.items(), key=lambda item: -len(item[1]))[:max_tracks]
        if not tracks:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from facexpr.detection.drawing import COLORS

        fig, axes = plt.subplots(len(tracks), 1, figsize=(10, 2.2 * len(tracks) + 0.6), sharex=True, squeeze=False)
        for ax, ((source, track_id), points) in zip(axes[:, 0], tracks, strict=True):
            for i, name in enumerate(self.class_names):
                b, g, r = COLORS.get(name, (128, 128, 128))
                ax.plot(points[:, 0], points[:, i + 1], label=name, color=(r / 255, g / 255, b / 255), lw=1.2)
            ax.set_ylim(0, 1)
            ax.set_ylabel("probability")
            ax.set_title(f"{Path(source).name} — face #{track_id}", fontsize=9, loc="left")
        axes[-1, 0].set_xlabel("time (s)")
        axes[0, 0].legend(ncol=len(self.class_names), fontsize=7, loc="upper right")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return path
