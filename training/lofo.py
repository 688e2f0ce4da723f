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


#: How ``held_out`` rows are measured: on the family's fakes from every split of the kit.
HELD_OUT = "every split"


def held_out_samples(samples: list, family: str) -> list:
    """Every fake of ``family`` whatever its split: a left-out family's fakes leave training and
    validation, so none of them was seen (the test split alone holds 2 of 215 DiT images)."""
    return [s for s in samples if int(s.label) == 1 and getattr(s, "family", "") == family]


def held_out_fakes(config: TrainConfig, family: str) -> tuple[ImageSet | None, dict[str, int]]:
    """The left-out family's fakes, decoded, and how many came from each split."""
    from training.data.loaders import load_dataset
    from training.datasets import load_images

    chosen = held_out_samples(load_dataset(config.data), family)
    by_split: dict[str, int] = {}
    for sample in chosen:
        by_split[sample.split] = by_split.get(sample.split, 0) + 1
    return (load_images(chosen) if chosen else None), by_split


def false_alarm_set(splits: dict[str, ImageSet]) -> ImageSet | None:
    """The wild test reals and test controls: the false alarms a threshold costs."""
    data = splits.get("test")
    if data is None:
        return None
    index = np.flatnonzero(data.mask(origins={"wild", "control"}) & (data.labels == 0))
    return data.subset(index) if len(index) else None


def _test_split(config: TrainConfig) -> dict[str, ImageSet]:
    """The test split alone (its reals and controls give the false alarms), decoded."""
    from training.data.loaders import load_dataset
    from training.datasets import load_images

    chosen = [s for s in load_dataset(config.data) if s.split == "test" and int(s.label) == 0]
    return {"test": load_images(chosen)} if chosen else {}


def measure_family(
    det: Any, config: TrainConfig, family: str, splits: dict[str, ImageSet]
) -> dict[str, Any]:
    """Recall on every fake of ``family`` at the model's own threshold, and the false alarms
    that threshold costs on the test reals and controls of ``splits``."""
    fakes, by_split = held_out_fakes(config, family)
    if fakes is None:
        return {"n": 0, "recall": None, "note": "no fakes of this family in the data"}
    threshold = float(det.card.threshold)
    p_fake = whole_image_p(det, fakes.images)
    row: dict[str, Any] = {
        "n": len(fakes),
        "held_out": HELD_OUT,
        "by_split": by_split,
        "recall": round(float(np.mean(p_fake >= threshold)), 4),
        "generators": sorted(set(fakes.generators)),
        "threshold": round(threshold, 4),
    }
    reals = false_alarm_set(splits)
    if reals is not None:
        p_real = whole_image_p(det, reals.images)
        row["false_positive_rate"] = round(float(np.mean(p_real >= threshold)), 4)
        labels = np.r_[np.ones(len(p_fake)), np.zeros(len(p_real))]
        row["roc_auc_vs_test_reals"] = _auc(labels, np.r_[p_fake, p_real])
    return row


def _family_config(config: TrainConfig, family: str, out: Path) -> TrainConfig:
    return replace(
        config,
        out=str(out / f"without_{family}"),
        name=f"without_{family}",
        exclude_families=[family],
    )


def run_family(config: TrainConfig, family: str, out: Path, verbose: int = 0) -> dict[str, Any]:
    """Train without ``family`` and measure it; returns the family's row."""
    from training.train import fit_and_calibrate

    cfg = _family_config(config, family, out)
    det, splits, seconds = fit_and_calibrate(cfg, verbose=verbose)
    return {**measure_family(det, cfg, family, splits), "train_seconds": round(seconds, 1)}


def remeasure_family(config: TrainConfig, family: str, out: Path, row: dict[str, Any]) -> dict:
    """Measure a family's finished model again (kept in ``out/without_FAMILY``), no training."""
    from detector.core.models import load_model

    cfg = _family_config(config, family, out)
    det = load_model(cfg.name, out, cache=False)
    measured = measure_family(det, cfg, family, _test_split(cfg))
    return {**measured, "train_seconds": row.get("train_seconds")}


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
        row = result["families"].get(family)
        if row is not None and (row.get("held_out") == HELD_OUT or row.get("n") == 0):
            continue
        if row is not None and (out / f"without_{family}" / "card.json").exists():
            # measured on the test split only before: the same model, every held-out fake now
            result["families"][family] = remeasure_family(config, family, out, row)
        else:
            result["families"][family] = run_family(config, family, out, verbose)
        path.write_text(json.dumps(result, indent=2) + "\n")
    recalls = [r["recall"] for r in result["families"].values() if r.get("recall") is not None]
    result["min_recall"] = min(recalls) if recalls else None
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result
