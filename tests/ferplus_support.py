"""Helpers shared by the dataset and training tests (not a test module): FER+ vote files written the way
``../shared/datasets/fer2013/ferplus_votes.csv`` is laid out."""

from __future__ import annotations

import csv
from pathlib import Path

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")


def vote_counts(**counts: int) -> list[int]:
    """One row's vote counts in VOTE_COLUMNS order; unnamed columns are 0."""
    return [counts.get(column, 0) for column in VOTE_COLUMNS]


def write_votes_csv(path: Path, rows: list[tuple[str, str, str, list[int]]]) -> None:
    """Rows of (path relative to the data root, FER2013 label, ferplus_status, vote counts)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "fer2013_label", "ferplus_status", *VOTE_COLUMNS])
        for relative, label, status, counts in rows:
            writer.writerow([relative, label, status, *counts])
