"""ONNX export: dynamic batch, outputs equal to torch within 1e-4, config metadata, ONNX as inference backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
import onnxruntime as ort  # noqa: E402

from facexpr import create_model, save_weights  # noqa: E402
from facexpr.cli import main  # noqa: E402
from facexpr.detection.backends import OnnxRuntimeBackend, TorchBackend, cached_onnx, create_backend  # noqa: E402
from facexpr.detection.export import export_onnx, read_onnx_config  # noqa: E402
from facexpr.detection.model_files import model_cache_dir  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("resemotenet_w0125_g48").eval()


def _faces(n: int, size: int = 48, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def test_onnx_matches_torch_for_any_batch(model, tmp_path: Path) -> None:
    path = export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
    for n in (1, 5, 33):
        faces = _faces(n, seed=n)
        onnx_logits = session.run(None, {"faces": faces[:, None].astype(np.float32)})[0]
        with torch.inference_mode():
            torch_logits = model(torch.from_numpy(faces).unsqueeze(1).float()).numpy()
        assert onnx_logits.shape == (n, 7)
        assert np.abs(onnx_logits - torch_logits).max() < 1e-4
    assert read_onnx_config(path) == model.config


@pytest.mark.parametrize("tta", ["flip", "flip+crops"])
def test_onnx_export_carries_the_models_test_time_augmentation(tta: str, tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = create_model("resemotenet_w0125_g48").eval()
    with torch.no_grad():  # a random network answers almost the same for every face: make it opinionated
        for layer in (model.net.fc1, model.net.fc2, model.net.fc3, model.net.fc4):
            layer.weight.mul_(8)
    with_tta = model.with_tta(tta).eval()
    session = ort.InferenceSession(str(export_onnx(with_tta, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        faces = torch.from_numpy(_faces(n, seed=10 + n)).unsqueeze(1).float()
        onnx_probs = torch.from_numpy(session.run(None, {"faces": faces.numpy()})[0]).softmax(1)
        torch.testing.assert_close(onnx_probs, with_tta.predict_proba(faces), atol=1e-5, rtol=1e-4)
        assert (onnx_probs - model.predict_proba(faces)).abs().max() > 1e-3  # the views changed the answer


def test_backends_agree_on_prepared_faces(model) -> None:
    faces = _faces(6)
    onnx_backend = create_backend(model, "auto")
    assert isinstance(onnx_backend, OnnxRuntimeBackend)  # the default when installed
    np.testing.assert_allclose(onnx_backend(faces), TorchBackend(model)(faces), atol=1e-5)
    assert create_backend(model, "auto").session is not None  # second one reuses the cached export
    with pytest.raises(ValueError, match="unknown backend"):
        create_backend(model, "tensorrt")


def test_onnx_cache_keeps_only_the_most_recently_used_exports(model, monkeypatch, tmp_path: Path) -> None:
    import os

    monkeypatch.setenv("FACEXPR_CACHE", str(tmp_path / "cache"))
    folder = model_cache_dir() / "onnx"
    folder.mkdir(parents=True)
    old = []
    for i in range(6):  # exports of earlier weights, oldest first
        stale = folder / f"old-{i}.onnx"
        stale.write_bytes(b"x")
        os.utime(stale, (1_000_000 + i, 1_000_000 + i))
        old.append(stale)
    path = cached_onnx(model, keep=3)
    assert read_onnx_config(path) == model.config
    assert sorted(folder.glob("*.onnx")) == sorted([path, old[5], old[4]])
    os.utime(path, (1, 1))
    assert cached_onnx(model, keep=2) == path  # a cache hit is marked as used, so it is not the one pruned
    assert sorted(folder.glob("*.onnx")) == sorted([path, old[5]])


def test_detector_runs_an_exported_file(model, tmp_path: Path) -> None:
    from facexpr.detection import Detector

    path = export_onnx(model, tmp_path / "m.onnx")
    crops = list(_faces(3))
    from_onnx = Detector(path).classify(crops)
    from_torch = Detector(model, backend="torch").classify(crops)
    for a, b in zip(from_onnx, from_torch, strict=True):
        assert a["label"] == b["label"]
        assert all(abs(a["scores"][k] - b["scores"][k]) < 1e-4 for k in a["scores"])


def test_export_command(model, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    weights = save_weights(model, tmp_path / "w.safetensors")
    out = tmp_path / "out" / "w.onnx"
    assert main(["export", "--format", "onnx", "--model", str(weights), "--out", str(out)]) == 0
    assert out.is_file() and read_onnx_config(out).name == "resemotenet_w0125_g48"
    err = capsys.readouterr().err
    assert "max |onnx - torch|" in err
    assert float(err.split("random faces: ")[1].split(")")[0]) < 1e-4
