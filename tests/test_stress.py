"""Stress test: curves through the serving path, the fragile flag, and the plot."""

from __future__ import annotations

import hashlib
import io
import json
import math

import numpy as np
import pytest
from conftest import encode, make_image

from detector.core.card import label_for
from detector.core.models import load_model
from detector.core.results import Prediction
from detector.evidence.stress import (
    DEFAULT_JPEG_QUALITIES,
    DEFAULT_SCALES,
    FRAGILE_DEFINITION,
    MILD_JPEG_QUALITY,
    MILD_SCALE,
    StressResult,
    is_mild,
    jpeg_variant,
    plot_stress,
    scale_variant,
    stress_test,
    verdict,
)


def _key(array: np.ndarray) -> str:
    return hashlib.sha256(
        np.ascontiguousarray(array).tobytes() + str(array.shape).encode()
    ).hexdigest()


class StubDetector:
    """Returns a fixed P(fake) per JPEG quality / scale variant of one image, else `default`."""

    def __init__(self, image, default, jpeg=None, scale=None, name="stub", threshold=0.5):
        self.name = name
        self.threshold = threshold
        self.default = default
        self.table: dict[str, float] = {}
        for quality, p_fake in (jpeg or {}).items():
            self.table[_key(jpeg_variant(image, quality))] = p_fake
        for factor, p_fake in (scale or {}).items():
            self.table[_key(scale_variant(image, factor))] = p_fake
        self.calls = 0

    def predict(self, image: np.ndarray) -> Prediction:
        assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
        self.calls += 1
        p_fake = self.table.get(_key(image), self.default)
        return Prediction(
            model=self.name,
            p_fake=p_fake,
            label=verdict(p_fake, self.threshold),
            threshold=self.threshold,
            seconds=0.0,
        )


IMAGE = make_image(96, 128, seed=7)
HARSH = {q: 0.2 for q in DEFAULT_JPEG_QUALITIES if q < MILD_JPEG_QUALITY}


def test_not_fragile_when_only_harsh_jpeg_flips():
    mild = {q: 0.8 for q in DEFAULT_JPEG_QUALITIES if q >= MILD_JPEG_QUALITY}
    stub = StubDetector(IMAGE, 0.9, jpeg={**mild, **HARSH})
    result = stress_test(IMAGE, [stub])
    item = result.model("stub")
    assert item.baseline == pytest.approx(0.9) and item.baseline_verdict == "fake"
    assert item.jpeg == (0.8, 0.8, 0.8, 0.2, 0.2, 0.2, 0.2)
    assert item.scale == (0.9,) * len(DEFAULT_SCALES)
    assert not item.fragile
    assert item.flips == ("jpeg q=65", "jpeg q=50", "jpeg q=40", "jpeg q=30")
    assert result.fragile_models == ()
    assert stub.calls == 1 + len(DEFAULT_JPEG_QUALITIES) + len(DEFAULT_SCALES)


def test_fragile_when_mild_jpeg_flips():
    stub = StubDetector(IMAGE, 0.9, jpeg={85: 0.3, **HARSH})
    item = stress_test(IMAGE, stub).models[0]  # a single detector is accepted too
    assert item.fragile and "jpeg q=85" in item.flips


def test_fragile_boundary_at_quality_75():
    assert stress_test(IMAGE, [StubDetector(IMAGE, 0.9, jpeg={75: 0.4})]).models[0].fragile
    assert not stress_test(IMAGE, [StubDetector(IMAGE, 0.9, jpeg={65: 0.4})]).models[0].fragile


def test_fragile_by_scale_and_real_baseline():
    fragile = StubDetector(IMAGE, 0.1, scale={0.5: 0.7}, name="a")
    sturdy = StubDetector(IMAGE, 0.1, scale={0.35: 0.7, 0.25: 0.7}, name="b")
    result = stress_test(IMAGE, [fragile, sturdy])
    assert result.model("a").fragile and result.model("a").flips == ("scale 0.5",)
    assert result.model("a").baseline_verdict == "real"
    assert not result.model("b").fragile
    assert result.model("b").flips == ("scale 0.35", "scale 0.25")
    assert result.fragile_models == ("a",)
    with pytest.raises(KeyError):
        result.model("missing")


def test_threshold_of_each_model_is_used():
    stub = StubDetector(IMAGE, 0.65, jpeg={95: 0.55}, threshold=0.6)
    assert stress_test(IMAGE, [stub]).models[0].fragile


def test_mild_definition():
    assert is_mild("jpeg", MILD_JPEG_QUALITY) and not is_mild("jpeg", MILD_JPEG_QUALITY - 1)
    assert is_mild("scale", MILD_SCALE) and is_mild("scale", 0.75)
    assert not is_mild("scale", 0.35) and not is_mild("scale", 1.0)
    with pytest.raises(ValueError):
        is_mild("blur", 1.0)
    assert "75" in FRAGILE_DEFINITION and "50%" in FRAGILE_DEFINITION


