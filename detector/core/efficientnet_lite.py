"""EfficientNet-Lite0 feature extractor rebuilt flat in Keras 3.

EfficientNet-Lite0 (TensorFlow's ``efficientnet-lite0``, from ``tensorflow/tpu``
``models/official/efficientnet/lite``) is EfficientNet-B0 made friendly to integer quantisation:

* no squeeze-and-excitation in the MBConv blocks;
* ReLU6 everywhere instead of swish;
* the stem (32 channels) and the head (1280 channels) are not scaled with the width;
* batch normalisation with ``epsilon=1e-3`` (TensorFlow's setting);
* every convolution pads like TensorFlow's ``'same'`` (the extra row/column of a stride-2
  convolution goes at the bottom/right), which is exactly Keras' ``padding='same'``;
* inputs scaled as ``(x - 127) / 128`` from RGB in ``[0, 255]`` (TensorFlow's ``MEAN_RGB`` /
  ``STDDEV_RGB`` for the Lite models). :func:`build_efficientnet_lite0` adds that scaling as
  its first layer (``{prefix}_rescale``) unless told not to, so the backbone takes raw 0-255.

The network is built layer by layer on a given input tensor with the functional API, so every
layer is reachable by name from the enclosing model (Grad-CAM tools need this; see
``docs/stack.md``). Layer names follow the PyTorch checkpoint's modules (lukemelas
EfficientNet-PyTorch layout): ``{prefix}_stem_*`` is ``_conv_stem``/``_bn0``,
``{prefix}_block{i}_*`` is ``_blocks.{i}`` for ``i`` in 0..15, ``{prefix}_head_*`` is
``_conv_head``/``_bn1``. :func:`backbone_layer_table` lists, for each layer holding weights, the
torch module it comes from; ``training/pretrained_lite.py`` uses it.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import keras
import numpy as np

from detector.core.mobilenet_v2 import LayerSpec

__all__ = [
    "BLOCK_SETTING",
    "BN_EPSILON",
    "BN_MOMENTUM",
    "DEFAULT_PREFIX",
    "FEATURE_CHANNELS",
    "INPUT_MEAN",
    "INPUT_STD",
    "LAST_CONV_LAYER",
    "NATIVE_SIZE",
    "NUM_BLOCKS",
    "OUTPUT_STRIDE",
    "LayerSpec",
    "backbone_layer_names",
    "backbone_layer_table",
    "build_efficientnet_lite0",
    "last_conv_layer_name",
    "lite_normalize",
    "torch_key_to_layer",
]

DEFAULT_PREFIX: Final[str] = "lite0"
"""Default name prefix of the backbone's layers."""

INPUT_MEAN: Final[float] = 127.0
"""Mean subtracted from RGB values in [0, 255] (TensorFlow's ``MEAN_RGB`` for Lite models)."""

INPUT_STD: Final[float] = 128.0
"""Divisor of the centred RGB values (TensorFlow's ``STDDEV_RGB`` for Lite models)."""

BN_EPSILON: Final[float] = 1e-3
"""Batch-norm epsilon of the TensorFlow reference (and of the converted checkpoint)."""

BN_MOMENTUM: Final[float] = 0.99
"""Batch-norm momentum of the TensorFlow reference."""

STEM_CHANNELS: Final[int] = 32
FEATURE_CHANNELS: Final[int] = 1280
"""Channels of the final feature map."""

OUTPUT_STRIDE: Final[int] = 32
"""Ratio of the input size to the final feature map size."""

NATIVE_SIZE: Final[int] = 224
"""Input size the ImageNet weights were trained and evaluated at."""

