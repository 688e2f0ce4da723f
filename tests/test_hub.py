"""Hugging Face Hub loading, without network: a local HF cache layout and locally built S1 H5s."""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import shutil
from pathlib import Path

import h5py
import huggingface_hub
import numpy as np
import pytest
from huggingface_hub import constants as hf_constants
from huggingface_hub import errors as hf_errors

import detector
from detector.core._keras import keras
from detector.core.backbones import get_backbone
from detector.core.errors import ModelLoadError, UnsafeModelError
from detector.core.models import clear_cache
from detector.hub import (
    IMAGENET_STDDEV_RGB,
    fetch_from_hub,
    load_keras_from_hub,
    load_published_s1,
    load_s1_h5,
)

layers = keras.layers

REPO = "someone/s1-like-model"
H5_NAME = "best_model_effatt.h5"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SIZE = 32  # the tiny recipe's input size


# --------------------------------------------------------------------------- helpers
def rescale_gap(tensors):
    """The published model's Lambda function."""
    return tensors[0] / tensors[1]


def published_like(features_fn, size: int = SIZE, *, nested: bool = False, conv2: int = 128):
    """A model built like the published S1 one (input in [0, 1]), head exactly as published.

    Returns the model and a model giving its attention conv output.
    """
    inputs = keras.Input((size, size, 3), name="input_layer")  # as Keras names a fresh graph
    if nested:
        inner_in = keras.Input((size, size, 3))
        inner = keras.Model(inner_in, features_fn(inner_in), name="backbone_model")
        inner.trainable = False
        features = inner(inputs)
    else:
        features = features_fn(inputs)
    bn = layers.BatchNormalization()(features)
    a = layers.Conv2D(256, 1, padding="same", activation="relu")(bn)
    a = layers.Dropout(0.5)(a)
    a = layers.Conv2D(conv2, 1, padding="same", activation="relu")(a)
    a = layers.Conv2D(128, 1, padding="same", activation="relu")(a)
    attention = layers.Conv2D(1, 1, padding="same", activation="sigmoid")(a)
    depth = features.shape[-1]
    broadcast = layers.Conv2D(
        depth, 1, padding="same", use_bias=False, kernel_initializer="ones", trainable=False
    )(attention)
    masked = layers.Multiply()([broadcast, bn])
    gap_features = layers.GlobalAveragePooling2D()(masked)
    gap_mask = layers.GlobalAveragePooling2D()(broadcast)
    gap = layers.Lambda(rescale_gap, name="RescaleGAP")([gap_features, gap_mask])
    x = layers.Dropout(0.5)(gap)
    x = layers.Dense(64, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3))(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if layer.trainable is False and isinstance(layer, layers.Conv2D):
            continue  # the all-ones broadcast conv
        if layer.name.startswith(("block", "stem", "top", "normalization", "backbone")):
            continue  # keep a real backbone's initialisation
        for v in layer.weights:
            shape = tuple(v.shape)
            if v.name == "moving_variance":
                value = rng.uniform(0.5, 1.5, shape)
            elif v.name == "gamma":
                value = rng.uniform(0.8, 1.2, shape)
            elif v.name == "kernel":  # fan-in scaled: keeps the sigmoid attention unsaturated
                value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
            else:
                value = rng.normal(0.0, 0.1, shape)
            v.assign(value.astype("float32"))
    return model, keras.Model(inputs, attention)


def tiny_features(x):
    return get_backbone("tiny").build(x)


def put_in_hf_cache(cache: Path, repo_id: str, filename: str, file: Path) -> Path:
    """Lay a file out the way huggingface_hub caches it (blob + snapshot symlink + refs/main)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    blob = repo / "blobs" / digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(file, blob)
    snapshot = repo / "snapshots" / COMMIT / filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


def attr_strings(group, name):
    return [v.decode() if isinstance(v, bytes) else v for v in group.attrs[name]]


def to_tf_keras2_layout(src: Path, dst: Path, *, keep_config: bool, version: str = "2.13.1"):
    """Rewrite a Keras 3 H5 the way tf.keras 2.x names weights (``:0``, ``depthwise_kernel``)."""
    with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
        for key, value in fin.attrs.items():
            if key != "model_config" or keep_config:
                fout.attrs[key] = value
        fout.attrs["keras_version"] = version.encode()
        win, wout = fin["model_weights"], fout.create_group("model_weights")
        for key, value in win.attrs.items():
            wout.attrs[key] = value
        wout.attrs["keras_version"] = version.encode()
        for name in attr_strings(win, "layer_names"):
            gin, gout = win[name], wout.create_group(name)
            names = []
            for weight in attr_strings(gin, "weight_names"):
                layer, var = weight.rsplit("/", 1)
                if var == "kernel" and layer.endswith("dwconv"):
                    var = "depthwise_kernel"
                new = f"{layer}/{var}:0"
                gout.create_dataset(new, data=gin[weight][()])
                names.append(new.encode())
            gout.attrs["weight_names"] = np.array(names, dtype="S") if names else np.array([])


def images(n: int = 4, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def replace_dataset(h5: Path, path: str, data: np.ndarray) -> None:
    with h5py.File(h5, "r+") as f:
        del f[path]
        f[path] = data


@pytest.fixture(autouse=True)
def no_hub_network(monkeypatch):
    """Any download attempt fails the way an unreachable Hub does (tests never go online)."""
    calls = []

    def blocked(*args, **kwargs):
        calls.append((args, kwargs))
        raise hf_errors.LocalEntryNotFoundError("blocked in tests: no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", blocked)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    return calls


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A published-like S1 model on the tiny backbone, saved as a Keras 3 H5."""
    keras.utils.set_random_seed(3)
    model, attention = published_like(tiny_features)
    path = tmp_path_factory.mktemp("s1") / H5_NAME
    model.save(path)
    return model, attention, path


# --------------------------------------------------------------------------- the S1 H5
def test_keras3_h5_layout_is_the_legacy_one(published):
    _, _, path = published
    with h5py.File(path, "r") as f:
        assert "model_config" in f.attrs and b"RescaleGAP" in f.attrs["model_config"].encode()
        weights = f["model_weights"]
        assert weights.attrs["keras_version"].startswith("3.")
        names = attr_strings(weights, "layer_names")
        assert names[:4] == ["input_layer", "tiny_conv1", "tiny_conv2", "tiny_top"]
        assert "RescaleGAP" in names
        # Keras 3 writes <layer>/<variable path>, like tf.keras 2.x but without ":0"
        assert attr_strings(weights["tiny_conv1"], "weight_names") == [
            "tiny_conv1/kernel",
            "tiny_conv1/bias",
        ]
        assert weights["tiny_conv1/tiny_conv1/kernel"].shape == (3, 3, 3, 8)


def test_published_s1_from_hf_cache_matches_the_keras_model(
    published, tmp_path, monkeypatch, no_hub_network
):
    model, attention, path = published
    cache = tmp_path / "hf"
    put_in_hf_cache(cache, REPO, H5_NAME, path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the cached file works offline

    det = load_published_s1(REPO, H5_NAME, cache_dir=cache, backbone="tiny", input_size=SIZE)

    assert no_hub_network == [], "a cached file must not trigger a download"
    assert det.name == "s1_published" and det.spec.recipe == "efficientnet_b7_attention"
    for seed in range(3):
        x = images(seed=seed)
        expected = np.asarray(model(x / 255.0, training=False))
        ours = np.asarray(det.keras_model(x, training=False))
        np.testing.assert_allclose(ours, expected, atol=1e-5)
        np.testing.assert_allclose(det.p_fake_batch(x), expected[:, 0], atol=1e-5)
        assert not np.allclose(expected[:, 0], expected[0, 0], atol=1e-3), "inputs must matter"
        attention_model = keras.Model(
            det.keras_model.input, det.keras_model.get_layer("attention_map").output
        )
        np.testing.assert_allclose(
            np.asarray(attention_model(x)), np.asarray(attention(x / 255.0)), atol=1e-6
        )
    card = det.card
    assert card.threshold == 0.5 and card.temperature == 1.0
    assert card.training_data["evaluated_here"] is False
    source = card.training["source"]
    assert source["repo_id"] == REPO and source["commit"] == COMMIT
    assert source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert source["conversion"]["broadcast_conv"], "the all-ones conv was found and skipped"
    assert "attention" in det.methods
    explanation = det.explain(images(1)[0].astype(np.uint8), method="attention")
    assert explanation.heatmap.shape == (SIZE, SIZE)


def test_nested_backbone_layout_loads(tmp_path):
    keras.utils.set_random_seed(4)
    model, _ = published_like(tiny_features, nested=True)
    path = tmp_path / "nested.h5"
    model.save(path)
    with h5py.File(path, "r") as f:  # tf.keras-style nested group: <backbone>/<layer>/<var>
        assert "backbone_model/tiny_conv1/kernel" in f["model_weights"]
    ours = load_s1_h5(path, backbone="tiny", input_size=SIZE)
    x = images(seed=5)
    np.testing.assert_allclose(
        np.asarray(ours(x)), np.asarray(model(x / 255.0, training=False)), atol=1e-5
    )


@pytest.mark.slow  # builds EfficientNetB0 three times (~5 s)
def test_efficientnet_imagenet_stddev_rescaling_is_folded(tmp_path, monkeypatch):
    """Keras >= 2.10 ImageNet EfficientNets add Rescaling(1/sqrt(stddev)); ours lacks it."""
    effnet = importlib.import_module("keras.src.applications.efficientnet")
    # Build the ImageNet graph (with that extra layer) without downloading any weights.
    monkeypatch.setattr(effnet.file_utils, "get_file", lambda *a, **k: "not-downloaded.h5")
    monkeypatch.setattr(keras.Model, "load_weights", lambda self, *a, **k: None)
    keras.utils.set_random_seed(5)

    def imagenet_b0(x):
        base = keras.applications.EfficientNetB0(
            include_top=False, weights="imagenet", input_tensor=x
        )
        return base.output

    model, _ = published_like(imagenet_b0)
    monkeypatch.undo()
    norm = next(layer for layer in model.layers if isinstance(layer, layers.Normalization))
    norm.adapt_mean.assign(np.array([0.485, 0.456, 0.406], "float32"))
    norm.adapt_variance.assign(np.array(IMAGENET_STDDEV_RGB, "float32"))
    norm.finalize_state()  # Keras 3 Normalization reads its variables only here
    assert any(isinstance(layer, layers.Rescaling) and np.size(layer.scale) == 3
               for layer in model.layers)  # fmt: skip
    path = tmp_path / "b0.h5"
    model.save(path)
    x = images(seed=6)
    expected = np.asarray(model(x / 255.0, training=False))

    def stem(m, inputs):  # the first conv after the input normalization
        return np.asarray(keras.Model(m.input, m.get_layer("stem_conv").output)(inputs))

    published_stem = stem(model, x / 255.0)

    def check(ours):
        np.testing.assert_allclose(np.asarray(ours(x)), expected, atol=1e-5)
        # Without the fold this differs by a factor of about 2.1 (1 / sqrt(0.229)).
        np.testing.assert_allclose(stem(ours, x), published_stem, rtol=1e-4, atol=1e-8)
        norm = next(la for la in ours.layers if isinstance(la, layers.Normalization))
        folded = np.square(IMAGENET_STDDEV_RGB)
        np.testing.assert_allclose(np.asarray(norm.adapt_variance), folded, rtol=1e-6)
        for layer in ours.layers:  # every backbone weight copied by name, unchanged
            if layer.name.startswith(("stem", "block", "top")):
                for mine, theirs in zip(
                    layer.weights, model.get_layer(layer.name).weights, strict=True
                ):
                    np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))

    check(load_s1_h5(path, backbone="efficientnet_b0", input_size=SIZE))

    # The same weights the way tf.keras 2.13 names them (":0", depthwise_kernel), no config:
    # the rescaling is inferred from keras_version + ImageNet statistics.
    legacy = tmp_path / "b0_tfkeras.h5"
    to_tf_keras2_layout(path, legacy, keep_config=False)
    check(load_s1_h5(legacy, backbone="efficientnet_b0", input_size=SIZE))


