"""Hostile and odd inputs through the library and the CLI, plus fuzzing of the decoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hostile import Case, corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import detector
from detector.cli import main

CASES = corpus()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_library_answers_every_case(case: Case, trained_dir):
    det = detector.load_model("tiny_cnn", trained_dir)
    if case.expect == "ok":
        image = detector.load_image(case.data)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        result = det.predict(case.data)
        assert 0.0 <= result.p_fake <= 1.0
        explanation = det.explain(case.data)
        assert explanation.heatmap.shape == image.shape[:2]
    else:
        with pytest.raises(detector.ImageLoadError) as info:
            det.predict(case.data)
        assert info.value.code == case.expect
        assert len(str(info.value)) > 10


def test_cli_scan_gives_one_row_per_case(trained_dir, tmp_path, capsys):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for case in CASES:
        (folder / case.name).write_bytes(case.data)
    args = ["--models-dir", str(trained_dir), "scan", str(folder), "--format", "json", "-q"]
    assert main(args) == 0
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {c.name for c in CASES}
    for case in CASES:
        row = rows[case.name]
        if case.expect == "ok":
            assert row["error"] is None and 0.0 <= row["p_fake"] <= 1.0
        else:
            assert row["p_fake"] is None and row["error"].startswith(case.expect)


def _seeds() -> list[bytes]:
    by_name = {c.name: c.data for c in CASES}
    return [
        by_name[n]
        for n in (
            "image.webp",
            "grey.png",
            "animated.gif",
            "image.bmp",
            "exif_rotated.jpg",
            "image.tiff",
        )
    ]


SEEDS = _seeds()


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        else:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[pos : pos + len(chunk)] = chunk
    return bytes(data)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzzed_bytes_give_an_image_or_our_error(data: bytes):
    try:
        image = detector.load_image(data)
    except detector.ImageLoadError as exc:
        assert exc.code and str(exc)
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert min(image.shape[:2]) >= 16
