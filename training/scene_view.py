"""Should a model read a scene view? Measured on the wild validation files as published.

The kit shows a model each wild image as a neutral 256 px copy in which a tile covers most of
the scene (`training.data.neutral`: the window is 1/1.0-1.5 of the shorter side, shrunk to
256 px), while the apps read an upload at its own resolution, in 224 px patches that each show
a small part of a large picture. A scene view (`detector.core.spec.Preprocessing.scene_side`)
adds the picture shrunk to the kit's scale. Whether it helps depends on what a model reads:
a network that learnt scenes gains, one that reads pixel residuals (S3) can lose. So each card
turns it on only where it was measured to help:

    python -m training scene-view MODEL --data KIT --wild-files DIR [--write]

scores the wild *validation* images as published (never the test split, which reports), once,
reading every view, and compares the verdict without the scene view and with it: ROC-AUC with a
paired bootstrap interval of the change, recall and the share of reals flagged at the card's
threshold, and the share of the same reals enlarged 2x (bicubic) that are flagged, the control
a scene view could make worse. `choose` turns it on when ROC-AUC rises and neither share of
flagged reals rises by more than `MAX_FPR_RISE`. Images no larger than the scene side score
the same either way, so the kit's own figures do not move.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

from detector.core.patches import calibrate, combine, image_views, score_views
from training.data.neutral import NeutralSettings
from training.datasets import ImageSet
from training.truth import classification_metrics

#: The kit's scene scale: a neutral copy's shorter side before its 256 px window is cut is
#: ``side * context`` (context 1.0-1.5), 320 px at the middle of the range.
SCENE_SIDE = round(NeutralSettings.side * sum(NeutralSettings.context) / 2)
#: Most a share of flagged reals (or of their enlargements) may rise for the view to be chosen.
MAX_FPR_RISE = 0.02
#: Reals whose longer side is above this are not enlarged for the control (memory).
MAX_ENLARGE_SIDE = 2048


@dataclass(frozen=True)
class Logits:
    """Each image's whole-image logit without and with the scene view (before the temperature)."""

    without: np.ndarray
    with_scene: np.ndarray


def scene_logits(
    det: Any, images: list[np.ndarray], side: int, *, batch: int = 8, progress: str = ""
) -> Logits:
    """Score every view once (patches and scene view) and combine them both ways.

    Args:
        progress: A progress bar's label (none when empty).
    """
    from tqdm import tqdm

    prep = replace(det.spec.preprocessing, scene_side=side)
    without, with_scene = [], []
    with tqdm(total=len(images), desc=progress, unit="image", disable=not progress) as bar:
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            views = [image_views(im, prep, max_patches=det.max_patches) for im in chunk]
            for v, z in zip(views, score_views(det, views), strict=True):
                with_scene.append(combine(z, scene=v.scene))
                without.append(combine(z[:-1] if v.scene else z))
            bar.update(len(chunk))
    return Logits(np.asarray(without), np.asarray(with_scene))


def enlarged(images: list[np.ndarray], factor: int = 2) -> list[np.ndarray]:
    """The images enlarged ``factor`` times with bicubic interpolation (the largest skipped)."""
    return [
        cv2.resize(im, (im.shape[1] * factor, im.shape[0] * factor), interpolation=cv2.INTER_CUBIC)
        for im in images
        if max(im.shape[:2]) <= MAX_ENLARGE_SIDE
    ]


def paired_auc_gain(
    labels: np.ndarray, a: np.ndarray, b: np.ndarray, *, resamples: int = 2000, seed: int = 0
) -> list[float]:
    """95 % percentile bootstrap interval of ROC-AUC(b) - ROC-AUC(a) on the same images.

    Fakes and reals are resampled apart, and each resample scores both ``a`` and ``b`` on the
    same images, so the interval is that of the change, far narrower than the two ROC-AUCs'
    own intervals.
    """
    y = np.asarray(labels).astype(bool)
    fakes, reals = np.flatnonzero(y), np.flatnonzero(~y)
    rng = np.random.default_rng(seed)
    gains = np.empty(resamples)
    for i in range(resamples):
        idx = np.concatenate([rng.choice(fakes, len(fakes)), rng.choice(reals, len(reals))])
        gains[i] = roc_auc_score(y[idx], b[idx]) - roc_auc_score(y[idx], a[idx])
    low, high = np.quantile(gains, [0.025, 0.975])
    return [round(float(low), 4), round(float(high), 4)]


