"""S4: EfficientNet-B7 fine-tuned end to end at 224 px with a single-logit head."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detector.core.recipes import Recipe, register
from detector.core.recipes._common import backbone_spec, pooled_backbone_model
from detector.core.spec import ModelSpec

if TYPE_CHECKING:
    from detector.core._keras import keras


def _spec(params: dict[str, Any]) -> ModelSpec:
    return backbone_spec("efficientnet_b7_finetune", params, "sigmoid_fake")


def _model(spec: ModelSpec, weights: str | None) -> keras.Model:
    return pooled_backbone_model(spec, weights, "efficientnet_b7_finetune")


RECIPE = register(
    Recipe(
        name="efficientnet_b7_finetune",
        summary=(
            "Pretrained backbone (EfficientNet-B7 as published) fine-tuned end to end at 224 px "
            "(ImageNet normalisation)."
        ),
        reference=(
            "S4 (PyTorch, FF++ frames): EfficientNet-B7 (ImageNet-1K), head replaced by one logit, "
            "all weights trained, flip/rotation/colour-jitter augmentation, ImageNet mean/std "
            "(done inside the Keras EfficientNet), early stopping, best checkpoint, fixed seeds."
        ),
        defaults={
            "input_size": 224,
            "interpolation": "bilinear",
            "resize": "resize",
            "backbone": "efficientnet_b7",
        },
        make_spec=_spec,
        make_model=_model,
        tiny={"input_size": 32, "backbone": "tiny"},
    )
)
