"""``facexpr evaluate`` and ``facexpr data audit``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facexpr.cli import command, set_threads
from facexpr.data.augment import TTA_MODES


@command("evaluate")
def _evaluate_parser(parser: argparse.ArgumentParser) -> None:
    """Measure a model on a labelled data set (accuracy, macro-F1, per class, confusion matrix)."""
    parser.add_argument("data_dir", metavar="DATA_DIR", help="data root, split folder, fer2013.csv or FER+ votes csv")
    parser.add_argument("--model", help="shipped model name, registered config name or weights file (default: shipped)")
    parser.add_argument("--split", default="val", help="train, val or test (default: val)")
    parser.add_argument(
        "--tta", choices=TTA_MODES, help="test-time augmentation (default: the model's own, as used by predict)"
    )
    parser.add_argument("--labels", default="folder", choices=("folder", "ferplus"), help="label source")
    parser.add_argument("--report", metavar="OUT.json", help="write the full report as JSON (and OUT.png)")
    parser.add_argument("--confusion", metavar="PNG", help="confusion matrix figure (default: beside --report)")
    parser.add_argument(
        "--exclude-duplicates-of",
        metavar="TRAIN_DIR",
        help="also report the figures without images pixel-identical to an image in TRAIN_DIR",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from facexpr.evaluation.evaluate import evaluate_dir
    from facexpr.evaluation.report import format_report, plot_confusion, write_json
    from facexpr.models import MODEL_CONFIGS, load_model

    set_threads(args.threads)
    try:
        model = load_model(args.model)
    except FileNotFoundError as exc:
        if args.model is None:
            raise FileNotFoundError(f"{exc}; pass --model NAME_OR_PATH (a weights file)") from None
        raise
    if args.model in MODEL_CONFIGS and not Path(args.model).exists():
        print(f"warning: {args.model!r} is a config name: evaluating random weights", file=sys.stderr)
    report = evaluate_dir(
        args.data_dir,
        model,
        split=args.split,
        tta=args.tta,
        labels=args.labels,
        batch_size=args.batch_size,
        exclude_duplicates_of=args.exclude_duplicates_of,
    )
    report["model_source"] = args.model or "default"
    # Files first, then the printout: a closed stdout (`| head`) must not cost the report.
    confusion = args.confusion or (str(Path(args.report).with_suffix(".png")) if args.report else None)
    if confusion:
        title = f"{report['model']} on {Path(args.data_dir).name}/{report['split'] or ''}"
        plot_confusion(report["confusion_matrix"], report["class_names"], confusion, title=title)
        report["confusion_png"] = confusion
    if args.report:
        write_json(report, args.report)
    print(format_report(report))
    if confusion:
        print(f"confusion matrix: {confusion}")
    if args.report:
        print(f"report: {args.report}")
    return 0


@command("data")
def _data_parser(parser: argparse.ArgumentParser) -> None:
    """Data set tools (audit)."""
    sub = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    audit = sub.add_parser("audit", help="duplicates, label conflicts, blank and unreadable images, class balance")
    audit.add_argument("data_dir", metavar="DATA_DIR", help="data root with train/val/test folders, or one split")
    audit.add_argument("--json", metavar="OUT.json", help="write the full report (with example files) as JSON")
    audit.add_argument("--blank-std", type=float, default=None, help="pixel std below which an image is blank")
    audit.set_defaults(run=_run_audit)
    parser.set_defaults(run=lambda args: _print_help(parser))


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _run_audit(args: argparse.Namespace) -> int:
    from facexpr.data.audit import BLANK_STD, audit_dataset, format_audit
    from facexpr.evaluation.report import write_json

    report = audit_dataset(args.data_dir, blank_std=BLANK_STD if args.blank_std is None else args.blank_std)
    if args.json:
        write_json(report, args.json)
    print(format_audit(report))
    if args.json:
        print(f"report: {args.json}")
    return 0
