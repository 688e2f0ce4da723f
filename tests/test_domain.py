"""Domain warnings: plain-language notes when an input is far from the training data."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from conftest import encode, make_image, tiny_card

from detector.core.domain import (
    colour_count,
    domain_warnings,
    flat_fraction,
    image_checks,
    image_warnings,
    is_greyscale,
    model_warnings,
    patch_coverage,
    training_side,
)
from detector.core.images import ImageInfo, decode_image
from detector.core.patches import patch_grid
from detector.core.spec import Preprocessing

INFO = ImageInfo("PNG", 0, 0, "RGB", 1, None)


def card_with(size: int = 128, training_data=None, resize: str = "resize", **prep):
    card = tiny_card("t", "simple_cnn", training_data=training_data or {})
    preprocessing = Preprocessing(size=size, resize=resize, **prep)
    spec = dataclasses.replace(card.spec, preprocessing=preprocessing)
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


def test_a_far_larger_image_says_how_many_patches_were_scored_and_averaged():
    """A native-resolution model scores a large image on a grid of patches and averages them."""
    card = card_with(32, resize="native_crop")
    found = warnings_for(photo(100, 290), card)
    assert len(patch_grid(100, 290, 32)) == 16
    # 4 rows of patches cover the 100 rows; 4 columns of 32 px cover 128 of the 290 columns
    assert patch_coverage(100, 290, card.spec.preprocessing) == (16, 128 / 290)
    sizes = [w for w in found if "far larger" in w or "elongated" in w]
    assert sizes == [
        "This image (290x100 px) is far larger than 32 px the model learned from; it is scored "
        "on 16 patches of 32x32 px at full resolution spread over it (together they cover "
        "about 44 % of it) and their scores are averaged, so a small altered region can be "
        "diluted by the rest of the picture: look at the patch map for a patch that stands out."
    ]
    assert not any("central" in w or "not looked at" in w or "squashes" in w for w in found)
    fewer = model_warnings(image_checks(INFO, photo(100, 290)), card, max_patches=6)
    assert "it is scored on 6 patches of 32x32 px" in fewer[0]
    with_whole = warnings_for(photo(100, 290), card_with(32, resize="native_crop", whole_view=True))
    assert (
        "(together they cover about 44 % of it), plus the whole picture shrunk to 32x32 px, and "
        "their scores are averaged" in with_whole[0]
    )
    tiles = card_with(32, {"tile_size": 16}, resize="native_crop")
    huge = warnings_for(photo(2100, 2000), tiles)[0]
    assert huge.startswith("This image (2000x2100 px) is far larger than the 16 px training")
    assert "16 patches of 32x32 px" in huge and "(together they cover less than 1 % of it)" in huge


def test_an_image_less_than_two_patches_wide_keeps_the_single_centre_crop():
    card = card_with(32, resize="native_crop")
    found = warnings_for(photo(40, 300), card)  # 40 rows: room for one 32 px patch, not two
    assert len(patch_grid(40, 300, 32)) == 1
    assert [w for w in found if "far larger" in w or "elongated" in w] == [
        "This image (300x40 px) is far larger than 32 px the model learned from; it is too "
        "narrow to hold two 32 px patches side by side, so it is scored on the single central "
        "32x32 px patch at full resolution, and anything outside that patch is not looked at."
    ]
    elongated = warnings_for(photo(40, 120), card)  # not far larger, but very elongated
    assert [w for w in elongated if "elongated" in w] == [
        "This image is very elongated; it is too narrow to hold two 32 px patches side by "
        "side, so it is scored on the single central 32x32 px patch at full resolution, and "
        "anything outside that patch is not looked at."
    ]
    smaller = warnings_for(photo(20, 300), card)  # smaller than the input: enlarged
    assert any(
        "it is scored on its central 20x20 px square, enlarged to the model's 32 px input, and "
        "anything outside that square is not looked at." in w
        for w in smaller
    )
    assert any("very small" in w for w in smaller)  # and said to be too small
    whole = warnings_for(photo(40, 300), card_with(32, resize="native_crop", whole_view=True))
    assert (
        "single central 32x32 px patch at full resolution and on the whole picture shrunk to "
        "32x32 px, and the two scores are averaged; outside that patch the model sees the "
        "picture only shrunk, without its fine detail." in whole[0]
    )


def test_an_elongated_image_is_not_said_to_be_squashed_by_a_native_resolution_model():
    card = card_with(32, resize="native_crop")
    assert not any(
        "elongated" in w or "squashes" in w for w in warnings_for(photo(64, 129), card)
    )  # 2 x 4 patches cover nearly all of it
    partly = [w for w in warnings_for(photo(70, 150), card) if "elongated" in w]
    assert partly == [
        "This image is very elongated; it is scored on 12 patches of 32x32 px at full "
        "resolution spread over it (together they cover about 85 % of it) and their scores "
        "are averaged, so a small altered region can be diluted by the rest of the picture: "
        "look at the patch map for a patch that stands out."
    ]


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


def test_a_model_measured_weak_in_the_wild_says_so_on_every_answer():
    from detector.core.domain import image_checks, measured_warning, model_warnings
    from detector.core.images import decode_image

    card = tiny_card("m", "simple_cnn", threshold=0.5)
    assert measured_warning(card) is None  # no truth table: nothing to say
    weak = {
        "wild_test": {"clean": {"roc_auc": 0.356}},
        "controls_test": {"clean": {"false_positive_rate": 0.556}},
    }
    weak_card = dataclasses.replace(card, metrics={"truth": weak})
    text = measured_warning(weak_card)
    assert "ROC-AUC 0.36 (0.5 is chance)" in text and "56% of enlarged" in text
    data = encode(make_image(64, 64))
    array, info = decode_image(data)
    assert text in model_warnings(image_checks(info, array, data=data), weak_card)
    strong = dataclasses.replace(
        card, metrics={"truth": {"wild_test": {"clean": {"roc_auc": 0.91}}}}
    )
    assert measured_warning(strong) is None
    # the files as published, when measured, are what an upload is: their figures are told
    files = {"roc_auc": 0.67, "recall": 0.33, "false_positive_rate": 0.083}
    published = dataclasses.replace(
        card, metrics={"truth": {**weak, "wild_files_test": {"clean": files}}}
    )
    text = measured_warning(published)
    assert text.startswith("Measured on files as published") and "ROC-AUC 0.67" in text
    told = "it caught 33% of the AI-generated images, flagged 8% of the real ones and called 56%"
    assert told in text
    strong_files = {"truth": {**weak, "wild_files_test": {"clean": {**files, "roc_auc": 0.8}}}}
    assert measured_warning(dataclasses.replace(card, metrics=strong_files)) is None
