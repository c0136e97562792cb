"""Accuracy of averaging several models' probabilities on a split (the ensemble experiment in MODEL_CARD.md).

    python scripts/evaluate_ensemble.py ../shared/datasets/fer2013 runs/a/model.safetensors \
        runs/b/model.safetensors --tta flip

A file that is itself an ensemble contributes each of its networks (as ``make_ensemble`` does), so every network
weighs the same. After the average, one line per network gives the average's accuracy gain over it with a 95 %
paired bootstrap interval (same faces resampled for both), to tell a real gain from noise.
"""

from __future__ import annotations

import argparse

import numpy as np

from facexpr.data.augment import TTA_MODES
from facexpr.data.datasets import load_split
from facexpr.evaluation.evaluate import predict_proba
from facexpr.evaluation.metrics import accuracy_interval, classification_metrics
from facexpr.models import load_networks, make_ensemble


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("weights", nargs="+", help="weights files, same classes and input (two networks or more)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation (default: the first model's)")
    parser.add_argument(
        "--only", help="comma-separated indices of the networks to average, in the order listed (e.g. 1,2)"
    )
    args = parser.parse_args()

    try:
        names, models = zip(*load_networks(args.weights, args.only), strict=True)
        ensemble = make_ensemble(models, tta=args.tta)  # the checks and TTA default of a shipped ensemble
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    tta = ensemble.config.tta
    images = load_split(args.data_dir, args.split, ensemble.config.input_size, class_names=ensemble.class_names)
    member_probs = [predict_proba(model, images.images, tta=tta) for model in models]
    member_predictions = [probs.argmax(1) for probs in member_probs]
    member_accuracies = []
    for path, predictions in zip(names, member_predictions, strict=True):
        metrics = classification_metrics(images.labels, predictions, ensemble.class_names)
        member_accuracies.append(metrics["accuracy"])
        print(f"{path}: accuracy {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f}")
    # What the ensemble model answers (tests/test_ensemble.py), without running every member a second time.
    predictions = np.mean(member_probs, axis=0).argmax(1)
    metrics = classification_metrics(images.labels, predictions, ensemble.class_names)
    figures = f"accuracy {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f}"
    print(f"average of {len(models)} (tta {tta}): {figures}")
    for path, member, accuracy in zip(names, member_predictions, member_accuracies, strict=True):
        low, high = accuracy_interval(images.labels, predictions, member)
        gain = metrics["accuracy"] - accuracy
        print(f"gain over {path}: {gain:+.4f} (95 % paired bootstrap interval {low:+.4f} to {high:+.4f})")


if __name__ == "__main__":
    main()
