"""The wild pool in the kit: format-neutral pixels, negative controls, the shortcut check,
content-balanced weights, the truth table's groups and leave-one-family-out data."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_starter_kit import build, photo_array

from training.balance import sample_weights, weight_table
from training.data import neutral as N
from training.data.loaders import load_starter_kit
from training.data.shortcuts import jpeg_grid_strength, kit_shortcut_report, shortcut_auc
from training.data.wild import WildImage, family_of
from training.data.wild_kit import add_wild
from training.datasets import ImageSet
from training.truth import classification_metrics, control_metrics, groups, headline

FAKE_GENERATORS = ("sd15", "sdxl", "flux1-dev", "dit", "stylegan1", "vqgan")


def _encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _exif_with_orientation() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": pixels stored unrotated
    exif[0x010F] = "Camera maker"
    return exif.tobytes()


def make_pool(root: Path, per_class: int = 40, repos: int = 8) -> list[WildImage]:
    """A wild pool with the real pool's traps: fakes PNG/WebP at gallery sizes, reals camera
    JPEGs with EXIF at other sizes; the pixels of both classes come from one generator."""
    rows = []
    for i in range(2 * per_class):
        fake = i % 2 == 0
        seed = 1000 + i
        if fake:
            side = (512, 576, 640)[i % 3]
            arr = photo_array(side, side, seed)
            fmt, ext = ("PNG", "png") if i % 4 == 0 else ("WEBP", "webp")
            data = _encode(arr, fmt, **({"quality": 90} if fmt == "WEBP" else {}))
            gen = FAKE_GENERATORS[i % len(FAKE_GENERATORS)]
            repo = f"fakes/repo{i % repos}"
        else:
            h, w = ((300, 400), (420, 560), (560, 720))[i % 3]
            arr = photo_array(h, w, seed)
            fmt, ext, gen = "JPEG", "jpg", "camera"
            data = _encode(arr, "JPEG", quality=85, exif=_exif_with_orientation())
            repo = f"reals/repo{i % repos}"
        label = "fake" if fake else "real"
        rel = f"{label}/{gen}/img{i}.{ext}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        content = ("photo", "portrait", "art")[i % 3]
        rows.append(
            WildImage(
                file=rel,
                label=label,
                label_id=int(fake),
                generator=gen,
                family=family_of(gen) if fake else "",
                source_repo=repo,
                repo_path=f"x/img{i}.{ext}",
                commit="0" * 40,
                licence="MIT",
                width=arr.shape[1],
                height=arr.shape[0],
                format=fmt,
                sha256="",
                cut=False,
                box=None,
                content=content,
                pixel_sha256="",
                note="",
            )
        )
    return rows


@pytest.fixture(scope="module")
def wild_kit(tmp_path_factory) -> tuple[Path, Path, list[WildImage]]:
    root = tmp_path_factory.mktemp("wildkit")
    pool, kit = root / "pool", root / "kit"
    rows = make_pool(pool)
    build(kit)
    add_wild(kit, pool, rows=rows, quiet=True)
    return kit, pool, rows


def _rows(kit: Path) -> list[dict]:
    with (kit / "manifest.csv").open(newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------- neutral pixels


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
@pytest.mark.parametrize("size", [(256, 256), (500, 375), (1024, 1024), (2400, 1600)])
def test_neutral_pixels_are_256_rgb_whatever_the_file(mode: str, size: tuple[int, int]):
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    arr = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    img = Image.fromarray(arr).convert(mode)
    data = _encode(np.asarray(img), "PNG") if mode != "P" else _png_p(img)
    res = N.neutral_pixels(data, np.random.default_rng(0))
    assert res.pixels.shape == (256, 256, 3) and res.pixels.dtype == np.uint8
    assert res.resample in N.SHRINK_FILTERS
    assert 0.5 - 1e-6 <= res.factor <= 1.0
    x0, y0, x1, y1 = res.window
    assert x1 - x0 == y1 - y0  # a square window: no aspect cue


def _png_p(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_neutral_pixels_refuse_small_images_and_are_deterministic():
    with pytest.raises(ValueError, match="under 256 px"):
        N.neutral_pixels(_encode(photo_array(200, 300, 1), "PNG"), np.random.default_rng(0))
    data = _encode(photo_array(600, 800, 1), "JPEG", quality=80)
    a = N.neutral_pixels(data, np.random.default_rng(5)).pixels
    b = N.neutral_pixels(data, np.random.default_rng(5)).pixels
    c = N.neutral_pixels(data, np.random.default_rng(6)).pixels
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_neutral_pixels_ignore_exif_orientation():
    arr = photo_array(512, 768, 2)  # landscape stored; the EXIF flag says "rotate 90"
    data = _encode(arr, "JPEG", quality=95, exif=_exif_with_orientation())
    plain = _encode(arr, "JPEG", quality=95)
    rng = np.random.default_rng
    assert np.array_equal(
        N.neutral_pixels(data, rng(1)).pixels, N.neutral_pixels(plain, rng(1)).pixels
    )


def test_neutral_shrink_erases_the_jpeg_grid():
    arr = photo_array(768, 768, 4)
    decoded = np.asarray(Image.open(io.BytesIO(_encode(arr, "JPEG", quality=40))).convert("L"))
    assert jpeg_grid_strength(decoded) > 1.3  # the camera's grid shows
    data = _encode(arr, "JPEG", quality=40)
    out = N.neutral_pixels(data, np.random.default_rng(0)).pixels
    gray = np.asarray(Image.fromarray(out).convert("L"))
    assert jpeg_grid_strength(gray) < 1.1


def test_jpeg_grid_strength_ignores_a_4x_enlargement():
    # a 4x enlargement repeats every 4 px, so 8 px borders and the columns midway between them
    # look alike: that is an interpolation (or upscaler) trace, not a JPEG grid
    small = photo_array(96, 96, 7)
    for method in (Image.BICUBIC, Image.BILINEAR, Image.NEAREST):
        up = np.asarray(Image.fromarray(small).resize((384, 384), method).convert("L"))
        assert 0.9 < jpeg_grid_strength(up) < 1.1, method
    # ... while the same enlargement saved as a JPEG shows its 8x8 grid
    big = Image.fromarray(small).resize((384, 384), Image.BICUBIC)
    decoded = np.asarray(Image.open(io.BytesIO(_encode(np.asarray(big), "JPEG", quality=50))))
    assert jpeg_grid_strength(np.asarray(Image.fromarray(decoded).convert("L"))) > 1.2


# ---------------------------------------------------------------------- controls


def test_controls_keep_the_size_and_do_what_they_say():
    arr = photo_array(256, 256, 5)
    larger = photo_array(512, 512, 5)
    rng = np.random.default_rng
    for kind in N.CONTROLS:
        out, params = N.make_control(arr, kind, rng(0), larger)
        assert out.shape == arr.shape, kind
        assert params
    # an enlargement is smooth: neighbouring pixels differ less than in the source
    up, _ = N.make_control(arr, "enlarge_bicubic_4x", rng(0))
    assert (
        np.abs(np.diff(up.astype(float), axis=1)).mean()
        < np.abs(np.diff(arr.astype(float), axis=1)).mean() / 2
    )
    jpg, params = N.make_control(arr, "jpeg_random_quality", rng(0))
    assert 50 <= int(params.split("=")[1]) <= 95 and not np.array_equal(jpg, arr)
    with pytest.raises(ValueError, match="twice the size"):
        N.make_control(arr, "shrink_bicubic_0.5x", rng(0))
    assert "shrink_bicubic_0.5x" not in N.control_kinds(has_larger=False)
    with pytest.raises(ValueError, match="unknown control"):
        N.make_control(arr, "sharpen", rng(0))


# ---------------------------------------------------------------------- the kit


def test_wild_rows_split_by_repository_with_controls(wild_kit):
    kit, _, pool = wild_kit
    rows = _rows(kit)
    wild = [r for r in rows if r["origin"] == "wild"]
    assert len(wild) == len(pool)
    split_of_repo = defaultdict(set)
    for r in wild:
        split_of_repo[r["source_group"]].add(r["split"])
    assert all(len(s) == 1 for s in split_of_repo.values())  # a repository is never split
    assert {r["split"] for r in wild} == {"train", "val", "test"}
    controls = [r for r in rows if r["origin"] == "control"]
    assert controls and all(r["label"] == "real" and r["control"] in N.CONTROLS for r in controls)
    assert {r["control"] for r in controls} == set(N.CONTROLS)
    parents = {r["file"]: r["split"] for r in rows}
    assert all(parents[r["parent"]] == r["split"] for r in controls)  # same split as parent
    package = [r for r in rows if r["origin"] == "package"]
    assert package and all(r["content"] == "photo" for r in package)
    assert all(r["family"] in ("upscaler", "style_transfer") for r in package if r["generator"])
    sizes = {}
    for r in rows:
        with Image.open(kit / r["file"]) as img:
            assert (img.format, img.mode) == ("PNG", "RGB") and not img.info.get("exif")
            sizes[r["file"]] = img.size
    assert all(sizes[r["file"]] == (256, 256) for r in wild)
    assert all(sizes[r["file"]] == sizes[r["parent"]] for r in controls)  # the parent's size


def test_loader_carries_content_origin_family_and_control(wild_kit):
    kit, _, _ = wild_kit
    samples = load_starter_kit(kit)
    by_origin = defaultdict(list)
    for s in samples:
        by_origin[s.origin].append(s)
    assert set(by_origin) == {"package", "wild", "control"}
    assert {s.content for s in by_origin["wild"]} == {"photo", "portrait", "art"}
    assert {s.family for s in by_origin["wild"] if s.label == 1} >= {"diffusion_unet", "gan"}
    assert all(s.control for s in by_origin["control"])


def test_add_wild_is_idempotent(wild_kit, tmp_path):
    kit, pool, rows = wild_kit
    before = (kit / "manifest.csv").read_bytes()
    add_wild(kit, pool, rows=rows, quiet=True)
    assert (kit / "manifest.csv").read_bytes() == before


def test_train_views_add_train_rows_only(wild_kit, tmp_path):
    """--wild-train-views 3: each wild train image gets up to two more, different views; the
    validation and test rows, the first views and the controls are those of the one-view kit."""
    import shutil

    kit, pool, rows = wild_kit
    three = tmp_path / "kit3"
    shutil.copytree(kit, three)
    add_wild(three, pool, rows=rows, quiet=True, train_views=3)
    one, many = _rows(kit), _rows(three)
    extra = [r for r in many if r["gen_params"].startswith("view=")]
    assert extra and {r["split"] for r in extra} == {"train"}
    assert {r["origin"] for r in extra} == {"wild"}
    key = lambda r: (r["file"], r["photo_id"], r["split"])  # noqa: E731
    assert sorted(map(key, one)) == sorted(key(r) for r in many if r not in extra)
    per_image = Counter(
        r["photo_id"] for r in many if r["origin"] == "wild" and r["split"] == "train"
    )
    assert max(per_image.values()) == 3
    for pid in per_image:  # the views of one image are different pixels
        files = [r["file"] for r in many if r["photo_id"] == pid and r["origin"] == "wild"]
        assert len(files) == len(set(files))
    with pytest.raises(ValueError, match="train_views"):
        add_wild(three, pool, rows=rows, quiet=True, train_views=0)


def test_missing_wild_files_are_named(tmp_path):
    pool = tmp_path / "pool"
    rows = make_pool(pool, per_class=20)
    build(tmp_path / "kit")
    (pool / rows[3].file).unlink()
    with pytest.raises(FileNotFoundError, match="fetch-wild"):
        add_wild(tmp_path / "kit", pool, rows=rows, quiet=True)


def test_no_format_shortcut_in_the_kit_but_one_in_the_raw_files(wild_kit):
    """File type, size, metadata and JPEG grid separate the raw files perfectly; after the
    kit's treatment a classifier given only those traits is near chance."""
    kit, pool, rows = wild_kit
    raw = shortcut_auc([pool / r.file for r in rows], np.array([r.label_id for r in rows]))
    assert raw > 0.95
    report = kit_shortcut_report(kit, splits=("train", "val", "test"))
    assert report["wild"] < 0.70, report


