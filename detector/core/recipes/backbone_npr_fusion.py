"""A pretrained backbone and S3's residual CNN side by side, pooled features fused in one logit.

The two branches see different evidence: the backbone (S4's) sees content and texture through
ImageNet features; the residual branch (S3's network on NPR residuals) sees the local pixel
relations that generator upsampling leaves behind, with the content largely removed. Each is
weak where the other is strong on the starter kit, so the head learns from both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detector.core.recipes import Recipe, register
from detector.core.recipes._common import (
    backbone_features,
    backbone_spec,
    conv_blocks,
    model_input,
    npr_residuals,
    output_head,
)
from detector.core.spec import ModelSpec

if TYPE_CHECKING:
    from detector.core._keras import keras


def _spec(params: dict[str, Any]) -> ModelSpec:
    crop = int(params["residual_crop"])
    if crop % 2 or not 0 < crop <= int(params["input_size"]):
        raise ValueError(f"residual_crop must be even and between 2 and input_size, got {crop}")
    return backbone_spec("backbone_npr_fusion", params, "sigmoid_fake")


def _model(spec: ModelSpec, weights: str | None) -> keras.Model:
    from detector.core._keras import keras
    from detector.core.layers import ValueScaling

    layers = keras.layers

    inputs, x = model_input(spec)
    features = backbone_features(spec, x, weights)
    semantic = layers.GlobalAveragePooling2D(name="head_gap")(features)

    # The residual branch reads the raw input (0-255), centre-cropped: residual statistics are
    # the same everywhere in a patch, so a smaller window keeps its cost below the backbone's.
    margin = (spec.input_size - int(spec.params["residual_crop"])) // 2
    r = layers.Cropping2D(margin, name="head_npr_crop")(inputs) if margin else inputs
    r = ValueScaling("div127", name="scale_npr_input")(r)
    r = npr_residuals(r, spec.params["residual_gain"], prefix="scale_npr")
    r = conv_blocks(r, spec.params["residual_widths"], prefix="head_npr_block")
    residual = layers.GlobalAveragePooling2D(name="head_npr_gap")(r)

    x = layers.Concatenate(name="head_concat")([semantic, residual])
    x = layers.Dropout(float(spec.params["dropout"]), name="head_dropout")(x)
    outputs = output_head(x, spec)
    return keras.Model(inputs, outputs, name="backbone_npr_fusion")


RECIPE = register(
    Recipe(
        name="backbone_npr_fusion",
        summary=(
            "Pretrained backbone (S4) and a residual CNN (S3 on NPR residuals) fused: "
            "content and upsampling traces in one model."
        ),
        reference=(
            "Combines S4 (pretrained backbone, head replaced by one logit, all weights trained) "
            "with S3's four conv blocks on neighbouring-pixel residuals (Tan et al., CVPR 2024), "
            "globally pooled. Training: backbone frozen while the residual branch and head learn "
            "at 1e-3, then everything at 3e-4 with early stopping on validation loss."
        ),
        defaults={
            "input_size": 224,
            "interpolation": "bilinear",
            "resize": "native_crop",
            "backbone": "mobilenet_v2",
            "residual_crop": 128,
            "residual_widths": (32, 64, 128, 256),
            "residual_gain": 16.0,
            "dropout": 0.2,
        },
        make_spec=_spec,
        make_model=_model,
        tiny={"input_size": 32, "backbone": "tiny", "residual_crop": 16, "residual_widths": (4, 8)},
    )
)
