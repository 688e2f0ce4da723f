"""The Gradio app's handlers, called as plain functions on real (tiny and bundled) models."""

from __future__ import annotations

import csv
import html
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import encode, make_image, no_toast, tiny_card

import detector
from detector.core.models import clear_cache
from detector.ui import example_gallery
from detector.ui import presentation as pres


@pytest.fixture
def files(tmp_path):
    """An image, a non-image, a truncated PNG and a zip of two images, as files."""
    image = make_image(96, 128, seed=7)
    paths = {
        "image": tmp_path / "photo.png",
        "text": tmp_path / "notes.png",
        "truncated": tmp_path / "cut.png",
        "zip": tmp_path / "more.zip",
    }
    paths["image"].write_bytes(encode(image))
    paths["text"].write_bytes(b"this is not an image")
    paths["truncated"].write_bytes(encode(image)[:200])
    with zipfile.ZipFile(paths["zip"], "w") as archive:
        archive.writestr("a.png", encode(make_image(64, 64, seed=1)))
        archive.writestr("sub/b.jpg", encode(make_image(64, 64, seed=2), "JPEG"))
    return {"array": image, **{k: str(v) for k, v in paths.items()}}


def expected(name: str, image, directory=None) -> detector.Prediction:
    return detector.load_model(name, directory).predict(image)


# ----------------------------------------------------------------------------------- detect
@pytest.mark.parametrize("model", ["tiny_cnn", "tiny_attention"])
def test_detect_shows_the_verdict_overlay_and_heatmap(app, models, files, model):
    verdict, overlay, heatmap, note, status, view = app.detect(
        files["image"], model, "gradcam", 0.3
    )
    pred = expected(model, files["array"])
    v = pres.verdict(pred)
    assert f'data-label="{pred.label}"' in verdict
    assert html.escape(v.headline) in verdict and f"<b>{v.probability}</b>" in verdict
    assert f"<code>{model}</code>" in verdict
    explanation = detector.explain(files["array"], model, "gradcam")
    assert overlay.shape == (96, 128, 3) and heatmap.shape == (96, 128, 3)
    np.testing.assert_array_equal(
        overlay, detector.overlay_heatmap(files["array"], explanation.heatmap, alpha=0.3)
    )
    np.testing.assert_array_equal(heatmap, detector.colorize(explanation.heatmap))
    assert "does not mean" in note and status == ""
    # the view state carries the combined headline, shown above the verdict after detection
    assert view.headline == detector.assess(files["image"], model).headline
    assert app.show_view(view)[0] == pres.headline_html(view.headline)
    np.testing.assert_array_equal(app.reblend(view, 0.0), files["array"])
    np.testing.assert_array_equal(app.reblend(view, 1.0), heatmap)


@pytest.fixture(scope="module")
def banded_dir(tmp_path_factory):
    """A models folder with one tiny model whose uncertain band covers every score."""
    from detector.core.models import export_model
    from detector.core.recipes import get_recipe

    root = tmp_path_factory.mktemp("banded-models")
    card = tiny_card("tiny_banded", "simple_cnn", threshold=0.414, uncertain_band=(0.0, 1.0))
    export_model(get_recipe("simple_cnn").build(card.spec), root / "tiny_banded", card)
    return root


def test_uncertain_verdict_card_says_why(app, banded_dir, files, monkeypatch):
    from pages import common

    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(banded_dir))
    verdict, *_ = app.detect(files["image"], "tiny_banded", "gradcam", 0.3)
    pred = expected("tiny_banded", files["array"], banded_dir)
    assert pred.label == "uncertain" and 'data-label="uncertain"' in verdict
    why = f"Uncertain because {pres.percent(pred.p_fake)} lies inside this model's uncertain band"
    assert html.escape(why) in verdict and "(0.0% to 100.0%)" in verdict
    assert f"its threshold ({pres.percent(0.414)})" in verdict
    for compact in (False, True):  # the Streamlit card says it too, even the compact one
        assert html.escape(why) in common.verdict_html(pred, compact)