# ---------------------------------------------------------------------- weights


def test_sample_weights_balance_content_between_classes():
    labels = np.array([1] * 60 + [0] * 20 + [1] * 10 + [0] * 40 + [0] * 30 + [1] * 100 + [0] * 100)
    origins = ["wild"] * 130 + ["control"] * 30 + ["package"] * 200
    contents = ["portrait"] * 80 + ["photo"] * 50 + ["photo"] * 30 + ["photo"] * 200
    w = sample_weights(labels, origins, contents)
    assert w.sum() == pytest.approx(len(labels))
    table = weight_table(labels, origins, contents, w)
    for key in ("wild/portrait", "wild/photo", "package/photo"):
        assert table[key]["fake"] == pytest.approx(table[key]["real"], abs=1e-3)
    assert table["control/photo"]["real"] == pytest.approx(0.15, abs=1e-3)
    wild_total = sum(table[k][c] for k in ("wild/portrait", "wild/photo") for c in table[k])
    assert wild_total == pytest.approx(0.45, abs=1e-3)
    # a real portrait weighs as much in total as the (three times more) fake portraits
    assert w[60:80].sum() == pytest.approx(w[:60].sum())


# ---------------------------------------------------------------------- truth table


def _set(labels, origins, contents=None, families=None, controls=None) -> ImageSet:
    n = len(labels)
    return ImageSet(
        [np.zeros((4, 4, 3), np.uint8)] * n,
        np.array(labels),
        [""] * n,
        [""] * n,
        [""] * n,
        contents or ["photo"] * n,
        origins,
        families or [""] * n,
        controls or [""] * n,
    )


