"""``facexpr train``: run a recipe with Lightning, keeping everything needed to reproduce and resume it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, TQDMProgressBar

from facexpr.data.datasets import ImageSet, load_split, mix_ferplus_votes
from facexpr.models.weights import save_weights
from facexpr.training.checkpoint_io import AtomicCheckpointIO, BestCheckpoint, ResumeCheckpoint
from facexpr.training.datamodule import ImageSetDataModule
from facexpr.training.distill import TEACHER_PROBABILITIES_FILE, mix_teacher_predictions, teacher_probabilities
from facexpr.training.metrics_log import RunCSVLogger
from facexpr.training.module import ExpressionModule
from facexpr.training.plots import plot_curves
from facexpr.training.recipe import dump_recipe, load_recipe, model_config_for

log = logging.getLogger(__name__)


def git_commit() -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True).stdout.strip()
        )
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def load_training_data(
    recipe: dict[str, Any], input_size: int, run_dir: Path | None = None, resume: bool = False
) -> tuple[ImageSet, ImageSet | None]:
    data = recipe["data"]
    weight = float(data.get("ferplus_votes_weight") or 0.0)
    if weight > 0 and data["labels"] != "folder":
        raise ValueError("data.ferplus_votes_weight mixes FER+ votes into folder labels (data.labels: folder)")
    train = load_split(data["root"], data["train_split"], input_size, labels=data["labels"])
    if weight > 0:
        train = mix_ferplus_votes(train, Path(data["root"]) / "ferplus_votes.csv", weight)
    teachers = data.get("teacher") or []
    teachers = [teachers] if isinstance(teachers, str) else list(teachers)
    teacher_weight = float(data.get("teacher_weight") or 0.0)
    if bool(teachers) != (teacher_weight > 0):
        raise ValueError("data.teacher and data.teacher_weight go together: set both or neither")
    if teachers:
        cache = None if run_dir is None else run_dir / TEACHER_PROBABILITIES_FILE
        probabilities = teacher_probabilities(teachers, train, input_size, cache, reuse=resume)
        train = mix_teacher_predictions(train, probabilities, teacher_weight)
    val = None
    if data.get("val_split"):
        val = load_split(
            data["root"], data["val_split"], input_size, labels=data["labels"], class_names=train.class_names
        )
    return train, val


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> list[float]:
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = len(labels) / (num_classes * np.maximum(counts, 1))
    return [float(w) for w in weights]


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 autocast is emulated."""
    capabilities = getattr(torch.cpu, "get_capabilities", lambda: {})()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """The Lightning precision to train with; ``auto`` picks bf16 autocast only where it is fast."""
    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if precision == "auto":
        if on_gpu:
            return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        return "bf16-mixed" if cpu_has_native_bf16() else "32-true"
    if precision == "bf16-mixed" and not on_gpu and not cpu_has_native_bf16():
        log.warning(
            "train.precision=bf16-mixed on a CPU without native bf16 (AVX512-BF16/AMX): autocast is emulated and "
            "about 10x slower than float32 here; use train.precision=auto or 32-true"
        )
    return precision


def _resolve_resume(resume: str | os.PathLike) -> tuple[Path, Path]:
    """(run dir, checkpoint) from a run directory or a checkpoint path."""
    resume = Path(resume)
    if resume.is_dir():
        ckpt = resume / "checkpoints" / "last.ckpt"
        run_dir = resume
    else:
        ckpt = resume
        run_dir = resume.parent.parent
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no checkpoint to resume from")
    return run_dir, ckpt


def _checkpoint_step(ckpt_path: Path) -> int:
    return int(torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)["global_step"])


