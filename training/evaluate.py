"""Evaluation of a trained model through the serving path: metrics, robustness, plots, card."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from training.augment import center_crop, downscale, gaussian_blur, jpeg
from training.datasets import ImageSet, targets

log = logging.getLogger(__name__)

#: The robustness table: how each score holds up when an image travels.
PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "jpeg_q95": lambda im: jpeg(im, 95),
    "jpeg_q75": lambda im: jpeg(im, 75),
    "jpeg_q50": lambda im: jpeg(im, 50),
    "downscale_x0.5": lambda im: downscale(im, 0.5),
    "blur_sigma1": lambda im: gaussian_blur(im, 1.0),
    "center_crop_0.7": lambda im: center_crop(im, 0.7),
}


def score(det, data: ImageSet, perturb: Callable | None = None, batch: int = 16) -> np.ndarray:
    """Calibrated whole-image P(fake) of every image (as the apps compute it), optionally after
    a perturbation."""
    from training.truth import whole_image_p

    images = data.images if perturb is None else [perturb(im) for im in data.images]
    return whole_image_p(det, images, batch=batch)


def _safe_auc(labels: np.ndarray, p: np.ndarray) -> float | None:
    return float(roc_auc_score(labels, p)) if len(np.unique(labels)) == 2 else None


def binary_metrics(labels: np.ndarray, p_fake: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC-AUC, AP, log loss, confusion matrix, report."""
    labels = np.asarray(labels).astype(int)
    predicted = (p_fake >= threshold).astype(int)
    both = len(np.unique(labels)) == 2
    return {
        "n": len(labels),
        "n_fake": int(labels.sum()),
        "n_real": int((1 - labels).sum()),
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "roc_auc": _safe_auc(labels, p_fake),
        "average_precision": float(average_precision_score(labels, p_fake)) if both else None,
        "log_loss": float(log_loss(labels, np.clip(p_fake, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "ece": expected_calibration_error(labels, p_fake),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
        "classification_report": classification_report(
            labels,
            predicted,
            labels=[0, 1],
            target_names=["real", "fake"],
            output_dict=True,
            zero_division=0,
        ),
    }


def expected_calibration_error(labels: np.ndarray, p_fake: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-width bins of P(fake)."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p_fake, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(p_fake[mask].mean() - labels[mask].mean())
    return float(total)


def _fake_generators(data: ImageSet) -> list[str]:
    """The generators of the split's fakes, sorted."""
    return sorted({g for g, y in zip(data.generators, data.labels, strict=True) if y == 1})


def generator_aucs(data: ImageSet, p_fake: np.ndarray) -> dict[str, float | None]:
    """ROC-AUC of each generator's fakes against all real images."""
    generators = np.array(data.generators, dtype=object)
    real = data.labels == 0
    aucs = {}
    for gen in _fake_generators(data):
        pair = real | (generators == gen)  # all reals, and this generator's fakes
        aucs[gen or "unknown"] = _safe_auc(data.labels[pair], p_fake[pair])
    return aucs


def group_rates(data: ImageSet, p_fake: np.ndarray, threshold: float) -> dict[str, Any]:
    """Detection rate and ROC-AUC per generator (fakes), false-positive rate per source (reals)."""
    predicted = p_fake >= threshold
    per_generator: dict[str, Any] = {}
    per_source: dict[str, Any] = {}
    aucs = generator_aucs(data, p_fake)
    for gen in _fake_generators(data):
        mask = np.array(
            [g == gen and y == 1 for g, y in zip(data.generators, data.labels, strict=True)]
        )
        per_generator[gen or "unknown"] = {
            "n": int(mask.sum()),
            "detection_rate": float(predicted[mask].mean()),
            "mean_p_fake": float(p_fake[mask].mean()),
            "roc_auc": aucs[gen or "unknown"],
        }
    for src in sorted({s for s, y in zip(data.sources, data.labels, strict=True) if y == 0}):
        mask = np.array(
            [s == src and y == 0 for s, y in zip(data.sources, data.labels, strict=True)]
        )
        per_source[src or "unknown"] = {
            "n": int(mask.sum()),
            "false_positive_rate": float(predicted[mask].mean()),
            "mean_p_fake": float(p_fake[mask].mean()),
        }
    return {"per_generator": per_generator, "per_source": per_source}


def robustness_table(det, data: ImageSet, threshold: float) -> dict[str, Any]:
    """ROC-AUC (overall and per generator) and accuracy under each of `PERTURBATIONS`."""
    table = {}
    for name, perturb in PERTURBATIONS.items():
        p = score(det, data, perturb)
        labels = data.labels
        table[name] = {
            "roc_auc": _safe_auc(labels, p),
            "accuracy": float(np.mean((p >= threshold) == labels.astype(bool))),
            "per_generator_roc_auc": generator_aucs(data, p),
        }
    return table


def adversarial_table(
    det,
    data: ImageSet,
    threshold: float,
    epsilon: float = 0.05,
    fraction: float = 0.3,
    seed: int = 0,
) -> dict[str, Any]:
    """S2's table: clean test set, every image FGSM-attacked, and a mix (``fraction`` attacked)."""
    from training.procedures import fgsm_examples, loss_for

    spec = det.spec
    x = spec.preprocessing.apply_batch(data.images)
    y = targets(data.labels, spec.output)
    adv = (
        np.concatenate(
            [
                fgsm_examples(
                    det.keras_model, x[i : i + 64], y[i : i + 64], loss_for(spec), epsilon
                )
                for i in range(0, len(x), 64)
            ]
        )
        if len(x)
        else x
    )
    rng = np.random.default_rng(seed)
    mixed = x.copy()
    chosen = rng.random(len(x)) < fraction
    mixed[chosen] = adv[chosen]
    out = {"epsilon": epsilon, "mixed_fraction": fraction}
    for name, batch in (("clean", x), ("fgsm", adv), ("mixed", mixed)):
        p = np.concatenate([det.p_fake_batch(batch[i : i + 64]) for i in range(0, len(batch), 64)])
        m = binary_metrics(data.labels, p, threshold)
        out[name] = {k: m[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc")}
    return out


def save_plots(
    labels: np.ndarray, p_fake: np.ndarray, threshold: float, folder: Path, title: str
) -> list[str]:
    """ROC, PR, confusion-matrix and reliability-diagram PNGs; returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if len(np.unique(labels)) == 2:
        fpr, tpr, _ = roc_curve(labels, p_fake)
        fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
        ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(labels, p_fake):.3f}")
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC: {title}")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(folder / "roc.png")
        plt.close(fig)
        precision, recall, _ = precision_recall_curve(labels, p_fake)
        fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
        ax.plot(recall, precision, label=f"AP {average_precision_score(labels, p_fake):.3f}")
        ax.set(xlabel="recall (fakes caught)", ylabel="precision", title=f"PR: {title}")
        ax.legend(loc="lower left")
        fig.tight_layout()
        fig.savefig(folder / "pr.png")
        plt.close(fig)
        written += ["roc.png", "pr.png"]
    cm = confusion_matrix(labels, (p_fake >= threshold).astype(int), labels=[0, 1])
    fig, ax = plt.subplots(figsize=(3.6, 3.4), dpi=100)
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(
            j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black"
        )
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["real", "fake"],
        yticklabels=["real", "fake"],
        xlabel="predicted",
        ylabel="true",
        title=f"Confusion @ {threshold:.2f}",
    )
    fig.tight_layout()
    fig.savefig(folder / "confusion.png")
    plt.close(fig)
    edges = np.linspace(0, 1, 11)
    centres, observed, counts = [], [], []
    index = np.clip(np.digitize(p_fake, edges[1:-1]), 0, 9)
    for b in range(10):
        mask = index == b
        if mask.any():
            centres.append(p_fake[mask].mean())
            observed.append(labels[mask].mean())
            counts.append(mask.sum())
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot(centres, observed, "o-", label="model")
    ax.set(
        xlabel="predicted P(fake)",
        ylabel="observed fraction fake",
        title=f"Reliability: {title}",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(folder / "reliability.png")
    plt.close(fig)
    written += ["confusion.png", "reliability.png"]
    return written


def evaluate(
    det,
    splits: dict[str, ImageSet],
    report_dir: Path,
    *,
    adversarial: bool = False,
    robustness: bool = True,
) -> dict[str, Any]:
    """Evaluate a loaded `Detector` on named splits; writes plots and ``metrics.json``.

    The first split named ``test`` (or the first split) also gets the robustness table and, when
    ``adversarial`` is set, S2's clean / FGSM / mixed table.
    """
    threshold = float(det.card.threshold)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {}
    main = "test" if "test" in splits else next(iter(splits), None)
    for name, data in splits.items():
        if len(data) == 0:
            continue
        p = score(det, data)
        entry = binary_metrics(data.labels, p, threshold)
        entry.update(group_rates(data, p, threshold))
        low, high = det.card.uncertain_band
        confident = (p < low) | (p >= high) if high > low else np.ones(len(p), bool)
        entry["uncertain_fraction"] = float(1 - confident.mean())
        entry["accuracy_when_confident"] = (
            float(np.mean((p[confident] >= threshold) == data.labels[confident].astype(bool)))
            if confident.any()
            else None
        )
        save_plots(data.labels, p, threshold, report_dir / name, f"{det.name} / {name}")
        metrics[name] = entry
    if main is not None and robustness:
        metrics["robustness"] = robustness_table(det, splits[main], threshold)
    if main is not None and adversarial:
        metrics["adversarial"] = adversarial_table(det, splits[main], threshold)
    (report_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def update_card_metrics(folder: Path, metrics: dict[str, Any]) -> None:
    """Write metrics into a model folder's card (the weights and their checksum are unchanged)."""
    from detector.core.card import ModelCard

    card = ModelCard.load(folder)
    replace(card, metrics=metrics).save(folder)
