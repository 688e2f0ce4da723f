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


def test_scan_output_that_cannot_be_opened_is_a_named_error_before_any_model_loads(
    trained_dir, mixed_folder, tmp_path, capsys, monkeypatch
):
    import detector

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded although the output is a folder")

    with monkeypatch.context() as patch:
        patch.setattr(detector, "load_model", no_loading)
        args = ["--models-dir", str(trained_dir), "scan", str(mixed_folder), "-q", "-o"]
        assert main([*args, str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: cannot write {tmp_path}: it is a folder\n"
    assert main([*args, str(tmp_path / "no" / "such" / "folder.csv")]) == 2
    assert "error: cannot write" in capsys.readouterr().err

    import detector.cli as cli

    def refused(path, *a, **k):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(cli, "open", refused, raising=False)  # root ignores chmod 444
    assert main([*args, str(tmp_path / "read_only.csv")]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot write {tmp_path / 'read_only.csv'}: Permission denied; nothing was saved\n"
    )


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_scan_to_a_full_device_fails_before_scanning(trained_dir, mixed_folder, capsys, fmt):
    import os

    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    args = ["--models-dir", str(trained_dir), "scan", str(mixed_folder), "-q", "--format", fmt]
    assert main([*args, "-o", "/dev/full"]) == 2
    err = capsys.readouterr().err
    assert err == "error: cannot write /dev/full: No space left on device; nothing was saved\n"


def test_scan_stops_at_a_write_failure_and_says_the_file_is_incomplete(
    trained_dir, tmp_path, capsys, monkeypatch
):
    import os

    import detector

    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i}.png").write_bytes(encode(make_image(40, 40, i)))
    produced = []
    real_scan = detector.scan

    def counting_scan(*args, **kwargs):
        for row in real_scan(*args, **kwargs):
            produced.append(row)
            yield row

    monkeypatch.setattr(detector, "scan", counting_scan)
    args = ["--models-dir", str(trained_dir), "scan", str(folder), "-q", "--batch-size", "2"]
    assert main([*args, "--format", "jsonl", "-o", "/dev/full"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: cannot write /dev/full: No space left on device; the scan stopped after 2 of 6 "
        "rows and the file is incomplete\n"
    )
    assert len(produced) == 2, "the scan stops at the first batch that cannot be written"


def test_scan_output_file_is_written_batch_by_batch_in_every_format(
    trained_dir, mixed_folder, tmp_path, capsys
):
    base = ["--models-dir", str(trained_dir), "scan", str(mixed_folder), "-q", "--model", "all"]
    out = tmp_path / "rows.json"
    assert main([*base, "--format", "json", "-o", str(out), "--batch-size", "1"]) == 0
    rows = json.loads(out.read_text())
    assert out.read_text() == json.dumps(rows, indent=2) + "\n", "as json.dump writes it"
    assert len(rows) == 8
    lines = tmp_path / "rows.jsonl"
    assert main([*base, "--format", "jsonl", "-o", str(lines)]) == 0
    assert [json.loads(line) for line in lines.read_text().splitlines()] == rows
    table = tmp_path / "rows.csv"
    assert main([*base, "-o", str(table)]) == 0
    assert [r["path"] for r in csv.DictReader(table.open())] == [r["path"] for r in rows]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*base[:3], str(empty), "--format", "json", "-o", str(out)]) == 0
    assert out.read_text() == "[]\n"


# --------------------------------------------------------------------------- whole images
@pytest.fixture(scope="module")
def native_dir(tmp_path_factory):
    """A models folder with a tiny native-resolution model (32 px patches)."""
    from conftest import tiny_card

    from detector.core._keras import keras
    from detector.core.models import export_model
    from detector.core.recipes import get_recipe

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("native_models")
    card = tiny_card("native", "dct_spectrum", temperature=1.3, uncertain_band=(0.4, 0.6))
    export_model(get_recipe("dct_spectrum").build(card.spec), root / "native", card)
    return root


def large_picture():
    image = make_image(600, 500, seed=5)
    image[:300, :250] = 128  # a flat quarter: its patches score apart from the others
    return image


