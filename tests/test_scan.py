"""Batch scanning: order, batching, bad files and failing models."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import encode, make_image, tiny_card

import detector
from detector.core.patches import patch_grid
from detector.core.recipes import get_recipe
from detector.core.runtime import Detector
from detector.core.spec import Preprocessing
from detector.scale.batch import model_inputs, whole_image_p_fake


class BrokenDetector:
    """Looks like a Detector but fails on every batch."""

    name = "broken"
    max_patches = 16
    temperature = 1.0

    def __init__(self, spec, card):
        self.spec = spec
        self.card = card

    def fake_logits_batch(self, batch):
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


class StubDetector:
    """Scores every image 0.5 (logit 0) without a model (for scans whose point is the files)."""

    name = "stub"
    spec = SimpleNamespace(preprocessing=Preprocessing(size=32))
    card = SimpleNamespace(label_for=lambda p_fake: "real")
    max_patches = 16
    temperature = 1.0

    def fake_logits_batch(self, batch):
        return np.zeros(len(batch))


def test_an_unreadable_file_is_a_row_and_the_scan_goes_on(files, monkeypatch):
    import importlib

    scan_module = importlib.import_module("detector.scale.batch")
    real = scan_module.load_image

    def refuse_f1(path):
        if path.name == "f1.png":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(scan_module, "load_image", refuse_f1)
    rows = list(detector.scan(files, [StubDetector()], batch_size=2))
    assert [r.path for r in rows] == [str(p) for p in files]
    by_name = {r.path.rsplit("/", 1)[-1]: r for r in rows}
    assert by_name["f1.png"].error == "read_failed: cannot read f1.png: Permission denied"
    assert by_name["f0.png"].p_fake == 0.5 and by_name["f6.png"].p_fake == 0.5


def _run_as_nobody(code: str, *args: str):
    """Run Python code as user nobody (uid 65534); skip where that is not possible."""
    import os
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to drop to another user")
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "MPLCONFIGDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
    run = {"capture_output": True, "text": True, "env": env, "cwd": repo}
    probe = subprocess.run([*drop, "-c", "print('ok')"], **run)
    if probe.stdout.strip() != "ok":
        pytest.skip(f"cannot run Python as nobody here: {probe.stderr.strip()[:200]}")
    return subprocess.run([*drop, "-c", code, *args], timeout=300, **run)


def test_permission_denied_for_real_gives_read_failed_rows():
    """As an unprivileged user: a chmod 000 file and a chmod 000 folder are rows, not a crash."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # under /tmp, where nobody can enter
        folder = Path(tmp)
        folder.chmod(0o755)
        (folder / "a.png").write_bytes(encode(make_image(40, 40, 1)))
        (folder / "b.png").write_bytes(encode(make_image(40, 40, 2)))
        (folder / "c.png").write_bytes(encode(make_image(40, 40, 3)))
        (folder / "b.png").chmod(0o000)
        (folder / "locked").mkdir()
        (folder / "locked" / "d.png").write_bytes(encode(make_image(40, 40, 4)))
        (folder / "locked").chmod(0o000)
        code = (
            "import json, sys\n"
            "from detector.scale.batch import expand_paths, scan\n"
            "from detector.core.spec import Preprocessing\n"
            "class S:\n"
            "    preprocessing = Preprocessing(size=32)\n"
            "class C:\n"
            "    label_for = staticmethod(lambda p: 'real')\n"
            "class D:\n"
            "    name, spec, card, max_patches, temperature = 'stub', S, C, 16, 1.0\n"
            "    def fake_logits_batch(self, batch): return [0.0] * len(batch)\n"
            "rows = scan(expand_paths([sys.argv[1]]), [D()], batch_size=2)\n"
            "print(json.dumps([r.to_dict() for r in rows]))\n"
        )
        try:
            done = _run_as_nobody(code, str(folder))
        finally:
            (folder / "locked").chmod(0o755)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(done.stdout.splitlines()[-1])}
    assert set(rows) == {"a.png", "b.png", "c.png", "locked"}
    assert rows["a.png"]["p_fake"] == 0.5 and rows["c.png"]["p_fake"] == 0.5
    assert rows["b.png"]["error"] == "read_failed: cannot read b.png: Permission denied"
    assert rows["locked"]["error"] == "read_failed: cannot list folder locked: Permission denied"


def test_links_fifos_and_devices_in_a_folder_are_named_rows(tmp_path):
    """Nothing under a scanned folder is dropped silently, and link loops are not followed."""
    import os

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.png").write_bytes(encode(make_image(40, 40, 1)))
    (folder / "sub" / "loop_to_parent").symlink_to("..")
    (folder / "selfloop").symlink_to("selfloop")
    (folder / "a_link").symlink_to("b_link")
    (folder / "b_link").symlink_to("a_link")
    (folder / "dangling.png").symlink_to("nowhere.png")
    (folder / "good_link.png").symlink_to("good.png")
    (folder / "zero_link.png").symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo.png")
    (folder / ".hidden.png").symlink_to("nowhere.png")  # hidden entries stay skipped
    rows = list(detector.scan(detector.expand_paths([folder]), [StubDetector()]))
    errors = {r.path.removeprefix(f"{folder}/"): r.error for r in rows}
    assert errors == {
        "a_link": "broken_link: broken link: a_link (it loops)",
        "b_link": "broken_link: broken link: b_link (it loops)",
        "dangling.png": "broken_link: broken link: dangling.png (its target does not exist)",
        "fifo.png": "not_a_file: not a regular file: fifo.png",
        "good.png": None,
        "good_link.png": None,
        "selfloop": "broken_link: broken link: selfloop (it loops)",
        "sub/loop_to_parent": "not_a_file: a link to a folder, not followed: loop_to_parent",
        "zero_link.png": "not_a_file: not a regular file: zero_link.png",
    }
    assert [r.path for r in rows] == sorted(r.path for r in rows)


