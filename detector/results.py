"""The result types that flow from `detector` to the CLI, both apps and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

Label = Literal["fake", "real", "uncertain"]


@dataclass(frozen=True)
class Prediction:
    """One model's verdict on one image.

    Attributes:
        model: Name of the model that produced it.
        p_fake: Calibrated probability that the image is AI-generated, in [0, 1].
        label: ``fake``, ``real``, or ``uncertain`` when ``p_fake`` falls in the model's
            uncertain band.
        threshold: The decision threshold on ``p_fake``.
        seconds: Wall time spent on this image (preprocessing + inference), in seconds.
        uncertain_band: The (low, high) band of ``p_fake`` reported as uncertain.
        warnings: Plain-language notes on why the score may not be trustworthy for this input.
    """

    model: str
    p_fake: float
    label: Label
    threshold: float
    seconds: float
    uncertain_band: tuple[float, float] = (0.5, 0.5)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "model": self.model,
            "p_fake": round(float(self.p_fake), 6),
            "label": self.label,
            "threshold": float(self.threshold),
            "seconds": round(float(self.seconds), 6),
            "uncertain_band": [float(v) for v in self.uncertain_band],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, eq=False)
class Explanation:
    """Where a model looked: a heatmap over the input image and a colour overlay.

    Attributes:
        model: Name of the model explained.
        method: ``gradcam``, ``gradcam++`` or ``attention``.
        heatmap: float32 array (H, W) in [0, 1], the size of the input image.
        prediction: The prediction computed in the same forward pass.
        image: The RGB uint8 input image (H, W, 3) the heatmap lies over.
        alpha: Opacity of the heatmap in `overlay`.
    """

    model: str
    method: str
    heatmap: np.ndarray = field(repr=False)
    prediction: Prediction
    image: np.ndarray = field(repr=False)
    alpha: float = 0.45

    @cached_property
    def overlay(self) -> np.ndarray:
        """uint8 RGB array (H, W, 3): the image with the heatmap blended over it at ``alpha``.

        Blended on first use (the apps blend a display-size copy instead, so a large image is
        never blended at full size for nothing).
        """
        from detector.explain import overlay_heatmap

        return overlay_heatmap(self.image, self.heatmap, alpha=self.alpha)
