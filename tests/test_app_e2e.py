"""End to end: `python app.py` in a subprocess, called with gradio_client and driven in chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser import browser_page, screenshot_dir
from conftest import encode, make_image, tiny_card
from servers import free_port, gradio_app

import detector
from detector.ui import presentation as pres

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 180.0


@dataclass
class Server:
    url: str
    port: int
    models: Path
    log: Path
    process: subprocess.Popen
    cache: Path  # GRADIO_TEMP_DIR: where Gradio stores uploads


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


#: A native-resolution model the server also serves (ranked last), scored on 32 px patches.
NATIVE = "tiny_native"


@pytest.fixture(scope="module")
def served_models(trained_dir, tmp_path_factory) -> Path:
    """The tiny models and `NATIVE`; E2E_MODELS_DIR serves another folder instead (the bundled
    one for README screenshots:
    ``E2E_MODELS_DIR=assets/models SCREENSHOT_DIR=docs/screenshots pytest -k browser_drop``)."""
    if os.environ.get("E2E_MODELS_DIR"):
        return Path(os.environ["E2E_MODELS_DIR"]).resolve()
    from detector.core._keras import keras
    from detector.core.models import export_model
    from detector.core.recipes import get_recipe

    root = tmp_path_factory.mktemp("served-models")
    shutil.copytree(trained_dir, root, dirs_exist_ok=True)
    keras.utils.set_random_seed(0)
    card = tiny_card(
        NATIVE,
        "dct_spectrum",
        threshold=0.5,
        uncertain_band=(0.4, 0.6),
        metrics={"test": {"roc_auc": 0.5}},
    )
    export_model(get_recipe("dct_spectrum").build(card.spec), root / NATIVE, card)
    return root


@pytest.fixture(scope="module")
def server(served_models, tmp_path_factory):
    """The app on 127.0.0.1 at a free port, set through GRADIO_SERVER_NAME / GRADIO_SERVER_PORT,
    serving `served_models`."""
    models = served_models
    log = tmp_path_factory.mktemp("server") / "server.log"
    cache = tmp_path_factory.mktemp("gradio-cache")
    env = {
        "FAKEDETECT_MODELS_DIR": str(models),
        "GRADIO_TEMP_DIR": str(cache),
        # app.py must switch analytics off itself, whatever the environment says
        "GRADIO_ANALYTICS_ENABLED": "True",
    }
    with gradio_app(env, log, START_TIMEOUT) as app:
        yield Server(app.url, app.port, models, log, app.process, cache)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    image = folder / "photo.png"
    image.write_bytes(encode(make_image(160, 200, seed=11)))
    bad = folder / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing an image needs")
    return {"image": image, "bad": bad, "folder": folder}


@pytest.mark.slow
def test_server_honours_env_and_has_no_analytics(server):
    config = json.loads(_get(server.url + "config"))
    assert config["analytics_enabled"] is False
    assert config["max_file_size"] == 50 * 1024 * 1024
    assert f"Running on local URL:  http://127.0.0.1:{server.port}" in server.log.read_text()


@pytest.mark.slow
def test_gradio_client_endpoints_and_bad_file(server, inputs):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server.url, verbose=False)
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/predict", "/compare", "/explain", "/models", "/batch", "/inspect"}

    image = str(inputs["image"])
    expected = {
        name: detector.load_model(name, server.models).predict(image)
        for name in ("tiny_attention", "tiny_cnn", NATIVE)
    }
    result = client.predict(handle_file(image), "tiny_cnn", api_name="/predict")
    assert result["model"] == "tiny_cnn" and result["threshold"] == 0.5
    assert result["p_fake"] == pytest.approx(expected["tiny_cnn"].p_fake, abs=1e-6)
    assert result["label"] == expected["tiny_cnn"].label and result["seconds"] > 0

    best = client.predict(handle_file(image), "", api_name="/predict")
    assert best["model"] == "tiny_attention"

    compared = client.predict(handle_file(image), api_name="/compare")
    assert [m["model"] for m in compared["models"]] == ["tiny_attention", "tiny_cnn", NATIVE]
    for entry in compared["models"]:
        assert entry["error"] is None
        assert entry["p_fake"] == pytest.approx(expected[entry["model"]].p_fake, abs=1e-6)
    assert (
        compared["agreement"]["text"]
        == pres.agreement(list(expected.values()), default="tiny_attention").text
    )

    with pytest.raises(AppError, match=r"Could not read this file as an image \(not_an_image\)"):
        client.predict(handle_file(str(inputs["bad"])), "tiny_cnn", api_name="/predict")
    with pytest.raises(AppError, match="not_an_image"):
        client.predict(handle_file(str(inputs["bad"])), api_name="/compare")
    again = client.predict(handle_file(image), "tiny_cnn", api_name="/predict")
    assert again["p_fake"] == result["p_fake"], "the server still answers after bad input"

    overlay, heatmap, explained = client.predict(
        handle_file(image), "tiny_attention", "attention", api_name="/explain"
    )
    assert Path(overlay).is_file() and Path(heatmap).is_file()
    assert detector.load_image(overlay).shape == (160, 200, 3)
    assert explained["method"] == "attention"

    models = client.predict(api_name="/models")
    assert [m["name"] for m in models if m["trained"]] == ["tiny_attention", "tiny_cnn", NATIVE]

    # a native-resolution model scores a large image on several patches, each one listed
    native = client.predict(handle_file(image), NATIVE, api_name="/predict")
    assert len(native["patches"]) == len(expected[NATIVE].patches) > 1
    assert native["patches"] == [patch.to_dict() for patch in expected[NATIVE].patches]

    table, csv_file, summary = client.predict(
        [handle_file(image), handle_file(str(inputs["bad"]))], ["tiny_cnn"], api_name="/batch"
    )
    assert table["headers"] == list(pres.BATCH_FIELDS)
    assert [row[0] for row in table["data"]] == ["photo.png", "broken.png"]
    assert table["data"][0][3] == pytest.approx(expected["tiny_cnn"].p_fake, abs=1e-6)
    assert table["data"][1][5].startswith("not_an_image")
    assert Path(csv_file).name.startswith("fakedetect-batch-")
    assert summary == "2 files x 1 model: 1 " + expected["tiny_cnn"].label + ", 1 error."


@pytest.mark.slow
def test_upload_size_limit(server, inputs):
    import httpx
    from gradio_client import Client, handle_file

    big = inputs["folder"] / "big.png"
    big.write_bytes(encode(make_image(64, 64)) + os.urandom(51 * 1024 * 1024))
    with open(big, "rb") as fh:
        response = httpx.post(
            server.url + "gradio_api/upload", files={"files": ("big.png", fh)}, timeout=120
        )
    assert response.status_code == 413, response.text
    assert "52428800" in response.text
    client = Client(server.url, verbose=False)
    with pytest.raises(ValueError, match="exceeds the maximum file size of 52428800 bytes"):
        client.predict(handle_file(str(big)), "tiny_cnn", api_name="/predict")
    result = client.predict(handle_file(str(inputs["image"])), "tiny_cnn", api_name="/predict")
    assert result["model"] == "tiny_cnn"


@pytest.mark.slow
def test_uploaded_file_names_never_reach_the_disk(server, inputs):
    """Gradio stores every upload as ``<hash>/upload.<ext>`` (`detector.serving.asgi`): no part
    of the visitor's file name becomes a path, and predictions and batch rows still work."""
    import httpx
    from gradio_client import Client, handle_file
    from gradio_client.utils import strip_invalid_filename_characters

    data = encode(make_image(96, 120, seed=23))
    sent = "../zqevil name;rm -rf.png"
    response = httpx.post(
        server.url + "gradio_api/upload", files={"files": (sent, data, "image/png")}, timeout=60
    )
    assert response.status_code == 200, response.text
    [stored] = [Path(p) for p in response.json()]
    assert stored.name == "upload.png" and stored.parent.parent == server.cache
    assert stored.read_bytes() == data

    local = inputs["folder"] / "zqevil name;rm -rf $(x) 'q' ü.png"
    local.write_bytes(data)
    expected = detector.load_model("tiny_cnn", server.models).predict(str(local))
    client = Client(server.url, verbose=False)
    result = client.predict(handle_file(str(local)), "tiny_cnn", api_name="/predict")
    assert result["p_fake"] == pytest.approx(expected.p_fake, abs=1e-6)
    table, _, _ = client.predict([handle_file(str(local))], ["tiny_cnn"], api_name="/batch")
    assert table["data"][0][0] == strip_invalid_filename_characters(local.name)  # shown, not stored
    assert table["data"][0][3] == pytest.approx(expected.p_fake, abs=1e-6)

    # the batch CSV's name is the app's own prefix plus mkstemp's random letters, which can
    # spell a fragment (e.g. "rm") by chance: those letters are masked, the prefix is not
    paths = [
        re.sub(
            r"(fakedetect-batch-)[a-z0-9_]+(\.csv)$",
            r"\1XXXXXXXX\2",
            str(p.relative_to(server.cache)),
        )
        for p in server.cache.rglob("*")
    ]
    assert any(p.endswith("/upload.png") for p in paths)
    for fragment in ("zqevil", "evil", "rm -rf", "rm", "..", "$(x)", "ü"):
        assert not [p for p in paths if fragment in p], fragment
    # Gradio's parser renames its temporary files into <hash>/ folders; none is left behind
    assert [p.name for p in server.cache.iterdir() if p.is_file()] == []


