from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facexpr.cli import main
from facexpr.data.datasets import load_split
from facexpr.evaluation import (
    accuracy_interval,
    classification_metrics,
    confusion_matrix,
    evaluate,
    evaluate_dir,
    metrics_from_confusion,
    predict_proba,
)
from facexpr.labels import FER2013_CLASSES
from facexpr.models import ExpressionClassifier, create_model, save_weights
from facexpr.models.weights import pretrained_path

TINY = "resemotenet_w0125_g48"


def _always_predicts(class_name: str, class_names: tuple[str, ...] = FER2013_CLASSES):
    """A real network whose output is dominated by one class's bias: its predictions are known in advance."""
    torch.manual_seed(0)
    model = create_model(TINY, class_names=class_names)
    with torch.no_grad():
        model.net.fc4.weight.zero_()
        model.net.fc4.bias.fill_(-10.0)
        model.net.fc4.bias[class_names.index(class_name)] = 10.0
    return model.eval()


def test_metrics_match_hand_computed_example():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    result = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert result["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert result["accuracy"] == pytest.approx(4 / 6)
    a, b, c = (result["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"], a["f1"], a["support"]) == pytest.approx((1.0, 2 / 3, 0.8, 3))
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == pytest.approx((0.5, 0.5, 0.5, 2))
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx((0.5, 1.0, 2 / 3, 1))
    assert result["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert result["n_images"] == 6


def test_metrics_agree_with_torchmetrics():
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 5, 500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, 5, 500))
    result = classification_metrics(y_true, y_pred, list("vwxyz"))
    t, p = torch.from_numpy(y_true), torch.from_numpy(y_pred)
    assert result["accuracy"] == pytest.approx(multiclass_accuracy(p, t, 5, average="micro").item(), abs=1e-6)
    assert result["macro_f1"] == pytest.approx(multiclass_f1_score(p, t, 5, average="macro").item(), abs=1e-6)


def test_absent_class_never_predicted_is_left_out_of_macro_f1():
    result = classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), ["a", "b", "c"])
    assert result["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    f1_a, f1_b = 2 * 0.5 * 1 / 1.5, 2 * 1 * 0.5 / 1.5
    assert result["macro_f1"] == pytest.approx((f1_a + f1_b) / 2)


def test_confusion_matrix_rejects_bad_labels():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="does not fit"):
        metrics_from_confusion(np.zeros((2, 2)), ["a", "b", "c"])


def test_accuracy_interval_matches_the_binomial_spread_and_pairs_narrow_it():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, 3000)
    a = np.where(rng.random(3000) < 0.68, labels, (labels + 1) % 7)  # right on about 68 % of the images
    b = a.copy()
    lost = np.flatnonzero(a == labels)[:30]
    b[lost] = (labels[lost] + 2) % 7  # 30 fewer right
    accuracy = np.mean(a == labels)
    low, high = accuracy_interval(labels, a)
    half_width = 1.96 * np.sqrt(accuracy * (1 - accuracy) / 3000)
    assert low < accuracy < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.15)
    assert accuracy_interval(labels, a) == (low, high)  # seeded
    diff_low, diff_high = accuracy_interval(labels, a, b)
    assert diff_low <= 30 / 3000 <= diff_high and diff_low > 0  # every resample keeps a ahead
    assert diff_high - diff_low < (high - low) / 3
    assert accuracy_interval(labels, a, a) == (0.0, 0.0)
    with pytest.raises(ValueError, match="no images"):
        accuracy_interval(np.array([]), np.array([]))


def test_evaluate_constant_model_gives_known_figures(faces_dir):
    images = load_split(faces_dir, "val", 48)
    result = evaluate(_always_predicts("happy"), images, batch_size=5)
    happy = result["per_class"]["happy"]
    assert result["accuracy"] == pytest.approx(6 / 42)
    assert (happy["precision"], happy["recall"], happy["support"]) == pytest.approx((6 / 42, 1.0, 6))
    assert result["per_class"]["sad"]["recall"] == 0.0
    assert np.array(result["confusion_matrix"])[:, FER2013_CLASSES.index("happy")].tolist() == [6] * 7


def test_evaluate_is_deterministic_and_independent_of_batch_size(faces_dir):
    torch.manual_seed(3)
    model = create_model(TINY).train()  # evaluate must switch dropout off by itself
    images = load_split(faces_dir, "val", 48)
    first = evaluate(model, images, batch_size=4)
    second = evaluate(model, images, batch_size=64)
    assert first == second
    assert model.training, "evaluate must restore the model's mode"
    expected = model.predict_proba(torch.from_numpy(images.images).unsqueeze(1)).argmax(1).numpy()
    assert first["accuracy"] == pytest.approx(float((expected == images.labels).mean()))


