"""The network plus the input definition it was trained with."""

from __future__ import annotations

import torch
from torch import nn

from facexpr.config import ModelConfig
from facexpr.models.resemotenet import ResEmoteNet
from facexpr.preprocessing import normalize


def build_network(config: ModelConfig) -> nn.Module:
    if config.arch != "resemotenet":
        raise ValueError(f"unknown architecture {config.arch!r}")
    return ResEmoteNet(
        num_classes=config.num_classes,
        in_chans=config.in_chans,
        width=config.width,
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
        self.config = config
        self.net = net if net is not None else build_network(config)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.net(normalize(faces, self.config))

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
