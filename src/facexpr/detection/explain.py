"""Grad-CAM (Selvaraju et al. 2017): which pixels of each face drove the predicted expression."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from facexpr.detection.crops import crop_square, face_crops, square_box
from facexpr.detection.detector import Detector
from facexpr.detection.drawing import draw_results
from facexpr.models import ExpressionClassifier


def default_layers(model: ExpressionClassifier) -> list[nn.Module]:
    """The SE block output, the last feature map still 6x6 (48 px input; the residual stages shrink to 1x1),
    of the network or of every ensemble member."""
    members = getattr(model.net, "members", None)
    return [member.se for member in members] if members is not None else [model.net.se]


def grad_cam(
    model: ExpressionClassifier,
    prepared: np.ndarray,
    *,
    class_index: int | None = None,
    layers: Sequence[nn.Module] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Prepared faces (N x S x S uint8) -> (N x S x S heat maps in [0, 1], N x C probabilities).

    The map explains ``class_index`` or, by default, each face's predicted class; with several layers
    (an ensemble's members) it is the mean of their maps, each scaled to a peak of 1 first.
    """
    layers = list(layers or default_layers(model))
    stored: dict[int, torch.Tensor] = {}

    def keeper(index: int) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            output.retain_grad()
            stored[index] = output

        return keep

    was_training = model.training
    model.eval()
    handles = [layer.register_forward_hook(keeper(i)) for i, layer in enumerate(layers)]
    try:
        with torch.enable_grad():
            batch = torch.from_numpy(np.ascontiguousarray(prepared)).unsqueeze(1).float()
            logits = model(batch)
            targets = logits.argmax(1) if class_index is None else torch.full((len(batch),), class_index)
            model.zero_grad(set_to_none=True)
            logits.gather(1, targets[:, None]).sum().backward()
        per_layer = []
        for features in stored.values():
            weights = features.grad.mean(dim=(2, 3), keepdim=True)
            cam = torch.relu((weights * features).sum(dim=1)).detach()
            per_layer.append(cam / cam.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12))
        cams = torch.stack(per_layer).mean(dim=0).numpy()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    size = prepared.shape[-1]
    maps = np.zeros((len(prepared), size, size), dtype=np.float32)
    for i, cam in enumerate(cams):
        cam = cv2.resize(cam, (size, size), interpolation=cv2.INTER_LINEAR)
        peak = cam.max()
        maps[i] = cam / peak if peak > 0 else cam
    return maps, logits.detach().softmax(1).numpy()


def explain_image(detector: Detector, image: np.ndarray, *, alpha: float = 0.45) -> tuple[np.ndarray, list[dict]]:
    """Every face of a BGR image with its Grad-CAM overlaid on the face's crop region; returns (canvas, faces)."""
    if detector.model is None:
        raise ValueError("Grad-CAM needs a torch model; load the weights file instead of the .onnx export")
    faces = detector.predict_image(image)
    canvas = image.copy()
    if not faces:
        return canvas, faces
    boxes = [f["box"] for f in faces]
    prepared = face_crops(image, boxes, detector.config, scale=detector.face_scale, shift=detector.face_shift)
    maps, _ = grad_cam(detector.model, prepared)
    height, width = image.shape[:2]
    for box, heat in zip(boxes, maps, strict=True):
        x0, y0, side = square_box(box, scale=detector.face_scale, shift=detector.face_shift)
        colored = cv2.applyColorMap((cv2.resize(heat, (side, side)) * 255).astype(np.uint8), cv2.COLORMAP_JET)
        region = crop_square(canvas, (x0, y0, side))
        blended = cv2.addWeighted(region, 1 - alpha, colored, alpha, 0)
        cx0, cy0 = max(0, x0), max(0, y0)
        cx1, cy1 = min(width, x0 + side), min(height, y0 + side)
        canvas[cy0:cy1, cx0:cx1] = blended[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return draw_results(canvas, faces, bars=False, copy=False), faces
