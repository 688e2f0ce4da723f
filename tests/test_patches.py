"""Whole-image scoring: the patch grid, the mean-logit combination, the patch map, explanations.

A model whose fake logit is an affine function of a patch's mean brightness gives every patch a
known score, so a bright patch in a dark image is the one the verdict, the map and the
explanation must point at.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_image, tiny_card

from detector.core._keras import keras
from detector.core.card import ModelCard
from detector.core.heatmaps import colorize, to_image_size
from detector.core.patches import (
    MAX_PATCHES,
    calibrate,
    combine,
    image_views,
    patch_grid,
    patch_map,
    place_heatmap,
    score_patches,
    score_patches_batch,
)
from detector.core.recipes import get_recipe
from detector.core.runtime import Detector
from detector.core.spec import ModelSpec, Preprocessing

layers = keras.layers

SIZE = 32
#: The brightness model's fake logit: SLOPE * mean patch brightness (0-255) + BIAS.
SLOPE, BIAS = 8.0 / 255.0, -4.0
TEMPERATURE = 2.0
DARK, BRIGHT = 20, 230


def covered(boxes, height, width) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    for top, left, bottom, right in boxes:
        mask[top:bottom, left:right] = True
    return mask


# ----------------------------------------------------------------------------- the grid
@pytest.mark.parametrize("grid", [1, 8])
@pytest.mark.parametrize(
    "height, width", [(20, 24), (31, 200), (40, 50), (63, 63), (63, 500), (500, 63), (32, 32)]
)
def test_an_image_without_room_for_two_patches_gets_the_centre_crop(height, width, grid):
    prep = Preprocessing(size=SIZE, resize="native_crop", grid=grid)
    assert patch_grid(height, width, SIZE, grid=grid) == [prep.crop_box(height, width)]
    views = image_views(make_image(height, width), prep)
    np.testing.assert_array_equal(views.batch, prep.apply(make_image(height, width))[None])


@pytest.mark.parametrize("grid", [1, 8])
@pytest.mark.parametrize("height, width", [(64, 64), (64, 100), (77, 128), (100, 128), (128, 90)])
def test_up_to_four_patches_a_side_cover_the_image(height, width, grid):
    boxes = patch_grid(height, width, SIZE, grid=grid)
    rows = -(-height // SIZE)
    cols = -(-width // SIZE)
    assert len(boxes) == rows * cols == len(set(boxes))
    for top, left, bottom, right in boxes:
        assert bottom - top == right - left == SIZE
        assert top >= 0 and left >= 0 and bottom <= height and right <= width
        assert top % grid == 0 and left % grid == 0
    # everything is looked at, but for the last grid - 1 rows and columns the grid rounds off
    mask = covered(boxes, height, width)
    assert mask[: height - (height % grid), : width - (width % grid)].all()
    assert boxes == sorted(boxes)  # reading order


def test_a_large_photo_gets_a_four_by_four_grid_on_the_jpeg_grid():
    boxes = patch_grid(3000, 4000, 224, grid=8)
    assert len(boxes) == MAX_PATCHES == 16
    tops = sorted({b[0] for b in boxes})
    lefts = sorted({b[1] for b in boxes})
    assert len(tops) == len(lefts) == 4
    assert tops[0] == lefts[0] == 0
    assert 3000 - 8 < tops[-1] + 224 <= 3000 and 4000 - 8 < lefts[-1] + 224 <= 4000
    assert all(v % 8 == 0 for v in tops + lefts)
    for steps in (np.diff(tops), np.diff(lefts)):  # evenly spread, to the 8 px grid
        assert steps.max() - steps.min() <= 8
    assert covered(boxes, 3000, 4000).mean() == pytest.approx(16 * 224 * 224 / 12e6)


@pytest.mark.parametrize("max_patches", [1, 2, 3, 5, 6, 8, 12, 16])
def test_max_patches_is_respected_and_the_grid_follows_the_image_shape(max_patches):
    boxes = patch_grid(3000, 4000, 224, max_patches=max_patches, grid=8)
    assert 1 <= len(boxes) <= max_patches
    rows, cols = len({b[0] for b in boxes}), len({b[1] for b in boxes})
    assert rows * cols == len(boxes) and rows <= cols  # landscape: no more rows than columns
    if max_patches == 1:
        assert boxes == [Preprocessing(224, "native_crop", grid=8).crop_box(3000, 4000)]
    expected = {1: 1, 2: 2, 3: 3, 5: 4, 6: 6, 8: 8, 12: 12, 16: 16}[max_patches]
    assert len(boxes) == expected
    with pytest.raises(ValueError, match="max_patches"):
        patch_grid(300, 400, 32, max_patches=0)


def test_a_panorama_spreads_along_its_long_side():
    boxes = patch_grid(70, 1000, SIZE)
    tops, lefts = sorted({b[0] for b in boxes}), sorted({b[1] for b in boxes})
    assert tops == [0, 19, 70 - SIZE] and len(lefts) == 4
    assert lefts[0] == 0 and lefts[-1] == 1000 - SIZE


# ----------------------------------------------------------------------------- combining
def test_combine_is_the_mean_logit_and_calibrate_the_tempered_sigmoid():
    assert combine([2.0, -1.0, 0.5]) == pytest.approx(0.5)
    assert combine(np.array([[3.0]])) == 3.0
    with pytest.raises(ValueError):
        combine([])
    assert float(calibrate(0.0, 2.0)) == 0.5
    assert float(calibrate(4.0, 2.0)) == pytest.approx(1.0 / (1.0 + np.exp(-2.0)))
    assert float(calibrate(-1e4, 1.0)) == 0.0  # no overflow warning


# ----------------------------------------------------------------------------- brightness
def brightness_detector(**prep) -> Detector:
    """fake logit = SLOPE * mean brightness + BIAS, through a 1x1 convolution Grad-CAM reads."""
    inputs = keras.Input((SIZE, SIZE, 3), name="input")
    grey = layers.Conv2D(
        1,
        1,
        name="conv",
        kernel_initializer=keras.initializers.Constant(1.0 / 3.0),
        bias_initializer="zeros",
    )(inputs)
    pooled = layers.GlobalAveragePooling2D(name="pool")(grey)
    logits = layers.Dense(
        1,
        name="logits",
        kernel_initializer=keras.initializers.Constant(SLOPE),
        bias_initializer=keras.initializers.Constant(BIAS),
    )(pooled)
    model = keras.Model(inputs, layers.Activation("sigmoid", name="probs")(logits))
    spec = ModelSpec(
        recipe="brightness",
        preprocessing=Preprocessing(size=SIZE, resize="native_crop", **prep),
        output="sigmoid_fake",
        gradcam_layer="conv",
    )
    card = ModelCard(
        name="brightness", spec=spec, sha256="", temperature=TEMPERATURE, uncertain_band=(0.4, 0.6)
    )
    return Detector(model, card)


@pytest.fixture(scope="module")
def bright():
    return brightness_detector()


def dark_image_with_a_bright_patch(height=4 * SIZE, width=4 * SIZE, top=SIZE, left=2 * SIZE):
    """Dark with a little noise (so that every patch has a map to normalise), one patch bright."""
    noise = np.random.default_rng(0).integers(0, 9, (height, width, 1))
    image = np.repeat(DARK + noise, 3, axis=2).astype(np.uint8)
    image[top : top + SIZE, left : left + SIZE] += BRIGHT - DARK
    return image


def logit_of(level: float) -> float:
    return SLOPE * level + BIAS


def patch_logit(image: np.ndarray, box) -> float:
    top, left, bottom, right = box
    return logit_of(float(image[top:bottom, left:right].mean()))


def test_the_verdict_is_the_mean_patch_logit_through_the_temperature(bright):
    image = dark_image_with_a_bright_patch()
    result = bright.predict(image)
    assert len(result.patches) == 16
    boxes = [(p.y, p.x, p.y + p.size, p.x + p.size) for p in result.patches]
    assert boxes == patch_grid(4 * SIZE, 4 * SIZE, SIZE)
    expected = [patch_logit(image, box) for box in boxes]
    np.testing.assert_allclose([p.fake_logit for p in result.patches], expected, atol=1e-4)
    np.testing.assert_allclose(
        [p.p_fake for p in result.patches], 1 / (1 + np.exp(-np.array(expected) / TEMPERATURE))
    )
    whole = np.mean(expected)  # the mean logit, then the temperature
    assert result.p_fake == pytest.approx(1.0 / (1.0 + np.exp(-whole / TEMPERATURE)), abs=1e-6)
    assert result.label == bright.card.label_for(result.p_fake) == "real"
    top = result.top_patch
    assert (result.patches[top].x, result.patches[top].y) == (2 * SIZE, SIZE)
    assert result.patches[top].p_fake > 0.8 and result.p_fake < 0.25
    # a max over the patches would have called this image fake; the mean does not
    assert bright.card.label_for(result.patches[top].p_fake) == "fake"


def test_the_training_entry_point_gives_the_same_whole_image_score(bright):
    image = dark_image_with_a_bright_patch(100, 140, top=40, left=60)
    scored = score_patches(bright, image)
    assert scored.combined_logit == pytest.approx(float(np.mean(scored.logits)))
    assert list(scored.boxes) == patch_grid(100, 140, SIZE) and not any(scored.whole)
    result = bright.predict(image)
    assert result.p_fake == pytest.approx(float(calibrate(scored.combined_logit, TEMPERATURE)))
    np.testing.assert_allclose(scored.logits, [p.fake_logit for p in result.patches])
    small = make_image(40, 50)
    together = score_patches_batch(bright, [image, small])
    assert len(together[1].logits) == 1 and together[1].boxes == (
        bright.spec.preprocessing.crop_box(40, 50),
    )
    assert together[0].combined_logit == pytest.approx(scored.combined_logit, abs=1e-6)
    alone = bright.p_fake_batch(bright.spec.preprocessing.apply(small)[None])[0]
    assert float(calibrate(together[1].combined_logit, TEMPERATURE)) == pytest.approx(alone)


def test_predict_batch_scores_each_image_as_predict_does(bright, monkeypatch):
    import detector.core.runtime as runtime

    images = [
        dark_image_with_a_bright_patch(),
        make_image(40, 50, seed=1),
        dark_image_with_a_bright_patch(70, 100, top=30, left=0),
    ]
    single = [bright.predict(im, warnings=False) for im in images]
    monkeypatch.setattr(runtime, "MAX_CALL_BATCH", 5)  # patches of one image span calls
    batch = bright.predict_batch(images, batch_size=2)
    assert [len(p.patches) for p in batch] == [16, 1, 12]
    for one, many in zip(single, batch, strict=True):
        assert many.p_fake == pytest.approx(one.p_fake, abs=1e-6)
        assert [p.box for p in many.patches] == [p.box for p in one.patches]


def test_the_patch_map_colours_each_patch_by_its_score(bright):
    image = dark_image_with_a_bright_patch()
    result = bright.predict(image)
    drawn = patch_map(image, result, alpha=0.5)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    top = result.patches[result.top_patch]
    colours = colorize(np.array([[top.p_fake, result.patches[0].p_fake]]))[0].astype(float)
    y, x = top.y + SIZE // 2, top.x + SIZE // 2
    inside = drawn[y, x]
    np.testing.assert_array_equal(inside, np.rint(0.5 * image[y, x] + 0.5 * colours[0]))
    dark = np.rint(0.5 * image[SIZE // 2, SIZE // 2] + 0.5 * colours[1])
    np.testing.assert_array_equal(drawn[SIZE // 2, SIZE // 2], dark)
    np.testing.assert_array_equal(drawn[top.y, top.x + SIZE // 2], colours[0])  # the outline
    # a display copy at half the size: the boxes follow
    half = image[::2, ::2]
    small = patch_map(half, result, alpha=0.5, size=image.shape[:2])
    expected = np.rint(0.5 * half[y // 2, x // 2] + 0.5 * colours[0])
    np.testing.assert_array_equal(small[y // 2, x // 2], expected)
    np.testing.assert_array_equal(patch_map(image, result, alpha=0.0)[5, 5], image[5, 5])
    with pytest.raises(ValueError, match="alpha"):
        patch_map(image, result, alpha=2.0)


def test_explain_picks_the_most_suspicious_patch(bright):
    image = dark_image_with_a_bright_patch()
    explanation = bright.explain(image)
    prediction = explanation.prediction
    assert explanation.patch == prediction.top_patch
    assert prediction.p_fake == pytest.approx(bright.predict(image).p_fake, abs=1e-6)
    assert explanation.heatmap.shape == image.shape[:2]
    box = np.zeros(image.shape[:2], dtype=bool)
    box[SIZE : 2 * SIZE, 2 * SIZE : 3 * SIZE] = True
    assert explanation.heatmap[~box].max() == 0.0 and explanation.heatmap[box].max() > 0.0
    chosen = bright.explain(image, patch=0)
    assert chosen.patch == 0 and chosen.heatmap[SIZE:].max() == 0.0
    assert chosen.heatmap[:SIZE, :SIZE].max() > 0.0
    with pytest.raises(IndexError):
        bright.explain(image, patch=16)


def test_a_single_patch_image_is_explained_as_before():
    bright = brightness_detector()
    image = make_image(50, 60, seed=4)
    prep = bright.spec.preprocessing
    explanation = bright.explain(image)
    assert explanation.patch == 0 and len(explanation.prediction.patches) == 1
    probs, maps = bright.input_maps(prep.apply(image)[None])
    np.testing.assert_array_equal(explanation.heatmap, to_image_size(maps[0], 50, 60, prep))
    assert explanation.prediction.p_fake == pytest.approx(float(probs[0]), abs=1e-6)
    top, left, bottom, _ = prep.crop_box(50, 60)
    only = explanation.prediction.patches[0]
    assert (only.y, only.x, only.size) == (top, left, bottom - top)
    assert bright._compiled_predict is None  # the explanation pass alone gave the verdict
    np.testing.assert_array_equal(
        place_heatmap(maps[0], prep.crop_box(50, 60), 50, 60), explanation.heatmap
    )


def test_a_whole_image_view_is_one_more_view():
    image = dark_image_with_a_bright_patch()
    det = brightness_detector(whole_view=True)
    result = det.predict(image)
    assert len(result.patches) == 17
    whole = result.patches[-1]
    assert whole.whole_image and not any(p.whole_image for p in result.patches[:-1])
    assert whole.box[2:] == (128, 128)  # clipped to the image: all of it
    assert whole.fake_logit == pytest.approx(logit_of(np.mean(image)), abs=0.02)
    logits = [p.fake_logit for p in result.patches]
    assert result.p_fake == pytest.approx(float(calibrate(np.mean(logits), TEMPERATURE)))
    assert result.to_dict()["patches"][-1]["whole_image"] is True
    assert patch_map(image, result).shape == image.shape
    explanation = det.explain(image, patch=16)
    assert explanation.heatmap.shape == image.shape[:2]
    plain = score_patches(brightness_detector(), image, whole_view=True)
    np.testing.assert_allclose(plain.logits, logits, atol=1e-6)


def test_predictions_carry_their_patches_and_stay_hashable(bright):
    result = bright.predict(dark_image_with_a_bright_patch())
    data = json.loads(json.dumps(result.to_dict()))
    assert len(data["patches"]) == 16
    assert set(data["patches"][0]) == {"x", "y", "size", "p_fake", "fake_logit"}
    assert hash(result) == hash(result) and result == result
    assert {result: 1}[result] == 1


# ----------------------------------------------------------------------------- real recipes
def test_a_block_dct_model_scores_patches_on_the_jpeg_grid():
    keras.utils.set_random_seed(0)
    card = tiny_card("dct", "dct_spectrum")
    prep = card.spec.preprocessing
    assert prep.resize == "native_crop" and prep.grid == 8
    det = Detector(get_recipe("dct_spectrum").build(card.spec), card, max_patches=6)
    image = make_image(90, 150, seed=2)
    result = det.predict(image)
    boxes = patch_grid(90, 150, prep.size, max_patches=6, grid=8)
    assert [p.box for p in result.patches] == boxes and len(boxes) == 6
    assert all(p.x % 8 == 0 and p.y % 8 == 0 for p in result.patches)
    crops = np.stack([image[t:b, left:r] for t, left, b, r in boxes]).astype(np.float32)
    logits = det.fake_logits_batch(crops)
    np.testing.assert_allclose([p.fake_logit for p in result.patches], logits, atol=1e-5)
    assert result.p_fake == pytest.approx(
        float(calibrate(logits.mean(), card.temperature)), abs=1e-6
    )


def test_other_resize_modes_keep_their_single_view():
    keras.utils.set_random_seed(0)
    card = tiny_card("cnn", "simple_cnn")
    assert card.spec.preprocessing.resize == "resize"
    det = Detector(get_recipe("simple_cnn").build(card.spec), card)
    image = make_image(200, 300, seed=3)
    result = det.predict(image)
    assert len(result.patches) == 1 and result.patches[0].whole_image
    assert result.patches[0].box == (0, 0, 300, 300)
    expected = det.p_fake_batch(card.spec.preprocessing.apply(image)[None])[0]
    assert result.p_fake == pytest.approx(float(expected), abs=1e-6)
