"""Leave-one-family-out: does a detector catch a kind of generator it never saw?

For each generator family (diffusion U-Nets, diffusion transformers, GANs, upscalers), train the
same recipe with the same settings but without that family's fakes (training and validation),
calibrate it as usual, then measure its recall on every fake of the family (none of which it
saw) at its own threshold, and its false-positive rate on the wild test reals and controls, so
that a threshold bought with false alarms shows. The scores are whole-image scores, as the apps
compute them.

``python -m training lofo RECIPE --data KIT --out DIR [train options]`` runs it and writes
``lofo.json``; ``--card MODEL_DIR`` also stores the result in that model's card.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from training.config import TrainConfig
from training.datasets import ImageSet
from training.truth import _auc, whole_image_p

#: The families left out one at a time (see ``training.data.wild.FAMILIES``).
LOFO_FAMILIES: tuple[str, ...] = ("diffusion_unet", "diffusion_transformer", "gan", "upscaler")


def held_out_fakes(splits: dict[str, ImageSet], family: str) -> ImageSet | None:
    """Every fake of ``family`` in the loaded splits (test, and any left in train/val)."""
    parts = []
    for data in splits.values():
        index = np.flatnonzero(data.mask(families=family) & (data.labels == 1))
        if len(index):
            parts.append(data.subset(index))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else _concat(parts)


def _concat(parts: list[ImageSet]) -> ImageSet:
    lists = ("paths", "generators", "sources", "contents", "origins", "families", "controls")
    return ImageSet(
        images=[im for p in parts for im in p.images],
        labels=np.concatenate([p.labels for p in parts]),
        **{name: [v for p in parts for v in getattr(p, name)] for name in lists},
    )


def false_alarm_set(splits: dict[str, ImageSet]) -> ImageSet | None:
    """The wild test reals and test controls: the false alarms a threshold costs."""
    data = splits.get("test")
    if data is None:
        return None
    index = np.flatnonzero(data.mask(origins={"wild", "control"}) & (data.labels == 0))
    return data.subset(index) if len(index) else None


def run_family(config: TrainConfig, family: str, out: Path, verbose: int = 0) -> dict[str, Any]:
    """Train without ``family`` and measure it; returns the family's row."""
    from training.train import fit_and_calibrate

    cfg = replace(
        config,
        out=str(out / f"without_{family}"),
        name=f"without_{family}",
        exclude_families=[family],
    )
    det, splits, seconds = fit_and_calibrate(cfg, verbose=verbose)
    fakes = held_out_fakes(splits, family)
    if fakes is None:
        return {"n": 0, "recall": None, "note": "no fakes of this family in the data"}
    threshold = float(det.card.threshold)
    p_fake = whole_image_p(det, fakes.images)
    row: dict[str, Any] = {
        "n": len(fakes),
        "recall": round(float(np.mean(p_fake >= threshold)), 4),
        "generators": sorted(set(fakes.generators)),
        "threshold": round(threshold, 4),
        "train_seconds": round(seconds, 1),
    }
    reals = false_alarm_set(splits)
    if reals is not None:
        p_real = whole_image_p(det, reals.images)
        row["false_positive_rate"] = round(float(np.mean(p_real >= threshold)), 4)
        labels = np.r_[np.ones(len(p_fake)), np.zeros(len(p_real))]
        row["roc_auc_vs_test_reals"] = _auc(labels, np.r_[p_fake, p_real])
    return row


def run_lofo(
    config: TrainConfig,
    out: Path | str,
    families: tuple[str, ...] = LOFO_FAMILIES,
    verbose: int = 0,
) -> dict[str, Any]:
    """Every family in turn; resumable (a family already in ``out/lofo.json`` is kept)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "lofo.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    result.setdefault("families", {})
    result["command"] = config.command()
    for family in families:
        if family in result["families"]:
            continue
        result["families"][family] = run_family(config, family, out, verbose)
        path.write_text(json.dumps(result, indent=2) + "\n")
    recalls = [r["recall"] for r in result["families"].values() if r.get("recall") is not None]
    result["min_recall"] = min(recalls) if recalls else None
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result