def test_flip_tta_averages_probabilities_of_image_and_mirror(faces_dir):
    torch.manual_seed(4)
    model = create_model(TINY).eval()
    images = load_split(faces_dir, "val", 48).images[:5]
    faces = torch.from_numpy(images).unsqueeze(1)
    expected = (model.predict_proba(faces) + model.predict_proba(faces.flip(-1))) / 2
    np.testing.assert_allclose(predict_proba(model, images, tta="flip"), expected.numpy(), atol=1e-6)
    assert not model.training and not model.net.training  # an overridden TTA leaves the caller's mode alone
    crops = predict_proba(model, images, tta="flip+crops")
    np.testing.assert_allclose(crops.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(crops, expected.numpy())
    with pytest.raises(ValueError, match="TTA"):
        predict_proba(model, images, tta="rotate")


def test_tta_in_the_config_is_applied_in_eval_mode_only(faces_dir):
    torch.manual_seed(5)
    plain = create_model(TINY)
    flipping = ExpressionClassifier(plain.config.replace(tta="flip"), net=plain.net)
    faces = torch.from_numpy(load_split(faces_dir, "val", 48).images[:6]).unsqueeze(1)
    expected = (plain.predict_proba(faces) + plain.predict_proba(faces.flip(-1))) / 2
    torch.testing.assert_close(flipping.predict_proba(faces), expected, atol=1e-6, rtol=1e-5)
    flipping.train()
    torch.manual_seed(6)
    training_logits = flipping(faces)
    plain.train()
    torch.manual_seed(6)
    torch.testing.assert_close(training_logits, plain(faces))  # training never averages views
    with pytest.raises(ValueError, match="TTA"):
        ExpressionClassifier(plain.config.replace(tta="rotate"))


def test_labels_follow_the_model_class_order(faces_dir):
    order = tuple(reversed(FER2013_CLASSES))
    model = _always_predicts("fear", order)
    images = load_split(faces_dir, "val", 48)  # canonical order
    result = evaluate(model, images)
    assert result["class_names"] == list(order)
    assert result["per_class"]["fear"]["recall"] == 1.0
    assert result["accuracy"] == pytest.approx(6 / 42)


def test_evaluate_dir_excludes_training_duplicates(faces_dir, tmp_path):
    train = tmp_path / "train_copy"
    shutil.copytree(faces_dir / "train", train)
    leaked = sorted((faces_dir / "val" / "sad").glob("*.jpg"))[:3]
    for path in leaked:  # pixel-identical copies of 3 val images, even under another class and name
        shutil.copy(path, train / "happy" / f"copy_{path.name}")
    model = _always_predicts("sad")
    report = evaluate_dir(faces_dir, model, split="val", exclude_duplicates_of=train)
    clean = report["leakage_free"]
    assert report["n_images"] == 42 and report["accuracy"] == pytest.approx(6 / 42)
    assert clean["n_excluded"] == 3 and clean["n_images"] == 39
    assert sorted(Path(p).name for p in clean["excluded_files"]) == [p.name for p in leaked]
    assert clean["accuracy"] == pytest.approx(3 / 39)
    assert clean["per_class"]["sad"]["support"] == 3


def test_evaluate_dir_reports_unreadable_files_by_name(faces_dir, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(faces_dir / "val", root)  # a split folder itself, no train/val level
    (root / "angry" / "empty.jpg").write_bytes(b"")
    report = evaluate_dir(root, _always_predicts("angry"), split="val")
    assert report["split"] is None
    assert report["n_images"] == 42
    assert report["unreadable"]["count"] == 1
    assert report["unreadable"]["files"][0].endswith("empty.jpg")


def test_cli_evaluate_writes_report_and_figure(faces_dir, tmp_path, capsys):
    weights = save_weights(_always_predicts("neutral"), tmp_path / "model.safetensors")
    out = tmp_path / "out" / "report.json"
    code = main(["evaluate", str(faces_dir), "--model", str(weights), "--report", str(out), "--tta", "flip"])
    assert code == 0
    report = json.loads(out.read_text())
    for key in ("accuracy", "macro_f1", "per_class", "confusion_matrix", "class_names", "n_images", "unreadable"):
        assert key in report
    assert report["accuracy"] == pytest.approx(6 / 42)
    assert report["tta"] == "flip" and report["split"] == "val"
    assert report["model_config"]["name"] == TINY
    assert sum(map(sum, report["confusion_matrix"])) == 42
    png = out.with_suffix(".png")
    with Image.open(png) as figure:
        width, height = figure.size
    assert width > 1.5 * height  # two side-by-side panels
    printed = capsys.readouterr().out
    assert "neutral" in printed and "accuracy 0.1429 (95 % bootstrap interval" in printed
    low, high = report["accuracy_ci95"]
    assert 0 <= low < 6 / 42 < high <= 1


def test_cli_evaluate_keeps_its_report_when_stdout_is_closed(faces_dir, tmp_path, monkeypatch):
    class ClosedPipe:  # what `facexpr evaluate ... | head -1` leaves once head has exited
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    weights = save_weights(_always_predicts("neutral"), tmp_path / "model.safetensors")
    out = tmp_path / "report.json"
    monkeypatch.setattr("sys.stdout", ClosedPipe())
    main(["evaluate", str(faces_dir), "--model", str(weights), "--report", str(out)])
    assert json.loads(out.read_text())["accuracy"] == pytest.approx(6 / 42)
    assert out.with_suffix(".png").is_file()


def test_cli_evaluate_bad_model_is_one_line_error(faces_dir, tmp_path, capsys):
    code = main(["evaluate", str(faces_dir), "--model", str(tmp_path / "missing.safetensors")])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.count("\n") == 0 and "missing.safetensors" in err


def test_cli_evaluate_without_default_model_is_one_line_error(faces_dir, capsys):
    try:
        pretrained_path("fer2013")
        pytest.skip("the default model is installed")
    except FileNotFoundError:
        pass
    code = main(["evaluate", str(faces_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.count("\n") == 0 and "not installed" in err and "--model" in err
