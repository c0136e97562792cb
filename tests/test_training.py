from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from facexpr.models import load_model
from facexpr.training.recipe import RecipeError, load_recipe, model_config_for, parse_override

TINY = [
    "model=resemotenet_w0125_g48",
    "train.batch_size=8",
    "train.lr=0.01",
    "train.ckpt_every_n_steps=1",
]


def _cli(*args: str, cwd: Path) -> list[str]:
    return [sys.executable, "-m", "facexpr", "train", *args, "--no-progress", "--threads", "1"]


def _overrides(faces_dir: Path, *extra: str) -> list[str]:
    out = []
    for item in (*TINY, f"data.root={faces_dir}", *extra):
        out += ["--set", item]
    return out


def test_recipe_overrides_and_paper_recipe() -> None:
    assert parse_override("train.lr=0.5") == {"train": {"lr": 0.5}}
    recipe = load_recipe("paper", ["train.epochs=3", "augment.scale=[0.9, 1.0]"])
    assert recipe["model"] == "resemotenet"
    assert recipe["train"]["epochs"] == 3
    t = recipe["train"]
    assert (t["optimizer"], t["lr"], t["momentum"], t["weight_decay"], t["batch_size"], t["patience"]) == (
        "sgd",
        0.001,
        0.9,
        0.0001,
        16,
        15,
    )
    assert load_recipe("paper")["train"]["epochs"] == 80
    with pytest.raises(RecipeError, match="unknown recipe key 'train.lrr'"):
        load_recipe(None, ["train.lrr=1"])
    with pytest.raises(RecipeError, match="not found"):
        load_recipe("no-such-recipe")


def test_a_recipe_extends_its_base_and_lists_only_what_it_changes(tmp_path: Path) -> None:
    lightreg = load_recipe("fer2013_w025_lightreg")
    (tmp_path / "wide.yaml").write_text("base: fer2013_w025_lightreg\nmodel_args: {stem_width: 0.5}\n")
    (tmp_path / "wide_long.yaml").write_text("base: wide.yaml\ntrain: {epochs: 7}\n")  # found beside it
    recipe = load_recipe(tmp_path / "wide_long.yaml", ["train.lr=0.2"])
    assert recipe["name"] == "wide_long" and "base" not in recipe
    assert recipe["train"] == {**lightreg["train"], "epochs": 7, "lr": 0.2}
    assert recipe["model_args"] == {**lightreg["model_args"], "stem_width": 0.5}
    assert recipe["augment"] == lightreg["augment"] != load_recipe(None)["augment"]
    # The committed children resolve to their parents plus their own lines.
    pools1 = load_recipe("fer2013_w025_pools1")
    assert pools1["train"] == {**load_recipe("fer2013_w025_pools2")["train"], "precision": "auto"}

    (tmp_path / "loop_a.yaml").write_text("base: loop_b.yaml\n")
    (tmp_path / "loop_b.yaml").write_text("base: loop_a.yaml\n")
    with pytest.raises(RecipeError, match="extends itself"):
        load_recipe(tmp_path / "loop_a.yaml")
    (tmp_path / "orphan.yaml").write_text("base: no-such-base\n")
    with pytest.raises(RecipeError, match="no-such-base: recipe file not found"):
        load_recipe(tmp_path / "orphan.yaml")
    (tmp_path / "typo.yaml").write_text("base: fer2013_w025\ntrain: {lrr: 1}\n")
    with pytest.raises(RecipeError, match="unknown recipe key 'train.lrr'"):
        load_recipe(tmp_path / "typo.yaml")


def test_model_args_replace_fields_of_the_registered_config() -> None:
    shipped = model_config_for(load_recipe("fer2013_w025_lightreg"))
    assert (shipped.name, shipped.width, shipped.input_size) == ("resemotenet_w025_g48", 0.25, 48)
    assert (shipped.stem_dropout, shipped.head_dropout) == (0.0, 0.1)
    assert model_config_for(load_recipe("paper")).head_dropout == 0.5  # the paper's value by default
    custom = model_config_for(load_recipe(None, ["model_args.input_size=64", "model_args.mean=[0.4]"]))
    assert (custom.input_size, custom.mean) == (64, (0.4,))
    with pytest.raises(RecipeError, match="unknown model_args"):
        model_config_for(load_recipe(None, ["model_args.depth=3"]))
    with pytest.raises(RecipeError, match="unknown model_args"):
        model_config_for(load_recipe(None, ["model_args.class_names=[a, b]"]))
    with pytest.raises(RecipeError, match="unknown model_args"):
        model_config_for(load_recipe(None, ["model_args.tta=flip"]))  # train.val_tta and packaging own it


