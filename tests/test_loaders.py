"""Loaders of public dataset layouts, on tiny generated fixtures in each exact layout."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.loaders import (
    DatasetLayoutError,
    Sample,
    detect_layout,
    load_cifake,
    load_csv,
    load_dataset,
    load_faceforensics,
    load_kaggle_deepfake,
    load_starter_kit,
    parse_label,
)


def _png(path: Path, seed: int = 0, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def _fill(folder: Path, n: int, prefix: str = "img", ext: str = ".png") -> list[Path]:
    return [_png(folder / f"{prefix}{i:03d}{ext}", seed=i) for i in range(n)]


def _counts(samples: list[Sample]) -> Counter:
    return Counter((s.split, s.label) for s in samples)


# ---------------------------------------------------------------------------- CIFAKE


@pytest.fixture
def cifake(tmp_path: Path) -> Path:
    root = tmp_path / "cifake"
    _fill(root / "train" / "REAL", 10, "r")
    _fill(root / "train" / "FAKE", 10, "f")
    _fill(root / "test" / "REAL", 4, "r")
    _fill(root / "test" / "FAKE", 3, "f")
    return root


def test_cifake_labels_splits_and_val_carved_from_train(cifake: Path):
    s = load_cifake(cifake, seed=0, val_fraction=0.2)
    assert len(s) == 27
    assert _counts(s) == {
        ("train", 0): 8,
        ("train", 1): 8,
        ("val", 0): 2,
        ("val", 1): 2,
        ("test", 0): 4,
        ("test", 1): 3,
    }
    for x in s:
        assert x.label == (1 if x.path.parent.name == "FAKE" else 0)
        assert x.source == "cifake"
        assert (x.generator is None) == (x.label == 0)
    # val only ever holds former train images
    assert all(x.path.parent.parent.name == "train" for x in s if x.split == "val")


def test_cifake_val_is_deterministic_and_depends_on_seed(cifake: Path):
    def val(seed):
        return {
            x.path.name
            for x in load_cifake(cifake, seed=seed, val_fraction=0.3)
            if x.split == "val"
        }

    assert val(1) == val(1)
    assert any(val(s) != val(1) for s in (2, 3, 4))


def test_cifake_case_insensitive_and_nested_root(tmp_path: Path):
    root = tmp_path / "download" / "cifake-real-and-ai"
    _fill(root / "Train" / "real", 2)
    _fill(root / "Train" / "fake", 2)
    _fill(root / "Test" / "Real", 1)
    _fill(root / "Test" / "Fake", 1)
    s = load_cifake(tmp_path / "download", val_fraction=0)
    assert _counts(s) == {("train", 0): 2, ("train", 1): 2, ("test", 0): 1, ("test", 1): 1}
    assert detect_layout(tmp_path / "download") == "cifake"


def test_cifake_wrong_layout_names_expected_and_found(tmp_path: Path):
    _fill(tmp_path / "train" / "REAL", 1)
    _fill(tmp_path / "validation" / "REAL", 1)
    with pytest.raises(DatasetLayoutError) as e:
        load_cifake(tmp_path)
    msg = str(e.value)
    assert "train/FAKE" in msg and "test/REAL" in msg  # what was expected
    assert "validation/" in msg and "train/" in msg  # what was found


# ---------------------------------------------------------------------------- Kaggle


def test_kaggle_deepfake_layout(tmp_path: Path):
    root = tmp_path / "Dataset"
    _fill(root / "Train" / "Real", 3, ext=".jpg")
    _fill(root / "Train" / "Fake", 4, ext=".jpg")
    _fill(root / "Validation" / "Real", 2)
    _fill(root / "Validation" / "Fake", 1)
    _fill(root / "Test" / "Real", 1)
    _fill(root / "Test" / "Fake", 2)
    (root / "Test" / "Fake" / "notes.txt").write_text("not an image")
    s = load_kaggle_deepfake(tmp_path)  # the archive's single top folder is entered
    assert _counts(s) == {
        ("train", 0): 3,
        ("train", 1): 4,
        ("val", 0): 2,
        ("val", 1): 1,
        ("test", 0): 1,
        ("test", 1): 2,
    }
    assert all(x.label == (x.path.parent.name == "Fake") for x in s)
    assert {x.source for x in s} == {"kaggle-deepfake"}
    assert detect_layout(root) == "kaggle_deepfake"
    assert load_dataset(root) == s


def test_kaggle_wrong_layout(tmp_path: Path):
    _fill(tmp_path / "Train" / "Real", 1)
    _fill(tmp_path / "Train" / "Fake", 1)
    _fill(tmp_path / "Test" / "Real", 1)
    with pytest.raises(DatasetLayoutError, match=r"Train, Validation, Test.*found Test/, Train/"):
        load_kaggle_deepfake(tmp_path)


# ---------------------------------------------------------------------------- FaceForensics++


def _ff_tree(root: Path, frames: int = 2) -> None:
    pairs = [("000", "003"), ("003", "000"), ("001", "002"), ("002", "001")]
    pairs += [(f"{i:03d}", f"{i + 1:03d}") for i in range(10, 40, 2)]
    vids = sorted({a for a, _ in pairs} | {b for _, b in pairs})
    for v in vids:
        for f in range(frames):
            _png(root / "Original" / v / f"{f:04d}.png", seed=f)
    for method in ("Deepfakes", "FaceSwap", "NeuralTextures"):
        for a, b in pairs:
            for f in range(frames):
                _png(root / method / f"{a}_{b}" / f"{f:04d}.png", seed=f)


def test_faceforensics_labels_and_split_by_video(tmp_path: Path):
    _ff_tree(tmp_path)
    s = load_faceforensics(tmp_path, seed=0)
    n_orig = len(list((tmp_path / "Original").rglob("*.png")))
    assert sum(x.label == 0 for x in s) == n_orig
    assert sum(x.label == 1 for x in s) == 3 * 19 * 2
    assert {x.generator for x in s if x.label} == {"Deepfakes", "FaceSwap", "NeuralTextures"}
    assert all(
        x.generator is None and x.source == "faceforensics/Original" for x in s if not x.label
    )
    # every frame of a video, and of its paired videos, lands in one split
    split_of_video: dict[str, set] = {}
    for x in s:
        for v in x.path.parent.name.split("_"):
            split_of_video.setdefault(v, set()).add(x.split)
    assert all(len(v) == 1 for v in split_of_video.values())
    assert split_of_video["000"] == split_of_video["003"]
    assert {x.split for x in s} == {"train", "val", "test"}
    c = Counter(x.split for x in s)
    assert c["train"] > c["val"] and c["train"] > c["test"]


def test_faceforensics_split_is_deterministic_by_seed(tmp_path: Path):
    _ff_tree(tmp_path, frames=1)
    a = load_faceforensics(tmp_path, seed=0)
    assert a == load_faceforensics(tmp_path, seed=0)
    assert any(load_faceforensics(tmp_path, seed=s) != a for s in (1, 2, 3))


def test_faceforensics_without_video_ids_splits_by_file(tmp_path: Path):
    _fill(tmp_path / "original", 20, "face")
    _fill(tmp_path / "face2face", 20, "face")
    s = load_faceforensics(tmp_path, seed=0)
    c = Counter(x.split for x in s)
    assert c == {"train": 28, "val": 6, "test": 6}
    assert {x.generator for x in s if x.label} == {"Face2Face"}
    assert detect_layout(tmp_path) == "faceforensics"


def test_faceforensics_wrong_layout(tmp_path: Path):
    _fill(tmp_path / "Deepfakes", 2)
    with pytest.raises(DatasetLayoutError, match="expected a folder Original"):
        load_faceforensics(tmp_path)


def test_faceforensics_videos_only_hint(tmp_path: Path):
    (tmp_path / "Original").mkdir()
    (tmp_path / "Original" / "000.mp4").write_bytes(b"\0")
    (tmp_path / "Deepfakes").mkdir()
    (tmp_path / "Deepfakes" / "000_003.mp4").write_bytes(b"\0")
    with pytest.raises(DatasetLayoutError, match="extract frames"):
        load_faceforensics(tmp_path)


# ---------------------------------------------------------------------------- CSV


def test_csv_labels_paths_and_splits(tmp_path: Path):
    a = _png(tmp_path / "imgs" / "a.png")
    _png(tmp_path / "imgs" / "b.png", 1)
    _png(tmp_path / "imgs" / "c.png", 2)
    absolute = _png(tmp_path / "elsewhere" / "d.png", 3)
    p = tmp_path / "list.csv"
    p.write_text(
        "path,label,split\n"
        "imgs/a.png,fake,train\n"
        "imgs/b.png,0,validation\n"
        "imgs/c.png,REAL,test\n"
        f"{absolute},1,test\n"
    )
    s = load_csv(p)
    by_name = {x.path.name: x for x in s}
    assert by_name["a.png"] == Sample(a, 1, "train", "csv", None)
    assert (by_name["b.png"].label, by_name["b.png"].split) == (0, "val")
    assert (by_name["c.png"].label, by_name["c.png"].split) == (0, "test")
    assert by_name["d.png"].path == absolute and by_name["d.png"].label == 1
    assert load_dataset(p) == s
    assert load_dataset(tmp_path) == s  # the one CSV of a folder is found


def test_csv_without_split_and_with_extra_columns(tmp_path: Path):
    p = tmp_path / "x.csv"
    p.write_text("Path,Label,Generator\nx.png,1,sdxl\ny.png,0,\n")
    s = load_csv(p)
    assert [(x.path.name, x.label, x.split, x.generator) for x in s] == [
        ("x.png", 1, "train", "sdxl"),
        ("y.png", 0, "train", None),
    ]


def test_csv_bad_label_and_missing_columns(tmp_path: Path):
    p = tmp_path / "bad.csv"
    p.write_text("path,label\na.png,maybe\n")
    with pytest.raises(DatasetLayoutError, match=r"line 2.*'maybe'"):
        load_csv(p)
    q = tmp_path / "cols.csv"
    q.write_text("file,class\na.png,1\n")
    with pytest.raises(DatasetLayoutError, match=r"expected columns path,label.*found \['file'"):
        load_csv(q)


@pytest.mark.parametrize(
    "value,expected",
    [("1", 1), ("fake", 1), ("FAKE", 1), (" Real ", 0), ("0", 0), ("true", 1), ("false", 0)],
)
def test_parse_label(value, expected):
    assert parse_label(value) == expected


# ---------------------------------------------------------------------------- starter kit


def _fake_kit(root: Path) -> None:
    rows = []
    for split in ("train", "val", "test", "test_ood"):
        for i in range(2):
            real = f"images/{split}/real/r{i}.png"
            fake = f"images/{split}/fake/f{i}.png"
            _png(root / real, i)
            _png(root / fake, i + 10)
            base = {
                "split": split,
                "source_group": "gcompris",
                "source_package": "gcompris-qt-data",
            }
            rows.append({**base, "file": real, "label": "real", "label_id": 0, "generator": ""})
            rows.append(
                {
                    **base,
                    "file": fake,
                    "label": "fake",
                    "label_id": 1,
                    "generator": "esrgan-slim-x2",
                }
            )
    with (root / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*list(rows[0]), "parent"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def test_starter_kit_loader(tmp_path: Path):
    _fake_kit(tmp_path)
    s = load_starter_kit(tmp_path)
    assert len(s) == 16
    assert _counts(s) == {
        (sp, lab): 2 for sp in ("train", "val", "test", "test_ood") for lab in (0, 1)
    }
    assert [x.split for x in s][:4] == ["train"] * 4  # sorted by split order
    assert all((x.generator == "esrgan-slim-x2") == (x.label == 1) for x in s)
    assert {x.source for x in s} == {"starter-kit/gcompris"}
    assert detect_layout(tmp_path) == "starter_kit"
    assert load_dataset(tmp_path) == s
    assert load_dataset(tmp_path / "manifest.csv") == s


def test_starter_kit_missing_manifest_or_files(tmp_path: Path):
    with pytest.raises(DatasetLayoutError, match=r"expected .*manifest\.csv"):
        load_starter_kit(tmp_path)
    _fake_kit(tmp_path)
    (tmp_path / "images" / "val" / "fake" / "f1.png").unlink()
    with pytest.raises(DatasetLayoutError, match="1 files of the manifest are missing"):
        load_starter_kit(tmp_path)
    assert len(load_starter_kit(tmp_path, check_files=False)) == 16


# ---------------------------------------------------------------------------- detection


def test_load_dataset_unknown_layout_lists_expected_and_found(tmp_path: Path):
    _fill(tmp_path / "cats", 1)
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DatasetLayoutError) as e:
        load_dataset(tmp_path)
    msg = str(e.value)
    for expected in ("manifest.csv", "CIFAKE", "Kaggle", "FaceForensics++", "path,label"):
        assert expected in msg
    assert "cats/" in msg and "readme.txt" in msg


def test_load_dataset_missing_path(tmp_path: Path):
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        load_dataset(tmp_path / "nope")


def test_samples_are_frozen(tmp_path: Path):
    s = Sample(tmp_path / "a.png", 1, "train", "csv")
    with pytest.raises(AttributeError):
        s.label = 0  # type: ignore[misc]
