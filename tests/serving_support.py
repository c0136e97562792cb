"""Helpers shared by the serving and browser tests (not a test module): real-face scenes, a .y4m camera feed,
and a real ``facexpr serve`` process on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from facexpr.detection.face_detectors import FaceDetector
from facexpr.preprocessing import read_image, to_gray

BACKGROUND = 150
TINY_MODEL = "resemotenet_w025_g48"


def yunet_file(shared_dir: Path) -> Path:
    return shared_dir / "models" / "yunet_n_640_640.onnx"


def _upscaled(path: Path, side: int) -> np.ndarray:
    return cv2.resize(to_gray(read_image(path)), (side, side), interpolation=cv2.INTER_CUBIC)


def detectable_faces(faces_dir: Path, detector: FaceDetector, count: int, side: int = 150) -> list[np.ndarray]:
    """``count`` committed FER faces, upscaled to ``side`` pixels, that the face detector finds on their own."""
    found = []
    for path in sorted((faces_dir / "val").glob("*/*.jpg")):
        face = _upscaled(path, side)
        canvas = np.full((side * 2, side * 2), BACKGROUND, np.uint8)
        canvas[side // 2 : side // 2 + side, side // 2 : side // 2 + side] = face
        if any(d.score > 0.8 for d in detector.detect(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))):
            found.append(face)
            if len(found) == count:
                return found
    raise AssertionError(f"only {len(found)} detectable faces under {faces_dir}")


def compose_scene(faces: Sequence[np.ndarray], width: int = 640, height: int = 480, shift: int = 0) -> np.ndarray:
    """The faces side by side on a plain background (BGR); ``shift`` moves them right, for moving video."""
    canvas = np.full((height, width), BACKGROUND, np.uint8)
    side = faces[0].shape[0]
    gap = (width - len(faces) * side) // (len(faces) + 1)
    top = (height - side) // 2
    for i, face in enumerate(faces):
        left = gap + i * (side + gap) + shift
        canvas[top : top + side, left : left + side] = face
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def write_y4m(path: Path, frames: Sequence[np.ndarray], fps: int) -> Path:
    """Uncompressed YUV4MPEG2 (4:2:0), the format Chromium's fake camera (``--use-file-for-fake-video-capture``)
    plays in a loop."""
    height, width = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/v1/health", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.2)
    raise AssertionError(f"{url} did not become healthy within {timeout:.0f} s")


@contextlib.contextmanager
def running_server(yunet: Path, log: Path, *extra: str, model: str = TINY_MODEL) -> Iterator[str]:
    """``facexpr serve`` in a subprocess on a free port (default host), its output in ``log``; yields its URL."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FACEXPR_THREADS": "1"}
    command = [sys.executable, "-m", "facexpr", "serve", "--port", str(port), "--model", model, "--yunet", str(yunet)]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [*command, "--log-level", "warning", *extra], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
