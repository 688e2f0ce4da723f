"""Detect AI-generated images with explainable Keras models.

This module is the public API: the CLI and user code import only from here, the apps from here
and from `detector.ui` and `detector.serving`. It loads no UI, ASGI, Beam or Hub code (the Hub
loaders below are imported on first use). The layers behind the API are subpackages, each
importing only the ones below it (`tests/test_architecture.py` checks this):

- `detector.core`: models, recipes, preprocessing, scoring, heatmaps, domain warnings, result
  types, errors.
- `detector.evidence`: what the file says about itself, forensic views, robustness, headline.
- `detector.ui`: what the Gradio and Streamlit apps share (view models, texts, classroom).
- `detector.serving`: ASGI middleware and upload policy of the apps.
- `detector.scale`: the batch scan engine and its Apache Beam pipeline.
- `detector.hub`: loading published checkpoints from the Hugging Face Hub.

Example:
    >>> import detector
    >>> [m.name for m in detector.list_models() if m.trained]      # doctest: +SKIP
    >>> result = detector.predict("photo.jpg")                     # doctest: +SKIP
    >>> result.p_fake, result.label                                # doctest: +SKIP
    >>> explanation = detector.explain("photo.jpg", method="gradcam")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.core.card import ModelCard
from detector.core.domain import domain_warnings
from detector.core.errors import (
    ChecksumError,
    DetectorError,
    ImageLoadError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotTrainedError,
    UnsafeModelError,
    UnsupportedMethodError,
)
from detector.core.heatmaps import DEFAULT_ALPHA, colorize, overlay_heatmap
from detector.core.images import (
    ALLOWED_FORMATS,
    HEIF_EXTENSIONS,
    IMAGE_EXTENSIONS,
    ImageSource,
    decode_image,
    load_image,
)
from detector.core.jpeg import JpegQualityEstimate, estimate_jpeg_quality
from detector.core.models import (
    ModelInfo,
    default_model_name,
    list_models,
    load_model,
    models_dir,
    resolve_model_names,
)
from detector.core.patches import patch_grid, patch_map, score_patches
from detector.core.results import Explanation, PatchScore, Prediction
from detector.core.spec import EXPLAIN_METHODS
from detector.evidence.assessment import Assessment, assess
from detector.evidence.forensics import (
    ELA_EXPLANATION,
    RESIDUAL_SPECTRUM_EXPLANATION,
    error_level_analysis,
    error_level_analysis_rgb,
    residual_spectrum,
    residual_spectrum_rgb,
)
from detector.evidence.metadata import EvidenceItem, EvidenceReport, inspect_file
from detector.evidence.stability import Stability, check_stability
from detector.evidence.stress import (
    FRAGILE_DEFINITION,
    ModelStress,
    StressResult,
    plot_stress,
    stress_test,
)
from detector.evidence.verdict import HEADLINE_FIELDS, Headline, Reason, headline
from detector.scale.batch import SCAN_FIELDS, ScanItem, ScanRow, expand_paths, scan

if TYPE_CHECKING:
    from detector.core.runtime import Detector

#: Public names imported on first use: the Hub loaders (they pull in ``huggingface_hub``).
_LAZY = {
    "fetch_from_hub": "detector.hub",
    "load_keras_from_hub": "detector.hub",
    "load_published_s1": "detector.hub",
    "load_s1_h5": "detector.hub",
}

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_ALPHA",
    "ELA_EXPLANATION",
    "EXPLAIN_METHODS",
    "FRAGILE_DEFINITION",
    "HEADLINE_FIELDS",
    "HEIF_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "RESIDUAL_SPECTRUM_EXPLANATION",
    "SCAN_FIELDS",
    "Assessment",
    "ChecksumError",
    "DetectorError",
    "EvidenceItem",
    "EvidenceReport",
    "Explanation",
    "Headline",
    "ImageLoadError",
    "ImageSource",
    "JpegQualityEstimate",
    "ModelCard",
    "ModelInfo",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelNotTrainedError",
    "ModelStress",
    "PatchScore",
    "Prediction",
    "Reason",
    "ScanItem",
    "ScanRow",
    "Stability",
    "StressResult",
    "UnsafeModelError",
    "UnsupportedMethodError",
    "assess",
    "check_stability",
    "colorize",
    "decode_image",
    "default_model_name",
    "domain_warnings",
    "error_level_analysis",
    "error_level_analysis_rgb",
    "estimate_jpeg_quality",
    "expand_paths",
    "explain",
    "fetch_from_hub",
    "headline",
    "inspect_file",
    "list_models",
    "load_image",
    "load_keras_from_hub",
    "load_model",
    "load_published_s1",
    "load_s1_h5",
    "models_dir",
    "overlay_heatmap",
    "patch_grid",
    "patch_map",
    "plot_stress",
    "predict",
    "predict_batch",
    "residual_spectrum",
    "residual_spectrum_rgb",
    "resolve_model_names",
    "scan",
    "score_patches",
    "stress_test",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def _resolve(model: str | Detector | None) -> Detector:
    if model is None or isinstance(model, str):
        return load_model(model)
    return model


def predict(image: ImageSource, model: str | Detector | None = None) -> Prediction:
    """Score one image with one model (by name, a loaded `Detector`, or None for the best).

    Raises:
        ImageLoadError: the image cannot be read (the error's ``code`` names why).
        ModelNotFoundError, ModelNotTrainedError, ModelLoadError: the model cannot be used.
    """
    return _resolve(model).predict(image)


def predict_batch(
    images: Sequence[ImageSource], model: str | Detector | None = None, batch_size: int = 32
) -> list[Prediction]:
    """Score several images with one model, in batches."""
    return _resolve(model).predict_batch(images, batch_size=batch_size)


def explain(
    image: ImageSource,
    model: str | Detector | None = None,
    method: str = "gradcam",
    *,
    alpha: float = DEFAULT_ALPHA,
    patch: int | None = None,
) -> Explanation:
    """Score an image and explain the score (``gradcam``, ``gradcam++`` or ``attention``).

    The verdict is the whole-image one `predict` gives. An image scored on several patches
    is explained one patch at a time: the heatmap covers that patch and is 0 elsewhere.

    Args:
        image: Any accepted image source.
        model: A model name, a loaded `Detector`, or None for the best trained model.
        method: ``gradcam``, ``gradcam++`` or ``attention`` (models with an attention layer).
        alpha: Heatmap opacity in the overlay, 0 to 1.
        patch: Index in ``prediction.patches`` of the patch to explain; None: the one with the
            highest P(fake). An image scored on a single view has only index 0.

    Returns:
        An `Explanation` with a float32 heatmap (H, W) in [0, 1] over the input image, an RGB
        overlay, the whole-image `Prediction`, and in ``patch`` the index of the view explained.

    Raises:
        UnsupportedMethodError: an unknown method or one the model lacks.
        ImageLoadError: the image cannot be read.
        IndexError: ``patch`` is not an index of the image's views.
    """
    return _resolve(model).explain(image, method, alpha=alpha, patch=patch)


def scan_paths(paths: Sequence[str | Path], models: Sequence[str] | None = None) -> list[ScanRow]:
    """Convenience: expand paths and scan them with the named models (default: the best)."""
    detectors = [load_model(name) for name in resolve_model_names(models)]
    return list(scan(expand_paths(paths), detectors))
