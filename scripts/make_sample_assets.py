"""Build the bundled sample media in src/facexpr/assets from committed FER2013 faces (tests/fixtures/faces).

sample_faces.jpg: 640x480 still, three upscaled faces on a plain background.
sample_clip.mp4: 6 s, 8 fps, 480x270; two faces drift slowly while each cycles through three expressions.
Only faces YuNet finds in the composite are used, so the sample exercises the whole pipeline.

    FACEXPR_YUNET=../shared/models/yunet_n_640_640.onnx python scripts/make_sample_assets.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facexpr.detection.face_detectors import YuNetDetector
from facexpr.preprocessing import read_image, to_gray

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "tests" / "fixtures" / "faces" / "val"
ASSETS = ROOT / "src" / "facexpr" / "assets"
BACKGROUND = 150


def _face(path: Path, side: int) -> np.ndarray:
    return cv2.resize(to_gray(read_image(path)), (side, side), interpolation=cv2.INTER_CUBIC)


def _paste(canvas: np.ndarray, face: np.ndarray, x: int, y: int) -> None:
    side = face.shape[0]
    canvas[y : y + side, x : x + side] = face[:, :, None]


def _detectable(detector: YuNetDetector, path: Path, side: int) -> bool:
    canvas = np.full((side * 2, side * 2, 3), BACKGROUND, np.uint8)
    _paste(canvas, _face(path, side), side // 2, side // 2)
    return any(face.score > 0.8 for face in detector.detect(canvas))


def main() -> None:
    detector = YuNetDetector()
    wanted = ("happy", "surprise", "neutral", "sad", "angry", "fear")
    picks: dict[str, list[Path]] = {}
    for name in wanted:
        files = sorted((FACES / name).glob("*.jpg"))
        picks[name] = [p for p in files if _detectable(detector, p, 110)][:2]
        if not picks[name]:
            raise SystemExit(f"no detectable fixture face for {name}")
    ASSETS.mkdir(parents=True, exist_ok=True)

    still = np.full((480, 640, 3), BACKGROUND, np.uint8)
    for i, name in enumerate(("happy", "surprise", "sad")):
        _paste(still, _face(picks[name][0], 170), 25 + i * 205, 150)
    cv2.imwrite(str(ASSETS / "sample_faces.jpg"), still, [cv2.IMWRITE_JPEG_QUALITY, 85])

    fps, seconds, size = 8, 6, (480, 270)
    sequences = [
        [picks["neutral"][0], picks["happy"][0], picks["surprise"][0]],
        [picks["sad"][0], picks["angry"][0], picks["fear"][0]],
    ]
    writer = cv2.VideoWriter(str(ASSETS / "sample_clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    frames = fps * seconds
    for index in range(frames):
        frame = np.full((size[1], size[0], 3), BACKGROUND, np.uint8)
        phase = index * len(sequences[0]) // frames
        drift = int(round(12 * np.sin(2 * np.pi * index / frames)))
        for slot, sequence in enumerate(sequences):
            _paste(frame, _face(sequence[phase], 120), 50 + slot * 250 + drift, 70 + drift // 2)
        writer.write(frame)
    writer.release()
    for name in ("sample_faces.jpg", "sample_clip.mp4"):
        print(f"{ASSETS / name}: {(ASSETS / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
