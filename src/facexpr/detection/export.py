"""Export an ExpressionClassifier to ONNX (dynamic batch, normalisation inside, config in the metadata)."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import torch

from facexpr.config import ModelConfig
from facexpr.files import atomic_write
from facexpr.models import ExpressionClassifier

INPUT_NAME = "faces"
OUTPUT_NAME = "logits"
CONFIG_KEY = "facexpr_config"


def onnx_bytes(model: ExpressionClassifier, *, opset: int = 17) -> bytes:
    """The serialised ONNX graph: input N x 1 x S x S float 0..255, output N x C logits."""
    import onnx

    size = model.config.input_size
    was_training = model.training
    model.eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.zeros(2, 1, size, size),),
                buffer,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    graph = onnx.load_from_string(buffer.getvalue())
    entry = graph.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, model.config.to_json()
    return graph.SerializeToString()


def export_onnx(model: ExpressionClassifier, path: str | os.PathLike, *, opset: int = 17) -> Path:
    """Write the model to ``path`` atomically."""
    with atomic_write(path) as handle:
        handle.write(onnx_bytes(model, opset=opset))
    return Path(path)


def read_onnx_config(path_or_bytes: str | os.PathLike | bytes) -> ModelConfig:
    """The model config stored in an exported file's metadata."""
    import onnx

    graph = onnx.load_from_string(path_or_bytes) if isinstance(path_or_bytes, bytes) else onnx.load(path_or_bytes)
    for entry in graph.metadata_props:
        if entry.key == CONFIG_KEY:
            return ModelConfig.from_json(entry.value)
    raise ValueError(f"{path_or_bytes if not isinstance(path_or_bytes, bytes) else '<onnx>'}: no {CONFIG_KEY} metadata")


def max_difference(
    model: ExpressionClassifier, onnx_path: str | os.PathLike, *, batch: int = 8, seed: int = 0
) -> float:
    """Largest |ONNX Runtime - torch| logit difference on random faces (the export check)."""
    import numpy as np
    import onnxruntime as ort

    size = model.config.input_size
    faces = np.random.default_rng(seed).integers(0, 256, (batch, 1, size, size)).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(None, {INPUT_NAME: faces})[0]
    model.eval()
    with torch.inference_mode():
        torch_logits = model(torch.from_numpy(faces)).numpy()
    return float(np.abs(onnx_logits - torch_logits).max())
