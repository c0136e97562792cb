"""Batched augmentation on the training device: one call transforms a whole batch of gray faces."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    hflip: float = 0.5  # probability
    rotate: float = 10.0  # max degrees either way
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.1  # max shift as a fraction of the side
    brightness: float = 0.2  # max relative change
    contrast: float = 0.2
    erase: float = 0.0  # probability of one random-erasing rectangle
    erase_area: tuple[float, float] = (0.02, 0.2)


def augment_batch(images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """N x 1 x S x S pixels (0..255, any dtype) -> augmented float pixels in the same range."""
    x = images.float()
    n, _, h, w = x.shape
    device = x.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device, generator=generator)

    if cfg.rotate or cfg.translate or cfg.scale != (1.0, 1.0) or cfg.hflip:
        angle = (rand(n) * 2 - 1) * math.radians(cfg.rotate)
        scale = cfg.scale[0] + rand(n) * (cfg.scale[1] - cfg.scale[0])
        flip = torch.where(rand(n) < cfg.hflip, -1.0, 1.0)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.zeros(n, 2, 3, device=device)
        theta[:, 0, 0] = cos * flip
        theta[:, 0, 1] = -sin
        theta[:, 1, 0] = sin * flip
        theta[:, 1, 1] = cos
        theta[:, :, 2] = (rand(n, 2) * 2 - 1) * cfg.translate * 2
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if cfg.brightness or cfg.contrast:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        contrast = 1 + (rand(n, 1, 1, 1) * 2 - 1) * cfg.contrast
        brightness = 1 + (rand(n, 1, 1, 1) * 2 - 1) * cfg.brightness
        x = ((x - mean) * contrast + mean) * brightness
    if cfg.erase > 0:
        area = (cfg.erase_area[0] + rand(n) * (cfg.erase_area[1] - cfg.erase_area[0])) * h * w
        aspect = torch.exp((rand(n) * 2 - 1) * math.log(3.0))
        eh = (area * aspect).sqrt().clamp(1, h)
        ew = (area / aspect).sqrt().clamp(1, w)
        y0 = rand(n) * (h - eh)
        x0 = rand(n) * (w - ew)
        rows = torch.arange(h, device=device).view(1, h, 1)
        cols = torch.arange(w, device=device).view(1, 1, w)
        inside = (
            (rows >= y0.view(n, 1, 1))
            & (rows < (y0 + eh).view(n, 1, 1))
            & (cols >= x0.view(n, 1, 1))
            & (cols < (x0 + ew).view(n, 1, 1))
        )
        apply = (rand(n) < cfg.erase).view(n, 1, 1)
        noise = rand(n, h, w) * 255
        x = torch.where((inside & apply).unsqueeze(1), noise.unsqueeze(1), x)
    return x.clamp(0, 255)


TTA_MODES = ("none", "flip", "flip+crops")


def tta_views(images: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """Deterministic test-time views of N x C x S x S images: ``none``, ``flip`` or ``flip+crops``."""
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r} (choose from {', '.join(TTA_MODES)})")
    views = [images]
    if mode in ("flip", "flip+crops"):
        views.append(images.flip(-1))
    if mode == "flip+crops":
        s = images.shape[-1]
        pad = max(1, s // 12)
        padded = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate")
        for dy, dx in ((0, 0), (0, 2 * pad), (2 * pad, 0), (2 * pad, 2 * pad)):
            views.append(padded[..., dy : dy + s, dx : dx + s])
    return views
