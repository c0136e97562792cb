"""Inference backends for prepared faces (N x S x S uint8 -> N x C probabilities): ONNX Runtime or torch.

Both feed the same tensor, N x 1 x S x S float 0..255, to a graph that normalises internally.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from facexpr.detection.model_files import model_cache_dir
from facexpr.models import ExpressionClassifier

log = logging.getLogger("facexpr")

BACKENDS = ("auto", "onnxruntime", "torch")


class Backend(Protocol):
    name: str

    def __call__(self, faces: np.ndarray) -> np.ndarray: ...


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class TorchBackend:
    name = "torch"

    def __init__(self, model: ExpressionClassifier) -> None:
        self.model = model.eval()

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(faces)).unsqueeze(1).float()
            return self.model(batch).softmax(dim=1).numpy()


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(
        self, onnx_model: bytes | str | os.PathLike, *, threads: int | None = None, spinning: bool = False
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # Idle ORT workers must not spin while OpenCV's face detector runs on the same cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.log_severity_level = 3
        source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(faces, dtype=np.float32)[:, None]
        return _softmax(self.session.run(None, {self.input_name: batch})[0])


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def model_fingerprint(model: ExpressionClassifier) -> str:
    digest = hashlib.sha256(model.config.to_json().encode())
    for key, value in model.net.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


ONNX_CACHE_KEEP = 8  # exported graphs kept in the cache, most recently used first


def cached_onnx(model: ExpressionClassifier, *, keep: int = ONNX_CACHE_KEEP) -> Path:
    """The model exported to ONNX once per set of weights, kept in the model cache.

    Every retrained or fine-tuned model adds a file, so only the ``keep`` most recently used ones stay.
    """
    from facexpr.detection.export import export_onnx

    path = model_cache_dir() / "onnx" / f"{model.config.name}-{model_fingerprint(model)}.onnx"
    if path.is_file():
        os.utime(path)  # mark as used
    else:
        export_onnx(model, path)
    _prune_onnx_cache(path, keep)
    return path


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another process
        return 0.0


def _prune_onnx_cache(current: Path, keep: int) -> None:
    files = sorted(current.parent.glob("*.onnx"), key=_mtime, reverse=True)
    for stale in files[max(1, keep) :]:
        if stale != current:
            stale.unlink(missing_ok=True)


def create_backend(model: ExpressionClassifier, name: str = "auto", *, threads: int | None = None) -> Backend:
    """``onnxruntime`` (the default when installed) or ``torch``."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    if name == "torch" or (name == "auto" and not onnxruntime_available()):
        return TorchBackend(model)
    try:
        return OnnxRuntimeBackend(cached_onnx(model), threads=threads)
    except Exception as exc:  # an exporter or runtime failure must not stop inference when torch works
        if name == "onnxruntime":
            raise
        log.warning("ONNX Runtime backend unavailable (%s); using torch", exc)
        return TorchBackend(model)
