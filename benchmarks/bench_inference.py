"""Inference speed: face-crop classification and the whole detection pipeline, torch vs ONNX Runtime.

Prints crops/s (batched), single-crop latency, and pipeline FPS on 640x480 frames holding 1 and 3 real FER
faces, each against a baseline measured in the same run (per-crop loop; unpinned threads). Targets from the
issue: >= 3,000 crops/s batched, <= 1 ms per single crop, >= 30 FPS for the pipeline.

    FACEXPR_YUNET=../shared/models/yunet_n_640_640.onnx python benchmarks/bench_inference.py
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from facexpr.detection.backends import OnnxRuntimeBackend, TorchBackend, cached_onnx
from facexpr.detection.detector import Detector
from facexpr.models import load_model
from facexpr.models.weights import DEFAULT_MODEL, pretrained_path
from facexpr.preprocessing import prepare_faces, read_image, to_gray

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "tests" / "fixtures" / "faces"


def _load(name: str | None):
    if name:
        return load_model(name), name
    try:
        pretrained_path(DEFAULT_MODEL)
        return load_model(), f"shipped model {DEFAULT_MODEL!r}"
    except FileNotFoundError:
        print("note: the shipped model is not installed; using random weights of resemotenet_w025_g48 (same cost)")
        return load_model("resemotenet_w025_g48"), "resemotenet_w025_g48 (random weights)"


def _rate(run: Callable[[], object], seconds: float) -> tuple[float, list[float]]:
    """Calls per second over about ``seconds`` (after one warm-up call) and the per-call times."""
    run()
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return len(times) / sum(times), times


def _scenes(gray_faces: list[np.ndarray], count: int, frames: int, rng: np.random.Generator) -> list[np.ndarray]:
    scenes = []
    for _ in range(frames):
        background = gray_faces[int(rng.integers(len(gray_faces)))]
        scene = cv2.GaussianBlur(cv2.resize(background, (640, 480)), (0, 0), 3)
        for slot in range(count):
            side = int(rng.integers(110, 150))
            x = 15 + slot * 210 + int(rng.integers(0, 200 - side)) if count > 1 else 250
            y = int(rng.integers(60, 480 - side - 20))
            face = gray_faces[int(rng.integers(len(gray_faces)))]
            scene[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)
        scenes.append(cv2.cvtColor(scene, cv2.COLOR_GRAY2BGR))
    return scenes


def _report_pipeline(name: str, detector: Detector, scenes: list[np.ndarray], seconds: float) -> None:
    frames = itertools.cycle(scenes)
    fps, times = _rate(lambda: detector.predict_image(next(frames)), seconds)
    print(f"    {name:28s} {fps:6.1f} FPS  ({statistics.median(times) * 1e3:.1f} ms median)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="weights file or name (default: the shipped model, else random weights)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="pinned thread count")
    args = parser.parse_args()

    model, described = _load(args.model)
    config = model.config
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {described}, {params / 1e6:.2f} M parameters, input {config.input_size}px")
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f} (other jobs share these cores)")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)

    files = sorted(FACES.glob("*/*/*.jpg"))
    gray_faces = [to_gray(read_image(f)) for f in files]
    crops = prepare_faces([gray_faces[i % len(gray_faces)] for i in range(args.batch)], config)
    onnx_path = cached_onnx(model)
    counts = sorted({1, args.threads})
    backends: dict[str, tuple[int, Callable[[np.ndarray], np.ndarray]]] = {}
    for threads in counts:
        backends[f"torch {threads}t"] = (threads, TorchBackend(model))
        backends[f"onnxruntime {threads}t"] = (threads, OnnxRuntimeBackend(onnx_path, threads=threads))

    print(f"\n== classification of face crops (batch {args.batch})")
    for name, (threads, backend) in backends.items():
        torch.set_num_threads(threads)
        per_second, _ = _rate(lambda b=backend: b(crops), args.seconds)
        _, times = _rate(lambda b=backend: b(crops[:1]), args.seconds)
        print(
            f"  {name:16s} batched {per_second * args.batch:7.0f} crops/s"
            f"   single crop {statistics.median(times) * 1e3:7.3f} ms median"
        )
    torch.set_num_threads(1)
    loop = crops[:64]
    torch_loop = backends["torch 1t"][1]
    per_second, _ = _rate(lambda: [torch_loop(loop[i : i + 1]) for i in range(len(loop))], args.seconds)
    print(f"  baseline: torch per-crop loop (1 thread) {per_second * len(loop):7.0f} crops/s")
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    print("\n== whole pipeline on 640x480 frames (YuNet + crops + classifier)")
    for count in (1, 3):
        scenes = _scenes(gray_faces, count, 16, rng)
        runs = {
            f"onnxruntime {args.threads}t, no spin": Detector(
                model, "yunet", backend="onnxruntime", threads=args.threads
            ),
            "onnxruntime 1t": Detector(model, "yunet", backend="onnxruntime", threads=1),
            "torch 1t": Detector(model, "yunet", backend="torch"),
        }
        torch.set_num_threads(1)
        found = [len(runs["torch 1t"].predict_image(s)) for s in scenes]
        print(f"  {count} face(s) per frame: detected {sum(found)}/{count * len(scenes)}")
        for name, detector in runs.items():
            _report_pipeline(name, detector, scenes, args.seconds)
        # Baseline: library defaults (all-core pools for OpenCV and torch, ORT workers spinning between calls).
        cv2.setNumThreads(-1)
        torch.set_num_threads(os.cpu_count() or 1)
        unpinned = Detector(model, "yunet", backend="torch")
        unpinned.backend = OnnxRuntimeBackend(onnx_path, threads=args.threads, spinning=True)
        _report_pipeline("baseline: unpinned defaults", unpinned, scenes, args.seconds)
        cv2.setNumThreads(1)
        torch.set_num_threads(1)
        haar = Detector(model, "haar", backend="onnxruntime", threads=args.threads)
        _report_pipeline("reference: Haar + onnxrt", haar, scenes, args.seconds)


if __name__ == "__main__":
    main()
