"""The network plus the input definition it was trained with."""

from __future__ import annotations

import torch
from torch import nn

from facexpr.config import ModelConfig
from facexpr.data.augment import TTA_MODES, tta_views
from facexpr.models.resemotenet import ResEmoteNet
from facexpr.preprocessing import normalize


def build_network(config: ModelConfig) -> nn.Module:
    if config.arch != "resemotenet":
        raise ValueError(f"unknown architecture {config.arch!r}")
    return ResEmoteNet(
        num_classes=config.num_classes,
        in_chans=config.in_chans,
        width=config.width,
        stem_width=config.stem_width,
        stem_dropout=config.stem_dropout,
        head_dropout=config.head_dropout,
    )


class ExpressionClassifier(nn.Module):
    """Takes prepared gray faces (N x 1 x S x S, values 0..255, see :mod:`facexpr.preprocessing`).

    Normalisation happens inside ``forward`` so every backend (torch, ONNX) sees the same input.
    ``net`` carries the official ResEmoteNet parameter names.
    """

    def __init__(self, config: ModelConfig, net: nn.Module | None = None) -> None:
        super().__init__()
        if config.tta not in TTA_MODES:
            raise ValueError(f"unknown TTA mode {config.tta!r} (choose from {', '.join(TTA_MODES)})")
        self.config = config
        self.net = net if net is not None else build_network(config)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """Logits; in eval mode with ``config.tta`` set, the log of the softmax averaged over the views."""
        x = normalize(faces, self.config)
        if self.training or self.config.tta == "none":
            return self.net(x)
        views = tta_views(x, self.config.tta)
        logits = self.net(torch.cat(views)).reshape(len(views), x.shape[0], -1)
        return logits.softmax(dim=-1).mean(dim=0).clamp_min(1e-12).log()

    def with_tta(self, tta: str | None) -> ExpressionClassifier:
        """The same network (shared weights) with its test-time augmentation replaced; ``None`` keeps its own."""
        if tta is None or tta == self.config.tta:
            return self
        return ExpressionClassifier(self.config.replace(tta=tta), net=self.net).train(self.training)

    @torch.inference_mode()
    def predict_proba(self, faces: torch.Tensor) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            return self.forward(faces).softmax(dim=1)
        finally:
            self.train(was_training)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.class_names
