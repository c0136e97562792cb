"""Data set audit: exact and near duplicates (within and across splits), label conflicts, blank images,
class balance and unreadable files. Every check is one pass over the images (hash tables, no all-pairs).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facexpr.data.datasets import SPLIT_ALIASES, resolve_split_dir, scan_class_folders
from facexpr.preprocessing import ImageError, read_image, to_gray

# Pixel standard deviation (0..255 scale) below which an image is reported as blank/constant.
BLANK_STD = 2.0
MAX_EXAMPLES = 20  # example groups per finding in the JSON report
MAX_FILES_PER_EXAMPLE = 5
MAX_UNREADABLE_LISTED = 200


def pixel_hash(gray: np.ndarray) -> str:
    """SHA-1 of a decoded gray image (its shape and uint8 pixels): equal iff the pixels are identical."""
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    digest = hashlib.sha1(f"{gray.shape}".encode())
    digest.update(gray.tobytes())
    return digest.hexdigest()


def pixel_hashes(images: np.ndarray) -> list[str]:
    """:func:`pixel_hash` of every image in an N x H x W array."""
    return [pixel_hash(image) for image in images]


def difference_hash(gray: np.ndarray, size: int = 8) -> int:
    """dHash: the sign of horizontal gradients on a (size+1) x size thumbnail, as a size*size-bit integer."""
    thumb = cv2.resize(gray, (size + 1, size), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (thumb[:, 1:] > thumb[:, :-1]).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def find_splits(root: str | os.PathLike) -> list[tuple[str, Path]]:
    """(split name, folder) for each of train/val/test under ``root``; or ``root`` itself if it holds classes."""
    root = Path(root)
    splits = []
    for split in SPLIT_ALIASES:
        try:
            splits.append((split, resolve_split_dir(root, split)))
        except FileNotFoundError:
            continue
    if not splits:
        scan_class_folders(root)  # raises a clear error when root holds no class folders either
        splits.append((root.name or "data", root))
    return splits


@dataclass
class _Image:
    path: str  # relative to the audited root
    split: str
    label: str
    exact: str
    near: int
    std: float
    mean: float


def _scan(root: Path, splits: Sequence[tuple[str, Path]]) -> tuple[list[_Image], list[dict[str, str]], dict]:
    images: list[_Image] = []
    unreadable: list[dict[str, str]] = []
    files_per_split: Counter[str] = Counter()
    for split, split_dir in splits:
        for path, label in scan_class_folders(split_dir):
            files_per_split[split] += 1
            name = os.path.relpath(path, root)
            try:
                gray = to_gray(read_image(path))
            except ImageError as exc:
                unreadable.append({"path": name, "split": split, "problem": str(exc)})
                continue
            images.append(
                _Image(
                    path=name,
                    split=split,
                    label=label,
                    exact=pixel_hash(gray),
                    near=difference_hash(gray),
                    std=float(gray.std()),
                    mean=float(gray.mean()),
                )
            )
    return images, unreadable, dict(files_per_split)


def _groups(images: Sequence[_Image], key: str, members: Iterable[int]) -> list[list[int]]:
    table: dict[Any, list[int]] = defaultdict(list)
    for i in members:
        table[getattr(images[i], key)].append(i)
    return [group for group in table.values() if len(group) > 1]


def _describe(images: Sequence[_Image], group: list[int]) -> dict[str, Any]:
    return {
        "size": len(group),
        "splits": sorted({images[i].split for i in group}),
        "labels": sorted({images[i].label for i in group}),
        "files": [images[i].path for i in group[:MAX_FILES_PER_EXAMPLE]],
    }


def _group_summary(images: Sequence[_Image], groups: list[list[int]]) -> dict[str, Any]:
    within: Counter[str] = Counter()
    cross = 0
    conflicting = []
    for group in groups:
        splits = {images[i].split for i in group}
        if len(splits) == 1:
            within[next(iter(splits))] += 1
        else:
            cross += 1
        if len({images[i].label for i in group}) > 1:
            conflicting.append(group)
    by_size = sorted(groups, key=lambda g: (-len(g), images[g[0]].path))
    return {
        "groups": len(groups),
        "images_in_groups": sum(len(g) for g in groups),
        "redundant_images": sum(len(g) - 1 for g in groups),
        "within_split_groups": dict(sorted(within.items())),
        "cross_split_groups": cross,
        "conflicting_label_groups": len(conflicting),
        "examples": [_describe(images, g) for g in by_size[:MAX_EXAMPLES]],
        "conflicting_examples": [_describe(images, g) for g in conflicting[:MAX_EXAMPLES]],
    }


def _leakage(images: Sequence[_Image], split_names: Sequence[str]) -> dict[str, Any]:
    """For each later split, its images pixel-identical to some image of an earlier split (e.g. val in train)."""
    hashes_by_split: dict[str, set[str]] = defaultdict(set)
    for image in images:
        hashes_by_split[image.split].add(image.exact)
    leakage = {}
    for j, later in enumerate(split_names):
        for earlier in split_names[:j]:
            leaked = [
                image.path for image in images if image.split == later and image.exact in hashes_by_split[earlier]
            ]
            leakage[f"{later}_in_{earlier}"] = {"n_images": len(leaked), "examples": leaked[:MAX_EXAMPLES]}
    return leakage


def _class_balance(images: Sequence[_Image], split_names: Sequence[str]) -> dict[str, dict[str, Any]]:
    balance = {}
    for split in split_names:
        counts = Counter(image.label for image in images if image.split == split)
        total = sum(counts.values())
        balance[split] = {
            "n_images": total,
            "counts": dict(sorted(counts.items())),
            "percent": {name: round(100.0 * n / total, 2) for name, n in sorted(counts.items())},
        }
    return balance


def audit_dataset(root: str | os.PathLike, *, blank_std: float = BLANK_STD) -> dict[str, Any]:
    """Audit every split under ``root`` (train/val/test in any spelling, or ``root`` as one split)."""
    root = Path(root)
    splits = find_splits(root)
    split_names = [name for name, _ in splits]
    images, unreadable, files_per_split = _scan(root, splits)

    exact_groups = _groups(images, "exact", range(len(images)))
    blank = [i for i, image in enumerate(images) if image.std < blank_std]
    blank_set = set(blank)
    # Near duplicates: same perceptual hash but different pixels. Blank images all share one hash, so they
    # are reported on their own and left out here.
    near_groups = [
        group
        for group in _groups(images, "near", (i for i in range(len(images)) if i not in blank_set))
        if len({images[i].exact for i in group}) > 1
    ]
    return {
        "data_dir": str(root),
        "splits": {name: str(path) for name, path in splits},
        "n_files": sum(files_per_split.values()),
        "n_images": len(images),
        "class_balance": _class_balance(images, split_names),
        "exact_duplicates": {"method": "sha1 of decoded gray uint8 pixels", **_group_summary(images, exact_groups)},
        "leakage": _leakage(images, split_names),
        "near_duplicates": {
            "method": "identical 64-bit dHash (9x8 thumbnail), pixels not identical, blank images excluded",
            **_group_summary(images, near_groups),
        },
        "blank": {
            "threshold_std": blank_std,
            "count": len(blank),
            "per_split": dict(sorted(Counter(images[i].split for i in blank).items())),
            "examples": [
                {"path": images[i].path, "std": round(images[i].std, 3), "mean": round(images[i].mean, 1)}
                for i in blank[:MAX_EXAMPLES]
            ],
        },
        "unreadable": {
            "count": len(unreadable),
            "per_split": dict(sorted(Counter(item["split"] for item in unreadable).items())),
            "files": unreadable[:MAX_UNREADABLE_LISTED],
        },
    }


def format_audit(report: dict[str, Any]) -> str:
    """A short human-readable summary of :func:`audit_dataset`'s report."""
    lines = [f"data: {report['data_dir']}  ({report['n_images']} images readable of {report['n_files']} files)"]
    lines.append("class balance:")
    for split, balance in report["class_balance"].items():
        parts = ", ".join(f"{name} {n} ({balance['percent'][name]:.1f}%)" for name, n in balance["counts"].items())
        lines.append(f"  {split} ({balance['n_images']}): {parts}")
    for key, title in (("exact_duplicates", "exact duplicates"), ("near_duplicates", "near duplicates")):
        found = report[key]
        within = ", ".join(f"{s} {n}" for s, n in found["within_split_groups"].items()) or "none"
        lines.append(
            f"{title}: {found['groups']} groups ({found['images_in_groups']} images, "
            f"{found['redundant_images']} redundant); within split: {within}; "
            f"across splits: {found['cross_split_groups']}; conflicting labels: {found['conflicting_label_groups']}"
        )
        for example in found["conflicting_examples"][:3]:
            lines.append(f"    conflict {'/'.join(example['labels'])}: {', '.join(example['files'])}")
    for name, leak in report["leakage"].items():
        later, earlier = name.split("_in_")
        lines.append(f"leakage: {leak['n_images']} {later} images are pixel-identical to a {earlier} image")
    blank = report["blank"]
    lines.append(f"blank images (pixel std < {blank['threshold_std']}): {blank['count']}")
    for example in blank["examples"][:3]:
        lines.append(f"    {example['path']} (std {example['std']}, mean {example['mean']})")
    unreadable = report["unreadable"]
    lines.append(f"unreadable files: {unreadable['count']}")
    for item in unreadable["files"][:10]:
        lines.append(f"    {item['problem']}")
    return "\n".join(lines)
