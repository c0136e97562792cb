"""Follow faces across frames (greedy IoU matching) and smooth each face's probabilities over time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    track_id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray
    missed: int = 0
    hits: int = 1


class FaceTracker:
    """Assign stable ids to faces and smooth their class probabilities with an exponential moving average.

    ``alpha`` is the weight of the newest observation (1.0 = no smoothing). A track survives ``max_missed``
    updates without a matching face, so a face lost for a frame or two keeps its id and its history.
    """

    def __init__(self, *, iou_threshold: float = 0.3, alpha: float = 0.35, max_missed: int = 10) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.iou_threshold, self.alpha, self.max_missed = iou_threshold, alpha, max_missed
        self.tracks: list[Track] = []
        self._next_id = 0

    def update(self, boxes: Sequence[Sequence[int]], probs: np.ndarray) -> list[Track]:
        """Match this frame's faces to tracks; returns the track of each face, in input order."""
        probs = np.asarray(probs, dtype=np.float32)
        probs = probs.reshape(len(boxes), -1) if len(boxes) else probs.reshape(0, 0)
        pairs = sorted(
            ((box_iou(track.box, box), t, f) for t, track in enumerate(self.tracks) for f, box in enumerate(boxes)),
            reverse=True,
        )
        assigned: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for iou, t, f in pairs:
            if iou < self.iou_threshold:
                break
            if t in used_tracks or f in assigned:
                continue
            track = self.tracks[t]
            track.box = tuple(int(v) for v in boxes[f])
            track.probs = self.alpha * probs[f] + (1.0 - self.alpha) * track.probs
            track.missed, track.hits = 0, track.hits + 1
            assigned[f] = track
            used_tracks.add(t)
        for t, track in enumerate(self.tracks):
            if t not in used_tracks:
                track.missed += 1
        self.tracks = [track for track in self.tracks if track.missed <= self.max_missed]
        for f, box in enumerate(boxes):
            if f not in assigned:
                track = Track(self._next_id, tuple(int(v) for v in box), probs[f].copy())
                self._next_id += 1
                self.tracks.append(track)
                assigned[f] = track
        return [assigned[f] for f in range(len(boxes))]

    def reset(self) -> None:
        self.tracks.clear()
