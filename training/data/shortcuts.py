"""The shortcut check: can a kit's classes be told apart by the file alone?

A detector learns whatever separates the classes most cheaply. If the fakes are PNG and the reals
JPEG, a model learns "has a JPEG grid = real"; if the fakes are 1024 px gallery images, it learns
the size. :func:`format_features` describes a file only by such traits (file type and size, image
size, aspect, colour mode, metadata bytes, and the strength of an 8x8 JPEG grid in its pixels);
:func:`shortcut_auc` fits a classifier on them (cross-validated) and reports its ROC-AUC. On a
format-neutral kit it stays near 0.5; on the raw wild pool it is near 1.

Two choices, stated: a lossless PNG's byte size is left out by default (every kit image is a
256 px RGB PNG, so its size measures the entropy of the pixels, e.g. an upscaler's smoothness:
the content a detector should read, not the file); and the negative controls are left out (they
are real images re-encoded or resampled on purpose; their figure is their own row in every
evaluation).

``python -m training.data shortcut-check KIT`` prints the figure for a split's package and wild
rows, and for the wild rows alone.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

FEATURES: tuple[str, ...] = (
    "is_png",
    "is_jpeg",
    "is_webp",
    "log_file_bytes",
    "log_pixels",
    "aspect",
    "is_rgb",
    "metadata_bytes",
    "jpeg_grid",
)


def jpeg_grid_strength(gray: np.ndarray) -> float:
    """How much stronger luma steps are across 8 px block borders than 4 px away from them.

    About 1 for pixels without a JPEG past (or with a grid erased by resampling), above 1 when
    8x8 blocks show; measured on both axes. The reference is the column (row) midway between
    two borders, not all columns inside a block: a 2x or 4x enlargement, whether plain
    interpolation or a learnt upscaler, repeats every 2 or 4 pixels, which makes the border
    columns and the midway columns alike, so only a real 8x8 grid counts (comparing with every
    inner column would read an upscaler's own 4 px pattern as a JPEG grid).
    """
    g = gray.astype(np.float64)
    if min(g.shape) < 32:
        return 1.0
    dx = np.abs(np.diff(g, axis=1)).mean(axis=0)
    dy = np.abs(np.diff(g, axis=0)).mean(axis=1)
    ratios = []
    for d in (dx, dy):
        border, midway = d[7::8], d[3::8]
        n = min(len(border), len(midway))
        ratios.append(float(border[:n].mean() / max(midway[:n].mean(), 1e-6)))
    return float(np.mean(ratios))


def format_features(path: str | Path) -> np.ndarray:
    """The file-level traits of one image (see `FEATURES`)."""
    path = Path(path)
    data_len = path.stat().st_size
    with Image.open(path) as img:
        fmt = (img.format or "").upper()
        meta = sum(len(v) for v in img.info.values() if isinstance(v, bytes | str))
        w, h = img.size
        mode = img.mode
        img.draft("L", (w, h))
        gray = np.asarray(img.convert("L"))
    return np.array(
        [
            fmt == "PNG",
            fmt == "JPEG",
            fmt == "WEBP",
            np.log1p(data_len),
            np.log1p(w * h),
            w / max(h, 1),
            mode == "RGB",
            np.log1p(meta),
            jpeg_grid_strength(gray),
        ],
        dtype=np.float64,
    )


#: The features the check uses by default (see the module docstring for the one left out).
FORMAT_ONLY: tuple[str, ...] = tuple(f for f in FEATURES if f != "log_file_bytes")


def shortcut_auc(
    paths: list[Path],
    labels: np.ndarray,
    seed: int = 0,
    folds: int = 5,
    features: tuple[str, ...] = FEATURES,
) -> float:
    """Cross-validated ROC-AUC of a classifier on (some of) `format_features` alone."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    labels = np.asarray(labels)
    cols = [FEATURES.index(f) for f in features]
    x = np.stack([format_features(p) for p in paths])[:, cols]
    k = int(min(folds, np.bincount(labels, minlength=2).min()))
    if k < 2:
        raise ValueError("the shortcut check needs at least two images of each class")
    clf = RandomForestClassifier(n_estimators=200, min_samples_leaf=3, random_state=seed)
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    p = cross_val_predict(clf, x, labels, cv=cv, method="predict_proba")[:, 1]
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, p))


def kit_shortcut_report(
    kit: str | Path, splits: tuple[str, ...] = ("val",), features: tuple[str, ...] = FORMAT_ONLY
) -> dict[str, float]:
    """`shortcut_auc` on a kit's split(s): package and wild rows, and the wild rows alone."""
    kit = Path(kit)
    with (kit / "manifest.csv").open(newline="") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if r["split"] in splits and r.get("origin", "package") != "control"
        ]
    report: dict[str, float] = {}
    for name, chosen in (
        ("all", rows),
        ("package", [r for r in rows if r.get("origin", "package") == "package"]),
        ("wild", [r for r in rows if r.get("origin") == "wild"]),
    ):
        labels = np.array([int(r["label_id"]) for r in chosen])
        if len(chosen) and len(set(labels.tolist())) == 2:
            paths = [kit / r["file"] for r in chosen]
            report[name] = round(shortcut_auc(paths, labels, features=features), 4)
    return report
