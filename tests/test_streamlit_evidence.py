"""The Streamlit Detect page's evidence board and warnings, through AppTest on the tiny models."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import encode, make_image
from streamlit.testing.v1 import AppTest
from test_app_evidence import PROMPT, camera_jpeg, sd_png

import detector
from detector.ui import classroom as cr
from detector.ui import presentation as pres

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
TIMEOUT = 180
EVIDENCE = "Evidence beyond the score: provenance, forensic views, stress test"


@pytest.fixture
def env(trained_dir, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(trained_dir))
    monkeypatch.setenv(cr.EXAMPLES_DIR_ENV, str(tmp_path / "no-examples"))
    return trained_dir


def start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(at: AppTest, *files: tuple[str, bytes, str]) -> AppTest:
    at.file_uploader[0].set_value(list(files) if len(files) > 1 else files[0]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def images(at: AppTest) -> dict[str, object]:
    """Images on the page by caption (or alt text, for charts)."""
    found = {}
    for element in at.image:
        for image in element.proto.imgs:
            found[image.caption or image.alt] = image
    return found


def verdict_cards(at: AppTest) -> list:
    return [e for e in at.get("html") if 'class="fd-verdict"' in e.proto.body]


def toggles(at: AppTest, label: str) -> list:
    return [t for t in at.toggle if t.label == label]


def test_generation_settings_forensics_and_stress_plot(env):
    image = make_image(96, 128, seed=3)
    at = upload(start(), ("fox.png", sd_png(image), "image/png"))
    assert not at.error
    (evidence,) = toggles(at, EVIDENCE)
    assert evidence.value is True, "one image: the evidence board is open"
    assert [t.label for t in at.tabs] == ["Provenance evidence", "Forensic views", "Stress test"]

    # the combined headline leads the box: the generation settings decide it
    found = detector.assess(sd_png(image), "tiny_attention").headline
    assert (found.label, found.basis) == ("ai_generated", "declaration")
    blocks = [str(m.value) for m in at.markdown]
    assert blocks.index(pres.headline_markdown(found)) < blocks.index("**fox\\.png**")

    # 1. provenance, read from the uploaded bytes
    assert texts(at.warning).startswith(
        "The metadata says this image was made with AI (Generation settings in metadata)."
    )
    markdown = texts(at.markdown)
    assert "**Generation settings in metadata** · found · *points to AI generation*" in markdown
    assert f"parameters › prompt: {PROMPT}" in markdown
    assert "parameters › settings › Seed: 1234" in markdown
    assert "**Camera EXIF** · not found · *neutral*" in markdown
    report = detector.inspect_file(sd_png(image))
    for item in report.items:
        assert item.does_not_prove in markdown
    assert report.note in texts(at.caption)

    # 2. forensic views with their explanations
    shown = images(at)
    for title in pres.FORENSIC_TITLES.values():
        assert shown[title].url.endswith(".png"), "forensic views are shown losslessly"
    assert detector.RESIDUAL_SPECTRUM_EXPLANATION in texts(at.caption)
    assert detector.ELA_EXPLANATION in texts(at.caption)
    assert pres.STRESS_PLOT_ALT not in shown, "the stress test waits for its toggle"
    assert detector.FRAGILE_DEFINITION in texts(at.caption)

    # 3. the stress test
    (stress,) = toggles(at, "Run the stress test")
    stress.set_value(True).run()
    assert not at.exception and not at.error
    assert pres.STRESS_PLOT_ALT in images(at), "the plot_stress figure, drawn by st.pyplot"
    assert images(at)[pres.STRESS_PLOT_ALT].url.endswith(".png")
    table = at.dataframe[-1].value
    assert list(table.columns) == list(pres.STRESS_FIELDS)
    reference = detector.stress_test(image, detector.load_model("tiny_attention"))
    assert list(table["model"]) == ["tiny_attention"]
    assert table["fragile"].dtype == bool
    assert bool(table["fragile"][0]) is reference.models[0].fragile
    assert table["P(AI-generated), untouched"][0] == pytest.approx(
        reference.models[0].baseline, abs=1e-4
    )
    verdict = "Fragile on this image" if reference.models[0].fragile else "No model is fragile"
    assert verdict in texts(at.warning) + texts(at.success)


def test_camera_jpeg_and_stress_test_of_every_chosen_model(env):
    image = make_image(80, 96, seed=5)
    at = upload(start(), ("camera.jpg", camera_jpeg(image), "image/jpeg"))
    at.sidebar.multiselect[0].set_value(["tiny_attention", "tiny_cnn"]).run()
    assert texts(at.info).startswith("The metadata points to a camera capture (Camera EXIF)")
    markdown = texts(at.markdown)
    assert "**Camera EXIF** · found · *points to a camera capture*" in markdown
    assert "- model: Canon EOS R5" in markdown and "48.0" not in markdown
    toggles(at, "Run the stress test")[0].set_value(True).run()
    table = at.dataframe[-1].value
    assert list(table["model"]) == ["tiny_attention", "tiny_cnn"]
    assert all(isinstance(flag, (bool, np.bool_)) for flag in table["fragile"])


def test_several_images_open_the_evidence_on_demand(env):
    at = upload(
        start(),
        ("fox.png", sd_png(make_image(64, 64, seed=1)), "image/png"),
        ("plain.png", encode(make_image(64, 64, seed=2)), "image/png"),
    )
    boards = toggles(at, EVIDENCE)
    assert [t.value for t in boards] == [False, False] and not at.tabs
    boards[1].set_value(True).run()
    assert not at.exception and len(at.tabs) == 3
    assert "No provenance metadata found." in texts(at.info)
    assert "Generation settings in metadata** · not found" in texts(at.markdown)


def test_unreadable_file_still_shows_its_metadata(env):
    data = sd_png(make_image(96, 128, seed=3))[:400]
    at = upload(start(), ("cut.png", data, "image/png"))
    assert "**cut\\.png**: Could not read this file as an image (truncated_file)" in texts(at.error)
    assert "**Generation settings in metadata** · found" in texts(at.markdown)
    assert not toggles(at, EVIDENCE) and not at.tabs


def test_verdicts_say_why_the_score_may_not_be_trustworthy(env):
    screen = np.full((1080, 1920, 3), 240, np.uint8)
    screen[100:300, 100:900] = (30, 60, 200)
    data = encode(screen)
    at = upload(start(), ("screen.png", data, "image/png"))
    expected = detector.load_model("tiny_attention").predict(data).warnings
    assert len(expected) >= 2
    captions = [c.value for c in at.caption]
    title = captions.index(f":material/warning: **{pres.WARNINGS_TITLE}**")
    assert captions[title + 1 : title + 1 + len(expected)] == [f"- {w}" for w in expected]


def png_with_text(image: np.ndarray, key: bytes, value: bytes) -> bytes:
    """A PNG with one raw tEXt chunk ``key``: ``value`` right after its header."""
    data = encode(image)
    body = key + b"\x00" + value
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return data[:33] + chunk + data[33:]


def jpeg_with_comment(image: np.ndarray, comment: bytes) -> bytes:
    """A JPEG with one COM segment holding ``comment`` (at most 65,533 bytes)."""
    data = encode(image, "JPEG", quality=90)
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[2:]


def test_evidence_board_reads_hostile_metadata_in_bounded_time(env):
    """The board opens by default and runs in the script thread: metadata built to make a
    parser backtrack (the WebUI settings line, runs of newlines) must cost about what a plain
    file costs, or every visitor of the server waits."""
    image = make_image(64, 64, seed=12)
    hostile = {
        "params_40k.png": png_with_text(image, b"parameters", b"Steps: 1, " + b"a" * 40_000),
        "comment_2m.png": png_with_text(image, b"Comment", b"\n" * 2_000_000),
        "com_65k.jpg": jpeg_with_comment(image, b"\n" * 65_000),
    }
    at = upload(start(), ("warm.png", encode(make_image(64, 64, seed=13)), "image/png"))
    started = time.monotonic()
    upload(at, ("plain.png", encode(image), "image/png"))
    plain = time.monotonic() - started
    assert len(at.tabs) == 3
    for name, data in hostile.items():
        started = time.monotonic()
        kind = "image/jpeg" if name.endswith(".jpg") else "image/png"
        at.file_uploader[0].set_value((name, data, kind)).run(timeout=120)
        seconds = time.monotonic() - started
        assert not at.exception, [e.value for e in at.exception]
        assert len(at.tabs) == 3 and len(verdict_cards(at)) == 1, name
        assert seconds < plain + 3.0, (name, round(seconds, 1), round(plain, 1))
