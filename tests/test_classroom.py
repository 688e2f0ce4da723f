"""Classroom helpers: examples, compact analyses, the model's-eye view, stress curves, model
cards, quiz scoring and Markdown escaping."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import encode, make_image, tiny_card

import detector
from detector.core.card import ModelCard
from detector.core.models import clear_cache
from detector.core.spec import Preprocessing
from detector.ui import classroom as cr
from detector.ui import presentation as pres
from detector.ui.presentation import BatchRow

MODELS = Path(__file__).resolve().parent.parent / "assets" / "models"

IMAGE = make_image(96, 128, seed=11)


@pytest.fixture
def models_env(trained_dir, monkeypatch):
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(trained_dir))
    return trained_dir


def prediction(p_fake: float, label: str, model: str = "m") -> detector.Prediction:
    return detector.Prediction(model, p_fake, label, 0.5, 0.01, (0.4, 0.6))


# ----------------------------------------------------------------------------------- examples
def test_load_examples_is_robust(tmp_path, monkeypatch):
    assert cr.load_examples(tmp_path / "missing") == []
    (tmp_path / "examples.json").write_text("{not json")
    assert cr.load_examples(tmp_path) == []
    (tmp_path / "a.png").write_bytes(encode(make_image(32, 32)))
    (tmp_path / "b.png").write_bytes(encode(make_image(32, 32, seed=1)))
    entries = [
        {"file": "a.png", "label": "FAKE", "generator": "SDXL", "source": "kit", "licence": "CC0"},
        {"file": "b.png", "label": "real", "author": "A. Person"},
        {"file": "missing.png", "label": "real"},
        {"file": "../conftest.py", "label": "real"},
        {"label": "real"},
        "junk",
    ]
    (tmp_path / "examples.json").write_text(json.dumps({"examples": entries}))
    found = cr.load_examples(tmp_path)
    assert [e.file for e in found] == ["a.png", "b.png"]
    assert found[0].path == (tmp_path / "a.png").resolve()
    assert (found[0].label, found[0].known, found[0].answer) == (
        "fake",
        True,
        "AI-generated (SDXL)",
    )
    assert cr.example_note(found[0], 1) == (
        "**Example 1** is AI-generated (SDXL). source: kit, licence: CC0."
    )
    assert cr.example_note(found[1]) == "**`b.png`** is a real photo. author: A. Person."
    monkeypatch.setenv(cr.EXAMPLES_DIR_ENV, str(tmp_path))
    assert cr.examples_dir() == tmp_path and len(cr.load_examples()) == 2


def test_unknown_label_is_not_quizzable(tmp_path):
    (tmp_path / "a.png").write_bytes(encode(make_image(32, 32)))
    (tmp_path / "examples.json").write_text(json.dumps([{"file": "a.png", "label": "maybe"}]))
    (example,) = cr.load_examples(tmp_path)
    assert not example.known and example.answer == "not known"


# ----------------------------------------------------------------------------------- analysis
def test_analyse_matches_the_detector_and_stays_small(models_env):
    big = make_image(900, 1200, seed=3)
    view = cr.analyse(big, "tiny_attention", "attention")
    expected = detector.load_model("tiny_attention").predict(big)
    assert view.ok and view.error is None
    assert view.prediction.p_fake == pytest.approx(expected.p_fake, abs=1e-6)
    assert view.view.method == "attention" and view.method_note == ""
    assert max(view.view.image.shape[:2]) == 768  # display size, not the full image
    assert view.view.heatmap.shape == view.view.image.shape[:2]
    # one outcome type for both apps: the cacheable one drops the full-size explanation
    assert isinstance(view, pres.ModelOutcome) and view.explanation is None


def test_analyse_falls_back_and_reports_failures(models_env):
    fallback = cr.analyse(IMAGE, "tiny_cnn", "attention")
    assert fallback.view.method == "gradcam"
    assert fallback.method_note == "`tiny_cnn` has no Attention map; showing Grad-CAM."
    only_score = cr.analyse(IMAGE, "tiny_cnn", None)
    assert only_score.ok and only_score.view is None
    missing = cr.analyse(IMAGE, "no_such_model", "gradcam")
    assert not missing.ok and missing.error.startswith("model_not_found")


def test_rows_and_csv_are_spreadsheet_safe(models_env):
    views = [cr.analyse(IMAGE, "tiny_cnn", None), cr.ModelOutcome("broken", error="boom")]
    upload = cr.Upload("=cmd|' /C calc'!A0.png", encode(IMAGE))
    rows = cr.held_rows(upload, ["tiny_cnn", "broken"])  # the batch engine's rows
    rows += cr.held_rows(cr.Upload("bad.png", b"nope"), ["tiny_cnn"], "not_an_image: nope")
    assert rows[0].verdict == views[0].prediction.label and not views[1].ok
    assert rows[1].error.startswith("model_failed: model_not_found")
    table = list(csv.reader(io.StringIO(cr.results_csv(rows).decode())))
    assert table[0] == ["file", "model", "verdict", "p_fake", "seconds", "error"]
    assert table[1][0].startswith("'=") and table[3] == [
        "bad.png",
        "tiny_cnn",
        "",
        "",
        "",
        table[3][5],
    ]
    assert isinstance(rows[2], BatchRow) and table[3][5] == "not_an_image: nope"


# ----------------------------------------------------------------------------------- model input
@pytest.mark.parametrize(("name", "grid"), [("tiny_cnn", (4, 4)), ("tiny_attention", (8, 8))])
def test_model_input_shows_the_real_grid(models_env, name, grid):
    seen = cr.model_input(IMAGE, name)
    det = detector.load_model(name)
    size = det.spec.input_size
    assert seen.size == size and seen.seen.shape == (size, size, 3) and seen.grid == grid
    assert seen.blocks.shape == seen.smooth.shape == (size, size, 3)
    assert seen.p_fake == pytest.approx(det.predict(IMAGE).p_fake, abs=1e-5)
    assert "**{} x {}** blocks".format(*grid) in cr.lesson_mislead(seen)
    big = cr.enlarge(seen.seen, 384)
    assert big.shape[0] == size * round(384 / size)
    assert np.array_equal(big[:: round(384 / size), :: round(384 / size)], seen.seen)


def test_hot_overlap():
    ramp = np.tile(np.linspace(0, 1, 50, dtype=np.float32), (40, 1))
    assert cr.hot_overlap(ramp, ramp) == 1.0
    assert cr.hot_overlap(ramp, ramp[:, ::-1]) == 0.0
    assert 0.0 < cr.hot_overlap(ramp, np.roll(ramp, 3, axis=1)) < 1.0


# ----------------------------------------------------------------------------------- stress
def test_jpeg_and_downsize():
    best, best_bytes = cr.jpeg_recompress(IMAGE, 95)
    worst, worst_bytes = cr.jpeg_recompress(IMAGE, 5)
    assert best.shape == worst.shape == IMAGE.shape and worst_bytes < best_bytes
    assert np.abs(best.astype(int) - IMAGE).mean() < np.abs(worst.astype(int) - IMAGE).mean()
    assert cr.downsize(IMAGE, 50).shape == (48, 64, 3)
    assert cr.downsize(IMAGE, 100) is IMAGE
    assert cr.downsize(IMAGE, 5) is None  # shorter side below 8 px
    assert cr.degrade(IMAGE, "resize", 25).shape == (24, 32, 3)
    with pytest.raises(ValueError, match="unknown degradation"):
        cr.degrade(IMAGE, "blur", 1)


def test_degraded_files_decode_to_the_curve_images():
    jpeg = cr.degraded_file(IMAGE, "jpeg", 30)
    assert jpeg[:2] == b"\xff\xd8" and jpeg == cr.jpeg_bytes(IMAGE, 30)
    assert np.array_equal(detector.load_image(jpeg), cr.jpeg_recompress(IMAGE, 30)[0])
    png = cr.degraded_file(IMAGE, "resize", 50)
    assert png[:4] == b"\x89PNG"
    assert np.array_equal(detector.load_image(png), cr.downsize(IMAGE, 50))
    assert cr.degraded_file(IMAGE, "resize", 5) is None


def test_stress_curves_rescore_through_the_serving_path(models_env):
    run = cr.stress_curves(IMAGE, ["tiny_cnn", "tiny_attention", "no_such_model"])
    assert run.result is not None and [m.model for m in run.result.models] == [
        "tiny_cnn",
        "tiny_attention",
    ]
    assert run.result.jpeg_qualities == cr.JPEG_QUALITIES
    assert run.result.scales == tuple(s / 100 for s in cr.SIZES)
    det = detector.load_model("tiny_cnn")
    item = run.result.model("tiny_cnn")
    q30 = cr.JPEG_QUALITIES.index(30)
    assert item.jpeg[q30] == pytest.approx(
        det.predict(cr.jpeg_recompress(IMAGE, 30)[0]).p_fake, abs=1e-6
    )
    half = cr.SIZES.index(50)
    assert item.scale[half] == pytest.approx(det.predict(cr.downsize(IMAGE, 50)).p_fake, abs=1e-6)
    assert item.baseline == pytest.approx(det.predict(IMAGE).p_fake, abs=1e-6)
    assert run.errors["no_such_model"].startswith("model_not_found")
    summary = run.summary("jpeg")
    assert "`tiny_cnn`: P(AI-generated) between" in summary and "`no_such_model` failed" in summary
    assert "fragile" in run.definition
    fig = cr.plot_curves(run.result, "jpeg", 40)
    jpeg_axis = fig.get_axes()[0]
    assert any(list(line.get_xdata()) == [40.0, 40.0] for line in jpeg_axis.get_lines())
    fig = cr.plot_curves(run.result, "resize", 50)
    assert any(list(line.get_xdata()) == [0.5, 0.5] for line in fig.get_axes()[1].get_lines())


def test_stress_curves_with_no_working_model(models_env):
    run = cr.stress_curves(IMAGE, ["no_such_model"])
    assert run.result is None and list(run.errors) == ["no_such_model"]
    assert run.summary().startswith("- `no_such_model` failed")


# ----------------------------------------------------------------------------------- cards
def full_card():
    return tiny_card(
        "full",
        "simple_cnn",
        title="Full card",
        summary="A model with every section.",
        metrics={
            "test": {
                "n": 200,
                "n_fake": 100,
                "n_real": 100,
                "accuracy": 0.9,
                "roc_auc": 0.95,
                "ece": 0.04,
                "per_generator": {"sdxl": {"n": 50, "detection_rate": 0.8}},
            },
            "test_ood": {"accuracy": 0.6, "roc_auc": 0.7},
            "robustness": {
                "jpeg_q75": {"roc_auc": 0.9, "accuracy": 0.85},
                "downscale_x0.5": {"roc_auc": 0.8, "accuracy": 0.7},
                "blur_sigma1": {"roc_auc": None, "accuracy": 0.88},
                "odd": "not a table",
            },
        },
        limitations=("Never saw diffusion images.",),
        training_data={
            "dataset": "starter kit",
            "splits": {"train": {"n": 10, "n_fake": 4, "n_real": 6, "generators": {"sd": 4}}},
            "licences": ["CC0", "GPL"],
            "manifest_sha256": "abc",
        },
    )


def test_facts_from_a_full_card():
    facts = cr.facts_from_card(full_card())
    assert facts.measured and facts.title == "Full card"
    assert dict(facts.test) == {
        "Accuracy": "90.0%",
        "ROC-AUC": "0.950",
        "Calibration error (ECE)": "0.040",
    }
    assert facts.test_size == "200 images (100 AI-generated, 100 real)"
    assert dict(facts.ood) == {"Accuracy": "60.0%", "ROC-AUC": "0.700"}
    assert facts.robustness[0] == {
        "condition": "JPEG quality 75",
        "ROC-AUC": "0.900",
        "accuracy": "85.0%",
        "change in accuracy": "-5.0 points",
    }
    assert facts.robustness[1]["condition"] == "downsized to 50% of its side"
    assert facts.robustness[2]["ROC-AUC"] == "" and len(facts.robustness) == 3
    assert facts.per_generator == ({"generator": "sdxl", "images": 50, "detected": "80.0%"},)
    assert facts.limitations == ("Never saw diffusion images.",)
    assert facts.training[0]["generators"] == "sd (4)"
    assert facts.dataset == "starter kit; licences: CC0, GPL"


def test_facts_from_an_empty_card_and_from_the_models_folder(trained_dir, tmp_path, monkeypatch):
    facts = cr.facts_from_card(tiny_card("bare", "simple_cnn"))
    assert not facts.measured and facts.limitations == () and facts.training == ()
    root = tmp_path / "models"
    shutil.copytree(trained_dir, root)
    full_card().save(root / "tiny_cnn")  # a card only; facts never load the weights
    (root / "tiny_cnn" / "card.json").write_text(
        (root / "tiny_cnn" / "card.json").read_text().replace('"full"', '"tiny_cnn"')
    )
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(root))
    clear_cache()
    got = cr.model_facts(["tiny_cnn", "missing"])
    assert [f.name for f in got] == ["tiny_cnn"] and got[0].measured
    assert {f.name for f in cr.model_facts()} == {"tiny_cnn", "tiny_attention"}


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("jpeg_q50", "JPEG quality 50"),
        ("downscale_x0.25", "downsized to 25% of its side"),
        ("blur_sigma1", "blurred (Gaussian, sigma 1)"),
        ("center_crop_0.7", "centre crop, 70% of the side"),
        ("jpeg_qhigh", "jpeg qhigh"),
        ("brand_new", "brand new"),
    ],
)
def test_condition_names(key, text):
    assert cr.condition_name(key) == text


# ----------------------------------------------------------------------------------- quiz
def test_quiz_order_is_a_seeded_permutation():
    assert sorted(cr.quiz_order(7, 1)) == list(range(7))
    assert cr.quiz_order(7, 1) == cr.quiz_order(7, 1)
    assert cr.quiz_order(0) == []


def test_score_round_and_feedback():
    score = cr.new_score(["a", "b"])
    preds = [prediction(0.9, "fake", "a"), prediction(0.5, "uncertain", "b")]
    after = cr.score_round(score, "AI-generated", "fake", preds)
    assert score == cr.new_score(["a", "b"])  # unchanged
    assert (after["rounds"], after["you"], after["models"]) == (1, 1, {"a": 1, "b": 0})
    after = cr.score_round(after, "AI-generated", "real", [prediction(0.1, "real", "a")])
    assert (after["rounds"], after["you"], after["models"]) == (2, 1, {"a": 2, "b": 0})
    assert after["history"][1] == {"truth": "real", "guess": "fake", "models": {"a": "real"}}
    assert cr.score_text(after) == "You 1/2 · `a` 2/2 · `b` 0/2"
    text = cr.round_feedback("Real photo", "fake", preds)
    assert text.startswith("**Not this time: this image is AI-generated.**")
    assert "- `a`: likely ai-generated, P(AI-generated) 90.0% (right)" in text
    assert "(unsure, counts as not right)" in text
    assert cr.round_feedback("AI-generated", "fake", []).startswith("**You were right")


# ----------------------------------------------------------------------------------- text
def test_md_escape_makes_file_names_inert():
    hostile = "![x](http://example.invalid/t.png) :red[big] $x$ <b>hi</b> a_b*c*.png"
    escaped = cr.md_escape(hostile)
    for token in ("![", "](", ":red[", "$x$", "<b>", "*c*"):
        assert token not in escaped
    assert escaped.replace("\\", "") == hostile


def test_lessons_are_filled_in():
    text = cr.lesson_pipeline(128, 0.5)
    assert "**128 x 128 pixels**" in text and "threshold (50.0%)" in text
    assert "`examples.json`" in cr.NO_EXAMPLES


@pytest.mark.parametrize("folder", sorted(p.parent for p in MODELS.glob("*/card.json")))
def test_lesson_pipeline_says_what_each_bundled_models_card_does(folder):
    """The lesson follows the card: a native-resolution model is not described as shrinking."""
    card = ModelCard.load(folder)
    prep = card.spec.preprocessing
    text = cr.lesson_pipeline(prep, card.threshold)
    assert f"**{prep.size} x {prep.size} pixels**" in text
    if prep.resize == "native_crop":
        assert "**not shrunk**" in text and "up to 16 such patches" in text
        assert "first shrunk" not in text
    else:
        assert "**not shrunk**" not in text


def test_lesson_pipeline_per_resize_mode():
    native = cr.lesson_pipeline(Preprocessing(size=224, resize="native_crop"), 0.414)
    assert "first shrunk" not in native and "**not shrunk**" in native
    assert "threshold (41.4%)" in native and "whole picture" not in native
    whole = cr.lesson_pipeline(Preprocessing(size=64, resize="native_crop", whole_view=True), 0.5)
    assert "The whole picture, shrunk to 64 x 64 pixels, is scored as one more view." in whole
    squashed = cr.lesson_pipeline(Preprocessing(size=128, resize="resize"), 0.5)
    assert "The image is first shrunk (squashed)" in squashed
    cropped = cr.lesson_pipeline(Preprocessing(size=128, resize="center_crop"), 0.5)
    assert "shorter side is **128 pixels**" in cropped and "first shrunk" not in cropped


def test_safe_call():
    assert cr.safe_call(lambda: 3) == (3, None)
    _, error = cr.safe_call(lambda: detector.load_image(b"nope"))
    assert error.startswith("not_an_image")
    _, error = cr.safe_call(lambda: 1 / 0)
    assert error == "ZeroDivisionError: division by zero"
