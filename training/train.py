"""Train one model from a recipe, calibrate it, evaluate it and export it with its card."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from detector.core._keras import keras, tf
from detector.core.backbones import EFFICIENTNET_LITE_BACKBONES, MOBILENET_V2_BACKBONES
from detector.core.card import ModelCard
from detector.core.models import export_model, load_model
from detector.core.recipes import get_recipe
from detector.core.runtime import Detector
from training.balance import weight_table
from training.calibration import fit_temperature, logit, pr_threshold, uncertain_band
from training.config import TrainConfig
from training.datasets import ImageSet, balanced_subset, load_images
from training.evaluate import evaluate
from training.procedures import TrainingContext, procedure_for
from training.truth import truth_table, whole_image_p

log = logging.getLogger(__name__)

#: Splits evaluated after training when the dataset has them (``test_ood``: held-out sources).
EVAL_SPLITS: tuple[str, ...] = ("test", "test_ood")


def get_strategy(name: str):
    """A `tf.distribute` strategy by name: default, mirrored, or multiworker (from TF_CONFIG)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            log.warning("TF_CONFIG is not set: MultiWorkerMirroredStrategy runs as one worker")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; use default, mirrored or multiworker")


def _split(samples: list, name: str) -> list:
    return [s for s in samples if s.split == name]


def load_splits(config: TrainConfig) -> dict[str, ImageSet]:
    """Decode the dataset's train/val/test splits (subsampled as the config says)."""
    from training.data.loaders import load_dataset

    samples = load_dataset(config.data)
    if config.exclude_families:  # leave-one-family-out: its fakes leave training and validation
        left_out = set(config.exclude_families)
        samples = [
            s
            for s in samples
            if not (
                s.split in ("train", "val")
                and s.label == 1
                and getattr(s, "family", "") in left_out
            )
        ]
    splits: dict[str, ImageSet] = {}
    for name in ("train", "val", *EVAL_SPLITS):
        chosen = _split(samples, name)
        if not chosen:
            continue
        limit = config.max_train if name == "train" else config.max_eval
        labels = np.array([int(s.label) for s in chosen])
        chosen = [chosen[i] for i in balanced_subset(labels, limit, config.seed)]
        splits[name] = load_images(chosen)
    for required in ("train", "val"):
        if required not in splits or len(splits[required]) == 0:
            raise ValueError(f"dataset {config.data} has no {required!r} images")
        if len(np.unique(splits[required].labels)) < 2:
            raise ValueError(f"the {required!r} split of {config.data} lacks one of the classes")
    return splits


def describe(splits: dict[str, ImageSet], config: TrainConfig) -> dict[str, Any]:
    """The training-data section of a model card."""
    info: dict[str, Any] = {"dataset": str(config.data), "splits": {}}
    for name, data in splits.items():
        info["splits"][name] = {
            "n": len(data),
            "n_fake": int(data.labels.sum()),
            "n_real": int((1 - data.labels).sum()),
            "generators": dict(
                Counter(g for g, y in zip(data.generators, data.labels, strict=True) if y == 1)
            ),
            "sources": dict(Counter(s for s in data.sources if s)),
        }
    manifest = Path(config.data) / "manifest.csv"
    if manifest.is_file():
        info["manifest_sha256"] = _sha(manifest)
        info["rebuild"] = "python -m training.data build-starter-kit --out DIR"
    return info


def _sha(path: Path) -> str:
    from detector.core.card import sha256_file

    return sha256_file(path)


