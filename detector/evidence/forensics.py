"""Forensic views for classrooms: the residual spectrum and error level analysis (ELA).

Both views are pictures to look at and discuss, not detectors: each comes with a one-line
explanation of what it shows and what it does not. Maps are float32 in [0, 1]; the ``*_rgb``
functions return colourised uint8 RGB arrays ready to save as PNG or show in a UI.
"""

from __future__ import annotations

import io
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from detector.core.heatmaps import COLORMAPS, colorize
from detector.core.images import ImageSource, load_image

SpectrumMode = Literal["energy", "linear"]

#: One line on what the residual spectrum shows, and what it does not.
RESIDUAL_SPECTRUM_EXPLANATION = (
    "The frequency spectrum of the image's fine-detail noise (centre = coarse, edges = finest "
    "detail): bright isolated dots or a regular grid away from the centre are periodic traces "
    "left by resizing, upscaling layers of generators or JPEG blocks; a smooth, dot-free "
    "spectrum proves nothing, and dots alone do not say the image is AI-generated."
)
#: One line on what error level analysis shows, and what it does not.
ELA_EXPLANATION = (
    "Error level analysis re-saves the image as JPEG and shows how much each pixel changes: "
    "areas with a different compression history (pasted in, retouched) can stand out as "
    "brighter or darker; edges and fine texture are always bright, a uniform map proves "
    "nothing, and ELA cannot tell AI-generated pixels from camera pixels."
)

#: Largest side analysed by `residual_spectrum`; larger images are centre-cropped (not resized,
#: which would destroy the traces the spectrum shows).
SPECTRUM_MAX_SIDE = 1024

_LAPLACIAN = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=np.float32)


def _grey(image: ImageSource) -> np.ndarray:
    rgb = load_image(image)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _centre_crop(grey: np.ndarray, side: int) -> np.ndarray:
    height, width = grey.shape
    top = max(0, (height - side) // 2)
    left = max(0, (width - side) // 2)
    return grey[top : top + side, left : left + side]


def high_pass_residual(image: ImageSource, mode: SpectrumMode = "energy") -> np.ndarray:
    """The fine-detail residual of the grey image.

    Args:
        image: Any accepted image source.
        mode: ``"linear"``: the 3x3 Laplacian of the grey image (signed). ``"energy"``: the
            strength of the fine detail, |Laplacian| + |horizontal difference| + |vertical
            difference|; resampling makes this strength vary periodically from pixel to pixel.

    Returns:
        float32 (H, W) residual, mean removed.
    """
    grey = _grey(image)
    lap = cv2.filter2D(grey, -1, _LAPLACIAN, borderType=cv2.BORDER_REFLECT)
    if mode == "linear":
        residual = lap
    elif mode == "energy":
        dx = np.abs(np.diff(grey, axis=1, append=grey[:, -1:]))
        dy = np.abs(np.diff(grey, axis=0, append=grey[-1:, :]))
        residual = np.abs(lap) + dx + dy
    else:
        raise ValueError(f"unknown residual mode {mode!r}; use 'energy' or 'linear'")
    return (residual - residual.mean()).astype(np.float32)


def residual_spectrum(
    image: ImageSource, mode: SpectrumMode = "energy", *, max_side: int = SPECTRUM_MAX_SIDE
) -> np.ndarray:
    """Centred log-magnitude 2-D spectrum of the image's high-pass residual.

    The residual (see `high_pass_residual`) is windowed (Hann) to avoid edge artefacts,
    Fourier-transformed, shifted so that zero frequency is at the centre, and its
    ``log(1 + |F|)`` is scaled to [0, 1] (1st percentile -> 0, maximum -> 1). A periodic
    trace with period ``T`` pixels along x shows as bright dots ``W / T`` columns left and
    right of the centre: 2x upscaling puts them at the left/right edges (Nyquist), 4x at a
    quarter of the width from the centre, an 8x8 JPEG grid at multiples of ``W / 8``.

    Args:
        image: Any accepted image source.
        mode: ``"energy"`` (default) shows resampling and upscaling as bright dots;
            ``"linear"`` is the plain residual spectrum, where additive periodic patterns
            (e.g. checkerboard artefacts) are dots and resampling shows as dark lines.
        max_side: Larger images are centre-cropped to this side.

    Returns:
        float32 (h, w) in [0, 1], the size of the analysed (possibly cropped) image.
    """
    residual = high_pass_residual(image, mode)
    residual = _centre_crop(residual, max_side)
    height, width = residual.shape
    window = np.outer(np.hanning(height), np.hanning(width)).astype(np.float32)
    spectrum = np.fft.fftshift(np.fft.fft2(residual * window))
    magnitude = np.log1p(np.abs(spectrum)).astype(np.float32)
    low = float(np.percentile(magnitude, 1.0))
    high = float(magnitude.max())
    if high - low < 1e-12:
        return np.zeros_like(magnitude)
    return np.clip((magnitude - low) / (high - low), 0.0, 1.0).astype(np.float32)


def residual_spectrum_rgb(
    image: ImageSource, mode: SpectrumMode = "energy", *, colormap: str = "inferno"
) -> np.ndarray:
    """`residual_spectrum` colourised: uint8 RGB (h, w, 3).

    Args:
        image: Any accepted image source.
        mode: See `residual_spectrum`.
        colormap: One of ``detector.core.heatmaps.COLORMAPS``.
    """
    return colorize_map(residual_spectrum(image, mode), colormap)


def error_level_analysis(
    image: ImageSource, quality: int = 90, *, scale: float | None = None
) -> np.ndarray:
    """Error level analysis: how much each pixel changes when re-saved as JPEG.

    Args:
        image: Any accepted image source (decoded to RGB first).
        quality: JPEG quality of the re-save (1-100).
        scale: Multiplier from the absolute difference (0-255 levels, largest over the three
            channels) to the map; None (default) scales so that the 99.5th percentile, or 2
            levels if larger, maps to 1 (contrast suited to display, not comparable across
            images).

    Returns:
        float32 (H, W) in [0, 1].

    Raises:
        ValueError: if ``quality`` is outside 1-100.
    """
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    rgb = load_image(image)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as resaved:
        again = np.asarray(resaved.convert("RGB"), dtype=np.int16)
    diff = np.abs(rgb.astype(np.int16) - again).max(axis=2).astype(np.float32)
    if scale is None:
        top = max(float(np.percentile(diff, 99.5)), 2.0)
        ela = diff / top
    else:
        ela = diff * float(scale) / 255.0
    return np.clip(ela, 0.0, 1.0).astype(np.float32)


def error_level_analysis_rgb(
    image: ImageSource, quality: int = 90, *, colormap: str = "inferno"
) -> np.ndarray:
    """`error_level_analysis` colourised: uint8 RGB (H, W, 3).

    Args:
        image: Any accepted image source.
        quality: JPEG quality of the re-save.
        colormap: One of ``detector.core.heatmaps.COLORMAPS``.
    """
    return colorize_map(error_level_analysis(image, quality), colormap)


def colorize_map(values: np.ndarray, colormap: str = "inferno") -> np.ndarray:
    """A [0, 1] float map as a uint8 RGB image.

    Args:
        values: float (H, W), clipped to [0, 1].
        colormap: One of ``detector.core.heatmaps.COLORMAPS`` (``inferno``, ``viridis``, ``jet``,
            ``turbo``).

    Raises:
        ValueError: for an unknown colormap.
    """
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; known: {', '.join(COLORMAPS)}")
    return colorize(np.asarray(values, dtype=np.float32), colormap)
