"""The network plus the input definition it was trained with."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facexpr.config import MEMBER_FIELDS, ModelConfig
from facexpr.data.augment import TTA_MODES, tta_views
from facexpr.models.ensemble import EnsembleNet, log_mean_softmax
from facexpr.models.resemotenet import ResEmoteNet
from facexpr.preprocessing import normalize

# What every ensemble member must share: the input it is fed and the meaning of its outputs.
_SHARED_FIELDS = ("arch", "in_chans", "input_size", "mean", "std", "class_names")


def build_network(config: ModelConfig) -> nn.Module:
    if config.members:
        return EnsembleNet([build_network(config.replace(members=(), **member)) for member in config.members])
    if config.arch != "resemotenet":
        raise ValueError(f"unknown architecture {config.arch!r}")
    return ResEmoteNet(
        num_classes=config.num_classes,
        in_chans=config.in_chans,
        width=config.width,
        stem_width=config.stem_width,
        stem_pools=config.stem_pools,
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
        return log_mean_softmax(logits)

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


def ensemble_members(model: ExpressionClassifier) -> list[ExpressionClassifier]:
    """The single networks of ``model`` as classifiers named ``<ensemble name>[i]`` (sharing its weights).

    A model that is not an ensemble is returned as is.
    """
    if not model.config.members:
        return [model]
    metas = model.config.meta.get("members") or [{} for _ in model.config.members]
    name = model.config.name
    return [
        ExpressionClassifier(
            model.config.replace(name=f"{name}[{i}]", members=(), meta=dict(meta), **member), net=net
        ).train(model.training)
        for i, (member, meta, net) in enumerate(zip(model.config.members, metas, model.net.members, strict=True))
    ]


def make_ensemble(
    models: Sequence[ExpressionClassifier], *, name: str = "ensemble", tta: str | None = None
) -> ExpressionClassifier:
    """One classifier (one weights file, one ONNX graph) averaging ``models``; their networks are shared, not copied.

    Each member keeps its own architecture fields (see ``ModelConfig.members``) and its training metadata;
    ``tta`` defaults to the first model's. A model that is itself an ensemble contributes each of its networks, so
    every network weighs the same (adding a network to a shipped pair gives a three-way average).
    """
    networks = [network for model in models for network in ensemble_members(model)]
    if len(networks) < 2:
        raise ValueError("an ensemble needs at least two models")
    tta = models[0].config.tta if tta is None else tta
    first = networks[0].config
    for index, network in enumerate(networks):
        for field in _SHARED_FIELDS:
            if getattr(network.config, field) != getattr(first, field):
                raise ValueError(
                    f"member {index} ({network.config.name}) differs from member 0 ({first.name}) in {field}: "
                    f"{getattr(network.config, field)!r} vs {getattr(first, field)!r}"
                )
    members = tuple({field: getattr(n.config, field) for field in MEMBER_FIELDS} for n in networks)
    recipes = [str(n.config.meta.get("recipe", n.config.name)) for n in networks]
    meta = {"recipe": " + ".join(recipes), "members": [dict(n.config.meta) for n in networks]}
    config: ModelConfig = first.replace(name=name, members=members, tta=tta, meta=meta, **members[0])
    return ExpressionClassifier(config, net=EnsembleNet([n.net for n in networks])).eval()