@pytest.fixture(scope="module")
def native_dir(tmp_path_factory):
    """A models folder with one tiny native-resolution model (32 px patches)."""
    from detector.core._keras import keras
    from detector.core.models import export_model
    from detector.core.recipes import get_recipe

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("native-models")
    card = tiny_card("tiny_native", "dct_spectrum", threshold=0.5, uncertain_band=(0.4, 0.6))
    export_model(get_recipe("dct_spectrum").build(card.spec), root / "tiny_native", card)
    return root


def test_detect_is_followed_by_the_patch_map_of_a_large_image(
    app, native_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(native_dir))
    large, small = make_image(150, 200, seed=9), make_image(50, 60, seed=9)
    paths = {}
    for name, image in (("large", large), ("small", small)):
        paths[name] = tmp_path / f"{name}.png"
        paths[name].write_bytes(encode(image))
    verdict, *_, view = app.detect(str(paths["large"]), "tiny_native")
    shown, caption = app.show_patches(view)
    explanation = detector.load_model("tiny_native").explain(large)
    pred = explanation.prediction
    top = pred.patches[pred.top_patch]
    assert f"<b>{pres.percent(pred.p_fake)}</b>" in verdict
    assert len(pred.patches) > 1 and shown["visible"] is True
    np.testing.assert_array_equal(shown["value"], detector.patch_map(large, pred))
    assert caption == pres.heatmap_view(large, explanation).patches.caption
    assert caption.startswith(f"{len(pred.patches)} patches of 32 px at full resolution")
    assert f"{pres.percent(top.p_fake)} at ({top.x}, {top.y}); the Grad-CAM explains" in caption
    # the API gives the same patches, and says which one /explain explains
    result = app.api_predict(str(paths["large"]), "tiny_native")
    assert result["patches"] == [patch.to_dict() for patch in pred.patches]
    *_, explained = app.api_explain(str(paths["large"]), "tiny_native", "gradcam")
    assert explained["patch"] == pred.top_patch and explained["patches"] == result["patches"]
    *_, view = app.detect(str(paths["small"]), "tiny_native")
    shown, caption = app.show_patches(view)
    assert shown["visible"] is False and shown["value"] is None
    assert caption.startswith("One patch: the model scored the central crop")
    assert app.show_patches(None) == ({"__type__": "update", "value": None, "visible": False}, "")
    # every detection in the UI is followed by its headline and patch map, from its view state
    fns = list(app.demo.fns.values())
    shows = [fn for fn in fns if fn.fn is app.show_view]
    assert len(shows) == len([fn for fn in fns if fn.fn is app.detect]) == 4
    assert all(fn.trigger_after is not None and fn.concurrency_id != app.HEAVY for fn in shows)
    assert all(
        [c.elem_id for c in fn.outputs] == ["fd-headline", "fd-patch-map", "fd-patches"]
        for fn in shows
    )
    assert app.show_view(None) == ("", *app.show_patches(None))


def test_detect_accepts_gradio_file_payloads_and_best_model_by_default(app, models, files):
    payload = {"path": files["image"], "url": None, "orig_name": "photo.png"}
    verdict = app.detect(payload, None)[0]
    assert "<code>tiny_attention</code>" in verdict, "empty choice = best trained model"


def test_detect_attention_and_fallback(app, models, files):
    *_, note, status, view = app.detect(files["image"], "tiny_attention", "attention")
    assert view.method == "attention" and "attention layer" in note and status == ""
    *_, note, status, view = app.detect(files["image"], "tiny_cnn", "attention")
    assert view.method == "gradcam"
    assert status == "`tiny_cnn` has no Attention map; showing Grad-CAM."


@pytest.mark.parametrize(
    ("kind", "code"), [("text", "not_an_image"), ("truncated", "truncated_file")]
)
def test_detect_bad_file_is_a_clear_message(app, models, files, kind, code):
    with no_toast(code):
        verdict, overlay, heatmap, _, status, view = app.detect(files[kind], "tiny_cnn")
    assert overlay is None and heatmap is None and view is None
    assert f"Could not read this file as an image ({code})" in verdict
    assert 'data-kind="error"' in verdict and status == ""
    assert "Traceback" not in verdict


