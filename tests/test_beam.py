"""Scanning on Apache Beam (optional extra): same rows as `detector.scan`, on the DirectRunner.

Tests marked `needs_beam` are skipped where apache-beam is not installed (the app's own venv);
the plain helpers are tested everywhere. Run them all in the beam venv:
``.venv-beam/bin/python -m pytest tests/test_beam.py``.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import encode, make_image, tiny_card

import detector
from detector.cli import main
from detector.scale import beam as dbeam
from detector.scale import beam_steps as steps
from detector.scale.batch import model_inputs

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["tiny_attention", "tiny_cnn"]

needs_beam = pytest.mark.skipif(
    importlib.util.find_spec("apache_beam") is None, reason="apache-beam is not installed"
)


@pytest.fixture()
def mixed_folder(tmp_path) -> Path:
    """Good images (PNG, JPEG, RGBA, grey) and bad files (empty, text, truncated, tiny, hidden)."""
    folder = tmp_path / "in"
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / ".cache").mkdir()
    for i in range(5):
        (folder / f"a{i}.png").write_bytes(encode(make_image(64 + 8 * i, 72, i)))
    (folder / "sub" / "b.jpg").write_bytes(encode(make_image(90, 60, 7), "JPEG", quality=90))
    (folder / "sub" / "deeper" / "c.jpeg").write_bytes(encode(make_image(200, 150, 8), "JPEG"))
    rgba = make_image(48, 48, 9)
    (folder / "rgba.png").write_bytes(encode(np.dstack([rgba, rgba[..., :1]])))
    (folder / "grey.png").write_bytes(encode(make_image(40, 40, 10)[..., 0]))
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub" / "cut.jpg").write_bytes(encode(make_image(80, 80, 11), "JPEG")[:300])
    (folder / "tiny.png").write_bytes(encode(make_image(8, 8, 12)))
    (folder / ".hidden.png").write_bytes(encode(make_image(32, 32, 13)))
    (folder / ".cache" / "d.png").write_bytes(encode(make_image(32, 32, 14)))
    return folder


@pytest.fixture()
def clean_env(monkeypatch):
    """No models-dir env var (the test passes --models-dir); workers can import `detector`."""
    monkeypatch.delenv("FAKEDETECT_MODELS_DIR", raising=False)
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), path) if p))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


def reference_rows(folder: Path, models_dir: Path) -> list[dict]:
    detectors = [detector.load_model(name, models_dir) for name in MODELS]
    return [row.to_dict() for row in detector.scan(detector.expand_paths([folder]), detectors)]


def read_shards(paths: list[str], fmt: str) -> list[dict]:
    rows: list[dict] = []
    for shard in paths:
        text = Path(shard).read_text()
        if fmt == "jsonl":
            rows.extend(json.loads(line) for line in text.splitlines() if line)
            continue
        assert text.splitlines()[0] == "path,model,p_fake,label,error"  # header in every shard
        for record in csv.DictReader(io.StringIO(text)):
            rows.append(
                {
                    "path": record["path"],
                    "model": record["model"],
                    "p_fake": float(record["p_fake"]) if record["p_fake"] else None,
                    "label": record["label"] or None,
                    "error": record["error"] or None,
                }
            )
    return rows


def assert_same_rows(got: list[dict], want: list[dict]) -> None:
    assert all(list(row) == list(detector.SCAN_FIELDS) for row in got)
    by_key = {(r["path"], r["model"]): r for r in got}
    assert len(by_key) == len(got), "duplicate (path, model) rows"
    assert set(by_key) == {(r["path"], r["model"]) for r in want}
    for ref in want:
        row = by_key[(ref["path"], ref["model"])]
        assert row["error"] == ref["error"], ref["path"]
        assert row["label"] == ref["label"], ref["path"]
        if ref["p_fake"] is None:
            assert row["p_fake"] is None
        else:
            assert row["p_fake"] == pytest.approx(ref["p_fake"], abs=1e-5)
            assert row["p_fake"] == round(row["p_fake"], 6)


def run_cli(folder: Path, models_dir: Path, out: Path, fmt: str, *extra: str, capsys) -> list:
    code = main(
        [
            "--models-dir",
            str(models_dir),
            "scan-beam",
            str(folder),
            "--output",
            str(out / "scan"),
            "--model",
            "all",
            "--format",
            fmt,
            *extra,
        ]
    )
    assert code == 0, capsys.readouterr().err
    shards = capsys.readouterr().out.split()
    assert shards and all(re.search(rf"scan-\d{{5}}-of-\d{{5}}\.{fmt}$", s) for s in shards)
    assert sorted(shards) == sorted(str(p) for p in out.glob(f"scan-*.{fmt}"))
    return shards


# --------------------------------------------------------------------------- pipelines
@needs_beam
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_scan_beam_matches_scan_in_process(
    fmt, trained_dir, mixed_folder, tmp_path, clean_env, capsys
):
    want = reference_rows(mixed_folder, trained_dir)
    assert {r["error"].split(":")[0] for r in want if r["error"]} == {
        "empty_file",
        "not_an_image",
        "truncated_file",
        "too_small",
    }
    shards = run_cli(mixed_folder, trained_dir, tmp_path / "out", fmt, capsys=capsys)
    assert_same_rows(read_shards(shards, fmt), want)


@needs_beam
@pytest.mark.slow
def test_scan_beam_multi_processing(trained_dir, mixed_folder, tmp_path, clean_env, capsys):
    want = reference_rows(mixed_folder, trained_dir)
    # one model per worker process, then one per machine shared by both processes
    for fmt, share in (("jsonl", "never"), ("csv", "always")):
        shards = run_cli(
            mixed_folder,
            trained_dir,
            tmp_path / fmt,
            fmt,
            "--runner",
            "DirectRunner",
            "--direct_running_mode=multi_processing",
            "--direct_num_workers=2",
            "--batch-size",
            "4",
            "--share-models",
            share,
            capsys=capsys,
        )
        assert_same_rows(read_shards(shards, fmt), want)


@needs_beam
@pytest.mark.slow
def test_scan_beam_glob_env_and_workers_models_dir(
    trained_dir, mixed_folder, tmp_path, clean_env, monkeypatch
):
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(trained_dir))
    shards = dbeam.run_scan_beam(
        str(mixed_folder / "*.png"), str(tmp_path / "o" / "p"), ["tiny_cnn"], fmt="jsonl"
    )
    rows = read_shards(shards, "jsonl")
    names = sorted(Path(r["path"]).name for r in rows)
    # `*` stays in the folder and skips hidden files, as `scan` does
    assert names == [
        *(f"a{i}.png" for i in range(5)),
        "empty.png",
        "grey.png",
        "rgba.png",
        "tiny.png",
    ]
    assert {r["model"] for r in rows} == {"tiny_cnn"}

    # Workers read the folder they are given: a copy whose card gives every image one label.
    labels = {r["label"] for r in rows if r["p_fake"] is not None}
    forced = "real" if labels == {"fake"} else "fake"
    elsewhere = tmp_path / "worker-models"
    shutil.copytree(trained_dir, elsewhere)
    card = json.loads((elsewhere / "tiny_cnn" / "card.json").read_text())
    card["threshold"] = 0.0 if forced == "fake" else 1.0
    card["uncertain_band"] = [card["threshold"]] * 2
    (elsewhere / "tiny_cnn" / "card.json").write_text(json.dumps(card))
    shards = dbeam.run_scan_beam(
        str(mixed_folder / "a*.png"),
        str(tmp_path / "o2" / "p"),
        ["tiny_cnn"],
        fmt="jsonl",
        workers_models_dir=str(elsewhere),
    )
    assert {r["label"] for r in read_shards(shards, "jsonl")} == {forced}


@needs_beam
@pytest.mark.slow
def test_beam_throughput(trained_dir, mixed_folder, clean_env):
    files = detector.expand_paths([mixed_folder])
    result = dbeam.beam_throughput(files, MODELS, trained_dir)
    assert result["images"] == len(files) and result["models"] == 2
    assert result["rows"] == 2 * len(files)
    assert result["images_per_s"] > 0


@pytest.fixture(scope="module")
def native_dir(tmp_path_factory) -> Path:
    """A models folder with a tiny native-resolution model (32 px patches on the JPEG grid)."""
    from detector.core._keras import keras
    from detector.core.models import export_model
    from detector.core.recipes import get_recipe

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("native_models")
    card = tiny_card("native", "dct_spectrum", temperature=1.3, uncertain_band=(0.4, 0.6))
    export_model(get_recipe("dct_spectrum").build(card.spec), root / "native", card)
    return root


def odd_folder(tmp_path: Path) -> Path:
    """A large and a small image, and the entries Beam's own listing drops without a word."""
    folder = tmp_path / "odd"
    (folder / "sub").mkdir(parents=True)
    large = make_image(600, 500, 5)
    large[:300, :250] = 128  # a flat quarter: its patches score apart from the others
    (folder / "large.png").write_bytes(encode(large))
    (folder / "small.png").write_bytes(encode(make_image(50, 60, 6)))
    (folder / "dangling.png").symlink_to("nowhere.png")
    (folder / "selfloop").symlink_to("selfloop")
    (folder / "sub" / "to_parent").symlink_to("..")
    os.mkfifo(folder / "fifo.png")
    return folder


