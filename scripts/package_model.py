"""Put a trained run's weights into the package, with its validation figures in the stored config.

    facexpr evaluate ../shared/datasets/fer2013 --model runs/fer2013_w025/model.safetensors --split val \
        --tta flip --report reports/fer2013_val.json
    python scripts/package_model.py runs/fer2013_w025/model.safetensors reports/fer2013_val.json --name fer2013

The packaged model uses the test-time augmentation the report was measured with, so the stored figures
describe what `facexpr predict` does out of the box.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facexpr.models import load_model, save_weights
from facexpr.models.weights import PRETRAINED

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "src" / "facexpr" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, help="the run's model.safetensors")
    parser.add_argument("report", type=Path, help="JSON report of `facexpr evaluate` on the validation split")
    parser.add_argument("--name", default="fer2013", choices=sorted(PRETRAINED))
    parser.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    args = parser.parse_args()

    model = load_model(args.weights)
    report = json.loads(args.report.read_text())
    if list(report["class_names"]) != list(model.class_names):
        raise SystemExit(f"{args.report}: class names differ from the model's")
    meta = dict(model.config.meta)
    meta.update(
        shipped_as=args.name,
        val_split=report.get("split", "val"),
        val_tta=report.get("tta", "none"),
        val_accuracy=report["accuracy"],
        val_macro_f1=report["macro_f1"],
        val_recall={name: report["per_class"][name]["recall"] for name in model.class_names},
        val_images=report["n_images"],
    )
    model.config = model.config.replace(name=args.name, tta=meta["val_tta"], meta=meta)
    out = save_weights(model, WEIGHTS_DIR / PRETRAINED[args.name], half=args.half)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): val accuracy {meta['val_accuracy']:.4f}")


if __name__ == "__main__":
    main()
