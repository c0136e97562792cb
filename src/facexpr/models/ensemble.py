"""Several trained networks that share one input definition, answering as the mean of their probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def log_mean_softmax(logits: torch.Tensor) -> torch.Tensor:
    """V x N x C logits of V views or networks -> N x C log of their mean probabilities (a softmax recovers them)."""
    return logits.softmax(dim=-1).mean(dim=0).clamp_min(1e-12).log()


class EnsembleNet(nn.Module):
    """Returns the log of the members' mean softmax, so a softmax on top gives the averaged probabilities."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return log_mean_softmax(torch.stack([member(x) for member in self.members]))
