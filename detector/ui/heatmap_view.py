"""Heatmaps as both apps show them: at display size, with a note on what they mean and do not.

`heatmap_view` draws an `Explanation`'s heatmap over the image at display size (at most
`DISPLAY_MAX_SIDE` pixels a side: the heatmap is computed on the full image first, then shrunk);
`patch_view` shows a prediction's per-patch scores as a map with its caption; `heatmap_note` says,
in plain words, what a map of each method shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from detector.core.heatmaps import DEFAULT_ALPHA, colorize, overlay_heatmap
from detector.core.patches import patch_map
from detector.core.results import Explanation, PatchScore, Prediction
from detector.evidence.verdict import Headline
from detector.ui.texts import (
    DISPLAY_MAX_SIDE,
    METHOD_TITLES,
    percent,
)

_NOTE_COMMON = (
    "**What it does not mean.** It is not a map of edited or generated pixels, and a hot area "
    "is not proof that that part of the image is fake. The colours are relative to this image "
    "only: the strongest spot is always red, even when the score is low, so read the verdict "
    "first and the colours second. The map is coarse (the model sees the image as a small grid "
    "of blocks), so fine detail is blurred. Other models, or another method, can highlight "
    "different places for the same image: that tells you about the models, not the image."
)
_NOTE_WHAT = {
    "gradcam": (
        "**What the heatmap means.** Red marks the regions that pushed this model's score "
        "towards *AI-generated* the most; blue marks regions that pushed it little or not at all "
        "(Grad-CAM: the model's last convolutional features, weighted by how much they raise the "
        "*AI-generated* score). When the verdict is *real*, it shows what little evidence for "
        "*AI-generated* the model found."
    ),
    "gradcam++": (
        "**What the heatmap means.** Red marks the regions that pushed this model's score "
        "towards *AI-generated* the most (Grad-CAM++: like Grad-CAM, but it weighs each "
        "feature by where it raises the score, so several separate regions can light up). When "
        "the verdict is *real*, it shows what little evidence for *AI-generated* the model found."
    ),
    "attention": (
        "**What the attention map means.** It shows where the model's attention layer chose to "
        "look before deciding: red areas weigh most in its decision. It says where the model "
        "looked, not whether what it saw there looked real or generated."
    ),
}


def heatmap_note(method: str = "gradcam") -> str:
    """The plain-language note (Markdown) on what a heatmap means and does not mean."""
    return _NOTE_WHAT.get(method, _NOTE_WHAT["gradcam"]) + "\n\n" + _NOTE_COMMON


def display_size(height: int, width: int, max_side: int = DISPLAY_MAX_SIDE) -> tuple[int, int]:
    """(height, width) scaled down so the longer side is at most ``max_side``."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_for_display(
    image: np.ndarray, heatmap: np.ndarray | None = None, max_side: int = DISPLAY_MAX_SIDE
) -> tuple[np.ndarray, np.ndarray | None]:
    """Shrink an RGB image (and its [0, 1] heatmap) for display; small images are unchanged."""
    height, width = image.shape[:2]
    new_h, new_w = display_size(height, width, max_side)
    if (new_h, new_w) == (height, width):
        return image, heatmap
    small = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.LANCZOS))
    small_map = None if heatmap is None else _shrink_heatmap(heatmap, new_h, new_w)
    return small, small_map


