"""The result types that flow from `detector` to the CLI, both apps and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from detector.core.heatmaps import DEFAULT_ALPHA, overlay_heatmap

Label = Literal["fake", "real", "uncertain"]

#: A region of an image: (top, left, bottom, right) in pixels, bottom and right exclusive.
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PatchScore:
    """One view of an image that the model scored: a patch, or the whole picture resized.

    Attributes:
        x, y: Left and top of the patch in the image, in pixels.
        size: Side of the square patch in image pixels (a patch smaller than the model input
            was enlarged to it; larger ones are read at native resolution). For the whole-image
            view, the image's longer side, so that `box` clipped to the image is all of it.
        p_fake: This view's calibrated P(fake) on its own (the model's temperature applied).
        fake_logit: This view's logit of "fake", before the temperature.
        whole_image: The view is the whole picture resized to the model input, not a patch.
        scene_view: The view is the scene view: the picture shrunk to the scale the model
            learnt scenes at, its central square (``x``, ``y``, ``size`` in image pixels);
            it carries half the whole-image score (`detector.core.patches.combine`).
    """

    x: int
    y: int
    size: int
    p_fake: float
    fake_logit: float
    whole_image: bool = False
    scene_view: bool = False

    @property
    def box(self) -> Box:
        """(top, left, bottom, right); clip to the image for whole-image views."""
        return self.y, self.x, self.y + self.size, self.x + self.size

    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-ready dict (``whole_image`` and ``scene_view`` only when true)."""
        data: dict[str, Any] = {
            "x": int(self.x),
            "y": int(self.y),
            "size": int(self.size),
            "p_fake": round(float(self.p_fake), 4),
            "fake_logit": round(float(self.fake_logit), 4),
        }
        if self.whole_image:
            data["whole_image"] = True
        if self.scene_view:
            data["scene_view"] = True
        return data


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
        patches: The views the verdict combines (`detector.core.patches`): one per scored patch,
            with its own calibrated P(fake), in reading order (a small image has one, today's
            centre crop). ``p_fake`` is their combination, not any one of them; their spread
            shows whether one region stands out.
    """

    model: str
    p_fake: float
    label: Label
    threshold: float
    seconds: float
    uncertain_band: tuple[float, float] = (0.5, 0.5)
    warnings: tuple[str, ...] = ()
    patches: tuple[PatchScore, ...] = ()

    @property
    def top_patch(self) -> int | None:
        """Index in ``patches`` of the view with the highest P(fake) (None without patches)."""
        if not self.patches:
            return None
        return max(range(len(self.patches)), key=lambda i: self.patches[i].fake_logit)

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
            "patches": [patch.to_dict() for patch in self.patches],
        }


@dataclass(frozen=True, eq=False)
class Explanation:
    """Where a model looked: a heatmap over the input image and a colour overlay.

    Attributes:
        model: Name of the model explained.
        method: ``gradcam``, ``gradcam++`` or ``attention``.
        heatmap: float32 array (H, W) in [0, 1], the size of the input image. It explains one
            view, ``prediction.patches[patch]``, and is 0 outside that view's box.
        prediction: The whole-image prediction (every patch), computed with the explanation.
        image: The RGB uint8 input image (H, W, 3) the heatmap lies over.
        alpha: Opacity of the heatmap in `overlay`.
        patch: Index in ``prediction.patches`` of the view explained (by default the one with
            the highest P(fake)).
    """

    model: str
    method: str
    heatmap: np.ndarray = field(repr=False)
    prediction: Prediction
    image: np.ndarray = field(repr=False)
    alpha: float = DEFAULT_ALPHA
    patch: int = 0

    @cached_property
    def overlay(self) -> np.ndarray:
        """uint8 RGB array (H, W, 3): the image with the heatmap blended over it at ``alpha``.

        Blended on first use (the apps blend a display-size copy instead, so a large image is
        never blended at full size for nothing).
        """
        return overlay_heatmap(self.image, self.heatmap, alpha=self.alpha)