def test_detect_without_image_asks_for_one(app, models):
    verdict, overlay, _, _, status, _ = app.detect(None, "tiny_cnn")
    assert verdict == "" and overlay is None
    assert status == "Upload, drop or paste an image to start."


def test_detect_untrained_recipe_and_missing_models_say_how_to_train(
    app, models, files, tmp_path, monkeypatch
):
    verdict, overlay, *_ = app.detect(files["image"], "efficientnet_b2")
    assert overlay is None
    assert "<code>efficientnet_b2</code> is a recipe without trained weights" in verdict
    assert "<code>python -m training train efficientnet_b2" in verdict
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(tmp_path / "empty"))
    verdict, overlay, *_ = app.detect(files["image"], "tiny_cnn")
    assert overlay is None and "No trained detector is installed" in verdict
    assert "<code>python -m training train simple_cnn" in verdict


def test_model_changed_offers_only_supported_methods(app, models):
    summary, update = app.model_changed("tiny_cnn", "attention")
    assert summary.startswith("**Tiny simple_cnn**") and "ROC-AUC 0.700" in summary
    assert update["choices"] == [("Grad-CAM", "gradcam"), ("Grad-CAM++", "gradcam++")]
    assert update["value"] == "gradcam"
    _, update = app.model_changed("tiny_attention", "attention")
    assert ("Attention map", "attention") in update["choices"] and update["value"] == "attention"


# ----------------------------------------------------------------------------------- compare
def test_compare_runs_every_model(app, models, files):
    agreement, bars, rows, gallery, status = app.compare(files["image"])
    preds = {name: expected(name, files["array"]) for name in ("tiny_attention", "tiny_cnn")}
    summary = pres.agreement(list(preds.values()), default="tiny_attention")
    assert summary.text in agreement and f'data-agree="{summary.unanimous}"' in agreement
    assert [row[0] for row in rows] == ["tiny_attention", "tiny_cnn"]
    for row in rows:
        pred = preds[row[0]]
        assert row[1] == pres.HEADLINES[pred.label]
        assert row[2] == pytest.approx(round(pred.p_fake, 4))
        assert row[3] == 0.5 and row[4] > 0 and row[5] == ""
    assert bars.count('class="fd-bar"') == 2
    assert [caption for _, caption in gallery] == [
        f"{name} · {pres.percent(p.p_fake)} {p.label}" for name, p in preds.items()
    ]
    assert all(image.shape == (96, 128, 3) for image, _ in gallery)
    assert status == ""
    plain = app.compare(files["image"], 0.0)[3]
    assert all(np.array_equal(image, files["array"]) for image, _ in plain), "opacity 0 = image"


def test_compare_summary_follows_the_default_model_not_the_majority(
    app, models, files, monkeypatch
):
    labels = {"tiny_attention": (0.35, "real"), "tiny_cnn": (0.45, "uncertain")}
    labels["third"] = (0.55, "uncertain")

    def run_models(image, names=None, method="gradcam"):
        return [
            pres.ModelOutcome(name, detector.Prediction(name, p, label, 0.5, 0.01, (0.4, 0.6)))
            for name, (p, label) in labels.items()
        ]

    monkeypatch.setattr(pres, "run_models", run_models)
    agreement, *_ = app.compare(files["image"])
    assert "the majority says" not in agreement
    assert "the default model, tiny_attention, says real." in agreement
    assert "(2 uncertain, 1 real)" in agreement
    api = app.api_compare(files["image"])["agreement"]
    assert "the majority says" not in api["text"] and "says real" in api["text"]


def test_compare_reports_a_failing_model_and_keeps_the_others(
    app, trained_dir, files, tmp_path, monkeypatch
):
    root = tmp_path / "models"
    shutil.copytree(trained_dir, root)
    (root / "tiny_cnn" / "model.keras").write_bytes(b"PK\x03\x04 not a keras file")
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(root))
    clear_cache()
    try:
        agreement, bars, rows, gallery, status = app.compare(files["image"])
        assert "Only one model answered" in agreement and "(1 model failed)" in agreement
        assert rows[1][:2] == ["tiny_cnn", "failed"] and rows[1][5].startswith("checksum_mismatch")
        assert len(gallery) == 1 and bars.count('class="fd-bar"') == 1
        assert status.startswith("**`tiny_cnn` failed.** checksum_mismatch")
        api = app.api_compare(files["image"])
        assert api["models"][1] == {"model": "tiny_cnn", "error": rows[1][5]}
        assert api["models"][0]["error"] is None and api["models"][0]["p_fake"] > 0
    finally:
        clear_cache()


