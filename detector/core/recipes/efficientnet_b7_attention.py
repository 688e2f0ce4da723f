"""S1: frozen EfficientNetB7 features + a spatial attention head, 2-way softmax [fake, real]."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detector.core.recipes import Recipe, register
from detector.core.recipes._common import (
    backbone_features,
    backbone_spec,
    model_input,
    output_head,
)
from detector.core.spec import ModelSpec

if TYPE_CHECKING:
    from detector.core._keras import keras


def _spec(params: dict[str, Any]) -> ModelSpec:
    scale = params["scale"]
    if scale is None and params["backbone"].startswith("efficientnet"):
        scale = "unit"  # as published for EfficientNet ([0, 1] input); native otherwise
    return backbone_spec(
        "efficientnet_b7_attention",
        params,
        "softmax_fake_real",
        scale=scale,
        attention_layer="attention_map",
    )


def _model(spec: ModelSpec, weights: str | None) -> keras.Model:
    from detector.core._keras import keras
    from detector.core.layers import AttentionPooling

    layers = keras.layers

    l2 = keras.regularizers.L2(float(spec.params["l2"]))
    inputs, x = model_input(spec)
    features = backbone_features(spec, x, weights)
    features = layers.BatchNormalization(name="attn_bn")(features)
    a = layers.Conv2D(256, 1, activation="relu", name="attn_conv1")(features)
    a = layers.Dropout(0.5, name="attn_dropout")(a)
    a = layers.Conv2D(128, 1, activation="relu", name="attn_conv2")(a)
    a = layers.Conv2D(128, 1, activation="relu", name="attn_conv3")(a)
    attention = layers.Conv2D(1, 1, activation="sigmoid", name="attention_map")(a)
    x = AttentionPooling(name="attention_pool")([features, attention])
    x = layers.Dropout(0.5, name="head_dropout1")(x)
    x = layers.Dense(64, activation="relu", kernel_regularizer=l2, name="head_dense")(x)
    x = layers.Dropout(0.25, name="head_dropout2")(x)
    outputs = output_head(x, spec)
    return keras.Model(inputs, outputs, name="efficientnet_b7_attention")


RECIPE = register(
    Recipe(
        name="efficientnet_b7_attention",
        summary="Frozen pretrained backbone + spatial attention head (shows where it looks).",
        reference=(
            "S1: EfficientNetB7 (ImageNet, frozen) -> BN -> 1x1 convs 256/128/128/1 (sigmoid "
            "attention) -> attention-weighted GAP (their RescaleGAP) -> Dropout 0.5 -> Dense 64 "
            "relu (L2) -> Dropout 0.25 -> softmax [fake, real]; 128 px scaled to [0, 1] as "
            "published. The backbone is a parameter (MobileNetV2 offline)."
        ),
        defaults={
            "input_size": 128,
            "interpolation": "bilinear",
            "resize": "resize",
            "backbone": "efficientnet_b7",
            "scale": None,
            "l2": 1e-3,
        },
        make_spec=_spec,
        make_model=_model,
        tiny={"input_size": 32, "backbone": "tiny"},
    )
)
