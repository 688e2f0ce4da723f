"""The Gradio app's evidence board and warnings, called as plain functions on the tiny models."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from conftest import encode, make_image, no_toast
from matplotlib.figure import Figure
from PIL import ExifTags, Image, PngImagePlugin

import detector
from detector.ui import presentation as pres

pytestmark = pytest.mark.filterwarnings("ignore:Could not read this file:UserWarning")

PROMPT = "a watercolour fox in the snow"
PARAMETERS = (
    f"{PROMPT}\nNegative prompt: blurry, lowres\n"
    "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234, Size: 512x768, "
    "Model: sd_xl_base_1.0, Version: v1.9.0"
)


def sd_png(image: np.ndarray) -> bytes:
    """A PNG with the ``parameters`` text chunk Stable Diffusion WebUI writes."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", PARAMETERS)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def camera_jpeg(image: np.ndarray) -> bytes:
    """A JPEG with camera EXIF (make, model, capture time) and GPS coordinates."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R5"
    exif.get_ifd(ExifTags.IFD.Exif)[0x9003] = "2023:05:01 10:02:11"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {1: "N", 2: (48.0, 51.0, 29.5), 3: "E", 4: (2.0, 17.0, 40.2)}
    )
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=88, exif=exif)
    return buf.getvalue()


@pytest.fixture
def files(tmp_path):
    image = make_image(96, 128, seed=3)
    screen = np.full((1080, 1920, 3), 240, np.uint8)
    screen[100:300, 100:900] = (30, 60, 200)
    data = {
        "sd": sd_png(image),
        "camera": camera_jpeg(image),
        "screen": encode(screen),
        "cut": sd_png(image)[:400],  # header and text chunk intact, pixels cut off
        "empty": b"",
    }
    paths = {}
    for key, content in data.items():
        paths[key] = tmp_path / f"{key}.{'jpg' if key == 'camera' else 'png'}"
        paths[key].write_bytes(content)
    return {"array": image, **{k: str(v) for k, v in paths.items()}}


def payload(path: str) -> dict[str, str | None]:
    """What Gradio hands a handler for an image input with ``preprocess=False``."""
    return {"path": path, "url": None, "orig_name": path.rsplit("/", 1)[-1]}


def unpack(result):
    names = ("headline", "items", "report", "spectrum", "ela", "plot", "rows", "stress")
    return dict(zip(names, result, strict=True))


# ----------------------------------------------------------------------------------- evidence
def test_evidence_board_reads_generation_settings_from_the_uploaded_png(app, models, files):
    out = unpack(app.evidence_board(payload(files["sd"]), "tiny_cnn", "selected"))
    assert 'data-tone="ai"' in out["headline"] and 'data-kind="warning"' in out["headline"]
    assert "made with AI (Generation settings in metadata)" in out["headline"]

    report = out["report"]
    evidence = detector.inspect_file(files["sd"])
    verdict = detector.headline(evidence, None, None).to_dict()
    assert report == json.loads(json.dumps({**evidence.to_dict(), "verdict": verdict}))
    assert report == app.api_inspect(files["sd"]), "the board's JSON is what /inspect gives"
    assert (report["verdict"]["label"], report["verdict"]["basis"]) == (
        "ai_generated",
        "declaration",
    )
    item = next(i for i in report["items"] if i["kind"] == "generation_settings")
    assert item["found"] is True and item["indicates"] == "ai_generated"
    parsed = item["details"]["parsed"]["parameters"]
    assert parsed["prompt"] == PROMPT and parsed["settings"]["Seed"] == "1234"
    assert report["readable"] is True and report["format"] == "PNG"

    items = out["items"]
    assert "**Generation settings in metadata** · found · *points to AI generation*" in items
    assert f"parameters › prompt: {PROMPT}" in items
    assert "parameters › settings › Sampler: DPM\\+\\+ 2M Karras" in items
    assert "**Camera EXIF** · not found · *neutral*" in items
    for entry in detector.inspect_file(files["sd"]).items:
        assert entry.does_not_prove in items, f"{entry.kind}: what its absence does not prove"
        assert (entry.proves in items) == entry.found, f"{entry.kind}: proves only when found"


def test_evidence_board_forensic_views_are_the_library_views(app, models, files):
    out = unpack(app.evidence_board(payload(files["sd"]), "tiny_cnn"))
    array = files["array"]
    assert out["spectrum"].shape == (96, 128, 3) and out["spectrum"].dtype == np.uint8
    assert out["ela"].shape == (96, 128, 3) and out["ela"].dtype == np.uint8
    np.testing.assert_array_equal(out["spectrum"], detector.residual_spectrum_rgb(array))
    np.testing.assert_array_equal(out["ela"], detector.error_level_analysis_rgb(array))
    assert out["spectrum"].std() > 0 and out["ela"].std() > 0


def test_forensic_views_keep_the_spectrum_size_and_shrink_ela():
    big = make_image(1200, 1500, seed=4)
    spectrum, ela = pres.forensic_views(big)
    assert spectrum.image.shape == (1024, 1024, 3), "centre crop at SPECTRUM_MAX_SIDE, no resize"
    assert ela.image.shape == (614, 768, 3) and ela.image.dtype == np.uint8
    assert spectrum.explanation == detector.RESIDUAL_SPECTRUM_EXPLANATION
    assert ela.explanation == detector.ELA_EXPLANATION


@pytest.mark.parametrize(("scope", "expected"), [("selected", ["tiny_cnn"]), ("all", None)])
def test_evidence_board_stress_test(app, models, files, scope, expected):
    out = unpack(app.evidence_board(payload(files["sd"]), "tiny_cnn", scope))
    names = expected or [info.name for info in pres.trained_models()]
    assert isinstance(out["plot"], Figure) and len(out["plot"].get_axes()) == 2
    lines = [line.get_label() for line in out["plot"].get_axes()[0].get_lines()]
    assert [label.split(" ")[0] for label in lines if not label.startswith("_")] == names

    reference = detector.stress_test(files["array"], [detector.load_model(n) for n in names])
    assert [row[0] for row in out["rows"]] == names
    fragile_at = app.STRESS_HEADERS.index("fragile")
    for row, model in zip(out["rows"], reference.models, strict=True):
        assert type(row[fragile_at]) is bool and row[fragile_at] == model.fragile
        assert row[1] == pytest.approx(model.baseline, abs=1e-4)
        assert row[2] == model.baseline_verdict
        # the label beside the card is the card's own (uncertain band included)
        assert row[2] == detector.load_model(row[0]).predict(files["array"]).label
        values = [model.baseline, *model.jpeg, *model.scale]
        assert row[3] == pytest.approx(min(values), abs=1e-4)
        assert row[4] == pytest.approx(max(values), abs=1e-4)
        assert row[6] == (", ".join(model.flips) or "never")
    baseline = detector.load_model(names[0]).predict(files["array"]).p_fake
    assert out["rows"][0][1] == pytest.approx(baseline, abs=1e-4)
    assert detector.FRAGILE_DEFINITION in out["stress"]
    fragile = [m.model for m in reference.models if m.fragile]
    if fragile:
        assert "**Fragile on this image:**" in out["stress"]
    else:
        assert "**No model is fragile on this image:**" in out["stress"]


def test_evidence_board_camera_jpeg(app, models, files):
    out = unpack(app.evidence_board(payload(files["camera"]), "tiny_attention"))
    assert 'data-tone="camera"' in out["headline"] and "camera capture" in out["headline"]
    exif = next(i for i in out["report"]["items"] if i["kind"] == "exif")
    assert exif["found"] is True and exif["indicates"] == "camera_capture"
    assert exif["details"]["make"] == "Canon" and exif["details"]["model"] == "Canon EOS R5"
    assert exif["details"]["capture_time"] == "2023:05:01 10:02:11"
    quality = next(i for i in out["report"]["items"] if i["kind"] == "jpeg_quality")
    assert quality["details"]["quality"] == 88
    assert "**Camera EXIF** · found · *points to a camera capture*" in out["items"]
    assert "- model: Canon EOS R5" in out["items"]
    assert "**GPS location** · found" in out["items"]
    for secret in ("48.0", "51.0", "29.5", "40.2"):
        assert secret not in out["items"] and secret not in json.dumps(out["report"])
    assert out["spectrum"].shape == (96, 128, 3) and [r[0] for r in out["rows"]] == [
        "tiny_attention"
    ]


def test_evidence_board_unreadable_file_keeps_its_metadata(app, models, files):
    with no_toast(r"\(truncated_file\)"):
        out = unpack(app.evidence_board(payload(files["cut"]), "tiny_cnn"))
    assert "Could not read this file as an image (truncated_file)" in out["headline"]
    assert 'data-kind="error"' in out["headline"] and "made with AI" in out["headline"]
    assert "**Generation settings in metadata** · found" in out["items"]
    assert out["report"]["readable"] is False
    assert out["spectrum"] is None and out["ela"] is None and out["plot"] is None
    assert out["rows"] == []

    with no_toast(r"\(empty_file\)"):
        out = unpack(app.evidence_board(payload(files["empty"]), "tiny_cnn"))
    assert "Could not read this file as an image (empty_file): empty file" in out["headline"]
    assert out["report"] is None and out["items"] == ""


def test_evidence_board_without_image_or_models(app, files, tmp_path, monkeypatch):
    out = unpack(app.evidence_board(None, "tiny_cnn"))
    assert out["stress"] == "Upload, drop or paste an image first." and out["report"] is None
    assert unpack(app.clear_evidence())["headline"] == ""
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(tmp_path / "empty"))
    out = unpack(app.evidence_board(payload(files["sd"]), None, "all"))
    assert "made with AI" in out["headline"], "provenance needs no model"
    assert out["spectrum"].shape == (96, 128, 3), "nor do the forensic views"
    assert out["plot"] is None and out["rows"] == []
    assert out["stress"].startswith("No trained detector is installed")


def test_evidence_markdown_escapes_metadata(tmp_path):
    info = PngImagePlugin.PngInfo()
    hostile = "![x](http://example.invalid/t.png) <img src=x onerror=alert(1)> :red[big]"
    info.add_text("parameters", hostile + "\nSteps: 20, Sampler: Euler, Seed: 1")
    buf = io.BytesIO()
    Image.fromarray(make_image(32, 32)).save(buf, "PNG", pnginfo=info)
    text = pres.evidence_markdown(detector.inspect_file(buf.getvalue()))
    for markup in (r"\]\(", "<img", r":red\[", "!\\["):
        assert not re.search(r"(?<!\\)" + markup, text), f"unescaped {markup}"
    assert "\\!\\[x\\]\\(http\\:" in text and "\\<img src\\=x" in text


# ----------------------------------------------------------------------------------- API
def test_api_inspect_returns_the_report(app, models, files):
    result = app.api_inspect(files["sd"])
    evidence = detector.inspect_file(files["sd"])
    assert result == json.loads(
        json.dumps({**evidence.to_dict(), "verdict": detector.headline(evidence, None).to_dict()})
    )
    assert result["verdict"]["title"] == "AI-generated: declared in metadata"
    assert result["headline"].startswith("The metadata says this image was made with AI")
    kinds = {item["kind"]: item for item in result["items"]}
    assert kinds["generation_settings"]["found"] and not kinds["exif"]["found"]
    assert all(item["proves"] and item["does_not_prove"] for item in result["items"])
    assert app.api_inspect(files["camera"])["items"][4]["details"]["make"] == "Canon"


def test_api_inspect_errors_name_the_problem(app, models, files):
    import gradio as gr

    with pytest.raises(gr.Error, match=r"Could not read this file as an image \(truncated_file\)"):
        app.api_inspect(files["cut"])
    with pytest.raises(gr.Error, match=r"\(empty_file\): empty file"):
        app.api_inspect(files["empty"])
    with pytest.raises(gr.Error, match="No image received"):
        app.api_inspect(None)


def test_evidence_wiring(app):
    fns = {fn.api_name: fn for fn in app.demo.fns.values()}
    assert fns["inspect"].fn is app.api_inspect and fns["inspect"].api_visibility == "public"
    board = [fn for fn in app.demo.fns.values() if fn.fn is app.evidence_board]
    assert len(board) == 2, "the Evidence board button and the Gather evidence button"
    assert all(not fn.preprocess and fn.api_visibility == "private" for fn in board)
    assert [c.elem_id for c in board[0].inputs] == ["fd-input", "fd-model", "fd-stress-scope"]
    assert list(pres.STRESS_FIELDS) == app.STRESS_HEADERS
    by_id = {b.elem_id: b for b in app.demo.blocks.values() if getattr(b, "elem_id", None)}
    assert by_id["fd-spectrum"].format == by_id["fd-ela"].format == "png", "lossless views"
    assert by_id["fd-stress-plot"].format == "png"


# ----------------------------------------------------------------------------------- warnings
def test_detect_shows_why_the_score_may_not_be_trustworthy(app, models, files):
    expected = detector.load_model("tiny_cnn").predict(files["screen"]).warnings
    assert len(expected) >= 2 and any("screenshot" in w for w in expected)
    verdict, *_, status, _ = app.detect(payload(files["screen"]), "tiny_cnn")
    assert f"⚠️ {pres.WARNINGS_TITLE}" in verdict
    assert verdict.count("<li>") == len(expected)
    for warning in expected:
        assert f"<li>{warning}</li>" in verdict
    assert status == ""
    clean, *_ = app.detect(payload(files["sd"]), "tiny_cnn")
    assert pres.WARNINGS_TITLE not in clean


def test_compare_and_api_carry_the_warnings(app, models, files):
    status = app.compare(payload(files["screen"]))[4]
    expected = detector.load_model("tiny_cnn").predict(files["screen"]).warnings
    assert status.startswith(f"**{pres.WARNINGS_TITLE}**")
    assert all(f"- {warning}" in status for warning in expected)
    api = app.api_compare(files["screen"])
    for entry in api["models"]:
        assert (
            tuple(entry["warnings"])
            == detector.load_model(entry["model"]).predict(files["screen"]).warnings
        )
    assert app.api_predict(files["screen"], "tiny_cnn")["warnings"] == list(expected)


def test_combined_warnings_name_the_models_when_they_differ():
    def pred(model, warnings):
        return detector.Prediction(model, 0.5, "uncertain", 0.5, 0.01, (0.4, 0.6), warnings)

    lines = pres.combined_warnings([pred("a", ("big", "flat")), pred("b", ("flat",))])
    assert lines == ["big (`a`)", "flat"]
    assert pres.warnings_markdown([]) == ""
