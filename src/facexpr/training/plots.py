"""Loss/accuracy curves from Lightning's CSV log."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_epoch_metrics(metrics_csv: str | os.PathLike) -> dict[str, dict[int, float]]:
    """metric -> {epoch: value} from a Lightning CSVLogger file (rows are sparse)."""
    series: dict[str, dict[int, float]] = {}
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key in ("epoch", "step") or value in ("", None):
                    continue
                series.setdefault(key, {})[epoch] = float(value)
    return series


def plot_curves(metrics_csv: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    series = read_epoch_metrics(metrics_csv)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key, ax in (("train/loss", ax_loss), ("val/loss", ax_loss), ("train/acc", ax_acc), ("val/acc", ax_acc)):
        if key in series:
            epochs = sorted(series[key])
            ax.plot([e + 1 for e in epochs], [series[key][e] for e in epochs], label=key, marker=".")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_acc.set(title="accuracy", xlabel="epoch")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