@pytest.mark.slow
def test_remote_file_urls_are_refused(server, inputs):
    """A file passed as a URL (gradio_client's ``handle_file(url)``) is refused before Gradio
    would download it into its cache under the URL's file name (`detector.serving.asgi`)."""
    import httpx
    from gradio_client import Client, handle_file

    remote = f"http://127.0.0.1:{free_port()}/zq.png"  # nothing listens there
    before = sorted(server.cache.rglob("*"))
    file = {"path": remote, "meta": {"_type": "gradio.FileData"}}
    for route in ("gradio_api/call/predict", "gradio_api/run/predict"):
        response = httpx.post(server.url + route, json={"data": [file, "tiny_cnn"]}, timeout=60)
        assert response.status_code == 400, (route, response.text)
        assert response.json() == {
            "detail": "Remote URLs are not accepted as files; upload the file instead."
        }
    client = Client(server.url, verbose=False)
    with pytest.raises(httpx.HTTPStatusError) as refused:  # through /gradio_api/queue/join
        client.predict(handle_file(remote), "tiny_cnn", api_name="/predict")
    assert refused.value.response.status_code == 400
    assert "Remote URLs are not accepted" in refused.value.response.text
    assert sorted(server.cache.rglob("*")) == before
    assert not [p for p in server.cache.rglob("*") if "zq" in p.name]

    # the server still answers, and a file already uploaded passes with the url field the
    # frontend sends (a full URL of the server itself), which Gradio does not fetch
    result = client.predict(handle_file(str(inputs["image"])), "tiny_cnn", api_name="/predict")
    assert result["model"] == "tiny_cnn"
    data = encode(make_image(96, 120, seed=29))
    uploaded = httpx.post(
        server.url + "gradio_api/upload", files={"files": ("a.png", data, "image/png")}
    )
    [stored] = uploaded.json()
    frontend = {**file, "path": stored, "url": f"{server.url}gradio_api/file={stored}"}
    response = httpx.post(
        server.url + "gradio_api/call/predict", json={"data": [frontend, "tiny_cnn"]}, timeout=60
    )
    assert response.status_code == 200, response.text
    event = response.json()["event_id"]
    stream = httpx.get(f"{server.url}gradio_api/call/predict/{event}", timeout=120).text
    assert "event: complete" in stream and '"model": "tiny_cnn"' in stream, stream


@pytest.mark.slow
@pytest.mark.browser
def test_browser_drop_image_shows_verdict_and_overlay(server, inputs, tmp_path):
    listing = ROOT / "assets" / "examples" / "examples.json"
    examples = json.loads(listing.read_text()) if listing.is_file() else []
    image = listing.parent / examples[0]["file"] if examples else inputs["image"]
    best = next(info.name for info in detector.list_models(server.models) if info.trained)
    n_models = sum(info.trained for info in detector.list_models(server.models))
    expected = detector.load_model(best, server.models).predict(str(image))
    outside: list[str] = []
    with browser_page() as page:
        page.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if r.url.startswith("http") and not r.url.startswith(server.url)
                else None
            ),
        )
        page.goto(server.url, wait_until="load")
        page.wait_for_selector("#fd-input input[type=file]", state="attached", timeout=60_000)
        page.set_input_files("#fd-input input[type=file]", str(image))
        page.wait_for_selector("#fd-verdict .fd-verdict", timeout=60_000)
        page.wait_for_function(
            "() => { const img = document.querySelector('#fd-overlay img');"
            " return img && img.complete && img.naturalWidth > 0; }",
            timeout=60_000,
        )
        verdict = page.inner_text("#fd-verdict")
        assert pres.HEADLINES[expected.label] in verdict
        assert f"P(AI-generated) = {pres.percent(expected.p_fake)}" in verdict
        assert best in verdict
        assert page.is_visible("#fd-heatmap img")
        assert "does not mean" in page.inner_text("body")
        # the opacity slider re-blends the overlay without another model call
        before = page.get_attribute("#fd-overlay img", "src")
        page.locator("#fd-opacity input[type=range]").evaluate(
            "el => { el.value = '0.6'; el.dispatchEvent(new Event('input', {bubbles: true}));"
            " el.dispatchEvent(new Event('change', {bubbles: true})); }"
        )
        page.wait_for_function(
            "b => document.querySelector('#fd-overlay img').getAttribute('src') !== b",
            arg=before,
            timeout=30_000,
        )
        page.wait_for_timeout(500)
        folder = screenshot_dir(tmp_path)
        shot = folder / "gradio.png"
        page.screenshot(path=str(shot), full_page=True)
        if (server.models / NATIVE).is_dir():
            # the native-resolution model: the patch map beside the overlay, and its caption
            array = detector.load_image(image)
            patches = pres.heatmap_view(
                array, detector.load_model(NATIVE, server.models).explain(array)
            ).patches
            assert not patches.single
            assert not page.is_visible("#fd-patch-map img"), "no map for the best model's view"
            page.click("#fd-model input")
            page.get_by_role("option", name=re.compile(NATIVE)).click()
            page.wait_for_selector("#fd-patch-map img", timeout=60_000)
            page.wait_for_function(
                "t => document.querySelector('#fd-patches').innerText.includes(t)",
                arg=patches.caption,
                timeout=30_000,
            )
            assert NATIVE in page.inner_text("#fd-verdict")
            page.wait_for_timeout(500)
            page.screenshot(path=str(folder / "gradio_patches.png"), full_page=True)

        page.click("#fd-compare-button")
        page.wait_for_selector("#fd-agreement .fd-agreement", timeout=60_000)
        assert "agree" in page.inner_text("#fd-agreement")
        assert page.locator("#fd-bars .fd-bar").count() == n_models
        page.wait_for_timeout(500)
        page.screenshot(path=str(folder / "gradio_compare.png"), full_page=True)
    assert shot.stat().st_size > 20_000
    assert outside == [], f"the page fetched from other hosts: {outside}"


@pytest.mark.slow
@pytest.mark.browser
def test_browser_phone_shows_the_verdict_right_under_the_image(server, inputs):
    """On a 390 px wide phone the columns stack: the results come right after the image, and
    the model controls after them (they used to push the verdict ~1,500 px down)."""
    with browser_page(width=390, height=844) as page:
        page.goto(server.url, wait_until="load")
        page.wait_for_selector("#fd-input input[type=file]", state="attached", timeout=60_000)
        page.set_input_files("#fd-input input[type=file]", str(inputs["image"]))
        page.wait_for_selector("#fd-verdict .fd-verdict", timeout=60_000)
        page.wait_for_selector("#fd-headline .fd-answer", timeout=60_000)
        page.wait_for_timeout(500)
        image = page.locator("#fd-input").bounding_box()
        verdict = page.locator("#fd-verdict .fd-verdict").bounding_box()
        model = page.locator("#fd-model").bounding_box()
        below = verdict["y"] - (image["y"] + image["height"])
        assert 0 <= below <= 600, f"the verdict starts {below:.0f} px below the image"
        assert verdict["x"] + verdict["width"] <= 390 and image["width"] <= 390
        assert model["y"] > verdict["y"], "the controls come after the verdict on a phone"
    with browser_page(width=1400, height=1000) as page:  # wide screens keep the two columns
        page.goto(server.url, wait_until="load")
        page.wait_for_selector("#fd-input", timeout=60_000)
        image, model = (page.locator(s).bounding_box() for s in ("#fd-input", "#fd-model"))
        results = page.locator("#fd-results").bounding_box()
        assert results["x"] > image["x"] + image["width"] and model["y"] > image["y"]


@pytest.mark.slow
@pytest.mark.browser
def test_browser_example_gallery_runs_on_click(server):
    listing = ROOT / "assets" / "examples" / "examples.json"
    if not listing.is_file():
        pytest.skip("no examples shipped yet")
    first = json.loads(listing.read_text())[0]
    expected = detector.load_model("tiny_attention", server.models).predict(
        str(listing.parent / first["file"])
    )
    with browser_page() as page:
        page.goto(server.url, wait_until="load")
        page.wait_for_selector("#fd-examples img", timeout=60_000)
        page.locator("#fd-examples img").first.click()
        page.wait_for_selector("#fd-verdict .fd-verdict", timeout=60_000)
        assert f"= {pres.percent(expected.p_fake)}" in page.inner_text("#fd-verdict")
        page.wait_for_selector("#fd-example-note strong", timeout=30_000)
        note = page.inner_text("#fd-example-note")
        answer = "AI-generated" if first["label"] == "fake" else "a real photo"
        assert note.startswith(f"Example 1 is {answer}")