def test_compare_bad_file_and_no_image(app, models, files):
    with no_toast("not_an_image"):
        agreement, _, rows, gallery, status = app.compare(files["text"])
    assert rows == [] and gallery == [] and status == ""
    assert "Could not read this file as an image (not_an_image)" in agreement
    assert app.compare(None)[4] == "Upload, drop or paste an image first."


# ----------------------------------------------------------------------------------- batch
def test_batch_table_and_csv(app, models, files):
    paths = [files["image"], files["text"], files["zip"]]
    rows, csv_path, summary = app.batch(paths, ["tiny_cnn", "tiny_attention"])
    assert [(r[0], r[1]) for r in rows] == [
        (name, model)
        for name in ("photo.png", "notes.png", "more.zip/a.png", "more.zip/sub/b.jpg")
        for model in ("tiny_cnn", "tiny_attention")
    ]
    pred = expected("tiny_cnn", files["array"])
    assert rows[0][2] == pred.label and rows[0][3] == pytest.approx(pred.p_fake, abs=1e-6)
    assert rows[2][5].startswith("not_an_image") and rows[2][3] == ""
    assert summary.startswith("4 files x 2 models:") and "2 error" in summary
    path = Path(csv_path)
    assert path.name.startswith("fakedetect-batch-") and path.suffix == ".csv"
    assert not any(n in str(path) for n in ("photo", "notes", "more"))
    with open(path, newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == list(pres.BATCH_FIELDS) and len(table) == 9
    assert table[1][:3] == ["photo.png", "tiny_cnn", pred.label]
    assert float(table[1][3]) == pytest.approx(pred.p_fake, abs=1e-6)


def test_batch_defaults_to_the_best_model_and_handles_nothing(app, models, files):
    rows, _, _ = app.batch([{"path": files["image"]}], [])
    assert [r[1] for r in rows] == ["tiny_attention"]
    assert app.batch([], ["tiny_cnn"]) == ([], None, "Upload images or a .zip archive first.")


def test_batch_shows_the_visitors_names_of_neutrally_stored_uploads(app, models, files, tmp_path):
    """On disk uploads are ``upload.<ext>`` (`detector.serving.asgi`); rows show ``orig_name``."""
    payloads = []
    for i, (key, orig) in enumerate([("image", "../my photo.png"), ("zip", "holiday.zip")]):
        stored = tmp_path / f"hash{i}" / f"upload{Path(files[key]).suffix}"
        stored.parent.mkdir()
        shutil.copy(files[key], stored)
        payloads.append(
            {"path": str(stored), "orig_name": orig, "meta": {"_type": "gradio.FileData"}}
        )
    rows, _, _ = app.batch(payloads, ["tiny_cnn"])
    assert [r[0] for r in rows] == ["../my photo.png", "holiday.zip/a.png", "holiday.zip/sub/b.jpg"]
    assert rows[0][3] == pytest.approx(expected("tiny_cnn", files["array"]).p_fake, abs=1e-6)
    # a single payload, a payload without orig_name, and a file gone missing
    assert app.batch(payloads[0], ["tiny_cnn"])[0][0][0] == "../my photo.png"
    assert app.batch([{"path": payloads[0]["path"]}], ["tiny_cnn"])[0][0][0] == "upload.png"
    gone = [{"path": str(tmp_path / "gone" / "upload.png"), "orig_name": "x.png"}]
    assert app.batch(gone, ["tiny_cnn"])[0][0][5].startswith("unreadable_file")
    # the event skips Gradio's check of the model choices: the handler checks them
    for bad in (["../../models/x"], ["tiny_cnn", 5]):
        rows, csv_path, summary = app.batch(payloads, bad)
        assert rows == [] and csv_path is None and summary.startswith("Unknown model")


# ----------------------------------------------------------------------------------- API
def test_api_predict_returns_json(app, models, files):
    result = app.api_predict(files["image"], "tiny_cnn")
    pred = expected("tiny_cnn", files["array"])
    assert set(result) >= {"p_fake", "label", "threshold", "model", "seconds"}
    assert result["model"] == "tiny_cnn" and result["threshold"] == 0.5
    assert result["p_fake"] == pytest.approx(pred.p_fake, abs=1e-6)
    assert result["label"] == pred.label and result["seconds"] > 0
    assert result["patches"] == [patch.to_dict() for patch in pred.patches]
    assert result["label_title"] == pres.HEADLINES[pred.label]
    # the combined headline: a plain PNG declares nothing, so the model's score decides
    stability = detector.check_stability(files["array"], detector.load_model("tiny_cnn"), pred)
    found = detector.headline(detector.inspect_file(files["image"]), pred, stability)
    assert result["headline"] == json.loads(json.dumps(found.to_dict()))
    assert result["headline"]["basis"] == "model"
    assert result["stability"]["flipped"] == stability.flipped and result["stability"]["checked"]
    assert json.loads(json.dumps(result)) == result
    assert app.api_predict(files["image"], "")["model"] == "tiny_attention"


def test_api_errors_are_clear(app, models, files):
    import gradio as gr

    with pytest.raises(gr.Error, match=r"Could not read this file as an image \(not_an_image\)"):
        app.api_predict(files["text"], "tiny_cnn")
    with pytest.raises(gr.Error, match="Unknown model `gpt`"):
        app.api_predict(files["image"], "gpt")
    with pytest.raises(gr.Error, match="recipe without trained weights"):
        app.api_predict(files["image"], "efficientnet_b7_finetune")
    with pytest.raises(gr.Error, match="No image received"):
        app.api_compare(None)
    with pytest.raises(gr.Error, match="truncated_file"):
        app.api_compare(files["truncated"])
    with pytest.raises(gr.Error, match="Unknown method 'lime'"):
        app.api_explain(files["image"], "tiny_cnn", "lime")
    # /explain skips preprocessing: a method that is not text is still just an unknown method
    with pytest.raises(gr.Error, match=r"Unknown method .*\[.*gradcam.*\]"):
        app.api_explain(files["image"], "tiny_cnn", ["gradcam"])
    with pytest.raises(gr.Error, match="Unknown model `5`"):
        app.api_predict(files["image"], 5)


def test_api_explain_and_models(app, models, files):
    overlay, heatmap, result = app.api_explain(files["image"], "tiny_attention", "attention")
    assert overlay.shape == heatmap.shape == (96, 128, 3)
    assert result["method"] == "attention" and result["model"] == "tiny_attention"
    assert result["patch"] == 0 and len(result["patches"]) == 1
    listed = app.api_models()
    assert [m["name"] for m in listed[:2]] == ["tiny_attention", "tiny_cnn"]
    assert listed[0]["trained"] and not listed[-1]["trained"]


# ----------------------------------------------------------------------------------- examples
def test_load_examples_is_robust(tmp_path):
    assert example_gallery.load_examples(tmp_path / "missing") == []
    (tmp_path / "examples.json").write_text("{not json")
    assert example_gallery.load_examples(tmp_path) == []
    (tmp_path / "example_01.png").write_bytes(encode(make_image(32, 32)))
    entries = [
        {"file": "example_01.png", "label": "fake", "generator": "SDXL", "source": "kit"},
        {"file": "example_02.png", "label": "real"},
        {"file": "../conftest.py", "label": "real"},
        "junk",
    ]
    (tmp_path / "examples.json").write_text(json.dumps(entries))
    examples = example_gallery.load_examples(tmp_path)
    assert [e["file"] for e in examples] == ["example_01.png"]
    assert examples[0]["path"] == str((tmp_path / "example_01.png").resolve())
    note = example_gallery.example_note(0, examples)
    assert note == "**Example 1** is AI-generated (SDXL). source: kit"
    assert example_gallery.example_credit(0, examples) == "source: kit"
    assert example_gallery.example_note(5, examples) == ""


def test_shipped_examples_exist_and_are_small(app):
    import webapp.common

    folder = app.EXAMPLES_DIR
    if not (folder / "examples.json").is_file():
        pytest.skip("no examples shipped yet")
    entries = json.loads((folder / "examples.json").read_text())
    assert len(example_gallery.load_examples(folder)) == len(entries) >= 4
    assert len(webapp.common.EXAMPLES) == len(entries)
    assert {e["label"] for e in entries} == {"fake", "real"}
    for entry in entries:
        assert set(entry) >= {"file", "label", "source", "generator", "licence", "author"}
        assert entry["label"] not in entry["file"] and "fake" not in entry["file"]
        detector.load_image(folder / entry["file"])
    assert sum(p.stat().st_size for p in folder.iterdir()) < 1.5e6
    assert (folder / "ATTRIBUTION.md").is_file()


# ----------------------------------------------------------------------------------- wiring
def test_demo_wiring_endpoints_queue_and_limits(app):
    fns = {fn.api_name: fn for fn in app.demo.fns.values()}
    public = {name for name, fn in fns.items() if fn.api_visibility == "public"}
    assert public == {"predict", "compare", "explain", "models", "batch", "inspect"}
    assert fns["predict"].fn is app.api_predict and fns["compare"].fn is app.api_compare
    # the image input reaches `detect` undecoded, so broken files get a clear message
    assert all(not fn.preprocess for name, fn in fns.items() if name.startswith("detect"))
    assert app.demo._queue.default_concurrency_limit == app.CONCURRENCY_LIMIT == 2
    assert app.demo._queue.max_size == app.QUEUE_MAX_SIZE
    assert app.demo.analytics_enabled is False
    import os

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert app.LAUNCH_KWARGS["max_file_size"] == "50mb"
    assert app.LAUNCH_KWARGS["css"] == app.CSS
    assert str(app.EXAMPLES_DIR) in app.LAUNCH_KWARGS["allowed_paths"]
    # uploads are renamed upload.<ext> before Gradio stores them (tests/test_asgi.py)
    [middleware] = app.LAUNCH_KWARGS["app_kwargs"]["middleware"]
    assert middleware.cls is detector.serving.asgi.NeutralUploadNames
    # file inputs skip gr.File's preprocessing, which leaves an empty temporary file per call
    assert not any(fns[name].preprocess for name in ("predict", "compare", "explain", "inspect"))
    assert not fns["batch"].preprocess


def test_app_imports_only_the_public_detector_api():
    root = Path(__file__).resolve().parent.parent
    source = (root / "app.py").read_text()
    imports = [line.strip() for line in source.splitlines() if line.startswith(("import", "from"))]
    detector_imports = [line for line in imports if "detector" in line]
    assert detector_imports == [
        "import detector",
        "from detector import serving",
        "from detector.ui import app_texts",
        "from detector.ui import presentation as pres",
        "from detector.ui.verdict_cards import notice_html",
    ]
    assert {"classroom", "presentation"} <= set(detector.ui.__all__)
    # the tabs beside it: the public API, detector.ui and detector.serving only
    for path in sorted((root / "webapp").glob("*.py")):
        lines = path.read_text().splitlines()
        used = [line for line in lines if line.startswith(("import detector", "from detector"))]
        assert all(
            line in ("import detector", "from detector import serving")
            or line.startswith("from detector.ui")
            for line in used
        ), path.name


# ----------------------------------------------------------------------------------- bundled
def test_handlers_on_the_bundled_models(app, files, monkeypatch):
    monkeypatch.delenv("FAKEDETECT_MODELS_DIR", raising=False)
    bundled = [info for info in detector.list_models() if info.trained]
    if not bundled:
        pytest.skip(f"no trained models bundled in {detector.models_dir()}")
    best = bundled[0].name
    verdict, overlay, heatmap, *_ = app.detect(files["image"], best)
    pred = expected(best, files["array"])
    assert f'data-label="{pred.label}"' in verdict and pres.percent(pred.p_fake) in verdict
    assert overlay.shape == heatmap.shape == (96, 128, 3)
    assert app.api_predict(files["image"], best)["p_fake"] == pytest.approx(pred.p_fake, abs=1e-6)
    _, _, rows, gallery, status = app.compare(files["image"])
    assert [row[0] for row in rows] == [info.name for info in bundled]
    assert len(gallery) == len(bundled) and "failed" not in status.lower()


# ----------------------------------------------------------------------------------- serving
def test_events_confine_file_paths_to_uploads_and_examples(app, models, files, monkeypatch):
    """With a request (Gradio passes one to every event), only files in the upload cache or the
    examples folder are read; called without one, as here in the other tests, any path is."""
    import gradio as gr

    from webapp.common import path_of

    cache = Path(files["image"]).parent
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache / "cache"))
    request = object()  # any value: the handlers only check that there is one
    outside = files["image"]
    stored = cache / "cache" / "0a1b" / "upload.png"
    stored.parent.mkdir(parents=True)
    shutil.copy(outside, stored)
    for payload in (outside, {"path": outside}, {"path": outside, "orig_name": "x.png"}):
        for call in (
            lambda p: app.detect(p, "tiny_cnn", request=request),
            lambda p: app.compare(p, request=request),
            lambda p: app.evidence_board(p, "tiny_cnn", request=request),
            lambda p: app.batch([p], ["tiny_cnn"], request=request),
            lambda p: app.batch(p, ["tiny_cnn"], request=request),
            lambda p: app.api_predict(p, "tiny_cnn", request=request),
            lambda p: app.api_compare(p, request=request),
            lambda p: app.api_explain(p, "tiny_cnn", "gradcam", request=request),
            lambda p: app.api_inspect(p, request=request),
        ):
            with pytest.raises(gr.Error) as refused:
                call(payload)
            assert refused.value.message == detector.serving.paths.PATH_REFUSED
    for inside in (str(stored), {"path": str(stored)}):
        assert 'data-label="' in app.detect(inside, "tiny_cnn", request=request)[0]
        assert app.api_predict(inside, "tiny_cnn", request=request)["model"] == "tiny_cnn"
        assert app.batch([inside], ["tiny_cnn"], request=request)[0][0][1] == "tiny_cnn"
    example = app.EXAMPLES_DIR / "example_01.png"
    if example.is_file():
        assert app.api_predict(str(example), "tiny_cnn", request=request)["model"] == "tiny_cnn"
    assert path_of(None, request) is None
    with pytest.raises(gr.Error):
        path_of({"path": ["/etc/passwd"]}, request)


