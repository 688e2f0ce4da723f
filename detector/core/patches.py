"""Whole-image scoring: the patches a native-resolution model reads, and one verdict from them.

A model trained on ``native_crop`` patches reads a size x size patch at the image's own
resolution. On a large photo a single central patch is a tiny fraction of the pixels, so a
large image is scored on a regular grid of patches spread over it (`patch_grid`), all run
through the model in one batch, and their logits are combined into one calibrated P(fake)
(`combine`, then the model's temperature). An image too small to hold two patches side by side
gets exactly the one centre crop it always got, so its score is unchanged. A card may add one
view at another scale: the whole picture resized (``whole_view``), or the *scene view*, the
picture shrunk to the scale the model learnt scenes at (``scene_side``, `scene_view`).

`score_patches` is the same computation without the model card's threshold and labels, for
evaluation and recalibration; `patch_map` draws the per-patch scores over the picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np
from scipy.special import expit

from detector.core.heatmaps import DEFAULT_ALPHA, colorize, place_on_image
from detector.core.images import ImageSource, load_image
from detector.core.results import Box, PatchScore, Prediction
from detector.core.spec import Preprocessing

if TYPE_CHECKING:
    from detector.core.runtime import Detector

#: Most patches one image is scored on (the default of `patch_grid`).
MAX_PATCHES = 16
#: Most patches along one side of the image.
MAX_PER_SIDE = 4


def patch_grid(
    height: int, width: int, size: int, *, max_patches: int = MAX_PATCHES, grid: int = 1
) -> list[Box]:
    """Native-resolution size x size boxes spread evenly over an H x W image.

    An image whose shorter side holds two patches (``min(height, width) >= 2 * size``) gets a
    regular grid of ``ceil(side / size)`` boxes per side, at most `MAX_PER_SIDE` per side and
    ``max_patches`` in all (fewer per side, the grid's shape kept as close as possible to the
    image's). The first and last boxes of a row or column touch the image's edges and the
    others are evenly spaced between them, so they overlap when the side is not a multiple of
    ``size``; up to `MAX_PER_SIDE` patches per side the boxes cover the image (but for the
    last ``grid - 1`` pixels, when ``size`` is a multiple of ``grid``), beyond that they are
    evenly spread samples. Every top-left corner is rounded down to a multiple of ``grid``
    (8 keeps a block-DCT model's patches on JPEG's 8 x 8 grid).

    Any smaller image gets exactly one box: the centre crop `Preprocessing.crop_box` takes
    (for an image smaller than ``size``, the centred square of its shorter side, which the
    model input enlarges), so small images score exactly as a single crop does.

    Args:
        height, width: Image size in pixels.
        size: Side of the model input.
        max_patches: Most boxes returned (at least 1).
        grid: Corners are multiples of this many pixels.

    Returns:
        Boxes (top, left, bottom, right) in reading order, without duplicates.
    """
    if max_patches < 1:
        raise ValueError(f"max_patches must be at least 1, got {max_patches}")
    single = Preprocessing(size=size, resize="native_crop", grid=grid)  # validates size, grid
    if min(height, width) < 2 * size or max_patches == 1:
        return [single.crop_box(height, width)]
    rows, cols = _grid_shape(
        min(math.ceil(height / size), MAX_PER_SIDE),
        min(math.ceil(width / size), MAX_PER_SIDE),
        max_patches,
        height / width,
    )
    tops = _positions(height, size, rows, grid)
    lefts = _positions(width, size, cols, grid)
    boxes = [(top, left, top + size, left + size) for top in tops for left in lefts]
    return list(dict.fromkeys(boxes))


def _grid_shape(rows: int, cols: int, max_patches: int, aspect: float) -> tuple[int, int]:
    """The most patches r x c (r <= rows, c <= cols, r * c <= max_patches); among as many, the
    grid whose shape r / c is closest to the image's ``aspect`` (height / width)."""
    best: tuple[int, float, int, int] | None = None
    for r in range(1, rows + 1):
        c = min(cols, max_patches // r)
        if c < 1:
            break
        key = (r * c, -abs(math.log(r / c) - math.log(aspect)), r, c)
        if best is None or key[:2] > best[:2]:
            best = key
    assert best is not None
    return best[2], best[3]


def _positions(length: int, size: int, n: int, grid: int) -> list[int]:
    """``n`` starts of size-long boxes along a side, evenly spread, rounded down to ``grid``."""
    if n == 1:
        starts = [(length - size) // 2]
    else:
        span = length - size
        starts = [(2 * i * span + n - 1) // (2 * (n - 1)) for i in range(n)]  # rounded
    return [start - start % grid for start in starts]


# ----------------------------------------------------------------------------- views
@dataclass(frozen=True)
class Views:
    """What the model reads of one image.

    Attributes:
        batch: float32 (N, size, size, 3), 0-255: one row per view.
        boxes: Each view's box in the image (the whole image for a whole-image view).
        whole: Which views are the whole image resized (not a patch).
        scene: The last view is the scene view (`scene_view`).
    """

    batch: np.ndarray
    boxes: tuple[Box, ...]
    whole: tuple[bool, ...]
    scene: bool = False


def image_views(
    image: np.ndarray,
    prep: Preprocessing,
    *,
    max_patches: int = MAX_PATCHES,
    whole_view: bool | None = None,
) -> Views:
    """The model inputs for one RGB uint8 image: its patches, and optionally a whole view.

    ``native_crop`` models read the `patch_grid` patches (one patch, exactly
    `Preprocessing.apply`, for an image that holds no more); other resize modes read their one
    view, as `Preprocessing.apply` makes it.

    Args:
        image: RGB uint8 (H, W, 3).
        prep: The model's preprocessing.
        max_patches: Most patches (see `patch_grid`).
        whole_view: Add the whole image resized to the input as one more view (``native_crop``
            only; None: as ``prep.whole_view`` says). It is off by default because a
            native-resolution trace model loses its traces when a large photo is shrunk
            20-fold to the input; whether it helps a given model is measured in training, and
            its card can turn it on.
    """
    height, width = image.shape[:2]
    if prep.resize != "native_crop":
        box = prep.crop_box(height, width)
        return Views(prep.apply(image)[None], (box,), (prep.resize == "resize",))
    boxes = patch_grid(height, width, prep.size, max_patches=max_patches, grid=prep.grid)
    if len(boxes) == 1:
        batch = prep.apply(image)[None]
    else:
        batch = np.stack([image[t:b, left:r] for t, left, b, r in boxes]).astype(np.float32)
    whole = [False] * len(boxes)
    if prep.whole_view if whole_view is None else whole_view:
        view = replace(prep, resize="resize").apply(image)
        batch = np.concatenate([batch, view[None]])
        boxes.append((0, 0, height, width))
        whole.append(True)
    scene = scene_view(image, prep)
    if scene is not None:
        view, box = scene
        batch = np.concatenate([batch, view[None]])
        boxes.append(box)
        whole.append(False)
    return Views(batch, tuple(boxes), tuple(whole), scene=scene is not None)


def scene_box(height: int, width: int, prep: Preprocessing) -> Box | None:
    """The region of an H x W image its scene view shows (None: it gets none).

    The scene view is the central ``size`` square of the image shrunk so that its shorter side
    is ``prep.scene_side``: in the image's own pixels, the central square of side
    ``size * shorter / scene_side``. Only a model with a ``scene_side`` (which `Preprocessing`
    allows with ``native_crop`` alone) reads one, and only of an image whose shorter side is
    larger than ``scene_side``.
    """
    side = prep.scene_side
    short = min(height, width)
    if side is None or short <= side:
        return None
    span = min(short, round(prep.size * short / side))
    top, left = (height - span) // 2, (width - span) // 2
    return top, left, top + span, left + span


def scene_view(image: np.ndarray, prep: Preprocessing) -> tuple[np.ndarray, Box] | None:
    """The scene view of an RGB uint8 image (float32 (size, size, 3), 0-255) and its box, or
    None when the model reads none (`scene_box`).

    The region is shrunk with pixel-area averaging, as the kit's neutral copies were made
    (`training.data.neutral`), so no resampling pattern of its own is added.
    """
    box = scene_box(*image.shape[:2], prep)
    if box is None:
        return None
    top, left, bottom, right = box
    region = image[top:bottom, left:right]
    view = cv2.resize(region, (prep.size, prep.size), interpolation=cv2.INTER_AREA)
    return view.astype(np.float32), box


# ----------------------------------------------------------------------------- combining
def combine(fake_logits: Sequence[float] | np.ndarray, *, scene: bool = False) -> float:
    """The whole-image logit of "fake": the mean of the views' fake logits.

    With ``scene`` (a model card with a ``scene_side``), the last of several logits is the
    scene view's, and it carries half the score: the mean of the native-resolution views and
    the scene view's logit are averaged. The two are two readings of the picture at two
    scales, the finest traces and the scale the model learnt scenes at; counted as one view
    among up to 17, the scene view's say would shrink as the image grows. A single logit is
    returned as it is (an image no larger than ``scene_side`` has no scene view). Because
    ``scene_side`` lies in [size, 2 * size), an image with several native patches always has a
    scene view, so "several logits" means "the last is the scene view" here, which lets the
    batch scanners combine the bare logit arrays.

    The combined logit goes through the model's temperature and a sigmoid like a single
    patch's (`calibrate`), and it is averaged before the temperature, so a temperature fitted
    on combined logits (`score_patches`) calibrates whole-image probabilities.

    Why the mean and not the most suspicious patch: the patches of one photo are strongly
    correlated (one camera, one scene, one processing chain), so they are not independent
    votes. A max (or a noisy-or) flags an image when any patch fires: with n patches each at a
    false-alarm rate p, it flags about 1 - (1 - p)^n of real photos, 1 - 0.95^16 = 56 % at
    p = 5 %, so the false-alarm rate would grow with the image's size, and the threshold and
    uncertain band the model was calibrated for would no longer mean the same thing. The mean
    keeps the calibrated operating point the same for small and large images (one patch: the
    patch's own logit). A single suspicious region still shows: every patch keeps its own
    score in `Prediction.patches`, drawn by `patch_map`, and their spread says whether one
    region stands out.

    Raises:
        ValueError: for no logits at all.
    """
    z = np.asarray(fake_logits, dtype=np.float64).ravel()
    if z.size == 0:
        raise ValueError("no patch logits to combine")
    if scene and z.size > 1:
        return float((z[:-1].mean() + z[-1]) / 2.0)
    return float(z.mean())


def calibrate(fake_logits: float | np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated P(fake) = sigmoid(fake_logit / temperature), in float64."""
    return expit(np.asarray(fake_logits, dtype=np.float64) / float(temperature))


def patch_scores(logits: np.ndarray, views: Views, temperature: float) -> tuple[PatchScore, ...]:
    """One `PatchScore` per view, each with its own calibrated P(fake)."""
    probs = calibrate(logits, temperature)
    scores = []
    last = len(views.boxes) - 1
    for i, (z, p, (top, left, bottom, right), whole) in enumerate(
        zip(logits, probs, views.boxes, views.whole, strict=True)
    ):
        size = max(bottom - top, right - left)
        scene = views.scene and i == last
        scores.append(
            PatchScore(left, top, size, float(p), float(z), whole_image=whole, scene_view=scene)
        )
    return tuple(scores)


class PatchLogits(NamedTuple):
    """An image's whole-image score before calibration, and its parts.

    Attributes:
        combined_logit: `combine` of ``logits``: sigmoid(combined_logit / T) is the verdict.
        logits: float64 (N,): each view's fake logit, before the temperature.
        boxes: Each view's box (top, left, bottom, right) in the image.
        whole: Which views are the whole image resized.
        scene: The last view is the scene view.
    """

    combined_logit: float
    logits: np.ndarray
    boxes: tuple[Box, ...]
    whole: tuple[bool, ...]
    scene: bool = False


def score_patches(
    det: Detector,
    image: ImageSource,
    *,
    max_patches: int | None = None,
    whole_view: bool | None = None,
) -> PatchLogits:
    """Score one image as `Detector.predict` does, returning logits before the temperature.

    The training side's entry point for evaluating and recalibrating whole-image scores: fit
    the temperature T on ``combined_logit`` (not on single patches), and
    sigmoid(combined_logit / T) is a calibrated whole-image P(fake), exactly what
    `Detector.predict` reports with that T in the model card. For many images use
    `score_patches_batch`, which batches their patches together.

    Args:
        det: A loaded `Detector`.
        image: Any accepted image source (an RGB uint8 array is used as it is).
        max_patches: Most patches (None: ``det.max_patches``).
        whole_view: Add the resized whole image as a view (None: the model card's setting).
    """
    return score_patches_batch(det, [image], max_patches=max_patches, whole_view=whole_view)[0]


def score_patches_batch(
    det: Detector,
    images: Sequence[ImageSource],
    *,
    max_patches: int | None = None,
    whole_view: bool | None = None,
) -> list[PatchLogits]:
    """`score_patches` for several images, their patches run through the model together."""
    prep = det.spec.preprocessing
    limit = det.max_patches if max_patches is None else max_patches
    views = [
        image_views(_rgb(image), prep, max_patches=limit, whole_view=whole_view) for image in images
    ]
    return [
        PatchLogits(combine(z, scene=v.scene), z, v.boxes, v.whole, v.scene)
        for v, z in zip(views, score_views(det, views), strict=True)
    ]


def score_views(det: Detector, views: Sequence[Views]) -> list[np.ndarray]:
    """Each image's view logits, from one model run over all their views (chunked)."""
    if not views:
        return []
    logits = det.fake_logits_batch(np.concatenate([v.batch for v in views]))
    ends = np.cumsum([len(v.batch) for v in views])
    return np.split(logits, ends[:-1])


def _rgb(image: ImageSource) -> np.ndarray:
    if (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
    ):
        return image
    return load_image(image)


# ----------------------------------------------------------------------------- drawing
def place_heatmap(heatmap: np.ndarray, box: Box, height: int, width: int) -> np.ndarray:
    """A heatmap over a view (size, size) placed on an H x W image at ``box`` (0 elsewhere).

    The box is clipped to the image (a whole-image view's box is the whole image).
    """
    return place_on_image(heatmap, _clip(box, height, width), height, width)


def patch_map(
    image: np.ndarray,
    prediction: Prediction,
    *,
    alpha: float = DEFAULT_ALPHA,
    size: tuple[int, int] | None = None,
    colormap: str = "jet",
) -> np.ndarray:
    """The picture with each scored patch filled and outlined in the colour of its P(fake).

    Colours come from the Grad-CAM overlays' colormap (`detector.core.heatmaps.colorize`): P(fake)
    0 is the cold end, 1 the hot end. Where patches overlap, the more suspicious one is drawn
    on top; a whole-image view tints the whole picture (a scene view its region) beneath the
    patches. Pixels no patch covers are left as they are.

    Args:
        image: RGB uint8 (H, W, 3): the scored image, or a resized copy of it (then give
            ``size``).
        prediction: A prediction with ``patches`` (without any, the image is returned as is).
        alpha: Opacity of the fill, 0 (outlines only) to 1.
        size: (height, width) of the image the prediction was made on, when ``image`` is a
            resized copy (the boxes are scaled to it).
        colormap: One of `detector.core.heatmaps.COLORMAPS`.

    Returns:
        RGB uint8 (H, W, 3).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    out = np.ascontiguousarray(image).copy()
    patches = prediction.patches
    if not patches:
        return out
    height, width = image.shape[:2]
    source_height, source_width = size or (height, width)
    scale_y, scale_x = height / source_height, width / source_width
    colours = colorize(np.array([[p.p_fake for p in patches]]), colormap)[0].astype(np.float32)
    # whole-image and scene views first, then patches from the least to the most suspicious
    order = sorted(range(len(patches)), key=lambda i: (not _beneath(patches[i]), patches[i].p_fake))
    boxes = {}
    for i in order:
        t, left, b, r = patches[i].box
        box = round(t * scale_y), round(left * scale_x), round(b * scale_y), round(r * scale_x)
        top, left, bottom, right = boxes[i] = _clip(box, height, width)
        region = image[top:bottom, left:right].astype(np.float32)
        blended = region * (1.0 - alpha) + colours[i] * alpha
        out[top:bottom, left:right] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    thickness = max(1, round(min(height, width) / 150))
    for i in order:
        top, left, bottom, right = boxes[i]
        if _beneath(patches[i]) or bottom <= top or right <= left:
            continue
        colour = tuple(int(c) for c in colours[i])
        cv2.rectangle(out, (left, top), (right - 1, bottom - 1), colour, thickness)
    return out


def _beneath(patch: PatchScore) -> bool:
    """A view drawn as a tint beneath the patches, without an outline: one that spans the
    picture at a smaller scale (the whole image, or the scene view)."""
    return patch.whole_image or patch.scene_view


def _clip(box: Box, height: int, width: int) -> Box:
    top, left, bottom, right = box
    return max(top, 0), max(left, 0), min(bottom, height), min(right, width)