def test_changed_shape_is_an_error_naming_the_layer(published, tmp_path):
    _, _, path = published
    backbone = tmp_path / "backbone.h5"
    shutil.copyfile(path, backbone)
    replace_dataset(backbone, "model_weights/tiny_conv2/tiny_conv2/kernel", np.ones((3, 3, 8, 4)))
    with pytest.raises(ModelLoadError, match="tiny_conv2") as info:
        load_s1_h5(backbone, backbone="tiny", input_size=SIZE)
    assert info.value.code == "architecture_mismatch" and "(3, 3, 8, 4)" in info.value.message

    keras.utils.set_random_seed(6)
    narrow, _ = published_like(tiny_features, conv2=64)
    head = tmp_path / "head.h5"
    narrow.save(head)
    with pytest.raises(ModelLoadError, match=r"attn_conv2.*64|64.*attn_conv2"):
        load_s1_h5(head, backbone="tiny", input_size=SIZE)


def test_broadcast_conv_must_be_all_ones_and_layers_complete(published, tmp_path):
    model, _, path = published
    broadcast = next(
        layer for layer in model.layers if isinstance(layer, layers.Conv2D) and not layer.trainable
    )
    bad = tmp_path / "bad.h5"
    shutil.copyfile(path, bad)
    key = f"model_weights/{broadcast.name}/{broadcast.name}/kernel"
    with h5py.File(bad, "r") as f:
        shape = f[key].shape
    replace_dataset(bad, key, np.full(shape, 2.0, "float32"))
    with pytest.raises(ModelLoadError, match="not all ones"):
        load_s1_h5(bad, backbone="tiny", input_size=SIZE)

    missing = tmp_path / "missing.h5"
    shutil.copyfile(path, missing)
    with h5py.File(missing, "r+") as f:
        group = f["model_weights/tiny_conv1"]
        group.attrs["weight_names"] = np.array([b"tiny_conv1/kernel"])
    with pytest.raises(ModelLoadError, match=r"'bias'.*tiny_conv1"):
        load_s1_h5(missing, backbone="tiny", input_size=SIZE)

    renamed = tmp_path / "renamed.h5"  # e.g. the file was built on another backbone
    shutil.copyfile(path, renamed)
    with h5py.File(renamed, "r+") as f:
        group = f["model_weights/tiny_conv1"]
        for var in ("kernel", "bias"):
            group.move(f"tiny_conv1/{var}", f"stem_conv/{var}")
        group.attrs["weight_names"] = np.array([b"stem_conv/kernel", b"stem_conv/bias"])
    with pytest.raises(ModelLoadError, match=r"no weights for backbone layer 'tiny_conv1'.*'tiny'"):
        load_s1_h5(renamed, backbone="tiny", input_size=SIZE)

    not_h5 = tmp_path / "x.h5"
    not_h5.write_bytes(b"not an hdf5 file")
    with pytest.raises(ModelLoadError, match="not an HDF5"):
        load_s1_h5(not_h5, backbone="tiny", input_size=SIZE)


