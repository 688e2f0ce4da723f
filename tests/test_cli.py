"""The command line: list and scan, including folders that mix good and bad files."""

from __future__ import annotations

import csv
import io
import json

import pytest
from conftest import encode, make_image

from detector.cli import main


@pytest.fixture()
def mixed_folder(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(encode(make_image(64, 64, 1)))
    (folder / "sub" / "b.jpg").write_bytes(encode(make_image(90, 60, 2), "JPEG"))
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    (folder / ".hidden.png").write_bytes(b"")
    return folder


def test_list_outputs_json(trained_dir, capsys):
    assert main(["--models-dir", str(trained_dir), "list"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["name"]: d["trained"] for d in data}["tiny_cnn"] is True
    assert {d["name"]: d["trained"] for d in data}["efficientnet_b2"] is False


def test_scan_json_mixed_folder(trained_dir, mixed_folder, capsys):
    code = main(
        [
            "--models-dir",
            str(trained_dir),
            "scan",
            str(mixed_folder),
            "--format",
            "json",
            "--model",
            "all",
            "-q",
        ]
    )
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 * 2  # four visible files x two models
    by_file = {}
    for row in rows:
        by_file.setdefault(row["path"].rsplit("/", 1)[-1], []).append(row)
    for name in ("a.png", "b.jpg"):
        for row in by_file[name]:
            assert row["error"] is None and 0.0 <= row["p_fake"] <= 1.0
            assert row["label"] in ("fake", "real", "uncertain")
    assert all(r["error"].startswith("not_an_image") for r in by_file["notes.txt"])
    assert all(r["error"].startswith("empty_file") for r in by_file["empty.png"])
    assert {r["model"] for r in rows} == {"tiny_cnn", "tiny_attention"}


def test_scan_csv_default_model(trained_dir, mixed_folder, capsys):
    assert main(["--models-dir", str(trained_dir), "scan", str(mixed_folder / "a.png"), "-q"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["model"] for r in rows] == ["tiny_attention"]
    assert list(rows[0]) == ["path", "model", "p_fake", "label", "error"]


def test_bad_arguments_exit_2(trained_dir, tmp_path, capsys):
    assert main(["--models-dir", str(trained_dir), "scan", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["--models-dir", str(trained_dir), "scan", str(tmp_path), "--model", "nope"]) == 2
    assert main(["--models-dir", str(tmp_path / "none"), "scan", str(tmp_path)]) == 2
    assert "no trained models" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["scan"])


def test_explain_writes_overlay(trained_dir, tmp_path, capsys):
    image = tmp_path / "x.png"
    image.write_bytes(encode(make_image(50, 40)))
    out = tmp_path / "overlay.png"
    args = [
        "--models-dir",
        str(trained_dir),
        "explain",
        str(image),
        "--model",
        "tiny_attention",
        "--method",
        "attention",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "attention"
    from PIL import Image

    assert Image.open(out).size == (40, 50)
