"""S3: the small CNN family (variant 6), trained from scratch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detector.core.recipes import Recipe, register
from detector.core.recipes._common import conv_blocks, model_input, npr_residuals, output_head
from detector.core.spec import ModelSpec, Preprocessing

if TYPE_CHECKING:
    from detector.core._keras import keras


def _spec(params: dict[str, Any]) -> ModelSpec:
    return ModelSpec(
        recipe="simple_cnn",
        preprocessing=Preprocessing(
            size=int(params["input_size"]),
            interpolation=params["interpolation"],
            resize=params["resize"],
            scale="div127",
        ),
        output="sigmoid_real",
        gradcam_layer="head_block4_conv",
        params=params,
    )


def _model(spec: ModelSpec, weights: str | None) -> keras.Model:
    from detector.core._keras import keras

    layers = keras.layers

    if weights not in (None, "none"):
        raise ValueError("simple_cnn is trained from scratch; it has no pretrained weights")
    widths = spec.params["widths"]
    inputs, x = model_input(spec)
    if spec.params.get("input_filter") == "npr":
        x = npr_residuals(x, spec.params["residual_gain"])
    elif spec.params.get("input_filter") not in (None, "none"):
        raise ValueError(f"unknown input_filter {spec.params['input_filter']!r}; use none or npr")
    x = conv_blocks(x, widths)
    head = spec.params.get("head", "flatten")
    if head == "flatten":
        x = layers.Flatten(name="head_flatten")(x)
    elif head == "gap":
        x = layers.GlobalAveragePooling2D(name="head_gap")(x)
    else:
        raise ValueError(f"unknown head {head!r}; use flatten or gap")
    for i, units in enumerate(spec.params["dense"], start=1):
        x = layers.Dense(units, activation="relu", name=f"head_dense{i}")(x)
        if i <= 2:
            x = layers.Dropout(0.5, name=f"head_dropout{i}")(x)
    outputs = output_head(x, spec)
    return keras.Model(inputs, outputs, name="simple_cnn")


RECIPE = register(
    Recipe(
        name="simple_cnn",
        summary="Small 4-block CNN trained from scratch (fast, 128 px).",
        reference=(
            "S3 variant 6: Conv 32/64/128/256 + BN + MaxPool, Dense 512/256/128, "
            "Rescaling(1/127), sigmoid P(real) (label 1 = real), as published. Option: "
            "input_filter='npr' feeds the network neighbouring-pixel residuals (Tan et al. "
            "2024); head='gap' pools the last block globally instead of flattening it "
            "(statistics of texture, not its layout)."
        ),
        defaults={
            "input_size": 128,
            "interpolation": "area",
            "resize": "resize",
            "widths": (32, 64, 128, 256),
            "dense": (512, 256, 128),
            "input_filter": None,
            "residual_gain": 16.0,
            "head": "flatten",
        },
        make_spec=_spec,
        make_model=_model,
        tiny={"input_size": 32, "widths": (4, 8, 8, 8), "dense": (16, 8, 8)},
    )
)
