"""Evaluation that tells the truth: the kit test, the wild pool, the controls, under changes.

A split of the same sources flatters: the package kit's test split holds the same upscalers and
the same kind of photos as its training split. This module scores a model, the way the apps do
(whole-image scoring), on separate groups of images:

* ``kit_test`` / ``kit_test_ood``: package tiles (upscaler and style-transfer fakes);
* ``wild_val`` / ``wild_test``: real generators and real photos from source repositories never
  seen in training (split by repository), with ROC-AUC within each content tag;
* ``controls_val`` / ``controls_test``: real images enlarged, shrunk, re-encoded or captured as
  screenshots; all real, so the figure is the false-positive rate, per kind of control;

each clean and after JPEG q90, JPEG q75 and a 0.5x resize. Leave-one-family-out recall comes from
:mod:`training.lofo` and is stored beside these figures in the card.

``wild_files_test`` (with ``--wild-files DIR``): the same wild test images as their files were
published, at their own size and in their own format, decoded as the apps decode uploads: the
figure a user sees. Fakes are mostly PNG/WebP and reals JPEG there, which the model was trained
not to read, so the kit's neutral copies stay the figure models are compared on.

The wild groups are small (about 80 fakes and 100 reals each), so every ROC-AUC there comes with
a 95 % bootstrap interval (`auc_interval`): two models whose intervals overlap widely are not
told apart by these images, whatever their third digit says.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from training.augment import downscale, jpeg
from training.data.kit_files import read_manifest
from training.datasets import ImageSet

#: The changes every group is scored under (``clean``: as stored).
CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray] | None] = {
    "clean": None,
    "jpeg_q90": lambda im: jpeg(im, 90),
    "jpeg_q75": lambda im: jpeg(im, 75),
    "resize_0.5x": lambda im: downscale(im, 0.5),
}

#: Content tags reported separately (others are too rare in the pool to give an AUC).
CONTENTS: tuple[str, ...] = ("photo", "portrait", "art")


def _auc(labels: np.ndarray, p: np.ndarray) -> float | None:
    if len(np.unique(labels)) < 2:
        return None
    return round(float(roc_auc_score(labels, p)), 4)


def auc_interval(
    labels: np.ndarray, p: np.ndarray, *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> list[float] | None:
    """Percentile bootstrap interval of ROC-AUC (None without both classes).

    Fakes and reals are resampled separately (each resample keeps both classes and their
    counts), ``resamples`` times with a fixed seed, so the interval is reproducible. ROC-AUC is
    computed as the Mann-Whitney statistic (ties count half), as `roc_auc_score` does.
    """
    y = np.asarray(labels).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    if y.all() or not y.any():
        return None
    fakes, reals = p[y], p[~y]
    rng = np.random.default_rng(seed)
    aucs = np.empty(resamples)
    for i in range(resamples):
        f = rng.choice(fakes, len(fakes))
        r = np.sort(rng.choice(reals, len(reals)))
        below = np.searchsorted(r, f, "left")
        ties = np.searchsorted(r, f, "right") - below
        aucs[i] = (below.sum() + 0.5 * ties.sum()) / (len(f) * len(r))
    tail = (1 - level) / 2
    low, high = np.quantile(aucs, [tail, 1 - tail])
    return [round(float(low), 4), round(float(high), 4)]


def groups(splits: dict[str, ImageSet]) -> dict[str, ImageSet]:
    """The evaluation groups of a kit's splits (see the module docstring)."""
    out: dict[str, ImageSet] = {}
    for split in ("val", "test", "test_ood"):
        data = splits.get(split)
        if data is None or len(data) == 0:
            continue
        for origin, prefix in (("package", "kit"), ("wild", "wild"), ("control", "controls")):
            if split == "val" and origin == "package":
                continue
            index = np.flatnonzero(data.mask(origins=origin))
            if len(index):
                out[f"{prefix}_{split}"] = data.subset(index)
    return out


def wild_files(kit: str | Path, wild_dir: str | Path, split: str = "test") -> ImageSet:
    """The wild images of a kit split as published (``wild_dir`` / the manifest's
    ``original_file``), decoded by `detector.load_image` as an upload is.

    Raises:
        FileNotFoundError: a file of the split is missing from ``wild_dir``.
    """
    from detector.core.images import load_image

    rows = read_manifest(Path(kit))
    rows = [r for r in rows if r.get("origin") == "wild" and r["split"] == split]
    root = Path(wild_dir).resolve()
    images = []
    for r in rows:
        path = (root / r["original_file"]).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise FileNotFoundError(f"{r['original_file']}: not in the wild pool at {root}")
        images.append(load_image(path))
    return ImageSet(
        images,
        np.array([int(r["label_id"]) for r in rows], dtype=np.int64),
        [r["original_file"] for r in rows],
        [r["generator"] for r in rows],
        [r["source_package"] for r in rows],
        [r["content"] for r in rows],
        ["wild"] * len(rows),
        [r["family"] for r in rows],
        [""] * len(rows),
    )


