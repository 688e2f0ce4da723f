"""The classroom's robustness curves: how a score moves as an image is compressed or shrunk.

`degrade` and `degraded_file` make the JPEG-compressed (`JPEG_QUALITIES`) or downsized
(`SIZES`) copy a visitor can look at; `stress_curves` scores every level for each model
(`detector.ui.presentation.run_stress`), and `plot_curves` draws them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from detector.core.images import load_image
from detector.evidence.stress import (
    StressResult,
    plot_stress,
    scale_variant,
)
from detector.ui.presentation import (
    StressOutcome,
    percent,
    run_stress,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: JPEG qualities of the compression curve, from light to crushing (the untouched image is
#: drawn at 100 as "orig").
JPEG_QUALITIES: tuple[int, ...] = (95, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5)
#: Sizes of the downsizing curve, in percent of the original width and height.
SIZES: tuple[int, ...] = (100, 85, 70, 50, 35, 25, 15, 10)
#: The two ways an image is degraded in the robustness demo.
DEGRADATIONS: dict[str, str] = {"jpeg": "JPEG quality", "resize": "Downsizing"}


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """An image encoded as JPEG at ``quality`` (1-100), in memory.

    The encoding is the stress test's (`detector.evidence.stress.jpeg_variant`): the same pixels.
    """
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(np.clip(quality, 1, 100)))
    return buffer.getvalue()


def jpeg_recompress(image: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """Re-encode an image as JPEG at ``quality`` (1-100) in memory: (decoded image, bytes)."""
    data = jpeg_bytes(image, quality)
    return load_image(data), len(data)


def downsize(image: np.ndarray, percent_side: float) -> np.ndarray | None:
    """Shrink an image to ``percent_side`` % of each side, as the stress test does.

    Returns None when the shorter side would fall below `detector.evidence.stress.MIN_VARIANT_SIDE`.
    """
    return scale_variant(image, float(percent_side) / 100.0)


def degrade(image: np.ndarray, kind: str, level: float) -> np.ndarray | None:
    """The image after one degradation: ``jpeg`` at quality ``level`` or ``resize`` to level %."""
    if kind == "jpeg":
        return jpeg_recompress(image, int(level))[0]
    if kind == "resize":
        return downsize(image, float(level))
    raise ValueError(f"unknown degradation {kind!r}; use one of: {', '.join(DEGRADATIONS)}")


def degraded_file(image: np.ndarray, kind: str, level: float) -> bytes | None:
    """The degraded image as a file, in memory: JPEG at quality ``level``, or PNG at level %.

    None when the image is too small to be downsized that far.
    """
    if kind == "jpeg":
        return jpeg_bytes(image, int(level))
    small = degrade(image, kind, level)
    if small is None:
        return None
    buffer = io.BytesIO()
    Image.fromarray(small).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class StressRun(StressOutcome):
    """`detector.ui.presentation.StressOutcome` plus the lesson's per-model summary."""

    def summary(self, kind: str = "jpeg") -> str:
        """A Markdown list: how far each model's P(fake) moved under ``kind``, and its flips."""
        lines = []
        for item in self.result.models if self.result else ():
            values = [v for v in (item.jpeg if kind == "jpeg" else item.scale) if v == v]
            low, high = min([item.baseline, *values]), max([item.baseline, *values])
            flips = [f for f in item.flips if f.startswith("jpeg" if kind == "jpeg" else "scale")]
            moved = (
                f"its verdict flips at {', '.join(flips)}" if flips else "its verdict never flips"
            )
            fragile = " **Fragile on this image.**" if item.fragile else ""
            lines.append(
                f"`{item.model}`: P(AI-generated) between {percent(low)} and {percent(high)} "
                f"(untouched image {percent(item.baseline)}); {moved}.{fragile}"
            )
        lines.extend(f"`{name}` failed: {error}" for name, error in self.errors.items())
        return "\n".join(f"- {line}" for line in lines)


def stress_curves(image: np.ndarray, names: Sequence[str]) -> StressRun:
    """Run `detector.evidence.stress.stress_test` at `JPEG_QUALITIES` and `SIZES`, model by model.

    A model that cannot load or score is listed in ``errors`` and the others go on.
    """
    outcome = run_stress(image, names, JPEG_QUALITIES, tuple(size / 100.0 for size in SIZES))
    return StressRun(outcome.result, outcome.errors)


def plot_curves(
    result: StressResult, kind: str | None = None, level: float | None = None
) -> Figure:
    """`detector.evidence.stress.plot_stress`, with the slider's position marked on its panel.

    Args:
        result: The stress result.
        kind: ``jpeg`` or ``resize``: the panel to mark.
        level: The JPEG quality, or the size in percent, to mark with a vertical line.
    """
    fig = plot_stress(result)
    axes = fig.get_axes()
    if kind in DEGRADATIONS and level is not None and len(axes) >= 2:
        axis = axes[0] if kind == "jpeg" else axes[1]
        x = float(level) if kind == "jpeg" else float(level) / 100.0
        axis.axvline(x, color="#212121", linestyle=":", linewidth=2)
        axis.set_title(axis.get_title(), fontweight="bold")
    return fig


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """A matplotlib figure rendered to PNG bytes (in memory)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
