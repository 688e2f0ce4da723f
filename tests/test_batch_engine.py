"""One batch engine (`detector.scale.batch.scan`) under the CLI scan, the Gradio batch table
(`presentation.batch_rows`) and the Streamlit one (`classroom.held_rows`): the same files give
the same rows, images held in memory are scored as files on disk are, and progress is reported."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from conftest import encode, make_image

import detector
from detector.cli import main
from detector.scale.batch import SCAN_FIELDS, ScanItem, ScanRow, scan
from detector.ui import classroom as cr
from detector.ui import presentation as pres

NAMES = ["tiny_cnn", "tiny_attention"]


@pytest.fixture()
def folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(3):
        (folder / f"img{index}.png").write_bytes(encode(make_image(64, 80, seed=index)))
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    return folder


@pytest.fixture()
def models_env(trained_dir, monkeypatch):
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(trained_dir))
    return trained_dir


def _same(rows: list[tuple]) -> list[tuple]:
    """(file, model, rounded P(fake), label, error code): what every caller must agree on."""
    return [
        (
            file.rsplit("/", 1)[-1],
            model,
            None if p is None else round(p, 4),
            label,
            None if error is None else error.split(":", 1)[0],
        )
        for file, model, p, label, error in rows
    ]


def test_the_cli_and_both_apps_give_the_same_rows(models_env, folder, capsys, monkeypatch):
    engine = importlib.import_module("detector.scale.batch")
    calls: list[int] = []
    real = engine.whole_image_p_fake

    def counted(model, inputs, temperature, **options):
        calls.append(len(inputs))
        return real(model, inputs, temperature, **options)

    monkeypatch.setattr(engine, "whole_image_p_fake", counted)
    files = sorted(folder.iterdir())
    # the CLI
    args = ["--models-dir", str(models_env), "scan", str(folder), "--format", "json", "-q"]
    assert main([*args, "--model", "all"]) == 0
    cli = json.loads(capsys.readouterr().out)
    cli_rows = _same([(r["path"], r["model"], r["p_fake"], r["label"], r["error"]) for r in cli])
    assert calls, "the CLI scores through the engine"
    # the Gradio batch tab: uploads held in memory
    calls.clear()
    items = pres.read_uploads([(path.name, path.read_bytes()) for path in files])
    gradio = pres.batch_rows(items, NAMES)
    assert calls == [3, 3]  # one engine call per model for the whole chunk
    gradio_rows = _same([(r.file, r.model, r.p_fake, r.verdict, r.error) for r in gradio])
    # the Streamlit batch table: one held upload at a time, on its own decode
    calls.clear()
    streamlit = []
    for path in files:
        streamlit += cr.held_rows(cr.Upload(path.name, path.read_bytes()), NAMES)
    assert [count for count in calls if count] == [1] * 3 * 2  # each readable image, each model
    streamlit_rows = _same([(r.file, r.model, r.p_fake, r.verdict, r.error) for r in streamlit])
    # the same files, models, scores, labels and error codes (the CLI lists "all" best first)
    order = {name: i for i, name in enumerate(NAMES)}
    key = lambda row: (row[0], order[row[1]])  # noqa: E731
    assert sorted(cli_rows, key=key) == sorted(gradio_rows, key=key) == streamlit_rows
    assert [r[4] for r in streamlit_rows if r[0] == "notes.txt"] == ["not_an_image"] * 2
    assert [r[4] for r in streamlit_rows if r[0] == "empty.png"] == ["empty_file"] * 2
    assert all(r.seconds > 0 for r in gradio + streamlit if r.error is None)


def test_batch_rows_report_progress_chunk_by_chunk(models_env, folder):
    items = pres.read_uploads(sorted(folder.iterdir()))
    seen: list[int] = []
    rows = pres.batch_rows(items, ["tiny_cnn"], chunk=2, progress=seen.append)
    assert seen == [2, 2, 1] and len(rows) == 5
    single: list[int] = []
    pres.batch_rows(items, ["tiny_cnn"], chunk=1, progress=single.append)
    assert single == [1] * 5


def test_images_in_memory_score_as_files_on_disk(models_env, folder):
    files = sorted(folder.iterdir())
    image = detector.load_image(files[1])
    assert detector.ScanItem is ScanItem and pres.ScanItem is ScanItem  # the public API's too
    sources = [
        ScanItem("bytes.png", files[1].read_bytes()),
        ScanItem("pixels", image),
        ScanItem("grey", image[..., 0]),  # any array load_image reads
        ScanItem("refused.png", error="too_many_files: 1 more file(s) skipped"),
        ScanItem("nothing.png"),
    ]
    seen: list[int] = []
    rows = list(scan([files[1], *sources], ["tiny_cnn", "no_such_model"], progress=seen.append))
    assert seen == [6]
    assert [r.path for r in rows[::2]] == [
        str(files[1]),
        "bytes.png",
        "pixels",
        "grey",
        "refused.png",
        "nothing.png",
    ]
    on_disk = rows[0].p_fake
    assert rows[2].p_fake == pytest.approx(on_disk, abs=1e-6)
    assert rows[4].p_fake == pytest.approx(on_disk, abs=1e-6)
    assert rows[6].p_fake is not None and rows[6].error is None
    assert all(r.error.startswith("model_failed: model_not_found") for r in rows[1:7:2])
    assert rows[8].error == rows[9].error == "too_many_files: 1 more file(s) skipped"
    assert rows[10].error == rows[11].error == "unreadable_file"


def test_a_scan_row_keeps_its_time_out_of_its_columns_and_comparisons():
    timed = ScanRow("a.png", "m", 0.25, "real", None, seconds=0.5)
    assert list(timed.to_dict()) == list(SCAN_FIELDS)
    assert timed == ScanRow("a.png", "m", 0.25, "real", None)
    table = pres.BatchRow.from_scan(timed)
    assert table == pres.BatchRow("a.png", "m", "real", 0.25, 0.5, None)
    assert pres.BatchRow.from_scan(ScanRow("b.png", "m", None, None, "x: y")).to_list() == [
        "b.png",
        "m",
        "",
        "",
        "",
        "x: y",
    ]


def test_a_loaded_model_and_its_name_give_the_same_rows(models_env, folder):
    files = sorted(folder.iterdir())
    by_name = list(scan(files, ["tiny_cnn"]))
    loaded = list(scan(files, [detector.load_model("tiny_cnn")]))
    assert by_name == loaded
    assert np.isclose(by_name[1].p_fake, detector.load_model("tiny_cnn").predict(files[1]).p_fake)
