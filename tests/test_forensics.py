"""Forensic views: residual spectrum peaks from upsampling, and ELA on a spliced image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import encode, make_image

from detector.evidence import forensics
from detector.evidence.forensics import (
    ELA_EXPLANATION,
    RESIDUAL_SPECTRUM_EXPLANATION,
    colorize_map,
    error_level_analysis,
    error_level_analysis_rgb,
    high_pass_residual,
    residual_spectrum,
    residual_spectrum_rgb,
)

SIDE = 256


def prominence(spectrum: np.ndarray, y: int, x: int) -> float:
    """Value at (y, x) minus the median of its 13x13 neighbourhood (centre 5x5 excluded)."""
    height, width = spectrum.shape
    ys = [(y + d) % height for d in range(-6, 7)]
    xs = [(x + d) % width for d in range(-6, 7)]
    patch = spectrum[np.ix_(ys, xs)].astype(np.float64)
    centre = patch[6, 6]
    patch[4:9, 4:9] = np.nan
    return float(centre - np.nanmedian(patch))


def expected_peaks(spectrum: np.ndarray, factor: int) -> list[float]:
    """Prominence where a period-`factor` trace puts its peaks, along x and along y."""
    height, width = spectrum.shape
    cy, cx = height // 2, width // 2
    return [
        prominence(spectrum, cy, (cx + width // factor) % width),
        prominence(spectrum, (cy + height // factor) % height, cx),
    ]


def upsampled(factor: int, interpolation: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (SIDE // factor, SIDE // factor, 3), dtype=np.uint8)
    return cv2.resize(small, (SIDE, SIDE), interpolation=interpolation)


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize(
    "interpolation", [cv2.INTER_NEAREST, cv2.INTER_LINEAR], ids=["nearest", "bilinear"]
)
def test_upsampling_shows_periodic_peaks(factor, interpolation):
    spectrum = residual_spectrum(upsampled(factor, interpolation))
    assert all(p > 0.4 for p in expected_peaks(spectrum, factor))


def test_upsampled_texture_shows_peaks_too():
    small = make_image(SIDE // 4, SIDE // 4, seed=5)
    big = cv2.resize(small, (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)
    assert all(p > 0.4 for p in expected_peaks(residual_spectrum(big), 4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_image_has_no_peaks(seed):
    noise = np.random.default_rng(seed).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    spectrum = residual_spectrum(noise)
    for factor in (2, 4, 8):
        assert all(p < 0.3 for p in expected_peaks(spectrum, factor))


def test_linear_mode_shows_an_additive_checkerboard():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    noise = rng.normal(128, 20, (SIDE, SIDE))
    checker = np.clip(noise + 6 * (-1.0) ** (xx + yy), 0, 255).astype(np.uint8)
    plain = np.clip(noise, 0, 255).astype(np.uint8)
    # (-1)^(x+y) lives at the (Nyquist, Nyquist) corner of the centred spectrum.
    assert prominence(residual_spectrum(checker, "linear"), 0, 0) > 0.3
    assert prominence(residual_spectrum(plain, "linear"), 0, 0) < 0.15


def test_spectrum_shape_range_and_rgb():
    image = make_image(100, 140, seed=1)
    spectrum = residual_spectrum(image)
    assert spectrum.shape == (100, 140) and spectrum.dtype == np.float32
    assert spectrum.min() >= 0.0 and spectrum.max() <= 1.0 and spectrum.max() == pytest.approx(1)
    rgb = residual_spectrum_rgb(encode(image, "PNG"))
    assert rgb.shape == (100, 140, 3) and rgb.dtype == np.uint8


def test_spectrum_crops_large_images():
    image = make_image(300, 200, seed=2)
    assert residual_spectrum(image, max_side=128).shape == (128, 128)


def test_flat_image_gives_zero_spectrum():
    flat = np.full((64, 64, 3), 90, dtype=np.uint8)
    spectrum = residual_spectrum(flat)
    assert spectrum.shape == (64, 64) and float(spectrum.max()) == 0.0


def test_residual_modes():
    image = make_image(64, 64, seed=3)
    assert high_pass_residual(image, "linear").shape == (64, 64)
    assert abs(float(high_pass_residual(image, "energy").mean())) < 1e-3
    with pytest.raises(ValueError):
        high_pass_residual(image, "bogus")  # type: ignore[arg-type]


def spliced() -> tuple[np.ndarray, tuple[slice, slice]]:
    """A JPEG-compressed background with a never-compressed patch pasted in."""
    background = cv2.GaussianBlur(make_image(256, 256, seed=4), (0, 0), 1.5)
    compressed = cv2.imdecode(
        np.frombuffer(encode(background, "JPEG", quality=90), np.uint8), cv2.IMREAD_COLOR
    )[..., ::-1]
    patch = cv2.GaussianBlur(make_image(96, 96, seed=9), (0, 0), 1.5)
    region = (slice(80, 176), slice(64, 160))
    image = np.ascontiguousarray(compressed.copy())
    image[region] = patch
    return image, region


def test_ela_spliced_region_stands_out():
    image, region = spliced()
    ela = error_level_analysis(image, quality=90)
    assert ela.shape == image.shape[:2] and ela.dtype == np.float32
    assert ela.min() >= 0.0 and ela.max() <= 1.0
    inside = float(ela[region].mean())
    mask = np.ones(ela.shape, bool)
    mask[region] = False
    outside = float(ela[mask].mean())
    assert inside > 2.0 * outside


def test_ela_fixed_scale_and_rgb():
    image, _ = spliced()
    fixed = error_level_analysis(image, 90, scale=20.0)
    assert fixed.min() >= 0.0 and fixed.max() <= 1.0
    rgb = error_level_analysis_rgb(encode(image, "PNG"), 90)
    assert rgb.shape == (*image.shape[:2], 3) and rgb.dtype == np.uint8
    with pytest.raises(ValueError):
        error_level_analysis(image, quality=0)


def test_explanations_and_colormap():
    for text in (RESIDUAL_SPECTRUM_EXPLANATION, ELA_EXPLANATION):
        assert isinstance(text, str) and len(text) > 40 and "\n" not in text
    assert colorize_map(np.zeros((4, 5)), "viridis").shape == (4, 5, 3)
    with pytest.raises(ValueError):
        colorize_map(np.zeros((4, 4)), "rainbow")
    assert forensics.SPECTRUM_MAX_SIDE >= 256


def test_bad_image_raises_detector_error():
    from detector.core.errors import ImageLoadError

    with pytest.raises(ImageLoadError):
        residual_spectrum(b"not an image at all")
    with pytest.raises(ImageLoadError):
        error_level_analysis(b"")