BLOCK_SETTING: Final[tuple[tuple[int, int, int, int, int], ...]] = (
    # kernel k, repeats r, first stride s, expansion e, output channels o (EfficientNet-B0's)
    (3, 1, 1, 1, 16),
    (3, 2, 2, 6, 24),
    (5, 2, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (5, 3, 1, 6, 112),
    (5, 4, 2, 6, 192),
    (3, 1, 1, 6, 320),
)
"""The MBConv stages of EfficientNet-Lite0 (width and depth multipliers 1.0)."""

NUM_BLOCKS: Final[int] = sum(r for _, r, _, _, _ in BLOCK_SETTING)
"""Number of MBConv blocks (16): ``_blocks.0`` .. ``_blocks.15``."""


class _BlockConfig(NamedTuple):
    index: int
    in_channels: int
    out_channels: int
    expansion: int
    kernel: int
    stride: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def _block_configs() -> list[_BlockConfig]:
    """Lists the 16 MBConv blocks in order (``_blocks.0`` .. ``_blocks.15``)."""
    blocks: list[_BlockConfig] = []
    in_channels = STEM_CHANNELS
    for kernel, repeats, first_stride, expansion, channels in BLOCK_SETTING:
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            blocks.append(
                _BlockConfig(len(blocks), in_channels, channels, expansion, kernel, stride)
            )
            in_channels = channels
    return blocks


def last_conv_layer_name(prefix: str = DEFAULT_PREFIX) -> str:
    """Returns the name of the layer whose output is the final 1280-channel feature map.

    Args:
        prefix: The prefix given to :func:`build_efficientnet_lite0`.

    Returns:
        The name of the ReLU6 after the head's 1x1 convolution (a good Grad-CAM target).
    """
    return f"{prefix}_head_relu"


LAST_CONV_LAYER: Final[str] = last_conv_layer_name(DEFAULT_PREFIX)
"""Name of the layer giving the final feature map, for the default prefix."""


def backbone_layer_table(prefix: str = DEFAULT_PREFIX) -> list[LayerSpec]:
    """Lists every backbone layer that holds weights, with its torch source module.

    Args:
        prefix: The prefix given to :func:`build_efficientnet_lite0`.

    Returns:
        49 convolution/depthwise entries and 49 batch-norm entries, in network order.
    """
    table = [
        LayerSpec(f"{prefix}_stem_conv", "_conv_stem", "conv"),
        LayerSpec(f"{prefix}_stem_bn", "_bn0", "bn"),
    ]
    for block in _block_configs():
        name, module = f"{prefix}_block{block.index}", f"_blocks.{block.index}"
        if block.expansion != 1:
            table += [
                LayerSpec(f"{name}_expand_conv", f"{module}._expand_conv", "conv"),
                LayerSpec(f"{name}_expand_bn", f"{module}._bn0", "bn"),
            ]
        table += [
            LayerSpec(f"{name}_dw_conv", f"{module}._depthwise_conv", "depthwise"),
            LayerSpec(f"{name}_dw_bn", f"{module}._bn1", "bn"),
            LayerSpec(f"{name}_project_conv", f"{module}._project_conv", "conv"),
            LayerSpec(f"{name}_project_bn", f"{module}._bn2", "bn"),
        ]
    table += [
        LayerSpec(f"{prefix}_head_conv", "_conv_head", "conv"),
        LayerSpec(f"{prefix}_head_bn", "_bn1", "bn"),
    ]
    return table


_PARAMS: Final[dict[str, tuple[str, ...]]] = {
    "conv": ("weight",),
    "depthwise": ("weight",),
    "bn": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
}


def torch_key_to_layer(key: str, prefix: str = DEFAULT_PREFIX) -> tuple[str, str] | None:
    """Maps a checkpoint key to the Keras layer that holds it.

    Args:
        key: A state-dict key such as ``"_blocks.3._bn1.running_var"``.
        prefix: The prefix given to :func:`build_efficientnet_lite0`.

    Returns:
        ``(layer_name, param)`` with the torch parameter name, or ``None`` if the key is not part
        of the feature extractor (the classifier ``_fc.weight`` / ``_fc.bias``).
    """
    module, _, param = key.rpartition(".")
    for spec in backbone_layer_table(prefix):
        if spec.torch_module == module and param in _PARAMS[spec.kind]:
            return spec.layer, param
    return None


def backbone_layer_names(
    prefix: str = DEFAULT_PREFIX, *, include_rescaling: bool = True
) -> list[str]:
    """Lists the names of all layers :func:`build_efficientnet_lite0` creates, in order.

    Args:
        prefix: The prefix given to :func:`build_efficientnet_lite0`.
        include_rescaling: As given to :func:`build_efficientnet_lite0`.

    Returns:
        Every layer name, weightless ones (rescaling, ReLU6, add) included.
    """
    names = [f"{prefix}_rescale"] if include_rescaling else []
    names += [f"{prefix}_stem_conv", f"{prefix}_stem_bn", f"{prefix}_stem_relu"]
    for block in _block_configs():
        name = f"{prefix}_block{block.index}"
        if block.expansion != 1:
            names += [f"{name}_expand_conv", f"{name}_expand_bn", f"{name}_expand_relu"]
        names += [
            f"{name}_dw_conv",
            f"{name}_dw_bn",
            f"{name}_dw_relu",
            f"{name}_project_conv",
            f"{name}_project_bn",
        ]
        if block.residual:
            names.append(f"{name}_add")
    names += [f"{prefix}_head_conv", f"{prefix}_head_bn", last_conv_layer_name(prefix)]
    return names


def _bn(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    return keras.layers.BatchNormalization(
        axis=-1, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name
    )(x)


def _relu6(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    return keras.layers.ReLU(max_value=6.0, name=name)(x)


def _conv(
    x: keras.KerasTensor, filters: int, kernel: int, stride: int, name: str
) -> keras.KerasTensor:
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=name
    )(x)


def _mbconv(x: keras.KerasTensor, block: _BlockConfig, prefix: str) -> keras.KerasTensor:
    name = f"{prefix}_block{block.index}"
    shortcut = x
    if block.expansion != 1:
        x = _conv(x, block.in_channels * block.expansion, 1, 1, f"{name}_expand_conv")
        x = _relu6(_bn(x, f"{name}_expand_bn"), f"{name}_expand_relu")
    x = keras.layers.DepthwiseConv2D(
        block.kernel,
        strides=block.stride,
        padding="same",
        use_bias=False,
        name=f"{name}_dw_conv",
    )(x)
    x = _relu6(_bn(x, f"{name}_dw_bn"), f"{name}_dw_relu")
    x = _bn(_conv(x, block.out_channels, 1, 1, f"{name}_project_conv"), f"{name}_project_bn")
    if block.residual:
        x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def build_efficientnet_lite0(
    inputs: keras.KerasTensor, *, prefix: str = DEFAULT_PREFIX, include_rescaling: bool = True
) -> keras.KerasTensor:
    """Builds the EfficientNet-Lite0 feature extractor flat on ``inputs``.

    Example:
        >>> inputs = keras.Input((224, 224, 3))  # RGB, 0-255
        >>> features = build_efficientnet_lite0(inputs)  # (None, 7, 7, 1280)
        >>> pooled = keras.layers.GlobalAveragePooling2D()(features)

    Args:
        inputs: A channels-last tensor with 3 channels: RGB in ``[0, 255]``, or already scaled
            by :func:`lite_normalize` when ``include_rescaling`` is False. Any spatial size works;
            224 is the native one.
        prefix: Prefix of every layer name; use distinct prefixes to put two backbones in one
            model.
        include_rescaling: Add the ``(x - 127) / 128`` input scaling as layer ``{prefix}_rescale``.

    Returns:
        The final feature map, shape ``(batch, ceil(h / 32), ceil(w / 32), 1280)``: the output of
        the ReLU6 after the head's 1x1 convolution (layer :func:`last_conv_layer_name`).

    Raises:
        ValueError: If the input does not have 3 channels or the data format is channels-first.
    """
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "build_efficientnet_lite0 needs keras.config.image_data_format() == 'channels_last'"
        )
    if inputs.shape[-1] != 3:
        raise ValueError(f"EfficientNet-Lite0 expects 3 input channels, got shape {inputs.shape}")
    x = inputs
    if include_rescaling:
        x = keras.layers.Rescaling(
            1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name=f"{prefix}_rescale"
        )(x)
    x = _conv(x, STEM_CHANNELS, 3, 2, f"{prefix}_stem_conv")
    x = _relu6(_bn(x, f"{prefix}_stem_bn"), f"{prefix}_stem_relu")
    for block in _block_configs():
        x = _mbconv(x, block, prefix)
    x = _bn(_conv(x, FEATURE_CHANNELS, 1, 1, f"{prefix}_head_conv"), f"{prefix}_head_bn")
    return _relu6(x, last_conv_layer_name(prefix))


def lite_normalize(images: np.ndarray) -> np.ndarray:
    """Scales RGB images in ``[0, 255]`` the way the Lite0 weights expect.

    Args:
        images: Array ``(..., 3)`` of RGB values in ``[0, 255]``.

    Returns:
        ``(images - 127) / 128`` as float32 (what layer ``{prefix}_rescale`` computes).
    """
    return (np.asarray(images, dtype=np.float32) - np.float32(INPUT_MEAN)) / np.float32(INPUT_STD)