def test_ferplus_votes_weight_gives_soft_training_targets_and_hard_validation(faces_dir: Path, tmp_path: Path) -> None:
    import shutil

    from ferplus_support import vote_counts, write_votes_csv

    from facexpr.training.datamodule import ImageSetDataModule
    from facexpr.training.train import load_training_data

    root = tmp_path / "faces"
    shutil.copytree(faces_dir, root)
    first = sorted((root / "train" / "happy").glob("*.jpg"))[0]
    row = (f"train/happy/{first.name}", "happy", "ok", vote_counts(neutral=5, happiness=5))
    write_votes_csv(root / "ferplus_votes.csv", [row])
    recipe = load_recipe(None, [f"data.root={root}", "data.ferplus_votes_weight=0.4"])
    train, val = load_training_data(recipe, 48)
    names = train.class_names
    row = train.soft_labels[[Path(p).name for p in train.paths].index(first.name)]
    assert row[names.index("happy")] == pytest.approx(0.8) and row[names.index("neutral")] == pytest.approx(0.2)
    assert val is not None and val.soft_labels is None
    data = ImageSetDataModule(train, val, batch_size=4, soft_labels=True)
    faces, labels, targets, index = next(iter(data.train_dataloader()))  # training batches carry their indices
    assert torch.equal(targets, torch.from_numpy(train.soft_labels)[index]) and len(faces) == len(labels) == 4
    assert len(next(iter(data.val_dataloader()))) == 2
    with pytest.raises(ValueError, match="folder labels"):
        load_training_data(
            load_recipe(None, [f"data.root={root}", "data.ferplus_votes_weight=0.4", "data.labels=ferplus"]), 48
        )


def test_precision_auto_takes_bf16_only_where_the_cpu_computes_it(monkeypatch, caplog) -> None:
    import logging

    from facexpr.training import train as train_module

    monkeypatch.setattr(logging.getLogger("facexpr"), "propagate", True)  # the CLI turns it off for its own handler
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True, "amx_bf16": False})
    assert train_module.resolve_precision("auto") == "bf16-mixed"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True, "avx512_bf16": False})
    assert train_module.resolve_precision("auto") == "32-true"
    assert train_module.resolve_precision("16-mixed") == "16-mixed"  # an explicit choice is kept
    with caplog.at_level("WARNING", logger="facexpr.training.train"):
        assert train_module.resolve_precision("bf16-mixed") == "bf16-mixed"
    assert "emulated" in caplog.text


