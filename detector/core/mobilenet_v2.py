"""torchvision's MobileNetV2 (width 1.0) feature extractor rebuilt flat in Keras 3.

The network is built layer by layer on a given input tensor with the functional API, so that
every layer of the backbone is reachable by name from the enclosing model (Grad-CAM tools need
this; see ``docs/stack.md``). It reproduces torchvision's ``mobilenet_v2().features`` exactly:

* stride-2 3x3 convolutions are padded symmetrically by one pixel (``ZeroPadding2D(1)`` followed
  by a ``'valid'`` convolution), like torch's ``padding=1``; Keras' ``'same'`` would pad only the
  bottom/right and shift every feature map by half a pixel;
* batch normalisation uses ``epsilon=1e-5`` (torch's default);
* activations are ReLU6, convolutions have no bias (a BN follows each of them).

Inputs must already be ImageNet-normalised: ``(x / 255 - IMAGENET_MEAN) / IMAGENET_STD`` on RGB
images in ``[0, 255]``.

Layer names follow torchvision's ``features`` indices: ``{prefix}_stem_*`` is ``features.0``,
``{prefix}_block{i}_*`` is ``features.{i}`` for ``i`` in 1..17, and ``{prefix}_head_*`` is
``features.18``. :func:`backbone_layer_table` lists, for each layer holding weights, the torch
module it comes from; converters use it (``training/pretrained.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal, NamedTuple

import numpy as np

if TYPE_CHECKING:  # imported by the functions that build layers: the tables need no Keras
    from detector.core._keras import keras

__all__ = [
    "BN_EPSILON",
    "BN_MOMENTUM",
    "DEFAULT_PREFIX",
    "FEATURE_CHANNELS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INVERTED_RESIDUAL_SETTING",
    "LAST_CONV_LAYER",
    "NUM_BLOCKS",
    "OUTPUT_STRIDE",
    "LayerSpec",
    "backbone_layer_names",
    "backbone_layer_table",
    "build_mobilenet_v2",
    "imagenet_normalize",
    "last_conv_layer_name",
    "torch_key_to_layer",
]

DEFAULT_PREFIX: Final[str] = "mnv2"
"""Default name prefix of the backbone's layers."""

IMAGENET_MEAN: Final[np.ndarray] = np.array([0.485, 0.456, 0.406], dtype=np.float32)
"""Per-channel RGB mean of ImageNet, for inputs scaled to [0, 1]."""

IMAGENET_STD: Final[np.ndarray] = np.array([0.229, 0.224, 0.225], dtype=np.float32)
"""Per-channel RGB standard deviation of ImageNet, for inputs scaled to [0, 1]."""

BN_EPSILON: Final[float] = 1e-5
"""torch's BatchNorm2d default epsilon."""

BN_MOMENTUM: Final[float] = 0.9
"""Keras momentum equivalent to torch's default ``momentum=0.1``."""

FEATURE_CHANNELS: Final[int] = 1280
"""Channels of the final feature map."""

OUTPUT_STRIDE: Final[int] = 32
"""Ratio of the input size to the final feature map size."""

