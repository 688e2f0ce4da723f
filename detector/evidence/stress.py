"""Stress test: does a model's verdict survive JPEG re-compression and downscaling?

`stress_test` re-scores one image, through each model's normal serving path
(``Detector.predict`` on an RGB array), after JPEG re-encoding at several qualities and after
downscaling by several factors, and flags a model as *fragile* on this image when its verdict
flips under mild changes. `plot_stress` draws the curves as a matplotlib Figure.

Fragile, precisely: the verdict is ``fake`` when P(fake) >= the model's threshold, else
``real`` (the uncertain band is ignored, so a move across the threshold counts). A model is
fragile on an image when the verdict on at least one *mild* variant differs from the verdict on
the untouched image; mild means JPEG quality >= `MILD_JPEG_QUALITY` (75) or downscaling to a
scale >= `MILD_SCALE` (0.5) of each side, excluding scale 1.0 (the image itself). Flips that
happen only under harsher changes are listed but do not make the model fragile. The label shown
for the untouched image (`ModelStress.baseline_verdict`) is the model card's own verdict
(`detector.core.card.label_for`, uncertain band included), the one its verdict card shows.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np
from PIL import Image

from detector.core.card import label_for
from detector.core.images import ImageSource, load_image
from detector.core.results import Prediction

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_JPEG_QUALITIES: tuple[int, ...] = (95, 85, 75, 65, 50, 40, 30)
DEFAULT_SCALES: tuple[float, ...] = (1.0, 0.75, 0.5, 0.35, 0.25)
#: JPEG qualities at or above this are "mild" changes.
MILD_JPEG_QUALITY = 75
#: Downscales to at least this fraction of each side are "mild" changes.
MILD_SCALE = 0.5
#: Variants whose shorter side would fall below this many pixels are skipped (NaN).
MIN_VARIANT_SIDE = 8

#: Plain-language definition for UIs.
FRAGILE_DEFINITION = (
    f"A model is fragile on this image when its verdict (fake if P(fake) >= its threshold, "
    f"else real) flips after a mild change: JPEG re-compression at quality >= "
    f"{MILD_JPEG_QUALITY}, or downscaling to >= {MILD_SCALE:.0%} of each side."
)


class ScoringModel(Protocol):
    """What `stress_test` needs from a model: a name and ``predict`` on an RGB uint8 array."""

    name: str

    def predict(self, image: np.ndarray) -> Prediction:
        """Score one RGB uint8 image."""
        ...


@dataclass(frozen=True)
class ModelStress:
    """One model's P(fake) under every variant of one image.

    Attributes:
        model: Model name.
        threshold: The model's decision threshold on P(fake).
        baseline: P(fake) of the untouched image.
        jpeg: P(fake) per JPEG quality, aligned with `StressResult.jpeg_qualities`.
        scale: P(fake) per scale, aligned with `StressResult.scales` (NaN when skipped).
        fragile: Whether the verdict flips under a mild change (see the module docstring).
        flips: Every variant whose verdict differs from the baseline's, e.g. ``"jpeg q=65"``
            or ``"scale 0.35"``, mild or not.
        uncertain_band: The model's uncertain band, for the labels shown beside its card.
    """

    model: str
    threshold: float
    baseline: float
    jpeg: tuple[float, ...]
    scale: tuple[float, ...]
    fragile: bool
    flips: tuple[str, ...] = ()
    uncertain_band: tuple[float, float] = (0.5, 0.5)

    @property
    def baseline_verdict(self) -> str:
        """The label of the untouched image, by the model card's rule (`label_for`): ``fake``,
        ``real`` or ``uncertain`` (inside the uncertain band), as the model's verdict card says."""
        return label_for(self.baseline, self.threshold, self.uncertain_band)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        return {
            "model": self.model,
            "threshold": float(self.threshold),
            "baseline": _num(self.baseline),
            "baseline_verdict": self.baseline_verdict,
            "jpeg": [_num(v) for v in self.jpeg],
            "scale": [_num(v) for v in self.scale],
            "fragile": self.fragile,
            "flips": list(self.flips),
        }


