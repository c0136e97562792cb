"""Load on the HTTP API: N concurrent clients posting a real-face JPEG to ``/v1/predict`` for a bounded time.

Starts ``facexpr serve`` in a subprocess on a free 127.0.0.1 port, measures one client alone (the baseline, same
run), then ``--clients`` clients at once. Prints throughput, p50/p99 latency, errors (aim: zero; every answer must
hold the image's faces) and the server's resident memory before and after the load.

    OMP_NUM_THREADS=1 python benchmarks/bench_serving.py --clients 50 --seconds 20 \
        --yunet ../shared/models/yunet_n_640_640.onnx
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from facexpr.detection.sample import sample_paths

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Load:
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    wrong_faces: int = 0

    def report(self, label: str) -> float:
        done = len(self.latencies)
        throughput = done / self.seconds
        ms = np.array(self.latencies) * 1000 if done else np.zeros(1)
        errors = sum(self.errors.values()) + self.wrong_faces
        detail = ", ".join(f"{k}: {v}" for k, v in self.errors.items()) or "none"
        print(
            f"{label:<22} {self.clients:>3} clients  {done:>6} ok  {throughput:7.1f} req/s  "
            f"p50 {np.percentile(ms, 50):7.1f} ms  p99 {np.percentile(ms, 99):7.1f} ms  "
            f"errors {errors} ({detail}; wrong face count {self.wrong_faces})"
        )
        return throughput


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_load(url: str, image: bytes, faces: int, clients: int, seconds: float) -> Load:
    load = Load(clients, seconds)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    response = await http.post("/v1/predict", files={"file": ("faces.jpg", image, "image/jpeg")})
                except httpx.HTTPError as exc:
                    load.errors[type(exc).__name__] += 1
                    continue
                if response.status_code != 200:
                    load.errors[f"HTTP {response.status_code}"] += 1
                    continue
                load.latencies.append(time.perf_counter() - start)
                if len(response.json()["faces"]) != faces:
                    load.wrong_faces += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        load.seconds = time.perf_counter() - started  # includes the requests in flight at the deadline
    return load


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server not healthy after {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--baseline-seconds", type=float, default=5.0, help="one client alone first")
    parser.add_argument("--workers", type=int, default=1, help="facexpr serve --workers")
    parser.add_argument("--model", default="fer2013", help="default: the shipped model (its TTA included)")
    parser.add_argument(
        "--yunet", default=os.environ.get("FACEXPR_YUNET", ROOT.parent / "shared/models/yunet_n_640_640.onnx")
    )
    parser.add_argument("--image", type=Path, default=sample_paths()[0], help="default: bundled 3-face sample")
    args = parser.parse_args()

    image = args.image.read_bytes()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "facexpr", "serve", "--port", str(port), "--model", args.model]
    command += ["--yunet", str(args.yunet), "--workers", str(args.workers), "--log-level", "warning"]
    log = tempfile.NamedTemporaryFile(prefix="bench_serving_", suffix=".log", delete=False)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(url, process)
        rss_start = rss_mb(process.pid)
        faces = len(
            httpx.post(f"{url}/v1/predict", content=image, headers={"content-type": "image/jpeg"}).json()["faces"]
        )
        print(f"server: {' '.join(command[1:])}")
        print(f"image: {args.image} ({len(image):,} bytes, {faces} faces); server log: {log.name}")
        baseline = asyncio.run(run_load(url, image, faces, 1, args.baseline_seconds))
        rss_before = rss_mb(process.pid)
        loaded = asyncio.run(run_load(url, image, faces, args.clients, args.seconds))
        rss_after = rss_mb(process.pid)
        base_rate = baseline.report("baseline (1 client)")
        rate = loaded.report(f"load ({args.clients} clients)")
        errors = sum(loaded.errors.values()) + loaded.wrong_faces + sum(baseline.errors.values())
        print(f"throughput under load vs baseline: {rate / base_rate:.2f}x")
        print(f"server RSS: {rss_start:.0f} MB idle, {rss_before:.0f} MB before load, {rss_after:.0f} MB after load")
        print(f"errors: {errors} (target 0) -> {'PASS' if errors == 0 else 'FAIL'}")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
