"""Presentation helpers shared by the apps: verdicts, bars, agreement, notes, uploads, batches."""

from __future__ import annotations

import csv
import html
import io
import os
import re
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import encode, make_image, tiny_card
from PIL import Image, PngImagePlugin

import detector
from detector.core.models import clear_cache
from detector.ui import classroom as cr
from detector.ui import outcome as outcome_module
from detector.ui import presentation as pres


def prediction(p_fake: float, label: str, model: str = "m", seconds: float = 0.012):
    return detector.Prediction(
        model=model,
        p_fake=p_fake,
        label=label,
        threshold=0.5,
        seconds=seconds,
        uncertain_band=(0.4, 0.6),
    )


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def models_env(trained_dir, monkeypatch):
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(trained_dir))
    return trained_dir


# ------------------------------------------------------------------------------- verdicts
@pytest.mark.parametrize(
    ("p_fake", "label", "headline", "colour"),
    [
        (0.873, "fake", "Likely AI-generated", "#d32f2f"),
        (0.12, "real", "Likely a real photo", "#2e7d32"),
        (0.45, "uncertain", "Uncertain", "#ef6c00"),
    ],
)
def test_verdict_text(p_fake, label, headline, colour):
    v = pres.verdict(prediction(p_fake, label))
    assert (v.label, v.headline, v.colour) == (label, headline, colour)
    assert v.probability == f"{100 * p_fake:.1f}%"
    assert v.milliseconds == pytest.approx(12.0)
    assert "threshold 50.0%" in v.detail
    assert "from 40.0% to 60.0% are reported as uncertain" in v.detail


def test_verdict_without_band_does_not_mention_it():
    pred = detector.Prediction("m", 0.7, "fake", 0.5, 0.01, uncertain_band=(0.5, 0.5))
    assert "uncertain" not in pres.verdict(pred).detail


def test_probability_bars_are_percentages():
    bars = pres.probability_bars([prediction(0.873, "fake", "a"), prediction(0.1, "real", "b")])
    assert [b.model for b in bars] == ["a", "b"]
    assert bars[0].width == pytest.approx(87.3)
    assert bars[0].threshold == 50.0 and bars[0].band == (40.0, 60.0)
    assert bars[0].text == "87.3% · fake"
    assert bars[1].colour == pres.COLOURS["real"] and bars[1].milliseconds == 12.0


def test_api_result_has_the_documented_fields():
    data = pres.api_result(prediction(0.873, "fake", "cnn"))
    assert data["model"] == "cnn" and data["p_fake"] == 0.873 and data["label"] == "fake"
    assert data["threshold"] == 0.5 and data["seconds"] == 0.012
    assert data["headline"] == data["label_title"] == "Likely AI-generated"


# ------------------------------------------------------------------------------- agreement
def test_agreement_unanimous_majority_tie_and_none():
    both = pres.agreement([prediction(0.9, "fake"), prediction(0.8, "fake")])
    assert both.unanimous and both.label == "fake" and both.counts == {"fake": 2}
    assert both.text == "Both models agree: likely ai-generated."

    three = pres.agreement(
        [prediction(0.9, "fake"), prediction(0.1, "real"), prediction(0.7, "fake")]
    )
    assert not three.unanimous and three.label == "fake"
    assert three.counts == {"fake": 2, "real": 1}
    assert three.text == "The models disagree (2 fake, 1 real); the majority says fake."

    tie = pres.agreement([prediction(0.9, "fake"), prediction(0.45, "uncertain")], failed=1)
    assert not tie.unanimous and tie.label is None and tie.failed == 1
    assert tie.text == "The models disagree (1 fake, 1 uncertain): no majority (1 model failed)."

    none = pres.agreement([], failed=2)
    assert none.answered == 0 and none.label is None
    assert none.text == "No model produced a score (2 models failed)."

    one = pres.agreement([prediction(0.2, "real")])
    assert one.unanimous and one.text == "Only one model answered: likely a real photo."


