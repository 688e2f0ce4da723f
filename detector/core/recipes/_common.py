"""Building blocks shared by the recipe modules.

Resolving a spec imports no Keras: the functions that add layers import it (and
`detector.core.layers`) when called.
"""

from __future__ import annotations

from typing import Any

from detector.core.backbones import get_backbone
from detector.core.spec import ModelSpec, Preprocessing


def model_input(spec: ModelSpec):
    """The model input (0-255 RGB at the spec's size) followed by the spec's value scaling."""
    from detector.core._keras import keras
    from detector.core.layers import ValueScaling

    size = spec.input_size
    inputs = keras.Input(shape=(size, size, 3), name="input")
    scaled = ValueScaling(spec.preprocessing.scale, name="scale")(inputs)
    return inputs, scaled


def backbone_features(spec: ModelSpec, x, weights: str | None):
    """Add the spec's backbone on ``x`` (flat) and return its feature map."""
    return get_backbone(spec.params["backbone"]).build(x, weights=weights)


def pooled_backbone_model(
    spec: ModelSpec, weights: str | None, name: str, dropout: float | None = None
):
    """Input, the spec's backbone, global average pooling (``head_gap``), an optional dropout
    (``head_dropout``) and the output head: the model of S2, S4 and the linear probe."""
    from detector.core._keras import keras

    inputs, x = model_input(spec)
    x = keras.layers.GlobalAveragePooling2D(name="head_gap")(backbone_features(spec, x, weights))
    if dropout is not None:
        x = keras.layers.Dropout(float(dropout), name="head_dropout")(x)
    return keras.Model(inputs, output_head(x, spec), name=name)


def output_head(x, spec: ModelSpec):
    """The final ``logits`` Dense layer and ``probs`` activation for the spec's convention."""
    from detector.core._keras import keras

    layers = keras.layers

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


def npr_residuals(x, gain: float, prefix: str = "scale_npr"):
    """Neighbouring-pixel residuals of ``x`` (0-255 input at 1/127 scale), multiplied by ``gain``.

    Residuals are small (std ~0.06 at 1/127 scale): the gain brings them to ~1 so that batch
    norm's moving variance (which starts at 1) matches them within a few epochs.
    """
    if x.shape[1] is not None and (x.shape[1] % 2 or x.shape[2] % 2):
        raise ValueError("the NPR input filter needs an even input size")
    from detector.core._keras import keras
    from detector.core.layers import NPRFilter

    x = NPRFilter(name=prefix)(x)
    return keras.layers.Rescaling(float(gain), name=f"{prefix}_gain")(x)


def conv_blocks(x, widths, prefix: str = "head_block"):
    """S3's blocks: Conv 3x3 + ReLU, BatchNorm, MaxPool 2 per width (layers ``{prefix}{i}_*``)."""
    from detector.core._keras import keras

    layers = keras.layers

    for i, width in enumerate(widths, start=1):
        x = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{prefix}{i}_conv")(x)
        x = layers.BatchNormalization(name=f"{prefix}{i}_bn")(x)
        x = layers.MaxPooling2D(2, name=f"{prefix}{i}_pool")(x)
    return x