def _perturbed(images: list[np.ndarray], change) -> list[np.ndarray]:
    """The images after a change; an image made smaller than a model's input is scored the
    way the apps score it (the model's preprocessing enlarges it)."""
    return images if change is None else [change(im) for im in images]


def whole_image_p(det, images: list[np.ndarray], batch: int = 16) -> np.ndarray:
    """Calibrated whole-image P(fake) of each image, as the apps compute it."""
    out = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        out.extend(p.p_fake for p in det.predict_batch(chunk))
    return np.asarray(out, dtype=np.float64)


def classification_metrics(
    data: ImageSet, p: np.ndarray, threshold: float, by_content: bool
) -> dict[str, Any]:
    """ROC-AUC, recall and false-positive rate at the threshold, per content and family."""
    y = data.labels
    flagged = p >= threshold
    entry: dict[str, Any] = {
        "n_fake": int(y.sum()),
        "n_real": int((1 - y).sum()),
        "roc_auc": _auc(y, p),
        "roc_auc_ci95": auc_interval(y, p),
        "recall": round(float(flagged[y == 1].mean()), 4) if y.any() else None,
        "false_positive_rate": round(float(flagged[y == 0].mean()), 4) if (1 - y).any() else None,
    }
    if by_content:
        contents = np.array(data.contents, dtype=object)
        entry["roc_auc_per_content"] = {
            c: _auc(y[contents == c], p[contents == c]) for c in CONTENTS if (contents == c).any()
        }
    families = np.array(data.families, dtype=object)
    entry["recall_per_family"] = {
        f: round(float(flagged[(families == f) & (y == 1)].mean()), 4)
        for f in sorted({f for f, lab in zip(data.families, y, strict=True) if lab == 1 and f})
    }
    return entry


def control_metrics(data: ImageSet, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """False-positive rate on the controls (all real), overall and per kind."""
    flagged = p >= threshold
    kinds = np.array(data.controls, dtype=object)
    return {
        "n": len(data),
        "false_positive_rate": round(float(flagged.mean()), 4),
        "false_positive_rate_per_control": {
            k: round(float(flagged[kinds == k].mean()), 4) for k in sorted(set(data.controls))
        },
    }


def truth_table(
    det, splits: dict[str, ImageSet], conditions: dict | None = None, progress: bool = True
) -> dict[str, Any]:
    """Every group under every condition: ``{group: {condition: metrics}}``."""
    conditions = CONDITIONS if conditions is None else conditions
    threshold = float(det.card.threshold)
    table: dict[str, Any] = {}
    parts = groups(splits)
    bar = _bar(len(parts) * len(conditions), progress)
    for name, data in parts.items():
        table[name] = {}
        for cond, change in conditions.items():
            p = whole_image_p(det, _perturbed(data.images, change))
            if name.startswith("controls"):
                table[name][cond] = control_metrics(data, p, threshold)
            else:
                by_content = name.startswith("wild")
                table[name][cond] = classification_metrics(data, p, threshold, by_content)
            bar.update(1)
    bar.close()
    return table


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="truth table", unit="run", disable=not enabled)


def headline(table: dict[str, Any], lofo: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model-table columns of a truth table (None where a group is absent)."""

    def get(group: str, cond: str, key: str):
        return table.get(group, {}).get(cond, {}).get(key)

    wild = table.get("wild_test", {}).get("clean", {})
    per_content = wild.get("roc_auc_per_content", {})
    row = {
        "kit_test_auc": get("kit_test", "clean", "roc_auc"),
        "wild_test_auc": get("wild_test", "clean", "roc_auc"),
        "wild_test_auc_ci95": get("wild_test", "clean", "roc_auc_ci95"),
        "wild_test_auc_q75": get("wild_test", "jpeg_q75", "roc_auc"),
        "wild_test_auc_resize": get("wild_test", "resize_0.5x", "roc_auc"),
        "wild_photo_auc": per_content.get("photo"),
        "wild_portrait_auc": per_content.get("portrait"),
        "wild_recall": get("wild_test", "clean", "recall"),
        "wild_fpr": get("wild_test", "clean", "false_positive_rate"),
        "controls_fpr": get("controls_test", "clean", "false_positive_rate"),
        # the wild test files as published (truth --wild-files), when measured
        "wild_files_auc": get("wild_files_test", "clean", "roc_auc"),
        "wild_files_auc_ci95": get("wild_files_test", "clean", "roc_auc_ci95"),
        "wild_files_recall": get("wild_files_test", "clean", "recall"),
        "wild_files_fpr": get("wild_files_test", "clean", "false_positive_rate"),
    }
    if lofo:
        recalls = [v["recall"] for v in lofo.get("families", {}).values()]
        row["lofo_min_recall"] = min(recalls) if recalls else None
    return row
