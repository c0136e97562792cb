"""The ``facexpr`` command line: one subcommand per job, mirroring the Python API."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence

log = logging.getLogger("facexpr")

_COMMANDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}


def command(name: str) -> Callable:
    def register(func: Callable[[argparse.ArgumentParser], None]) -> Callable:
        _COMMANDS[name] = func
        return func

    return register


def set_threads(threads: int | None) -> None:
    """Pin intra-op threads once, before heavy work; two pools of 2 threads on 2 cores fight badly."""
    import torch

    count = threads or int(os.environ.get("FACEXPR_THREADS", 0)) or (os.cpu_count() or 1)
    torch.set_num_threads(count)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


@command("train")
def _train_parser(parser: argparse.ArgumentParser) -> None:
    """Train a model from a recipe (Lightning: checkpoints, resume, early stopping, DDP)."""
    parser.add_argument("recipe", nargs="?", help="recipe YAML path or name under recipes/ (e.g. paper)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set train.lr=0.01 (repeatable)",
    )
    parser.add_argument("--model", help="model config name (recipe 'model')")
    parser.add_argument("--data", help="data root (recipe data.root)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--precision", help="32-true, bf16-mixed, 16-mixed or auto (bf16 where the hardware has it)")
    parser.add_argument("--out", default="runs", help="folder for runs (default: runs)")
    parser.add_argument("--name", help="run folder name (default: recipe name + time)")
    parser.add_argument("--resume", metavar="RUN_DIR_OR_CKPT", help="continue a run from its last checkpoint")
    parser.add_argument("--devices", type=int, default=1, help="processes per node (DDP when > 1)")
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu or auto")
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after this many optimiser steps")
    parser.add_argument("--threads", type=int, help="torch threads per process (default: all cores)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from facexpr.training.train import train

    overrides = list(args.overrides)
    for flag, key in (
        ("model", "model"),
        ("data", "data.root"),
        ("epochs", "train.epochs"),
        ("batch_size", "train.batch_size"),
        ("lr", "train.lr"),
        ("precision", "train.precision"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(1, args.devices))
    set_threads(threads)
    summary = train(
        args.recipe,
        overrides,
        out_dir=args.out,
        run_name=args.name,
        resume=args.resume,
        devices=args.devices,
        num_nodes=args.num_nodes,
        accelerator=args.accelerator,
        max_steps=args.max_steps,
        progress=not args.no_progress,
    )
    if "best_val_acc" in summary:
        acc = summary["best_val_acc"]
        print(f"run: {summary['run_dir']}")
        print(f"best val accuracy: {acc:.4f}" if acc is not None else "no validation split")
        print(f"weights: {summary['weights']}")
    return 0


def configure_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*on_after_batch_transfer.*")
    os.environ.setdefault("LITLOGGER_DISABLE_TIP", "1")


# Modules that register more subcommands with @command when imported (one line each).
_COMMAND_MODULES: tuple[str, ...] = (
    "facexpr.evaluation.commands",
    "facexpr.detection.commands",
    "facexpr.serving.commands",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from facexpr import __version__

    for module in _COMMAND_MODULES:
        importlib.import_module(module)

    parser = argparse.ArgumentParser(prog="facexpr", description="Face expression recognition (ResEmoteNet).")
    parser.add_argument("--version", action="version", version=f"facexpr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, configure in _COMMANDS.items():
        doc = (configure.__doc__ or "").strip()
        configure(sub.add_parser(name, help=doc or None))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"facexpr {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
