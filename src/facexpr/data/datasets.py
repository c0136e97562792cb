"""Data sets decoded once into one uint8 array: class folders, fer2013.csv and FER+ votes.

A split is held as an :class:`ImageSet` (N x S x S uint8 faces prepared with the shared
preprocessing, integer labels, optional soft labels). Decoded arrays are cached on disk, keyed by the
files' names, sizes and modification times and the input size, so later runs start in a second.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facexpr.files import atomic_write
from facexpr.labels import FER2013_CSV_ORDER, FERPLUS_CLASSES, UnknownClassError, canonical_class, class_order_for
from facexpr.preprocessing import ImageError, is_image_file, read_image, resize_square, to_gray

log = logging.getLogger(__name__)

CACHE_VERSION = "1"
SPLIT_ALIASES = {
    "train": ("train", "training", "Training"),
    "val": ("val", "valid", "validation", "PublicTest"),
    "test": ("test", "testing", "PrivateTest"),
}
CSV_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
# FER+ vote columns, in the order of ferplus_votes.csv.
FERPLUS_VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")


@dataclass
class ImageSet:
    images: np.ndarray  # N x S x S uint8
    labels: np.ndarray  # N int64, index into class_names
    class_names: tuple[str, ...]
    paths: list[str]
    soft_labels: np.ndarray | None = None  # N x C float32 (rows sum to 1)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (name, problem) of unreadable items

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, counts, strict=True)}

    def subset(self, keep: np.ndarray) -> ImageSet:
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        return ImageSet(
            self.images[idx],
            self.labels[idx],
            self.class_names,
            [self.paths[i] for i in idx],
            None if self.soft_labels is None else self.soft_labels[idx],
            list(self.errors),
        )


def default_cache_dir() -> Path:
    base = os.environ.get("FACEXPR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "facexpr"
    )
    return Path(base) / "datasets"


def resolve_split_dir(root: str | os.PathLike, split: str | None) -> Path:
    """``root/<split>`` under any usual spelling; ``root`` itself when it already holds class folders."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data directory not found")
    if split is None:
        return root
    for name in SPLIT_ALIASES.get(split, (split,)):
        if (root / name).is_dir():
            return root / name
    if is_class_folder_root(root):
        raise FileNotFoundError(f"{root}: has class folders but no {split!r} split; pass the split folder itself")
    raise FileNotFoundError(f"{root}: no {split!r} split folder (looked for {', '.join(SPLIT_ALIASES.get(split, ()))})")


def is_class_folder_root(path: Path) -> bool:
    """True when ``path`` directly holds at least one expression-class folder."""
    for child in path.iterdir():
        if child.is_dir():
            try:
                canonical_class(child.name)
                return True
            except UnknownClassError:
                continue
    return False


def scan_class_folders(split_dir: str | os.PathLike) -> list[tuple[Path, str]]:
    """(image path, canonical class) for every image under ``split_dir/<class>/``."""
    split_dir = Path(split_dir)
    items: list[tuple[Path, str]] = []
    class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise FileNotFoundError(f"{split_dir}: no class folders (expected <class>/<image> layout)")
    for class_dir in class_dirs:
        try:
            label = canonical_class(class_dir.name)
        except UnknownClassError as exc:
            raise UnknownClassError(f"{class_dir}: {exc}") from None
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and is_image_file(path):
                items.append((path, label))
    if not items:
        raise FileNotFoundError(f"{split_dir}: class folders contain no images")
    return items


def _cache_key(parts: list[str]) -> str:
    digest = hashlib.sha1()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def _decode_all(paths: list[Path], size: int) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    images = np.zeros((len(paths), size, size), dtype=np.uint8)
    ok = np.ones(len(paths), dtype=bool)
    errors: list[tuple[str, str]] = []
    for i, path in enumerate(paths):
        try:
            images[i] = resize_square(to_gray(read_image(path)), size)
        except ImageError as exc:
            ok[i] = False
            errors.append((str(path), str(exc)))
    return images, ok, errors


