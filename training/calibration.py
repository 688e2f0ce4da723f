"""Temperature scaling, decision thresholds and the honest "uncertain" band."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import precision_recall_curve


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    z = np.asarray(z, dtype=np.float64)
    return np.where(
        z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z)))
    )


def logit(p: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Inverse of `sigmoid`, clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p / (1 - p))


def nll(labels: np.ndarray, p_fake: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary negative log-likelihood (log loss)."""
    p = np.clip(p_fake, eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit_temperature(labels: np.ndarray, fake_logits: np.ndarray) -> float:
    """The temperature T > 0 minimising the NLL of sigmoid(logit / T) on held-out data."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return 1.0

    def objective(log_t: float) -> float:
        return nll(labels, sigmoid(fake_logits / np.exp(log_t)))

    result = minimize_scalar(objective, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def pr_threshold(labels: np.ndarray, p_fake: np.ndarray) -> float:
    """The threshold maximising F1 on the precision-recall curve (S2's procedure)."""
    precision, recall, thresholds = precision_recall_curve(labels, p_fake)
    if len(thresholds) == 0:
        return 0.5
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(np.clip(thresholds[int(np.argmax(f1))], 0.01, 0.99))


def uncertain_band(
    labels: np.ndarray,
    p_fake: np.ndarray,
    threshold: float,
    *,
    target_accuracy: float = 0.95,
    widths: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25),
    min_coverage: float = 0.5,
) -> tuple[float, float]:
    """The narrowest band around the threshold outside which held-out accuracy is high enough.

    Tries half-widths in ``widths``; picks the first whose confident predictions (outside the
    band) reach ``target_accuracy`` while covering at least ``min_coverage`` of the data, and
    otherwise the widest. Returns (low, high) clipped to [0, 1].
    """
    labels = np.asarray(labels).astype(bool)
    p_fake = np.asarray(p_fake)
    chosen = 0.0
    for width in widths:
        low, high = threshold - width, threshold + width
        confident = (p_fake < low) | (p_fake >= high) if width > 0 else np.ones_like(p_fake, bool)
        if confident.mean() < min_coverage or not confident.any():
            break
        chosen = width
        if np.mean((p_fake[confident] >= threshold) == labels[confident]) >= target_accuracy:
            break
    return float(max(0.0, threshold - chosen)), float(min(1.0, threshold + chosen))
