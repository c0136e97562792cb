"""ResEmoteNet (Roy et al., IEEE SPL 2024), faithful to the official code, with a width multiplier.

Module and parameter names match the official checkpoints so their weights load strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SEBlock(nn.Module):
    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        y = self.fc(self.avg_pool(x).flatten(1)).view(b, c, 1, 1)
        return x * y


# Training on CPU computes convolutions whose output has at most this many pixels per channel by conv2d_by_matmul
# (0 turns it off; benchmarks/bench_training.py compares both).
MATMUL_CONV_MAX_PIXELS = 9


def _output_size(conv: nn.Conv2d, x: torch.Tensor) -> tuple[int, int]:
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    return (x.shape[-2] + 2 * ph - kh) // sh + 1, (x.shape[-1] + 2 * pw - kw) // sw + 1


def conv2d_by_matmul(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` as one matrix product over the gathered kernel taps (im2col by slicing), same up to rounding.

    On CPU, oneDNN's backward pass of a 3x3 convolution on maps of a few pixels (ResEmoteNet's last residual block
    runs on 3x3 maps at 48 px input) is several times slower than the two matrix products this backward needs.
    """
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
        raise ValueError("conv2d_by_matmul handles plain convolutions only (groups 1, dilation 1, zero padding)")
    n, c = x.shape[:2]
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    oh, ow = _output_size(conv, x)
    padded = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1)
    taps = [
        padded[:, dy : dy + sh * (oh - 1) + 1 : sh, dx : dx + sw * (ow - 1) + 1 : sw]
        for dy in range(kh)
        for dx in range(kw)
    ]
    columns = torch.cat(taps, dim=3).reshape(n * oh * ow, kh * kw * c)
    weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1)
    out = columns @ weight.t() if conv.bias is None else torch.addmm(conv.bias, columns, weight.t())
    return out.reshape(n, oh, ow, conv.out_channels).permute(0, 3, 1, 2)


def _conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if conv.training and x.device.type == "cpu":
        oh, ow = _output_size(conv, x)
        if oh * ow <= MATMUL_CONV_MAX_PIXELS:
            return conv2d_by_matmul(x, conv)
    return conv(x)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(_conv(self.conv1, x)))
        out = self.bn2(_conv(self.conv2, out))
        return F.relu(out + self.shortcut(x))


def _scaled(channels: int, width: float) -> int:
    return max(16, int(round(channels * width)))


class ResEmoteNet(nn.Module):
    """CNN stem -> SE block -> three stride-2 residual blocks -> global average pool -> MLP head."""

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 3,
        width: float = 1.0,
        stem_width: float | None = None,
        stem_pools: int = 3,
        stem_dropout: float = 0.2,
        head_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if stem_pools not in (1, 2, 3):
            raise ValueError(f"stem_pools must be 1, 2 or 3, got {stem_pools}")
        # The first ``stem_pools`` stem convolutions are pooled: dropping the last pools raises the resolution
        # of the later layers while the full-resolution first convolution stays as cheap as in the paper.
        self.stem_pools = stem_pools
        c1, c2, c3 = (_scaled(c, width if stem_width is None else stem_width) for c in (64, 128, 256))
        r1, r2, r3 = (_scaled(c, width) for c in (512, 1024, 2048))
        h1, h2, h3 = (_scaled(c, width) for c in (1024, 512, 256))
        self.conv1 = nn.Conv2d(in_chans, c1, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c2)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(c3)
        self.se = SEBlock(c3)
        self.res_block1 = ResidualBlock(c3, r1, stride=2)
        self.res_block2 = ResidualBlock(r1, r2, stride=2)
        self.res_block3 = ResidualBlock(r2, r3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(r3, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc3 = nn.Linear(h2, h3)
        self.fc4 = nn.Linear(h3, num_classes)
        self.dropout1 = nn.Dropout(stem_dropout)
        self.dropout2 = nn.Dropout(head_dropout)

    def _pool(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return F.max_pool2d(x, 2) if index < self.stem_pools else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout1(self._pool(F.relu(self.bn1(self.conv1(x))), 0))
        x = self.dropout1(self._pool(F.relu(self.bn2(self.conv2(x))), 1))
        x = self._pool(F.relu(self.bn3(self.conv3(x))), 2)
        x = self.se(x)
        x = self.res_block1(x)
        x = self.res_block2(x)
        return self.res_block3(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x).flatten(1)
        x = self.dropout2(F.relu(self.fc1(x)))
        x = self.dropout2(F.relu(self.fc2(x)))
        x = self.dropout2(F.relu(self.fc3(x)))
        return self.fc4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