def decode_files(
    paths: list[Path], size: int, *, cache_dir: str | os.PathLike | None = None, use_cache: bool = True
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Decode image files to N x size x size gray uint8 (cached). Returns (images, ok mask, errors)."""
    signature = [CACHE_VERSION, str(size)]
    for path in paths:
        try:
            stat = path.stat()
            signature.append(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}")
        except OSError:
            signature.append(f"{path}|missing")  # decoding reports it by name
    cache_file = Path(cache_dir or default_cache_dir()) / f"{_cache_key(signature)}.npz"
    if use_cache and cache_file.is_file():
        try:
            with np.load(cache_file) as data:
                errors = [tuple(e.split("\t", 1)) for e in data["errors"].tolist()]
                return data["images"], data["ok"], errors  # type: ignore[return-value]
        except (OSError, KeyError, ValueError):
            log.warning("ignoring unreadable cache file %s", cache_file)
    images, ok, errors = _decode_all(paths, size)
    if use_cache:
        with atomic_write(cache_file) as handle:
            np.savez(handle, images=images, ok=ok, errors=np.array([f"{a}\t{b}" for a, b in errors], dtype=str))
    return images, ok, errors


def _report_errors(errors: list[tuple[str, str]], source: str) -> None:
    if errors:
        log.warning("%s: %d unreadable image(s) skipped, first: %s", source, len(errors), errors[0][1])


def load_class_folders(
    root: str | os.PathLike,
    split: str | None,
    size: int,
    *,
    class_names: tuple[str, ...] | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> ImageSet:
    split_dir = resolve_split_dir(root, split)
    items = scan_class_folders(split_dir)
    names = class_names or class_order_for({label for _, label in items})
    missing = {label for _, label in items} - set(names)
    if missing:
        raise UnknownClassError(f"{split_dir}: classes {sorted(missing)} are not among the model classes {names}")
    paths = [path for path, _ in items]
    images, ok, errors = decode_files(paths, size, cache_dir=cache_dir, use_cache=use_cache)
    labels = np.array([names.index(label) for _, label in items], dtype=np.int64)
    _report_errors(errors, str(split_dir))
    return ImageSet(
        images[ok], labels[ok], tuple(names), [str(p) for p, k in zip(paths, ok, strict=True) if k], errors=errors
    )


def load_fer2013_csv(
    csv_path: str | os.PathLike, split: str, size: int, *, class_names: tuple[str, ...] | None = None
) -> ImageSet:
    """The original challenge file: columns ``emotion,pixels,Usage`` (48x48 pixels as text)."""
    csv_path = Path(csv_path)
    usage = CSV_USAGE.get(split, split)
    names = class_names or class_order_for(FER2013_CSV_ORDER)
    images, labels, paths, errors = [], [], [], []
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        required = {"emotion", "pixels", "Usage"}
        if not reader.fieldnames or not required <= set(reader.fieldnames):
            raise ValueError(f"{csv_path}: expected columns {sorted(required)}, found {reader.fieldnames}")
        for row_number, row in enumerate(reader, start=2):
            if row["Usage"] != usage:
                continue
            name = f"{csv_path}:{row_number}"
            try:
                values = np.array(row["pixels"].split(), dtype=np.int64)
                if values.size and (values.min() < 0 or values.max() > 255):
                    raise ValueError("pixel values outside 0..255")
                pixels = values.astype(np.uint8)
                side = int(round(len(pixels) ** 0.5))
                if side * side != len(pixels) or side == 0:
                    raise ValueError(f"{len(pixels)} pixels is not a square image")
                emotion = int(row["emotion"])
                if not 0 <= emotion < len(FER2013_CSV_ORDER):
                    raise ValueError(f"emotion {emotion} outside 0..{len(FER2013_CSV_ORDER) - 1}")
                label = FER2013_CSV_ORDER[emotion]
            except ValueError as exc:
                errors.append((name, f"{name}: bad row ({exc})"))
                continue
            images.append(resize_square(pixels.reshape(side, side), size))
            labels.append(names.index(label))
            paths.append(name)
    if not images:
        raise ValueError(f"{csv_path}: no rows with Usage={usage!r}")
    _report_errors(errors, str(csv_path))
    return ImageSet(np.stack(images), np.array(labels, dtype=np.int64), tuple(names), paths, errors=errors)


def _votes_per_class(votes: np.ndarray | list[list[int]], class_names: tuple[str, ...]) -> np.ndarray:
    """N x 10 FER+ vote counts -> N x len(class_names): each emotion column moved to its class's position;
    columns of classes not in ``class_names`` (and unknown, NF) are left out."""
    votes = np.asarray(votes, dtype=np.float32).reshape(-1, len(FERPLUS_VOTE_COLUMNS) + 2)
    per_class = np.zeros((len(votes), len(class_names)), dtype=np.float32)
    for position, column in enumerate(FERPLUS_VOTE_COLUMNS):
        if canonical_class(column) in class_names:
            per_class[:, class_names.index(canonical_class(column))] = votes[:, position]
    return per_class


def ferplus_targets(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From N x 10 vote counts (8 emotions, unknown, NF): (keep mask, majority label, soft targets).

    An image is dropped when its most-voted column is unknown or NF (ties go to the emotion), as in
    Barsoum et al.'s majority-vote scheme. Labels index :data:`FERPLUS_CLASSES`.
    """
    votes = np.asarray(votes, dtype=np.float32)
    emotion_votes = votes[:, :8]
    best = emotion_votes.max(axis=1)
    keep = (best > 0) & (best >= votes[:, 8:].max(axis=1))
    reordered = _votes_per_class(votes, FERPLUS_CLASSES)
    labels = reordered.argmax(axis=1).astype(np.int64)
    totals = reordered.sum(axis=1, keepdims=True)
    soft = np.divide(reordered, totals, out=np.zeros_like(reordered), where=totals > 0)
    return keep, labels, soft.astype(np.float32)


def read_ferplus_votes(votes_csv: str | os.PathLike) -> list[tuple[str, list[int]]]:
    """The rows of a FER+ votes file whose image FER+ kept: (path relative to the data root, the 10 vote counts in
    the order of FERPLUS_VOTE_COLUMNS, unknown, NF)."""
    columns = (*FERPLUS_VOTE_COLUMNS, "unknown", "NF")
    rows = []
    with open(votes_csv, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("path", *columns) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{votes_csv}: missing FER+ vote columns {missing}")
        for row in reader:
            if row.get("ferplus_status", "ok") == "ok":
                rows.append((row["path"], [int(row[c]) for c in columns]))
    return rows


def load_ferplus(
    votes_csv: str | os.PathLike,
    split: str,
    size: int,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> ImageSet:
    """FER2013 images relabelled by the FER+ crowd votes (8 classes, majority + soft targets)."""
    votes_csv = Path(votes_csv)
    root = votes_csv.parent
    split_dir = resolve_split_dir(root, split)
    prefix = split_dir.name + "/"
    rows = [(path, counts) for path, counts in read_ferplus_votes(votes_csv) if path.startswith(prefix)]
    paths = [root / path for path, _ in rows]
    votes = [counts for _, counts in rows]
    if not paths:
        raise ValueError(f"{votes_csv}: no FER+ rows for split {split!r}")
    keep, labels, soft = ferplus_targets(np.array(votes))
    paths = [p for p, k in zip(paths, keep, strict=True) if k]
    images, ok, errors = decode_files(paths, size, cache_dir=cache_dir, use_cache=use_cache)
    _report_errors(errors, str(votes_csv))
    labels, soft = labels[keep][ok], soft[keep][ok]
    kept_paths = [str(p) for p, k in zip(paths, ok, strict=True) if k]
    return ImageSet(images[ok], labels, FERPLUS_CLASSES, kept_paths, soft_labels=soft, errors=errors)


def mix_ferplus_votes(data: ImageSet, votes_csv: str | os.PathLike, weight: float) -> ImageSet:
    """``data`` (FER2013 folder labels) with soft targets: (1 - weight) x its own label + weight x the FER+ crowd's
    vote distribution over ``data``'s classes (votes for other columns, e.g. contempt, unknown, NF, are ignored).

    Images without FER+ votes for any of those classes keep their one-hot label. Matching is by
    ``<class folder>/<file name>``, the last two parts of each path in the votes file and in ``data``.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"FER+ vote weight must be in [0, 1], got {weight}")
    rows = read_ferplus_votes(votes_csv)
    per_class = _votes_per_class([counts for _, counts in rows], data.class_names)
    totals = per_class.sum(axis=1)
    votes_by_key = {
        "/".join(Path(path).parts[-2:]): per_class[i] / totals[i] for i, (path, _) in enumerate(rows) if totals[i] > 0
    }
    soft = np.eye(len(data.class_names), dtype=np.float32)[data.labels]
    matched = 0
    for i, path in enumerate(data.paths):
        votes = votes_by_key.get("/".join(Path(path).parts[-2:]))
        if votes is not None:
            soft[i] = (1.0 - weight) * soft[i] + weight * votes
            matched += 1
    if matched == 0:
        raise ValueError(f"{votes_csv}: no FER+ votes match the {len(data)} training images")
    return ImageSet(data.images, data.labels, data.class_names, data.paths, soft, list(data.errors))


def load_split(
    source: str | os.PathLike,
    split: str | None,
    size: int,
    *,
    labels: str = "folder",
    class_names: tuple[str, ...] | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> ImageSet:
    """One entry point for every supported source.

    ``source``: a class-folder root (or split folder), a ``fer2013.csv`` file, or a FER+ votes file
    (``labels="ferplus"``; or a data root containing ``ferplus_votes.csv``).
    """
    source = Path(source)
    if labels == "ferplus":
        votes = source if source.suffix == ".csv" else source / "ferplus_votes.csv"
        return load_ferplus(votes, split or "train", size, cache_dir=cache_dir, use_cache=use_cache)
    if labels != "folder":
        raise ValueError(f"unknown labels source {labels!r} (use 'folder' or 'ferplus')")
    if source.suffix == ".csv":
        return load_fer2013_csv(source, split or "train", size, class_names=class_names)
    return load_class_folders(source, split, size, class_names=class_names, cache_dir=cache_dir, use_cache=use_cache)
