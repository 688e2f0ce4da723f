"""Building blocks shared by the recipe modules."""

from __future__ import annotations

from typing import Any

from detector._keras import keras
from detector.backbones import get_backbone
from detector.layers import ValueScaling
from detector.spec import ModelSpec, Preprocessing

layers = keras.layers


def model_input(spec: ModelSpec):
    """The model input (0-255 RGB at the spec's size) followed by the spec's value scaling."""
    size = spec.input_size
    inputs = keras.Input(shape=(size, size, 3), name="input")
    scaled = ValueScaling(spec.preprocessing.scale, name="scale")(inputs)
    return inputs, scaled


def backbone_features(spec: ModelSpec, x, weights: str | None):
    """Add the spec's backbone on ``x`` (flat) and return its feature map."""
    return get_backbone(spec.params["backbone"]).build(x, weights=weights)


def output_head(x, spec: ModelSpec):
    """The final ``logits`` Dense layer and ``probs`` activation for the spec's convention."""
    if spec.output == "softmax_fake_real":
        logits = layers.Dense(2, name="logits")(x)
        return layers.Activation("softmax", name="probs")(logits)
    logits = layers.Dense(1, name="logits")(x)
    return layers.Activation("sigmoid", name="probs")(logits)


def backbone_spec(
    recipe: str,
    params: dict[str, Any],
    output: str,
    *,
    scale: str | None = None,
    attention_layer: str | None = None,
) -> ModelSpec:
    """The spec of a backbone recipe: the backbone's input scale and last conv layer."""
    backbone = get_backbone(params["backbone"])
    return ModelSpec(
        recipe=recipe,
        preprocessing=Preprocessing(
            size=int(params["input_size"]),
            interpolation=params["interpolation"],
            resize=params["resize"],
            scale=scale or backbone.native_scale,
        ),
        output=output,
        gradcam_layer=backbone.last_conv_layer,
        attention_layer=attention_layer,
        params=params,
    )