INVERTED_RESIDUAL_SETTING: Final[tuple[tuple[int, int, int, int], ...]] = (
    # expansion t, output channels c, repeats n, first stride s (torchvision's table)
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
"""torchvision's inverted-residual configuration of MobileNetV2 at width 1.0."""

STEM_CHANNELS: Final[int] = 32
NUM_BLOCKS: Final[int] = sum(n for _, _, n, _ in INVERTED_RESIDUAL_SETTING)
"""Number of inverted-residual blocks (17): ``features.1`` .. ``features.17``."""

LayerKind = Literal["conv", "depthwise", "bn"]


class LayerSpec(NamedTuple):
    """One backbone layer that holds weights, and the torch module they come from.

    Attributes:
        layer: Keras layer name.
        torch_module: Dotted torch module path in the state dict (e.g. ``"features.2.conv.0.0"``).
        kind: ``"conv"`` (weight OIHW), ``"depthwise"`` (weight C1HW) or ``"bn"`` (weight, bias,
            running_mean, running_var).
    """

    layer: str
    torch_module: str
    kind: LayerKind


class _BlockConfig(NamedTuple):
    index: int
    in_channels: int
    out_channels: int
    expansion: int
    stride: int


def _block_configs() -> list[_BlockConfig]:
    """Lists the 17 inverted-residual blocks in order (torchvision ``features.1`` .. ``.17``)."""
    blocks: list[_BlockConfig] = []
    in_channels = STEM_CHANNELS
    index = 1
    for expansion, channels, repeats, first_stride in INVERTED_RESIDUAL_SETTING:
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            blocks.append(_BlockConfig(index, in_channels, channels, expansion, stride))
            in_channels = channels
            index += 1
    return blocks


def last_conv_layer_name(prefix: str = DEFAULT_PREFIX) -> str:
    """Returns the name of the layer whose output is the final 1280-channel feature map.

    Args:
        prefix: The prefix given to :func:`build_mobilenet_v2`.

    Returns:
        The name of the ReLU6 after the last 1x1 convolution (a good Grad-CAM target).
    """
    return f"{prefix}_head_relu"


LAST_CONV_LAYER: Final[str] = last_conv_layer_name(DEFAULT_PREFIX)
"""Name of the layer giving the final feature map, for the default prefix."""


def backbone_layer_table(prefix: str = DEFAULT_PREFIX) -> list[LayerSpec]:
    """Lists every backbone layer that holds weights, with its torchvision source module.

    Args:
        prefix: The prefix given to :func:`build_mobilenet_v2`.

    Returns:
        52 convolution/depthwise entries and 52 batch-norm entries, in network order.
    """
    table = [
        LayerSpec(f"{prefix}_stem_conv", "features.0.0", "conv"),
        LayerSpec(f"{prefix}_stem_bn", "features.0.1", "bn"),
    ]
    for block in _block_configs():
        name = f"{prefix}_block{block.index}"
        module = f"features.{block.index}.conv"
        if block.expansion != 1:
            table += [
                LayerSpec(f"{name}_expand_conv", f"{module}.0.0", "conv"),
                LayerSpec(f"{name}_expand_bn", f"{module}.0.1", "bn"),
            ]
            dw, project = 1, 2
        else:
            dw, project = 0, 1
        table += [
            LayerSpec(f"{name}_dw_conv", f"{module}.{dw}.0", "depthwise"),
            LayerSpec(f"{name}_dw_bn", f"{module}.{dw}.1", "bn"),
            LayerSpec(f"{name}_project_conv", f"{module}.{project}", "conv"),
            LayerSpec(f"{name}_project_bn", f"{module}.{project + 1}", "bn"),
        ]
    head = len(_block_configs()) + 1
    table += [
        LayerSpec(f"{prefix}_head_conv", f"features.{head}.0", "conv"),
        LayerSpec(f"{prefix}_head_bn", f"features.{head}.1", "bn"),
    ]
    return table


_PARAM_ROLES: Final[dict[LayerKind, tuple[str, ...]]] = {
    "conv": ("weight",),
    "depthwise": ("weight",),
    "bn": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
}


def torch_key_to_layer(key: str, prefix: str = DEFAULT_PREFIX) -> tuple[str, str] | None:
    """Maps a torchvision MobileNetV2 state-dict key to the Keras layer that holds it.

    Args:
        key: A state-dict key such as ``"features.3.conv.1.1.running_var"``.
        prefix: The prefix given to :func:`build_mobilenet_v2`.

    Returns:
        ``(layer_name, param)`` where ``param`` is the torch parameter name (``"weight"``,
        ``"bias"``, ``"running_mean"``, ``"running_var"`` or ``"num_batches_tracked"``), or
        ``None`` if the key is not part of the feature extractor (e.g. ``classifier.1.weight``).
    """
    module, _, param = key.rpartition(".")
    for spec in backbone_layer_table(prefix):
        if spec.torch_module == module and param in _PARAM_ROLES[spec.kind]:
            return spec.layer, param
    return None


def backbone_layer_names(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Lists the names of all layers :func:`build_mobilenet_v2` creates, in creation order.

    Args:
        prefix: The prefix given to :func:`build_mobilenet_v2`.

    Returns:
        Every layer name, weightless ones (padding, ReLU6, add) included.
    """
    names = [
        f"{prefix}_stem_pad",
        f"{prefix}_stem_conv",
        f"{prefix}_stem_bn",
        f"{prefix}_stem_relu",
    ]
    for block in _block_configs():
        name = f"{prefix}_block{block.index}"
        if block.expansion != 1:
            names += [f"{name}_expand_conv", f"{name}_expand_bn", f"{name}_expand_relu"]
        if block.stride == 2:
            names.append(f"{name}_dw_pad")
        names += [
            f"{name}_dw_conv",
            f"{name}_dw_bn",
            f"{name}_dw_relu",
            f"{name}_project_conv",
            f"{name}_project_bn",
        ]
        if block.stride == 1 and block.in_channels == block.out_channels:
            names.append(f"{name}_add")
    names += [f"{prefix}_head_conv", f"{prefix}_head_bn", f"{prefix}_head_relu"]
    return names


def _bn(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    from detector.core._keras import keras

    return keras.layers.BatchNormalization(
        axis=-1, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name
    )(x)


def _relu6(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    from detector.core._keras import keras

    return keras.layers.ReLU(max_value=6.0, name=name)(x)


def _conv(
    x: keras.KerasTensor, filters: int, kernel: int, stride: int, name: str
) -> keras.KerasTensor:
    from detector.core._keras import keras

    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same" if stride == 1 else "valid",
        use_bias=False,
        name=name,
    )(x)


def _inverted_residual(x: keras.KerasTensor, block: _BlockConfig, prefix: str) -> keras.KerasTensor:
    from detector.core._keras import keras

    name = f"{prefix}_block{block.index}"
    shortcut = x
    hidden = block.in_channels * block.expansion
    if block.expansion != 1:
        x = _conv(x, hidden, 1, 1, f"{name}_expand_conv")
        x = _bn(x, f"{name}_expand_bn")
        x = _relu6(x, f"{name}_expand_relu")
    if block.stride == 2:
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_dw_pad")(x)
    x = keras.layers.DepthwiseConv2D(
        3,
        strides=block.stride,
        padding="same" if block.stride == 1 else "valid",
        use_bias=False,
        name=f"{name}_dw_conv",
    )(x)
    x = _bn(x, f"{name}_dw_bn")
    x = _relu6(x, f"{name}_dw_relu")
    x = _conv(x, block.out_channels, 1, 1, f"{name}_project_conv")
    x = _bn(x, f"{name}_project_bn")
    if block.stride == 1 and block.in_channels == block.out_channels:
        x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def build_mobilenet_v2(
    inputs: keras.KerasTensor, *, prefix: str = DEFAULT_PREFIX, stem_stride: int = 2
) -> keras.KerasTensor:
    """Builds torchvision's MobileNetV2 feature extractor flat on ``inputs``.

    Example:
        >>> inputs = keras.Input((224, 224, 3))
        >>> features = build_mobilenet_v2(inputs)  # (None, 7, 7, 1280)
        >>> pooled = keras.layers.GlobalAveragePooling2D()(features)

    Args:
        inputs: A channels-last tensor with 3 channels, ImageNet-normalised (see
            :func:`imagenet_normalize`). Any spatial size works; 224 is the native one.
        prefix: Prefix of every layer name; use distinct prefixes to put two backbones in one
            model.
        stem_stride: 2 as published; 1 keeps the first convolution at full resolution (same
            weights, four times the compute), so pixel-level traces reach the later layers
            instead of being subsampled away (Gragnaniello et al., ICME 2021, "no-down").

    Returns:
        The final feature map, shape ``(batch, ceil(h / 32), ceil(w / 32), 1280)`` (``/ 16``
        with ``stem_stride=1``): the output
        of the ReLU6 after the last 1x1 convolution (layer :func:`last_conv_layer_name`).

    Raises:
        ValueError: If the input does not have 3 channels or the data format is channels-first.
    """
    from detector.core._keras import keras

    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "build_mobilenet_v2 needs keras.config.image_data_format() == 'channels_last'"
        )
    if inputs.shape[-1] != 3:
        raise ValueError(f"MobileNetV2 expects 3 input channels, got shape {inputs.shape}")
    if stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
    x = (
        keras.layers.ZeroPadding2D(1, name=f"{prefix}_stem_pad")(inputs)
        if stem_stride == 2
        else inputs
    )
    x = _conv(x, STEM_CHANNELS, 3, stem_stride, f"{prefix}_stem_conv")
    x = _bn(x, f"{prefix}_stem_bn")
    x = _relu6(x, f"{prefix}_stem_relu")
    for block in _block_configs():
        x = _inverted_residual(x, block, prefix)
    x = _conv(x, FEATURE_CHANNELS, 1, 1, f"{prefix}_head_conv")
    x = _bn(x, f"{prefix}_head_bn")
    return _relu6(x, last_conv_layer_name(prefix))


def imagenet_normalize(images: np.ndarray) -> np.ndarray:
    """Normalises RGB images in ``[0, 255]`` the way the backbone expects.

    Args:
        images: Array ``(..., 3)`` of RGB values in ``[0, 255]``.

    Returns:
        ``(images / 255 - IMAGENET_MEAN) / IMAGENET_STD`` as float32.
    """
    scaled = np.asarray(images, dtype=np.float32) / np.float32(255.0)
    return (scaled - IMAGENET_MEAN) / IMAGENET_STD