def test_truth_groups_and_metrics():
    test = _set(
        [1, 0, 1, 0, 0, 0],
        ["package", "package", "wild", "wild", "control", "control"],
        controls=["", "", "", "", "jpeg_random_quality", "enlarge_bicubic_2x"],
        families=["upscaler", "", "gan", "", "", ""],
    )
    val = _set([1, 0], ["wild", "wild"])
    g = groups({"test": test, "val": val})
    assert set(g) == {"kit_test", "wild_test", "controls_test", "wild_val"}
    assert len(g["controls_test"]) == 2 and set(g["controls_test"].labels) == {0}
    c = control_metrics(g["controls_test"], np.array([0.9, 0.1]), 0.5)
    assert c["false_positive_rate"] == 0.5
    assert c["false_positive_rate_per_control"] == {
        "enlarge_bicubic_2x": 0.0,
        "jpeg_random_quality": 1.0,
    }
    data = _set(
        [1, 1, 0, 0, 1, 0],
        ["wild"] * 6,
        contents=["photo", "photo", "photo", "photo", "portrait", "portrait"],
        families=["gan", "gan", "", "", "diffusion_unet", ""],
    )
    m = classification_metrics(data, np.array([0.9, 0.4, 0.2, 0.6, 0.3, 0.7]), 0.5, True)
    assert m["roc_auc_per_content"] == {"photo": 0.75, "portrait": 0.0}
    assert m["recall_per_family"] == {"diffusion_unet": 0.0, "gan": 0.5}
    assert m["false_positive_rate"] == pytest.approx(2 / 3, abs=1e-4)
    row = headline({"wild_test": {"clean": m}}, {"families": {"gan": {"recall": 0.5}}})
    assert row["wild_photo_auc"] == 0.75 and row["lofo_min_recall"] == 0.5
    assert row["kit_test_auc"] is None