@needs_beam
@pytest.mark.slow
def test_scan_beam_scores_large_images_and_odd_entries_as_scan_does(
    native_dir, tmp_path, clean_env
):
    folder = odd_folder(tmp_path)
    det = detector.load_model("native", native_dir)
    want = [row.to_dict() for row in detector.scan(detector.expand_paths([folder]), [det])]
    by_name = {Path(r["path"]).name: r for r in want}
    assert by_name["large.png"]["p_fake"] == pytest.approx(
        det.predict(folder / "large.png").p_fake, abs=2e-6
    )
    assert len(det.predict(folder / "large.png").patches) == 16
    assert {n for n, r in by_name.items() if r["error"]} == {
        "dangling.png",
        "selfloop",
        "to_parent",
        "fifo.png",
    }
    shards = dbeam.run_scan_beam(
        str(folder), str(tmp_path / "out" / "scan"), ["native"], native_dir, fmt="jsonl"
    )
    assert_same_rows(read_shards(shards, "jsonl"), want)


# --------------------------------------------------------------------------- pieces
@needs_beam
def test_handler_batches_and_labels(trained_dir):
    det = detector.load_model("tiny_cnn", trained_dir)
    handler = dbeam.DetectorModelHandler(
        "tiny_cnn", str(trained_dir), min_batch_size=2, max_batch_size=8
    )
    assert handler.batch_elements_kwargs() == {"min_batch_size": 2, "max_batch_size": 8}
    assert not handler.share_model_across_processes()
    model = handler.load_model()
    images = [make_image(64, 64 + i, i) for i in range(3)]
    inputs = [model_inputs(im, det.spec.preprocessing) for im in images]
    results = list(handler.run_inference(inputs, model))
    want = [det.predict(im).p_fake for im in images]
    for result, p in zip(results, want, strict=True):
        p_fake, label, error = result.inference
        assert result.model_id == "tiny_cnn" and error is None
        assert p_fake == pytest.approx(float(p), abs=1e-6)
        assert label == det.card.label_for(p_fake)

    class Broken:
        def fake_logits_batch(self, batch):
            raise RuntimeError("boom")

    failed = list(handler.run_inference(inputs, Broken()))
    assert [r.inference for r in failed] == [(None, None, "model_failed: RuntimeError: boom")] * 3
    assert np.isclose(handler.get_num_bytes(inputs), sum(x.nbytes for x in inputs))


