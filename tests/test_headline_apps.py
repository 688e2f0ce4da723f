"""The combined headline in both apps and the Gradio API, on four files that each decide it
another way: a PNG with Stable Diffusion WebUI "parameters" (an unsigned declaration), a picture
carrying SD v1's invisible watermark (a mark), a generator's PNG signed with C2PA Content
Credentials (a signature) and a camera JPEG that declares nothing (the model's score decides).

The handlers are called as plain functions, the API through `gradio_client` on ``python app.py``,
and both apps are driven in headless Debian chromium: one Gradio page takes the four uploads in
turn, one Streamlit page takes all four at once.
"""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path

import pytest
from conftest import encode, make_image
from PIL import Image, PngImagePlugin
from servers import gradio_app
from streamlit.testing.v1 import AppTest
from test_app_evidence import camera_jpeg
from wm_reference import mark_sd_v1, photo

import detector
from detector.ui import classroom as cr
from detector.ui import presentation as pres

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 180
#: What AUTOMATIC1111's WebUI writes in a PNG's "parameters" text chunk.
PARAMETERS = (
    "a prompt\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model: sd15"
)
#: For each file: the headline's (label, basis) and the source of its deciding reason. The
#: camera photo's label is the model's (likely_real, likely_ai or uncertain).
EXPECTED = {
    "parameters.png": ("ai_generated", "declaration", "generation_settings"),
    "watermarked.png": ("ai_generated", "declaration", "watermark"),
    "signed.png": ("ai_generated", "signature", "c2pa"),
    "camera.jpg": (None, "model", "model"),
}
MODEL_LABELS = ("likely_real", "likely_ai", "uncertain")


def parameters_png() -> bytes:
    """A PNG with the WebUI's generation settings in its ``parameters`` text chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", PARAMETERS)
    buffer = io.BytesIO()
    Image.fromarray(make_image(96, 128, seed=31)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def watermarked_png() -> bytes:
    """A 512 px picture marked as SD v1's scripts mark their output, stored losslessly."""
    return encode(mark_sd_v1(photo(512, 512, seed=1)))


def signed_png() -> bytes:
    """A generator's PNG, signed by a throwaway C2PA chain (`test_c2pa`) as made by AI."""
    pytest.importorskip("c2pa")
    pytest.importorskip("cryptography")
    from test_c2pa import make_signer, sign

    signer, _root = make_signer("es256")
    data = encode(make_image(96, 128, seed=32))
    return sign(data, "image/png", "trainedAlgorithmicMedia", "Test Diffusion", signer)


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Path]:
    """The four files, by name, in a folder of their own."""
    folder = tmp_path_factory.mktemp("headline-cases")
    contents = {
        "parameters.png": parameters_png(),
        "watermarked.png": watermarked_png(),
        "signed.png": signed_png(),
        "camera.jpg": camera_jpeg(make_image(96, 128, seed=33)),
    }
    paths = {}
    for name, data in contents.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


@pytest.fixture(autouse=True)
def no_trust_list(monkeypatch):
    monkeypatch.delenv("FAKEDETECT_C2PA_TRUST_ANCHORS", raising=False)


def expected_headline(path: Path, model: str, directory: Path | None = None) -> detector.Headline:
    """The library's headline of one file with one model (`detector.assess`)."""
    return detector.assess(str(path), detector.load_model(model, directory)).headline


def check(name: str, found: dict) -> None:
    """A headline (as JSON) decided the way `EXPECTED` says for file ``name``."""
    label, basis, source = EXPECTED[name]
    assert found["basis"] == basis, (name, found)
    assert found["label"] == label if label else found["label"] in MODEL_LABELS, (name, found)
    assert found["reasons"][0]["source"] == source, (name, found["reasons"])
    assert all(reason["strength"] for reason in found["reasons"]), name


# ----------------------------------------------------------------------------------- handlers
def test_the_detect_tab_and_the_api_lead_with_the_headline(app, models, cases):
    for name, path in cases.items():
        payload = {"path": str(path), "url": None, "orig_name": name}
        verdict, *_, view = app.detect(payload, "tiny_cnn")
        assert "fd-verdict" in verdict, name
        expected = expected_headline(path, "tiny_cnn")
        assert view.headline == expected, name
        check(name, expected.to_dict())
        shown, *_ = app.show_view(view)
        assert shown == pres.headline_html(expected)
        assert f">{html.escape(expected.title)}</div>" in shown

        result = app.api_predict(str(path), "tiny_cnn")
        assert result["headline"] == json.loads(json.dumps(expected.to_dict())), name
        inspected = app.api_inspect(str(path))["verdict"]
        evidence_only = detector.headline(detector.inspect_file(str(path)), None)
        assert inspected == json.loads(json.dumps(evidence_only.to_dict())), name
        if name == "camera.jpg":  # no model, no declaration: nothing decides
            assert (inspected["label"], inspected["basis"]) == ("cannot_tell", "none")
        else:
            check(name, inspected)


# ----------------------------------------------------------------------------------- server
@pytest.fixture(scope="module")
def server(trained_dir, tmp_path_factory):
    """``python app.py`` on the tiny models, at a free port of 127.0.0.1."""
    log = tmp_path_factory.mktemp("headline-server") / "server.log"
    env = {"FAKEDETECT_MODELS_DIR": str(trained_dir), "FAKEDETECT_C2PA_TRUST_ANCHORS": ""}
    with gradio_app(env, log) as running:
        yield running


