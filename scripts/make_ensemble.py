"""Combine trained models into one ensemble weights file (the mean of their probabilities).

    python scripts/make_ensemble.py runs/a/model.safetensors runs/b/model.safetensors \
        --out runs/ensemble/model.safetensors --tta flip
    python scripts/make_ensemble.py runs/c/model.safetensors fer2013 --only 0,2 ...   # c + the shipped member 1

The result loads, evaluates, exports to ONNX and ships like any single model; evaluate it with
`facexpr evaluate --model` and package it with scripts/package_model.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facexpr.data.augment import TTA_MODES
from facexpr.models import load_networks, make_ensemble, save_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "weights", nargs="+", help="weights files or shipped model names; an ensemble contributes each of its networks"
    )
    parser.add_argument("--out", type=Path, required=True, help="the ensemble's .safetensors file")
    parser.add_argument("--name", default="ensemble")
    parser.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation (default: the first model's)")
    parser.add_argument(
        "--only", help="comma-separated indices of the networks to keep, in the order listed (e.g. 2,1)"
    )
    args = parser.parse_args()
    try:
        networks = [network for _, network in load_networks(args.weights, args.only)]
        ensemble = make_ensemble(networks, name=args.name, tta=args.tta)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    out = save_weights(ensemble, args.out)
    parameters = sum(p.numel() for p in ensemble.parameters())
    size = out.stat().st_size / 1e6
    print(f"wrote {out} ({size:.1f} MB, {parameters:,} parameters): {ensemble.config.meta['recipe']}")


if __name__ == "__main__":
    main()