def test_scan_scores_a_large_image_as_predict_does(native_dir, tmp_path, capsys):
    import detector

    large, small = tmp_path / "large.png", tmp_path / "small.png"
    large.write_bytes(encode(large_picture()))
    small.write_bytes(encode(make_image(50, 60, 6)))
    args = ["--models-dir", str(native_dir), "scan", str(large), str(small), "--format", "jsonl"]
    assert main([*args, "-q"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    det = detector.load_model("native", native_dir)
    for row, path, patches in zip(rows, (large, small), (16, 1), strict=True):
        want = det.predict(path)
        assert len(want.patches) == patches
        assert row["path"] == str(path) and row["error"] is None
        assert row["p_fake"] == pytest.approx(want.p_fake, abs=2e-6)
        assert row["label"] == det.card.label_for(row["p_fake"])


def test_public_explain_passes_the_patch_through(native_dir):
    import numpy as np

    import detector

    det = detector.load_model("native", native_dir)
    image = large_picture()
    chosen = detector.explain(image, det, patch=3)
    assert chosen.patch == 3 and len(chosen.prediction.patches) == 16
    x, y, size = (chosen.prediction.patches[3].x, chosen.prediction.patches[3].y, 32)
    outside = np.ones(image.shape[:2], dtype=bool)
    outside[y : y + size, x : x + size] = False
    assert not chosen.heatmap[outside].any()
    default = detector.explain(image, det)
    assert default.patch == default.prediction.top_patch
    assert default.prediction.p_fake == pytest.approx(chosen.prediction.p_fake, abs=1e-6)
    with pytest.raises(IndexError):
        detector.explain(image, det, patch=16)


# --------------------------------------------------------------------------- headline
def generated_png(path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1")
    path.write_bytes(encode(make_image(64, 64, 3), "PNG", pnginfo=info))
    return path


def test_scan_headline_columns(trained_dir, mixed_folder, capsys):
    generated_png(mixed_folder / "gen.png")
    args = ["--models-dir", str(trained_dir), "scan", str(mixed_folder), "-q", "--headline"]
    assert main([*args, "--model", "all"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == [
        "path", "model", "p_fake", "label", "error", "headline", "headline_title", "headline_basis"
    ]  # fmt: skip
    by_file = {}
    for row in rows:
        by_file.setdefault(row["path"].rsplit("/", 1)[-1], []).append(row)
    for row in by_file["gen.png"]:
        assert (row["headline"], row["headline_basis"]) == ("ai_generated", "declaration")
        assert row["headline_title"] == "AI-generated: declared in metadata"
    for row in by_file["a.png"] + by_file["b.jpg"]:
        assert row["headline_basis"] == "model"
        assert row["headline"] in ("likely_ai", "likely_real", "uncertain")
    for row in by_file["notes.txt"]:
        assert row["error"] and row["headline"] == "" and row["headline_basis"] == ""


def test_scan_headline_in_json(trained_dir, tmp_path, capsys):
    path = generated_png(tmp_path / "gen.png")
    args = ["--models-dir", str(trained_dir), "scan", str(path), "-q", "--headline"]
    assert main([*args, "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["headline"] == "ai_generated" and row["p_fake"] is not None


def test_scan_without_headline_keeps_its_columns(trained_dir, mixed_folder, capsys):
    assert main(["--models-dir", str(trained_dir), "scan", str(mixed_folder / "a.png"), "-q"]) == 0
    assert capsys.readouterr().out.startswith("path,model,p_fake,label,error\r\n")


def test_inspect_shows_the_headline(trained_dir, tmp_path, capsys):
    path = generated_png(tmp_path / "gen.png")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("AI-generated: declared in metadata\n  - Generation settings")
    assert "[metadata, easy to forge or strip]" in out and "[x] Generation settings" in out
    assert main(["inspect", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"]["label"] == "ai_generated" and data["verdict"]["basis"] == "declaration"
    assert "prediction" not in data and data["items"][0]["kind"] == "file"


def test_inspect_with_a_model_adds_score_and_stability(trained_dir, tmp_path, capsys):
    plain = tmp_path / "plain.png"
    plain.write_bytes(encode(make_image(64, 64, 4)))
    args = ["--models-dir", str(trained_dir), "inspect", str(plain), "--model", "tiny_cnn"]
    assert main([*args, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"]["basis"] == "model"
    assert data["prediction"]["model"] == "tiny_cnn"
    assert data["stability"]["checked"] is True
    strengths = [r["strength"] for r in data["verdict"]["reasons"]]
    assert strengths[0].startswith("statistical score, ")
    assert strengths[-1] == "absence proves nothing"
    assert main([*args, "--format", "text"]) == 0
    assert "Model tiny_cnn: P(AI-generated)" in capsys.readouterr().out
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    assert main([*args[:3], str(notes), "--model", "tiny_cnn"]) == 0
    assert capsys.readouterr().out.startswith("We cannot tell\n")
