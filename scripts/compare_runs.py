"""Epoch-by-epoch comparison of two training runs' validation figures (the paired rows of MODEL_CARD.md).

    python scripts/compare_runs.py reports/experiments/probe_lightreg20_pskd05_metrics.csv \
        reports/experiments/probe_lightreg20_metrics.csv --epochs 2-11 --last 6

Each argument is a run folder (its ``logs/metrics.csv`` is read) or a metrics CSV. Training here is deterministic
for a seed, so two runs of one recipe and seed that differ in one option pair epoch by epoch: the difference at
each epoch is that option's effect at that point of the schedule. Epochs are numbered from 0, as in the CSV.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facexpr.training.plots import read_epoch_metrics


def metrics_file(path: str) -> Path:
    candidate = Path(path)
    if candidate.is_dir():
        candidate = candidate / "logs" / "metrics.csv"
    if not candidate.is_file():
        raise SystemExit(f"error: {path}: no metrics CSV (expected a run folder or a metrics.csv file)")
    return candidate


def epoch_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        return int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an epoch range like 2-11") from None


def describe(differences: list[float]) -> str:
    mean = sum(differences) / len(differences)
    return f"mean {100 * mean:+.2f} points (from {100 * min(differences):+.2f} to {100 * max(differences):+.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the run to judge (folder or metrics CSV)")
    parser.add_argument("baseline", help="the run it is compared against")
    parser.add_argument("--metric", default="val/acc")
    parser.add_argument("--epochs", type=epoch_range, action="append", default=[], help="epoch range, e.g. 2-11")
    parser.add_argument("--last", type=int, help="also compare the last N epochs both runs have")
    parser.add_argument("--reach", type=float, nargs="*", default=[], help="first epoch at or above these values")
    args = parser.parse_args()

    series = []
    for path in (args.run, args.baseline):
        values = read_epoch_metrics(metrics_file(path)).get(args.metric)
        if not values:
            raise SystemExit(f"error: {path}: no {args.metric!r} column with values")
        series.append(values)
    run, baseline = series
    shared = sorted(set(run) & set(baseline))
    if not shared:
        raise SystemExit("error: the two runs have no epoch in common")

    for name, values in (("run", run), ("baseline", baseline)):
        best = max(values, key=values.get)
        print(f"{name}: best {args.metric} {100 * values[best]:.2f} % at epoch {best} of {len(values)} logged")
    ranges = list(args.epochs)
    if args.last:
        ranges.append((shared[-min(args.last, len(shared))], shared[-1]))
    for first, last in ranges:
        epochs = [epoch for epoch in shared if first <= epoch <= last]
        if not epochs:
            raise SystemExit(f"error: no shared epoch in {first}-{last}")
        differences = [run[epoch] - baseline[epoch] for epoch in epochs]
        print(f"epochs {first}-{last}: run - baseline {describe(differences)}")
    for target in args.reach:
        reached = [
            next((epoch for epoch in sorted(values) if values[epoch] >= target), None) for values in (run, baseline)
        ]
        print(f"first epoch at {args.metric} >= {target}: run {reached[0]}, baseline {reached[1]}")


if __name__ == "__main__":
    main()
