"""EfficientNet-Lite feature extractors (Lite0, Lite2) rebuilt flat in Keras 3.

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

The larger Lite models scale that network like the EfficientNets (:data:`VARIANTS`): every
block's channels by the width multiplier (:func:`round_filters`) and the repeats of every stage
but the first and the last by the depth multiplier, while the stem and the head stay 32 and 1280
channels (TensorFlow's ``fix_head_stem``). :func:`block_setting` gives a variant's stages and
:func:`build_efficientnet_lite` builds any variant; :func:`build_efficientnet_lite0` is Lite0.

The network is built layer by layer on a given input tensor with the functional API, so every
layer is reachable by name from the enclosing model (Grad-CAM tools need this; see
``docs/stack.md``). Layer names follow the PyTorch checkpoint's modules (lukemelas
EfficientNet-PyTorch layout): ``{prefix}_stem_*`` is ``_conv_stem``/``_bn0``,
``{prefix}_block{i}_*`` is ``_blocks.{i}`` (``i`` in 0..15 for Lite0, 0..20 for Lite2),
``{prefix}_head_*`` is
``_conv_head``/``_bn1``. :func:`backbone_layer_table` lists, for each layer holding weights, the
torch module it comes from; ``training/pretrained_lite.py`` uses it.
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import numpy as np

from detector.core._keras import keras
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
    "VARIANTS",
    "LayerSpec",
    "LiteVariant",
    "backbone_layer_names",
    "backbone_layer_table",
    "block_setting",
    "build_efficientnet_lite",
    "build_efficientnet_lite0",
    "get_variant",
    "last_conv_layer_name",
    "lite_normalize",
    "num_blocks",
    "round_filters",
    "round_repeats",
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
"""Input size the Lite0 ImageNet weights were trained and evaluated at (see :data:`VARIANTS`)."""

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
"""Number of MBConv blocks of Lite0 (16): ``_blocks.0`` .. ``_blocks.15``."""

CHANNEL_DIVISOR: Final[int] = 8
"""Scaled channel counts are rounded to multiples of this."""


class LiteVariant(NamedTuple):
    """One EfficientNet-Lite model: how it scales Lite0 (TensorFlow's ``efficientnet_lite_params``).

    Attributes:
        name: ``"lite0"``, ``"lite2"``...; also the default layer-name prefix.
        width: Channel multiplier of every block (not of the stem nor the head).
        depth: Repeat multiplier of every stage but the first and the last.
        native_size: Input size the ImageNet weights were trained and evaluated at.
    """

    name: str
    width: float
    depth: float
    native_size: int


VARIANTS: Final[dict[str, LiteVariant]] = {
    "lite0": LiteVariant("lite0", 1.0, 1.0, 224),
    "lite2": LiteVariant("lite2", 1.1, 1.2, 260),
}
"""The EfficientNet-Lite models this module builds, by name."""


def get_variant(name: str) -> LiteVariant:
    """Looks a variant up by name.

    Args:
        name: A key of :data:`VARIANTS`, e.g. ``"lite2"``.

    Returns:
        The variant's multipliers and native size.

    Raises:
        ValueError: If the name is unknown.
    """
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(
            f"unknown EfficientNet-Lite variant {name!r}; known: {', '.join(VARIANTS)}"
        ) from None


def round_filters(channels: int, width: float) -> int:
    """Scales a channel count by ``width`` and rounds it as TensorFlow's ``round_filters`` does.

    Args:
        channels: Channels of the unscaled (Lite0) block.
        width: The width multiplier.

    Returns:
        The nearest multiple of 8 (at least 8), plus 8 if that lost more than 10 %.
    """
    scaled = channels * width
    rounded = max(
        CHANNEL_DIVISOR, int(scaled + CHANNEL_DIVISOR / 2) // CHANNEL_DIVISOR * CHANNEL_DIVISOR
    )
    if rounded < 0.9 * scaled:
        rounded += CHANNEL_DIVISOR
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Scales a stage's repeat count by ``depth``, rounding up (TensorFlow's ``round_repeats``).

    Args:
        repeats: Repeats of the unscaled stage.
        depth: The depth multiplier.

    Returns:
        ``ceil(depth * repeats)``.
    """
    return math.ceil(depth * repeats)


def block_setting(variant: str = "lite0") -> tuple[tuple[int, int, int, int, int], ...]:
    """Lists a variant's MBConv stages, scaled from :data:`BLOCK_SETTING`.

    The first and last stages keep their repeats (``fix_head_stem``); every stage's output
    channels are :func:`round_filters` of Lite0's.

    Args:
        variant: A key of :data:`VARIANTS`.

    Returns:
        ``(kernel, repeats, first stride, expansion, output channels)`` per stage.
    """
    scale = get_variant(variant)
    last = len(BLOCK_SETTING) - 1
    return tuple(
        (
            kernel,
            repeats if i in (0, last) else round_repeats(repeats, scale.depth),
            stride,
            expansion,
            round_filters(channels, scale.width),
        )
        for i, (kernel, repeats, stride, expansion, channels) in enumerate(BLOCK_SETTING)
    )


def num_blocks(variant: str = "lite0") -> int:
    """Returns how many MBConv blocks a variant has (16 for Lite0, 21 for Lite2).

    Args:
        variant: A key of :data:`VARIANTS`.

    Returns:
        The number of ``_blocks.{i}`` modules of its checkpoint.
    """
    return sum(repeats for _, repeats, _, _, _ in block_setting(variant))


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


def _block_configs(variant: str = "lite0") -> list[_BlockConfig]:
    """Lists a variant's MBConv blocks in order (``_blocks.0`` .. ``_blocks.{n - 1}``)."""
    blocks: list[_BlockConfig] = []
    in_channels = STEM_CHANNELS
    for kernel, repeats, first_stride, expansion, channels in block_setting(variant):
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
        prefix: The prefix the backbone was built with (``"lite2"`` for Lite2's default).

    Returns:
        The name of the ReLU6 after the head's 1x1 convolution (a good Grad-CAM target).
    """
    return f"{prefix}_head_relu"


LAST_CONV_LAYER: Final[str] = last_conv_layer_name(DEFAULT_PREFIX)
"""Name of the layer giving the final feature map, for the default prefix."""


def backbone_layer_table(prefix: str | None = None, *, variant: str = "lite0") -> list[LayerSpec]:
    """Lists every backbone layer that holds weights, with its torch source module.

    Args:
        prefix: The prefix the backbone was built with; defaults to the variant's name.
        variant: A key of :data:`VARIANTS`.

    Returns:
        The convolution/depthwise entries and as many batch-norm entries, in network order
        (49 + 49 for Lite0, 64 + 64 for Lite2).
    """
    prefix = prefix or variant
    table = [
        LayerSpec(f"{prefix}_stem_conv", "_conv_stem", "conv"),
        LayerSpec(f"{prefix}_stem_bn", "_bn0", "bn"),
    ]
    for block in _block_configs(variant):
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


def torch_key_to_layer(
    key: str, prefix: str | None = None, *, variant: str = "lite0"
) -> tuple[str, str] | None:
    """Maps a checkpoint key to the Keras layer that holds it.

    Args:
        key: A state-dict key such as ``"_blocks.3._bn1.running_var"``.
        prefix: The prefix the backbone was built with; defaults to the variant's name.
        variant: A key of :data:`VARIANTS`.

    Returns:
        ``(layer_name, param)`` with the torch parameter name, or ``None`` if the key is not part
        of the feature extractor (the classifier ``_fc.weight`` / ``_fc.bias``).
    """
    module, _, param = key.rpartition(".")
    for spec in backbone_layer_table(prefix, variant=variant):
        if spec.torch_module == module and param in _PARAMS[spec.kind]:
            return spec.layer, param
    return None


def backbone_layer_names(
    prefix: str | None = None, *, include_rescaling: bool = True, variant: str = "lite0"
) -> list[str]:
    """Lists the names of all layers :func:`build_efficientnet_lite` creates, in order.

    Args:
        prefix: The prefix the backbone was built with; defaults to the variant's name.
        include_rescaling: As given to :func:`build_efficientnet_lite`.
        variant: A key of :data:`VARIANTS`.

    Returns:
        Every layer name, weightless ones (rescaling, ReLU6, add) included.
    """
    prefix = prefix or variant
    names = [f"{prefix}_rescale"] if include_rescaling else []
    names += [f"{prefix}_stem_conv", f"{prefix}_stem_bn", f"{prefix}_stem_relu"]
    for block in _block_configs(variant):
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


def build_efficientnet_lite(
    inputs: keras.KerasTensor,
    variant: str,
    *,
    prefix: str | None = None,
    include_rescaling: bool = True,
) -> keras.KerasTensor:
    """Builds an EfficientNet-Lite feature extractor flat on ``inputs``.

    Example:
        >>> inputs = keras.Input((260, 260, 3))  # RGB, 0-255
        >>> features = build_efficientnet_lite(inputs, "lite2")  # (None, 9, 9, 1280)

    Args:
        inputs: A channels-last tensor with 3 channels: RGB in ``[0, 255]``, or already scaled
            by :func:`lite_normalize` when ``include_rescaling`` is False. Any spatial size works;
            the variant's ``native_size`` is the one its ImageNet weights were trained at.
        variant: A key of :data:`VARIANTS` (``"lite0"``, ``"lite2"``).
        prefix: Prefix of every layer name (defaults to the variant's name); use distinct
            prefixes to put two backbones in one model.
        include_rescaling: Add the ``(x - 127) / 128`` input scaling as layer ``{prefix}_rescale``.

    Returns:
        The final feature map, shape ``(batch, ceil(h / 32), ceil(w / 32), 1280)``: the output of
        the ReLU6 after the head's 1x1 convolution (layer :func:`last_conv_layer_name`).

    Raises:
        ValueError: If the variant is unknown, the input does not have 3 channels or the data
            format is channels-first.
    """
    title = f"EfficientNet-{get_variant(variant).name.capitalize()}"
    prefix = prefix or variant
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(f"{title} needs keras.config.image_data_format() == 'channels_last'")
    if inputs.shape[-1] != 3:
        raise ValueError(f"{title} expects 3 input channels, got shape {inputs.shape}")
    x = inputs
    if include_rescaling:
        x = keras.layers.Rescaling(
            1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name=f"{prefix}_rescale"
        )(x)
    x = _conv(x, STEM_CHANNELS, 3, 2, f"{prefix}_stem_conv")
    x = _relu6(_bn(x, f"{prefix}_stem_bn"), f"{prefix}_stem_relu")
    for block in _block_configs(variant):
        x = _mbconv(x, block, prefix)
    x = _bn(_conv(x, FEATURE_CHANNELS, 1, 1, f"{prefix}_head_conv"), f"{prefix}_head_bn")
    return _relu6(x, last_conv_layer_name(prefix))


def build_efficientnet_lite0(
    inputs: keras.KerasTensor, *, prefix: str = DEFAULT_PREFIX, include_rescaling: bool = True
) -> keras.KerasTensor:
    """Builds the EfficientNet-Lite0 feature extractor flat on ``inputs``.

    Example:
        >>> inputs = keras.Input((224, 224, 3))  # RGB, 0-255
        >>> features = build_efficientnet_lite0(inputs)  # (None, 7, 7, 1280)
        >>> pooled = keras.layers.GlobalAveragePooling2D()(features)

    Args:
        inputs: As in :func:`build_efficientnet_lite`; 224 is Lite0's native size.
        prefix: Prefix of every layer name; use distinct prefixes to put two backbones in one
            model.
        include_rescaling: Add the ``(x - 127) / 128`` input scaling as layer ``{prefix}_rescale``.

    Returns:
        The final feature map, shape ``(batch, ceil(h / 32), ceil(w / 32), 1280)``.

    Raises:
        ValueError: If the input does not have 3 channels or the data format is channels-first.
    """
    return build_efficientnet_lite(
        inputs, "lite0", prefix=prefix, include_rescaling=include_rescaling
    )


def lite_normalize(images: np.ndarray) -> np.ndarray:
    """Scales RGB images in ``[0, 255]`` the way the Lite weights expect.

    Args:
        images: Array ``(..., 3)`` of RGB values in ``[0, 255]``.

    Returns:
        ``(images - 127) / 128`` as float32 (what layer ``{prefix}_rescale`` computes).
    """
    return (np.asarray(images, dtype=np.float32) - np.float32(INPUT_MEAN)) / np.float32(INPUT_STD)
