"""CLI subcommand ``serve``: the web page and HTTP API on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from facexpr.cli import command, set_threads
from facexpr.detection.commands import add_model_arguments, inference_threads
from facexpr.serving.settings import DEFAULT_HOST, DEFAULT_PORT, ServerSettings

log = logging.getLogger("facexpr")


@command("serve")
def _serve_parser(parser: argparse.ArgumentParser) -> None:
    """web page and HTTP API (camera stream, uploads); binds 127.0.0.1 unless --host says otherwise"""
    defaults = ServerSettings()
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}")
    parser.add_argument("--workers", type=int, default=1, help="parallel inferences (one detector each; default 1)")
    parser.add_argument(
        "--max-upload-mb", type=float, default=defaults.max_upload_bytes / 2**20, metavar="MB", help="largest upload"
    )
    parser.add_argument("--max-queue", type=int, default=defaults.max_queue, help="requests that may wait; then 503")
    parser.add_argument("--max-streams", type=int, default=defaults.max_streams, help="concurrent camera streams")
    parser.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN", help="allow this origin (repeatable)"
    )
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    add_model_arguments(parser)
    parser.set_defaults(run=_run_serve)


def build_detectors(args: argparse.Namespace, count: int) -> list:
    """``count`` detectors sharing one loaded model (each has its own face detector and inference session)."""
    from facexpr.detection.detector import Detector, resolve_model

    threads = inference_threads(args)
    set_threads(threads)
    is_onnx = args.model is not None and Path(args.model).suffix == ".onnx"
    model = args.model if is_onnx else resolve_model(args.model)
    detectors = [
        Detector(
            model,
            args.detector,
            backend=args.backend,
            yunet_path=args.yunet,
            threads=threads,
            max_pixels=args.max_pixels,
        )
        for _ in range(count)
    ]
    for detector in detectors:
        detector.face_detector  # noqa: B018 -- load the face detector now: a missing model fails here, not per request
    return detectors


def _run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from facexpr.serving.app import create_app
    except ImportError as exc:
        raise OSError(f"{exc}; install the server extra: pip install 'facexpr[serve]'") from None
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels,
        max_queue=args.max_queue,
        max_streams=args.max_streams,
        cors_origins=tuple(args.cors_origin),
    )
    detectors = build_detectors(args, args.workers)
    app = create_app(detectors, settings)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding %s: the API is reachable from other machines and has no authentication", args.host)
    print(
        f"facexpr serve: http://{args.host}:{args.port}/ (API docs /docs; model {detectors[0].config.name}, "
        f"{args.workers} worker(s))",
        file=sys.stderr,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_max_size=settings.max_upload_bytes + 1024,
        timeout_graceful_shutdown=5,
    )
    return 0