def test_agreement_never_contradicts_the_default_models_card():
    preds = [
        prediction(0.35, "real", "best"),
        prediction(0.45, "uncertain", "b"),
        prediction(0.55, "uncertain", "c"),
    ]
    plain = pres.agreement(preds)
    assert plain.label == "uncertain" and "the majority says uncertain" in plain.text
    summary = pres.agreement(preds, default="best")
    assert summary.counts == {"real": 1, "uncertain": 2}  # what it summarises: labels counted
    assert summary.default == "best" and summary.default_label == "real"
    assert (
        summary.text
        == "The models disagree (2 uncertain, 1 real); the default model, best, says real."
    )
    assert "majority" not in summary.text
    same = pres.agreement([*preds[1:], prediction(0.4, "uncertain", "best")], default="best")
    assert same.unanimous and same.text == "All 3 models agree: uncertain."
    sided = pres.agreement([prediction(0.45, "uncertain", "best"), *preds], default="best")
    assert sided.text.endswith("the default model, best, says uncertain (as does the majority).")
    missing = pres.agreement(preds, failed=1, default="gone")  # the default failed
    assert (
        missing.default is None and "the majority says uncertain (1 model failed)" in missing.text
    )


# ------------------------------------------------------------------------------- notes
def test_every_explanation_method_has_a_title_and_its_own_note():
    assert tuple(pres.METHOD_TITLES) == detector.EXPLAIN_METHODS
    notes = {pres.heatmap_note(method) for method in detector.EXPLAIN_METHODS}
    assert len(notes) == len(detector.EXPLAIN_METHODS)


@pytest.mark.parametrize("method", detector.EXPLAIN_METHODS)
def test_heatmap_note_says_what_it_means_and_does_not_mean(method):
    note = pres.heatmap_note(method)
    assert "**What it does not mean.**" in note
    assert "not a map of edited or generated pixels" in note
    assert "relative to this image" in note
    assert {"gradcam": "Grad-CAM:", "gradcam++": "Grad-CAM++", "attention": "attention layer"}[
        method
    ] in note


def test_model_choices_put_trained_first_with_metrics(models_env):
    infos = detector.list_models()
    choices = pres.model_choices(infos)
    assert [value for _, value in choices[:2]] == ["tiny_attention", "tiny_cnn"]
    assert choices[0][0] == "tiny_attention · ROC-AUC 0.90"
    untrained = dict((v, k) for k, v in choices)["efficientnet_b2"]
    assert untrained == "efficientnet_b2 · not trained (no weights)"
    summary = pres.model_summary(infos[0])
    assert "ROC-AUC 0.900" in summary and "Attention map" in summary
    not_trained = next(i for i in infos if not i.trained)
    assert "python -m training train" in pres.model_summary(not_trained)


def test_no_models_message_says_how_to_train(tmp_path):
    text = pres.no_models_message(tmp_path)
    assert str(tmp_path) in text and "python -m training train" in text
    assert "never scores images with an untrained or random model" in text


# ------------------------------------------------------------------------------- heatmaps
def test_resize_for_display_keeps_small_images_and_shrinks_large_ones():
    small = make_image(64, 80)
    same, none = pres.resize_for_display(small)
    assert same is small and none is None
    big = make_image(1000, 2000)
    heat = np.linspace(0, 1, 1000 * 2000, dtype=np.float32).reshape(1000, 2000)
    image, heatmap = pres.resize_for_display(big, heat, max_side=500)
    assert image.shape == (250, 500, 3) and image.dtype == np.uint8
    assert heatmap.shape == (250, 500) and 0.0 <= heatmap.min() <= heatmap.max() <= 1.0
    assert heatmap[0, 0] < 0.01 and heatmap[-1, -1] > 0.99


