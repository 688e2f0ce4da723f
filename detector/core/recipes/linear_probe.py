"""Reference: a logistic regression on frozen ImageNet features (the baseline to beat)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detector.core.recipes import Recipe, register
from detector.core.recipes._common import backbone_spec, pooled_backbone_model
from detector.core.spec import ModelSpec

if TYPE_CHECKING:
    from detector.core._keras import keras


def _spec(params: dict[str, Any]) -> ModelSpec:
    return backbone_spec("linear_probe", params, "sigmoid_fake")


def _model(spec: ModelSpec, weights: str | None) -> keras.Model:
    return pooled_backbone_model(spec, weights, "linear_probe")


RECIPE = register(
    Recipe(
        name="linear_probe",
        summary=(
            "Reference row: a logistic regression on frozen ImageNet features (global average "
            "pool of the backbone's last convolution); the backbone is never trained."
        ),
        reference=(
            "Not a published detector: the baseline every trained recipe must beat on the wild "
            "test split (the linear-probe protocol of Ojha et al., CVPR 2023, with an ImageNet "
            "CNN instead of CLIP). Fitted with scikit-learn on features of the training crops, "
            "folded into the final Dense layer."
        ),
        defaults={
            "input_size": 224,
            "interpolation": "bilinear",
            "resize": "native_crop",
            "backbone": "mobilenet_v2",
        },
        make_spec=_spec,
        make_model=_model,
        tiny={"input_size": 32, "backbone": "tiny"},
    )
)
