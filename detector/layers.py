"""Serializable Keras layers used by the recipes (never Lambda layers: those cannot load safely)."""

from __future__ import annotations

from typing import Any

from detector._keras import keras
from detector.spec import IMAGENET_MEAN, IMAGENET_STD, VALUE_SCALES

ops = keras.ops


@keras.saving.register_keras_serializable(package="detector")
class ValueScaling(keras.layers.Layer):
    """Scales 0-255 RGB input the way the model was trained (see `Preprocessing.scale`)."""

    def __init__(self, mode: str = "unit", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in VALUE_SCALES:
            raise ValueError(f"unknown value scale {mode!r}; expected one of {VALUE_SCALES}")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "unit":
            return x / 255.0
        if self.mode == "div127":
            return x / 127.0
        if self.mode == "imagenet":
            mean = ops.convert_to_tensor([m * 255.0 for m in IMAGENET_MEAN], dtype=x.dtype)
            std = ops.convert_to_tensor([s * 255.0 for s in IMAGENET_STD], dtype=x.dtype)
            return (x - mean) / std
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="detector")
class AttentionPooling(keras.layers.Layer):
    """Attention-weighted global average pooling.

    Takes ``[features (B, H, W, C), attention (B, H, W, 1)]`` and returns
    ``GAP(features * attention) / GAP(attention)`` of shape (B, C): the same quantity as the
    ``RescaleGAP`` Lambda of the published S1 model, as a layer that loads in safe mode.
    """

    def __init__(self, epsilon: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, inputs):
        features, attention = inputs
        weighted = ops.mean(features * attention, axis=(1, 2))
        mass = ops.mean(attention, axis=(1, 2))
        return weighted / (mass + self.epsilon)

    def compute_output_shape(self, input_shape):
        features_shape = input_shape[0]
        return (features_shape[0], features_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="detector")
class NPRFilter(keras.layers.Layer):
    """Neighbouring-pixel relations (Tan et al., CVPR 2024): ``x - up(down(x))``.

    ``down`` keeps the top-left pixel of every 2 x 2 block and ``up`` repeats it back (nearest
    neighbour both ways), so the output is each pixel minus its block's anchor pixel: the local
    structure that generator upsampling leaves behind, with the image content largely removed.
    Input height and width must be even.
    """

    def call(self, inputs):
        anchors = inputs[:, ::2, ::2, :]
        up = ops.repeat(ops.repeat(anchors, 2, axis=1), 2, axis=2)
        return inputs - up

    def compute_output_shape(self, input_shape):
        return input_shape


CUSTOM_OBJECTS: dict[str, type] = {
    "detector>ValueScaling": ValueScaling,
    "detector>AttentionPooling": AttentionPooling,
    "detector>NPRFilter": NPRFilter,
}