def test_train_writes_a_reproducible_run(tmp_path: Path, faces_dir: Path) -> None:
    from facexpr.training.train import cpu_has_native_bf16, train

    torch.set_num_threads(1)
    overrides = [
        *TINY,
        f"data.root={faces_dir}",
        "train.epochs=2",
        "train.label_smoothing=0.1",
        "train.mixup=0.2",
        "model_args.head_dropout=0.05",
        "train.val_tta=flip",
        "train.precision=auto",
    ]
    summary = train(
        None,
        overrides,
        out_dir=tmp_path,
        run_name="tiny",
        progress=False,
    )
    run = tmp_path / "tiny"
    assert summary["run_dir"] == str(run)
    assert 0.0 <= summary["best_val_acc"] <= 1.0
    for name in (
        "recipe.yaml",
        "run.json",
        "logs/metrics.csv",
        "curves.png",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "model.safetensors",
    ):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["seed"] == 0 and "commit" in info["git"] and info["train_images"] == 56
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    assert recipe["train"]["epochs"] == 2 and recipe["data"]["root"] == str(faces_dir)
    assert recipe["train"]["precision"] == ("bf16-mixed" if cpu_has_native_bf16() else "32-true")  # resolved
    model = load_model(run / "model.safetensors")
    assert model.config.name == "resemotenet_w0125_g48"
    assert model.config.head_dropout == 0.05 and recipe["model_args"] == {"head_dropout": 0.05}
    assert model.config.meta["recipe"] == "experiment"
    assert model.config.meta["overrides"] == overrides  # the weights say how they differ from their recipe
    assert model.config.meta["val_acc"] == pytest.approx(summary["best_val_acc"])
    header = (run / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "val/acc" in header and "train/loss" in header


def test_ema_decay_validates_and_ships_the_weight_average(tmp_path: Path, faces_dir: Path) -> None:
    from safetensors.torch import load_file

    from facexpr.evaluation.evaluate import evaluate_dir
    from facexpr.training.module import ExpressionModule
    from facexpr.training.train import train

    torch.set_num_threads(1)
    overrides = [*TINY, f"data.root={faces_dir}", "train.epochs=3", "train.ema_decay=0.8", "train.precision=32-true"]
    summary = train(None, overrides, out_dir=tmp_path, run_name="ema", progress=False)
    run = tmp_path / "ema"
    state = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    shipped = load_file(run / "model.safetensors")
    raw = {key[len("model.net.") :]: value for key, value in state.items() if key.startswith("model.net.")}
    average = {
        key[len("ema.module.net.") :]: value for key, value in state.items() if key.startswith("ema.module.net.")
    }
    assert set(average) == set(raw) and set(shipped) <= set(raw)
    assert all(torch.equal(shipped[key], average[key]) for key in shipped)
    assert not all(torch.equal(shipped[key], raw[key]) for key in shipped)
    # The checkpoint was chosen on the average's val accuracy, the one the shipped file reproduces.
    report = evaluate_dir(faces_dir, run / "model.safetensors", split="val", tta="none")
    assert report["accuracy"] == pytest.approx(summary["best_val_acc"])
    with pytest.raises(ValueError, match="ema_decay must be in"):
        ExpressionModule(load_model(run / "model.safetensors").config.to_dict(), {"ema_decay": 1.0}, {})


def test_ema_warmup_forgets_the_initial_weights_then_decays_at_the_set_rate() -> None:
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from facexpr.training.module import ema_with_warmup

    def averaged_after(update_fn, steps: int) -> tuple[AveragedModel, torch.nn.Module]:
        model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
        torch.nn.init.zeros_(model[0].weight)
        average = AveragedModel(model, multi_avg_fn=update_fn, use_buffers=True)
        average.update_parameters(model)  # the first update copies the initial (zero) weights
        with torch.no_grad():
            model[0].weight.fill_(1.0)
        for _ in range(steps):
            model[1].num_batches_tracked += 1
            average.update_parameters(model)
        return average, model

    plain, _ = averaged_after(get_ema_multi_avg_fn(0.999), 1000)
    warm, model = averaged_after(ema_with_warmup(0.999), 1000)
    assert plain.module[0].weight.mean().item() == pytest.approx(1 - 0.999**1000, abs=1e-4)  # 37 % initial weights
    assert warm.module[0].weight.mean().item() > 0.999  # the ramp forgot them
    assert warm.module[1].num_batches_tracked.item() == model[1].num_batches_tracked.item() == 1000
    # once the ramp passes the set decay, each update is the plain exponential average
    late, model = averaged_after(ema_with_warmup(0.5), 20)
    before = late.module[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.fill_(3.0)
    late.update_parameters(model)
    assert torch.allclose(late.module[0].weight, 0.5 * before + 0.5 * 3.0)


def test_teacher_probabilities_are_mixed_into_the_training_targets(faces_dir: Path, tmp_path: Path) -> None:
    from facexpr.evaluation.evaluate import predict_proba
    from facexpr.models import ExpressionClassifier, make_ensemble, save_weights
    from facexpr.models.registry import get_config
    from facexpr.training.train import load_training_data, train

    def network(seed: int, **overrides) -> ExpressionClassifier:
        torch.manual_seed(seed)
        model = ExpressionClassifier(get_config("resemotenet_w0125_g48", **overrides)).eval()
        with torch.no_grad():  # a random network answers almost the same for every face: make it opinionated
            model.net.fc4.weight.mul_(20)
        return model

    plain = load_training_data(load_recipe(None, [f"data.root={faces_dir}"]), 48)[0]
    reordered = tuple(reversed(plain.class_names))  # a teacher's columns are matched by class name, not position
    first = network(1, class_names=reordered)
    second, third = network(2), network(3)
    pair = make_ensemble([second, third])  # an ensemble file teaches as its two networks
    teachers = [save_weights(first, tmp_path / "a.safetensors"), save_weights(pair, tmp_path / "pair.safetensors")]
    recipe = load_recipe(None, [f"data.root={faces_dir}", f"data.teacher={[str(t) for t in teachers]}"])
    recipe["data"]["teacher_weight"] = 0.3
    taught = load_training_data(recipe, 48)[0]

    order = [reordered.index(name) for name in plain.class_names]
    members = [predict_proba(first, plain.images)[:, order]] + [predict_proba(m, plain.images) for m in (second, third)]
    expected = 0.7 * np.eye(7)[plain.labels] + 0.3 * np.mean(members, axis=0)
    np.testing.assert_allclose(taught.soft_labels, expected, atol=1e-5)
    assert np.abs(np.diff(members, axis=0)).max() > 0.1  # the three teachers differ, so the mean is not any one
    np.testing.assert_array_equal(taught.labels, plain.labels)
    run_dir = tmp_path / "cached"
    run_dir.mkdir()
    first_start = load_training_data(recipe, 48, run_dir)[0]
    np.testing.assert_allclose(first_start.soft_labels, expected, atol=1e-5)
    np.save(run_dir / "teacher_probabilities.npy", np.full((len(plain), 7), 1 / 7, dtype=np.float32))
    resumed = load_training_data(recipe, 48, run_dir, resume=True)[0]  # a resume reads the run's stored probabilities
    np.testing.assert_allclose(resumed.soft_labels, 0.7 * np.eye(7)[plain.labels] + 0.3 / 7, atol=1e-6)

    def refused(*items: str, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            load_training_data(load_recipe(None, [f"data.root={faces_dir}", *items]), 48)

    refused("data.teacher_weight=0.3", match="set both or neither")
    refused(f"data.teacher={teachers[0]}", match="set both or neither")
    refused(f"data.teacher={teachers[0]}", "data.teacher_weight=1.5", match="must be in")
    big = save_weights(network(4, input_size=64), tmp_path / "big.safetensors")
    refused(f"data.teacher={big}", "data.teacher_weight=0.3", match="big.safetensors: teacher input size 64")
    odd = save_weights(network(5, class_names=(*plain.class_names[:6], "contempt")), tmp_path / "odd.safetensors")
    refused(f"data.teacher={odd}", "data.teacher_weight=0.3", match="odd.safetensors: teacher classes")

    torch.set_num_threads(1)
    overrides = [*TINY, f"data.root={faces_dir}", "train.epochs=1", f"data.teacher={teachers[0]}"]
    (tmp_path / "kd").mkdir()  # a fresh start into an old folder does not reuse the probabilities stored there
    np.save(tmp_path / "kd" / "teacher_probabilities.npy", np.full((len(plain), 7), 1 / 7, dtype=np.float32))
    summary = train(None, [*overrides, "data.teacher_weight=0.5"], out_dir=tmp_path, run_name="kd", progress=False)
    np.testing.assert_allclose(np.load(tmp_path / "kd" / "teacher_probabilities.npy"), members[0], atol=1e-5)
    assert load_model(summary["weights"]).config.meta["overrides"][-1] == "data.teacher_weight=0.5"


def test_self_distill_mixes_each_images_previous_prediction_into_its_target(tmp_path: Path, faces_dir: Path) -> None:
    from facexpr.models.registry import get_config
    from facexpr.training.module import ExpressionModule
    from facexpr.training.train import train

    torch.manual_seed(0)
    cfg = {"self_distill": 0.6, "epochs": 4, "label_smoothing": 0.1}
    config = get_config("resemotenet_w0125_g48").replace(stem_dropout=0.0, head_dropout=0.0).to_dict()
    module = ExpressionModule(config, cfg, {}, train_size=5)
    assert [module.self_distill_weight(e) for e in range(4)] == pytest.approx([0.0, 0.2, 0.4, 0.6])
    assert torch.equal(module.previous_predictions, torch.full((5, 7), 1 / 7))
    labels, index = torch.tensor([3, 0]), torch.tensor([4, 1])
    batch = (torch.rand(2, 1, 48, 48) * 255, labels, torch.nn.functional.one_hot(labels, 7).float(), index)
    module.previous_predictions[4] = torch.tensor([0.0, 0, 0, 0, 1, 0, 0])
    module.train()
    module.training_step(batch, 0)  # epoch 0: weight 0, so the targets were the smoothed labels
    probs = module.model(batch[0]).softmax(1)  # no dropout, no optimiser step: the step's own forward pass again
    assert torch.allclose(module.previous_predictions[index], probs, atol=1e-5)  # overwritten with this step's softmax
    assert torch.equal(module.previous_predictions[[0, 2, 3]], torch.full((3, 7), 1 / 7))  # others untouched
    module.self_distill_weight = lambda epoch: 0.5  # type: ignore[method-assign]
    smoothed = batch[2] * 0.9 + 0.1 / 7
    torch.testing.assert_close(module._targets(batch), 0.5 * smoothed + 0.5 * probs.detach(), atol=1e-5, rtol=0)

    with pytest.raises(ValueError, match="self_distill excludes train.mixup"):
        ExpressionModule(config, {**cfg, "mixup": 0.2}, {}, train_size=5)
    with pytest.raises(ValueError, match="self_distill must be in"):
        ExpressionModule(config, {"self_distill": 1.0}, {}, train_size=5)

    torch.set_num_threads(1)
    overrides = [*TINY, f"data.root={faces_dir}", "train.epochs=2", "train.self_distill=0.5", "train.precision=32-true"]
    summary = train(None, overrides, out_dir=tmp_path, run_name="pskd", progress=False)
    state = torch.load(Path(summary["best_checkpoint"]), map_location="cpu", weights_only=True)["state_dict"]
    stored = state["previous_predictions"]
    n_train = sum(1 for p in (faces_dir / "train").rglob("*") if p.is_file())
    assert stored.shape == (n_train, 7)
    torch.testing.assert_close(stored.sum(1), torch.ones(n_train))
    seen = (stored - 1 / 7).abs().amax(1) > 1e-4
    assert seen.sum() >= n_train - n_train % 8  # every image of a full batch got its own prediction
    assert (run := tmp_path / "pskd" / "model.safetensors").is_file() and load_model(run).config.num_classes == 7
    with pytest.raises(ValueError, match="train on one device"):
        train(None, overrides, out_dir=tmp_path, run_name="pskd2", progress=False, devices=2, accelerator="cpu")


def test_bf16_mixed_training_keeps_float32_weights(tmp_path: Path, faces_dir: Path) -> None:
    from safetensors import safe_open

    from facexpr.training.train import train

    torch.set_num_threads(1)
    recipe = load_recipe("fer2013_w025_stem075")
    assert recipe["train"]["precision"] == "auto"
    assert model_config_for(recipe).stem_width == 0.75
    summary = train(
        None,
        [*TINY, f"data.root={faces_dir}", "train.epochs=1", "train.precision=bf16-mixed", "model_args.stem_width=0.25"],
        out_dir=tmp_path,
        run_name="bf16",
        progress=False,
    )
    with safe_open(summary["weights"], framework="pt") as weights:
        dtypes = {weights.get_slice(key).get_dtype() for key in weights.keys()}
    assert dtypes == {"F32", "I64"}  # I64: BatchNorm's num_batches_tracked
    model = load_model(summary["weights"])
    assert model.config.stem_width == 0.25 and model.net.conv1.out_channels == 16
    faces = torch.randint(0, 256, (3, 1, 48, 48), dtype=torch.uint8)
    assert torch.isfinite(model.predict_proba(faces)).all()


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    raise AssertionError("timed out waiting for training")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_continues_from_last_checkpoint(tmp_path: Path, faces_dir: Path) -> None:
    args = _cli(
        "--out",
        str(tmp_path),
        "--name",
        "killed",
        *_overrides(faces_dir, "train.epochs=6", "train.ema_decay=0.9"),
        cwd=tmp_path,
    )
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    metrics = tmp_path / "killed" / "logs" / "metrics.csv"

    def trained_past_first_epoch() -> bool:
        return last.is_file() and metrics.is_file() and "val/acc" in metrics.read_text()

    try:
        _wait_for(trained_past_first_epoch, 240, proc)
        time.sleep(0.5)  # let it get into the middle of an epoch (checkpoints every step)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    from facexpr.training.plots import read_epoch_metrics

    validated_before_kill = set(read_epoch_metrics(metrics)["val/acc"])
    state = torch.load(last, map_location="cpu", weights_only=True)  # intact, never half-written
    step_at_kill = state["global_step"]
    assert step_at_kill >= 1

    done = subprocess.run(
        _cli("--resume", str(tmp_path / "killed"), cwd=tmp_path), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rank0 = json.loads((tmp_path / "killed" / "ranks" / "rank0.json").read_text())
    steps_per_epoch = 56 // 8
    assert rank0["steps"] == 6 * steps_per_epoch
    assert list((tmp_path / "killed").glob("run-resume-*.json"))
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == 6 * steps_per_epoch > step_at_kill
    assert int(final["state_dict"]["ema.n_averaged"]) == final["global_step"]  # the weight average resumed too
    # the overrides of the first start survive the resume into the weights' metadata
    meta = load_model(tmp_path / "killed" / "model.safetensors").config.meta
    assert meta["overrides"] == [*TINY, f"data.root={faces_dir}", "train.epochs=6", "train.ema_decay=0.9"]
    # the per-epoch log keeps the epochs validated before the kill (Lightning's CSV writer would start it afresh),
    # and the epoch the kill interrupted is validated after the resume
    assert validated_before_kill <= set(read_epoch_metrics(metrics)["val/acc"]) == set(range(6))


def test_a_kill_before_an_epochs_validation_resumes_into_that_validation(
    tmp_path: Path, faces_dir: Path, monkeypatch
) -> None:
    from facexpr.training.module import ExpressionModule
    from facexpr.training.plots import read_epoch_metrics
    from facexpr.training.train import train

    class Killed(Exception):
        pass

    def killed(*args: object) -> None:
        raise Killed

    torch.set_num_threads(1)
    run = tmp_path / "run"
    steps_per_epoch = 56 // 8
    # TINY saves every step, so one save falls on the first epoch's last batch, just before its validation
    monkeypatch.setattr(ExpressionModule, "on_validation_start", killed)
    with pytest.raises(Killed):
        train(
            None, [*TINY, f"data.root={faces_dir}", "train.epochs=2"], out_dir=tmp_path, run_name="run", progress=False
        )
    monkeypatch.undo()
    last = run / "checkpoints" / "last.ckpt"
    # Lightning would resume a checkpoint of the last batch past the validation the kill prevented
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == steps_per_epoch - 1

    train(resume=run, progress=False)
    assert set(read_epoch_metrics(run / "logs" / "metrics.csv")["val/acc"]) == {0, 1}
    # each epoch's end is saved once its validation has run, so the finished run's file is its final state, even
    # where the step interval does not divide the epoch; a resume with more epochs continues from there
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2 * steps_per_epoch
    train(resume=run, overrides=["train.ckpt_every_n_steps=5", "train.epochs=3"], progress=False)
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 3 * steps_per_epoch
    assert set(read_epoch_metrics(run / "logs" / "metrics.csv")["val/acc"]) == {0, 1, 2}


def test_a_moved_run_resumes_with_its_best_score_and_keeps_its_best_checkpoint(
    tmp_path: Path, faces_dir: Path, monkeypatch
) -> None:
    import shutil

    from facexpr.training.module import ExpressionModule
    from facexpr.training.train import train

    torch.set_num_threads(1)
    first = train(
        None, [*TINY, f"data.root={faces_dir}", "train.epochs=2"], out_dir=tmp_path, run_name="run", progress=False
    )
    assert first["best_val_acc"] > 0
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(tmp_path / "run", moved)  # a copy: the original folder and its best.ckpt are still there
    best_file = moved / "checkpoints" / "best.ckpt"
    best_epoch = torch.load(best_file, map_location="cpu", weights_only=True)["epoch"]

    validate = ExpressionModule.validation_step

    def every_answer_wrong(self, batch, batch_idx):  # the resumed epoch scores 0 and must not become the best
        with torch.no_grad():
            predicted = self.trained_model.with_tta("none")(batch[0]).argmax(1)
        return validate(self, (batch[0], (predicted + 1) % 7, *batch[2:]), batch_idx)

    monkeypatch.setattr(ExpressionModule, "validation_step", every_answer_wrong)
    resumed = train(resume=moved, overrides=["train.epochs=3"], progress=False)
    assert resumed["best_val_acc"] == pytest.approx(first["best_val_acc"])
    assert Path(resumed["best_checkpoint"]) == best_file
    assert torch.load(best_file, map_location="cpu", weights_only=True)["epoch"] == best_epoch
    assert torch.load(moved / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 2


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_gloo(tmp_path: Path, faces_dir: Path) -> None:
    args = _cli(
        "--out", str(tmp_path), "--name", "ddp", "--devices", "2", "--accelerator", "cpu",
        *_overrides(faces_dir, "train.epochs=1"), cwd=tmp_path,
    )  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = sorted((tmp_path / "ddp" / "ranks").glob("rank*.json"))
    assert [p.name for p in ranks] == ["rank0.json", "rank1.json"]
    infos = [json.loads(p.read_text()) for p in ranks]
    assert {i["world_size"] for i in infos} == {2}
    # 56 train images, batch 8 per process, 2 processes: 3 steps each (drop_last over 28 per rank).
    assert {i["steps"] for i in infos} == {3}
    assert (tmp_path / "ddp" / "model.safetensors").is_file()


def test_compare_runs_script_pairs_two_runs_epoch_by_epoch(tmp_path: Path) -> None:
    header = "epoch,lr-SGD/pg1,step,train/acc,val/acc\n"

    def write_run(folder: Path, accuracies: list[float]) -> None:
        (folder / "logs").mkdir(parents=True)
        rows = [",0.1,0,,\n"]  # Lightning's sparse rows: a learning-rate row without an epoch
        for epoch, accuracy in enumerate(accuracies):
            rows.append(f"{epoch},,{epoch},0.5,\n{epoch},,{epoch},,{accuracy}\n")
        (folder / "logs" / "metrics.csv").write_text(header + "".join(rows))

    write_run(tmp_path / "run", [0.30, 0.50, 0.60, 0.62, 0.61])
    write_run(tmp_path / "base", [0.30, 0.40, 0.55, 0.63, 0.64])
    script = Path(__file__).resolve().parents[1] / "scripts" / "compare_runs.py"

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(script), str(tmp_path / "run"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    done = run(str(tmp_path / "base" / "logs" / "metrics.csv"), "--epochs", "1-2", "--last", "2", "--reach", "0.6")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "run: best val/acc 62.00 % at epoch 3 of 5 logged",
        "baseline: best val/acc 64.00 % at epoch 4 of 5 logged",
        "epochs 1-2: run - baseline mean +7.50 points (from +5.00 to +10.00)",
        "epochs 3-4: run - baseline mean -2.00 points (from -3.00 to -1.00)",
        "first epoch at val/acc >= 0.6: run 2, baseline 3",
    ]
    missing = run(str(tmp_path / "nowhere"))
    assert missing.returncode != 0 and "nowhere: no metrics CSV" in missing.stderr
    no_metric = run(str(tmp_path / "base"), "--metric", "val/macro_f1")
    assert no_metric.returncode != 0 and "no 'val/macro_f1' column" in no_metric.stderr
