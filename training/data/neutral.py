"""Format-neutral pixels and negative controls for the kit's wild and control rows.

Every file of the wild pool goes through :func:`neutral_pixels`, whatever its class: decode the
stored pixels (metadata and EXIF orientation are ignored, so nothing but pixels reaches a
model), convert to RGB, cut a random window, and shrink it by a random factor with a random
resampling filter. The shrink erases old compression grids (JPEG's 8x8 blocks of the camera
photos, WebP's 4x4 blocks of the gallery fakes); the window makes the factor independent of the
file's size, so "large camera photo shrunk 8x" cannot stand for "real". Both classes are then
written by one PNG encoder, so file type, size and metadata are the same for both.

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
        factor: Range of the random shrink factor (both ends below 1: every file is shrunk).
        max_side: Longest side of the result (the window cut before shrinking is
            ``max_side / factor``); 512 keeps the training loader from resampling again.
        min_side: Shortest side of the result (a model's 224 px input fits).
    """

    factor: tuple[float, float] = (0.5, 0.8)
    max_side: int = 512
    min_side: int = 224


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

    Raises:
        ValueError: the image is too small to give ``min_side`` pixels after shrinking.
    """
    s = settings or NeutralSettings()
    img = decode_rgb(data)
    w, h = img.size
    factor = float(rng.uniform(*s.factor))
    factor = min(max(factor, s.min_side / min(w, h)), 0.9)
    if min(w, h) * factor < s.min_side - 0.5:
        raise ValueError(f"image of {w}x{h} px is too small for a {s.min_side} px result")
    window = round(s.max_side / factor)
    cw, ch = min(w, window), min(h, window)
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    name = str(rng.choice(sorted(SHRINK_FILTERS)))
    box = (x0, y0, x0 + cw, y0 + ch)
    # both sides reach min_side: a side cut to the window gives max_side, a whole side
    # gives side * factor >= min_side by the factor's lower bound
    size = (max(s.min_side, round(cw * factor)), max(s.min_side, round(ch * factor)))
    out = img.resize(size, SHRINK_FILTERS[name], box=box)
    return NeutralResult(np.asarray(out, dtype=np.uint8).copy(), factor, name, box)


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


def make_control(arr: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A negative control of a real image (uint8 RGB); returns pixels and its parameters.

    Enlargements cut a window first (256 px for 2x, 128 px for 4x) so the result stays
    512 px; the shrink halves the image (never below 224 px on its short side).
    """
    bicubic = Image.Resampling.BICUBIC
    if kind.startswith("enlarge_"):
        method = {
            "bicubic": bicubic,
            "bilinear": Image.Resampling.BILINEAR,
            "lanczos": Image.Resampling.LANCZOS,
        }[kind.split("_")[1]]
        scale = 4 if kind.endswith("4x") else 2
        part = _window(arr, 512 // scale, rng)
        return _resize(part, scale, method), f"scale={scale}"
    if kind == "shrink_bicubic_0.5x":
        scale = max(0.5, 224 / min(arr.shape[:2]))
        return _resize(arr, scale, bicubic), f"scale={scale:.3f}"
    if kind == "jpeg_random_quality":
        quality = int(rng.integers(50, 96))
        return jpeg_roundtrip(arr, quality), f"quality={quality}"
    if kind == "screenshot_png_of_jpeg":
        quality = int(rng.integers(75, 96))
        shown = _resize(jpeg_roundtrip(arr, quality), 1.25, Image.Resampling.BILINEAR)
        return shown, f"quality={quality},display=1.25"
    raise ValueError(f"unknown control {kind!r}; known: {', '.join(CONTROLS)}")