# ---------------------------------------------------------------------- commands and LOFO


def test_add_wild_command_needs_a_pool(tmp_path, monkeypatch, capsys):
    from training.data.__main__ import main

    monkeypatch.setenv("FAKEDETECT_WILD", str(tmp_path / "absent"))
    monkeypatch.setattr("training.data.wild.default_wild_dir", lambda: None)
    assert main(["add-wild", str(tmp_path)]) == 2
    assert "fetch-wild" in capsys.readouterr().err


def test_wild_limit_spreads_over_repositories():
    from training.data.__main__ import _spread
    from training.data.wild import read_wild_manifest

    rows = read_wild_manifest()
    chosen = _spread(rows, 12)
    assert sum(r.label_id for r in chosen) == 12 and len(chosen) == 24
    assert len({r.source_repo for r in chosen if r.label_id}) >= 6  # not one repo's files


def test_lofo_sets_collect_the_left_out_family_and_the_test_reals(wild_kit):
    from training.config import TrainConfig
    from training.lofo import HELD_OUT, false_alarm_set, held_out_fakes

    kit, _, _ = wild_kit
    manifest = [r for r in _rows(kit) if r["label"] == "fake" and r["family"] == "gan"]
    assert len({r["split"] for r in manifest}) >= 2  # the fixture spreads GANs over splits
    config = TrainConfig(recipe="simple_cnn", data=str(kit), out="", exclude_families=["gan"])
    fakes, by_split = held_out_fakes(config, "gan")
    # every GAN fake of the kit, whatever its split: none was trained or validated on
    assert len(fakes) == len(manifest) and set(fakes.families) == {"gan"}
    assert set(fakes.labels) == {1} and sum(by_split.values()) == len(manifest)
    assert by_split == dict(Counter(r["split"] for r in manifest))
    assert held_out_fakes(config, "no_such_family") == (None, {})
    assert HELD_OUT == "every split"
    test = _set(
        [1, 0, 0, 1],
        ["wild", "wild", "control", "package"],
        families=["gan", "", "", "upscaler"],
        controls=["", "", "jpeg_random_quality", ""],
    )
    reals = false_alarm_set({"test": test})
    assert sorted(reals.origins) == ["control", "wild"] and set(reals.labels) == {0}