@dataclass(frozen=True)
class StressResult:
    """The outcome of `stress_test`.

    Attributes:
        jpeg_qualities: The JPEG qualities tried, in the given order.
        scales: The downscale factors tried, in the given order.
        models: One `ModelStress` per model, in the given order.
        image_size: (height, width) of the untouched image.
        definition: What "fragile" means (`FRAGILE_DEFINITION`).
    """

    jpeg_qualities: tuple[int, ...]
    scales: tuple[float, ...]
    models: tuple[ModelStress, ...]
    image_size: tuple[int, int]
    definition: str = field(default=FRAGILE_DEFINITION)

    def model(self, name: str) -> ModelStress:
        """The result of the model with this name.

        Raises:
            KeyError: no such model in the result.
        """
        for item in self.models:
            if item.model == name:
                return item
        raise KeyError(name)

    @property
    def fragile_models(self) -> tuple[str, ...]:
        """Names of the models that are fragile on this image."""
        return tuple(m.model for m in self.models if m.fragile)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "jpeg_qualities": list(self.jpeg_qualities),
            "scales": list(self.scales),
            "image_size": list(self.image_size),
            "definition": self.definition,
            "models": [m.to_dict() for m in self.models],
        }


def verdict(p_fake: float, threshold: float) -> str:
    """``fake`` if ``p_fake >= threshold`` else ``real`` (the stress test's binary verdict)."""
    return "fake" if p_fake >= threshold else "real"


def is_mild(kind: str, value: float) -> bool:
    """Whether a variant counts as a mild change (``kind`` is ``"jpeg"`` or ``"scale"``)."""
    if kind == "jpeg":
        return value >= MILD_JPEG_QUALITY
    if kind == "scale":
        return MILD_SCALE <= value < 1.0
    raise ValueError(f"unknown variant kind {kind!r}")


