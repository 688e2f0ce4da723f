"""Honest uncertainty: plain-language warnings when an input is far from what a model saw.

`domain_warnings` looks at an image's size, format, colours and compression, and at the model
card, and says (in words a non-specialist can read) why a score on this input may not be
trustworthy: much larger or smaller than the training images, screenshot-like, heavily
compressed, black-and-white, very small, squashed or cropped by the model's preprocessing, or
animated. An empty tuple means none of these checks fired, not that the score is right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from detector.core.card import ModelCard
from detector.core.exif import exif_summary, has_camera_exif
from detector.core.images import ImageInfo
from detector.core.jpeg import estimate_jpeg_quality
from detector.core.patches import MAX_PATCHES, patch_grid, scene_box
from detector.core.spec import Preprocessing

#: An image whose longer side exceeds this many training tiles is "far larger".
LARGE_FACTOR = 8
#: Shorter side, in pixels, below which an image is "very small".
VERY_SMALL_SIDE = 64
#: JPEG quality below which compression is "heavy".
HEAVY_JPEG_QUALITY = 60
#: Fraction of pixels in perfectly flat 3x3 neighbourhoods above which an image is flat.
FLAT_FRACTION = 0.5
#: Distinct colours (in a sample of pixels) below which an image has "few colours".
FEW_COLOURS = 4096
#: Long/short side ratio above which squashing or cropping to a square matters.
ASPECT_LIMIT = 2.0
#: Largest number of pixels analysed for flatness and colours (a centre crop beyond this).
ANALYSIS_PIXELS = 1024 * 1024

#: Common screen resolutions (width, height), landscape; portrait is checked too.
SCREEN_SIZES: frozenset[tuple[int, int]] = frozenset(
    {
        (1280, 720), (1280, 800), (1280, 1024), (1366, 768), (1440, 900), (1536, 864),
        (1600, 900), (1680, 1050), (1920, 1080), (1920, 1200), (2048, 1152), (2560, 1080),
        (2560, 1440), (2560, 1600), (2736, 1824), (2880, 1800), (3024, 1964), (3440, 1440),
        (3456, 2234), (3840, 2160), (1024, 768), (2048, 1536), (2224, 1668), (2388, 1668),
        (2732, 2048), (1334, 750), (1792, 828), (2208, 1242), (2340, 1080), (2400, 1080),
        (2436, 1125), (2532, 1170), (2556, 1179), (2622, 1206), (2688, 1242), (2778, 1284),
        (2796, 1290), (2868, 1320), (3088, 1440), (3120, 1440), (3200, 1440), (1600, 720),
    }
)  # fmt: skip

_TILE_KEYS = (
    "tile_size",
    "tile",
    "crop_size",
    "image_size",
    "train_size",
    "resolution",
    "size_px",
    "input_size",
)


def training_side(card: ModelCard) -> tuple[int, str]:
    """The side (pixels) of the images the model was trained on, and where it comes from.

    Looks in ``card.training_data`` for a tile or image size (keys such as ``tile_size``,
    ``image_size``, ``crop_size``, ``resolution``; an int or a ``"512x512"`` string, up to two
    levels deep) and falls back to the model's input size.

    Returns:
        ``(side, source)`` where source is ``"training data"`` or ``"model input size"``.
    """
    found = _find_side(card.training_data, depth=0)
    if found:
        return found, "training data"
    return int(card.spec.preprocessing.size), "model input size"


def _find_side(data: Any, depth: int) -> int | None:
    if not isinstance(data, dict) or depth > 2:
        return None
    for key in _TILE_KEYS:
        side = _as_side(data.get(key))
        if side:
            return side
    for value in data.values():
        side = _find_side(value, depth + 1)
        if side:
            return side
    return None


def _as_side(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and 8 <= value <= 16384:
        return int(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
        return _as_side(max(value))
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d{1,5})\s*(?:[x×]\s*(\d{1,5}))?\s*(?:px)?\s*", value)
        if match:
            return _as_side(max(int(g) for g in match.groups() if g))
    return None


def _analysis_crop(array: np.ndarray) -> np.ndarray:
    height, width = array.shape[:2]
    if height * width <= ANALYSIS_PIXELS:
        return array
    side = int(ANALYSIS_PIXELS**0.5)
    top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
    return array[top : top + side, left : left + side]


def flat_fraction(array: np.ndarray) -> float:
    """Fraction of pixels whose 3x3 neighbourhood is one exact colour (screenshots, graphics)."""
    crop = _analysis_crop(array)
    kernel = np.ones((3, 3), np.uint8)
    flat = np.ones(crop.shape[:2], dtype=bool)
    for channel in range(crop.shape[2] if crop.ndim == 3 else 1):
        plane = crop[..., channel] if crop.ndim == 3 else crop
        plane = np.ascontiguousarray(plane)
        flat &= cv2.dilate(plane, kernel) == cv2.erode(plane, kernel)
    return float(flat.mean())


def colour_count(array: np.ndarray, sample: int = 32_768) -> int:
    """Distinct RGB colours in an evenly strided sample of up to ``sample`` pixels."""
    pixels = array.reshape(-1, array.shape[-1]) if array.ndim == 3 else array.reshape(-1, 1)
    step = max(1, len(pixels) // sample)
    pixels = pixels[::step].astype(np.uint32)
    if pixels.shape[1] >= 3:
        packed = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    else:
        packed = pixels[:, 0].copy()
    if packed.size == 0:
        return 0
    packed.sort()  # faster than np.unique's hashing for this size
    return int(1 + np.count_nonzero(np.diff(packed)))


def is_greyscale(array: np.ndarray, tolerance: int = 3) -> bool:
    """Whether (nearly) every pixel has equal R, G and B (within ``tolerance`` levels)."""
    if array.ndim == 2 or array.shape[-1] == 1:
        return True
    crop = _analysis_crop(array)[::2, ::2]
    # per-pixel max - min over the channels, a channel plane at a time (a reduction over a
    # 3-long last axis is ~18x slower)
    high = crop[..., 0].copy()
    low = high.copy()
    for channel in range(1, crop.shape[-1]):
        np.maximum(high, crop[..., channel], out=high)
        np.minimum(low, crop[..., channel], out=low)
    return bool(np.mean(high - low <= tolerance) >= 0.995)


#: Pillow modes that are black-and-white by construction.
GREY_MODES: frozenset[str] = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F"})


@dataclass(frozen=True)
class ImageChecks:
    """The model-independent findings about one image, measured once and shared by every model.

    Attributes:
        width, height: Decoded size in pixels.
        format: The file format in capitals (``""`` when unknown, e.g. for arrays).
        screenshot_like: Large flat areas and few colours (or very large flat areas).
        screen_png: A PNG at a common screen resolution without camera EXIF.
        jpeg_quality: Estimated JPEG quality, when the file is a JPEG and its bytes were given.
        greyscale: Black-and-white by mode or by pixels.
        n_frames: Frames in the file (animations have more than one).
    """

    width: int
    height: int
    format: str
    screenshot_like: bool
    screen_png: bool
    jpeg_quality: int | None
    greyscale: bool
    n_frames: int


def image_checks(
    image_info: ImageInfo, array: np.ndarray, *, data: bytes | None = None
) -> ImageChecks:
    """Measure what the warnings need to know about an image, whatever the model.

    Args:
        image_info: From `detector.core.images.decode_image`.
        array: The decoded RGB uint8 image (H, W, 3).
        data: The file's bytes, when available (JPEG quality, camera EXIF).
    """
    height, width = int(array.shape[0]), int(array.shape[1])
    fmt = (image_info.format or "").upper()
    flat = flat_fraction(array)
    screenshot_like = (flat > FLAT_FRACTION and colour_count(array) < FEW_COLOURS) or flat > 0.8
    screen_size = (width, height) in SCREEN_SIZES or (height, width) in SCREEN_SIZES
    screen_png = False
    if screen_size and fmt == "PNG" and not screenshot_like:  # EXIF read only when it matters
        screen_png = not has_camera_exif(exif_summary(data) if data is not None else {})
    quality = None
    if data is not None and fmt == "JPEG":
        estimate = estimate_jpeg_quality(data)
        quality = None if estimate is None else int(estimate.quality)
    return ImageChecks(
        width=width,
        height=height,
        format=fmt,
        screenshot_like=screenshot_like,
        screen_png=screen_png,
        jpeg_quality=quality,
        greyscale=image_info.mode in GREY_MODES or is_greyscale(array),
        n_frames=int(image_info.n_frames),
    )


def image_warnings(checks: ImageChecks) -> tuple[str, ...]:
    """The warnings that hold for every model: screenshots, compression, colour, animation."""
    warnings: list[str] = []
    if checks.screenshot_like:
        warnings.append(
            "This looks like a screenshot, a chart or a graphic (large flat areas and few "
            "colours); the models were trained on photos and generated pictures, not on these."
        )
    elif checks.screen_png:
        warnings.append(
            f"This is a PNG at a typical screen size ({checks.width}x{checks.height}) without "
            "camera data: it may be a screenshot, and screenshots are outside what the models "
            "were trained on."
        )
    if checks.jpeg_quality is not None and checks.jpeg_quality < HEAVY_JPEG_QUALITY:
        warnings.append(
            f"This JPEG is heavily compressed (quality about {checks.jpeg_quality}); strong "
            "compression erases the subtle traces detectors rely on, in both directions."
        )
    if checks.greyscale:
        warnings.append(
            "This is a black-and-white image; the models were trained on colour images and "
            "may be unreliable without colour."
        )
    if checks.n_frames > 1:
        warnings.append(
            f"This file has {checks.n_frames} frames (animation); only the first frame is scored."
        )
    return tuple(warnings)


def _covered(intervals: set[tuple[int, int]]) -> int:
    """Pixels of a side covered by some of the (start, end) intervals."""
    total, reach = 0, 0
    for start, end in sorted(intervals):
        start = max(start, reach)
        if end > start:
            total += end - start
            reach = end
    return total


def patch_coverage(
    height: int, width: int, prep: Preprocessing, max_patches: int = MAX_PATCHES
) -> tuple[int, float]:
    """How many patches a ``native_crop`` model scores an H x W image on, and their coverage.

    Returns:
        ``(patches, fraction)``: the number of `detector.core.patches.patch_grid` boxes (without
        the optional whole-image view) and the fraction of the image's pixels they cover.
    """
    boxes = patch_grid(height, width, prep.size, max_patches=max_patches, grid=prep.grid)
    rows = _covered({(top, bottom) for top, _, bottom, _ in boxes})
    cols = _covered({(left, right) for _, left, _, right in boxes})
    return len(boxes), min(rows, height) * min(cols, width) / (height * width)


def _percent(fraction: float) -> str:
    return "less than 1 %" if fraction < 0.01 else f"about {round(100 * fraction)} %"


def _native_warnings(
    checks: ImageChecks, prep: Preprocessing, tile: str, far: bool, max_patches: int
) -> list[str]:
    """What a ``native_crop`` model reads of a far larger or very elongated image."""
    width, height = checks.width, checks.height
    short = min(height, width)
    size = prep.size
    count, covered = patch_coverage(height, width, prep, max_patches)
    if count > 1 and not far and covered >= 0.99:
        return []  # the patches follow the image's shape and cover it
    start = (
        f"This image ({width}x{height} px) is far larger than {tile} the model learned from; "
        if far
        else "This image is very elongated; "
    )
    shrunk = f"the whole picture shrunk to {size}x{size} px"
    scene = scene_box(height, width, prep)
    if scene is not None:
        span = scene[2] - scene[0]
        shrunk = f"its central {span}x{span} px square shrunk to {size}x{size} px"
    extra = prep.whole_view or scene is not None
    if count > 1:
        cover = f"{_percent(covered)} of it"
        if covered >= 0.99:
            cover = "all of it" if covered == 1.0 else "nearly all of it"
        half = " (half of the score)" if scene is not None else ""
        whole = f", plus {shrunk}{half}," if extra else ""
        return [
            start + f"it is scored on {count} patches of {size}x{size} px at full resolution "
            f"spread over it (together they cover {cover}){whole} and their scores are "
            "averaged, so a small altered region can be diluted by the rest of the picture: "
            "look at the patch map for a patch that stands out."
        ]
    if short >= size:
        start += (
            f"it is too narrow to hold two {size} px patches side by side, so it is scored "
            f"on the single central {size}x{size} px patch at full resolution"
        )
        region = "that patch"
    else:
        start += (
            f"it is scored on its central {short}x{short} px square, enlarged to the "
            f"model's {size} px input"
        )
        region = "that square"
    if extra:
        return [
            start + f" and on {shrunk}, and the two scores are averaged; outside {region} "
            "the model sees the picture only shrunk, without its fine detail."
        ]
    return [start + f", and anything outside {region} is not looked at."]


#: Below this ROC-AUC on the wild test split (real generators and photos from sources it never
#: trained on), a model's every answer carries a warning that its score is weak evidence.
WEAK_WILD_AUC = 0.75


def measured_warning(card: ModelCard) -> str | None:
    """A warning when the card's truth table shows the model weak on images from the wild
    (``python -m training truth``): its ROC-AUC there and the share of enlarged, shrunk or
    re-encoded real photos it calls AI-generated. When the card measured the wild test files as
    published (``--wild-files``: own size, format and metadata, as an upload arrives), those
    figures are used, with the share of AI-generated images caught and of real ones flagged."""
    truth = card.metrics.get("truth") if isinstance(card.metrics, dict) else None
    if not isinstance(truth, dict):
        return None
    files = truth.get("wild_files_test", {}).get("clean", {})
    published = isinstance(files.get("roc_auc"), int | float)
    wild = files if published else truth.get("wild_test", {}).get("clean", {})
    auc = wild.get("roc_auc")
    if not isinstance(auc, int | float) or auc >= WEAK_WILD_AUC:
        return None
    facts = []
    caught, flagged = wild.get("recall"), wild.get("false_positive_rate")
    if published and isinstance(caught, int | float) and isinstance(flagged, int | float):
        facts.append(f"caught {caught:.0%} of the AI-generated images")
        facts.append(f"flagged {flagged:.0%} of the real ones")
    fpr = truth.get("controls_test", {}).get("clean", {}).get("false_positive_rate")
    if isinstance(fpr, int | float):
        facts.append(f"called {fpr:.0%} of enlarged, shrunk or re-encoded real photos AI-generated")
    listed = f"{', '.join(facts[:-1])} and {facts[-1]}" if len(facts) > 1 else "".join(facts)
    told = f": it {listed}" if listed else ""
    where = "files as published" if published else "real generators and photos"
    return (
        f"Measured on {where} from sources it never trained on, this model reaches ROC-AUC "
        f"{auc:.2f} (0.5 is chance){told}. Treat its score as weak evidence (see its model card)."
    )


def model_warnings(
    checks: ImageChecks, card: ModelCard | None, *, max_patches: int = MAX_PATCHES
) -> tuple[str, ...]:
    """The warnings that depend on the model: size against its training images and input.

    With no card, only the very-small-image warning can fire.

    Args:
        checks: The image's `image_checks`.
        card: The model card, or None.
        max_patches: Most patches the detector scores an image on (`Detector.max_patches`),
            for the count a ``native_crop`` model's warning gives.
    """
    width, height = checks.width, checks.height
    short, long = min(height, width), max(height, width)
    warnings: list[str] = []
    if card is None:
        if short < VERY_SMALL_SIDE:
            warnings.append(
                f"This image is very small ({width}x{height} px): there is too little detail "
                "for any detector to be reliable."
            )
        return tuple(warnings)
    measured = measured_warning(card)
    if measured:
        warnings.append(measured)
    side, source = training_side(card)
    size = int(card.spec.preprocessing.size)
    tile = f"the {side} px training images" if source == "training data" else f"{side} px"
    prep = card.spec.preprocessing
    native = prep.resize == "native_crop"
    far = long > LARGE_FACTOR * side
    elongated = long / max(short, 1) > ASPECT_LIMIT
    if native and (far or elongated):
        warnings.extend(_native_warnings(checks, prep, tile, far, max_patches))
    elif far:
        warnings.append(
            f"This image ({width}x{height} px) is far larger than {tile} the model "
            f"learned from; it is shrunk to {size}x{size} px before scoring, which wipes out "
            "the fine detail that separates real photos from generated ones."
        )
    if short < VERY_SMALL_SIDE:
        warnings.append(
            f"This image is very small ({width}x{height} px): there is too little detail "
            "for any detector to be reliable."
        )
    elif short < size:
        warnings.append(
            f"This image ({width}x{height} px) is smaller than the model's {size} px input, "
            "so it is enlarged before scoring; enlarging adds smooth, regular pixels that "
            "can look synthetic to a detector."
        )
    if elongated and not native:
        if prep.resize == "center_crop":
            warnings.append(
                "This image is very elongated: the model sees only its central square, so "
                "anything outside it is ignored."
            )
        else:
            warnings.append(
                "This image is very elongated: the model squashes it into a square, which "
                "distorts shapes and textures."
            )
    return tuple(warnings)


def domain_warnings(
    image_info: ImageInfo,
    array: np.ndarray,
    card: ModelCard | None,
    *,
    data: bytes | None = None,
    checks: ImageChecks | None = None,
    max_patches: int = MAX_PATCHES,
) -> tuple[str, ...]:
    """Plain-language warnings when an input is far from what the model was trained on.

    The model's warnings (`model_warnings`) come first, then the image's (`image_warnings`).
    To warn about one image for several models, measure it once with `image_checks` and pass
    ``checks``.

    Args:
        image_info: From `detector.core.images.decode_image`.
        array: The decoded RGB uint8 image (H, W, 3).
        card: The model card (training tile size, input size, preprocessing); None skips the
            model-specific checks.
        data: The file's bytes, when available: used to read the JPEG quality and to tell
            camera EXIF apart (without them, no compression warning is given and a PNG at a
            screen size is assumed to have no camera EXIF).
        checks: This image's `image_checks`, if already measured.
        max_patches: Most patches the detector scores an image on (see `model_warnings`).

    Returns:
        Warnings, most important first; empty when no check fired.
    """
    if checks is None:
        checks = image_checks(image_info, array, data=data)
    return model_warnings(checks, card, max_patches=max_patches) + image_warnings(checks)