def test_heatmap_view_blends_like_the_detector(models_env):
    image = make_image(96, 128)
    explanation = detector.explain(image, "tiny_cnn", "gradcam")
    view = pres.heatmap_view(image, explanation)
    assert view.image.shape == (96, 128, 3) and view.heatmap.shape == (96, 128)
    np.testing.assert_array_equal(view.overlay(0.45), explanation.overlay)
    np.testing.assert_array_equal(view.overlay(0.0), image)
    np.testing.assert_array_equal(view.overlay(1.0), detector.colorize(explanation.heatmap))
    np.testing.assert_array_equal(view.raw(), detector.colorize(explanation.heatmap))
    # a resize model reads the whole picture as one view: no patch map
    assert view.patches.single and view.patches.image is None and view.patches.explained == ""
    assert view.patches.caption.startswith("One view: the model scored the whole picture")


def test_heatmap_views_shrink_the_image_once(models_env, monkeypatch):
    image = make_image(300, 1000, seed=1)
    explanations = [detector.explain(image, name) for name in ("tiny_cnn", "tiny_attention")]
    expected = [pres.heatmap_view(image, e, max_side=400) for e in explanations]
    resized = []
    original = Image.Image.resize

    def counted(self, *args, **kwargs):
        resized.append(self.mode)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", counted)
    views = pres.heatmap_views(image, explanations, max_side=400)
    assert resized.count("RGB") == 1 and resized.count("F") == 2
    for view, reference in zip(views, expected, strict=True):
        assert view.image.shape == (120, 400, 3) and view.method == reference.method
        np.testing.assert_array_equal(view.image, reference.image)
        np.testing.assert_array_equal(view.heatmap, reference.heatmap)
    small = make_image(64, 80)
    explanation = detector.explain(small, "tiny_cnn")
    (same,) = pres.heatmap_views(small, [explanation])
    assert same.image is small and same.heatmap is explanation.heatmap


# ------------------------------------------------------------------------------- patches
@pytest.fixture(scope="module")
def native():
    """A tiny untrained native-resolution model: 32 px patches at full resolution."""
    from detector.core._keras import keras
    from detector.core.recipes import get_recipe
    from detector.core.runtime import Detector

    keras.utils.set_random_seed(0)
    card = tiny_card("native", "dct_spectrum", uncertain_band=(0.4, 0.6))
    assert card.spec.preprocessing.resize == "native_crop" and card.spec.input_size == 32
    return Detector(get_recipe("dct_spectrum").build(card.spec), card)


def test_heatmap_view_maps_the_patches_of_a_large_image(native):
    image = make_image(150, 200, seed=4)
    explanation = native.explain(image)
    pred = explanation.prediction
    count = len(pred.patches)
    assert count > 1 and not any(p.whole_image for p in pred.patches)
    top = pred.patches[pred.top_patch]
    assert explanation.patch == pred.top_patch
    assert top.p_fake == max(p.p_fake for p in pred.patches)
    view = pres.heatmap_view(image, explanation, max_side=100)
    patches = view.patches
    assert not patches.single and patches.count == count
    assert patches.image.shape == view.image.shape == (75, 100, 3)
    np.testing.assert_array_equal(
        patches.image, detector.patch_map(view.image, pred, size=(150, 200))
    )
    assert patches.caption == (
        f"{count} patches of 32 px at full resolution, scores averaged: highest P(fake) "
        f"{pres.percent(top.p_fake)} at ({top.x}, {top.y}); the Grad-CAM explains that patch."
    )
    assert patches.explained == (
        f"explains the patch at ({top.x}, {top.y}), the most suspicious of {count}"
    )
    # an explanation of another patch says which one
    chosen = 0 if pred.top_patch != 0 else 1
    other = native.explain(image, "gradcam++", patch=chosen)
    where = f"({pred.patches[chosen].x}, {pred.patches[chosen].y})"
    text = pres.heatmap_view(image, other).patches
    assert text.caption.endswith(f"; the Grad-CAM++ explains the patch at {where}.")
    assert text.explained == f"explains the patch at {where}, one of {count}"