def test_every_event_that_decodes_or_scores_is_in_one_concurrency_group(app):
    file_handlers = {
        app.detect,
        app.compare,
        app.evidence_board,
        app.batch,
        app.api_predict,
        app.api_compare,
        app.api_explain,
        app.api_inspect,
    }
    fns = list(app.demo.fns.values())
    heavy = [fn for fn in fns if fn.concurrency_id == app.HEAVY]
    assert {fn.fn for fn in heavy} == file_handlers
    assert len(heavy) == 12  # detect x4, compare, evidence board x2, batch, 4 API endpoints
    assert all(fn.concurrency_limit == app.CONCURRENCY_LIMIT == 2 for fn in heavy)
    # the events with a file input are exactly these
    with_files = [fn for fn in fns if any(type(c).__name__ in ("Image", "File") for c in fn.inputs)]
    assert set(with_files) == set(heavy)
    assert app.demo.api_open is False  # /gradio_api/run/<api> does not skip the queue
    assert app.LAUNCH_KWARGS["enable_monitoring"] is False
    [middleware] = app.LAUNCH_KWARGS["app_kwargs"]["middleware"]
    fair = middleware.kwargs["fair_queue"]
    assert fair["heavy_events"] == {fn._id for fn in heavy}
    assert fair["heavy_apis"] == {fn.api_name for fn in heavy}
    assert {"predict", "compare", "explain", "inspect", "batch"} < fair["heavy_apis"]
    assert "models" not in fair["heavy_apis"]
    assert fair["pending"]("no such event") is False


