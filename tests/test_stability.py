"""The stability rule behind the headline: flips under JPEG q90 and a 0.75x resize."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_image

import detector
from detector.core.results import Prediction
from detector.evidence.stability import (
    JPEG_CHANGE,
    RESIZE_CHANGE,
    STABILITY_MARGIN,
    check_stability,
    needs_check,
    stability_from_scores,
)
from detector.evidence.stress import jpeg_variant, scale_variant


class Scripted:
    """A model whose P(fake) is a function of the image it is given; counts its calls."""

    name = "scripted"

    def __init__(self, score, threshold: float = 0.5) -> None:
        self.score = score
        self.threshold = threshold
        self.calls = 0

    def predict(self, image: np.ndarray) -> Prediction:
        self.calls += 1
        p = float(self.score(image))
        label = "fake" if p >= self.threshold else "real"
        return Prediction(self.name, p, label, self.threshold, 0.0)


IMAGE = make_image(96, 128, seed=2)
JPEG = jpeg_variant(IMAGE, 90)


def by_variant(original: float, jpeg: float, resized: float):
    """P(fake) ``original`` on the image, ``jpeg`` on its q90 round trip, ``resized`` on any
    smaller image."""

    def score(image: np.ndarray) -> float:
        if image.shape != IMAGE.shape:
            return resized
        return jpeg if np.array_equal(image, JPEG) else original

    return score


def test_the_rule_on_scores():
    assert stability_from_scores("m", 0.6, 0.5, 0.55, 0.7).flips == ()
    assert stability_from_scores("m", 0.6, 0.5, 0.4, 0.7).flips == (JPEG_CHANGE,)
    assert stability_from_scores("m", 0.4, 0.5, 0.3, 0.5).flips == (RESIZE_CHANGE,), "p = t: AI"
    both = stability_from_scores("m", 0.9, 0.5, 0.1, 0.2)
    assert both.flips == (JPEG_CHANGE, RESIZE_CHANGE) and both.flipped and not both.stable
    unchecked = stability_from_scores("m", 0.9, 0.5, None, None, reason="far")
    assert not unchecked.checked and unchecked.stable and unchecked.summary() == "stable: far"


def test_margin():
    assert STABILITY_MARGIN == 1.0 and needs_check(0.0, 0.5) and needs_check(1.0, 0.5)
    assert needs_check(0.7, 0.5, 0.3) and not needs_check(0.8, 0.5, 0.3)
    assert not needs_check(0.2, 0.5, 0.3)


def test_flip_under_jpeg():
    model = Scripted(by_variant(0.8, 0.3, 0.75))
    result = check_stability(IMAGE, model)
    assert model.calls == 3 and result.checked
    assert result.flips == (JPEG_CHANGE,)
    assert (result.jpeg_p_fake, result.resize_p_fake) == (0.3, 0.75)
    assert "not stable: the verdict flips under JPEG q90" in result.summary()


def test_flip_under_resize():
    result = check_stability(IMAGE, Scripted(by_variant(0.3, 0.35, 0.6)))
    assert result.flips == (RESIZE_CHANGE,)


def test_stable_when_both_changes_keep_the_verdict():
    result = check_stability(IMAGE, Scripted(by_variant(0.9, 0.8, 0.95)))
    assert result.checked and result.stable
    assert result.summary().startswith("stable under JPEG q90 and resize 0.75x")


def test_far_from_threshold_is_not_rescored_with_a_margin():
    model = Scripted(by_variant(0.95, 0.1, 0.1))
    result = check_stability(IMAGE, model, margin=0.3)
    assert model.calls == 1 and not result.checked and result.stable
    assert result.jpeg_p_fake is None and "45% from the threshold" in result.reason
    near = Scripted(by_variant(0.6, 0.1, 0.1))
    assert check_stability(IMAGE, near, margin=0.3).flipped and near.calls == 3


def test_given_prediction_saves_a_pass_and_images_load_from_files():
    model = Scripted(by_variant(0.8, 0.7, 0.9))
    first = model.predict(IMAGE)
    check_stability(IMAGE, model, first)
    assert model.calls == 3
    with pytest.raises(detector.ImageLoadError):
        check_stability(b"not an image", model)


def test_too_small_to_resize():
    tiny = make_image(9, 9)
    result = check_stability(tiny, Scripted(lambda image: 0.7))
    assert scale_variant(tiny, 0.75) is None
    assert result.resize_p_fake is None and result.reason == "too small to resize"
    assert result.jpeg_p_fake == 0.7 and result.checked


def test_to_dict_is_json_ready():
    result = check_stability(IMAGE, Scripted(by_variant(0.8, 0.3, 0.75)))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["flipped"] and data["flips"] == [JPEG_CHANGE] and data["summary"]


def test_on_a_real_model(trained_dir):
    det = detector.load_model("tiny_cnn", trained_dir)
    result = check_stability(IMAGE, det)
    assert result.model == "tiny_cnn" and result.checked and result.seconds > 0
    assert result.p_fake == pytest.approx(det.predict(IMAGE).p_fake, abs=1e-6)
    assert result.jpeg_p_fake == pytest.approx(det.predict(JPEG).p_fake, abs=1e-6)
