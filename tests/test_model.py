from __future__ import annotations

import os
import stat

import pytest
import torch

from facexpr.config import ModelConfig
from facexpr.labels import FER2013_CLASSES, OFFICIAL_RESEMOTENET_ORDER
from facexpr.models import (
    ExpressionClassifier,
    ResEmoteNet,
    WeightsMismatchError,
    create_model,
    get_config,
    list_models,
    load_model,
    load_weights_file,
    read_config,
    save_weights,
)

OFFICIAL_KEY_PREFIXES = (
    "conv1.",
    "bn1.",
    "conv2.",
    "bn2.",
    "conv3.",
    "bn3.",
    "se.fc.0.weight",
    "se.fc.2.weight",
    "res_block1.",
    "res_block2.",
    "res_block3.",
    "fc1.",
    "fc2.",
    "fc3.",
    "fc4.",
)


def test_paper_model_has_exactly_the_published_parameter_count() -> None:
    net = ResEmoteNet(num_classes=7, in_chans=3, width=1.0)
    assert sum(p.numel() for p in net.parameters()) == 80_238_599
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 7)


def test_state_dict_keys_are_the_official_names() -> None:
    keys = list(ResEmoteNet().state_dict())
    assert all(k.startswith(OFFICIAL_KEY_PREFIXES) for k in keys), keys
    for block in (1, 2, 3):
        for part in ("conv1", "bn1", "conv2", "bn2", "shortcut.0", "shortcut.1"):
            assert f"res_block{block}.{part}.weight" in keys
    assert "se.fc.0.weight" in keys and "se.fc.0.bias" not in keys  # SE linears are bias-free


@pytest.mark.parametrize("name", list_models())
def test_every_registered_config_builds_and_runs(name: str) -> None:
    model = create_model(name).eval()
    cfg = model.config
    faces = torch.randint(0, 256, (2, 1, cfg.input_size, cfg.input_size), dtype=torch.uint8)
    probs = model.predict_proba(faces)
    assert probs.shape == (2, cfg.num_classes)
    assert torch.allclose(probs.sum(1), torch.ones(2), atol=1e-5)


def test_safetensors_round_trip_keeps_weights_and_config(tmp_path) -> None:
    model = create_model("resemotenet_w0125_g48").eval()
    model.config = model.config.replace(meta={"recipe": "unit", "val_acc": 0.5})
    path = save_weights(model, tmp_path / "m.safetensors")
    assert read_config(path) == model.config
    assert read_config(path).meta == {"recipe": "unit", "val_acc": 0.5}
    loaded = load_model(path)
    faces = torch.randint(0, 256, (3, 1, 48, 48), dtype=torch.uint8)
    assert torch.equal(loaded(faces), model(faces))


def test_saved_weights_get_the_umask_permissions_not_owner_only(tmp_path) -> None:
    previous = os.umask(0o022)
    try:
        path = save_weights(create_model("resemotenet_w0125_g48"), tmp_path / "m.safetensors")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not list(tmp_path.glob("*.tmp"))


def test_stem_width_widens_only_the_stem_and_survives_a_save(tmp_path) -> None:
    config = get_config("resemotenet_w025_g48", stem_width=0.5)
    model = ExpressionClassifier(config).eval()
    net = model.net
    assert (net.conv1.out_channels, net.conv2.out_channels, net.conv3.out_channels) == (32, 64, 128)
    assert (net.res_block1.conv1.out_channels, net.fc1.out_features) == (128, 256)  # width 0.25 from here on
    loaded = load_model(save_weights(model, tmp_path / "m.safetensors"))
    assert loaded.config.stem_width == 0.5
    faces = torch.randint(0, 256, (2, 1, 48, 48), dtype=torch.uint8)
    assert torch.equal(loaded(faces), model(faces))


def test_stem_pools_keeps_resolution_for_the_residual_blocks_and_survives_a_save(tmp_path) -> None:
    paper = ExpressionClassifier(get_config("resemotenet_w025_g48")).eval()
    config = get_config("resemotenet_w025_g48", stem_pools=2)
    model = ExpressionClassifier(config).eval()
    x = torch.zeros(2, 1, 48, 48)
    assert paper.net.forward_features(x).shape[-2:] == (1, 1)  # 48 -> 6 after the stem -> 3 -> 2 -> 1
    assert model.net.forward_features(x).shape[-2:] == (2, 2)  # 48 -> 12 after the stem -> 6 -> 3 -> 2
    # same parameters, only the pooling differs
    assert [p.shape for p in model.parameters()] == [p.shape for p in paper.parameters()]
    loaded = load_model(save_weights(model, tmp_path / "m.safetensors"))
    assert loaded.config.stem_pools == 2
    faces = torch.randint(0, 256, (2, 1, 48, 48), dtype=torch.uint8)
    assert torch.equal(loaded(faces), model(faces))
    with pytest.raises(ValueError, match="stem_pools"):
        ResEmoteNet(stem_pools=0)


def _official_state(num_classes: int = 7) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return ResEmoteNet(num_classes=num_classes, in_chans=3, width=0.25).eval().state_dict()


