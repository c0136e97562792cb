"""The LightningModule: loss, augmentation hook, metrics and optimiser for an ExpressionClassifier."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from facexpr.config import ModelConfig
from facexpr.data.augment import AugmentConfig, augment_batch
from facexpr.models.classifier import ExpressionClassifier


def _augment_config(values: dict[str, Any]) -> AugmentConfig:
    values = dict(values)
    for key in ("scale", "erase_area"):
        if key in values:
            values[key] = tuple(values[key])
    return AugmentConfig(**values)


def ema_with_warmup(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """Exponential moving average for ``AveragedModel`` whose decay ramps up as min(decay, (1 + n) / (10 + n)),
    n = updates so far.

    With a fixed 0.999 the random initial weights still make up 37 % of the average after 1,000 steps (4.5 FER2013
    epochs), so early validation of the average is meaningless; the ramp lets the average follow the weights early on.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = float(n_averaged)
        step_decay = min(decay, (1.0 + n) / (10.0 + n))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1.0 - step_decay)
        else:  # integer buffers (BatchNorm's batch counter) are counts, not weights: keep the model's
            for average, value in zip(averaged, current, strict=True):
                average.copy_(value)

    return update


class ExpressionModule(L.LightningModule):
    def __init__(
        self,
        model_config: dict[str, Any],
        train: dict[str, Any],
        augment: dict[str, Any],
        class_weights: list[float] | None = None,
        train_size: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        config = ModelConfig.from_dict(model_config)
        self.model = ExpressionClassifier(config)
        decay = float(train.get("ema_decay") or 0.0)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {decay}")
        self.ema: AveragedModel | None = None
        if decay:
            # BatchNorm statistics are averaged too (use_buffers), so the averaged network is usable as is.
            self.ema = AveragedModel(self.model, multi_avg_fn=ema_with_warmup(decay), use_buffers=True)
            self.ema.requires_grad_(False)
        self.train_cfg = train
        self.self_distill = float(train.get("self_distill") or 0.0)
        if not 0.0 <= self.self_distill < 1.0:
            raise ValueError(f"train.self_distill must be in [0, 1), got {self.self_distill}")
        if self.self_distill and float(train.get("mixup") or 0.0) > 0:
            raise ValueError("train.self_distill excludes train.mixup (a mixed face has no prediction of its own)")
        if self.self_distill and train_size < 1:
            raise ValueError("train.self_distill needs the training set size")
        # Each training image's softmax from its last training step (uniform before the first), in the checkpoint.
        previous = torch.full((train_size, config.num_classes), 1.0 / config.num_classes) if self.self_distill else None
        self.register_buffer("previous_predictions", previous, persistent=True)
        self.augment_cfg = _augment_config(augment)
        n = config.num_classes
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)
        self.train_acc = MulticlassAccuracy(num_classes=n, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=n, average="micro")
        self.val_f1 = MulticlassF1Score(num_classes=n, average="macro")

    @property
    def trained_model(self) -> ExpressionClassifier:
        """The network to validate and ship: the weight average when ``train.ema_decay`` is on."""
        return self.model if self.ema is None else self.ema.module

    def on_fit_start(self) -> None:
        self.model.to(memory_format=torch.channels_last)
        if self.ema is not None:
            self.ema.to(memory_format=torch.channels_last)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        # Here rather than in on_train_batch_end, which runs after the step checkpoint is written.
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is not None and self.trainer.training:
            return (augment_batch(batch[0], self.augment_cfg), *batch[1:])
        return batch

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.model(faces)

    def self_distill_weight(self, epoch: int) -> float:
        """Weight of the previous predictions in epoch ``epoch``'s targets: from 0 to ``train.self_distill``."""
        epochs = int(self.train_cfg.get("epochs") or 1)
        return self.self_distill * min(1.0, epoch / max(1, epochs - 1))

    def _targets(self, batch: Any) -> torch.Tensor:
        """Class-probability targets: the batch's (one-hot or soft, see ``TensorSplit``), label smoothing, then
        self-distillation."""
        n = self.model.config.num_classes
        targets = batch[2]
        smoothing = float(self.train_cfg.get("label_smoothing", 0.0))
        if smoothing:
            targets = targets * (1 - smoothing) + smoothing / n
        if self.previous_predictions is not None:
            weight = self.self_distill_weight(self.current_epoch)
            targets = (1 - weight) * targets + weight * self.previous_predictions[batch[3]]
        return targets

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits.float(), dim=1)
        if self.class_weights is not None:
            per_sample = -(targets * log_probs * self.class_weights).sum(1)
            return per_sample.sum() / (targets * self.class_weights).sum()
        return -(targets * log_probs).sum(1).mean()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        faces, labels = batch[0], batch[1]
        targets = self._targets(batch)
        alpha = float(self.train_cfg.get("mixup", 0.0))
        if alpha > 0:
            lam = float(torch.distributions.Beta(alpha, alpha).sample())
            perm = torch.randperm(faces.shape[0], device=faces.device)
            faces = lam * faces + (1 - lam) * faces[perm]
            targets = lam * targets + (1 - lam) * targets[perm]
        logits = self(faces)
        loss = self._loss(logits, targets)
        if self.previous_predictions is not None:
            self.previous_predictions[batch[3]] = logits.detach().float().softmax(1)
        self.train_acc(logits.detach(), labels)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        faces, labels = batch[0], batch[1]
        log_probs = self.trained_model.with_tta(self.train_cfg.get("val_tta", "none"))(faces).float().log_softmax(1)
        loss = F.nll_loss(log_probs, labels)
        self.val_acc(log_probs, labels)
        self.val_f1(log_probs, labels)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)
        self.log("val/macro_f1", self.val_f1, on_epoch=True)

    def configure_optimizers(self) -> Any:
        cfg = self.train_cfg
        decay, no_decay = [], []
        for param in self.model.parameters():
            (no_decay if param.ndim <= 1 else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": float(cfg["weight_decay"])},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        lr = float(cfg["lr"])
        if cfg["optimizer"] == "sgd":
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=float(cfg["momentum"]), nesterov=bool(cfg["nesterov"]))
        elif cfg["optimizer"] == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=lr)
        else:
            raise ValueError(f"unknown optimizer {cfg['optimizer']!r} (sgd, adamw)")
        schedule = cfg.get("schedule", "none")
        if schedule == "none":
            return optimizer
        if schedule == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=5)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/acc"}}
        if schedule == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, int(cfg["step_size"]), float(cfg["gamma"]))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total)
        elif schedule == "cosine":
            per_epoch = total / max(1, int(cfg["epochs"]))
            warmup = int(float(cfg.get("warmup_epochs", 0)) * per_epoch)

            def factor(step: int) -> float:
                if step < warmup:
                    return (step + 1) / warmup
                progress = (step - warmup) / max(1, total - warmup)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        else:
            raise ValueError(f"unknown schedule {schedule!r} (none, cosine, onecycle, step, plateau)")
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