def build_model(config: TrainConfig, spec, strategy):
    """Build the recipe's model with its pretrained backbone weights (if any)."""
    recipe = get_recipe(config.recipe)
    backbone = spec.params.get("backbone")
    wants_imagenet = config.backbone_weights == "imagenet" and backbone not in (None, "tiny")
    provenance: dict[str, Any] = {"name": backbone or "none (trained from scratch)"}
    if "members" in spec.params:
        provenance = {
            "name": "ensemble of trained models",
            "weights": "copied unchanged from the members (their cards give their backbones)",
            "members": [
                {k: m[k] for k in ("name", "recipe", "sha256")} for m in spec.params["members"]
            ],
        }
    with strategy.scope():
        if config.init_from:
            model = recipe.build(spec)
            provenance = init_from_trained(model, spec, Path(config.init_from))
        elif wants_imagenet and backbone in MOBILENET_V2_BACKBONES:
            model = recipe.build(spec)
            from training.pretrained import MOBILENET_V2_PROVENANCE, load_mobilenet_v2_imagenet

            load_mobilenet_v2_imagenet(model, prefix="mnv2")
            provenance.update(weights="imagenet", **MOBILENET_V2_PROVENANCE)
        elif wants_imagenet and backbone in EFFICIENTNET_LITE_BACKBONES:
            model = recipe.build(spec)
            from training.pretrained_lite import (
                EFFICIENTNET_LITE_PROVENANCE,
                load_efficientnet_lite_imagenet,
            )

            variant = EFFICIENTNET_LITE_BACKBONES[backbone]
            load_efficientnet_lite_imagenet(model, variant=variant, prefix=variant)
            provenance.update(weights="imagenet", **EFFICIENTNET_LITE_PROVENANCE[variant])
        elif wants_imagenet:
            model = recipe.build(spec, weights="imagenet")
            provenance.update(weights="imagenet", source="keras.applications")
        else:
            model = recipe.build(spec)
            provenance.setdefault("weights", "random initialisation")
    return model, provenance


def init_from_trained(model, spec, folder: Path) -> dict[str, Any]:
    """Copy a trained model's weights into ``model``; returns the backbone provenance.

    The folder's model must have the same recipe and parameters; it loads the way the apps
    load it (weights checked against the card's SHA-256, Keras safe mode).

    Raises:
        ValueError: if the folder holds another architecture.
        detector.core.errors.ChecksumError: if its weights changed since it was trained.
    """
    card = ModelCard.load(folder)
    plain = json.loads(json.dumps(spec.params))  # tuples -> lists, as the card (JSON) has them
    if (card.spec.recipe, card.spec.params) != (spec.recipe, plain):
        raise ValueError(
            f"--init-from {folder}: it is a {card.spec.recipe} model with {card.spec.params}, "
            f"this run builds {spec.recipe} with {spec.params}"
        )
    trained = load_model(card.name, folder.parent, cache=False)
    model.set_weights(trained.keras_model.get_weights())
    return {
        **card.backbone,
        "weights": f"trained model {card.name} (then trained further, see the phases)",
        "init_from": {
            "name": card.name,
            "sha256": card.sha256,
            "command": card.training.get("command", ""),
        },
    }


def calibration_set(val: ImageSet) -> ImageSet:
    """The images calibration uses: the wild validation split and its controls when the data
    has them (the images people bring), else the whole validation split."""
    index = np.flatnonzero(val.mask(origins={"wild", "control"}))
    return val.subset(index) if len(index) and len(set(val.labels[index])) == 2 else val


def calibrate(det: Detector, val: ImageSet, recipe: str) -> dict[str, Any]:
    """Temperature, threshold and uncertain band from the validation split (see
    `calibration_set`), on whole-image scores as the apps compute them."""
    val = calibration_set(val)
    raw = whole_image_p(det, val.images)  # temperature 1 at this point
    fake_logits = logit(raw)
    temperature = fit_temperature(val.labels, fake_logits)
    calibrated = 1 / (1 + np.exp(-fake_logits / temperature))
    threshold = pr_threshold(val.labels, calibrated) if recipe == "efficientnet_b2" else 0.5
    band = uncertain_band(val.labels, calibrated, threshold)
    return {"temperature": temperature, "threshold": threshold, "uncertain_band": band}


def limitations(train_set: ImageSet) -> tuple[str, ...]:
    """The card's limitations, from what the model was trained on."""
    if "wild" not in train_set.origins:
        return (
            "Trained on the open starter kit: real photos from a few Debian packages and fakes "
            "from upscalers and style transfer. It has never seen diffusion-model images.",
            "Scores are only meaningful for photos similar to its training tiles; screenshots, "
            "heavy compression and very small images are outside its domain.",
        )
    seen = sorted({g for g, y in zip(train_set.generators, train_set.labels, strict=True) if y})
    return (
        f"Trained on {len(seen)} generators ({', '.join(seen)}) and real photos from public "
        "repositories and Debian packages; generators it never saw may score lower.",
        "A statistical score, not proof: heavy compression, screenshots of screens and "
        "images under 224 px lose the traces it reads. See the card's truth table.",
    )


