"""The scene view: a large image also read shrunk to the scale the model learnt scenes at.

The brightness model of `test_patches` (fake logit = SLOPE * mean brightness + BIAS) gives every
view a known score, so the scene view's logit, its half share of the verdict and its box can be
checked exactly.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from conftest import make_image, tiny_card
from test_patches import SIZE, TEMPERATURE, brightness_detector, logit_of

from detector.core.domain import image_checks, model_warnings
from detector.core.images import ImageInfo
from detector.core.patches import (
    calibrate,
    combine,
    image_views,
    patch_grid,
    patch_map,
    scene_box,
    score_patches,
)
from detector.core.spec import ModelSpec, Preprocessing
from detector.scale.batch import model_inputs, uses_scene_view, whole_image_p_fake
from detector.ui.heatmap_view import patch_view
from detector.ui.lessons import lesson_pipeline

SIDE = 48  # in [SIZE, 2 * SIZE)


def scene_prep(**kw) -> Preprocessing:
    return Preprocessing(size=SIZE, resize="native_crop", scene_side=SIDE, **kw)


def left_bright(height: int, width: int) -> np.ndarray:
    """Dark, but for a bright left third (so the scene view and the patches score apart)."""
    image = np.full((height, width, 3), 20, dtype=np.uint8)
    image[:, : width // 3] = 230
    return image


# ----------------------------------------------------------------------------- the setting
@pytest.mark.parametrize(
    "kw, message",
    [
        ({"scene_side": SIZE - 1}, "must lie in"),
        ({"scene_side": 2 * SIZE}, "must lie in"),
        ({"scene_side": 40.0}, "whole number"),
        ({"scene_side": True}, "whole number"),
        ({"scene_side": SIDE, "whole_view": True}, "cannot both"),
        ({"scene_side": SIDE, "resize": "resize"}, "native_crop"),
    ],
)
def test_a_bad_scene_side_is_refused_with_its_reason(kw, message):
    kw = {"resize": "native_crop", **kw}
    with pytest.raises(ValueError, match=message):
        Preprocessing(size=SIZE, **kw)


def test_the_setting_survives_the_card_and_old_cards_have_none():
    spec = ModelSpec(
        recipe="r", preprocessing=scene_prep(), output="sigmoid_fake", gradcam_layer="c"
    )
    data = spec.to_dict()
    assert data["preprocessing"]["scene_side"] == SIDE
    assert ModelSpec.from_dict(data) == spec
    del data["preprocessing"]["scene_side"]  # a card written before the setting existed
    assert ModelSpec.from_dict(data).preprocessing.scene_side is None
    assert uses_scene_view(scene_prep()) and not uses_scene_view(Preprocessing(SIZE, "native_crop"))


# ----------------------------------------------------------------------------- the views
@pytest.mark.parametrize("height, width", [(20, 30), (SIDE, 200), (40, 40)])
def test_an_image_no_larger_than_the_scene_side_gets_no_scene_view(height, width):
    assert scene_box(height, width, scene_prep()) is None
    views = image_views(make_image(height, width), scene_prep())
    plain = image_views(make_image(height, width), Preprocessing(SIZE, "native_crop"))
    assert not views.scene
    np.testing.assert_array_equal(views.batch, plain.batch)


def test_the_scene_view_is_the_central_square_shrunk_to_the_scene_scale():
    image = make_image(60, 90, seed=3)  # shorter side 60 > 48: one patch and a scene view
    views = image_views(image, scene_prep())
    assert views.scene and len(views.batch) == 2
    span = round(SIZE * 60 / SIDE)  # 40 px of the image become the 32 px input
    box = scene_box(60, 90, scene_prep())
    assert box == (
        (60 - span) // 2,
        (90 - span) // 2,
        (60 - span) // 2 + span,
        (90 - span) // 2 + span,
    )
    assert views.boxes[-1] == box
    top, left, bottom, right = box
    expected = cv2.resize(image[top:bottom, left:right], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(views.batch[-1], expected.astype(np.float32))
    # the shrunk image's own centre crop, up to the rounding of the shrink
    shrunk = cv2.resize(image, (round(90 * SIDE / 60), SIDE), interpolation=cv2.INTER_AREA)
    centre = Preprocessing(SIZE, "native_crop").apply(shrunk)
    assert np.abs(centre - views.batch[-1]).mean() < 12


def test_a_large_image_gets_its_patches_then_the_scene_view():
    views = image_views(make_image(4 * SIZE, 5 * SIZE), scene_prep())
    assert len(views.batch) == 17 and views.scene and not any(views.whole)
    assert list(views.boxes[:-1]) == patch_grid(4 * SIZE, 5 * SIZE, SIZE)


# ----------------------------------------------------------------------------- the score
def test_combine_gives_the_scene_view_half_of_the_score():
    assert combine([1.0, 3.0, 5.0, 10.0], scene=True) == pytest.approx((3.0 + 10.0) / 2)
    assert combine([1.0, 3.0, 5.0, 10.0]) == pytest.approx(4.75)
    assert combine([2.5], scene=True) == 2.5  # no scene view: the one patch


def test_predict_reads_the_scene_view_and_says_so():
    image = left_bright(4 * SIZE, 6 * SIZE)
    det = brightness_detector(scene_side=SIDE)
    result = det.predict(image)
    scene = result.patches[-1]
    assert scene.scene_view and not any(p.scene_view for p in result.patches[:-1])
    assert (scene.y, scene.x, scene.y + scene.size, scene.x + scene.size) == scene_box(
        *image.shape[:2], det.spec.preprocessing
    )
    top, left, bottom, right = scene.box
    assert scene.fake_logit == pytest.approx(
        logit_of(image[top:bottom, left:right].mean()), abs=0.05
    )
    patches = [p.fake_logit for p in result.patches[:-1]]
    expected = calibrate((np.mean(patches) + scene.fake_logit) / 2, TEMPERATURE)
    assert result.p_fake == pytest.approx(float(expected), abs=1e-6)
    plain = brightness_detector().predict(image)
    assert result.p_fake != pytest.approx(plain.p_fake, abs=1e-3)  # the view changed the verdict
    assert result.to_dict()["patches"][-1]["scene_view"] is True
    assert "scene_view" not in result.to_dict()["patches"][0]
    scored = score_patches(det, image)
    assert scored.scene and scored.combined_logit == pytest.approx(
        (np.mean(patches) + scene.fake_logit) / 2, abs=1e-5
    )


def test_a_small_image_scores_exactly_as_without_the_scene_view():
    image = make_image(40, 44, seed=1)
    with_scene = brightness_detector(scene_side=SIDE).predict(image)
    plain = brightness_detector().predict(image)
    assert with_scene.p_fake == plain.p_fake and len(with_scene.patches) == 1


def test_the_explanation_of_the_scene_view_lies_on_its_box_and_the_map_draws_it():
    image = left_bright(4 * SIZE, 6 * SIZE)
    det = brightness_detector(scene_side=SIDE)
    explanation = det.explain(image, patch=16)
    top, left, bottom, right = explanation.prediction.patches[16].box
    outside = np.ones(image.shape[:2], dtype=bool)
    outside[top:bottom, left:right] = False
    assert explanation.heatmap[outside].max() == 0
    assert explanation.heatmap[top:bottom, left:right].max() > 0
    drawn = patch_map(image, explanation.prediction)
    assert drawn.shape == image.shape and not np.array_equal(drawn, image)
    caption = patch_view(image, explanation.prediction, explained=16).caption
    assert "16 patches" in caption and "shrunk to the scale the model learnt" in caption


def test_the_batch_scanners_combine_the_scene_view_as_predict_does():
    det = brightness_detector(scene_side=SIDE)
    prep = det.spec.preprocessing
    images = [left_bright(4 * SIZE, 6 * SIZE), make_image(60, 90, seed=2), make_image(30, 40)]
    inputs = [model_inputs(im, prep) for im in images]
    assert [len(x) for x in inputs] == [17, 2, 1]
    got = whole_image_p_fake(det, inputs, det.temperature, scene=True)
    np.testing.assert_allclose(got, [det.predict(im).p_fake for im in images], atol=1e-6)
    ignored = whole_image_p_fake(det, inputs, det.temperature)  # the plain mean differs
    assert abs(ignored[0] - got[0]) > 1e-3


# ----------------------------------------------------------------------------- the words
def test_the_warning_and_the_lesson_say_what_the_scene_view_reads():
    card = tiny_card("t", "simple_cnn")
    card = dataclasses.replace(
        card, spec=dataclasses.replace(card.spec, preprocessing=scene_prep())
    )
    image = make_image(100, 290)
    found = model_warnings(image_checks(ImageInfo("PNG", 290, 100, "RGB", 1, None), image), card)
    text = " ".join(found)
    span = round(SIZE * 100 / SIDE)
    assert (
        f"plus its central {span}x{span} px square shrunk to 32x32 px (half of the score)" in text
    )
    lesson = lesson_pipeline(scene_prep(), 0.5)
    assert "shorter side is 48 pixels" in lesson and "half of the verdict" in lesson