def test_lofo_measures_old_rows_again_without_training(wild_kit, tmp_path, monkeypatch):
    import json

    from training import lofo
    from training.config import TrainConfig

    kit, _, _ = wild_kit
    out = tmp_path / "lofo"
    (out / "without_gan").mkdir(parents=True)
    (out / "without_gan" / "card.json").write_text("{}")
    old = {"n": 3, "recall": 0.5, "train_seconds": 12.0}  # measured on the test split only
    done = {"n": 4, "held_out": lofo.HELD_OUT, "recall": 1.0}
    (out / "lofo.json").write_text(json.dumps({"families": {"gan": old, "upscaler": done}}))
    calls = []
    monkeypatch.setattr(lofo, "remeasure_family", lambda c, f, o, r: calls.append(("re", f)) or {})
    monkeypatch.setattr(lofo, "run_family", lambda c, f, o, v=0: calls.append(("train", f)) or {})
    config = TrainConfig(recipe="simple_cnn", data=str(kit), out="")
    lofo.run_lofo(config, out, ("gan", "upscaler", "diffusion_unet"))
    assert calls == [("re", "gan"), ("train", "diffusion_unet")]


def test_exclude_family_drops_its_fakes_from_training_and_validation_only(wild_kit):
    from training.config import TrainConfig
    from training.train import load_splits

    kit, _, _ = wild_kit
    config = TrainConfig(recipe="simple_cnn", data=str(kit), out="", exclude_families=["gan"])
    splits = load_splits(config)
    for name in ("train", "val"):
        data = splits[name]
        pairs = zip(data.families, data.labels, strict=True)
        assert not any(f == "gan" and y == 1 for f, y in pairs)
    everything = load_splits(TrainConfig(recipe="simple_cnn", data=str(kit), out=""))
    assert sum(f == "gan" for f in everything["train"].families) > 0
    assert splits["test"].families == everything["test"].families  # test keeps the family


