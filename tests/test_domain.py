"""Domain warnings: plain-language notes when an input is far from the training data."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from conftest import encode, make_image, tiny_card

from detector.domain import (
    colour_count,
    domain_warnings,
    flat_fraction,
    image_checks,
    image_warnings,
    is_greyscale,
    model_warnings,
    training_side,
)
from detector.images import ImageInfo, decode_image
from detector.spec import Preprocessing


def card_with(size: int = 128, training_data=None, resize: str = "resize"):
    card = tiny_card("t", "simple_cnn", training_data=training_data or {})
    spec = dataclasses.replace(card.spec, preprocessing=Preprocessing(size=size, resize=resize))
    return dataclasses.replace(card, spec=spec)


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth-ish colour photo stand-in with noise (many colours, no flat areas)."""
    return cv2.GaussianBlur(make_image(height, width, seed), (0, 0), 0.7)


def warnings_for(array, card, fmt="PNG", mode="RGB", data=None, frames=1):
    info = ImageInfo(fmt, array.shape[1], array.shape[0], mode, frames, None)
    return domain_warnings(info, array, card, data=data)


def test_normal_image_gives_no_warning():
    array = photo(160, 200)
    data = encode(array, "JPEG", quality=90)
    decoded, info = decode_image(data)
    assert domain_warnings(info, decoded, card_with(128), data=data) == ()


def test_training_side_from_card_or_input_size():
    assert training_side(card_with(128)) == (128, "model input size")
    assert training_side(card_with(128, {"tile_size": 256})) == (256, "training data")
    assert training_side(card_with(128, {"images": {"resolution": "512x512"}})) == (
        512,
        "training data",
    )
    assert training_side(card_with(96, {"dataset": "x", "splits": {"n": 3}})) == (
        96,
        "model input size",
    )


def test_far_larger_than_training_tiles():
    array = photo(100, 290)
    card = card_with(32)
    found = warnings_for(array, card)
    assert any("far larger" in w for w in found)
    assert not any("far larger" in w for w in warnings_for(array, card_with(32, {"tile_size": 64})))


def test_smaller_than_input_and_very_small():
    assert any(
        "smaller than the model's 128 px" in w
        for w in warnings_for(photo(100, 110), card_with(128))
    )
    tiny = warnings_for(photo(40, 48), card_with(128))
    assert any("very small" in w for w in tiny)
    assert not any("smaller than the model" in w for w in tiny)
    assert any("very small" in w for w in warnings_for(photo(40, 48), None))


def test_elongated_image():
    squashed = warnings_for(photo(80, 300), card_with(64))
    assert any("squashes" in w for w in squashed)
    cropped = warnings_for(photo(80, 300), card_with(64, resize="center_crop"))
    assert any("central square" in w for w in cropped)


def screenshot_like(height=300, width=400) -> np.ndarray:
    image = np.full((height, width, 3), 245, np.uint8)
    image[:40] = (30, 60, 120)  # a title bar
    cv2.rectangle(image, (20, 60), (200, 280), (200, 200, 200), -1)
    for row in range(70, 270, 20):
        cv2.putText(
            image, "Lorem ipsum dolor", (220, row), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1
        )
    return image


def test_screenshot_like_flat_and_few_colours():
    image = screenshot_like()
    assert flat_fraction(image) > 0.5 and colour_count(image) < 4096
    assert any("screenshot" in w for w in warnings_for(image, card_with(128)))
    assert flat_fraction(photo(100, 100)) < 0.05


def test_png_at_screen_size_without_camera_exif():
    array = photo(1080, 1920, seed=3)
    assert any("typical screen size" in w for w in warnings_for(array, None, fmt="PNG"))
    assert not any("screen" in w for w in warnings_for(array, None, fmt="JPEG"))


def test_heavy_jpeg_compression_needs_the_bytes():
    array = photo(160, 200)
    low = encode(array, "JPEG", quality=40)
    found = warnings_for(array, card_with(128), fmt="JPEG", data=low)
    assert any("heavily compressed (quality about 40)" in w for w in found)
    assert not any("compressed" in w for w in warnings_for(array, card_with(128), fmt="JPEG"))
    high = encode(array, "JPEG", quality=85)
    assert not any(
        "compressed" in w for w in warnings_for(array, card_with(128), "JPEG", data=high)
    )


def test_greyscale_by_mode_or_pixels():
    grey = cv2.cvtColor(photo(160, 200), cv2.COLOR_RGB2GRAY)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    assert is_greyscale(rgb) and not is_greyscale(photo(50, 50))
    # any one channel off by more than the tolerance on over 0.5 % of pixels: not grey
    for channel in range(3):
        for offset, grey_expected in ((3, True), (4, False)):
            tinted = rgb.astype(np.int16)
            tinted[::4, :, channel] += offset  # every 4th row (the check samples every 2nd)
            tinted = np.clip(tinted, 0, 255).astype(np.uint8)
            assert is_greyscale(tinted) is grey_expected, (channel, offset)
    assert any("black-and-white" in w for w in warnings_for(rgb, card_with(128)))
    data = encode(grey, "PNG")
    decoded, info = decode_image(data)
    assert info.mode == "L"
    assert any(
        "black-and-white" in w for w in domain_warnings(info, decoded, card_with(128), data=data)
    )


def test_animation_warning():
    found = warnings_for(photo(160, 200), card_with(128), fmt="GIF", frames=4)
    assert any("4 frames" in w for w in found)


@pytest.mark.parametrize("size", [(16, 16), (64, 64)])
def test_warnings_are_plain_sentences(size):
    found = warnings_for(photo(*size), card_with(128))
    assert found and all(w[0].isupper() and w.endswith(".") for w in found)


def test_warnings_split_into_a_model_part_and_an_image_part():
    grey = np.repeat(cv2.cvtColor(photo(40, 300), cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    data = encode(grey, "JPEG", quality=30)
    decoded, info = decode_image(data)
    checks = image_checks(info, decoded, data=data)
    assert checks.jpeg_quality == 30 and checks.greyscale and not checks.screenshot_like
    cards = [None, card_with(128), card_with(16, resize="native_crop"), card_with(64, {"tile": 8})]
    for card in cards:
        found = domain_warnings(info, decoded, card, data=data)
        assert found == model_warnings(checks, card) + image_warnings(checks)
        assert domain_warnings(info, decoded, card, checks=checks) == found
    assert len(image_warnings(checks)) == 2  # compression and black-and-white, for every model
    assert any("very small" in w for w in model_warnings(checks, None))
    assert any("elongated" in w for w in model_warnings(checks, card_with(128)))
    assert not any("elongated" in w for w in model_warnings(checks, None))