def jpeg_variant(image: np.ndarray, quality: int) -> np.ndarray:
    """The RGB uint8 image after a JPEG round trip at ``quality`` (Pillow, default 4:2:0)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.ascontiguousarray(np.asarray(decoded.convert("RGB"), dtype=np.uint8))


def scale_variant(image: np.ndarray, scale: float) -> np.ndarray | None:
    """The image downscaled by ``scale`` per side (OpenCV area interpolation).

    Returns:
        The resized RGB uint8 image, the image itself for ``scale >= 1``, or None when the
        shorter side would fall below `MIN_VARIANT_SIDE` pixels.
    """
    if scale >= 1.0:
        return image
    height, width = image.shape[:2]
    new_h, new_w = round(height * scale), round(width * scale)
    if min(new_h, new_w) < MIN_VARIANT_SIDE:
        return None
    return np.ascontiguousarray(cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA))


def stress_test(
    image: ImageSource,
    detectors: ScoringModel | Sequence[ScoringModel],
    jpeg_qualities: Sequence[int] = DEFAULT_JPEG_QUALITIES,
    scales: Sequence[float] = DEFAULT_SCALES,
) -> StressResult:
    """Re-score an image under JPEG re-encoding and downscaling, with each model.

    Args:
        image: Any accepted image source.
        detectors: One or more loaded models (`detector.core.runtime.Detector` or anything with
            ``name`` and ``predict(rgb_uint8_array) -> Prediction``).
        jpeg_qualities: JPEG qualities to try (1-100).
        scales: Downscale factors per side to try, in (0, 1]; 1.0 is the image itself.

    Returns:
        A `StressResult`; see the module docstring for the definition of ``fragile``.

    Raises:
        ImageLoadError: if the image cannot be read.
        ValueError: for a quality outside 1-100, a scale outside (0, 1], or no detectors.
    """
    qualities = tuple(int(q) for q in jpeg_qualities)
    factors = tuple(float(s) for s in scales)
    if any(not 1 <= q <= 100 for q in qualities):
        raise ValueError(f"JPEG qualities must be in 1..100, got {qualities}")
    if any(not 0.0 < s <= 1.0 for s in factors):
        raise ValueError(f"scales must be in (0, 1], got {factors}")
    models = [detectors] if hasattr(detectors, "predict") else list(detectors)  # type: ignore[arg-type]
    if not models:
        raise ValueError("stress_test needs at least one detector")

    array = load_image(image)
    jpeg_images = [jpeg_variant(array, q) for q in qualities]
    scaled_images = [scale_variant(array, s) for s in factors]

    results = []
    for det in models:
        baseline_pred = det.predict(array)
        baseline = float(baseline_pred.p_fake)
        threshold = float(baseline_pred.threshold)
        jpeg = tuple(float(det.predict(im).p_fake) for im in jpeg_images)
        scale = tuple(
            float(det.predict(im).p_fake) if im is not None else math.nan for im in scaled_images
        )
        item = _summarise(det.name, threshold, baseline, qualities, jpeg, factors, scale)
        band = tuple(float(v) for v in baseline_pred.uncertain_band)
        results.append(replace(item, uncertain_band=band))
    return StressResult(
        jpeg_qualities=qualities,
        scales=factors,
        models=tuple(results),
        image_size=(int(array.shape[0]), int(array.shape[1])),
    )


def _summarise(
    name: str,
    threshold: float,
    baseline: float,
    qualities: tuple[int, ...],
    jpeg: tuple[float, ...],
    factors: tuple[float, ...],
    scale: tuple[float, ...],
) -> ModelStress:
    base = verdict(baseline, threshold)
    flips: list[str] = []
    fragile = False
    for kind, values, points in (("jpeg", qualities, jpeg), ("scale", factors, scale)):
        for value, p_fake in zip(values, points, strict=True):
            if math.isnan(p_fake) or verdict(p_fake, threshold) == base:
                continue
            flips.append(f"jpeg q={value}" if kind == "jpeg" else f"scale {value:g}")
            fragile = fragile or is_mild(kind, value)
    return ModelStress(
        model=name,
        threshold=threshold,
        baseline=baseline,
        jpeg=jpeg,
        scale=scale,
        fragile=fragile,
        flips=tuple(flips),
    )


def plot_stress(result: StressResult, *, title: str | None = None) -> Figure:
    """P(fake) against JPEG quality and against scale, one line per model.

    The untouched image is drawn at quality "orig" on the left panel; each model's threshold is
    a dashed line of the same colour; fragile models are marked in the legend, which stands
    outside the panels (right of the right one), clear of their titles and points.

    Args:
        result: The output of `stress_test`.
        title: Optional figure title.

    Returns:
        A matplotlib Figure (not attached to pyplot; save it with ``fig.savefig``).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_q, ax_s = fig.subplots(1, 2, sharey=True)
    colours = [f"C{i % 10}" for i in range(len(result.models))]
    orig_x = 100
    for colour, item in zip(colours, result.models, strict=True):
        label = item.model + (" (fragile)" if item.fragile else "")
        xs = [orig_x, *result.jpeg_qualities]
        ys = [item.baseline, *item.jpeg]
        order = np.argsort(xs)[::-1]
        ax_q.plot(np.array(xs)[order], np.array(ys)[order], "o-", color=colour, label=label)
        ax_s.plot(result.scales, item.scale, "o-", color=colour, label=label)
        for ax in (ax_q, ax_s):
            ax.axhline(item.threshold, color=colour, linestyle="--", linewidth=1, alpha=0.8)
    ax_q.set_xlim(orig_x + 3, min([*result.jpeg_qualities, orig_x]) - 3)
    ticks = sorted({orig_x, *result.jpeg_qualities}, reverse=True)
    ax_q.set_xticks(ticks, ["orig" if t == orig_x else str(t) for t in ticks])
    ax_q.axvspan(orig_x + 3, MILD_JPEG_QUALITY - 0.5, color="0.9", zorder=0)
    ax_q.set_xlabel("JPEG quality (re-encoded)")
    ax_q.set_ylabel("P(fake)")
    ax_s.set_xlim(max(result.scales) + 0.03, min(result.scales) - 0.03)
    ax_s.axvspan(max(result.scales) + 0.03, MILD_SCALE - 0.005, color="0.9", zorder=0)
    ax_s.set_xlabel("scale (fraction of each side)")
    for ax in (ax_q, ax_s):
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
    ax_q.set_title("JPEG re-compression (grey: mild)")
    ax_s.set_title("Downscaling (grey: mild)")
    # outside the panels, on the right: inside one it would cover curves or a title; the
    # constrained layout narrows the panels to make room for it
    ax_s.legend(
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize="small",
        title="dashed: threshold",
    )
    if title:
        fig.suptitle(title)
    return fig


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)
