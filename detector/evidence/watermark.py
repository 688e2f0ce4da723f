"""Stable Diffusion's public invisible watermarks: decode them and say whether they are there.

Two marks, both embedded with the ``dwtDct`` method of the ``invisible-watermark`` package
(0.2.0): Stable Diffusion v1's reference scripts mark outputs with the 17 bytes
``b"StableDiffusionV1"`` (136 bits); the SDXL pipelines (Stability's ``generative-models``,
diffusers) with the 48 bits ``0xB3EC907BB19E``.

The package is not a dependency: it imports ``torch`` at import time and requires
``opencv-python``, which clashes with this project's ``opencv-python-headless``. Its decoder is
short and public, so it is written again here with numpy and OpenCV; a dev-only test checks it
against the package bit for bit on images the package marked.

The algorithm (``imwatermark/maxDct.py``, ``EmbedMaxDct``, default settings): the U plane of
OpenCV's uint8 BGR->YUV conversion, cropped to multiples of 4 pixels; its level-1 Haar
approximation (PyWavelets' ``dwt2(..., "haar")``); 4x4 blocks of that in raster order. Block
``k`` carries bit ``k mod n`` in its largest-magnitude coefficient other than the first, whose
magnitude the encoder moves to a quarter (bit 0) or three quarters (bit 1) of a step of 36;
the decoder reads "magnitude mod 36 above 18" and takes each bit's majority over its blocks.
Despite the name there is no DCT in this path of the package. As a bit's blocks are fixed by
the image width, any crop or resize moves every block to another bit: the whole image is
decoded (vectorised, in strips: 0.25 to 0.4 s for 12 megapixels), never a centred crop.

Decoded bits are compared with each mark: the bit errors get the one-sided binomial p-value of
so few errors from coin flips, and a match needs it below `MATCH_ALPHA`. Coin flips model
ordinary pictures, not those with a regular horizontal pattern (stripes, tiles, grids), whose
decoded bits repeat every few bits; SD v1's ASCII payload is itself nearly byte-periodic, so a
string repeating every 8 bits can come within 38 errors of it (p = 1.4e-7). A match therefore
also needs decoded bits that do not nearly repeat (`repeat_period`).

SDXL's pipelines hand the package float32 images (0-255), where OpenCV's U offset is 0.5, not
128: read from uint8 (as Stability's own detect script does) the marked coefficient is found
mostly in bluish blocks only. So each mark is read as it was written: SD v1 from uint8, SDXL
from the image converted to float32 (`KnownMark.float_input`), both by the package's decoder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import cv2
import numpy as np

#: A match needs the chance of so few bit errors from coin flips to be below this: at most 7
#: errors of SDXL's 48 bits, 40 of SD v1's 136. Two marks per image at a million images a day
#: give about two chance matches a day; 1e-9 would cut SDXL's allowance to 4 errors, and marked
#: test pictures decode with up to 12 (SDXL) and 36 (SD v1) errors even before any JPEG.
MATCH_ALPHA = 1e-6

#: The package's quantisation step on the U channel (``scales=[0, 36, 36]``: Y unused, U at
#: 36; its loop never reaches V) and its block side (``block=4``).
STEP = 36
BLOCK = 4

#: The package refuses to encode or decode images of fewer pixels than this (256 x 256), and
#: diffusers skips the mark on images narrower than 256 pixels.
MIN_PIXELS = 256 * 256

#: Reason given for images the marks cannot be looked for in.
TOO_SMALL_REASON = "not checked: too small"
GREY_REASON = "not checked: greyscale image (the marks live in a colour channel)"

#: What a match means.
MATCH_MEANING = (
    "The image carries a public Stable Diffusion watermark: it was made by Stable Diffusion's "
    "reference scripts or an SDXL pipeline (Stability's or diffusers'), or a tool built on "
    "them, which embed this mark. The mark can be copied into another image only by running "
    "the same public encoder on it, so it shows that origin unless someone added it on purpose."
)
#: What the SDXL result needs to be read with.
SDXL_NOTE = (
    "SDXL's mark is read the way SDXL's pipelines write it, from the image as floating-point "
    "values; read as 8-bit values, as Stability's own detection script does, it comes back "
    "with many more errors. Images made with diffusers before version 0.27 (February 2024) "
    "carry the mark where no decoder reads it: for them a negative result is expected."
)
#: What the check cannot do; shown with every result.
WATERMARK_CAVEAT = (
    "The mark does not survive resizing, cropping or screenshots, and JPEG weakens it (at "
    "quality 90 with the usual colour subsampling it is mostly lost). Its absence proves "
    "nothing: many tools and services never add it, local installs often turn it off, and any "
    "resize or crop removes it."
)


@dataclass(frozen=True)
class KnownMark:
    """A public watermark payload and where it comes from.

    ``float_input``: its makers hand the package float32 images (SDXL's pipelines) rather
    than uint8 ones (SD v1's script), so it is decoded from the image as float32.
    """

    key: str
    name: str
    bits: tuple[int, ...]
    embedded_by: str
    float_input: bool = False

    @property
    def n_bits(self) -> int:
        """Length of the mark in bits."""
        return len(self.bits)


SD_V1 = KnownMark(
    key="stable-diffusion-v1",
    name='Stable Diffusion v1 ("StableDiffusionV1")',
    bits=tuple(int(b) for b in "".join(f"{byte:08b}" for byte in b"StableDiffusionV1")),
    embedded_by="Stable Diffusion v1 reference scripts (txt2img.py, img2img.py)",
)
SDXL = KnownMark(
    key="sdxl",
    name="Stable Diffusion XL (0xB3EC907BB19E)",
    bits=tuple(int(b) for b in f"{0xB3EC907BB19E:048b}"),
    embedded_by="Stability's generative-models and diffusers' SDXL pipelines",
    float_input=True,
)
KNOWN_MARKS: tuple[KnownMark, ...] = (SD_V1, SDXL)


@dataclass(frozen=True)
class WatermarkMatch:
    """The result of looking for one known mark in one image.

    Attributes:
        mark: `KnownMark.key` of the mark looked for.
        name: Its human-readable name.
        n_bits: Its length in bits.
        bit_errors: Decoded bits that disagree with the mark; ``None`` when not checked.
        p_value: Chance of at most ``bit_errors`` errors if the decoded bits were coin flips;
            ``None`` when not checked.
        matched: Whether ``p_value < MATCH_ALPHA`` and the decoded bits do not repeat.
        reason: Why the image was not checked (e.g. `TOO_SMALL_REASON`); empty when checked.
        repeat_period: When not 0, the decoded bits nearly repeat every this many bits (as a
            regular pattern in the picture, or the other mark, gives) and no match is reported
            whatever the p-value (see `repeat_period`).
    """

    mark: str
    name: str
    n_bits: int
    bit_errors: int | None
    p_value: float | None
    matched: bool
    reason: str = ""
    repeat_period: int = 0

    @property
    def checked(self) -> bool:
        """Whether the mark was looked for at all."""
        return not self.reason

    def summary(self) -> str:
        """One line for a report."""
        if not self.checked:
            return f"{self.name}: {self.reason}"
        verdict = "found" if self.matched else "not found"
        if self.repeat_period:
            verdict += (
                f"; the decoded bits repeat every {self.repeat_period} bits, as a regular "
                "pattern in the picture or another mark gives"
            )
        return (
            f"{self.name}: {verdict} ({self.bit_errors} of {self.n_bits} bits differ, "
            f"chance p = {self.p_value:.2g})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def binomial_tail(errors: int, n_bits: int) -> float:
    """P(X <= errors) for X ~ Binomial(n_bits, 1/2): the chance of so few errors by luck.

    Exact (integer arithmetic), so it stays accurate far below float epsilon.

    Args:
        errors: Observed bit errors, 0 <= errors <= n_bits.
        n_bits: Number of bits compared, > 0.
    """
    if n_bits <= 0 or not 0 <= errors <= n_bits:
        raise ValueError(f"need 0 <= errors <= n_bits and n_bits > 0, got {errors}, {n_bits}")
    hits = sum(math.comb(n_bits, k) for k in range(errors + 1))
    return hits / 2**n_bits


def _check_image(image_rgb: np.ndarray) -> str:
    """Validate the array; return a not-checked reason, or "" when it can be decoded."""
    image = np.asarray(image_rgb)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return GREY_REASON
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an H x W x 3 (or x 4) image, got shape {image.shape}")
    if image.shape[0] * image.shape[1] < MIN_PIXELS or min(image.shape[:2]) < 2 * BLOCK:
        return TOO_SMALL_REASON
    return ""


#: Pixel rows decoded at a time (a multiple of the 8 rows of a block), to bound memory.
STRIP_ROWS = 512
_TAP = 0.7071067811865476  # PyWavelets' Haar tap: sqrt(2)/2, one ulp above 1/sqrt(2)


def haar_approximation(channel: np.ndarray) -> np.ndarray:
    """Level-1 Haar approximation, equal bit for bit to ``pywt.dwt2(channel, "haar")[0]``.

    Same operations in the same order as PyWavelets: pairs of rows, then pairs of columns,
    each as ``c * second + c * first`` with PyWavelets' tap ``c``, in float32 for float32
    input and float64 otherwise. Odd trailing rows or columns are dropped (the package always
    passes even sides).
    """
    x = np.asarray(channel)
    x = x[: x.shape[0] // 2 * 2, : x.shape[1] // 2 * 2]
    c = np.float32(_TAP) if x.dtype == np.float32 else np.float64(_TAP)
    rows = c * x[1::2, :] + c * x[0::2, :]
    return c * rows[:, 1::2] + c * rows[:, 0::2]


def block_scores(image_rgb: np.ndarray, float_input: bool = False) -> np.ndarray:
    """Each 4x4 block's bit vote (0/1) in the package's raster order, as int64.

    Block ``k`` votes for bit ``k mod n`` of an ``n``-bit mark. A block covers 8x8 pixels
    and depends on no others, so the image is decoded in strips of `STRIP_ROWS` rows.

    Args:
        image_rgb: uint8 H x W x 3 RGB image (a 4th, alpha channel is ignored).
        float_input: Read it as the package reads a float32 image (values 0-255).
    """
    rgb = np.asarray(image_rgb)[:, :, :3]
    height, width = rgb.shape[0] // 8 * 8, rgb.shape[1] // 8 * 8
    votes = []
    for top in range(0, height, STRIP_ROWS):
        strip = np.ascontiguousarray(rgb[top : min(top + STRIP_ROWS, height), :width])
        if float_input:
            strip = strip.astype(np.float32)
        # RGB2YUV on RGB gives the planes the package gets from BGR2YUV on BGR.
        ca = haar_approximation(cv2.cvtColor(strip, cv2.COLOR_RGB2YUV)[:, :, 1])
        blocks = (
            ca.reshape(-1, BLOCK, width // 8, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK**2)
        )
        # Largest magnitude but the first (first index on ties, as np.argmax in the package),
        # read as "magnitude mod STEP above half a step".
        magnitudes = np.abs(blocks[:, 1:])
        pos = np.argmax(magnitudes, axis=1)
        peak = np.take_along_axis(magnitudes, pos[:, None], axis=1)[:, 0]
        votes.append(np.remainder(peak, STEP) > 0.5 * STEP)
    return np.concatenate(votes).astype(np.int64) if votes else np.zeros(0, np.int64)


def _bits_from_scores(scores: np.ndarray, n_bits: int) -> np.ndarray:
    index = np.arange(scores.size) % n_bits
    ones = np.bincount(index, weights=scores, minlength=n_bits)
    counts = np.bincount(index, minlength=n_bits)
    if counts.min() == 0:
        raise ValueError(f"image too small to hold {n_bits} bits ({scores.size} blocks)")
    # The package's rule exactly: mean vote * 255 > 127 (a tie reads as 1).
    return ((ones / counts) * 255 > 127).astype(np.uint8)


def decode_bits(image_rgb: np.ndarray, n_bits: int, float_input: bool = False) -> np.ndarray:
    """Decode an ``n_bits`` dwtDct mark as the package's ``WatermarkDecoder("bits", n_bits)``.

    Args:
        image_rgb: uint8 H x W x 3 RGB image (a 4th, alpha channel is ignored) of at least
            `MIN_PIXELS` pixels.
        n_bits: Length of the mark.
        float_input: Decode the image converted to float32 BGR, as the package does when
            handed one (how SDXL's marks are written), instead of uint8 BGR.

    Returns:
        uint8 array of ``n_bits`` zeros and ones, most significant first.

    Raises:
        ValueError: wrong dtype or shape, greyscale, or too small.
    """
    if n_bits <= 0:
        raise ValueError(f"n_bits must be positive, got {n_bits}")
    reason = _check_image(image_rgb)
    if reason:
        raise ValueError(f"{reason} (shape {np.asarray(image_rgb).shape})")
    return _bits_from_scores(block_scores(image_rgb, float_input), n_bits)


def distance_to_periodic(bits: np.ndarray | tuple[int, ...], period: int) -> int:
    """Fewest flips that make ``bits`` repeat every ``period`` bits (a divisor of the length)."""
    values = np.asarray(bits, dtype=np.int64)
    if period <= 0 or values.size % period:
        raise ValueError(f"period {period} does not divide {values.size} bits")
    ones = values.reshape(-1, period).sum(axis=0)
    rows = values.size // period
    return int(np.minimum(ones, rows - ones).sum())


@cache
def max_bit_errors(mark: KnownMark) -> int:
    """Most bit errors with a binomial p-value below `MATCH_ALPHA` (-1 when none)."""
    passing = [e for e in range(mark.n_bits + 1) if binomial_tail(e, mark.n_bits) < MATCH_ALPHA]
    return max(passing, default=-1)


@cache
def risky_periods(mark: KnownMark) -> tuple[tuple[int, int], ...]:
    """``(period, distance)`` pairs where a repeating string could pass for the mark.

    Periods: divisors of the mark's length up to 16 (so few patterns that a striped picture
    can land on the worst one) at which the mark itself is within `max_bit_errors` flips
    (``distance``) of repeating: 4 and 8 for SD v1, none for SDXL.
    """
    limit = max_bit_errors(mark)
    pairs = []
    for period in range(1, min(16, mark.n_bits - 1) + 1):
        if mark.n_bits % period == 0:
            distance = distance_to_periodic(mark.bits, period)
            if distance <= limit:
                pairs.append((period, distance))
    return tuple(pairs)


def repeat_period(mark: KnownMark, bits: np.ndarray) -> int:
    """The period with which decoded ``bits`` nearly repeat, where that could fake ``mark``.

    A repeating string is told apart from the mark by being closer to repeating than the mark
    is: within half the mark's own `distance_to_periodic` (the midpoint between the two).
    Returns 0 when no risky period applies.
    """
    for period, distance in risky_periods(mark):
        if 2 * distance_to_periodic(bits, period) <= distance:
            return period
    return 0


def match_bits(mark: KnownMark, bits: np.ndarray) -> WatermarkMatch:
    """Compare decoded bits with a known mark: errors, binomial p-value and the verdict.

    A match needs ``p_value < MATCH_ALPHA`` and decoded bits that do not nearly repeat with a
    period that could fake the mark (`repeat_period`).
    """
    decoded = np.asarray(bits, dtype=np.uint8)
    if decoded.shape != (mark.n_bits,):
        raise ValueError(f"expected {mark.n_bits} bits, got shape {decoded.shape}")
    errors = int(np.count_nonzero(decoded != np.asarray(mark.bits, dtype=np.uint8)))
    p_value = binomial_tail(errors, mark.n_bits)
    period = repeat_period(mark, decoded)
    return WatermarkMatch(
        mark=mark.key,
        name=mark.name,
        n_bits=mark.n_bits,
        bit_errors=errors,
        p_value=p_value,
        matched=p_value < MATCH_ALPHA and not period,
        repeat_period=period,
    )


def detect_watermarks(
    image_rgb: np.ndarray, marks: tuple[KnownMark, ...] = KNOWN_MARKS
) -> list[WatermarkMatch]:
    """Look for each known public mark in an image.

    Each mark is decoded as it is written (`KnownMark.float_input`); the block votes of each
    reading are computed once and shared by the marks that use it.

    Args:
        image_rgb: uint8 H x W x 3 RGB image as decoded from the file (no resizing: the marks
            do not survive it). A 4th, alpha channel is ignored; a greyscale image is reported
            as not checked.
        marks: Marks to look for; both Stable Diffusion marks by default.

    Returns:
        One `WatermarkMatch` per mark, in order; ``matched`` is true only when chance is ruled
        out (``p_value < MATCH_ALPHA``, decoded bits not a repeating pattern). Read a match
        with `MATCH_MEANING`, every result with `WATERMARK_CAVEAT`, SDXL's with `SDXL_NOTE`.
    """
    reason = _check_image(image_rgb)
    readings: dict[bool, np.ndarray] = {}
    results = []
    for mark in marks:
        if not reason and mark.float_input not in readings:
            readings[mark.float_input] = block_scores(image_rgb, mark.float_input)
        scores = readings.get(mark.float_input)
        if scores is None or scores.size < mark.n_bits:
            why = reason or TOO_SMALL_REASON
            results.append(WatermarkMatch(mark.key, mark.name, mark.n_bits, None, None, False, why))
        else:
            results.append(match_bits(mark, _bits_from_scores(scores, mark.n_bits)))
    return results