def _shrink_heatmap(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    if heatmap.shape == (height, width):
        return heatmap
    resized = Image.fromarray(heatmap.astype(np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class PatchView:
    """The per-patch scores of a prediction, ready to show beside its explanation.

    A ``native_crop`` model scores a large image on up to 16 native-resolution patches and
    averages their logits into the verdict (`detector.core.patches`); this is what the apps show of
    those patches.

    Attributes:
        image: RGB uint8 at display size: the picture with each patch's box coloured by its own
            P(fake) (`detector.patch_map`); None when the image had a single view (no map).
        caption: One line: how the image was scored and, with several patches, the most
            suspicious one and which patch the explanation explains.
        count: Patches scored at full resolution (a resized whole-picture or scene view not
            counted).
        single: The image had a single view (one patch, or the whole picture resized).
        explained: Which patch the explanation explains, for the overlay's caption (e.g.
            ``"explains the patch at (112, 32), the most suspicious of 16"``); "" when single.
    """

    image: np.ndarray | None = field(repr=False)
    caption: str
    count: int
    single: bool
    explained: str = ""


def _place(patch: PatchScore) -> str:
    if patch.whole_image:
        return "on the whole picture"
    if patch.scene_view:
        return "on the picture shrunk (its central square)"
    return f"at ({patch.x}, {patch.y})"


def _single_caption(patches: Sequence[PatchScore]) -> str:
    if not patches:
        return ""
    (patch,) = patches
    if patch.whole_image:
        return "One view: the model scored the whole picture, resized to its input size."
    return (
        f"One patch: the model scored the central crop ({patch.size} x {patch.size} px at "
        f"({patch.x}, {patch.y}))."
    )


def patch_view(
    image: np.ndarray,
    prediction: Prediction,
    *,
    size: tuple[int, int] | None = None,
    explained: int | None = None,
    method: str = "gradcam",
) -> PatchView:
    """The patch map and its caption for one prediction.

    Args:
        image: RGB uint8: the scored image, or its display-size copy (then give ``size``).
        prediction: The whole-image prediction (`Prediction.patches`).
        size: (height, width) of the scored image, when ``image`` is a resized copy.
        explained: Index in ``prediction.patches`` of the view an explanation explains (None:
            no explanation is shown).
        method: The explanation's method (named in the caption).
    """
    patches = prediction.patches
    if len(patches) <= 1:
        return PatchView(None, _single_caption(patches), len(patches), single=True)
    crops = [p for p in patches if not (p.whole_image or p.scene_view)]
    sides = {p.size for p in crops}
    what = f"{len(crops)} patch{'es' if len(crops) != 1 else ''}"
    what += f" of {sides.pop()} px" if len(sides) == 1 else ""
    what += " at full resolution"
    what += " and the whole picture resized" if any(p.whole_image for p in patches) else ""
    if any(p.scene_view for p in patches):
        what += " and the picture shrunk to the scale the model learnt (half of the score)"
    top = prediction.top_patch
    assert top is not None
    caption = (
        f"{what}, scores averaged: highest P(fake) {percent(patches[top].p_fake)} "
        f"{_place(patches[top])}"
    )
    note = ""
    if explained is not None and 0 <= explained < len(patches):
        title = METHOD_TITLES.get(method, method)
        chosen = patches[explained]
        kind = "view" if chosen.whole_image or chosen.scene_view else "patch"
        if explained == top:
            caption += f"; the {title} explains that {kind}"
            rank = f"the most suspicious of {len(patches)}"
        else:
            caption += f"; the {title} explains the {kind} {_place(chosen)}"
            rank = f"one of {len(patches)}"
        note = f"explains the {kind} {_place(chosen)}, {rank}"
    return PatchView(
        patch_map(image, prediction, size=size), caption + ".", len(crops), False, note
    )


@dataclass(frozen=True, eq=False)
class HeatmapView:
    """An explanation ready to show: display-size image, heatmap and their blends.

    ``patches`` is the prediction's per-patch scores (`PatchView`), made by `heatmap_view`;
    ``headline`` the combined headline of the detection it belongs to, when the app built one.
    """

    method: str
    image: np.ndarray = field(repr=False)
    heatmap: np.ndarray = field(repr=False)
    patches: PatchView | None = field(default=None, repr=False)
    headline: Headline | None = field(default=None, repr=False)

    def overlay(self, opacity: float = DEFAULT_ALPHA) -> np.ndarray:
        """The image with the heatmap blended over it at ``opacity`` (0 to 1)."""
        return overlay_heatmap(self.image, self.heatmap, alpha=float(np.clip(opacity, 0.0, 1.0)))

    def raw(self) -> np.ndarray:
        """The heatmap alone, coloured."""
        return colorize(self.heatmap)


def heatmap_view(
    image: np.ndarray, explanation: Explanation, max_side: int = DISPLAY_MAX_SIDE
) -> HeatmapView:
    """A display-size view of an explanation over its (full-size) input image, with the
    prediction's patch map drawn on the same display-size copy."""
    small, small_map = resize_for_display(image, explanation.heatmap, max_side)
    assert small_map is not None
    patches = patch_view(
        small,
        explanation.prediction,
        size=image.shape[:2],
        explained=explanation.patch,
        method=explanation.method,
    )
    return HeatmapView(explanation.method, small, small_map, patches)


def heatmap_views(
    image: np.ndarray, explanations: Sequence[Explanation], max_side: int = DISPLAY_MAX_SIDE
) -> list[HeatmapView]:
    """`heatmap_view` of several explanations of one image (one per model), shrinking the image
    once instead of once per explanation."""
    small, _ = resize_for_display(image, None, max_side)
    height, width = small.shape[:2]
    return [
        HeatmapView(e.method, small, _shrink_heatmap(e.heatmap, height, width))
        for e in explanations
    ]
