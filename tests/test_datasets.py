from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from ferplus_support import vote_counts, write_votes_csv

from facexpr.data.datasets import decode_files, default_cache_dir, ferplus_targets, load_split, mix_ferplus_votes
from facexpr.labels import FER2013_CLASSES, FER2013_CSV_ORDER, FERPLUS_CLASSES, UnknownClassError
from facexpr.preprocessing import read_image, resize_square, to_gray


def _gray(value: int, size: int = 48) -> np.ndarray:
    image = np.full((size, size), value, np.uint8)
    image[size // 4 : size // 2, size // 4 : size // 2] = 255 - value  # not constant, distinct per value
    return image


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def _copy_faces(faces_dir: Path, split: str, dest: Path, rename: dict[str, str] | None = None) -> None:
    for class_dir in sorted((faces_dir / split).iterdir()):
        shutil.copytree(class_dir, dest / (rename or {}).get(class_dir.name, class_dir.name))


# --- class folders -------------------------------------------------------------------------------


def test_alias_folders_map_to_canonical_classes(faces_dir, tmp_path):
    rename = {"angry": "Anger", "happy": "happiness", "sad": "sadness", "surprise": "Surprised"}
    _copy_faces(faces_dir, "val", tmp_path / "data" / "val", rename)
    images = load_split(tmp_path / "data", "val", 48)
    assert images.class_names == FER2013_CLASSES
    assert images.class_counts() == {name: 6 for name in FER2013_CLASSES}
    anger_files = {p.name for p in (tmp_path / "data/val/Anger").iterdir()}
    angry = FER2013_CLASSES.index("angry")
    assert {Path(p).name for p, y in zip(images.paths, images.labels, strict=True) if y == angry} == anger_files
    reference = load_split(faces_dir, "val", 48)
    by_name = {Path(p).name: i for i, p in enumerate(images.paths)}
    order = [by_name[Path(p).name] for p in reference.paths]  # folders sort differently ("Anger" < "disgust")
    np.testing.assert_array_equal(images.images[order], reference.images)
    np.testing.assert_array_equal(images.labels[order], reference.labels)


def test_model_class_order_is_respected(faces_dir):
    order = tuple(reversed(FER2013_CLASSES))
    images = load_split(faces_dir, "val", 48, class_names=order)
    assert images.class_names == order
    happy_index = order.index("happy")
    assert all("/happy/" in p for p, y in zip(images.paths, images.labels, strict=True) if y == happy_index)


def test_unknown_class_folder_is_named(tmp_path):
    _write(tmp_path / "train" / "happy" / "a.png", _gray(10))
    _write(tmp_path / "train" / "bored" / "b.png", _gray(20))
    with pytest.raises(UnknownClassError, match="bored"):
        load_split(tmp_path, "train", 48)


def test_numbered_class_folder_asks_for_names(tmp_path):
    _write(tmp_path / "train" / "3" / "a.png", _gray(10))
    with pytest.raises(UnknownClassError, match="'3' is a number"):
        load_split(tmp_path, "train", 48)


def test_kaggle_layout_train_test(faces_dir, tmp_path):
    root = tmp_path / "kaggle"
    _copy_faces(faces_dir, "train", root / "train")
    _copy_faces(faces_dir, "val", root / "test")
    assert len(load_split(root, "train", 48)) == 56
    assert len(load_split(root, "test", 48)) == 42
    with pytest.raises(FileNotFoundError, match="no 'val' split"):
        load_split(root, "val", 48)


def test_our_layout_train_val_and_input_size(faces_dir):
    train = load_split(faces_dir, "train", 48)
    val = load_split(faces_dir, "val", 64)
    assert train.images.shape == (56, 48, 48) and train.images.dtype == np.uint8
    assert val.images.shape == (42, 64, 64)
    first = Path(train.paths[0])
    np.testing.assert_array_equal(train.images[0], to_gray(read_image(first)))  # native 48: pixels untouched
    np.testing.assert_array_equal(val.images[0], resize_square(to_gray(read_image(val.paths[0])), 64))


def test_root_that_is_itself_a_split(faces_dir):
    images = load_split(faces_dir / "val", None, 48)
    assert len(images) == 42 and images.class_names == FER2013_CLASSES
    with pytest.raises(FileNotFoundError, match="pass the split folder itself"):
        load_split(faces_dir / "val", "val", 48)


def test_missing_data_dir_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_split(tmp_path / "nowhere", "train", 48)


# --- unreadable files and the cache -------------------------------------------------------------


def test_unreadable_images_are_reported_by_name(faces_dir, tmp_path):
    root = tmp_path / "data"
    _copy_faces(faces_dir, "val", root)
    good = next((root / "happy").glob("*.jpg")).read_bytes()
    (root / "happy" / "zero.jpg").write_bytes(b"")
    (root / "sad" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "fear" / "text.jpg").write_text("this is not a JPEG\n")
    images = load_split(root, None, 48)
    assert len(images) == 42
    assert sorted(Path(name).name for name, _ in images.errors) == ["text.jpg", "truncated.jpg", "zero.jpg"]
    for name, problem in images.errors:
        assert name in problem
    assert not any(Path(p).name in {"zero.jpg", "truncated.jpg", "text.jpg"} for p in images.paths)


def test_second_load_hits_the_cache(faces_dir, tmp_path):
    cache = default_cache_dir()
    assert str(cache).startswith(os.environ["FACEXPR_CACHE"])
    root = tmp_path / "data"
    _copy_faces(faces_dir, "val", root)
    (root / "happy" / "zero.jpg").write_bytes(b"")
    paths = sorted(root.rglob("*.jpg"))
    before = set(cache.glob("*.npz")) if cache.is_dir() else set()
    images, ok, errors = decode_files(paths, 48)
    created = set(cache.glob("*.npz")) - before
    assert len(created) == 1
    again, ok_again, errors_again = decode_files(paths, 48)
    np.testing.assert_array_equal(again, images)
    np.testing.assert_array_equal(ok_again, ok)
    assert errors_again == errors and len(errors) == 1
    assert set(cache.glob("*.npz")) - before == created

    # The second call really reads the cache file: altered cached pixels come back as stored.
    cache_file = created.pop()
    with np.load(cache_file) as data:
        stored = {key: data[key] for key in data.files}
    stored["images"] = 255 - stored["images"]
    np.savez(cache_file, **stored)
    np.testing.assert_array_equal(decode_files(paths, 48)[0], 255 - images)
    np.testing.assert_array_equal(decode_files(paths, 48, use_cache=False)[0], images)

    # Changing a file changes the key: the new content is decoded.
    _write(paths[0], _gray(7))
    os.utime(paths[0], ns=(1, 1))
    fresh = decode_files(paths, 48)[0]
    np.testing.assert_array_equal(fresh[0], to_gray(read_image(paths[0])))


# --- fer2013.csv ---------------------------------------------------------------------------------


def _fer_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)
    return path


