"""Ensembles: one classifier averaging several networks' probabilities, saved, loaded and exported like one model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facexpr.config import ModelConfig
from facexpr.detection.explain import grad_cam
from facexpr.models import (
    ExpressionClassifier,
    ensemble_members,
    get_config,
    load_model,
    load_networks,
    make_ensemble,
    read_config,
    save_weights,
)


def _member(seed: int, **overrides) -> ExpressionClassifier:
    torch.manual_seed(seed)
    model = ExpressionClassifier(get_config("resemotenet_w0125_g48", **overrides)).eval()
    with torch.no_grad():  # a random network answers almost the same for every face: make it opinionated
        for layer in (model.net.fc1, model.net.fc2, model.net.fc3, model.net.fc4):
            layer.weight.mul_(8)
    model.config = model.config.replace(meta={"recipe": f"unit{seed}", "val_acc": 0.1 * seed})
    return model


def _faces(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, 1, 48, 48), dtype=np.uint8)).float()


@pytest.fixture(scope="module")
def members() -> list[ExpressionClassifier]:
    return [_member(1), _member(2, stem_width=0.25, head_dropout=0.0)]


@pytest.mark.parametrize("tta", ["none", "flip"])
def test_ensemble_answers_the_mean_of_its_members_probabilities(members, tta: str) -> None:
    ensemble = make_ensemble(members, tta=tta)
    faces = _faces(5)
    expected = torch.stack([m.with_tta(tta).predict_proba(faces) for m in members]).mean(0)
    torch.testing.assert_close(ensemble.predict_proba(faces), expected, atol=1e-6, rtol=1e-5)
    assert (expected - members[0].with_tta(tta).predict_proba(faces)).abs().max() > 1e-3  # members disagree


def test_ensemble_file_round_trips_members_and_their_metadata(members, tmp_path: Path) -> None:
    ensemble = make_ensemble(members, name="pair", tta="flip")
    path = save_weights(ensemble, tmp_path / "pair.safetensors")
    config = read_config(path)
    assert config == ensemble.config
    assert config.members[1] == {
        "width": 0.125,
        "stem_width": 0.25,
        "stem_pools": 3,
        "stem_dropout": 0.2,
        "head_dropout": 0.0,
    }
    assert config.meta["recipe"] == "unit1 + unit2"
    assert [m["val_acc"] for m in config.meta["members"]] == [0.1, 0.2]
    loaded = load_model(path)
    assert loaded.net.members[1].conv1.out_channels == 16  # the member's own stem width was rebuilt
    faces = _faces(4, seed=3)
    torch.testing.assert_close(loaded.predict_proba(faces), ensemble.predict_proba(faces))
    half = load_model(save_weights(ensemble, tmp_path / "half.safetensors", half=True))
    torch.testing.assert_close(half.predict_proba(faces), ensemble.predict_proba(faces), atol=2e-3, rtol=0)


def test_an_ensemble_given_as_a_member_contributes_each_of_its_networks(members, tmp_path: Path) -> None:
    third = _member(3, stem_pools=2)
    pair = load_model(save_weights(make_ensemble(members, name="pair"), tmp_path / "pair.safetensors"))
    split = ensemble_members(pair)
    assert [m.config.meta["recipe"] for m in split] == ["unit1", "unit2"]
    assert [m.config.name for m in split] == ["pair[0]", "pair[1]"]  # not the ensemble's own name
    assert [m.config.stem_width for m in split] == [m.config.stem_width for m in members]
    faces = _faces(5, seed=7)
    for part, member in zip(split, members, strict=True):
        torch.testing.assert_close(part.predict_proba(faces), member.predict_proba(faces))
    trio = make_ensemble([pair, third], name="trio")
    assert len(trio.config.members) == 3 and trio.config.members[2]["stem_pools"] == 2
    assert trio.config.meta["recipe"] == "unit1 + unit2 + unit3"
    expected = torch.stack([m.predict_proba(faces) for m in (*members, third)]).mean(0)  # every network weighs 1/3
    torch.testing.assert_close(trio.predict_proba(faces), expected, atol=1e-6, rtol=1e-5)
    assert ensemble_members(third) == [third]


def test_load_networks_splits_files_and_make_ensemble_script_keeps_the_chosen_ones(members, tmp_path: Path) -> None:
    import subprocess
    import sys

    pair = save_weights(make_ensemble(members, name="pair"), tmp_path / "pair.safetensors")
    third = save_weights(_member(3, stem_pools=2), tmp_path / "third.safetensors")
    labelled = load_networks([pair, third])
    assert [label for label, _ in labelled] == [f"{pair}[0]", f"{pair}[1]", str(third)]
    assert [net.config.meta["recipe"] for _, net in load_networks([pair, third], "2,0")] == ["unit3", "unit1"]
    assert [net.config.meta["recipe"] for _, net in load_networks([pair, third], [1])] == ["unit2"]
    for bad in ("3", "a", "", [-1]):
        with pytest.raises(ValueError, match="give indices from 0 to 2"):
            load_networks([pair, third], bad)

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_ensemble.py"
    out = tmp_path / "chosen.safetensors"
    args = [sys.executable, str(script), str(third), str(pair), "--only", "0,2", "--out", str(out), "--tta", "flip"]
    made = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    chosen = load_model(out)
    assert chosen.config.meta["recipe"] == "unit3 + unit2" and chosen.config.tta == "flip"
    faces = _faces(4, seed=3)
    networks = (load_model(third), members[1])
    expected = torch.stack([net.with_tta("flip").predict_proba(faces) for net in networks]).mean(0)
    torch.testing.assert_close(chosen.predict_proba(faces), expected, atol=1e-6, rtol=1e-5)
    wrong = subprocess.run(
        [*args[:-4], "--only", "5", "--out", str(tmp_path / "x.safetensors")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode != 0 and "only=5: give indices from 0 to 2" in wrong.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_evaluate_ensemble_script_splits_ensembles_and_averages_the_chosen_networks(
    members, faces_dir: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    pair = save_weights(make_ensemble(members, name="pair"), tmp_path / "pair.safetensors")
    third = save_weights(_member(3), tmp_path / "third.safetensors")
    script = Path(__file__).resolve().parents[1] / "scripts" / "evaluate_ensemble.py"

    def run(*extra: str) -> subprocess.CompletedProcess:
        args = [sys.executable, str(script), str(faces_dir), str(pair), str(third), "--split", "train", *extra]
        return subprocess.run(args, capture_output=True, text=True, timeout=120)

    every = run()
    assert every.returncode == 0, every.stderr[-2000:]
    lines = every.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == [f"{pair}[0]", f"{pair}[1]", str(third)]
    assert lines[3].startswith("average of 3 (tta none): accuracy")
    assert [line.split(":")[0] for line in lines[4:]] == [
        f"gain over {name}" for name in (f"{pair}[0]", f"{pair}[1]", third)
    ]
    assert all("95 % paired bootstrap interval" in line for line in lines[4:])
    chosen = run("--only", "0,2")
    assert chosen.returncode == 0 and chosen.stdout.splitlines()[2].startswith("average of 2")
    wrong = run("--only", "3")
    assert wrong.returncode != 0 and "only=3: give indices from 0 to 2" in wrong.stderr


def test_members_must_share_the_input_and_classes(members) -> None:
    other_size = ExpressionClassifier(get_config("resemotenet_w0125_g48", input_size=64))
    with pytest.raises(ValueError, match="input_size"):
        make_ensemble([members[0], other_size])
    with pytest.raises(ValueError, match="at least two"):
        make_ensemble(members[:1])
    stored = make_ensemble(members).config.to_dict()
    stored["members"][0]["input_size"] = 64
    with pytest.raises(ValueError, match="members may set only"):
        ModelConfig.from_dict(stored)


def test_grad_cam_explains_an_ensemble(members) -> None:
    ensemble = make_ensemble(members)
    prepared = _faces(2, seed=5).squeeze(1).numpy().astype(np.uint8)
    maps, probs = grad_cam(ensemble, prepared)
    assert maps.shape == (2, 48, 48) and 0 <= maps.min() and maps.max() == pytest.approx(1.0)
    expected = ensemble.predict_proba(torch.from_numpy(prepared).unsqueeze(1).float())
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_ensemble_exports_to_one_onnx_graph(members, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from facexpr.detection.export import export_onnx, read_onnx_config

    ensemble = make_ensemble(members, tta="flip")
    path = export_onnx(ensemble, tmp_path / "pair.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    faces = _faces(3, seed=7)
    onnx_probs = torch.from_numpy(session.run(None, {"faces": faces.numpy()})[0]).softmax(1)
    torch.testing.assert_close(onnx_probs, ensemble.predict_proba(faces), atol=1e-5, rtol=1e-4)
    assert read_onnx_config(path) == ensemble.config