def test_export_then_loads_safely_like_any_model(published, tmp_path):
    model, _, path = published
    root = tmp_path / "models"
    det = load_published_s1(path=path, backbone="tiny", input_size=SIZE, export=root / "s1")
    assert det.card.sha256 and (root / "s1" / "model.keras").is_file()
    clear_cache()
    loaded = detector.load_model("s1_published", root)  # safe mode, checksum verified
    x = images(seed=9)
    np.testing.assert_allclose(loaded.p_fake_batch(x), det.p_fake_batch(x), atol=1e-6)
    np.testing.assert_allclose(
        loaded.p_fake_batch(x), np.asarray(model(x / 255.0))[:, 0], atol=1e-5
    )
    clear_cache()


# --------------------------------------------------------------------------- fetching
def test_offline_without_cache_is_a_friendly_error(tmp_path, monkeypatch, no_hub_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        load_published_s1(cache_dir=tmp_path / "empty-cache")
    error = info.value
    assert error.code == "hub_offline"
    message = error.message
    for expected in (
        "CemRoot/deepfake-detection-model",
        "best_model_effatt.h5",
        "HF_HUB_OFFLINE",
        "local Hugging Face cache",
        "local path",
        str(tmp_path / "empty-cache"),
    ):
        assert expected in message
    assert error.__cause__ is None and error.__context__ is None  # no chained traceback
    assert no_hub_network == [], "offline mode must not try to download"


def test_unreachable_hub_is_a_friendly_error(tmp_path, no_hub_network):
    with pytest.raises(ModelLoadError, match="unreachable") as info:
        fetch_from_hub(REPO, H5_NAME, cache_dir=tmp_path)
    assert info.value.code == "hub_offline" and "HF_HUB_OFFLINE" in info.value.message
    assert info.value.__suppress_context__ and len(no_hub_network) == 1


def test_fetch_downloads_when_not_cached(tmp_path, monkeypatch):
    target = tmp_path / "downloaded.keras"
    target.write_bytes(b"x")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: str(target))
    assert fetch_from_hub(REPO, "m.keras", cache_dir=tmp_path / "c") == target