@pytest.mark.slow
def test_server_predict_and_inspect_give_the_headline(server, trained_dir, cases):
    from gradio_client import Client, handle_file

    client = Client(server.url, verbose=False)
    for name, path in cases.items():
        result = client.predict(handle_file(str(path)), "tiny_cnn", api_name="/predict")
        expected = expected_headline(path, "tiny_cnn", trained_dir)
        assert result["headline"] == json.loads(json.dumps(expected.to_dict())), name
        check(name, result["headline"])
        assert result["stability"]["model"] == "tiny_cnn"
        report = client.predict(handle_file(str(path)), api_name="/inspect")
        verdict = report["verdict"]
        if name == "camera.jpg":
            assert (verdict["label"], verdict["basis"]) == ("cannot_tell", "none")
            assert report["headline"].startswith("The metadata points to a camera capture")
        else:
            check(name, verdict)
            assert verdict["title"] == result["headline"]["title"], name


@pytest.mark.slow
@pytest.mark.browser
def test_browser_gradio_detect_tab_shows_each_headline(server, trained_dir, cases, tmp_path):
    from browser import browser_page, screenshot_dir

    folder = screenshot_dir(tmp_path)
    best = next(info.name for info in detector.list_models(trained_dir) if info.trained)
    with browser_page() as page:
        page.goto(server.url, wait_until="load")
        for name, path in cases.items():
            expected = expected_headline(path, best, trained_dir)
            page.wait_for_selector("#fd-input input[type=file]", state="attached", timeout=60_000)
            page.set_input_files("#fd-input input[type=file]", str(path))
            page.wait_for_function(
                "t => { const e = document.querySelector('#fd-headline .fd-answer-title');"
                " return e && e.innerText.trim() === t; }",
                arg=expected.title,
                timeout=120_000,
            )
            card = page.locator("#fd-headline .fd-answer")
            assert card.get_attribute("data-label") == expected.label, name
            assert card.get_attribute("data-basis") == expected.basis, name
            assert card.locator("li").count() == len(expected.reasons), name
            # above the verdict card of the selected model
            page.wait_for_selector("#fd-verdict .fd-verdict", timeout=60_000)
            headline_box = card.bounding_box()
            verdict_box = page.locator("#fd-verdict .fd-verdict").bounding_box()
            assert headline_box["y"] + headline_box["height"] <= verdict_box["y"], name
            page.screenshot(path=str(folder / f"gradio_headline_{path.stem}.png"), full_page=True)
            page.locator("#fd-input button[aria-label='Remove Image']").first.click()
            page.wait_for_function(
                "() => !document.querySelector('#fd-headline .fd-answer')", timeout=60_000
            )


# ----------------------------------------------------------------------------------- streamlit
def test_streamlit_page_shows_each_headline_above_the_verdicts(trained_dir, cases, monkeypatch):
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(trained_dir))
    monkeypatch.setenv(cr.EXAMPLES_DIR_ENV, str(cases["camera.jpg"].parent / "no-examples"))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT).run()
    best = at.sidebar.multiselect[0].value[0]
    files = [(name, path.read_bytes(), "application/octet-stream") for name, path in cases.items()]
    at.file_uploader[0].set_value(files).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    boxes = {box.label: box for box in at.expander}
    for name, path in cases.items():
        box = boxes[cr.md_escape(name)]
        expected = expected_headline(path, best)
        check(name, expected.to_dict())
        blocks = [str(m.value) for m in box.markdown]
        assert pres.headline_markdown(expected) in blocks, name
        assert blocks.index(pres.headline_markdown(expected)) == 0, "the headline comes first"


@pytest.mark.slow
@pytest.mark.browser
def test_browser_streamlit_shows_each_headline(trained_dir, cases, tmp_path):
    from browser import browser_page, screenshot_dir
    from browser_streamlit import screenshot_app, streamlit_server, wait_until_idle

    best = next(info.name for info in detector.list_models(trained_dir) if info.trained)
    env = {
        "FAKEDETECT_MODELS_DIR": str(trained_dir),
        cr.EXAMPLES_DIR_ENV: str(tmp_path / "no-examples"),
        "FAKEDETECT_C2PA_TRUST_ANCHORS": "",
    }
    with streamlit_server(env) as url, browser_page(width=1400, height=1000) as page:
        page.goto(url)
        page.wait_for_selector("input[type=file]", state="attached", timeout=TIMEOUT * 1000)
        wait_until_idle(page)
        page.set_input_files("input[type=file]", [str(p) for p in cases.values()])
        page.wait_for_selector(".fd-verdict", timeout=TIMEOUT * 1000)
        page.wait_for_function(
            "n => document.querySelectorAll('.fd-verdict').length >= n",
            arg=len(cases),
            timeout=TIMEOUT * 1000,
        )
        wait_until_idle(page)
        for name, path in cases.items():
            expected = expected_headline(path, best, trained_dir)
            box = page.locator('[data-testid="stExpander"]', has_text=re.compile(re.escape(name)))
            if box.locator("details").get_attribute("open") is None:  # only 3 open at first
                box.locator("summary").click()
            title = box.get_by_role("heading", name=expected.title)
            title.wait_for(timeout=60_000)
            assert title.is_visible() and title.inner_text().strip() == expected.title, name
            verdict = box.locator(".fd-verdict").first
            assert title.bounding_box()["y"] < verdict.bounding_box()["y"], name
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        screenshot_app(page, screenshot_dir(tmp_path) / "streamlit_headline.png")