def _pixels(image: np.ndarray) -> str:
    return " ".join(str(v) for v in image.ravel())


def test_fer2013_csv_labels_and_usage(tmp_path):
    rows = [(str(code), _pixels(_gray(10 * code)), "Training") for code in range(7)]
    rows += [("3", _pixels(_gray(200)), "PublicTest"), ("0", _pixels(_gray(201)), "PrivateTest")]
    csv_path = _fer_csv(tmp_path / "fer2013.csv", rows)
    train = load_split(csv_path, "train", 48)
    assert train.class_names == FER2013_CLASSES
    assert [train.class_names[y] for y in train.labels] == list(FER2013_CSV_ORDER)
    assert train.class_names[train.labels[4]] == "sad" and train.class_names[train.labels[6]] == "neutral"
    np.testing.assert_array_equal(train.images[5], _gray(50))
    val, test = load_split(csv_path, "val", 48), load_split(csv_path, "test", 64)
    assert len(val) == 1 and val.class_names[val.labels[0]] == "happy"
    np.testing.assert_array_equal(val.images[0], _gray(200))
    assert test.images.shape == (1, 64, 64) and test.class_names[test.labels[0]] == "angry"


def test_fer2013_csv_bad_rows_are_reported_not_fatal(tmp_path):
    good = _pixels(_gray(30))
    rows = [
        ("3", good, "Training"),
        ("3", "1 2 3", "Training"),  # not square
        ("x", good, "Training"),  # emotion not a number
        ("9", good, "Training"),  # emotion out of range
        ("-1", good, "Training"),  # negative emotion must not wrap around to the last class
        ("3", _pixels(np.full((48, 48), 300, np.int64)), "Training"),  # values beyond uint8
        ("3", good.replace("30", "abc", 1), "Training"),
    ]
    csv_path = _fer_csv(tmp_path / "fer2013.csv", rows)
    images = load_split(csv_path, "train", 48)
    assert len(images) == 1
    assert [name for name, _ in images.errors] == [f"{csv_path}:{line}" for line in range(3, 9)]
    assert all("bad row" in problem for _, problem in images.errors)


