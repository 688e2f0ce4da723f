"""Block-DCT statistics: how much of each JPEG frequency the image's 8 x 8 blocks carry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detector.core.recipes import Recipe, register
from detector.core.recipes._common import model_input, output_head
from detector.core.spec import JPEG_BLOCK, ModelSpec, Preprocessing

if TYPE_CHECKING:
    from detector.core._keras import keras


def _spec(params: dict[str, Any]) -> ModelSpec:
    size = int(params["input_size"])
    if size % JPEG_BLOCK:  # the input is whole blocks, and crops keep the encoder's grid
        raise ValueError(
            f"dct_spectrum reads whole {JPEG_BLOCK} x {JPEG_BLOCK} blocks: input_size {size} "
            f"is not a multiple of {JPEG_BLOCK}"
        )
    hidden = tuple(params["hidden"])
    return ModelSpec(
        recipe="dct_spectrum",
        preprocessing=Preprocessing(
            size=size,
            interpolation=params["interpolation"],
            resize=params["resize"],
            scale="raw",
            grid=JPEG_BLOCK,
        ),
        output="sigmoid_fake",
        gradcam_layer=f"head_block{len(hidden)}_conv" if hidden else "head_coef",
        params=params,
    )


def _model(spec: ModelSpec, weights: str | None) -> keras.Model:
    from detector.core._keras import keras
    from detector.core.layers import BlockDCT, CoefficientFeatures

    layers = keras.layers

    if weights not in (None, "none"):
        raise ValueError("dct_spectrum is trained from scratch; it has no pretrained weights")
    p = spec.params
    inputs, x = model_input(spec)
    x = BlockDCT(name="head_dct")(x)
    x = CoefficientFeatures(tuple(p["thresholds"]), float(p["sharpness"]), name="head_coef")(x)
    # optional per-block layers (1 x 1 convolutions): a small network applied to every block
    for i, units in enumerate(p["hidden"], start=1):
        x = layers.Conv2D(int(units), 1, activation="relu", name=f"head_block{i}_conv")(x)
    x = layers.GlobalAveragePooling2D(name="head_gap")(x)
    # the statistics differ in scale by orders of magnitude: standardise them, as a linear
    # classifier on such features would
    x = layers.BatchNormalization(name="head_norm")(x)
    if p["dropout"]:
        x = layers.Dropout(float(p["dropout"]), name="head_dropout")(x)
    outputs = output_head(x, spec)
    return keras.Model(inputs, outputs, name="dct_spectrum")


RECIPE = register(
    Recipe(
        name="dct_spectrum",
        summary="Frequency statistics of the image's 8 x 8 JPEG blocks (tiny, JPEG-aware).",
        reference=(
            "Not one of the four seed systems: after Frank et al., ICML 2020 (generator "
            "upsampling shows in the DCT spectrum; a linear classifier on log DCT magnitudes "
            "separates it). Here the DCT is JPEG's own 8 x 8 block transform of the luma on "
            "the encoder's grid, so the statistics are those JPEG quantises: per frequency, "
            "the mean log magnitude and the share of blocks above each threshold (option "
            "hidden: 1x1 layers applied to every block first), averaged over the image, "
            "standardised, then a logistic output. Reads native-resolution crops aligned to "
            "the 8-pixel grid."
        ),
        defaults={
            "input_size": 224,
            "interpolation": "area",
            "resize": "native_crop",
            "thresholds": (1.0, 2.0, 4.0, 8.0),
            "sharpness": 4.0,
            "hidden": (),
            "dropout": 0.0,
        },
        make_spec=_spec,
        make_model=_model,
        tiny={"input_size": 32, "thresholds": (2.0,)},
    )
)