def test_a_single_patch_image_has_no_patch_map(native):
    image = make_image(50, 60, seed=2)
    explanation = native.explain(image)
    (patch,) = explanation.prediction.patches
    patches = pres.heatmap_view(image, explanation).patches
    assert patches.single and patches.image is None and patches.count == 1
    assert patches.explained == ""
    assert patches.caption == (
        f"One patch: the model scored the central crop (32 x 32 px at ({patch.x}, {patch.y}))."
    )


def test_patch_view_names_a_whole_picture_view_and_is_empty_without_patches():
    image = make_image(100, 120)
    crops = (
        detector.PatchScore(0, 0, 32, 0.2, -1.4),
        detector.PatchScore(88, 68, 32, 0.4, -0.4),
    )
    whole = detector.PatchScore(0, 0, 120, 0.7, 0.8, whole_image=True)
    pred = replace(prediction(0.45, "uncertain"), patches=(*crops, whole))
    view = pres.patch_view(image, pred, explained=2, method="attention")
    assert view.caption == (
        "2 patches of 32 px at full resolution and the whole picture resized, scores averaged: "
        "highest P(fake) 70.0% on the whole picture; the Attention map explains that view."
    )
    assert view.explained == "explains the view on the whole picture, the most suspicious of 3"
    assert view.count == 2 and view.image.shape == (100, 120, 3)
    assert pres.patch_view(image, pred).explained == ""  # no explanation shown
    one = replace(pred, patches=(whole,))
    assert pres.patch_view(image, one).caption == (
        "One view: the model scored the whole picture, resized to its input size."
    )
    none = pres.patch_view(image, prediction(0.45, "uncertain"))
    assert none.single and none.image is None and none.caption == "" and none.count == 0


# ------------------------------------------------------------------------------- running
def test_run_models_matches_predict_and_survives_a_broken_model(trained_dir, tmp_path, monkeypatch):
    root = tmp_path / "models"
    shutil.copytree(trained_dir, root)
    weights = root / "tiny_cnn" / "model.keras"
    weights.write_bytes(weights.read_bytes()[:-100] + b"\0" * 100)
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(root))
    clear_cache()
    image = make_image(64, 64, seed=3)
    outcomes = pres.run_models(image)
    assert [o.model for o in outcomes] == ["tiny_attention", "tiny_cnn"]
    good, bad = outcomes
    assert good.ok and good.explanation is not None
    expected = detector.load_model("tiny_attention", trained_dir).predict(image)
    assert good.prediction.p_fake == pytest.approx(expected.p_fake, abs=1e-6)
    assert not bad.ok and bad.error.startswith("checksum_mismatch: weights of model 'tiny_cnn'")
    rows = pres.comparison_rows(outcomes)
    assert rows[0]["model"] == "tiny_attention" and rows[0]["error"] == ""
    assert rows[0]["p_fake"] == round(expected.p_fake, 4)
    assert rows[1]["verdict"] == "failed" and rows[1]["p_fake"] is None
    clear_cache()


def test_run_model_scores_and_explains_in_one_pass(models_env, monkeypatch):
    from detector.core.runtime import Detector

    image = make_image(64, 64, seed=4)
    expected = detector.load_model("tiny_attention").predict(image)

    def no_second_pass(self, *args, **kwargs):
        raise AssertionError("predict called next to explain")

    with monkeypatch.context() as patched:
        patched.setattr(Detector, "predict", no_second_pass)
        outcome = pres.run_model(image, "tiny_attention", "gradcam")
    assert outcome.ok and outcome.prediction is outcome.explanation.prediction
    assert outcome.prediction.p_fake == pytest.approx(expected.p_fake, abs=1e-5)
    scored = pres.run_model(image, "tiny_attention", None)
    assert scored.explanation is None and scored.prediction.p_fake == expected.p_fake


