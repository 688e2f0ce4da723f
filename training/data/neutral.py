"""Format-neutral pixels and negative controls for the kit's wild and control rows.

Every file of the wild pool goes through :func:`neutral_pixels`, whatever its class: decode the
stored pixels (metadata and EXIF orientation are ignored, so nothing but pixels reaches a
model), convert to RGB, cut a random square window and shrink it to 256 x 256 px by a random
factor with a random resampling filter. The shrink erases old compression grids (JPEG's 8x8
blocks of the camera photos, WebP's 4x4 blocks of the gallery fakes); the fixed output size
removes image size and aspect as cues; files much larger than the window are first shrunk as a
whole, so windows of camera photos and of gallery images show scenes alike. Both classes are
then written by one PNG encoder, so file type, size and metadata are the same for both.

Negative controls (:func:`make_control`) are real images changed the way people change photos:
enlarged or shrunk with bicubic, bilinear or Lanczos interpolation, re-encoded as JPEG at a random
quality, or saved as a screenshot (a JPEG shown at 125 % and captured as PNG). They are labelled
real: a detector that flags them has learnt "resampled" or "recompressed", not "generated".
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

#: Resampling filters a neutral shrink draws from (the filters photo tools offer).
SHRINK_FILTERS: dict[str, int] = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}

#: The negative controls, in the order they are assigned (round robin per split).
CONTROLS: tuple[str, ...] = (
    "enlarge_bicubic_2x",
    "enlarge_bilinear_2x",
    "enlarge_lanczos_2x",
    "enlarge_bicubic_4x",
    "shrink_bicubic_0.5x",
    "jpeg_random_quality",
    "screenshot_png_of_jpeg",
)


@dataclass(frozen=True)
class NeutralSettings:
    """How a wild file becomes kit pixels.

    Attributes:
        side: Every result is ``side`` x ``side`` (the package tiles' size): no class can be
            told by image size or aspect.
        factor: Range of the final shrink factor (a window of ``side / factor`` pixels becomes
            ``side``): below 1, so old compression grids are resampled away.
        context: A file much larger than the window is first shrunk as a whole, so that the
            window covers 1/``context`` of its shorter side (drawn in this range): a window
            of a 12 MP photo shows a scene, as a window of a 1024 px gallery image does, not
            a patch of sky.
    """

    side: int = 256
    factor: tuple[float, float] = (0.5, 0.8)
    context: tuple[float, float] = (1.0, 1.5)


@dataclass(frozen=True)
class NeutralResult:
    """Kit pixels and how they were made (recorded in the kit manifest)."""

    pixels: np.ndarray
    factor: float
    resample: str
    window: tuple[int, int, int, int]


def decode_rgb(data: bytes) -> Image.Image:
    """The first frame's stored pixels as RGB; metadata and orientation flags are ignored."""
    with Image.open(io.BytesIO(data)) as img:
        img.seek(0)
        img.load()
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(img, dtype=np.float64)
            arr = 255.0 * (arr - arr.min()) / max(float(np.ptp(arr)), 1e-9)
            return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
        return img.convert("RGB")


def neutral_pixels(
    data: bytes, rng: np.random.Generator, settings: NeutralSettings | None = None
) -> NeutralResult:
    """Decode a file and give it the shared treatment (see the module docstring).

    ``factor`` in the result is the overall shrink (window side to ``side``); a file whose
    shorter side is under ``side / factor`` is shrunk less (not at all when it is ``side``).

    Raises:
        ValueError: the image's shorter side is under ``side`` pixels.
    """
    s = settings or NeutralSettings()
    img = decode_rgb(data)
    if min(img.size) < s.side:
        raise ValueError(f"image of {img.size[0]}x{img.size[1]} px is under {s.side} px")
    window = s.side / float(rng.uniform(*s.factor))
    pre = str(rng.choice(sorted(SHRINK_FILTERS)))
    final = str(rng.choice(sorted(SHRINK_FILTERS)))
    context = float(rng.uniform(*s.context))
    short = min(img.size)
    if short > window * s.context[1]:  # shrink the whole file first (see NeutralSettings)
        scale = window * context / short
        size = (max(s.side, round(img.size[0] * scale)), max(s.side, round(img.size[1] * scale)))
        img = img.resize(size, SHRINK_FILTERS[pre])
    side = min(round(window), min(img.size))
    w, h = img.size
    x0 = int(rng.integers(0, w - side + 1))
    y0 = int(rng.integers(0, h - side + 1))
    box = (x0, y0, x0 + side, y0 + side)
    out = img.resize((s.side, s.side), SHRINK_FILTERS[final], box=box)
    return NeutralResult(np.asarray(out, dtype=np.uint8).copy(), s.side / side, final, box)


def _resize(arr: np.ndarray, scale: float, method: int) -> np.ndarray:
    h, w = arr.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(arr).resize(size, method), dtype=np.uint8)


def jpeg_roundtrip(arr: np.ndarray, quality: int) -> np.ndarray:
    """Pixels after one JPEG encode/decode at ``quality`` (4:2:0, as cameras and the web do)."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)


def _window(arr: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    h, w = arr.shape[:2]
    side = min(side, h, w)
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    return arr[y : y + side, x : x + side]


def control_kinds(has_larger: bool) -> tuple[str, ...]:
    """The controls that can be made of an image (the shrink needs a twice larger version)."""
    return CONTROLS if has_larger else tuple(k for k in CONTROLS if not k.startswith("shrink"))


def make_control(
    arr: np.ndarray, kind: str, rng: np.random.Generator, larger: np.ndarray | None = None
) -> tuple[np.ndarray, str]:
    """A negative control of a real image; returns pixels and its parameters.

    Every control has the size of ``arr`` (the kit's 256 px): enlargements cut a window of a
    half (2x) or a quarter (4x) and enlarge it; the screenshot shows a JPEG at 125 % and
    captures a window; the shrink halves a window of ``larger`` (the same photo at twice the
    size, required for it).
    """
    side = arr.shape[0]
    bicubic = Image.Resampling.BICUBIC
    if kind.startswith("enlarge_"):
        method = {
            "bicubic": bicubic,
            "bilinear": Image.Resampling.BILINEAR,
            "lanczos": Image.Resampling.LANCZOS,
        }[kind.split("_")[1]]
        scale = 4 if kind.endswith("4x") else 2
        return _resize(_window(arr, side // scale, rng), scale, method), f"scale={scale}"
    if kind == "shrink_bicubic_0.5x":
        if larger is None or min(larger.shape[:2]) < 2 * side:
            raise ValueError("the shrink control needs the photo at twice the size")
        return _resize(_window(larger, 2 * side, rng), 0.5, bicubic), "scale=0.5"
    if kind == "jpeg_random_quality":
        quality = int(rng.integers(50, 96))
        return jpeg_roundtrip(arr, quality), f"quality={quality}"
    if kind == "screenshot_png_of_jpeg":
        quality = int(rng.integers(75, 96))
        shown = _resize(jpeg_roundtrip(arr, quality), 1.25, Image.Resampling.BILINEAR)
        return _window(shown, side, rng), f"quality={quality},display=1.25"
    raise ValueError(f"unknown control {kind!r}; known: {', '.join(CONTROLS)}")
