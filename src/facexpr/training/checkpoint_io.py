"""The checkpoints a run resumes from: written atomically (a kill mid-write leaves the previous file intact),
never at a point from which Lightning would resume past a validation that has not run, and with the best score
kept when the run folder has moved."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from facexpr.files import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        with atomic_write(path) as handle:
            torch.save(checkpoint, handle)

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> Any:
        # Resuming reads the run's own checkpoints; they hold only tensors and plain containers.
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


_SAVED_PATHS = ("best_model_path", "kth_best_model_path", "last_model_path")


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose restored state follows the run folder.

    Lightning restores the best score only when the checkpoint folder is the one it was saved from, so a run moved
    or copied elsewhere resumed with no best score and overwrote ``best.ckpt`` with its next epoch, better or not.
    Here the saved paths are moved into the current folder (the files keep their names) and the score is kept.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_dir = state_dict.get("dirpath")
        if saved_dir and self.dirpath and Path(saved_dir) != Path(self.dirpath):

            def rebased(path: Any) -> Any:
                if path and Path(path).parent == Path(saved_dir):
                    return str(Path(self.dirpath) / Path(path).name)
                return path

            state_dict = {
                **state_dict,
                **{key: rebased(state_dict[key]) for key in _SAVED_PATHS if key in state_dict},
                "dirpath": self.dirpath,
                "best_k_models": {rebased(path): score for path, score in state_dict.get("best_k_models", {}).items()},
            }
        super().load_state_dict(state_dict)


class ResumeCheckpoint(Callback):
    """Writes ``path`` for ``--resume`` every ``every_n_steps`` training steps (0: never mid-epoch) and at each
    epoch's end, after its validation, so a finished run's file is its final state.

    Nothing is saved on an epoch's last batch before that validation: Lightning resumes a checkpoint taken there as
    if the epoch's validation had run, so a kill between the two would leave that epoch unvalidated, missing from
    the log and from the choice of best.
    """

    def __init__(self, path: str | os.PathLike, every_n_steps: int = 0) -> None:
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be 0 or more, got {every_n_steps}")
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self._due_after_epoch = False

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._due_after_epoch = True
        elif self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0:
            trainer.save_checkpoint(self.path)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._save_if_due(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save_if_due(trainer)

    def _save_if_due(self, trainer: L.Trainer) -> None:
        if self._due_after_epoch:
            self._due_after_epoch = False
            trainer.save_checkpoint(self.path)
