"""Face tracking and probability smoothing, the live loop on a video source, and the timeline writer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facexpr import create_model
from facexpr.detection import Detector
from facexpr.detection.live import QUIT_KEYS, run_live
from facexpr.detection.outputs import Timeline
from facexpr.detection.sample import sample_paths
from facexpr.detection.sources import FrameSource
from facexpr.detection.tracking import FaceTracker, box_iou


def _probs(*rows: list[float]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


def test_box_iou() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_ids_follow_moving_faces_and_new_faces_get_new_ids() -> None:
    tracker = FaceTracker()
    a, b = (10, 10, 50, 50), (200, 10, 50, 50)
    first = tracker.update([a, b], _probs([1, 0], [0, 1]))
    assert [t.track_id for t in first] == [0, 1]
    moved = tracker.update([(205, 12, 50, 50), (14, 8, 50, 50)], _probs([0, 1], [1, 0]))  # order swapped
    assert [t.track_id for t in moved] == [1, 0]
    third = tracker.update([(16, 8, 50, 50), (400, 300, 40, 40)], _probs([1, 0], [0.5, 0.5]))
    assert [t.track_id for t in third] == [0, 2]


def test_track_survives_short_misses_then_expires() -> None:
    tracker = FaceTracker(max_missed=2)
    tracker.update([(10, 10, 50, 50)], _probs([1, 0]))
    tracker.update([], _probs())
    tracker.update([], _probs())
    assert tracker.update([(12, 10, 50, 50)], _probs([1, 0]))[0].track_id == 0
    for _ in range(3):
        tracker.update([], _probs())
    assert tracker.update([(12, 10, 50, 50)], _probs([1, 0]))[0].track_id == 1


def test_exponential_smoothing_stops_label_flicker() -> None:
    tracker = FaceTracker(alpha=0.25)
    box = (10, 10, 50, 50)
    tracker.update([box], _probs([0.8, 0.2]))
    track = tracker.update([box], _probs([0.4, 0.6]))[0]
    np.testing.assert_allclose(track.probs, 0.25 * np.array([0.4, 0.6]) + 0.75 * np.array([0.8, 0.2]), rtol=1e-6)
    raw, smoothed = [], []
    for i in range(30):  # one-frame blips to the other class every third frame
        p = [0.4, 0.6] if i % 3 == 2 else [0.6, 0.4]
        raw.append(int(np.argmax(p)))
        smoothed.append(int(np.argmax(tracker.update([box], _probs(p))[0].probs)))
    assert len(set(raw)) == 2 and set(smoothed) == {0}
    with pytest.raises(ValueError):
        FaceTracker(alpha=0.0)


def test_timeline_memory_is_bounded_and_plot_is_written(tmp_path: Path) -> None:
    timeline = Timeline(("a", "b"), max_points=64)
    for i in range(10_000):
        p = (i % 100) / 100
        timeline.add([{"source": "v.mp4", "face": 0, "track_id": 3, "time": i / 30, "scores": {"a": p, "b": 1 - p}}])
    track = timeline.tracks[("v.mp4", 3)]
    assert len(track) <= 64
    assert track[0, 0] < 10 and track[-1, 0] > 320  # still spans the whole 333 s video
    steps = np.diff(track[:-1, 0])  # evenly spaced (the last point averages a partial bucket)
    assert np.allclose(steps, steps[0], rtol=1e-3)
    assert np.allclose(track[:, 1] + track[:, 2], 1.0)
    path = timeline.plot(tmp_path / "t.png")
    assert path is not None and cv2.imread(str(path)) is not None
    assert Timeline(("a",)).plot(tmp_path / "none.png") is None


@pytest.fixture
def detector(yunet_cache: Path) -> Detector:
    return Detector(create_model("resemotenet_w0125_g48"), "yunet", backend="torch")


def test_live_loop_runs_on_a_video_without_a_window(detector: Detector, tmp_path: Path) -> None:
    clip = sample_paths()[1]
    seen: list[list[dict]] = []
    record = tmp_path / "rec.mp4"
    stats = run_live(
        detector, FrameSource(clip), show=False, record=record, on_frame=lambda f, faces, c: seen.append(faces)
    )
    assert stats.frames == 48 and stats.inferences == 48 and stats.faces == 96
    assert {face["track_id"] for faces in seen for face in faces} == {0, 1}
    assert stats.fps > 0
    assert cv2.VideoCapture(str(record)).get(cv2.CAP_PROP_FRAME_COUNT) == 48


def test_live_loop_interval_keeps_boxes_between_inferences(detector: Detector) -> None:
    clip = sample_paths()[1]
    seen: list[int] = []
    stats = run_live(
        detector, FrameSource(clip), show=False, interval=2.0, on_frame=lambda f, faces, c: seen.append(len(faces))
    )
    assert stats.inferences == 3  # t = 0, 2, 4 s of a 6 s clip
    assert stats.frames == 48 and all(n == 2 for n in seen)
    assert {ord("q"), 27, 13} <= QUIT_KEYS
