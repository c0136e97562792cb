"""The CLI end to end on the bundled sample: predict (files, stdout), cam without a display, explain, demo."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest

from facexpr.cli import main
from facexpr.detection.sample import sample_paths

pytestmark = pytest.mark.usefixtures("yunet_cache")


def test_predict_video_writes_every_output(tiny_weights: str, tmp_path: Path, capsys) -> None:
    clip = sample_paths()[1]
    out, jsonl, table = tmp_path / "out", tmp_path / "r.jsonl", tmp_path / "r.csv"
    args = ["predict", str(clip), "--model", tiny_weights, "--out", str(out), "--json", str(jsonl), "--csv", str(table)]
    assert main([*args, "--every", "2", "--no-progress"]) == 0  # default backend: ONNX Runtime
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 48 and sorted({r["frame"] for r in records}) == list(range(0, 48, 2))
    assert {r["track_id"] for r in records} == {0, 1}
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 48 and rows[0]["label"] == records[0]["label"]
    assert float(rows[0][f"p_{records[0]['label']}"]) == records[0]["score"]
    video = cv2.VideoCapture(str(out / "sample_clip_annotated.mp4"))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == 48  # all frames, annotations carried over skipped ones
    timeline = cv2.imread(str(out / "sample_clip_timeline.png"))
    assert timeline is not None and timeline.shape[0] > 200
    err = capsys.readouterr().err
    assert "24 frame(s), 48 face(s), 0 error(s)" in err and "sample_clip_timeline.png" in err


def test_predict_prints_json_lines_without_output_options(tiny_weights: str, capsys) -> None:
    assert main(["predict", str(sample_paths()[0]), "--model", tiny_weights, "--backend", "torch"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["face"] == 0


def test_cam_without_display_or_camera_is_one_clear_line(tiny_weights: str, monkeypatch, capsys) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["cam", "--model", tiny_weights]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("facexpr cam: error:") and "facexpr predict FILE" in err


def test_explain_writes_an_overlay(tiny_weights: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cam.jpg"
    assert (
        main(["explain", str(sample_paths()[0]), "--model", tiny_weights, "--out", str(out), "--backend", "torch"]) == 0
    )
    assert cv2.imread(str(out)).shape == (480, 640, 3)
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_demo_falls_back_to_the_bundled_sample(tiny_weights: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--model", tiny_weights, "--backend", "torch"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"sample_faces.jpg", "sample_clip_annotated.mp4", "sample_clip_timeline.png", "sample_clip.jsonl"} <= names
    err = capsys.readouterr().err
    assert "bundled sample" in err and str(out / "sample_clip_annotated.mp4") in err
