"""Every case of the hostile-input corpus through both apps: a correct verdict or a clear error
naming the problem, never an unhandled exception.

(a) the Gradio handlers called as Gradio calls them, (b) the Streamlit Detect page in AppTest,
(c) the running Gradio server through gradio_client (slow).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from hostile import Case, corpus
from servers import gradio_app

import detector
from detector.ui import classroom as cr
from detector.ui import presentation as pres

ROOT = Path(__file__).resolve().parent.parent
CASES = corpus()
MODEL = "tiny_cnn"

pytestmark = pytest.mark.filterwarnings("ignore:Could not read this file:UserWarning")


def expected_error(case: Case) -> tuple[str, str]:
    """The code and the message `detector` gives for an error case."""
    with pytest.raises(detector.ImageLoadError) as info:
        detector.load_image(case.data)
    assert info.value.code == case.expect, f"{case.name}: the corpus and the detector disagree"
    return info.value.code, info.value.message


def expected_prediction(case: Case, name: str = MODEL) -> detector.Prediction:
    return detector.load_model(name).predict(case.data)


@pytest.fixture
def case_file(tmp_path):
    def write(case: Case) -> str:
        path = tmp_path / case.name
        path.write_bytes(case.data)
        return str(path)

    return write


# ----------------------------------------------------------------------------------- (a) handlers
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gradio_handlers(app, models, case_file, case):
    import gradio as gr

    path = case_file(case)
    image = {"path": path, "url": None, "orig_name": case.name}  # preprocess=False payload

    verdict, overlay, heatmap, _, _, view = app.detect(image, MODEL)
    agreement, _, rows, gallery, _ = app.compare(image)
    table, csv_path, summary = app.batch([path], [MODEL])
    board = app.evidence_board(image, MODEL, "selected")
    assert Path(csv_path).is_file() and summary.startswith("1 file x 1 model: ")

    if case.expect == "ok":
        pred = expected_prediction(case)
        assert f'data-label="{pred.label}"' in verdict
        assert (
            f"<b>{pres.percent(pred.p_fake)}</b>" in verdict and "<code>tiny_cnn</code>" in verdict
        )
        assert overlay.ndim == 3 and heatmap.shape == overlay.shape and view is not None
        by_model = {row[0]: row for row in rows}
        assert by_model[MODEL][1] == pres.HEADLINES[pred.label]
        assert by_model[MODEL][2] == pytest.approx(round(pred.p_fake, 4))
        assert len(gallery) == len(pres.trained_models())
        assert table[0][:3] == [case.name, MODEL, pred.label]
        assert table[0][3] == pytest.approx(pred.p_fake, abs=1e-6) and table[0][5] == ""
        report = board[2]
        assert report["readable"] is True and 'data-kind="error"' not in board[0]
        assert board[3].dtype.name == "uint8" and board[4].dtype.name == "uint8"
        assert board[6][0][0] == MODEL and board[6][0][1] == pytest.approx(pred.p_fake, abs=1e-4)
        assert app.api_inspect(path) == report
        assert app.api_predict(path, MODEL)["p_fake"] == pytest.approx(pred.p_fake, abs=1e-6)
        return

    code, message = expected_error(case)
    problem = pres.read_error(code, message)
    for shown in (verdict, agreement, board[0]):
        assert 'data-kind="error"' in shown and f"({code})" in shown
        assert html.escape(message) in shown and "Traceback" not in shown
    assert overlay is None and heatmap is None and view is None
    assert rows == [] and gallery == []
    assert table[0][:3] == [case.name, MODEL, ""] and table[0][5].startswith(f"{code}: ")
    assert board[3] is None and board[5] is None and board[6] == []
    with pytest.raises(gr.Error, match=re.escape(problem)):
        app.api_inspect(path)
    with pytest.raises(gr.Error, match=re.escape(problem)):
        app.api_predict(path, MODEL)


# ----------------------------------------------------------------------------------- (b) AppTest
def test_streamlit_detect_page(trained_dir, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(trained_dir))
    monkeypatch.setenv(cr.EXAMPLES_DIR_ENV, str(tmp_path / "no-examples"))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    at.sidebar.multiselect[0].set_value([MODEL]).run()
    for case in CASES:
        at.file_uploader[0].set_value((case.name, case.data, "application/octet-stream")).run()
        assert not at.exception, (case.name, [e.value for e in at.exception])
        cards = [e.proto.body for e in at.get("html") if 'class="fd-verdict"' in e.proto.body]
        errors = "\n".join(e.value for e in at.error)
        if case.expect == "ok":
            pred = expected_prediction(case)
            assert not errors, (case.name, errors)
            assert len(cards) == 1 and f'data-label="{pred.label}"' in cards[0], case.name
            assert f"P(AI-generated) = <b>{pres.percent(pred.p_fake)}</b>" in cards[0]
        else:
            code, message = expected_error(case)
            assert not cards, case.name
            name = cr.md_escape(case.name)
            assert f"**{name}**: {pres.read_error(code, message)}" in errors, (case.name, errors)


# ----------------------------------------------------------------------------------- (c) server
@pytest.fixture(scope="module")
def server_url(trained_dir, tmp_path_factory):
    """``python app.py`` on 127.0.0.1 at a free port, on the tiny models."""
    log = tmp_path_factory.mktemp("hostile-server") / "server.log"
    with gradio_app({"FAKEDETECT_MODELS_DIR": str(trained_dir)}, log) as app:
        yield app.url


@pytest.mark.slow
def test_gradio_server_answers_every_case_then_a_good_image(server_url, trained_dir, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server_url, verbose=False)
    for case in CASES:
        path = tmp_path / case.name
        path.write_bytes(case.data)
        if case.expect == "ok":
            pred = detector.load_model(MODEL, trained_dir).predict(case.data)
            result = client.predict(handle_file(str(path)), MODEL, api_name="/predict")
            assert result["label"] == pred.label, case.name
            assert result["p_fake"] == pytest.approx(pred.p_fake, abs=1e-6), case.name
            report = client.predict(handle_file(str(path)), api_name="/inspect")
            assert report["readable"] is True and len(report["items"]) == 9, case.name
            continue
        code, message = expected_error(case)
        problem = re.escape(pres.read_error(code, message))
        with pytest.raises(AppError, match=problem):
            client.predict(handle_file(str(path)), MODEL, api_name="/predict")
        with pytest.raises(AppError, match=problem):
            client.predict(handle_file(str(path)), api_name="/inspect")

    good = next(c for c in CASES if c.name == "image.bmp")
    path = tmp_path / "after.bmp"
    path.write_bytes(good.data)
    pred = detector.load_model(MODEL, trained_dir).predict(good.data)
    result = client.predict(handle_file(str(path)), MODEL, api_name="/predict")
    assert result["p_fake"] == pytest.approx(pred.p_fake, abs=1e-6)
    assert client.predict(handle_file(str(path)), api_name="/inspect")["format"] == "BMP"
