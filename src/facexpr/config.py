"""The configuration saved with every set of weights: architecture and the input it expects."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from facexpr.labels import FER2013_CLASSES

# The architecture fields an ensemble member may set for itself (see ``ModelConfig.members``).
MEMBER_FIELDS = ("width", "stem_width", "stem_pools", "stem_dropout", "head_dropout")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and feed it: timm's ``pretrained_cfg`` in spirit.

    ``mean``/``std`` apply to pixel values scaled to [0, 1]; they are given per input channel.
    Images are always reduced to grayscale first (FER2013 is grayscale); 3-channel models receive the
    gray image replicated, as the official ResEmoteNet code does.
    """

    name: str
    arch: str = "resemotenet"
    width: float = 1.0
    stem_width: float | None = None  # width of the three stem convolutions; None: same as ``width``
    # How many of the three stem convolutions are followed by a 2x2 max-pool (the paper: 3). With 2 the residual
    # blocks run on twice the resolution (at 48 px: 12 -> 6 -> 3 -> 2 instead of 6 -> 3 -> 2 -> 1).
    stem_pools: int = 3
    in_chans: int = 3
    input_size: int = 64
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    class_names: tuple[str, ...] = FER2013_CLASSES
    stem_dropout: float = 0.2
    head_dropout: float = 0.5
    # Test-time views averaged in eval mode (none | flip | flip+crops). Part of the model, not of a caller,
    # so torch, ONNX, the CLI and the server all give the same answer.
    tta: str = "none"
    # An ensemble: one dict of MEMBER_FIELDS per network, each overriding the fields above; the networks share
    # the input definition and their probabilities are averaged. Empty: a single network.
    members: tuple[dict[str, Any], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        values = dict(data)
        for key in ("mean", "std", "class_names"):
            if key in values:
                values[key] = tuple(values[key])
        if "members" in values:
            values["members"] = tuple(dict(member) for member in values["members"])
            for member in values["members"]:
                extra = set(member) - set(MEMBER_FIELDS)
                if extra:
                    raise ValueError(f"ensemble member sets {sorted(extra)}; members may set only {MEMBER_FIELDS}")
        config = cls(**values)
        if len(config.mean) != config.in_chans or len(config.std) != config.in_chans:
            raise ValueError(f"mean/std need {config.in_chans} values, got {config.mean} / {config.std}")
        return config

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))