def train(
    recipe_path: str | os.PathLike | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    out_dir: str | os.PathLike = "runs",
    run_name: str | None = None,
    resume: str | os.PathLike | None = None,
    devices: int = 1,
    num_nodes: int = 1,
    accelerator: str = "auto",
    max_steps: int = -1,
    progress: bool = True,
) -> dict[str, Any]:
    """Train per recipe; returns a summary (run dir, best checkpoint, best val accuracy)."""
    ckpt_path = None
    all_overrides = list(overrides)  # what the weights' meta records beside the recipe name
    if resume is not None:
        run_dir, ckpt_path = _resolve_resume(resume)
        recipe = load_recipe(run_dir / "recipe.yaml", overrides)
        if (run_dir / "run.json").is_file():
            all_overrides = [*json.loads((run_dir / "run.json").read_text()).get("overrides", []), *overrides]
    else:
        recipe = load_recipe(recipe_path, overrides)
        name = run_name or f"{recipe['name']}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(out_dir) / name
    tcfg = recipe["train"]
    if ckpt_path is None:  # a resumed run keeps the precision it started with
        tcfg["precision"] = resolve_precision(tcfg["precision"], accelerator)
    L.seed_everything(int(tcfg["seed"]), workers=True, verbose=False)

    base = model_config_for(recipe)
    train_set, val_set = load_training_data(recipe, base.input_size, run_dir, resume=ckpt_path is not None)
    model_config = base.replace(class_names=train_set.class_names, meta={"recipe": recipe["name"]})
    weights = None
    if tcfg["class_weighting"] == "balanced":
        weights = balanced_class_weights(train_set.labels, len(train_set.class_names))
    elif tcfg["class_weighting"] != "none":
        raise ValueError(f"unknown class_weighting {tcfg['class_weighting']!r} (none, balanced)")
    distributed = devices > 1 or num_nodes > 1
    if distributed and float(tcfg.get("self_distill") or 0.0):
        raise ValueError("train.self_distill keeps per-image predictions in one process: train on one device")
    module = ExpressionModule(model_config.to_dict(), tcfg, recipe["augment"], weights, train_size=len(train_set))
    datamodule = ImageSetDataModule(
        train_set,
        val_set,
        batch_size=int(tcfg["batch_size"]),
        sampler=tcfg["sampler"],
        soft_labels=bool(recipe["data"].get("soft_labels")) or train_set.soft_labels is not None,
    )

    ckpt_dir = run_dir / "checkpoints"
    monitor = "val/acc" if val_set is not None else "train/acc"
    best_cb = BestCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor=monitor, mode="max", save_top_k=1, enable_version_counter=False
    )
    last_cb = ResumeCheckpoint(ckpt_dir / "last.ckpt", every_n_steps=int(tcfg.get("ckpt_every_n_steps") or 0))
    callbacks: list[Any] = [best_cb, last_cb, LearningRateMonitor(logging_interval="epoch")]
    if int(tcfg.get("patience") or 0) > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=int(tcfg["patience"])))
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=20))
    trainer = L.Trainer(
        default_root_dir=run_dir,
        max_epochs=int(tcfg["epochs"]),
        max_steps=max_steps,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy="ddp" if distributed else "auto",
        precision=tcfg["precision"],
        callbacks=callbacks,
        logger=RunCSVLogger(run_dir, resume_step=None if ckpt_path is None else _checkpoint_step(ckpt_path)),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
    )
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        if ckpt_path is None:
            dump_recipe(recipe, run_dir / "recipe.yaml")
        info = {
            "recipe": recipe["name"],
            "seed": int(tcfg["seed"]),
            "git": git_commit(),
            "command": sys.argv,
            "overrides": list(overrides),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "resumed_from": None if ckpt_path is None else str(ckpt_path),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "train_images": len(train_set),
            "val_images": 0 if val_set is None else len(val_set),
            "unreadable_images": len(train_set.errors) + (0 if val_set is None else len(val_set.errors)),
        }
        with open(run_dir / ("run.json" if ckpt_path is None else f"run-resume-{int(time.time())}.json"), "w") as f:
            json.dump(info, f, indent=2)
    started = time.time()
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    elapsed = time.time() - started

    rank_dir = run_dir / "ranks"
    rank_dir.mkdir(parents=True, exist_ok=True)
    with open(rank_dir / f"rank{trainer.global_rank}.json", "w") as handle:
        json.dump({"rank": trainer.global_rank, "world_size": trainer.world_size, "steps": trainer.global_step}, handle)

    summary: dict[str, Any] = {"run_dir": str(run_dir), "global_step": trainer.global_step, "seconds": elapsed}
    if not trainer.is_global_zero:
        return summary
    best = best_cb.best_model_path or str(ckpt_dir / "last.ckpt")
    best_score = best_cb.best_model_score
    summary.update(best_checkpoint=best, best_val_acc=None if best_score is None else float(best_score))
    best_module = ExpressionModule.load_from_checkpoint(best, map_location="cpu", weights_only=True)
    trained = best_module.trained_model
    meta = dict(
        trained.config.meta,
        recipe=recipe["name"],
        epochs_trained=trainer.current_epoch,
        val_acc=summary["best_val_acc"],
    )
    if all_overrides:
        meta["overrides"] = all_overrides
    trained.config = trained.config.replace(meta=meta)
    save_weights(trained, run_dir / "model.safetensors")
    summary["weights"] = str(run_dir / "model.safetensors")
    metrics_csv = run_dir / "logs" / "metrics.csv"
    if metrics_csv.is_file():
        summary["curves"] = str(plot_curves(metrics_csv, run_dir / "curves.png"))
    with open(run_dir / "summary.json", "w") as handle:
        json.dump(summary, handle, indent=2)
    return summary