def _rates(files: ImageSet, p: np.ndarray, controls: np.ndarray, threshold: float) -> dict:
    """The truth table's figures for the files (`training.truth.classification_metrics`), and
    the share of the enlarged reals flagged."""
    entry = classification_metrics(files, p, threshold, by_content=False)
    flagged = round(float((controls >= threshold).mean()), 4) if len(controls) else None
    return {**entry, "enlarged_2x_flagged": flagged}


def measure(
    det: Any, files: ImageSet, side: int = SCENE_SIDE, *, progress: bool = False
) -> dict[str, Any]:
    """The scene view's effect on one model, on wild validation files (see the module doc).

    Raises:
        ValueError: a model that does not read native-resolution patches, or one that reads
            the whole picture resized (``whole_view``); a side it cannot use (outside
            [input, 2 x input)); files without both classes.
    """
    prep = det.spec.preprocessing
    if prep.resize != "native_crop" or prep.whole_view:
        raise ValueError(
            f"{det.name} does not read native-resolution patches alone (resize {prep.resize!r}, "
            f"whole_view {prep.whole_view}): a scene view is for native_crop models"
        )
    replace(prep, scene_side=side)  # validates the side against the input size
    if len(set(files.labels.tolist())) < 2:
        raise ValueError("the files must hold both AI-generated and real images")
    temperature, threshold = float(det.temperature), float(det.card.threshold)
    scored = scene_logits(det, files.images, side, progress="wild files" if progress else "")
    reals = [im for im, label in zip(files.images, files.labels, strict=True) if label == 0]
    label = "reals enlarged 2x" if progress else ""
    controls = scene_logits(det, enlarged(reals), side, progress=label)
    p_without = calibrate(scored.without, temperature)
    p_with = calibrate(scored.with_scene, temperature)
    without = _rates(files, p_without, calibrate(controls.without, temperature), threshold)
    with_scene = _rates(files, p_with, calibrate(controls.with_scene, temperature), threshold)
    result = {
        "side": side,
        "split": "val",
        "n_fake": int(files.labels.sum()),
        "n_real": int(len(files) - files.labels.sum()),
        "n_enlarged": len(controls.without),
        "without": without,
        "with": with_scene,
        "roc_auc_gain_ci95": paired_auc_gain(files.labels, p_without, p_with),
    }
    result["chosen"] = choose(result)
    return result


def choose(result: dict[str, Any]) -> bool:
    """Turn the scene view on: ROC-AUC rises, and no share of flagged reals rises by more than
    `MAX_FPR_RISE` (the reals as published, and enlarged 2x)."""
    before, after = result["without"], result["with"]
    if after["roc_auc"] <= before["roc_auc"]:
        return False
    for key in ("false_positive_rate", "enlarged_2x_flagged"):
        if before[key] is not None and after[key] - before[key] > MAX_FPR_RISE:
            return False
    return True


def write_choice(card_folder: Path, result: dict[str, Any]) -> None:
    """Store the measurement in the card (``metrics.scene_view``) and set or clear its
    ``scene_side`` by the choice."""
    from detector.core.card import ModelCard

    card = ModelCard.load(card_folder)
    prep = replace(card.spec.preprocessing, scene_side=result["side"] if result["chosen"] else None)
    spec = replace(card.spec, preprocessing=prep)
    replace(card, spec=spec, metrics={**card.metrics, "scene_view": result}).save(card_folder)
