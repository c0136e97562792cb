"""Accuracy of averaging several models' probabilities on a split (the ensemble experiment in MODEL_CARD.md).

    python scripts/evaluate_ensemble.py ../shared/datasets/fer2013 runs/a/model.safetensors \
        runs/b/model.safetensors --tta flip
"""

from __future__ import annotations

import argparse

import numpy as np

from facexpr.data.augment import TTA_MODES
from facexpr.data.datasets import load_split
from facexpr.evaluation.evaluate import predict_proba
from facexpr.evaluation.metrics import classification_metrics
from facexpr.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("weights", nargs="+", help="two or more weights files with the same classes and input")
    parser.add_argument("--split", default="val")
    parser.add_argument("--tta", choices=TTA_MODES, help="override each model's own test-time augmentation")
    args = parser.parse_args()

    models = [load_model(path) for path in args.weights]
    first = models[0].config
    for path, model in zip(args.weights, models, strict=True):
        if (model.class_names, model.config.input_size) != (first.class_names, first.input_size):
            raise SystemExit(f"{path}: classes or input size differ from {args.weights[0]}")
    images = load_split(args.data_dir, args.split, first.input_size, class_names=first.class_names)
    probs = [predict_proba(model, images.images, tta=args.tta) for model in models]
    for path, p in zip(args.weights, probs, strict=True):
        metrics = classification_metrics(images.labels, p.argmax(1), first.class_names)
        print(f"{path}: accuracy {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f}")
    metrics = classification_metrics(images.labels, np.mean(probs, axis=0).argmax(1), first.class_names)
    print(f"average of {len(models)}: accuracy {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f}")


if __name__ == "__main__":
    main()