def test_batch_decodes_one_image_at_a_time(app, models, files, monkeypatch):
    chunks = []
    batch_rows = pres.batch_rows

    def spy(items, names, *, chunk=16, **kwargs):
        chunks.append(chunk)
        return batch_rows(items, names, chunk=chunk, **kwargs)

    monkeypatch.setattr(pres, "batch_rows", spy)
    rows, _, _ = app.batch([files["image"], files["zip"]], ["tiny_cnn"])
    assert len(rows) == 3 and chunks == [1]


def test_batch_reports_its_progress_file_by_file(app, models, files):
    calls = []

    def progress(fraction, desc=None, unit=None):
        calls.append((fraction, unit))

    rows, _, _ = app.batch([files["image"], files["zip"]], ["tiny_cnn"], progress=progress)
    assert len(rows) == 3
    assert [c[0] for c in calls] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert {c[1] for c in calls} == {"files"}


def test_batch_reads_at_most_the_limit_whatever_the_reported_size(app, monkeypatch):
    limits = pres.UploadLimits(max_file_bytes=100_000, max_total_bytes=100_000)
    monkeypatch.setattr(pres, "UploadLimits", lambda: limits)
    from webapp.batch import Uploads

    # /dev/zero reports 0 bytes and never ends: it used to be read whole
    assert Uploads([("/dev/zero", "zero.png")])[0] == "/dev/zero"
    status = Uploads([("/proc/self/status", "status.png")])[0]
    assert status[0] == "status.png" and 0 < len(status[1]) <= 100_000