# ----------------------------------------------------------------------------- whole images
@pytest.fixture(scope="module")
def native():
    """A tiny untrained native-resolution model (32 px patches on the JPEG grid), T = 1.7."""
    from detector.core._keras import keras

    keras.utils.set_random_seed(0)
    card = tiny_card("native", "dct_spectrum", temperature=1.7, uncertain_band=(0.4, 0.6))
    assert card.spec.preprocessing.resize == "native_crop" and card.spec.input_size == 32
    return Detector(get_recipe("dct_spectrum").build(card.spec), card)


def large_picture(height: int = 600, width: int = 500) -> np.ndarray:
    """A textured picture whose top-left quarter is flat grey (so its patches score apart)."""
    image = make_image(height, width, seed=5)
    image[: height // 2, : width // 2] = 128
    return image


def test_a_large_image_scans_as_predict_scores_it_on_all_its_patches(native, tmp_path):
    large, small = tmp_path / "large.png", tmp_path / "small.png"
    large.write_bytes(encode(large_picture()))
    small.write_bytes(encode(make_image(50, 60, seed=6)))
    rows = {Path(r.path).name: r for r in detector.scan([large, small], [native], batch_size=2)}
    prep = native.spec.preprocessing
    whole = native.predict(large)
    assert len(whole.patches) == len(patch_grid(600, 500, 32, grid=8)) == 16
    assert rows["large.png"].error is None
    assert rows["large.png"].p_fake == pytest.approx(whole.p_fake, abs=1e-6)
    assert rows["large.png"].label == native.card.label_for(rows["large.png"].p_fake)
    # not the centre crop alone, which the scan used to score
    centre = native.p_fake_batch(prep.apply(detector.load_image(large))[None])[0]
    assert abs(whole.p_fake - centre) > 1e-3
    # a small image keeps its one centre crop: the same score as before
    one = native.predict(small)
    assert len(one.patches) == 1
    before = native.p_fake_batch(prep.apply(detector.load_image(small))[None])[0]
    assert rows["small.png"].p_fake == pytest.approx(before, abs=1e-6)
    assert rows["small.png"].p_fake == pytest.approx(one.p_fake, abs=1e-6)


def test_whole_image_scores_match_predict_across_model_calls(native, monkeypatch):
    import detector.core.runtime as runtime

    images = [large_picture(), make_image(40, 50, seed=1), large_picture(100, 70)]
    inputs = [model_inputs(im, native.spec.preprocessing) for im in images]
    assert [len(x) for x in inputs] == [16, 1, 12]
    assert all(x.dtype == np.uint8 for x in inputs)
    monkeypatch.setattr(runtime, "MAX_CALL_BATCH", 5)  # one image's patches span calls
    got = whole_image_p_fake(native, inputs, native.temperature)
    want = [native.predict(im).p_fake for im in images]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert whole_image_p_fake(native, [], native.temperature) == []


def test_model_inputs_are_the_views_predict_reads():
    from detector.core.patches import image_views

    image = large_picture(200, 300)
    for prep in (
        Preprocessing(size=32, resize="native_crop", grid=8),
        Preprocessing(size=32, resize="native_crop", whole_view=True),
        Preprocessing(size=32, resize="resize"),
        Preprocessing(size=32, resize="center_crop"),
    ):
        views = image_views(image, prep, max_patches=6)
        got = model_inputs(image, prep, 6)
        assert got.dtype == np.uint8 and got.shape == views.batch.shape
        np.testing.assert_array_equal(got.astype(np.float32), views.batch)


def test_an_image_whose_views_fail_is_a_model_failed_row(files, monkeypatch):
    import importlib

    scan_module = importlib.import_module("detector.scale.batch")
    real = scan_module.image_views

    def refuse_seed_2(image, prep, **kwargs):
        if np.array_equal(image, make_image(40, 40, 2)):
            raise MemoryError("simulated")
        return real(image, prep, **kwargs)

    monkeypatch.setattr(scan_module, "image_views", refuse_seed_2)
    rows = {Path(r.path).name: r for r in detector.scan(files, [StubDetector()], batch_size=3)}
    assert rows["f2.png"].error == "model_failed: MemoryError: simulated"
    assert rows["f2.png"].p_fake is None
    assert all(rows[f"f{i}.png"].p_fake == 0.5 for i in (0, 1, 4, 5, 6))
