"""Serializable Keras layers used by the recipes (never Lambda layers: those cannot load safely)."""

from __future__ import annotations

from typing import Any

import numpy as np

from detector.core._keras import keras
from detector.core.spec import IMAGENET_MEAN, IMAGENET_STD, JPEG_BLOCK, VALUE_SCALES

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


#: ITU-R BT.601 luma weights, the Y of JPEG's YCbCr.
LUMA = (0.299, 0.587, 0.114)


def dct_basis(n: int = 8) -> np.ndarray:
    """The orthonormal 2-D DCT-II basis of an n x n block, shape (n, n, n * n).

    Channel ``u * n + v`` holds the basis image of vertical frequency u and horizontal
    frequency v, so ``sum(block * basis[..., k])`` is JPEG's coefficient k of that block.
    """
    x = np.arange(n)
    c = np.sqrt(np.where(np.arange(n) == 0, 1.0, 2.0) / n)
    one_d = c[:, None] * np.cos((2 * x[None, :] + 1) * np.arange(n)[:, None] * np.pi / (2 * n))
    basis = np.einsum("ux,vy->xyuv", one_d, one_d)  # (x, y, u, v)
    return basis.reshape(n, n, n * n).astype("float32")


@keras.saving.register_keras_serializable(package="detector")
class BlockDCT(keras.layers.Layer):
    """JPEG's transform: the luma of 0-255 RGB, shifted by -128, in 8 x 8 blocks, DCT-II.

    Returns (B, H/8, W/8, 64): each block's 64 coefficients (channel ``u * 8 + v``), the values
    a JPEG encoder quantises. Blocks start at the input's top-left corner, so a crop that keeps
    the encoder's grid (`Preprocessing.grid` = 8) sees the encoder's own blocks. No weights.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        luma = np.asarray(LUMA, "float32")
        n = JPEG_BLOCK
        self._kernel = dct_basis(n)[:, :, None, :] * luma[None, None, :, None]
        # the -128 level shift only moves the DC coefficient: n x -128 (DC basis is 1/n)
        self._bias = np.zeros(n * n, "float32")
        self._bias[0] = -128.0 * n

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        kernel = ops.convert_to_tensor(self._kernel, dtype=x.dtype)
        out = ops.conv(x, kernel, strides=JPEG_BLOCK, padding="valid")
        return out + ops.convert_to_tensor(self._bias, dtype=x.dtype)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (
            batch,
            None if height is None else height // JPEG_BLOCK,
            None if width is None else width // JPEG_BLOCK,
            JPEG_BLOCK * JPEG_BLOCK,
        )


@keras.saving.register_keras_serializable(package="detector")
class CoefficientFeatures(keras.layers.Layer):
    """Per-block statistics of DCT coefficients c: ``log(1 + |c|)`` and soft counts.

    For every threshold t, ``sigmoid(sharpness * (|c| - t))`` is a differentiable "is |c| above
    t": averaged over blocks it is the share of blocks whose coefficient survives quantisation
    at about that step. Output channels: 64 log-magnitudes, then 64 per threshold.
    """

    def __init__(
        self,
        thresholds: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0),
        sharpness: float = 4.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.sharpness = float(sharpness)

    def call(self, inputs):
        magnitude = ops.abs(inputs)
        parts = [ops.log1p(magnitude)]
        parts += [ops.sigmoid(self.sharpness * (magnitude - t)) for t in self.thresholds]
        return ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] * (1 + len(self.thresholds)))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "thresholds": list(self.thresholds),
            "sharpness": self.sharpness,
        }


CUSTOM_OBJECTS: dict[str, type] = {
    "detector>ValueScaling": ValueScaling,
    "detector>AttentionPooling": AttentionPooling,
    "detector>NPRFilter": NPRFilter,
    "detector>BlockDCT": BlockDCT,
    "detector>CoefficientFeatures": CoefficientFeatures,
}
