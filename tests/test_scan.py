"""Batch scanning: order, batching, bad files and failing models."""

from __future__ import annotations

import pytest
from conftest import encode, make_image

import detector


class BrokenDetector:
    """Looks like a Detector but fails on every batch."""

    name = "broken"

    def __init__(self, spec, card):
        self.spec = spec
        self.card = card

    def p_fake_batch(self, batch):
        raise RuntimeError("simulated out-of-memory")


@pytest.fixture()
def files(tmp_path):
    paths = []
    for i in range(7):
        path = tmp_path / f"f{i}.png"
        path.write_bytes(encode(make_image(40, 40, i)) if i != 3 else b"garbage")
        paths.append(path)
    return paths


def test_rows_in_file_order_across_batches(trained_dir, files):
    det = detector.load_model("tiny_cnn", trained_dir)
    rows = list(detector.scan(files, [det], batch_size=2))
    assert [r.path for r in rows] == [str(p) for p in files]
    single = {str(p): det.predict(p).p_fake for p in files if p.name != "f3.png"}
    for row in rows:
        if row.path.endswith("f3.png"):
            assert row.p_fake is None and row.error.startswith("not_an_image")
        else:
            assert row.p_fake == pytest.approx(single[row.path], abs=1e-5)


def test_a_failing_model_does_not_stop_the_others(trained_dir, files):
    good = detector.load_model("tiny_cnn", trained_dir)
    broken = BrokenDetector(good.spec, good.card)
    seen = []
    rows = list(detector.scan(files, [broken, good], batch_size=4, progress=seen.append))
    assert sum(seen) == len(files)
    broken_rows = [r for r in rows if r.model == "broken"]
    good_rows = [r for r in rows if r.model == "tiny_cnn" and r.error is None]
    assert len(good_rows) == 6
    assert all(
        "simulated out-of-memory" in r.error for r in broken_rows if not r.path.endswith("f3.png")
    )