@needs_beam
def test_remote_files_decode_like_local_ones(tmp_path):
    """Files on other filesystems (gs://, s3://...) are read as bytes; same arrays and errors."""
    from types import SimpleNamespace

    def remote(name: str, data: bytes, size: int | None = None):
        meta = SimpleNamespace(path=f"mem://bucket/{name}", size_in_bytes=size or len(data))
        return SimpleNamespace(metadata=meta, open=lambda compression_type: io.BytesIO(data))

    png = encode(make_image(40, 50, 3))
    (tmp_path / "a.png").write_bytes(png)
    (tmp_path / "empty.png").write_bytes(b"")
    path, array = steps._decode(remote("a.png", png))
    assert path == "mem://bucket/a.png"
    assert np.array_equal(array, detector.load_image(tmp_path / "a.png"))
    _, error = steps._decode(remote("empty.png", b""))
    with pytest.raises(detector.ImageLoadError) as local:
        detector.load_image(tmp_path / "empty.png")
    assert (error.code, str(error)) == (local.value.code, str(local.value))
    _, error = steps._decode(remote("big.png", png, size=60_000_000))
    assert error.code == "file_too_large" and "60.0 MB" in str(error)


def test_share_models_auto_by_weight_size(trained_dir, monkeypatch):
    names = ["tiny_cnn", "tiny_attention"]
    assert steps.share_decision(names, trained_dir, "auto") == dict.fromkeys(names, False)
    assert steps.share_decision(names, trained_dir, "always") == dict.fromkeys(names, True)
    monkeypatch.setattr(steps, "SHARE_MODEL_BYTES", 1)
    assert steps.share_decision(names, trained_dir, "auto") == dict.fromkeys(names, True)


