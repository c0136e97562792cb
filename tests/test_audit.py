from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facexpr.cli import main
from facexpr.data.audit import audit_dataset, difference_hash, find_splits, pixel_hash
from facexpr.labels import UnknownClassError


def _face(seed: int) -> np.ndarray:
    """A smooth random 48x48 image: distinct per seed, with clear gradients for the perceptual hash."""
    rng = np.random.default_rng(seed)
    small = rng.integers(30, 220, (6, 6)).astype(np.uint8)
    return cv2.resize(small, (48, 48), interpolation=cv2.INTER_CUBIC)


def _write(root: Path, relative: str, image: np.ndarray) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)  # PNG: lossless, so copies stay pixel-identical


@pytest.fixture()
def messy_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for i in range(6):
        _write(root, f"train/happy/unique_{i}.png", _face(100 + i))
    for i in range(3):
        _write(root, f"val/sad/unique_{i}.png", _face(200 + i))
    _write(root, "train/happy/dup_a.png", _face(1))  # exact duplicate within train, same label
    _write(root, "train/happy/dup_b.png", _face(1))
    _write(root, "train/angry/leak.png", _face(2))  # exact duplicate across splits with conflicting labels
    _write(root, "val/sadness/leak_copy.png", _face(2))
    _write(root, "val/Anger/alias.png", _face(4))
    _write(root, "train/sad/near.png", _face(3))  # near duplicate: brighter by 3 levels, same gradients
    _write(root, "val/sad/near_brighter.png", _face(3) + 3)
    _write(root, "train/sad/blank.png", np.full((48, 48), 90, np.uint8))
    (root / "train/happy/empty.jpg").write_bytes(b"")
    (root / "val/sad/notes.jpg").write_text("not an image")
    return root


def test_pixel_and_perceptual_hashes():
    face = _face(7)
    assert pixel_hash(face) == pixel_hash(face.copy())
    assert pixel_hash(face) != pixel_hash(face + 1)
    assert pixel_hash(face) != pixel_hash(face.reshape(24, 96))  # same bytes, another shape
    assert difference_hash(face) == difference_hash(face + 3)
    assert difference_hash(face) != difference_hash(_face(8))
    assert difference_hash(face) != difference_hash(face[:, ::-1])


def test_audit_finds_every_planted_problem(messy_dataset):
    report = audit_dataset(messy_dataset)
    assert report["n_files"] == 19 and report["n_images"] == 17
    exact = report["exact_duplicates"]
    assert exact["groups"] == 2 and exact["redundant_images"] == 2
    assert exact["within_split_groups"] == {"train": 1}
    assert exact["cross_split_groups"] == 1
    assert exact["conflicting_label_groups"] == 1
    assert exact["conflicting_examples"][0]["labels"] == ["angry", "sad"]  # val/sadness is an alias of sad
    assert report["leakage"]["val_in_train"]["n_images"] == 1
    assert report["leakage"]["val_in_train"]["examples"] == [str(Path("val/sadness/leak_copy.png"))]

    near = report["near_duplicates"]
    assert near["groups"] == 1 and near["cross_split_groups"] == 1
    assert sorted(near["examples"][0]["files"]) == sorted(
        [str(Path("train/sad/near.png")), str(Path("val/sad/near_brighter.png"))]
    )
    assert report["blank"]["count"] == 1
    assert report["blank"]["examples"][0]["path"] == str(Path("train/sad/blank.png"))

    unreadable = report["unreadable"]
    assert unreadable["count"] == 2 and unreadable["per_split"] == {"train": 1, "val": 1}
    assert {Path(item["path"]).name for item in unreadable["files"]} == {"empty.jpg", "notes.jpg"}
    assert all(Path(item["path"]).name in item["problem"] for item in unreadable["files"])

    balance = report["class_balance"]
    assert balance["train"]["counts"] == {"angry": 1, "happy": 8, "sad": 2}
    assert balance["val"]["counts"] == {"angry": 1, "sad": 5}
    assert balance["val"]["percent"]["sad"] == pytest.approx(100 * 5 / 6, abs=0.01)


def test_conflicting_labels_within_a_split(tmp_path):
    root = tmp_path / "one_split"
    _write(root, "happy/a.png", _face(5))
    _write(root, "sadness/b.png", _face(5))
    _write(root, "happy/c.png", _face(6))
    assert find_splits(root) == [("one_split", root)]
    report = audit_dataset(root)
    assert report["exact_duplicates"]["conflicting_label_groups"] == 1
    assert report["exact_duplicates"]["conflicting_examples"][0]["labels"] == ["happy", "sad"]
    assert report["leakage"] == {}


def test_audit_of_real_faces_finds_no_problems(faces_dir):
    report = audit_dataset(faces_dir)
    assert report["n_images"] == 7 * 8 + 7 * 6
    assert report["exact_duplicates"]["groups"] == 0
    assert report["blank"]["count"] == 0 and report["unreadable"]["count"] == 0
    assert set(report["class_balance"]["train"]["counts"].values()) == {8}


def test_audit_rejects_unknown_class_folder(tmp_path):
    _write(tmp_path / "d", "train/confused/a.png", _face(1))
    with pytest.raises(UnknownClassError, match="confused"):
        audit_dataset(tmp_path / "d")


def test_cli_data_audit(messy_dataset, tmp_path, capsys):
    out = tmp_path / "audit.json"
    assert main(["data", "audit", str(messy_dataset), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "exact duplicates: 2 groups" in printed
    assert "1 val images are pixel-identical to a train image" in printed
    assert "unreadable files: 2" in printed
    assert json.loads(out.read_text())["near_duplicates"]["groups"] == 1


def test_cli_data_audit_missing_dir_is_one_line_error(tmp_path, capsys):
    assert main(["data", "audit", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nowhere" in err
