"""Tune the square face-crop margin so detector boxes reproduce FER2013's tight crops.

FER2013 val faces are upscaled and pasted into 640x480 scenes (background: another FER image, blurred and
upscaled), YuNet detects them, and each candidate (scale, shift) crop is resized to 48x48 and compared with
the original face by Pearson correlation. Prints the grid and the best setting.

    OMP_NUM_THREADS=1 nice -n 19 python scripts/tune_face_margin.py --faces 300
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from facexpr.detection.crops import crop_square, square_box
from facexpr.detection.face_detectors import YuNetDetector
from facexpr.preprocessing import read_image, resize_square, to_gray

ROOT = Path(__file__).resolve().parents[1]


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0, min(ax1, bx1) - max(a[0], b[0])), max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "fer2013" / "val"))
    parser.add_argument("--faces", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--background",
        choices=("photo", "plain"),
        default="photo",
        help="photo: another FER image blurred and upscaled; plain: uniform gray",
    )
    args = parser.parse_args()
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    files = sorted(Path(args.data).glob("*/*.jpg"))
    picks = rng.choice(len(files), size=min(args.faces * 2, len(files)), replace=False)
    faces = [to_gray(read_image(files[i])) for i in picks[: args.faces]]
    backgrounds = [to_gray(read_image(files[i])) for i in picks[args.faces :]]
    detector = YuNetDetector()
    scales = np.round(np.arange(0.85, 1.46, 0.05), 2)
    shifts = np.round(np.arange(-0.10, 0.101, 0.025), 3)
    scores = np.zeros((len(scales), len(shifts)))
    ratios, offsets, found = [], [], 0
    for face, background in zip(faces, backgrounds, strict=False):
        if args.background == "plain":
            scene = np.full((480, 640), 150, np.uint8)
        else:
            scene = cv2.GaussianBlur(cv2.resize(background, (640, 480)), (0, 0), 3)
        side = int(rng.integers(96, 201))
        x0, y0 = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
        scene[y0 : y0 + side, x0 : x0 + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)
        detections = detector.detect(cv2.cvtColor(scene, cv2.COLOR_GRAY2BGR))
        truth = (x0, y0, side, side)
        best = max(detections, key=lambda d: _iou(d.box, truth), default=None)
        if best is None or _iou(best.box, truth) < 0.3:
            continue
        found += 1
        x, y, w, h = best.box
        ratios.append(side / max(w, h))
        offsets.append(((y0 + side / 2) - (y + h / 2)) / side)
        target = face.astype(np.float32).ravel()
        for i, scale in enumerate(scales):
            for j, shift in enumerate(shifts):
                crop = resize_square(crop_square(scene, square_box(best.box, scale=scale, shift=shift)), 48)
                scores[i, j] += np.corrcoef(crop.astype(np.float32).ravel(), target)[0, 1]
    scores /= max(found, 1)
    print(f"faces: {len(faces)}, detected: {found} ({found / len(faces):.1%})")
    print("mean correlation with the original 48x48 face; rows = scale, columns = shift")
    print("scale  " + " ".join(f"{s:+.3f}" for s in shifts))
    for i, scale in enumerate(scales):
        print(f"{scale:5.2f}  " + " ".join(f"{v:.3f} " for v in scores[i]))
    i, j = np.unravel_index(np.argmax(scores), scores.shape)
    print(f"best: scale={scales[i]:.2f} shift={shifts[j]:+.3f} correlation={scores[i, j]:.3f}")
    print(f"current default (1.00, +0.000): {scores[list(scales).index(1.0), list(shifts).index(0.0)]:.3f}")
    print(
        f"direct fit: median side/max(w,h) = {np.median(ratios):.3f}, median centre offset = {np.median(offsets):+.3f}"
    )


if __name__ == "__main__":
    main()