def test_a_local_folder_is_listed_as_scan_lists_it(tmp_path):
    folder = odd_folder(tmp_path)
    (folder / ".hidden.png").symlink_to("nowhere.png")
    assert steps.local_folder(steps.resolve_pattern(str(folder))) == str(folder)
    assert steps.local_folder(f"{folder}/**") == str(folder)
    assert steps.local_folder(f"{folder}/*.png") is None
    assert steps.local_folder(f"{folder}/s*/**") is None
    assert steps.local_folder(str(folder / "large.png")) is None
    assert steps.local_folder(f"{tmp_path}/missing/**") is None
    assert steps.local_folder("gs://bucket/img/**") is None
    listed = steps.list_folder(str(folder))
    assert listed == [str(p) for p in detector.expand_paths([folder])]
    assert [Path(p).relative_to(folder).as_posix() for p in listed] == [
        "dangling.png",
        "fifo.png",
        "large.png",
        "selfloop",
        "small.png",
        "sub/to_parent",
    ]


def test_patterns_and_hidden_files(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    assert steps.resolve_pattern(str(folder)) == f"{folder}/**"
    assert steps.resolve_pattern(str(folder) + "/") == f"{folder}/**"
    assert steps.resolve_pattern("gs://bucket/x/*.jpg") == "gs://bucket/x/*.jpg"
    with pytest.raises(FileNotFoundError):
        steps.resolve_pattern(str(tmp_path / "missing"))
    assert steps.is_visible("p/a.png", "p/**")
    assert steps.is_visible("p/sub/a.png", "p/**")
    assert not steps.is_visible("p/.a.png", "p/**")
    assert not steps.is_visible("p/.git/a.png", "p/**")
    assert steps.is_visible("p/.git/a.png", "p/.git/*")  # a pattern that spells it keeps it
    assert steps.is_visible("p/.a.png", "p/.a.png")
    assert steps.is_visible("gs://b/img/x.jpg", "gs://b/img/*.jpg")


def test_worker_models_dir_is_explicit(tmp_path, monkeypatch):
    monkeypatch.delenv("FAKEDETECT_MODELS_DIR", raising=False)
    assert steps.worker_models_dir(None) is None
    monkeypatch.chdir(tmp_path)
    assert steps.worker_models_dir("models") == str(tmp_path / "models")
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", "/mnt/models")
    assert steps.worker_models_dir(None) == "/mnt/models"
    with pytest.raises(detector.DetectorError, match="local or mounted folder"):
        steps.worker_models_dir("gs://b/models")


def test_cli_passes_beam_options_through():
    from detector.cli import build_parser

    args = build_parser().parse_args(
        [
            "scan-beam",
            "in/**",
            "--output",
            "o/x",
            "--project=p",
            "--direct_num_workers=2",
            "--runner",
            "DataflowRunner",
            "--format",
            "jsonl",
        ]
    )
    assert args.input == "in/**" and args.output == "o/x" and args.format == "jsonl"
    assert args.runner == "DataflowRunner"
    assert args.beam_args == ["--project=p", "--direct_num_workers=2"]
    assert build_parser().parse_args(["scan-beam", "x", "-o", "y"]).beam_args == []
    with pytest.raises(SystemExit):  # other sub-commands still reject unknown options
        build_parser().parse_args(["scan", "x", "--project=p"])


@needs_beam
def test_cli_bad_arguments_exit_2(trained_dir, tmp_path, capsys):
    base = ["--models-dir", str(trained_dir), "scan-beam"]
    assert main([*base, str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main([*base, str(tmp_path), "-o", str(tmp_path / "o"), "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main([*base, str(tmp_path), "-o", "o", "--model", "efficientnet_b2"]) == 2
    assert "no trained weights" in capsys.readouterr().err


def test_missing_beam_names_the_extra(trained_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # import apache_beam now fails
    with pytest.raises(dbeam.BeamNotInstalledError, match=r"pip install \.\[beam\]"):
        dbeam.require_beam()
    code = main(["--models-dir", str(trained_dir), "scan-beam", str(tmp_path), "-o", "x"])
    assert code == 2
    assert dbeam.INSTALL_HINT in capsys.readouterr().err


def test_requirements_beam_follows_requirements():
    def pins(name: str) -> dict[str, str]:
        lines = (ROOT / name).read_text().splitlines()
        return dict(
            line.split("==", 1) for line in (raw.split("#")[0].strip() for raw in lines) if line
        )

    app, extra = pins("requirements.txt"), pins("requirements-beam.txt")
    assert extra.pop("apache-beam") == "2.77.0"
    assert int(extra.pop("protobuf").split(".")[0]) < 7  # apache-beam 2.77 needs protobuf < 7
    app.pop("protobuf", None)
    assert extra == app, "requirements-beam.txt must repeat requirements.txt's pins"