def test_run_model_falls_back_to_gradcam_without_attention(models_env):
    outcome = pres.run_model(make_image(64, 64), "tiny_cnn", "attention")
    assert outcome.ok and outcome.explanation.method == "gradcam"
    assert outcome.method == "attention" and outcome.view is None
    assert outcome.method_note == "`tiny_cnn` has no Attention map; showing Grad-CAM."
    outcome = pres.run_model(make_image(64, 64), "tiny_attention", "attention")
    assert outcome.explanation.method == "attention" and outcome.method_note == ""


def test_one_outcome_type_for_both_apps():
    assert cr.ModelOutcome is pres.ModelOutcome is outcome_module.ModelOutcome
    assert not hasattr(cr, "ModelView")
    failed = pres.ModelOutcome("m", error="boom", method="attention")
    assert not failed.ok and failed.method_note == "" and failed.shown_method is None


def test_run_models_without_trained_models(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(tmp_path))
    with pytest.raises(detector.ModelNotTrainedError, match="No trained detector is installed"):
        pres.run_models(make_image())


# ------------------------------------------------------------------------------- uploads
def test_extract_zip_reads_members_into_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    png = encode(make_image(32, 32))
    data = make_zip(
        {
            "photos/a.png": png,
            "b.txt": b"hello",
            "__MACOSX/photos/._a.png": b"junk",
            ".hidden.png": png,
            "inner.zip": make_zip({"x.png": png}),
        }
    )
    items = pres.extract_zip(data, "upload.zip")
    assert [(i.name, i.data is not None) for i in items] == [
        ("upload.zip/photos/a.png", True),
        ("upload.zip/b.txt", True),
        ("upload.zip/inner.zip", False),
    ]
    assert items[0].data == png
    assert items[2].error.startswith("nested_archive")
    assert list(tmp_path.iterdir()) == [], "nothing may be written to disk"


def test_extract_zip_limits():
    png = encode(make_image(32, 32))
    many = make_zip({f"{i}.png": png for i in range(5)})
    items = pres.extract_zip(many, "many.zip", pres.UploadLimits(max_files=3))
    assert [i.name for i in items[:3]] == ["many.zip/0.png", "many.zip/1.png", "many.zip/2.png"]
    assert items[3].error == "too_many_files: 2 more file(s) skipped (limit 3 per batch)"

    big = make_zip({"big.bin": os.urandom(4096)})
    items = pres.extract_zip(big, "big.zip", pres.UploadLimits(max_file_bytes=1000))
    assert items[0].error.startswith("file_too_large")

    bomb = make_zip({"zeros.png": b"\0" * 5_000_000})
    assert pres.extract_zip(bomb, "bomb.zip")[0].error.startswith("suspicious_archive")

    total = make_zip({f"{i}.bin": os.urandom(2000) for i in range(3)}, zipfile.ZIP_STORED)
    items = pres.extract_zip(total, "t.zip", pres.UploadLimits(max_total_bytes=4500))
    assert [i.data is not None for i in items] == [True, True, False]
    assert items[2].error.startswith("batch_too_large: 1 more file(s) skipped")

    assert pres.extract_zip(b"PK\x03\x04garbage", "bad.zip")[0].error.startswith("bad_archive")
    assert pres.extract_zip(make_zip({}), "empty.zip")[0].error.startswith("empty_archive")


def test_read_uploads_opens_zips_and_cleans_names(tmp_path):
    png = encode(make_image(32, 32))
    (tmp_path / "one.png").write_bytes(png)
    (tmp_path / "pack.zip").write_bytes(make_zip({"two.png": png, "three.png": png}))
    items = pres.read_uploads(
        [tmp_path / "one.png", tmp_path / "pack.zip", tmp_path / "missing.png", ("a\nb.png", png)]
    )
    assert [i.name for i in items] == [
        "one.png",
        "pack.zip/two.png",
        "pack.zip/three.png",
        "missing.png",
        "a?b.png",
    ]
    assert items[3].error.startswith("unreadable_file")
    limited = pres.read_uploads([tmp_path / "pack.zip"] * 3, pres.UploadLimits(max_files=3))
    assert [i.data is not None for i in limited] == [True, True, True, False, False]
    assert limited[3].error == "too_many_files: 1 more file(s) skipped (limit 3 per batch)"
    assert limited[4].error == "too_many_files: 1 more file(s) skipped (limit 3 per batch)"


