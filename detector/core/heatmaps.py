"""Pure numpy helpers for explanation maps: normalisation, upsampling and colour overlays."""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import zoom

from detector.core.spec import Preprocessing

#: Default opacity of a heatmap over its image, 0 to 1: one value for the API, the CLI and the apps.
DEFAULT_ALPHA = 0.45

#: Added to the denominator of the min-max normalisation (the same constant as tf-keras-vis).
NORM_EPSILON = 1e-7

COLORMAPS: dict[str, int] = {
    "jet": cv2.COLORMAP_JET,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "turbo": cv2.COLORMAP_TURBO,
}


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Min-max normalise each map of a batch (N, H, W) to [0, 1], as tf-keras-vis does."""
    maps = np.asarray(maps, dtype=np.float32)
    axes = tuple(range(1, maps.ndim))
    low = maps.min(axis=axes, keepdims=True)
    high = maps.max(axis=axes, keepdims=True)
    return (maps - low) / (high - low + NORM_EPSILON)


def upsample_maps(maps: np.ndarray, size: int) -> np.ndarray:
    """Upsample a batch of coarse maps (N, h, w) to (N, size, size), linearly (scipy zoom order 1).

    This is tf-keras-vis's upsampling, so compiled maps and its maps agree exactly.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape[1:] == (size, size):
        return maps
    factors = (1.0, size / maps.shape[1], size / maps.shape[2])
    return zoom(maps, factors, order=1)


def to_image_size(heatmap: np.ndarray, height: int, width: int, prep: Preprocessing) -> np.ndarray:
    """Map a heatmap over the model input (size, size) back onto an H x W image.

    With centre cropping, pixels outside the crop the model saw get 0.
    """
    return place_on_image(heatmap, prep.crop_box(height, width), height, width)


def place_on_image(
    heatmap: np.ndarray, box: tuple[int, int, int, int], height: int, width: int
) -> np.ndarray:
    """Resize a heatmap onto ``box`` (top, left, bottom, right, inside the image) of an H x W
    image; 0 elsewhere, values clipped to [0, 1]."""
    top, left, bottom, right = box
    resized = cv2.resize(
        heatmap.astype(np.float32), (right - left, bottom - top), interpolation=cv2.INTER_LINEAR
    )
    if (top, left, bottom, right) == (0, 0, height, width):
        out = resized
    else:
        out = np.zeros((height, width), dtype=np.float32)
        out[top:bottom, left:right] = resized
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def overlay_heatmap(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = DEFAULT_ALPHA, colormap: str = "jet"
) -> np.ndarray:
    """Blend a [0, 1] heatmap over an RGB uint8 image.

    Args:
        image: (H, W, 3) uint8 RGB.
        heatmap: (H, W) float in [0, 1] (resized to the image if needed).
        alpha: Opacity of the heatmap, 0 (image only) to 1 (heatmap only).
        colormap: One of `COLORMAPS`.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; known: {', '.join(COLORMAPS)}")
    height, width = image.shape[:2]
    if heatmap.shape != (height, width):
        heatmap = cv2.resize(heatmap.astype(np.float32), (width, height))
    levels = np.clip(np.rint(np.clip(heatmap, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)
    colored = cv2.cvtColor(cv2.applyColorMap(levels, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)
    blended = image.astype(np.float32) * (1.0 - alpha) + colored.astype(np.float32) * alpha
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def colorize(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """The heatmap alone as an RGB uint8 image."""
    levels = np.clip(np.rint(np.clip(heatmap, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)
