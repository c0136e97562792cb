"""Bad input: one-line errors for a single input, error records (and the rest processed) inside a batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facexpr.cli import main
from facexpr.detection import Detector
from facexpr.detection.runner import EXIT_PARTIAL
from facexpr.detection.sample import sample_paths
from facexpr.detection.sources import SourceError
from facexpr.preprocessing import ImageError

pytestmark = pytest.mark.usefixtures("yunet_cache")


@pytest.fixture
def detector(tiny_weights: str) -> Detector:
    return Detector(tiny_weights, "yunet", backend="torch")


def _still() -> Image.Image:
    return Image.open(sample_paths()[0]).convert("RGB")


def _cli(*args: str) -> int:
    return main(["predict", *args, "--backend", "torch", "--detector", "yunet", "--no-progress"])


BROKEN = {
    "zero.jpg": lambda p: p.write_bytes(b""),
    "truncated.jpg": lambda p: p.write_bytes(sample_paths()[0].read_bytes()[:600]),
    "text.jpg": lambda p: p.write_text("this is not an image\n"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_single_broken_image_one_line_error(name: str, tiny_weights: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / name
    BROKEN[name](path)
    assert _cli(str(path), "--model", tiny_weights, "--json", str(tmp_path / "r.jsonl")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("facexpr predict: error: ") and str(path) in err[0]


def _unusual(kind: str, path: Path) -> None:
    still = _still()
    if kind == "16bit":
        gray = (np.asarray(still.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        assert cv2.imwrite(str(path), gray)
    elif kind == "rgba":
        rgba = still.convert("RGBA")
        rgba.putalpha(200)
        rgba.save(path)
    elif kind == "cmyk":
        still.convert("CMYK").save(path, "JPEG")
    elif kind == "palette":
        still.convert("P", palette=Image.Palette.ADAPTIVE).save(path)


@pytest.mark.parametrize("kind,suffix", [("16bit", ".png"), ("rgba", ".png"), ("cmyk", ".jpg"), ("palette", ".png")])
def test_unusual_formats_are_decoded_and_faces_found(kind: str, suffix: str, detector: Detector, tmp_path) -> None:
    path = tmp_path / f"{kind}{suffix}"
    _unusual(kind, path)
    if kind == "16bit":
        assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    if kind == "cmyk":
        assert Image.open(path).mode == "CMYK"
    assert len(detector.predict(path)) == 3


def test_huge_image_refused_by_pixel_limit(tiny_weights: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "huge.png"
    _still().save(path)
    with pytest.raises(ImageError, match="too large"):
        Detector(tiny_weights, "yunet", backend="torch", max_pixels=10_000).predict(path)
    assert _cli(str(path), "--model", tiny_weights, "--max-pixels", "10000") == 1
    err = capsys.readouterr().err.strip()
    assert "huge.png" in err and "too large" in err and "\n" not in err


def test_unreadable_video_and_missing_and_empty(tiny_weights: str, tmp_path: Path, capsys) -> None:
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    empty = tmp_path / "empty"
    empty.mkdir()
    for source, message in ((video, "broken.mp4"), (tmp_path / "absent.jpg", "no such file"), (empty, "no images")):
        assert _cli(str(source), "--model", tiny_weights) == 1
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and message in err


def test_frame_without_a_face(detector: Detector, tiny_weights: str, tmp_path: Path, capsys) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((480, 640, 3), 128, np.uint8))
    assert detector.predict(blank) == []
    assert (
        _cli(str(blank), "--model", tiny_weights, "--json", str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "o"))
        == 0
    )
    assert (tmp_path / "r.jsonl").read_text() == ""
    assert (tmp_path / "o" / "blank.png").is_file()  # annotated copy still written


def test_folder_with_bad_items_keeps_going(tiny_weights: str, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(sample_paths()[0], folder / "a_good.jpg")
    BROKEN["truncated.jpg"](folder / "b_truncated.jpg")
    (folder / "c_broken.mp4").write_bytes(b"not a video")
    shutil.copy(sample_paths()[0], folder / "d_good.jpg")
    jsonl, table, out = tmp_path / "r.jsonl", tmp_path / "r.csv", tmp_path / "out"
    code = _cli(str(folder), "--model", tiny_weights, "--json", str(jsonl), "--csv", str(table), "--out", str(out))
    assert code == EXIT_PARTIAL
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    errors = [r for r in records if "error" in r]
    faces = [r for r in records if "error" not in r]
    assert [Path(e["source"]).name for e in errors] == ["b_truncated.jpg", "c_broken.mp4"]
    assert all(Path(e["source"]).name in e["error"] for e in errors)
    assert len(faces) == 6 and {Path(f["source"]).name for f in faces} == {"a_good.jpg", "d_good.jpg"}
    rows = table.read_text().splitlines()
    assert len(rows) == 1 + 8 and sum(1 for r in rows if "b_truncated.jpg" in r and "corrupt" in r) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_good.jpg", "d_good.jpg"]
    assert "2 error(s)" in capsys.readouterr().err


def test_api_folder_error_records(detector: Detector, tmp_path: Path) -> None:
    (tmp_path / "zero.jpg").write_bytes(b"")
    shutil.copy(sample_paths()[0], tmp_path / "ok.jpg")
    records = detector.predict(tmp_path)
    assert records[0]["source"].endswith("ok.jpg") and len(records) == 4
    assert set(records[-1]) == {"source", "error"} and "zero.jpg" in records[-1]["error"]
    with pytest.raises(SourceError, match="no images or videos"):
        detector.predict(str(tmp_path / "*.png"))


def test_bad_arrays(detector: Detector) -> None:
    with pytest.raises(ImageError, match="shape"):
        detector.predict_image(np.zeros((4, 4, 2), np.uint8))
    float_gray = np.asarray(_still().convert("L"), dtype=np.float32) / 255.0
    assert len(detector.predict_image(float_gray)) == 3
    assert len(detector.predict(np.asarray(_still())[:, :, ::-1].copy())) == 3