# ------------------------------------------------------------------------------- batches
def test_batch_rows_score_every_file_with_every_model(models_env):
    images = [make_image(64, 64, seed=s) for s in range(3)]
    items = [pres.UploadItem(f"img{i}.png", encode(im)) for i, im in enumerate(images)]
    items.insert(1, pres.UploadItem("notes.txt", b"not an image"))
    items.append(pres.UploadItem("late.zip", error="too_many_files: 1 more file(s) skipped"))
    rows = pres.batch_rows(items, ["tiny_cnn", "nope"], chunk=2)
    assert [(r.file, r.model) for r in rows[:4]] == [
        ("img0.png", "tiny_cnn"),
        ("img0.png", "nope"),
        ("notes.txt", "tiny_cnn"),
        ("notes.txt", "nope"),
    ]
    expected = detector.predict_batch(images, "tiny_cnn")
    scored = [r for r in rows if r.model == "tiny_cnn" and r.error is None]
    assert [r.file for r in scored] == ["img0.png", "img1.png", "img2.png"]
    for row, pred in zip(scored, expected, strict=True):
        assert row.p_fake == pytest.approx(pred.p_fake, abs=1e-6)
        assert row.verdict == pred.label and row.seconds > 0
    assert rows[2].error.startswith("not_an_image")
    nope = [r for r in rows if r.model == "nope" and r.file.startswith("img")]
    assert len(nope) == 3
    assert all(r.error.startswith("model_failed: model_not_found") for r in nope)
    assert rows[-2].error == "too_many_files: 1 more file(s) skipped"
    assert pres.batch_summary(rows).startswith("5 files x 2 models: ")
    assert rows[0].to_list()[:3] == ["img0.png", "tiny_cnn", expected[0].label]


