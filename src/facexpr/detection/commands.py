"""CLI subcommands: ``predict``, ``cam``, ``explain``, ``export``, ``demo``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from facexpr.cli import command, set_threads
from facexpr.preprocessing import MAX_IMAGE_PIXELS

log = logging.getLogger("facexpr")

_PREDICT_EPILOG = (
    "exit status: 0 all inputs processed; 1 the source itself is unusable (one-line error); "
    "3 some items of a folder/glob/video failed (their error records are in the outputs, the rest was processed)"
)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="weights file, shipped model name or config name (default: shipped model)")
    parser.add_argument("--detector", default="auto", choices=("auto", "yunet", "haar"), help="face detector")
    parser.add_argument("--yunet", metavar="ONNX", help="local YuNet model file (else $FACEXPR_YUNET or download)")
    parser.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "torch"))
    parser.add_argument("--threads", type=int, help="inference threads (default: 1, or $OMP_NUM_THREADS)")
    parser.add_argument("--max-pixels", type=int, default=MAX_IMAGE_PIXELS, help="refuse larger images")


def inference_threads(args: argparse.Namespace) -> int:
    """--threads, else $FACEXPR_THREADS or $OMP_NUM_THREADS, else 1.

    One thread by default: per-frame batches are 1-3 faces, and on shared cores torch's 2-thread pool collapsed
    (single crop 272 ms vs 4.6 ms with 1 thread; benchmarks/bench_inference.py).
    """
    for value in (args.threads, os.environ.get("FACEXPR_THREADS"), os.environ.get("OMP_NUM_THREADS")):
        if value and str(value).isdigit() and int(value) > 0:
            return int(value)
    return 1


def _detector(args: argparse.Namespace):
    from facexpr.detection.detector import Detector

    threads = inference_threads(args)
    set_threads(threads)
    return Detector(
        args.model,
        args.detector,
        backend=args.backend,
        yunet_path=args.yunet,
        threads=threads,
        max_pixels=getattr(args, "max_pixels", MAX_IMAGE_PIXELS),
    )


@command("predict")
def _predict_parser(parser: argparse.ArgumentParser) -> None:
    """detect faces and expressions in an image, folder, glob, video or camera index"""
    parser.epilog = _PREDICT_EPILOG
    parser.add_argument("source", help="image, folder, glob ('photos/*.jpg'), video file or camera index")
    parser.add_argument("--out", metavar="DIR", help="write annotated images/videos and timeline plots here")
    parser.add_argument("--json", metavar="OUT.jsonl", help="one JSON line per face per processed frame")
    parser.add_argument("--csv", metavar="OUT.csv", help="one CSV row per face per processed frame")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="process every N-th video frame")
    parser.add_argument("--interval", type=float, metavar="SECONDS", help="process at most one frame per interval")
    parser.add_argument("--no-timeline", action="store_true", help="skip the timeline PNG for videos")
    parser.add_argument("--no-progress", action="store_true")
    add_model_arguments(parser)
    parser.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from facexpr.detection.runner import EXIT_PARTIAL, result_summary_line, run_predict

    detector = _detector(args)
    to_stdout = not (args.out or args.json or args.csv)
    summary = run_predict(
        detector,
        args.source,
        out_dir=args.out,
        jsonl=args.json or ("-" if to_stdout else None),
        csv=args.csv,
        every=args.every,
        interval=args.interval,
        timeline=not args.no_timeline,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    print(result_summary_line(summary), file=sys.stderr)
    for path in summary.outputs:
        if str(path) != "-":
            print(f"wrote {path}", file=sys.stderr)
    return EXIT_PARTIAL if summary.errors else 0


@command("cam")
def _cam_parser(parser: argparse.ArgumentParser) -> None:
    """live camera window: every face boxed with its expression (q / Esc / Enter to quit)"""
    parser.add_argument("--camera", default="0", help="camera index, or a video file to replay (default: 0)")
    parser.add_argument("--record", metavar="OUT.mp4", help="also record the annotated stream")
    parser.add_argument("--interval", type=float, metavar="SECONDS", help="seconds between inferences")
    parser.add_argument("--smoothing", type=float, default=0.35, help="weight of the newest frame (1 = none)")
    add_model_arguments(parser)
    parser.set_defaults(run=_run_cam)


def _run_cam(args: argparse.Namespace) -> int:
    from facexpr.detection.live import DisplayUnavailableError, display_problem, run_live
    from facexpr.detection.sources import FrameSource, SourceError

    problem = display_problem()
    if problem:
        raise DisplayUnavailableError(f"{problem}; run `facexpr predict FILE` on an image or video instead")
    frames = FrameSource(args.camera)
    iterator = iter(frames)
    try:
        first = next(iterator)
    except StopIteration:
        raise SourceError(f"{frames.name}: no frames; run `facexpr predict FILE` on an image or video") from None
    detector = _detector(args)

    def chained():
        yield first
        yield from iterator

    stats = run_live(detector, chained(), record=args.record, interval=args.interval, smoothing=args.smoothing)
    print(f"{stats.frames} frames, {stats.fps:.1f} FPS", file=sys.stderr)
    if args.record:
        print(f"wrote {args.record}", file=sys.stderr)
    return 0


@command("explain")
def _explain_parser(parser: argparse.ArgumentParser) -> None:
    """Grad-CAM overlay per face: which regions drove each prediction"""
    parser.add_argument("image")
    parser.add_argument("--out", metavar="PATH", help="output image (default: <image>_gradcam.jpg in the cwd)")
    add_model_arguments(parser)
    parser.set_defaults(run=_run_explain)


def _run_explain(args: argparse.Namespace) -> int:
    import cv2

    from facexpr.detection.explain import explain_image
    from facexpr.preprocessing import read_image

    image = read_image(args.image)
    canvas, faces = explain_image(_detector(args), image)
    out = Path(args.out or f"{Path(args.image).stem}_gradcam.jpg")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), canvas):
        raise OSError(f"{out}: cannot write image")
    for face in faces:
        print(json.dumps({k: face[k] for k in ("face", "box", "label", "score")}))
    print(f"{len(faces)} face(s); wrote {out}", file=sys.stderr)
    return 0


@command("export")
def _export_parser(parser: argparse.ArgumentParser) -> None:
    """export the model to ONNX (dynamic batch; input N x 1 x S x S gray pixels 0..255)"""
    parser.add_argument("--format", default="onnx", choices=("onnx",))
    parser.add_argument("--model", help="weights file, shipped model name or config name (default: shipped model)")
    parser.add_argument("--out", metavar="PATH", help="output file (default: <model name>.onnx)")
    parser.add_argument("--opset", type=int, default=17)
    parser.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from facexpr.detection.detector import resolve_model
    from facexpr.detection.export import export_onnx, max_difference

    model = resolve_model(args.model)
    out = export_onnx(model, args.out or f"{model.config.name}.onnx", opset=args.opset)
    print(f"wrote {out} (max |onnx - torch| on random faces: {max_difference(model, out):.2e})", file=sys.stderr)
    return 0


@command("demo")
def _demo_parser(parser: argparse.ArgumentParser) -> None:
    """the live camera when there is one, else the bundled sample through `predict`"""
    parser.add_argument("--out", default="facexpr-demo", metavar="DIR", help="outputs (default: ./facexpr-demo)")
    parser.add_argument("--camera", default="0")
    add_model_arguments(parser)
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from facexpr.detection.live import display_problem
    from facexpr.detection.runner import run_predict
    from facexpr.detection.sample import sample_paths

    problem = display_problem()
    if problem is None:
        import cv2

        capture = cv2.VideoCapture(int(args.camera))
        available = capture.isOpened()
        capture.release()
        if available:
            args.record, args.interval, args.smoothing = None, None, 0.35
            return _run_cam(args)
        problem = f"camera {args.camera} not available"
    print(f"{problem}: running on the bundled sample instead", file=sys.stderr)
    detector = _detector(args)
    out = Path(args.out)
    for sample in sample_paths():
        summary = run_predict(
            detector,
            sample,
            out_dir=out,
            jsonl=out / f"{sample.stem}.jsonl",
            csv=out / f"{sample.stem}.csv",
            progress=False,
        )
        print(f"{sample.name}: {summary.faces} face(s) in {summary.frames} frame(s)", file=sys.stderr)
        for path in summary.outputs:
            print(f"  wrote {path}", file=sys.stderr)
    return 0
