"""The benchmark helpers measure the real paths: the untrained-architecture timing and the scan."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.core import (
    make_scan_folder,
    photo_jpeg,
    scan_throughput,
    time_interleaved,
    untrained_detector,
    whole_image_verdict,
)
from benchmarks.core import test_image as make_image


def test_untrained_simple_cnn_fast_path_matches_model_predict():
    det = untrained_detector("simple_cnn")
    assert det.spec.input_size == 128
    images = [make_image(256, seed) for seed in range(3)]
    ours = np.array([det.predict(im).p_fake for im in images])
    x = np.stack([det.spec.preprocessing.apply(im) for im in images])
    raw = det.keras_model.predict(x, verbose=0)[:, 0]  # sigmoid P(real)
    assert np.allclose(ours, 1.0 - raw, atol=1e-5)


def test_scan_throughput_scans_every_file(tmp_path):
    det = untrained_detector("simple_cnn")
    files = make_scan_folder(tmp_path / "scan", 6)
    result = scan_throughput([det], files, rounds=1)
    assert result["images"] == len(files) == 6
    assert result["models"] == 1
    assert result["images_per_s"] > 0


def test_interleaved_timing_alternates_blocks_and_times_each_call_repeats_times():
    order: list[str] = []
    timed = time_interleaved(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        repeats=5,
        warmup=1,
        block=2,
    )
    # warm-up of each, then blocks opened by one untimed call: a a a, b b b, a a a, b b b, a a, b b
    assert "".join(order) == "ab" + "aaabbb" * 2 + "aabb"
    assert [len(t.samples) for t in timed.values()] == [5, 5]
    assert all(s >= 0 for t in timed.values() for s in t.samples)


def test_report_gives_the_median_cold_start_with_every_start():
    from benchmarks.__main__ import _cold_cell

    assert _cold_cell({"cold_start_s": 11.0, "cold_starts_s": [12.5, 11.0, 10.2]}) == (
        "11.0 s (median of 12.5, 11.0, 10.2)"
    )
    assert _cold_cell({"cold_start_s": 9.84}) == "9.8 s"


@pytest.mark.parametrize("quick", [True, False])
def test_cold_start_is_the_median_of_three_launches_in_either_mode(monkeypatch, quick):
    import benchmarks.__main__ as bench

    asked = {}

    def fake_round_trips(repeats, api_name="/explain", launches=1):
        asked.update(repeats=repeats, launches=launches)
        return {"cold_start_s": 1.0, "cold_starts_s": [1.0] * launches}

    monkeypatch.setattr(bench, "app_round_trips", fake_round_trips)
    assert bench.app_results(quick)["cold_starts_s"] == [1.0, 1.0, 1.0]
    assert asked == {"repeats": 10 if quick else 50, "launches": 3}

    def broken(*args, **kwargs):
        raise RuntimeError("app did not start within 180 s")

    monkeypatch.setattr(bench, "app_round_trips", broken)
    assert bench.app_results(quick) == {"error": "RuntimeError: app did not start within 180 s"}


def test_the_benchmark_photo_is_a_noisy_jpeg_of_the_size_asked():
    import io

    from PIL import Image

    data = photo_jpeg(320, 240, seed=1)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (320, 240)
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert np.abs(np.diff(pixels, axis=1)).mean() > 3  # noise and edges, not a flat picture
    assert photo_jpeg(320, 240, seed=1) == data


def test_whole_image_verdict_times_every_patch_of_the_photo():
    det = untrained_detector("dct_spectrum")  # native-resolution patches, 224 px, 8 px grid
    result = whole_image_verdict(det, repeats=2, photo_repeats=1, photo_size=(600, 500))
    assert result["photo_pixels"] == "600x500" and result["photo_patches"] == 9
    assert result["photo_p50_ms"] > 0 and result["tile_p50_ms"] > 0
    assert result["photo_target_ms"] == 1000.0 and result["tile_target_ms"] == 30.0
