"""The pure helpers behind the Streamlit pages: uploads held in memory, visitor texts, verdict
cards and model pickers (`detector.ui.held`, `visitor`, `verdict_cards`, `model_list`)."""

from __future__ import annotations

import dataclasses
import html
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import encode, make_image

import detector
from detector.ui import classroom as cr
from detector.ui import presentation as pres


def info(name: str, methods: tuple[str, ...]) -> detector.ModelInfo:
    return detector.ModelInfo(name, "cnn", True, name.upper(), "", methods, 64)


def test_an_upload_decodes_on_use_and_releases_its_decode():
    data = encode(make_image(40, 30))
    upload = cr.Upload("a.png", data)
    assert len(upload.digest) == 64 and upload.digest == cr.Upload("b", data).digest
    assert upload.array.shape == (40, 30, 3) and "array" in upload.__dict__
    cr.release(upload, "not an upload", None)
    assert "array" not in upload.__dict__ and "loaded" not in upload.__dict__
    assert upload.data == data  # the bytes stay


def test_a_broken_upload_raises_on_decode():
    with pytest.raises(detector.ImageLoadError):
        _ = cr.Upload("bad.png", b"nope").array


def test_held_uploads_open_zip_archives():
    data = encode(make_image(16, 16))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.png", data)
        archive.writestr("y.png", data)
    items = cr.held_uploads([("one.png", data), ("set.zip", buffer.getvalue())])
    assert all(isinstance(item, cr.Upload) for item in items)
    assert [item.data for item in items] == [data, data, data]
    assert items[0].name == "one.png" and len(items) == 3


def test_degraded_names_and_captions():
    assert cr.degraded_name("a.png", "jpeg", 40) == "a.png · JPEG q40"
    assert cr.degraded_name("a.png", "resize", 50) == "a.png · 50%"
    degraded = cr.Degraded(cr.Upload("a", b"x"), np.zeros((2, 2, 3), np.uint8), 320, 240, 2048)
    assert cr.degraded_caption(degraded, "jpeg", 40) == "JPEG quality 40 · 2 KB"
    assert cr.degraded_caption(degraded, "resize", 50) == "50% · 320 x 240 px"


def test_visitor_texts_hide_server_paths():
    text = "weights file missing for model 'x': /srv/app/models/x/model.keras"
    assert cr.visitor_text(text) == "weights file missing for model 'x': model.keras"
    assert cr.visitor_text(None) is None
    assert cr.visitor_errors({"m": "no /a/b/c.keras"}) == {"m": "no c.keras"}
    exc = detector.ImageLoadError("cannot read /tmp/up/x.png")
    shown = cr.visitor_read_error(exc)
    assert shown == cr.visitor_text(pres.read_error(exc.code, exc.message))
    assert shown and "/tmp/up" not in shown


def test_verdict_card_escapes_and_shows_the_probability():
    prediction = detector.Prediction("<m>", 0.9, "fake", 0.5, 12.0, (0.4, 0.6))
    card = pres.verdict_html(prediction)
    assert 'data-label="fake"' in card and html.escape("<m>") in card and "<m>" not in card
    assert pres.bar_html(prediction) in card
    assert 'class="fd-detail"' not in pres.verdict_html(prediction, compact=True)
    assert "uncertain band" in pres.bar_html(prediction)
    banded = detector.Prediction("m", 0.9, "fake", 0.5, 1.0, (0.5, 0.5))
    assert "uncertain band" not in pres.bar_html(banded)


def test_pickers_offer_the_methods_of_the_chosen_models():
    infos = [info("a", ("gradcam",)), info("b", ("gradcam", "attention"))]
    assert pres.offered_methods(infos, ["a"]) == ["gradcam"]
    assert set(pres.offered_methods(infos, ["a", "b"])) == {"gradcam", "attention"}
    assert pres.offered_methods(infos, []) == ["gradcam"]
    text = pres.picker_help(infos)
    assert text.startswith("Trained models, best on images from unseen sources first:")
    assert text.count("\n- ") == 2 and text.endswith("Pick several to compare them side by side.")


def test_classroom_texts_of_the_page():
    examples = [cr.Example(file="a.png", path=Path("a.png"), label="fake")]
    assert cr.example_options(examples, "Mine") == [f"Example 1: {examples[0].title}", "Mine"]
    assert cr.example_options([], "Mine") == ["Mine"]
    fact = cr.ModelFacts(name="m", title="M", summary="")
    assert cr.test_set_title(fact) == "**On the test set**"
    assert cr.limits_markdown(fact) == "- The card lists none: that does not mean there are none."
    fact = dataclasses.replace(fact, test_size="1,000 images", limitations=("JPEG", "faces"))
    assert cr.test_set_title(fact) == "**On the test set** (1,000 images)"
    assert cr.limits_markdown(fact) == "- JPEG\n- faces"
    assert cr.methods_agreement([]) == ""
    heat = np.zeros((8, 8), np.float32)
    heat[:2] = 1.0
    views = [
        pres.HeatmapView(method="gradcam", image=heat, heatmap=heat),
        pres.HeatmapView(method="gradcam++", image=heat, heatmap=heat),
    ]
    text = cr.methods_agreement(views)
    assert text.startswith("**Do the methods agree?**") and "**100%**" in text