def test_variants():
    assert jpeg_variant(IMAGE, 50).shape == IMAGE.shape
    assert scale_variant(IMAGE, 0.5).shape == (48, 64, 3)
    assert scale_variant(IMAGE, 1.0) is IMAGE
    assert scale_variant(make_image(20, 20), 0.25) is None


def test_tiny_image_scales_become_nan():
    small = make_image(24, 24, seed=1)
    result = stress_test(small, [StubDetector(small, 0.3)], scales=(1.0, 0.5, 0.25))
    assert math.isnan(result.models[0].scale[2])
    data = json.loads(json.dumps(result.to_dict()))
    assert data["models"][0]["scale"][2] is None


def test_bad_arguments():
    stub = StubDetector(IMAGE, 0.5)
    with pytest.raises(ValueError):
        stress_test(IMAGE, [stub], jpeg_qualities=(0,))
    with pytest.raises(ValueError):
        stress_test(IMAGE, [stub], scales=(1.5,))
    with pytest.raises(ValueError):
        stress_test(IMAGE, [])


def test_real_model_through_serving_path(trained_dir):
    det = load_model("tiny_cnn", trained_dir)
    result = stress_test(encode(IMAGE, "PNG"), [det])
    assert isinstance(result, StressResult)
    assert result.image_size == (96, 128)
    item = result.models[0]
    assert len(item.jpeg) == len(DEFAULT_JPEG_QUALITIES) and len(item.scale) == len(DEFAULT_SCALES)
    values = [item.baseline, *item.jpeg, *item.scale]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert item.scale[0] == pytest.approx(item.baseline)
    assert item.baseline == pytest.approx(det.predict(IMAGE).p_fake)
    assert isinstance(item.fragile, bool)
    json.dumps(result.to_dict())


def test_plot_stress(trained_dir):
    from matplotlib.figure import Figure

    dets = [load_model("tiny_cnn", trained_dir), StubDetector(IMAGE, 0.9, jpeg={85: 0.3})]
    result = stress_test(IMAGE, dets)
    fig = plot_stress(result, title="stress")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert all(len(ax.get_lines()) >= 2 * len(dets) for ax in fig.axes)  # curve + threshold
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "stub (fragile)" in labels
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue().startswith(b"\x89PNG")


class BandedStub(StubDetector):
    """A stub whose predictions carry an uncertain band and the card's label, as served."""

    band = (0.4, 0.7)

    def predict(self, image: np.ndarray) -> Prediction:
        pred = super().predict(image)
        return Prediction(
            model=pred.model,
            p_fake=pred.p_fake,
            label=label_for(pred.p_fake, self.threshold, self.band),
            threshold=self.threshold,
            seconds=0.0,
            uncertain_band=self.band,
        )


def test_untouched_label_is_the_cards_label_inside_the_uncertain_band():
    stub = BandedStub(IMAGE, 0.609, threshold=0.414)
    card_label = stub.predict(IMAGE).label
    item = stress_test(IMAGE, stub).model("stub")
    assert card_label == "uncertain"
    assert item.baseline_verdict == card_label  # not "fake", although 60.9 % >= 41.4 %
    assert item.to_dict()["baseline_verdict"] == "uncertain"
    assert item.uncertain_band == (0.4, 0.7)
    assert not item.fragile  # fragility still asks whether the score crosses the threshold
    outside = stress_test(IMAGE, BandedStub(IMAGE, 0.85, threshold=0.414)).model("stub")
    assert outside.baseline_verdict == "fake"


def test_plot_stress_legend_covers_no_title_and_no_point(trained_dir):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    names = ["s1_attention_mobilenetv2", "s4_mobilenetv2_finetune", "ensemble_s4_s3_dct"]
    dets = [
        StubDetector(IMAGE, 0.1 + 0.3 * i, jpeg={85: 0.95}, name=n) for i, n in enumerate(names)
    ]
    result = stress_test(IMAGE, dets)
    fig = plot_stress(result, title="Stress test of photo.jpg")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    legend = fig.axes[1].get_legend().get_window_extent(renderer)
    assert fig.bbox.contains(legend.x0, legend.y0) and fig.bbox.contains(legend.x1, legend.y1)
    titles = [ax.title for ax in fig.axes] + [fig._suptitle]
    for title in titles:
        assert not legend.overlaps(title.get_window_extent(renderer)), title.get_text()
    for ax in fig.axes:
        for line in ax.get_lines():
            points = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
            for x, y in points[np.isfinite(points).all(axis=1)]:
                assert not legend.contains(x, y), (line.get_label(), x, y)
        assert not legend.overlaps(ax.get_window_extent(renderer))