def test_auc_interval_brackets_the_auc_and_narrows_with_more_images():
    from sklearn.metrics import roc_auc_score

    from training.truth import auc_interval

    rng = np.random.default_rng(0)

    def sample(n):  # fakes score higher on average: a true ROC-AUC of about 0.76
        y = np.r_[np.ones(n), np.zeros(n)].astype(int)
        return y, np.r_[rng.normal(1.0, 1.0, n), rng.normal(0.0, 1.0, n)]

    y, p = sample(40)
    low, high = auc_interval(y, p)
    assert low < roc_auc_score(y, p) < high
    assert 0.1 < high - low < 0.4  # 40 + 40 images leave a wide interval
    y2, p2 = sample(2000)
    low2, high2 = auc_interval(y2, p2)
    assert high2 - low2 < 0.05 and low2 < 0.76 < high2
    assert auc_interval(y, p) == [low, high]  # seeded: the same interval every time
    assert auc_interval(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1])) == [1.0, 1.0]
    assert auc_interval(np.array([0, 0]), np.array([0.3, 0.4])) is None
    # ties count half, as in roc_auc_score
    assert auc_interval(np.array([1, 0]), np.array([0.5, 0.5]), resamples=10) == [0.5, 0.5]


def test_model_table_shows_truth_columns_and_reference_rows(tmp_path):
    import json

    from training.model_table import table

    ref = tmp_path / "ref"
    ref.mkdir()
    truth = {
        "wild_test": {
            "clean": {
                "roc_auc": 0.61,
                "roc_auc_ci95": [0.523, 0.694],
                "roc_auc_per_content": {"photo": 0.7},
            }
        },
        "controls_test": {"clean": {"false_positive_rate": 0.2}},
        "wild_files_test": {"clean": {"roc_auc": 0.58, "roc_auc_ci95": [0.491, 0.667]}},
    }
    doc = {"name": "probe", "recipe": "linear_probe", "backbone": "mobilenet_v2"}
    (ref / "probe.json").write_text(json.dumps({**doc, "metrics": {"truth": truth}}))
    models = tmp_path / "models"
    models.mkdir()
    text = table(str(models), reference=ref)
    assert "wild test" in text.splitlines()[0] and "controls flagged" in text.splitlines()[0]
    row = text.splitlines()[-1]
    assert row.startswith("| `probe` | `linear_probe` |")
    assert "0.610 (0.52-0.69)" in row and "0.700" in row and "0.200" in row and "reference" in row
    header = text.splitlines()[0].split(" | ")
    cells = row.split(" | ")
    assert cells[header.index("wild files as published")] == "0.580 (0.49-0.67)"
    (ref / "probe.json").write_text(
        json.dumps({**doc, "metrics": {"truth": truth | {"wild_files_test": {}}}})
    )
    row = table(str(models), reference=ref).splitlines()[-1].split(" | ")
    assert row[header.index("wild files as published")] == "-"  # not measured


