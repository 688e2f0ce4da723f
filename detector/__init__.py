"""Detect AI-generated images with explainable Keras models.

This module is the public API: the apps, the CLI and user code import only from here.

Example:
    >>> import detector
    >>> [m.name for m in detector.list_models() if m.trained]      # doctest: +SKIP
    >>> result = detector.predict("photo.jpg")                     # doctest: +SKIP
    >>> result.p_fake, result.label                                # doctest: +SKIP
    >>> explanation = detector.explain("photo.jpg", method="gradcam")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from detector.card import ModelCard
from detector.errors import (
    ChecksumError,
    DetectorError,
    ImageLoadError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotTrainedError,
    UnsafeModelError,
    UnsupportedMethodError,
)
from detector.explain import colorize, overlay_heatmap
from detector.images import ALLOWED_FORMATS, ImageSource, decode_image, load_image
from detector.models import ModelInfo, default_model_name, list_models, load_model, models_dir
from detector.results import Explanation, Prediction
from detector.scan import SCAN_FIELDS, ScanRow, expand_paths, scan

if TYPE_CHECKING:
    from detector.runtime import Detector

__all__ = [
    "ALLOWED_FORMATS",
    "SCAN_FIELDS",
    "ChecksumError",
    "DetectorError",
    "Explanation",
    "ImageLoadError",
    "ImageSource",
    "ModelCard",
    "ModelInfo",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelNotTrainedError",
    "Prediction",
    "ScanRow",
    "UnsafeModelError",
    "UnsupportedMethodError",
    "colorize",
    "decode_image",
    "default_model_name",
    "expand_paths",
    "explain",
    "list_models",
    "load_image",
    "load_model",
    "models_dir",
    "overlay_heatmap",
    "predict",
    "predict_batch",
    "scan",
]


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
    alpha: float = 0.45,
) -> Explanation:
    """Score an image and explain the score (``gradcam``, ``gradcam++`` or ``attention``).

    Returns:
        An `Explanation` with a float32 heatmap (H, W) in [0, 1] over the input image, an RGB
        overlay, and the `Prediction` from the same forward pass.
    """
    return _resolve(model).explain(image, method, alpha=alpha)


def scan_paths(paths: Sequence[str | Path], models: Sequence[str] | None = None) -> list[ScanRow]:
    """Convenience: expand paths and scan them with the named models (default: the best)."""
    detectors = [load_model(name) for name in (models or [default_model_name()])]
    return list(scan(expand_paths(paths), detectors))