@pytest.mark.parametrize(
    ("handler", "kind"),
    [
        ("detect", "text"),
        ("detect", "truncated"),
        ("detect", "model"),
        ("compare", "text"),
        ("evidence", "text"),
        ("evidence", "truncated"),
    ],
)
def test_one_error_is_one_notice(app, models, files, monkeypatch, handler, kind):
    """Each error reaches the visitor once: a toast (gr.Warning / gr.Info / a raised gr.Error)
    or an error card in the page, never both."""
    import gradio as gr

    toasts: list[str] = []
    for name in ("Warning", "Info"):
        monkeypatch.setattr(gr, name, lambda message, *a, **k: toasts.append(str(message)))
    if kind == "model":

        def broken(name, *args, **kwargs):
            raise detector.ModelLoadError(f"weights file missing for model {name!r}", code="x")

        monkeypatch.setattr(pres, "load_model", broken)
        monkeypatch.setattr(detector, "load_model", broken)
    image = files["image" if kind == "model" else kind]
    call = {
        "detect": lambda: app.detect(image, "tiny_cnn"),
        "compare": lambda: app.compare(image),
        "evidence": lambda: app.evidence_board(image, "tiny_cnn"),
    }[handler]
    try:
        outputs = call()
    except gr.Error as error:  # a raised gr.Error is a toast too
        toasts.append(error.message)
        outputs = ()
    cards = sum(str(out).count('data-kind="error"') for out in outputs if isinstance(out, str))
    assert len(toasts) + cards == 1, (toasts, cards)


