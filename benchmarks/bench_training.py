"""Training throughput: facexpr's pipeline vs a per-sample PIL + DataLoader reference, in one run.

Both train the same model with the same optimiser, batch size and kind of augmentation for a fixed
number of steps; the script prints img/s for each and the ratio.

(a) facexpr: images decoded once into one uint8 tensor (cached), batches gathered by index,
    augmentation batched in torch (flip, affine, brightness/contrast, erasing), channels-last model.
(c) as (a), in bf16 autocast (Lightning's ``precision: bf16-mixed``; master weights stay float32).
    Worth it where the CPU has native bf16 instructions (AVX-512 BF16 / AMX).
(d) as (c), with every convolution left to oneDNN: (c) computes those on maps of at most 3x3 output pixels as
    matrix products (``facexpr.models.resemotenet.conv2d_by_matmul``), whose backward is faster on CPU.
(b) reference: a Dataset that opens each JPEG with PIL for every sample, augments it per sample with
    PIL (flip, affine) and converts it to a tensor, collated by a DataLoader (the usual tutorial and
    official-repo pattern).

    python benchmarks/bench_training.py [--data ../shared/datasets/fer2013] [--steps 60] [--batch-size 128]
        [--set stem_width=0.75]
"""

from __future__ import annotations

import argparse
import copy
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

from facexpr.data.augment import AugmentConfig, augment_batch
from facexpr.data.datasets import load_split, resolve_split_dir, scan_class_folders
from facexpr.models import create_model, resemotenet
from facexpr.training.recipe import parse_override

ROOT = Path(__file__).resolve().parents[1]
AUGMENT = AugmentConfig(hflip=0.5, rotate=10.0, scale=(0.9, 1.1), translate=0.1, brightness=0.2, contrast=0.2)


class PilFolderDataset(Dataset):
    """Per-sample decode and augmentation, as in a classic torchvision-style pipeline."""

    def __init__(self, items: list[tuple[Path, int]], size: int) -> None:
        self.items = items
        self.size = size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[index]
        image = Image.open(path).convert("L").resize((self.size, self.size), Image.BILINEAR)
        if random.random() < AUGMENT.hflip:
            image = ImageOps.mirror(image)
        angle = random.uniform(-AUGMENT.rotate, AUGMENT.rotate)
        shift = [random.uniform(-AUGMENT.translate, AUGMENT.translate) * self.size for _ in range(2)]
        scale = random.uniform(*AUGMENT.scale)
        image = image.rotate(angle, resample=Image.BILINEAR, translate=tuple(shift))
        image = image.resize((round(self.size * scale),) * 2, Image.BILINEAR).resize((self.size, self.size))
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32)).unsqueeze(0)
        pixels = pixels * random.uniform(1 - AUGMENT.brightness, 1 + AUGMENT.brightness)
        return pixels.clamp(0, 255), label


def _train_steps(model: torch.nn.Module, batches, steps: int, augment: bool, bf16: bool = False) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    seen, started, iterator = 0, None, iter(batches)
    for step in range(steps + 2):  # two warm-up steps are not timed
        if step == 2:
            started, seen = time.perf_counter(), 0
        try:
            faces, labels = next(iterator)[:2]
        except StopIteration:
            iterator = iter(batches)
            faces, labels = next(iterator)[:2]
        if augment:
            faces = augment_batch(faces, AUGMENT)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(faces)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(labels)
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = ROOT.parent / "shared" / "datasets" / "fer2013"
    parser.add_argument("--data", type=Path, default=default_data if default_data.is_dir() else None)
    parser.add_argument("--model", default="resemotenet_w025_g48")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="replace a model-config field (repeatable)"
    )
    args = parser.parse_args()
    overrides = {key: value for item in args.set for key, value in parse_override(item).items()}
    data = args.data or ROOT / "tests" / "fixtures" / "faces"
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)

    model_a = create_model(args.model, **overrides)
    size = model_a.config.input_size
    model_b, model_c, model_d = (copy.deepcopy(model_a) for _ in range(3))  # same initial weights for all four

    started = time.perf_counter()
    train_set = load_split(data, "train", size)
    print(f"data: {data} ({len(train_set)} images, decoded/cached in {time.perf_counter() - started:.1f} s)")
    from facexpr.training.datamodule import ImageSetDataModule

    loader_a = ImageSetDataModule(train_set, None, batch_size=args.batch_size).train_dataloader()
    model_a = model_a.to(memory_format=torch.channels_last)
    ours = _train_steps(model_a, loader_a, args.steps, augment=True)
    model_c = model_c.to(memory_format=torch.channels_last)
    ours_bf16 = _train_steps(model_c, loader_a, args.steps, augment=True, bf16=True)
    matmul_pixels, resemotenet.MATMUL_CONV_MAX_PIXELS = resemotenet.MATMUL_CONV_MAX_PIXELS, 0
    onednn_bf16 = _train_steps(model_d.to(memory_format=torch.channels_last), loader_a, args.steps, True, bf16=True)
    resemotenet.MATMUL_CONV_MAX_PIXELS = matmul_pixels

    items = [
        (path, train_set.class_names.index(label))
        for path, label in scan_class_folders(resolve_split_dir(data, "train"))
    ]
    loader_b = DataLoader(PilFolderDataset(items, size), batch_size=args.batch_size, shuffle=True, drop_last=True)
    reference = _train_steps(model_b, loader_b, args.steps, augment=False)

    model_name = f"{args.model} {overrides}" if overrides else args.model
    print(f"model {model_name}, batch {args.batch_size}, {args.steps} timed steps, {args.threads} threads")
    print(f"(a) facexpr pipeline        : {ours:8.1f} img/s")
    print(f"(b) PIL per-sample reference: {reference:8.1f} img/s")
    print(f"(c) facexpr pipeline, bf16  : {ours_bf16:8.1f} img/s")
    print(f"(d) (c) with oneDNN for all : {onednn_bf16:8.1f} img/s")
    print(f"ratio (a)/(b)               : {ours / reference:8.2f}x")
    print(f"ratio (c)/(a)               : {ours_bf16 / ours:8.2f}x")
    print(f"ratio (c)/(d)               : {ours_bf16 / onednn_bf16:8.2f}x")


if __name__ == "__main__":
    main()
