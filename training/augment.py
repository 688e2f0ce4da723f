"""Augmentations applied the same way to both classes, so models survive how images travel.

Everything works on RGB uint8 arrays and a `numpy.random.Generator`, so a run is reproducible
from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class RobustAugment:
    """Random JPEG re-encoding, resizing, blur and crops (each with its own probability).

    Attributes:
        p_jpeg: Probability of re-encoding as JPEG with quality in ``jpeg_quality``.
        jpeg_quality: Inclusive quality range.
        p_resize: Probability of downscaling by a factor in ``resize_range`` and back up.
        resize_range: Scale factors.
        p_blur: Probability of a Gaussian blur with sigma in ``blur_sigma``.
        blur_sigma: Sigma range in pixels.
        p_crop: Probability of a random crop keeping ``crop_fraction`` of each side.
        crop_fraction: Side fraction range.
        p_flip: Probability of a horizontal flip.
    """

    p_jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (60, 100)
    p_resize: float = 0.3
    resize_range: tuple[float, float] = (0.5, 1.0)
    p_blur: float = 0.15
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    p_crop: float = 0.3
    crop_fraction: tuple[float, float] = (0.6, 1.0)
    p_flip: float = 0.5

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment one RGB uint8 image (returns a new array)."""
        out = image
        if rng.random() < self.p_crop:
            out = random_crop(out, rng, *self.crop_fraction)
        if rng.random() < self.p_flip:
            out = out[:, ::-1]
        if rng.random() < self.p_resize:
            out = down_up(out, float(rng.uniform(*self.resize_range)))
        if rng.random() < self.p_blur:
            out = gaussian_blur(out, float(rng.uniform(*self.blur_sigma)))
        out = RandomJpeg(self.p_jpeg, self.jpeg_quality)(out, rng)
        return np.ascontiguousarray(out)


@dataclass(frozen=True)
class RandomJpeg:
    """Re-encode as JPEG with probability ``p`` at a quality drawn from ``quality``."""

    p: float = 0.5
    quality: tuple[int, int] = (60, 100)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < self.p:
            return jpeg(image, int(rng.integers(self.quality[0], self.quality[1] + 1)))
        return image


@dataclass(frozen=True)
class GeometricColourAugment:
    """S4's augmentation: horizontal flip, small rotation and colour jitter."""

    max_degrees: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = image[:, ::-1] if rng.random() < 0.5 else image
        angle = float(rng.uniform(-self.max_degrees, self.max_degrees))
        h, w = out.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        out = cv2.warpAffine(
            np.ascontiguousarray(out), matrix, (w, h), borderMode=cv2.BORDER_REFLECT_101
        )
        x = out.astype(np.float32)
        x = x * float(rng.uniform(1 - self.brightness, 1 + self.brightness))
        mean = x.mean()
        x = (x - mean) * float(rng.uniform(1 - self.contrast, 1 + self.contrast)) + mean
        grey = x.mean(axis=2, keepdims=True)
        x = (x - grey) * float(rng.uniform(1 - self.saturation, 1 + self.saturation)) + grey
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)


class Compose:
    """Apply several augmentations in order."""

    def __init__(self, *steps) -> None:
        self.steps = steps

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for step in self.steps:
            image = step(image, rng)
        return image


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode as JPEG at ``quality`` (OpenCV, 4:2:0 chroma subsampling)."""
    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def down_up(image: np.ndarray, factor: float) -> np.ndarray:
    """Downscale by ``factor`` (area) and back to the original size (bilinear)."""
    h, w = image.shape[:2]
    small = (max(8, round(w * factor)), max(8, round(h * factor)))
    low = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    return cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)


def downscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Downscale by ``factor`` (area); the image stays smaller."""
    h, w = image.shape[:2]
    size = (max(8, round(w * factor)), max(8, round(h * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with the given sigma."""
    return cv2.GaussianBlur(np.ascontiguousarray(image), (0, 0), sigmaX=sigma)


def random_crop(image: np.ndarray, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Crop a random window keeping a fraction in [low, high] of each side."""
    h, w = image.shape[:2]
    frac = float(rng.uniform(low, high))
    ch, cw = max(8, int(h * frac)), max(8, int(w * frac))
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    return image[top : top + ch, left : left + cw]


def center_crop(image: np.ndarray, fraction: float) -> np.ndarray:
    """Keep the central ``fraction`` of each side."""
    h, w = image.shape[:2]
    ch, cw = max(8, int(h * fraction)), max(8, int(w * fraction))
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top : top + ch, left : left + cw]
