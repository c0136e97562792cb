"""Detector API on the bundled sample (real FER faces): faces, schema, sources, sampling, classify, Grad-CAM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import facexpr
from facexpr import create_model
from facexpr.detection import Detector, classify, draw_results
from facexpr.detection.crops import crop_square, face_crops, square_box
from facexpr.detection.explain import explain_image, grad_cam
from facexpr.detection.face_detectors import HaarDetector
from facexpr.detection.sample import sample_paths
from facexpr.preprocessing import prepare_faces, read_image

# Where scripts/make_sample_assets.py pasted the three faces of sample_faces.jpg (x, y, side).
STILL_FACES = [(25 + i * 205, 150, 170) for i in range(3)]


@pytest.fixture(scope="module")
def model() -> facexpr.models.ExpressionClassifier:
    torch.manual_seed(0)
    return create_model("resemotenet_w0125_g48").eval()


@pytest.fixture
def detector(model, yunet_cache: Path) -> Detector:
    return Detector(model, "yunet", backend="torch")


@pytest.fixture(scope="module")
def samples() -> tuple[Path, Path]:
    still, clip = sample_paths()
    return still, clip


def _iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def test_every_face_in_the_still_is_found_with_the_full_schema(detector: Detector, samples) -> None:
    still, _ = samples
    records = detector.predict(still)
    assert len(records) == 3
    for (x, y, side), record in zip(STILL_FACES, sorted(records, key=lambda r: r["box"][0]), strict=True):
        x0, y0, crop_side = square_box(record["box"])  # the tuned crop reproduces the pasted face square
        assert _iou((x0, y0, crop_side, crop_side), (x, y, side, side)) > 0.5
    record = records[0]
    assert set(record) == {"source", "frame", "time", "face", "box", "detector_score", "label", "score", "scores"}
    assert record["source"] == str(still) and record["frame"] == 0 and record["time"] == 0.0
    assert [r["face"] for r in records] == [0, 1, 2]
    assert all(isinstance(v, int) for v in record["box"]) and 0.6 <= record["detector_score"] <= 1.0
    assert list(record["scores"]) == list(detector.class_names)
    assert sum(record["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    assert record["label"] == max(record["scores"], key=record["scores"].get)
    assert record["score"] == record["scores"][record["label"]]
    json.dumps(records)  # JSON-serialisable as is


def test_predict_image_matches_classify_on_the_same_crops(detector: Detector, samples) -> None:
    image = read_image(samples[0])
    faces = detector.predict_image(image)
    crops = face_crops(image, [f["box"] for f in faces], detector.config)
    direct = detector.classify(list(crops))
    for face, result in zip(faces, direct, strict=True):
        assert result["scores"] == face["scores"]
    # the prepared crop is the square box of the face (shared preprocessing, gray, model size)
    square = square_box(faces[0]["box"])
    expected = prepare_faces([crop_square(image, square)], detector.config)[0]
    assert np.array_equal(crops[0], expected)


def test_classify_accepts_arrays_files_and_any_colour(model, faces_dir: Path) -> None:
    files = sorted((faces_dir / "val" / "happy").glob("*.jpg"))[:3]
    gray = cv2.imread(str(files[0]), cv2.IMREAD_GRAYSCALE)
    big_colour = cv2.resize(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), (200, 200))
    results = classify([gray, big_colour, *files], model=model, backend="torch")
    assert len(results) == 5
    assert results[0]["label"] in model.class_names
    # resizing 48 -> 200 -> 48 changes pixels little: same prediction as the original crop
    assert results[0]["label"] == results[1]["label"]
    assert results[0]["scores"] == results[2]["scores"]  # the same file, decoded by the shared reader
    assert classify([], model=model, backend="torch") == []


def test_square_box_and_padding() -> None:
    assert square_box((10, 20, 40, 60), scale=1.0, shift=0.0) == (0, 20, 60)
    assert square_box((10, 20, 40, 60), scale=1.5, shift=0.1) == (-15, 14, 90)
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    crop = crop_square(image, (-2, -2, 6))
    assert crop.shape == (6, 6) and crop[0, 0] == image[0, 0] and crop[5, 5] == image[3, 3]
    with pytest.raises(ValueError, match="outside"):
        crop_square(image, (20, 20, 5))


def test_video_sampling_tracking_and_times(detector: Detector, samples) -> None:
    _, clip = samples
    records = detector.predict(clip, every=4)
    frames = sorted({r["frame"] for r in records})
    assert frames == list(range(0, 48, 4))
    assert all(r["time"] == pytest.approx(r["frame"] / 8) for r in records)
    assert {r["track_id"] for r in records} == {0, 1}  # two faces drifting: ids never change
    by_track = {
        t: {tuple(np.sign(np.array(r["box"][:1]) - 240)) for r in records if r["track_id"] == t} for t in (0, 1)
    }
    assert all(len(sides) == 1 for sides in by_track.values())  # each id stays on its side of the frame
    timed = detector.predict(clip, interval=1.0)
    assert sorted({r["frame"] for r in timed}) == [0, 8, 16, 24, 32, 40]


def test_folder_and_glob_sources(detector: Detector, samples, tmp_path: Path) -> None:
    for sample in samples:
        shutil.copy(sample, tmp_path / sample.name)
    (tmp_path / "notes.txt").write_text("ignored: not an image")
    records = detector.predict(tmp_path)
    assert {Path(r["source"]).name for r in records} == {s.name for s in samples}
    assert len(records) == 3 + 96
    assert len(detector.predict(str(tmp_path / "*.jpg"))) == 3


def test_array_source_and_haar_detector(model, samples) -> None:
    image = read_image(samples[0])
    haar = Detector(model, "haar", backend="torch")
    assert isinstance(haar.face_detector, HaarDetector)
    records = haar.predict(image)
    assert len(records) == 3 and records[0]["source"] == "<array>"
    assert all(r["detector_score"] == 1.0 for r in records)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert len(haar.predict_image(gray)) == 3


def test_missing_shipped_model_is_a_clear_error() -> None:
    try:
        facexpr.load_model()
    except FileNotFoundError:
        pass
    else:
        pytest.skip("the shipped model is installed")
    with pytest.raises(FileNotFoundError, match="model=PATH"):
        Detector()


def test_draw_results_marks_each_face(detector: Detector, samples) -> None:
    image = read_image(samples[0])
    faces = detector.predict_image(image)
    canvas = draw_results(image, faces, fps=12.5)
    assert canvas.shape == image.shape and not np.array_equal(canvas, image)
    assert np.array_equal(image, read_image(samples[0]))  # input untouched
    x, y, w, h = faces[0]["box"]
    edge = canvas[y + h // 2, x]
    assert not np.array_equal(edge, image[y + h // 2, x])  # box outline drawn on the face edge


def test_grad_cam_maps(model, detector: Detector, samples) -> None:
    image = read_image(samples[0])
    prepared = face_crops(image, [f["box"] for f in detector.predict_image(image)], model.config)
    maps, probs = grad_cam(model, prepared)
    assert maps.shape == prepared.shape and probs.shape == (3, 7)
    peaks = maps.max(axis=(1, 2))
    assert maps.min() >= 0.0 and np.all((peaks == 0.0) | np.isclose(peaks, 1.0)) and peaks.max() == 1.0
    other, _ = grad_cam(model, prepared, class_index=0)
    assert other.shape == maps.shape
    canvas, faces = explain_image(detector, image)
    assert len(faces) == 3 and canvas.shape == image.shape
    x, y, w, h = faces[1]["box"]
    inside = (canvas[y : y + h, x : x + w].astype(int) - image[y : y + h, x : x + w]).std(axis=2)
    assert inside.mean() > 5  # a colour heat map on a gray face