def test_write_csv_uses_a_generated_name_and_neutralises_formulas(tmp_path):
    rows = [
        pres.BatchRow("=HYPERLINK(1).png", "m", "fake", 0.9, 0.01, None),
        pres.BatchRow("secret-name.png", "m", None, None, None, "not_an_image: no"),
    ]
    path = pres.write_csv(rows, tmp_path)
    assert path.parent == tmp_path and path.name.startswith("fakedetect-batch-")
    assert "secret" not in path.name and "HYPERLINK" not in path.name
    with open(path, newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == list(pres.BATCH_FIELDS)
    assert table[1] == ["'=HYPERLINK(1).png", "m", "fake", "0.9", "0.01", ""]
    assert table[2] == ["secret-name.png", "m", "", "", "", "not_an_image: no"]
    old = tmp_path / "fakedetect-batch-old.csv"
    old.write_text("x")
    os.utime(old, (0, 0))
    assert pres.prune_files(tmp_path) == 1 and not old.exists() and path.exists()


def test_clean_name():
    assert pres.clean_name("a\x00b\tc.png") == "a?b?c.png"
    assert pres.clean_name("   ") == "(unnamed)"
    assert len(pres.clean_name("x" * 500)) == 200


def test_presentation_is_ui_agnostic():
    for path in Path(pres.__file__).parent.glob("*.py"):  # presentation and its sibling modules
        source = path.read_text()
        assert "import gradio" not in source and "import streamlit" not in source, path.name


# ------------------------------------------------------------------------------- warnings
def test_with_warnings_measures_the_image_once_for_every_model(models_env, monkeypatch):
    grey = np.repeat(make_image(64, 64)[..., :1], 3, axis=2)
    loaded = pres.load_file(encode(grey))
    calls = []
    measure = pres.image_checks

    def counted(*args, **kwargs):
        calls.append(1)
        return measure(*args, **kwargs)

    monkeypatch.setattr(pres, "image_checks", counted)
    outcomes = [pres.outcome_with_warnings(o, loaded) for o in pres.run_models(loaded.array)]
    assert len(outcomes) == 2 and len(calls) == 1
    for outcome in outcomes:
        card = detector.load_model(outcome.model).card
        expected = detector.domain_warnings(loaded.info, loaded.array, card, data=loaded.data)
        assert outcome.prediction.warnings == expected
        assert any("black-and-white" in w for w in expected)


def test_preload_loads_the_best_model_in_the_background(trained_dir, monkeypatch, tmp_path):
    from detector.core import models

    clear_cache()
    loaded: list[str] = []
    real = models._load_uncached
    monkeypatch.setattr(models, "_load_uncached", lambda r, n: loaded.append(n) or real(r, n))
    thread = pres.preload_best_model(trained_dir)
    thread.join(timeout=120)
    assert not thread.is_alive() and thread.daemon
    assert loaded == [detector.default_model_name(trained_dir)]
    det = detector.load_model(None, trained_dir)  # the app's first request: already loaded
    assert loaded == [detector.default_model_name(trained_dir)]
    assert det._compiled_predict is not None  # and its prediction path traced
    # no trained model: nothing to load, and no error
    empty = tmp_path / "empty"
    empty.mkdir()
    pres.preload_best_model(empty).join(timeout=30)
    assert len(loaded) == 1
    clear_cache()


# ------------------------------------------------------------------------------- headline
HOSTILE = (
    '<img src=x onerror=alert(1)> "quoted" & ![x](http://example.invalid/t.png) :red[big] '
    "<script>alert(2)</script> `code` **bold**"
)


def a_headline(label: str, basis: str, text: str = "a reason", strength: str = "strong"):
    reasons = (
        detector.Reason("exif", text, strength),
        detector.Reason("model", "Model m: P(AI-generated) = 49%.", "statistical score, 49%"),
    )
    return detector.Headline(label, f"Title of {label}", reasons, basis)


@pytest.mark.parametrize(
    ("label", "basis", "colour", "markdown"),
    [
        ("ai_generated", "signature", "#b71c1c", "red"),
        ("ai_generated", "declaration", "#b71c1c", "red"),
        ("camera_original", "signature", "#1b5e20", "green"),
        ("likely_ai", "model", "#d32f2f", "red"),
        ("likely_real", "model", "#2e7d32", "green"),
        ("uncertain", "model", "#ef6c00", "orange"),
        ("cannot_tell", "none", "#616161", "gray"),
    ],
)
def test_headline_renders_each_label(label, basis, colour, markdown):
    found = a_headline(label, basis)
    view = pres.headline_view(found)
    assert (view.label, view.basis, view.colour) == (label, basis, colour)
    assert view.basis_text == pres.BASIS_TEXTS[basis]
    assert view.lines == [
        "a reason — strong",
        "Model m: P(AI-generated) = 49%. — statistical score, 49%",
    ]
    absent = basis in ("model", "none")
    assert (view.note == pres.ABSENCE_LINE) is absent and (view.note == "") is not absent

    card = pres.headline_html(found)
    assert f'data-label="{label}" data-basis="{basis}"' in card
    assert f'color:{colour}">Title of {label}</div>' in card
    basis_text = html.escape(pres.BASIS_TEXTS[basis])
    assert card.index("Title of") < card.index(basis_text) < card.index("a reason")
    assert card.count("<li ") == 2 and '<li data-source="exif">a reason ' in card
    assert "— <i>strong</i>" in card and "— <i>statistical score, 49%</i>" in card
    assert (html.escape(pres.ABSENCE_LINE) in card) is absent
    assert "fd-verdict" not in card, "the verdict cards' selectors must not match the headline"

    text = pres.headline_markdown(found)
    lines = text.splitlines()
    assert lines[0] == f"#### :{markdown}[Title of {pres.md_text(label)}]"
    assert f"*{pres.md_text(pres.BASIS_TEXTS[basis])}*" in lines
    assert "- a reason — *strong*" in lines
    assert (f"*{pres.md_text(pres.ABSENCE_LINE)}*" in lines) is absent


def test_headline_escapes_the_files_own_text():
    found = a_headline("ai_generated", "declaration", HOSTILE, strength='"><b>x</b>')
    card = pres.headline_html(found)
    for raw in ("<img", "<script", '"quoted"', "<b>x</b>", '"><b>'):
        assert raw not in card, raw
    assert "&lt;img src=x onerror=alert(1)&gt; &quot;quoted&quot; &amp; ![x]" in card
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in card
    assert "&quot;&gt;&lt;b&gt;x&lt;/b&gt;" in card

    text = pres.headline_markdown(found)
    for markup in (r"\]\(", "<img", r":red\[big", "!\\[", "<script", "`code`", r"\*\*bold"):
        assert not re.search(r"(?<!\\)" + markup, text), f"unescaped {markup}"
    assert pres.md_text(HOSTILE) in text
    assert text.count("\n- ") == 2, "a reason's text cannot start a list item of its own"


def test_headline_of_a_real_file_and_its_api_json(models_env):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a prompt\nSteps: 20, Sampler: Euler a, Seed: 1")
    buf = io.BytesIO()
    image = make_image(64, 80, seed=3)
    Image.fromarray(image).save(buf, "PNG", pnginfo=info)
    loaded = pres.load_file(buf.getvalue())
    model = detector.load_model("tiny_cnn")
    pred = pres.with_warnings(model.predict(loaded.array), loaded)
    found = pres.assess_upload(loaded, pred)
    assert found.headline == detector.assess(buf.getvalue(), model).headline
    assert (found.headline.label, found.headline.basis) == ("ai_generated", "declaration")
    assert found.stability is not None and found.stability.model == "tiny_cnn"
    data = pres.api_prediction(found)
    assert (
        data["headline"] == found.headline.to_dict()
        and data["label_title"] == pres.HEADLINES[pred.label]
    )
    assert data["stability"] == found.stability.to_dict() and data["p_fake"] == pytest.approx(
        pred.p_fake
    )
    inspected = pres.inspect_result(found.evidence)
    assert inspected["verdict"] == detector.headline(found.evidence, None).to_dict()
    assert inspected["items"] == found.evidence.to_dict()["items"]
    # a bare array has no file to read, and a failing stability check is left out
    bare = pres.assess_upload(pres.load_file(image), pred, model=object())
    assert bare.evidence is None and bare.stability is None
    assert bare.headline.basis == "model" and bare.headline.reasons[1].strength == "unknown"
    assert bare.headline.reasons[-1].text == "The file's provenance was not read."


def test_uncertain_verdict_says_why_inside_the_band():
    pred = detector.Prediction("m", 0.609, "uncertain", 0.414, 0.01, uncertain_band=(0.4, 0.7))
    reason = pres.verdict(pred).reason
    assert reason.startswith("Uncertain because 60.9% lies inside this model's uncertain band")
    assert "(40.0% to 70.0%)" in reason and "above its threshold (41.4%)" in reason
    assert pres.verdict(prediction(0.9, "fake")).reason == ""


def test_unstable_verdict_says_which_change_flips_it():
    pred = detector.Prediction("m", 0.45, "fake", 0.414, 0.01, uncertain_band=(0.414, 0.414))
    flipped = detector.evidence.stability.stability_from_scores("m", 0.45, 0.414, 0.30, 0.50)
    reason = pres.verdict(pred, flipped).reason
    assert reason.startswith("Not stable on this image: the verdict flips under JPEG q90")
    assert "30%" in reason and "threshold 41%" in reason
    steady = detector.evidence.stability.stability_from_scores("m", 0.45, 0.414, 0.44, 0.46)
    assert pres.verdict(pred, steady).reason == ""
