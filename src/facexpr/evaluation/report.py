"""Writing an evaluation report: JSON, a confusion-matrix figure and a text table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from facexpr.files import atomic_write

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def write_json(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write atomically, so an interrupted run never leaves half a report."""
    with atomic_write(path) as handle:
        handle.write((json.dumps(report, indent=2) + "\n").encode())
    return Path(path)


def plot_confusion(matrix: Any, class_names: list[str], path: str | os.PathLike, title: str = "") -> Path:
    """Two panels: raw counts and row-normalised rates (rows = true class)."""
    counts = np.asarray(matrix, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    n = len(class_names)
    fig, axes = plt.subplots(1, 2, figsize=(2 * (1.5 + 0.6 * n), 1.5 + 0.6 * n))
    for ax, values, panel, fmt in ((axes[0], counts, "counts", "d"), (axes[1], rates, "row-normalised", ".2f")):
        shown = values / max(values.max(), 1) if panel == "counts" else values
        ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    format(values[i, j], fmt),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shown[i, j] > 0.5 else "black",
                )
        ax.set_xticks(range(n), class_names, rotation=45, ha="right")
        ax.set_yticks(range(n), class_names)
        ax.set(xlabel="predicted", ylabel="true", title=panel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _metric_lines(result: dict[str, Any]) -> list[str]:
    width = max(len(name) for name in result["class_names"]) + 2
    lines = [f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name in result["class_names"]:
        row = result["per_class"][name]
        lines.append(
            f"{name:<{width}}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>10d}"
        )
    lines.append(_headline(result))
    return lines


def _headline(result: dict[str, Any]) -> str:
    interval = result.get("accuracy_ci95")
    spread = f" (95 % bootstrap interval {interval[0]:.4f}-{interval[1]:.4f})" if interval else ""
    return (
        f"accuracy {result['accuracy']:.4f}{spread}   macro-F1 {result['macro_f1']:.4f}   images {result['n_images']}"
    )


def format_report(report: dict[str, Any]) -> str:
    """The per-class table, the headline figures and the leakage-free figures when present."""
    lines = [
        f"model {report.get('model', '?')} on {report.get('data_dir', '?')} split={report.get('split')} "
        f"tta={report.get('tta', 'none')}"
    ]
    lines += _metric_lines(report)
    unreadable = report.get("unreadable", {})
    if unreadable.get("count"):
        lines.append(f"unreadable images skipped: {unreadable['count']} (first: {unreadable['files'][0]})")
    clean = report.get("leakage_free")
    if clean:
        lines.append(f"without {clean['n_excluded']} images pixel-identical to {clean['reference_dir']}:")
        lines.append(_headline(clean))
    return "\n".join(lines)