def test_fer2013_csv_wrong_columns(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("label,data\n1,2\n")
    with pytest.raises(ValueError, match="expected columns"):
        load_split(path, "train", 48)


# --- FER+ votes ----------------------------------------------------------------------------------


def test_ferplus_targets_majority_soft_and_dropping():
    votes = np.array(
        [
            vote_counts(happiness=8, neutral=2),
            vote_counts(contempt=6, anger=4),
            vote_counts(unknown=6, sadness=4),  # majority unknown: dropped
            vote_counts(NF=10),  # not a face: dropped
            vote_counts(fear=5, NF=5),  # tie with NF goes to the emotion
        ]
    )
    keep, labels, soft = ferplus_targets(votes)
    assert keep.tolist() == [True, True, False, False, True]
    assert [FERPLUS_CLASSES[i] for i in labels[keep]] == ["happy", "contempt", "fear"]
    expected_first = np.zeros(8, np.float32)
    expected_first[FERPLUS_CLASSES.index("happy")] = 0.8
    expected_first[FERPLUS_CLASSES.index("neutral")] = 0.2
    np.testing.assert_allclose(soft[0], expected_first)
    np.testing.assert_allclose(soft[keep].sum(axis=1), 1.0)
    assert soft[2, FERPLUS_CLASSES.index("sad")] == pytest.approx(1.0)  # soft targets ignore unknown/NF


def test_load_ferplus_from_votes_file(tmp_path):
    root = tmp_path / "fer"
    rows = [
        ("train/happy/a.png", "happy", "ok", vote_counts(happiness=9, surprise=1)),
        ("train/angry/b.png", "angry", "ok", vote_counts(contempt=7, anger=3)),
        ("train/sad/c.png", "sad", "ok", vote_counts(NF=8, sadness=2)),
        ("train/fear/d.png", "fear", "no_ferplus_image", vote_counts()),
        ("val/neutral/e.png", "neutral", "ok", vote_counts(neutral=10)),
    ]
    for i, (relative, *_rest) in enumerate(rows):
        _write(root / relative, _gray(20 * i + 5))
    write_votes_csv(root / "ferplus_votes.csv", rows)

    train = load_split(root, "train", 48, labels="ferplus")
    assert train.class_names == FERPLUS_CLASSES and len(FERPLUS_CLASSES) == 8
    assert [Path(p).name for p in train.paths] == ["a.png", "b.png"]
    assert [train.class_names[y] for y in train.labels] == ["happy", "contempt"]
    assert train.soft_labels is not None and train.soft_labels.shape == (2, 8)
    assert train.soft_labels[0, FERPLUS_CLASSES.index("surprise")] == pytest.approx(0.1)
    np.testing.assert_array_equal(train.images[1], _gray(25))
    val = load_split(root / "ferplus_votes.csv", "val", 48, labels="ferplus")
    assert [val.class_names[y] for y in val.labels] == ["neutral"]


def test_ferplus_votes_mixed_into_folder_labels(faces_dir, tmp_path):
    train = load_split(faces_dir, "train", 48)
    names = train.class_names
    happy = next(i for i, y in enumerate(train.labels) if names[y] == "happy")
    angry = next(i for i, y in enumerate(train.labels) if names[y] == "angry")
    unmatched = next(i for i, y in enumerate(train.labels) if names[y] == "sad")
    relative = lambda i: "train/" + "/".join(Path(train.paths[i]).parts[-2:])  # noqa: E731
    votes = tmp_path / "ferplus_votes.csv"
    write_votes_csv(
        votes,
        [
            (relative(happy), "happy", "ok", vote_counts(happiness=6, surprise=2, contempt=1, NF=1)),
            (relative(angry), "angry", "ok", vote_counts(contempt=10)),  # no vote for a FER2013 class: stays one-hot
            (relative(unmatched), "sad", "no_ferplus_image", vote_counts(neutral=10)),
        ],
    )
    mixed = mix_ferplus_votes(train, votes, 0.5)
    assert mixed.soft_labels.shape == (len(train), len(names))
    np.testing.assert_allclose(mixed.soft_labels.sum(axis=1), 1.0, rtol=1e-6)
    expected = np.zeros(len(names), np.float32)
    expected[names.index("happy")] = 0.5 + 0.5 * 6 / 8  # contempt and NF votes are not FER2013 classes
    expected[names.index("surprise")] = 0.5 * 2 / 8
    np.testing.assert_allclose(mixed.soft_labels[happy], expected, rtol=1e-6)
    for i in (angry, unmatched):
        assert mixed.soft_labels[i, train.labels[i]] == 1.0
    np.testing.assert_array_equal(mixed.labels, train.labels)  # hard labels (and accuracy) stay FER2013's
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        mix_ferplus_votes(train, votes, 1.5)
    with open(votes, "w") as handle:
        handle.write("path,neutral,happiness\n")
    with pytest.raises(ValueError, match="missing FER\\+ vote columns"):
        mix_ferplus_votes(train, votes, 0.5)
    write_votes_csv(votes, [("train/happy/elsewhere.png", "happy", "ok", vote_counts(happiness=10))])
    with pytest.raises(ValueError, match="no FER\\+ votes match"):
        mix_ferplus_votes(train, votes, 0.5)


def test_unknown_label_source(faces_dir):
    with pytest.raises(ValueError, match="unknown labels source"):
        load_split(faces_dir, "val", 48, labels="votes")


def test_a_listed_file_missing_on_disk_is_an_error_record_not_a_crash(tmp_path, faces_dir) -> None:
    from facexpr.data.datasets import decode_files

    present = sorted((faces_dir / "val" / "happy").glob("*.jpg"))[0]
    images, ok, errors = decode_files([present, tmp_path / "gone.jpg"], 48, cache_dir=tmp_path)
    assert ok.tolist() == [True, False]
    assert len(errors) == 1 and "gone.jpg" in errors[0][1]
