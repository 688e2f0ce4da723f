"""The Streamlit pages never show a visitor a server path, and never read a path a visitor chose.

Error texts can carry paths (a model whose weights file is missing names it in full); the pages
cut every absolute path to its last part before showing it (`pages.common.visitor_text`). Files
come from the uploader's bytes only: names are shown, escaped, and never opened.
"""

from __future__ import annotations

import ast
import io
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import encode, make_image
from streamlit.testing.v1 import AppTest

from detector.core.models import clear_cache
from detector.ui import classroom as cr
from pages import common

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
CLASSROOM = "pages/classroom.py"
TIMEOUT = 180
#: What an absolute server path looks like in a text shown to visitors.
SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:tmp|root|home|work|srv|usr|etc|proc|var|opt|app)/")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "missing: weights file missing for model 'x': /srv/app/models/x/model.keras",
            "missing: weights file missing for model 'x': model.keras",
        ),
        ("weights file missing: /a/models/m/../../x", "weights file missing: x"),
        ("cannot read '/root/.bashrc' (denied)", "cannot read '.bashrc' (denied)"),
        ("OSError: [Errno 2] No such file: /tmp/x/y.png", "OSError: [Errno 2] No such file: y.png"),
        ("in C:\\Users\\me\\models\\m.keras", "in m.keras"),
        ("/etc/passwd", "passwd"),
        ("bad_size: 10 x 20 px", "bad_size: 10 x 20 px"),
        ("JPEG/PNG/WebP only; ratio 1/2", "JPEG/PNG/WebP only; ratio 1/2"),
        ("see https://example.org/a/b.html", "see https://example.org/a/b.html"),
        ("relative models/x/model.keras stays", "relative models/x/model.keras stays"),
    ],
)
def test_visitor_text_cuts_absolute_paths_to_their_last_part(text, shown):
    assert common.visitor_text(text) == shown
    assert common.visitor_text(None) is None


def shown_texts(at: AppTest) -> str:
    """Every text the page shows: alerts, markdown, captions, table cells."""
    parts = [
        str(e.value)
        for kind in ("error", "warning", "info", "success", "markdown", "caption")
        for e in getattr(at, kind)
    ]
    for frame in at.dataframe:
        parts.extend(str(cell) for column in frame.value.columns for cell in frame.value[column])
    return "\n".join(parts)


@pytest.fixture
def broken(trained_dir, tmp_path, monkeypatch) -> Path:
    """The tiny models, with ``tiny_attention`` (the default) missing its weights file."""
    root = tmp_path / "models"
    shutil.copytree(trained_dir, root)
    (root / "tiny_attention" / "model.keras").unlink()
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(root))
    monkeypatch.setenv(cr.EXAMPLES_DIR_ENV, str(tmp_path / "no-examples"))
    clear_cache()
    yield root
    clear_cache()


def test_a_model_with_missing_weights_is_reported_without_its_path(broken):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.sidebar.multiselect[0].set_value(["tiny_attention", "tiny_cnn"]).run()
    image = encode(make_image(64, 80, seed=4))
    at.file_uploader[0].set_value(("photo.png", image, "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    failed = [e.value for e in at.error if "tiny_attention" in e.value]
    assert failed and "model.keras" in failed[0], [e.value for e in at.error]
    text = shown_texts(at)
    assert str(broken) not in text and not SERVER_PATH.search(text), text

    at.switch_page(CLASSROOM).run()
    at.selectbox(key="class_choice").set_value("Upload my own image").run()
    at.file_uploader(key="class_file").set_value(("mine.png", image, "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("tiny_attention" in e.value for e in at.error), [e.value for e in at.error]
    text = shown_texts(at)
    assert str(broken) not in text and not SERVER_PATH.search(text), text


@pytest.fixture
def clean_caches(trained_dir, tmp_path, monkeypatch) -> Path:
    """A models folder of its own (a fresh cache key) and Streamlit caches emptied afterwards,
    so that failures faked by a test never reach another test through the caches."""
    import streamlit as st

    root = tmp_path / "models"
    shutil.copytree(trained_dir, root)
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(root))
    monkeypatch.setenv(cr.EXAMPLES_DIR_ENV, str(tmp_path / "no-examples"))
    yield root
    st.cache_data.clear()
    st.cache_resource.clear()
    clear_cache()


def test_any_error_carrying_a_server_path_reaches_visitors_cut(clean_caches, tmp_path, monkeypatch):
    """Whatever a helper raises (model loading, metadata, forensic views), the page shows
    no server path: the page cuts them itself, whatever the `detector` messages say."""
    import detector
    from detector.ui import presentation as pres

    secret = tmp_path / "server" / "secret"
    load_model = detector.load_model

    def failing_load(name, *args, **kwargs):
        if name == "tiny_attention":
            raise detector.ModelLoadError(f"cannot open {secret}/model.keras", code="missing")
        return load_model(name, *args, **kwargs)

    def failing_inspect(*args, **kwargs):
        raise PermissionError(13, "Permission denied", f"{secret}/metadata.bin")

    def failing_views(*args, **kwargs):
        raise RuntimeError(f"scratch file {secret}/ela.jpg vanished")

    monkeypatch.setattr(detector, "load_model", failing_load)
    monkeypatch.setattr(detector, "inspect_file", failing_inspect)
    monkeypatch.setattr(pres, "forensic_views", failing_views)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.sidebar.multiselect[0].set_value(["tiny_attention", "tiny_cnn"]).run()
    image = encode(make_image(64, 80, seed=11))
    at.file_uploader[0].set_value(("photo.png", image, "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = "\n".join(e.value for e in at.error)
    for shown in ("cannot open model.keras", "metadata.bin", "scratch file ela.jpg vanished"):
        assert shown in errors, errors
    text = shown_texts(at)
    assert str(secret) not in text and not SERVER_PATH.search(text), text


def test_file_names_that_look_like_server_paths_are_never_read(env_paths):
    secret = Path("/etc/passwd")
    first_line = secret.read_text().splitlines()[0] if secret.exists() else "root:x:0:0"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("/etc/passwd", b"not an image")
        archive.writestr("/etc/hostname.png", b"not an image either")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader[0].set_value(
        [
            ("/etc/passwd", b"junk", "application/octet-stream"),
            ("paths.zip", buffer.getvalue(), "application/zip"),
        ]
    ).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 3 and all("not_an_image" in e for e in errors), errors
    assert first_line not in shown_texts(at)


@pytest.fixture
def env_paths(trained_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(trained_dir))
    monkeypatch.setenv(cr.EXAMPLES_DIR_ENV, str(tmp_path / "no-examples"))


def file_reads(tree: ast.AST) -> set[str]:
    """The functions (or ``<module>``) of a page that call open, Path, read_bytes or read_text."""
    found: set[str] = set()

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, getattr(child, "name", where))
                continue
            if isinstance(child, ast.Call):
                func = child.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in {"open", "Path", "read_bytes", "read_text"}:
                    found.add(where)
            visit(child, where)

    visit(tree, "<module>")
    return found


def test_pages_read_files_only_for_the_bundled_examples():
    """No page reads a file, except `common.example_bytes` (paths from examples.json)."""
    reads = {
        (path.name, where)
        for path in [ROOT / "streamlit_app.py", *sorted((ROOT / "pages").glob("*.py"))]
        for where in file_reads(ast.parse(path.read_text()))
    }
    assert reads == {("common.py", "example_bytes")}
