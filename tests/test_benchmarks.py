"""The benchmark helpers measure the real paths: the untrained-architecture timing and the scan."""

from __future__ import annotations

import numpy as np

from benchmarks.core import make_scan_folder, scan_throughput, untrained_detector
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
