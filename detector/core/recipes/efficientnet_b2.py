"""S2: EfficientNetB2 + GAP + dropout + sigmoid, trained with FGSM adversarial examples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detector.core.recipes import Recipe, register
from detector.core.recipes._common import backbone_spec, pooled_backbone_model
from detector.core.spec import ModelSpec

if TYPE_CHECKING:
    from detector.core._keras import keras


def _spec(params: dict[str, Any]) -> ModelSpec:
    return backbone_spec("efficientnet_b2", params, "sigmoid_fake")


def _model(spec: ModelSpec, weights: str | None) -> keras.Model:
    return pooled_backbone_model(spec, weights, "efficientnet_b2", dropout=spec.params["dropout"])


RECIPE = register(
    Recipe(
        name="efficientnet_b2",
        summary="Pretrained backbone + GAP + dropout 0.4 + sigmoid, FGSM-hardened.",
        reference=(
            "S2: EfficientNetB2 (ImageNet) -> GAP -> Dropout 0.4 -> Dense 1 sigmoid; frozen phase "
            "with label smoothing, FGSM phase, full fine-tune, PR-curve threshold. The backbone "
            "is a parameter (EfficientNetB2 as published; MobileNetV2 offline)."
        ),
        defaults={
            "input_size": 224,
            "interpolation": "area",
            "resize": "resize",
            "backbone": "efficientnet_b2",
            "dropout": 0.4,
        },
        make_spec=_spec,
        make_model=_model,
        tiny={"input_size": 32, "backbone": "tiny"},
    )
)
