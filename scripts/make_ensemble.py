"""Combine trained models into one ensemble weights file (the mean of their probabilities).

    python scripts/make_ensemble.py runs/a/model.safetensors runs/b/model.safetensors \
        --out runs/ensemble/model.safetensors --tta flip

The result loads, evaluates, exports to ONNX and ships like any single model; evaluate it with
`facexpr evaluate --model` and package it with scripts/package_model.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facexpr.data.augment import TTA_MODES
from facexpr.models import load_model, make_ensemble, save_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="+", help="two or more weights files (or shipped model names)")
    parser.add_argument("--out", type=Path, required=True, help="the ensemble's .safetensors file")
    parser.add_argument("--name", default="ensemble")
    parser.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation (default: the first model's)")
    args = parser.parse_args()
    if len(args.weights) < 2:
        parser.error("give at least two weights files")
    try:
        ensemble = make_ensemble([load_model(w) for w in args.weights], name=args.name, tta=args.tta)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    out = save_weights(ensemble, args.out)
    parameters = sum(p.numel() for p in ensemble.parameters())
    size = out.stat().st_size / 1e6
    print(f"wrote {out} ({size:.1f} MB, {parameters:,} parameters): {ensemble.config.meta['recipe']}")


if __name__ == "__main__":
    main()