def resume_dir(config: TrainConfig) -> Path:
    """The folder that keeps an unfinished run's epoch backups, beside ``config.out``.

    A run started again with the same configuration resumes from its last finished epoch
    (and skips finished phases); any other configuration starts afresh. The folder is removed
    once the model is exported and calibrated.
    """
    out = Path(config.out)
    state = out.parent / f".{out.name}.partial"
    stamp = state / "config.json"
    wanted = json.dumps(config.to_dict(), sort_keys=True)
    if state.exists() and not (stamp.exists() and stamp.read_text() == wanted):
        shutil.rmtree(state)
    if state.exists():
        log.info("resuming the unfinished run kept in %s", state)
    state.mkdir(parents=True, exist_ok=True)
    stamp.write_text(wanted)
    return state


def fit_and_calibrate(
    config: TrainConfig, *, verbose: int = 1
) -> tuple[Detector, dict[str, ImageSet], float]:
    """Train, export and calibrate a model; returns it loaded, the data, and the seconds taken.

    The folder ``config.out`` then holds the weights and a card without metrics.
    """
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = get_strategy(config.strategy)
    recipe = get_recipe(config.recipe)
    spec = recipe.spec(**config.recipe_overrides())
    splits = load_splits(config)
    log.info("data: %s", {k: len(v) for k, v in splits.items()})
    model, provenance = build_model(config, spec, strategy)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = resume_dir(config)
    ctx = TrainingContext(config, spec, splits["train"], splits["val"], workdir, strategy, verbose)
    phases = procedure_for(config.recipe)(model, ctx)
    weights = ctx.weights()
    trained_seconds = time.time() - started
    training_data = describe(splits, config)
    if weights is not None:
        train_set = splits["train"]
        training_data["batch_weights"] = weight_table(
            train_set.labels, train_set.origins, train_set.contents, weights
        )
    card = ModelCard(
        name=config.model_name,
        spec=spec,
        sha256="",
        title=config.title or config.model_name,
        summary=recipe.summary,
        training_data=training_data,
        training={
            "config": config.to_dict(),
            "phases": phases,
            "seconds": round(trained_seconds, 1),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "command": config.command(),
        },
        backbone=provenance,
        limitations=limitations(splits["train"]),
    )
    export_model(model, out, card)
    det = Detector(model, ModelCard.load(out))
    calibration = calibrate(det, splits["val"], config.recipe)
    card = replace(ModelCard.load(out), **calibration)
    card.save(out)
    config.save(out)
    shutil.rmtree(workdir, ignore_errors=True)
    return load_model(card.name, out.parent, cache=False), splits, trained_seconds


def train(config: TrainConfig, *, verbose: int = 1) -> ModelCard:
    """Run a full training: data -> model -> calibration -> evaluation -> exported folder.

    Returns:
        The card written to ``config.out``.
    """
    started = time.time()
    det, splits, _ = fit_and_calibrate(config, verbose=verbose)
    out = Path(config.out)
    eval_splits = {name: splits[name] for name in ("val", *EVAL_SPLITS) if name in splits}
    metrics = evaluate(
        det, eval_splits, out / "report", adversarial=config.recipe == "efficientnet_b2"
    )
    if any(set(d.origins) - {"package"} for d in eval_splits.values()):
        metrics["truth"] = truth_table(det, eval_splits, progress=verbose > 0)
    card = replace(ModelCard.load(out), metrics=metrics)
    card.save(out)
    log.info("trained %s in %.0f s", card.name, time.time() - started)
    return card


def clean_output(out: Path) -> None:
    """Remove a previous model folder's files (keeps nothing stale next to new weights)."""
    if out.exists():
        shutil.rmtree(out)
