"""The one definition of how an image becomes model input.

Training, evaluation, export and every inference path go through these functions:
decode -> grayscale uint8 -> square resize to ``config.input_size`` -> (batched, in torch) scale to
[0, 1], replicate to ``config.in_chans`` and normalise with ``config.mean``/``config.std``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from facexpr.config import ModelConfig

# Decoding refuses images above this many pixels (decompression bombs); callers may lower it.
MAX_IMAGE_PIXELS = 64_000_000


class ImageError(ValueError):
    """An input image that cannot be used; the message names the image and the problem."""


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    values = array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating) and values.size and np.nanmax(values) <= 1.0:
        values = values * 255.0
    elif np.issubdtype(array.dtype, np.integer) and values.size and values.max() > 255:
        values = values * (255.0 / max(float(values.max()), 1.0))
    return np.clip(np.nan_to_num(values), 0, 255).astype(np.uint8)


def read_image(source: str | os.PathLike | bytes, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a file or encoded bytes into a BGR uint8 array (OpenCV's convention).

    Accepts whatever Pillow reads (JPEG, PNG, BMP, TIFF, WebP, GIF...), 16-bit, palette, CMYK and
    alpha images, and applies the EXIF orientation. Raises :class:`ImageError` naming the input.
    """
    name = "<bytes>" if isinstance(source, bytes | bytearray) else str(source)
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes | bytearray) else open(source, "rb")
    except OSError as exc:
        raise ImageError(f"{name}: cannot open ({exc.strerror or exc})") from None
    with handle:
        try:
            image = Image.open(handle)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"{name}: image too large ({width}x{height} > {max_pixels:,} pixels)")
            image.load()
            image = ImageOps.exif_transpose(image)
        except ImageError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
            raise ImageError(f"{name}: not a readable image ({exc.__class__.__name__})") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"{name}: corrupt or truncated image ({exc})") from None
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image)
        if image.mode.startswith("I;16"):
            array = array.astype(np.uint16)
        gray = _to_uint8(array)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if image.mode != "RGB":
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
            image = background
        else:
            image = image.convert("RGB")
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any image array (HxW, HxWx1, HxWx3 BGR, HxWx4 BGRA; uint8/uint16/float) -> HxW uint8."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    array = _to_uint8(array)
    if array.ndim == 2:
        return np.ascontiguousarray(array)
    if array.ndim == 3 and array.shape[2] == 3:
        return cv2.cvtColor(array, cv2.COLOR_BGR2GRAY)
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2GRAY)
    raise ImageError(f"unsupported image array shape {array.shape}")


def resize_square(gray: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size`` x ``size``: area averaging when shrinking, bilinear when enlarging."""
    h, w = gray.shape[:2]
    if (h, w) == (size, size):
        return gray
    interpolation = cv2.INTER_AREA if h > size or w > size else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interpolation)


def prepare_face(image: np.ndarray, config: ModelConfig) -> np.ndarray:
    """A face crop (any size, colour or gray) -> ``input_size`` x ``input_size`` gray uint8."""
    if image.size == 0:
        raise ImageError("empty face crop")
    return resize_square(to_gray(image), config.input_size)


def prepare_faces(images: Sequence[np.ndarray], config: ModelConfig) -> np.ndarray:
    """Stack prepared faces into an N x S x S uint8 array."""
    size = config.input_size
    out = np.empty((len(images), size, size), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = prepare_face(image, config)
    return out


def normalize(batch: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """Prepared gray pixels (N x S x S or N x 1 x S x S, values 0..255) -> normalised float model input."""
    x = batch if batch.ndim == 4 else batch.unsqueeze(1)
    x = x.float() * (1.0 / 255.0)
    if config.in_chans != 1:
        x = x.expand(-1, config.in_chans, -1, -1)
    mean = torch.tensor(config.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(config.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"})


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES
