"""The Streamlit app: Detect page and Classroom mode through AppTest, and the live app in a
browser (``streamlit run`` on 127.0.0.1)."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import shutil
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import encode, make_image, tiny_card
from streamlit.testing.v1 import AppTest

import detector
from detector.core.models import clear_cache
from detector.ui import classroom as cr
from detector.ui import presentation as pres

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
CLASSROOM = "pages/classroom.py"
TIMEOUT = 180


def scene(height: int = 300, width: int = 400, seed: int = 0) -> np.ndarray:
    """A small synthetic landscape (sky, sun, hills) that reads as a picture in screenshots."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    top, bottom = rng.uniform(90, 170, 3), rng.uniform(180, 245, 3)
    image = top + (bottom - top) * (yy / height)[..., None]
    sun_x, sun_y = rng.uniform(0.2, 0.8) * width, rng.uniform(0.15, 0.35) * height
    sun = (xx - sun_x) ** 2 + (yy - sun_y) ** 2 < (0.09 * height) ** 2
    image[sun] = (255, 214, 102)
    phase = rng.uniform(0, 6)
    for depth, colour in ((0.55, (70, 140, 80)), (0.7, (40, 105, 60))):
        ridge = height * (depth + 0.08 * np.sin(xx / width * 6 + depth * 9 + phase))
        image[yy > ridge] = colour
    noise = rng.normal(0, 2.5, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def examples(tmp_path) -> Path:
    """An examples folder: two AI-generated and one real image, with examples.json."""
    folder = tmp_path / "examples"
    folder.mkdir()
    entries = []
    for index, label in enumerate(("fake", "real", "fake")):
        name = f"example_{index + 1:02d}.png"
        (folder / name).write_bytes(encode(scene(150, 200, seed=20 + index)))
        entries.append(
            {
                "file": name,
                "label": label,
                "source": "generated for the tests",
                "generator": "numpy" if label == "fake" else "",
                "licence": "CC0",
                "author": "fakedetect tests",
            }
        )
    (folder / "examples.json").write_text(json.dumps(entries), encoding="utf-8")
    return folder


@pytest.fixture
def env(trained_dir, examples, monkeypatch) -> Path:
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(trained_dir))
    monkeypatch.setenv(cr.EXAMPLES_DIR_ENV, str(examples))
    return trained_dir


@pytest.fixture
def no_examples(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(cr.EXAMPLES_DIR_ENV, str(tmp_path / "no-examples"))


def start(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def png(seed: int = 5, height: int = 100, width: int = 120) -> tuple[bytes, np.ndarray]:
    image = make_image(height, width, seed=seed)
    return encode(image), image


def verdicts(at: AppTest) -> dict[str, str]:
    """The verdict cards on the page, by model: {model: card HTML}."""
    cards = {}
    for element in at.get("html"):
        body = element.proto.body
        found = re.search(r'class="fd-verdict" data-label="\w+" data-model="([^"]+)"', body)
        if found:
            cards.setdefault(found.group(1), body)
    return cards


def captions(at: AppTest) -> list[str]:
    return [caption for image in at.image for caption in image.captions]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def assert_card_matches(card: str, prediction: detector.Prediction) -> None:
    assert f'data-label="{prediction.label}"' in card
    assert f"P(AI-generated) = <b>{pres.percent(prediction.p_fake)}</b>" in card


# ----------------------------------------------------------------------------------- detect
def test_detect_one_model_shows_verdict_and_overlay(env):
    at = start()
    assert [e.label for e in at.file_uploader] and at.file_uploader[0].accept_multiple_files
    best = pres.trained_models()[0].name
    assert at.sidebar.multiselect[0].value == [best] == ["tiny_attention"]
    data, image = png()
    at.file_uploader[0].set_value(("photo.png", data, "image/png")).run()
    assert not at.exception and not at.error
    cards = verdicts(at)
    assert list(cards) == [best]
    assert_card_matches(cards[best], detector.load_model(best).predict(image))
    assert f"Grad-CAM overlay · {best}" in captions(at) and "Input" in captions(at)
    assert "**photo\\.png**" in texts(at.markdown)
    assert at.get("download_button"), "the results can be downloaded as CSV"


def test_detect_card_says_when_the_headline_score_flips(env, monkeypatch):
    # the stability check behind the headline also reaches that model's verdict card (only)
    def flips(image, model, prediction, **kwargs):
        p = prediction.p_fake
        return detector.Stability(model.name, p, 0.5, 0.3, True, 1 - p, p, ("JPEG q90",))

    monkeypatch.setattr(detector, "check_stability", flips)
    at = start()
    at.sidebar.multiselect[0].set_value(["tiny_attention", "tiny_cnn"]).run()
    at.file_uploader[0].set_value(("photo.png", png(seed=9)[0], "image/png")).run()
    assert not at.exception and not at.error
    cards = verdicts(at)
    assert "Not stable on this image" in cards["tiny_attention"]
    assert "Not stable on this image" not in cards["tiny_cnn"]


def test_detect_several_models_side_by_side_with_agreement(env):
    at = start()
    data, image = png(seed=6)
    at.file_uploader[0].set_value(("photo.png", data, "image/png")).run()
    at.sidebar.multiselect[0].set_value(["tiny_attention", "tiny_cnn"]).run()
    assert not at.exception and not at.error
    cards = verdicts(at)
    assert list(cards) == ["tiny_attention", "tiny_cnn"]
    predictions = [detector.load_model(name).predict(image) for name in cards]
    for name, prediction in zip(cards, predictions, strict=True):
        assert_card_matches(cards[name], prediction)
        assert f"Grad-CAM overlay · {name}" in captions(at)
    expected = pres.agreement(predictions, default="tiny_attention").text
    assert expected in texts(at.success) + texts(at.warning)


def test_detect_attention_method_and_fallback_note(env):
    at = start()
    at.sidebar.multiselect[0].set_value(["tiny_attention", "tiny_cnn"]).run()
    assert at.sidebar.radio[0].options == ["Grad-CAM", "Grad-CAM++", "Attention map"]
    at.sidebar.radio[0].set_value("attention").run()
    at.file_uploader[0].set_value(("photo.png", png()[0], "image/png")).run()
    assert "Attention map overlay · tiny_attention" in captions(at)
    assert "Grad-CAM overlay · tiny_cnn" in captions(at)
    assert "`tiny_cnn` has no Attention map; showing Grad-CAM." in texts(at.caption)
    at.sidebar.toggle[0].set_value(True).run()
    assert "Attention map alone · tiny_attention" in captions(at)


def test_detect_bad_files_get_an_error_each_and_good_files_still_score(env):
    at = start()
    data, _ = png(seed=7)
    truncated = encode(make_image(64, 64))[:200]
    at.file_uploader[0].set_value(
        [
            ("good.png", data, "image/png"),
            ("notes.png", b"this is text, not an image", "image/png"),
            ("cut.png", truncated, "image/png"),
        ]
    ).run()
    assert not at.exception
    errors = texts(at.error)
    assert "**notes\\.png**: Could not read this file as an image (not_an_image)" in errors
    assert "**cut\\.png**: Could not read this file as an image (truncated_file)" in errors
    assert "Traceback" not in errors
    assert list(verdicts(at)) == ["tiny_attention"]
    table = at.dataframe[0].value
    assert list(table["file"]) == ["good.png", "notes.png", "cut.png"]
    assert table["error"][1].startswith("Could not read this file as an image (not_an_image)")
    assert "3 files x 1 model: " in texts(at.markdown)


def test_detect_opens_zip_archives_in_memory(env):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("one.png", png(seed=1)[0])
        archive.writestr("two.png", png(seed=2)[0])
    at = start()
    at.file_uploader[0].set_value(("batch.zip", buffer.getvalue(), "application/zip")).run()
    assert not at.exception and not at.error
    assert list(at.dataframe[0].value["file"]) == ["batch.zip/one.png", "batch.zip/two.png"]
    labels = [e.label for e in at.expander]
    assert "batch\\.zip/one\\.png" in labels and "batch\\.zip/two\\.png" in labels


def test_hostile_file_names_stay_inert(env):
    at = start()
    name = "![x](http://example.invalid/t.png) :red[big].png"
    at.file_uploader[0].set_value((name, b"junk", "image/png")).run()
    (error,) = at.error
    assert "](" not in error.value and ":red[" not in error.value
    assert error.value.replace("\\", "").startswith(f"**{name}**")


def test_detect_one_failing_model_does_not_hide_the_others(trained_dir, tmp_path, monkeypatch):
    root = tmp_path / "models"
    shutil.copytree(trained_dir, root)
    (root / "tiny_attention" / "model.keras").write_bytes(b"PK\x03\x04 not a keras file")
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(root))
    monkeypatch.setenv(cr.EXAMPLES_DIR_ENV, str(tmp_path / "none"))
    clear_cache()
    try:
        at = start()
        at.sidebar.multiselect[0].set_value(["tiny_attention", "tiny_cnn"]).run()
        data, image = png(seed=8)
        at.file_uploader[0].set_value(("photo.png", data, "image/png")).run()
        assert not at.exception
        assert "Model `tiny_attention` failed: checksum_mismatch" in texts(at.error)
        assert "`tiny_attention`: checksum_mismatch" in texts(at.warning)
        cards = verdicts(at)
        assert list(cards) == ["tiny_cnn"]
        assert_card_matches(cards["tiny_cnn"], detector.load_model("tiny_cnn").predict(image))
        assert "Only one model answered: " in texts(at.success)
    finally:
        clear_cache()


def test_detect_shows_the_patch_map_of_a_large_upload(tmp_path, monkeypatch, no_examples):
    from detector.core._keras import keras
    from detector.core.models import export_model
    from detector.core.recipes import get_recipe

    keras.utils.set_random_seed(0)
    card = tiny_card("tiny_native", "dct_spectrum", threshold=0.5, uncertain_band=(0.4, 0.6))
    root = tmp_path / "models"
    export_model(get_recipe("dct_spectrum").build(card.spec), root / "tiny_native", card)
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(root))
    at = start()
    large = make_image(150, 200, seed=12)
    at.file_uploader[0].set_value(("large.png", encode(large), "image/png")).run()
    assert not at.exception and not at.error
    explanation = detector.load_model("tiny_native").explain(large)
    patches = pres.heatmap_view(large, explanation).patches
    assert not patches.single and patches.count == len(explanation.prediction.patches) > 1
    assert_card_matches(verdicts(at)["tiny_native"], explanation.prediction)
    assert patches.caption in texts(at.caption)
    assert f"Grad-CAM overlay · tiny_native · {patches.explained}" in captions(at)
    assert "Patch scores · tiny_native" in captions(at)
    # a small image is scored on its central crop: the caption says so, and there is no map
    at.file_uploader[0].set_value(("small.png", encode(make_image(50, 60)), "image/png")).run()
    assert not at.exception and not at.error
    assert "One patch: the model scored the central crop" in texts(at.caption)
    assert "Grad-CAM overlay · tiny_native" in captions(at)
    assert "Patch scores · tiny_native" not in captions(at)


def test_detect_example_button(env):
    at = start()
    assert [c for c in captions(at) if c.startswith("Example")] == [
        "Example 1",
        "Example 2",
        "Example 3",
    ]
    at.button(key="detect_example_1").click().run()
    assert not at.exception
    assert list(verdicts(at)) == ["tiny_attention"]
    assert "**Example 2** is a real photo." in texts(at.caption)
    at.button(key="detect_example_clear").click().run()
    assert not verdicts(at)


def test_no_trained_models_says_how_to_train(tmp_path, monkeypatch, no_examples):
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(tmp_path / "empty"))
    at = start()
    message = texts(at.warning)
    assert "No trained detector is installed" in message and "python -m training train" in message
    assert not at.file_uploader and not at.error
    at.switch_page(CLASSROOM).run()
    assert not at.exception
    assert "No trained detector is installed" in texts(at.warning)
    assert "JPEG compression" in texts(at.markdown)


# ----------------------------------------------------------------------------------- classroom
def test_classroom_live_demos_on_an_example(env):
    at = start(CLASSROOM)
    assert not at.error
    assert at.selectbox(key="class_choice").value == "Example 1: example 01"
    assert at.sidebar.multiselect[0].value == ["tiny_attention", "tiny_cnn"]
    image = detector.load_image(cr.load_examples()[0].path)
    featured = detector.load_model("tiny_attention")
    assert_card_matches(verdicts(at)["tiny_attention"], featured.predict(image))
    shown = captions(at)
    assert "What tiny_attention sees: 32 x 32 pixels" in shown
    assert {"Grad-CAM · tiny_attention", "Attention map · tiny_attention"} <= set(shown)
    assert "What the model computed: 8 x 8 blocks" in shown
    prep = featured.spec.preprocessing  # section 1 says what this model's card does to images
    assert cr.lesson_pipeline(prep, featured.card.threshold) in texts(at.markdown)
    assert cr.PIPELINE_READS[prep.resize].format(size=32, patches=16) in texts(at.markdown)
    assert "**Do the methods agree?**" in texts(at.markdown)
    # sections 4: the cards' measured results and limits
    assert [t.label for t in at.tabs] == ["Tiny efficientnet_b7_attention", "Tiny simple_cnn"]


def test_classroom_names_the_held_out_split_a_source_not_unseen_generators(
    trained_dir, examples, tmp_path, monkeypatch
):
    models = tmp_path / "models"
    shutil.copytree(trained_dir, models)
    card_file = models / "tiny_cnn" / "card.json"
    card = json.loads(card_file.read_text(encoding="utf-8"))
    card["metrics"]["test_ood"] = {"roc_auc": 0.61, "accuracy": 0.55}
    card_file.write_text(json.dumps(card), encoding="utf-8")
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(models))
    monkeypatch.setenv(cr.EXAMPLES_DIR_ENV, str(examples))
    at = start(CLASSROOM)
    shown = texts(at.markdown)
    assert "**On images from a held-out source (photos from a source it never saw" in shown
    assert "generators it never saw" not in shown


def test_classroom_jpeg_and_resize_curve_rescore_live(env):
    at = start(CLASSROOM)
    image = detector.load_image(cr.load_examples()[0].path)
    curves = at.get("imgs")
    assert "JPEG quality 100 · " in " ".join(captions(at))
    assert any(c.startswith("Dotted line: the slider.") for c in captions(at))
    assert "`tiny_cnn`: P(AI-generated) between" in texts(at.markdown)
    before = len(curves)
    at.slider(key="class_quality").set_value(20).run()
    assert not at.exception and len(at.get("imgs")) == before
    assert any(c.startswith("JPEG quality 20 · ") for c in captions(at))
    jpeg = cr.jpeg_recompress(image, 20)[0]
    for name in ("tiny_attention", "tiny_cnn"):
        cards = [
            e.proto.body
            for e in at.get("html")
            if f'data-model="{name}"' in e.proto.body and "fd-detail" not in e.proto.body
        ]
        expected = detector.load_model(name).predict(jpeg)
        assert f"P(AI-generated) = <b>{pres.percent(expected.p_fake)}</b>" in cards[-1]
    at.button_group(key="class_kind").set_value("resize").run()
    at.slider(key="class_size").set_value(50).run()
    height, width = cr.downsize(image, 50).shape[:2]
    assert f"50% · {width} x {height} px" in captions(at)
    assert not at.exception and not at.error


def test_classroom_with_an_uploaded_image_and_a_bad_one(env):
    at = start(CLASSROOM)
    at.selectbox(key="class_choice").set_value("Upload my own image").run()
    assert at.info, "asks for an image"
    data, image = png(seed=9)
    at.file_uploader(key="class_file").set_value(("mine.png", data, "image/png")).run()
    assert not at.exception and not at.error
    assert_card_matches(
        verdicts(at)["tiny_attention"], detector.load_model("tiny_attention").predict(image)
    )
    at.file_uploader(key="class_file").set_value(("bad.png", b"nope", "image/png")).run()
    assert not at.exception
    assert "**bad\\.png**: Could not read this file as an image (not_an_image)" in texts(at.error)


def test_classroom_quiz_keeps_score(env):
    at = start(CLASSROOM)
    known = cr.load_examples()
    quiz = at.session_state["quiz"]
    assert sorted(quiz["order"]) == [0, 1, 2] and quiz["pos"] == 0
    assert at.button(key="quiz_reveal").disabled
    right = 0
    for round_number in range(3):
        example = known[at.session_state["quiz"]["order"][round_number]]
        guess = "AI-generated"
        right += example.label == "fake"
        at.radio(key=f"quiz_guess_0_{round_number}").set_value(guess).run()
        at.button(key="quiz_reveal").click().run()
        assert not at.exception
        score = at.session_state["quiz"]["score"]
        assert score["rounds"] == round_number + 1 and score["you"] == right
        answer = "AI-generated" if example.label == "fake" else "a real photo"
        assert f"this image is {answer}." in texts(at.markdown)
        assert "What the models said:" in texts(at.markdown)
        image = detector.load_image(example.path)
        label = detector.load_model("tiny_cnn").predict(image).label
        assert score["history"][-1]["models"]["tiny_cnn"] == label
        at.button(key="quiz_next").click().run()
    assert "Quiz complete." in texts(at.success)
    assert f"You {right}/3" in texts(at.success)
    at.button(key="quiz_again").click().run()
    assert at.session_state["quiz"]["score"]["rounds"] == 0
    assert at.session_state["quiz"]["game"] == 1


def test_classroom_without_examples_asks_to_upload_and_explains_the_quiz(
    trained_dir, monkeypatch, no_examples
):
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(trained_dir))
    at = start(CLASSROOM)
    assert at.selectbox(key="class_choice").value == "Upload my own image"
    assert "`examples.json`" in texts(at.info)
    assert not at.error


# ----------------------------------------------------------------------------------- bundled
@pytest.mark.parametrize("page", [None, CLASSROOM])
def test_bundled_models(page, monkeypatch, no_examples):
    monkeypatch.delenv("FAKEDETECT_MODELS_DIR", raising=False)
    bundled = [info.name for info in detector.list_models() if info.trained]
    if not bundled:
        pytest.skip(f"no trained models bundled in {detector.models_dir()}")
    data, image = png(seed=10, height=160, width=200)
    at = start(page)
    if page == CLASSROOM:
        at.file_uploader(key="class_file").set_value(("photo.png", data, "image/png")).run()
    else:
        at.file_uploader[0].set_value(("photo.png", data, "image/png")).run()
    assert not at.exception and not at.error
    best = bundled[0]
    assert_card_matches(verdicts(at)[best], detector.load_model(best).predict(image))


# ----------------------------------------------------------------------------------- wiring
def test_config_limits_and_privacy():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == 20 and config["server"]["headless"] is True
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["showErrorDetails"] == "none"
    assert config["client"]["showSidebarNavigation"] is False


def test_ui_imports_only_the_public_detector_api():
    allowed = {"detector", "detector.ui.classroom", "detector.ui.presentation"}
    for path in [ROOT / "streamlit_app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules.update(f"{node.module}.{alias.name}" for alias in node.names)
        used = {m for m in modules if m.split(".")[0] == "detector"}
        assert used <= allowed, f"{path.name} imports {used - allowed}"
        names = {
            n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and hasattr(n.func, "id")
        }
        assert "open" not in names, f"{path.name} must not open files"


# ----------------------------------------------------------------------------------- server
@pytest.mark.slow
def test_streamlit_run_serves_the_app_on_localhost(trained_dir, examples):
    import urllib.request

    from browser_streamlit import streamlit_server

    env = {"FAKEDETECT_MODELS_DIR": str(trained_dir), cr.EXAMPLES_DIR_ENV: str(examples)}
    with streamlit_server(env) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=10) as response:
            assert response.read() == b"ok"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and b"<html" in response.read().lower()


# ----------------------------------------------------------------------------------- browser
def browser_inputs(request, tmp_path) -> tuple[Path, Path, Path]:
    """The models folder, the examples folder and the image to upload, for the browser test.

    By default: the tiny test models, generated examples and a generated landscape. With
    E2E_MODELS_DIR: that models folder, the real ``assets/examples`` and its first image (the
    bundled models for README screenshots:
    ``E2E_MODELS_DIR=assets/models SCREENSHOT_DIR=docs/screenshots pytest -k browser``).
    """
    chosen = os.environ.get("E2E_MODELS_DIR")
    if chosen:
        folder = cr.DEFAULT_EXAMPLES_DIR
        known = cr.load_examples(folder)
        assert known, f"no examples listed in {folder / 'examples.json'}"
        return Path(chosen).resolve(), folder, known[0].path
    photo = tmp_path / "landscape.png"
    photo.write_bytes(encode(scene()))
    return request.getfixturevalue("trained_dir"), request.getfixturevalue("examples"), photo


def overlay_caption(name: str, models: Path, image: np.ndarray) -> str:
    """The caption of a model's Grad-CAM overlay on the Detect page: a large image scored on
    several patches also names the patch the overlay explains."""
    view = pres.heatmap_view(image, detector.load_model(name, models).explain(image))
    caption = f"Grad-CAM overlay · {name}"
    patches = view.patches
    return (
        caption if patches is None or patches.image is None else f"{caption} · {patches.explained}"
    )


def no_errors_shown(page) -> None:
    """No error box, exception or traceback on the page."""
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("Traceback").count() == 0


def verdict_card(page, name: str, index: int = 0):
    """Model ``name``'s verdict card on the page (the first, or ``index``)."""
    return page.locator(f'.fd-verdict[data-model="{name}"]').nth(index)


def assert_shows(card, prediction: detector.Prediction) -> None:
    assert card.get_attribute("data-label") == prediction.label
    assert f"P(AI-generated) = {pres.percent(prediction.p_fake)}" in card.inner_text()


@pytest.mark.slow
@pytest.mark.browser
def test_browser_upload_shows_verdict_and_classroom(request, tmp_path):
    from browser import browser_page, screenshot_dir
    from browser_streamlit import screenshot_app, streamlit_server, wait_until_idle

    models, examples_dir, photo = browser_inputs(request, tmp_path)
    names = [info.name for info in detector.list_models(models) if info.trained]  # best first
    assert len(names) >= 2, f"the browser test needs two trained models in {models}"
    best, second = names[:2]
    image = detector.load_image(photo)
    expected = {name: detector.load_model(name, models).predict(image) for name in (best, second)}
    known = [e for e in cr.load_examples(examples_dir) if e.known]
    assert known, "the quiz needs examples with known answers"
    first_example = detector.load_image(cr.load_examples(examples_dir)[0].path)
    featured = detector.load_model(best, models).predict(first_example)
    folder = screenshot_dir(tmp_path)
    env = {"FAKEDETECT_MODELS_DIR": str(models), cr.EXAMPLES_DIR_ENV: str(examples_dir)}
    with streamlit_server(env) as url, browser_page(width=1400, height=1000) as page:
        outside: list[str] = []  # the app must work offline: no request leaves 127.0.0.1
        page.on(
            "request",
            lambda request: (
                None
                if request.url.startswith((url, "data:", "blob:"))
                else outside.append(request.url)
            ),
        )
        page.goto(url)
        page.wait_for_selector("input[type=file]", state="attached", timeout=TIMEOUT * 1000)
        wait_until_idle(page)
        page.set_input_files("input[type=file]", str(photo))
        page.wait_for_selector(".fd-verdict", timeout=TIMEOUT * 1000)
        wait_until_idle(page)
        assert page.locator(".fd-verdict").count() == 1
        assert_shows(verdict_card(page, best), expected[best])
        overlay = {name: overlay_caption(name, models, image) for name in (best, second)}
        assert page.get_by_text(overlay[best], exact=True).count() == 1
        no_errors_shown(page)
        page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"] input').click()
        page.get_by_role("option", name=second, exact=True).click()
        page.keyboard.press("Escape")
        page.wait_for_selector(f'.fd-verdict[data-model="{second}"]', timeout=TIMEOUT * 1000)
        wait_until_idle(page)
        assert page.locator(".fd-verdict").count() == 2
        assert_shows(verdict_card(page, second), expected[second])
        assert page.get_by_text(overlay[second], exact=True).count() == 1
        assert (
            page.get_by_text(pres.agreement(list(expected.values()), default=best).text).count()
            == 1
        )
        no_errors_shown(page)
        # the shot ends at the evidence board's tabs (on for a single image; its own tests)
        main = screenshot_app(page, folder / "streamlit_main.png", until='[role="tabpanel"]', gap=0)
        assert main.stat().st_size > 20_000

        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(f"{url}/classroom")
        page.wait_for_selector(".fd-verdict", timeout=TIMEOUT * 1000)
        wait_until_idle(page)
        assert_shows(verdict_card(page, best), featured)  # section 1: best model, Example 1
        page.get_by_text("JPEG quality 100 ·").wait_for(timeout=TIMEOUT * 1000)
        slider = page.locator('[data-testid="stSlider"]', has_text="JPEG quality")
        thumb = slider.get_by_role("slider")
        thumb.focus()
        for _ in range(60):
            thumb.press("ArrowLeft")
        page.get_by_text("JPEG quality 40 ·").wait_for(timeout=TIMEOUT * 1000)
        wait_until_idle(page)
        jpeg = cr.jpeg_recompress(first_example, 40)[0]
        for name in (best, second):  # section 3 re-scores the compressed image live
            assert_shows(
                verdict_card(page, name, -1), detector.load_model(name, models).predict(jpeg)
            )
        assert page.get_by_text("Spot the fake").count() >= 1
        no_errors_shown(page)
        shot = screenshot_app(
            page, folder / "streamlit_classroom.png", until="h2:has-text('4 · How good')"
        )
        assert shot.stat().st_size > 20_000
        # the quiz runs as a fragment in the live app: guess, reveal, next
        page.get_by_text(f"Image 1 of {len(known)}").wait_for(timeout=TIMEOUT * 1000)
        page.get_by_text("Real photo", exact=True).click()
        page.get_by_role("button", name="Reveal the answer").click()
        page.get_by_text("What the models said:").wait_for(timeout=TIMEOUT * 1000)
        page.get_by_text("Score so far:").wait_for(timeout=TIMEOUT * 1000)  # same rerun, later
        assert page.get_by_text("Score so far:").count() == 1
        page.get_by_role("button", name="Next image").click()
        page.get_by_text(f"Image 2 of {len(known)}").wait_for(timeout=TIMEOUT * 1000)
        no_errors_shown(page)
        assert outside == []
    if os.environ.get("SCREENSHOT_DIR"):
        print(f"screenshots in {folder}")