@pytest.mark.parametrize("fmt", ["raw", "official", "lightning"])
def test_checkpoint_formats_load_strictly_and_map_official_class_order(tmp_path, fmt: str) -> None:
    state = _official_state()
    wrapped = {
        "raw": state,
        "official": {"model_state_dict": state, "epoch": 3},
        "lightning": {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 3},
    }[fmt]
    path = tmp_path / f"{fmt}.pth"
    torch.save(wrapped, path)
    model = load_weights_file(path, config=get_config("resemotenet", width=0.25))
    assert model.class_names == FER2013_CLASSES

    reference = ResEmoteNet(num_classes=7, in_chans=3, width=0.25).eval()
    reference.load_state_dict(state)
    faces = torch.randint(0, 256, (4, 1, 64, 64), dtype=torch.uint8)
    official_logits = reference(model.config and __import__("facexpr").preprocessing.normalize(faces, model.config))
    ours = model(faces)
    for i, name in enumerate(FER2013_CLASSES):
        j = OFFICIAL_RESEMOTENET_ORDER.index(name)
        assert torch.allclose(ours[:, i], official_logits[:, j], atol=1e-5), name


def test_config_is_inferred_from_a_foreign_checkpoint(tmp_path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save(_official_state(), path)
    model = load_weights_file(path)
    assert model.config.in_chans == 3 and model.config.width == 0.25
    assert model.class_names == FER2013_CLASSES


def test_mismatching_checkpoint_names_the_keys_and_never_loads_partially(tmp_path) -> None:
    path = tmp_path / "eight.pth"
    torch.save(_official_state(num_classes=8), path)
    with pytest.raises(WeightsMismatchError, match=r"fc4\.weight.*\(8, 64\).*\(7, 64\)"):
        load_weights_file(path, config=get_config("resemotenet", width=0.25))

    other = {"features.0.weight": torch.zeros(3), **_official_state()}
    del other["se.fc.0.weight"]
    torch.save(other, path)
    with pytest.raises(WeightsMismatchError, match=r"missing keys \['se\.fc\.0\.weight'\].*unexpected keys"):
        load_weights_file(path, config=get_config("resemotenet", width=0.25))


def test_pickled_objects_are_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": _official_state(), "extra": ModelConfig(name="x")}, path)
    with pytest.raises(ValueError, match="weights_only"):
        load_weights_file(path, config=get_config("resemotenet", width=0.25))


def test_config_json_round_trip_and_validation() -> None:
    cfg = get_config("resemotenet_w025_g48")
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="mean/std"):
        ModelConfig.from_dict({**cfg.to_dict(), "in_chans": 3})
    with pytest.raises(KeyError, match="registered"):
        get_config("nope")


def test_classifier_normalises_inside_forward() -> None:
    model = ExpressionClassifier(get_config("resemotenet_w0125_g48")).eval()
    faces = torch.full((1, 1, 48, 48), 128, dtype=torch.uint8)
    cfg = model.config
    expected = model.net(((faces.float() / 255) - cfg.mean[0]) / cfg.std[0])
    assert torch.allclose(model(faces), expected)


@pytest.mark.parametrize(
    ("channels", "size", "stride", "kernel", "bias"), [(8, 3, 1, 3, True), (8, 6, 2, 3, False), (4, 5, 2, 1, True)]
)
def test_conv2d_by_matmul_matches_conv2d_values_and_gradients(channels, size, stride, kernel, bias) -> None:
    from facexpr.models.resemotenet import conv2d_by_matmul

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(channels, 6, kernel, stride=stride, padding=kernel // 2, bias=bias).double()
    x = torch.randn(5, channels, size, size, dtype=torch.float64, requires_grad=True)
    expected = conv(x)
    grad_out = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, [x, conv.weight], grad_out)
    got = conv2d_by_matmul(x, conv)
    got_grads = torch.autograd.grad(got, [x, conv.weight], grad_out)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-10)
    for a, b in zip(got_grads, expected_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-10)
    with pytest.raises(ValueError, match="plain convolutions"):
        conv2d_by_matmul(x, torch.nn.Conv2d(channels, channels, 3, padding=1, groups=2).double())


def test_training_on_cpu_takes_the_matmul_path_for_tiny_maps_only_and_agrees_with_conv(monkeypatch) -> None:
    from facexpr.models import resemotenet

    calls: list[tuple[int, ...]] = []

    def counting(x, conv):
        calls.append(tuple(x.shape[-2:]))
        return original(x, conv)

    original = resemotenet.conv2d_by_matmul
    monkeypatch.setattr(resemotenet, "conv2d_by_matmul", counting)
    torch.manual_seed(0)
    net = create_model("resemotenet_w0125_g48", stem_pools=1).net.double().train()
    faces = torch.randn(4, 1, 48, 48, dtype=torch.float64)

    def loss_and_grads(max_pixels: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        monkeypatch.setattr(resemotenet, "MATMUL_CONV_MAX_PIXELS", max_pixels)
        torch.manual_seed(1)  # same dropout masks
        loss = net(faces).square().sum()
        return loss.detach(), [p.clone() for p in torch.autograd.grad(loss, list(net.parameters()))]

    loss_conv, grads_conv = loss_and_grads(0)
    assert calls == []
    loss_mm, grads_mm = loss_and_grads(9)
    assert calls == [(6, 6), (3, 3)]  # only the last residual block's two 3x3 convolutions (3x3 outputs)
    assert torch.allclose(loss_mm, loss_conv, rtol=1e-9)
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(grads_mm, grads_conv, strict=True))
    calls.clear()
    net.eval()(faces)
    assert calls == []  # inference and export keep the plain convolution