def test_errors_shown_to_visitors_name_no_server_path(app, models, files, tmp_path, monkeypatch):
    import gradio as gr

    weights = tmp_path / "srv" / "models" / "x" / "model.keras"

    def broken(name, *args, **kwargs):
        raise detector.ModelLoadError(
            f"weights file missing for model {name!r}: {weights}", code="missing"
        )

    monkeypatch.setattr(pres, "load_model", broken)
    monkeypatch.setattr(detector, "load_model", broken)
    with no_toast("missing"):
        verdict = app.detect(files["image"], "tiny_cnn")[0]
    shown = [
        verdict,
        app.compare(files["image"]),
        app.api_compare(files["image"]),
        app.evidence_board(files["image"], "tiny_cnn")[7],
    ]
    rows, csv_path, _ = app.batch([files["image"]], ["tiny_cnn"])
    shown += [rows, Path(csv_path).read_text()]
    for call in (
        lambda: app.api_predict(files["image"], "tiny_cnn"),
        lambda: app.api_explain(files["image"], "tiny_cnn", "gradcam"),
    ):
        with pytest.raises(gr.Error) as error:
            call()
        shown.append(error.value.message)
    for item in shown:
        text = json.dumps(item, default=str)
        assert "model.keras" in text, text[:300]
        assert str(weights.parent) not in text and str(tmp_path) not in text, text[:300]