# --------------------------------------------------------------------------- .keras and pickles
def test_keras_with_lambda_needs_allow_unsafe(tmp_path, caplog):
    inputs = keras.Input((4,))
    outputs = layers.Lambda(lambda t: t * 2.0, name="double")(layers.Dense(2)(inputs))
    model = keras.Model(inputs, outputs)
    file = tmp_path / "lambda.keras"
    model.save(file)
    cache = tmp_path / "hf"
    put_in_hf_cache(cache, REPO, "lambda.keras", file)

    with pytest.raises(UnsafeModelError, match="Lambda layer 'double'"):
        load_keras_from_hub(REPO, "lambda.keras", cache_dir=cache)
    with caplog.at_level(logging.WARNING, logger="detector"):
        loaded = load_keras_from_hub(REPO, "lambda.keras", cache_dir=cache, allow_unsafe=True)
    assert any("allow_unsafe=True" in r.getMessage() for r in caplog.records)
    x = np.ones((1, 4), "float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


def test_safe_keras_loads_from_cache(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, layers.Dense(2)(inputs))
    file = tmp_path / "plain.keras"
    model.save(file)
    put_in_hf_cache(tmp_path / "hf", REPO, "plain.keras", file)
    loaded = load_keras_from_hub(REPO, "plain.keras", cache_dir=tmp_path / "hf")
    x = np.ones((1, 4), "float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


@pytest.mark.parametrize("name", ["model.pkl", "model.pt", "model.pth", "pytorch_model.bin"])
def test_pickle_formats_are_refused(name, tmp_path, no_hub_network):
    with pytest.raises(UnsafeModelError, match="pickle"):
        load_keras_from_hub(REPO, name, cache_dir=tmp_path)
    file = tmp_path / name
    file.write_bytes(b"\x80\x04N.")
    with pytest.raises(UnsafeModelError, match="never loaded"):
        load_s1_h5(file)
    assert no_hub_network == []


def test_h5_is_not_loaded_as_a_keras_model(tmp_path):
    with pytest.raises(ModelLoadError, match="load_s1_h5") as info:
        load_keras_from_hub(REPO, "best_model_effatt.h5", cache_dir=tmp_path)
    assert info.value.code == "unsupported_model_format"


def test_public_api_exports_hub_functions():
    for name in ("fetch_from_hub", "load_keras_from_hub", "load_published_s1", "load_s1_h5"):
        assert name in detector.__all__ and callable(getattr(detector, name))
