"""Which trained models, alone or averaged, make the best default? Ranked on validation only.

``python -m training.choose MODEL [MODEL ...] --data KIT`` scores each model once on the kit's
validation split (whole-image scoring, as the apps do) and ranks every model alone and every
average of up to ``--max-members`` of them (the ``ensemble`` recipe: calibrated log-odds
averaged) by the rule that picks the default among shipped models
(`detector.core.models.selection_score`):

    mean(ROC-AUC on the wild validation split, ROC-AUC on the whole validation split)
    - share of the validation negative controls flagged

A model alone flags at its card's threshold; an average at 0.5 after its temperature, which
(the temperature being positive) is where the averaged log-odds cross 0. The wild validation
ROC-AUC comes with its 95 % bootstrap interval: about 80 fakes and 100 reals leave a wide one,
and candidates inside each other's intervals are not told apart by these images. The test
splits are never read. The best row is what ``python -m training train ensemble
--recipe-param members=...`` should build (or the model alone).
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from training.calibration import logit
from training.truth import auc_interval


@dataclass(frozen=True)
class ValScores:
    """One model's calibrated P(fake) on every validation image, and its card's threshold."""

    p_fake: np.ndarray
    threshold: float


@dataclass(frozen=True)
class Candidate:
    """One model or average of models, measured on the validation split."""

    members: tuple[str, ...]
    score: float
    wild_auc: float
    wild_auc_ci95: list[float] | None
    val_auc: float
    controls_flagged: float


def rank(
    scores: Mapping[str, ValScores],
    labels: np.ndarray,
    origins: Sequence[str],
    max_members: int = 3,
) -> list[Candidate]:
    """Every model alone and every average of 2..``max_members`` models, best first.

    Args:
        scores: Model name -> its validation scores (all on the same images, in one order).
        labels: 1 = fake, per validation image.
        origins: ``package``, ``wild`` or ``control`` per validation image.
        max_members: Largest average tried.

    Raises:
        ValueError: the validation split lacks wild images of both classes or controls.
    """
    labels = np.asarray(labels).astype(int)
    origins = np.asarray(origins, dtype=object)
    wild, controls = origins == "wild", origins == "control"
    if len(set(labels[wild].tolist())) < 2 or not controls.any():
        raise ValueError(
            "choosing needs a validation split with wild fakes, wild reals and negative "
            "controls (build the kit with the wild source)"
        )
    out = []
    names = sorted(scores)
    log_odds = {name: logit(scores[name].p_fake) for name in names}
    for k in range(1, min(max_members, len(names)) + 1):
        for members in itertools.combinations(names, k):
            if k == 1:
                only = scores[members[0]]
                z, flagged = log_odds[members[0]], only.p_fake >= only.threshold
            else:
                z = np.mean([log_odds[m] for m in members], axis=0)
                flagged = z >= 0
            wild_auc = float(roc_auc_score(labels[wild], z[wild]))
            val_auc = float(roc_auc_score(labels, z))
            fpr = float(flagged[controls].mean())
            out.append(
                Candidate(
                    members=members,
                    score=round((wild_auc + val_auc) / 2 - fpr, 4),
                    wild_auc=round(wild_auc, 4),
                    wild_auc_ci95=auc_interval(labels[wild], z[wild]),
                    val_auc=round(val_auc, 4),
                    controls_flagged=round(fpr, 4),
                )
            )
    return sorted(out, key=lambda c: (-c.score, len(c.members), c.members))


def markdown(candidates: Sequence[Candidate], limit: int = 15) -> str:
    """The ranking as a Markdown table (best first)."""
    lines = [
        "| members | score | wild val ROC-AUC (95 % interval) | val ROC-AUC | controls flagged |",
        "|---|---|---|---|---|",
    ]
    for c in candidates[:limit]:
        ci = f" ({c.wild_auc_ci95[0]:.2f}-{c.wild_auc_ci95[1]:.2f})" if c.wild_auc_ci95 else ""
        lines.append(
            f"| {' + '.join(f'`{m}`' for m in c.members)} | {c.score:.3f} | "
            f"{c.wild_auc:.3f}{ci} | {c.val_auc:.3f} | {c.controls_flagged:.3f} |"
        )
    return "\n".join(lines)


def score_models(
    names: Sequence[str], data: str | Path, models_dir: str | None = None
) -> tuple[dict[str, ValScores], np.ndarray, list[str]]:
    """Each model's whole-image scores on the kit's validation split (read once)."""
    from detector.core.models import load_model
    from detector.core.models import models_dir as default_dir
    from training.data.loaders import load_dataset
    from training.datasets import load_images
    from training.train import _split
    from training.truth import whole_image_p

    val = load_images(_split(load_dataset(data), "val"))
    scores = {}
    for name in names:
        folder = Path(name)
        root = folder.parent if folder.is_dir() else default_dir(models_dir)
        det = load_model(folder.name, root, cache=False)
        scores[det.name] = ValScores(whole_image_p(det, val.images), float(det.card.threshold))
    return scores, val.labels, list(val.origins)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.choose", description=__doc__)
    parser.add_argument("models", nargs="+", help="model names, or model folders")
    parser.add_argument("--data", required=True, help="the kit (with the wild source)")
    parser.add_argument("--models-dir", help="where model names are looked up")
    parser.add_argument("--max-members", type=int, default=3)
    parser.add_argument("--out", help="also write the whole ranking here as JSON")
    args = parser.parse_args(argv)
    if len(set(args.models)) < 1 or args.max_members < 1:
        parser.error("give at least one model and --max-members >= 1")
    scores, labels, origins = score_models(args.models, args.data, args.models_dir)
    ranking = rank(scores, labels, origins, args.max_members)
    print(markdown(ranking))
    if args.out:
        Path(args.out).write_text(json.dumps([asdict(c) for c in ranking], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