def test_choose_ranks_models_and_averages_on_validation_only():
    from training.choose import ValScores, markdown, rank

    rng = np.random.default_rng(0)
    n = 60
    labels = np.r_[np.ones(n), np.zeros(n), np.zeros(n), np.ones(n), np.zeros(n)].astype(int)
    origins = ["wild"] * (2 * n) + ["control"] * n + ["package"] * (2 * n)
    truth = labels * 2.0 - 1.0

    def noisy(scale):  # a calibrated model: log-odds = signal + independent noise
        z = truth + rng.normal(0.0, scale, len(labels))
        return 1 / (1 + np.exp(-z))

    a, b = noisy(1.5), noisy(1.5)
    flags_controls = a.copy()
    flags_controls[2 * n : 3 * n] = 0.9  # calls every control fake
    scores = {
        "a": ValScores(a, 0.5),
        "b": ValScores(b, 0.5),
        "c": ValScores(flags_controls, 0.5),
    }
    ranking = rank(scores, labels, origins, max_members=2)
    assert len(ranking) == 3 + 3
    best = ranking[0]
    # two independent errors average out: the pair beats each alone
    assert best.members == ("a", "b")
    alone = {c.members[0]: c for c in ranking if len(c.members) == 1}
    assert best.wild_auc > max(alone["a"].wild_auc, alone["b"].wild_auc)
    c = alone["c"]  # as good as a on wild images, but flags every control
    assert c.controls_flagged == 1.0 and c.wild_auc == alone["a"].wild_auc
    assert c.score == pytest.approx((c.wild_auc + c.val_auc) / 2 - 1.0, abs=1e-3)
    assert all(x.score > c.score for x in ranking if "c" not in x.members)
    assert best.wild_auc_ci95[0] < best.wild_auc < best.wild_auc_ci95[1]
    assert "`a` + `b`" in markdown(ranking).splitlines()[2]
    with pytest.raises(ValueError, match="controls"):
        rank(scores, labels, ["wild"] * len(labels))


def test_wild_files_reads_the_published_files_of_a_split(tmp_path):
    from training.truth import wild_files

    pool = tmp_path / "wild"
    (pool / "fake").mkdir(parents=True)
    (pool / "real").mkdir()
    (pool / "fake" / "a.webp").write_bytes(_encode(photo_array(300, 500, 1), "WEBP"))
    (pool / "real" / "b.jpg").write_bytes(_encode(photo_array(600, 400, 2), "JPEG", quality=90))
    kit = tmp_path / "kit"
    kit.mkdir()
    cols = ["file", "label_id", "split", "origin", "original_file", "generator", "source_package"]
    cols += ["content", "family"]
    rows = [
        ["x.png", "1", "test", "wild", "fake/a.webp", "sdxl", "wild", "art", "diffusion_unet"],
        ["y.png", "0", "test", "wild", "real/b.jpg", "", "wild", "photo", ""],
        ["z.png", "0", "val", "wild", "real/b.jpg", "", "wild", "photo", ""],
        ["t.png", "0", "test", "package", "", "", "lomiri", "photo", ""],
    ]
    with (kit / "manifest.csv").open("w", newline="") as f:
        csv.writer(f).writerows([cols, *rows])
    files = wild_files(kit, pool)
    assert [im.shape for im in files.images] == [(300, 500, 3), (600, 400, 3)]  # as published
    assert files.labels.tolist() == [1, 0] and files.contents == ["art", "photo"]
    assert files.families == ["diffusion_unet", ""] and set(files.origins) == {"wild"}
    rows[0][4] = "../outside.png"  # a manifest path never leaves the pool
    with (kit / "manifest.csv").open("w", newline="") as f:
        csv.writer(f).writerows([cols, *rows])
    with pytest.raises(FileNotFoundError, match="not in the wild pool"):
        wild_files(kit, pool)


def test_truth_command_prints_the_published_files_figure(wild_kit, trained_dir, tmp_path, capsys):
    """`python -m training truth MODEL --data KIT --wild-files DIR` measures the kit's groups and
    the wild test files as published, prints both, and writes them into the card on request."""
    import json
    import shutil

    from training.__main__ import main

    kit, pool, _ = wild_kit
    models = tmp_path / "models"
    shutil.copytree(trained_dir / "tiny_cnn", models / "tiny_cnn")
    argv = ["truth", "tiny_cnn", "--data", str(kit), "--models-dir", str(models)]
    assert main([*argv, "--wild-files", str(pool), "--update-card"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out[out.index("{") :])
    card = json.loads((models / "tiny_cnn" / "card.json").read_text())
    files = card["metrics"]["truth"]["wild_files_test"]["clean"]
    assert files["n_fake"] + files["n_real"] == sum(
        1 for r in _rows(kit) if r["split"] == "test" and r["origin"] == "wild"
    )
    assert 0.0 <= files["roc_auc"] <= 1.0
    assert {"wild_test", "controls_test", "kit_test"} <= set(card["metrics"]["truth"])
    assert shown["wild_files_auc"] == files["roc_auc"]
    assert shown["wild_files_fpr"] == files["false_positive_rate"]
    assert shown["wild_test_auc"] == card["metrics"]["truth"]["wild_test"]["clean"]["roc_auc"]


def test_add_wild_command_takes_the_shrink_range(wild_kit, tmp_path, capsys, monkeypatch):
    import shutil

    from training.data import wild
    from training.data.__main__ import main

    kit, pool, rows = wild_kit
    monkeypatch.setattr(wild, "read_wild_manifest", lambda: rows)
    mild = tmp_path / "mild"
    shutil.copytree(kit, mild)
    argv = ["add-wild", str(mild), "--wild", str(pool)]
    assert main([*argv, "--wild-shrink", "0.85", "0.95"]) == 0
    wild = [r for r in _rows(mild) if r["origin"] == "wild"]
    scales = [float(r["scale"]) for r in wild]
    # a file smaller than the window is shrunk less (up to not at all), never more
    assert wild and min(scales) >= 0.85 - 1e-3 and max(scales) <= 1.0
    assert sum(s <= 0.95 + 1e-3 for s in scales) > len(scales) // 2
    assert main([*argv, "--wild-shrink", "0.9", "1.2"]) == 2
    assert "--wild-shrink needs" in capsys.readouterr().err


def test_add_wild_command_takes_the_context_range(wild_kit, tmp_path, capsys, monkeypatch):
    import shutil

    from training.data import wild
    from training.data import wild_kit as wk
    from training.data.__main__ import main

    kit, pool, rows = wild_kit
    monkeypatch.setattr(wild, "read_wild_manifest", lambda: rows)
    seen = []
    real = wk.add_wild

    def spy(*args, **kwargs):
        seen.append(kwargs["settings"])
        return real(*args, **kwargs)

    monkeypatch.setattr(wk, "add_wild", spy)
    near = tmp_path / "near"
    shutil.copytree(kit, near)
    argv = ["add-wild", str(near), "--wild", str(pool)]
    assert main([*argv, "--wild-context", "3", "4", "--wild-shrink", "0.8", "0.9"]) == 0
    assert seen[-1].context == (3.0, 4.0) and seen[-1].factor == (0.8, 0.9)
    assert main([*argv, "--wild-context", "0.5", "2"]) == 2
    assert "--wild-context needs" in capsys.readouterr().err


def test_a_larger_context_reads_a_gallery_image_near_its_own_scale():
    """With the default context a 1024 px file is shrunk as a whole before its window is cut
    (the window then lies within the first 768 px); with context 3-4 it is not, and windows
    reach across the whole file."""
    data = _encode(photo_array(1024, 1024, 3), "PNG")
    default = [N.neutral_pixels(data, np.random.default_rng(i)).window for i in range(12)]
    near = N.NeutralSettings(context=(3.0, 4.0))
    native = [N.neutral_pixels(data, np.random.default_rng(i), near).window for i in range(12)]
    assert max(max(box[2:]) for box in default) <= 768
    assert max(max(box[2:]) for box in native) > 800
