"""``python -m training train|evaluate``: reproduce and evaluate the shipped models."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from training.config import TrainConfig


def _recipe_params(pairs: list[str] | None) -> dict:
    """``KEY=VALUE`` strings -> a dict (values parsed as JSON when they can be)."""
    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--recipe-param needs KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The training config a parsed ``train`` command line describes."""
    return TrainConfig(
        recipe=args.recipe,
        data=args.data,
        out=args.out,
        name=args.name,
        title=args.title,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        input_size=args.input_size,
        backbone=args.backbone,
        resize=args.resize,
        backbone_weights=args.backbone_weights,
        init_from=args.init_from,
        robust_augment=not args.no_robust_augment,
        jpeg_probability=args.jpeg_prob,
        jpeg_quality_min=args.jpeg_quality_min,
        jpeg_quality_max=args.jpeg_quality_max,
        jpeg_last=args.jpeg_last,
        max_train=args.max_train,
        max_eval=args.max_eval,
        frozen_epochs=args.frozen_epochs,
        fgsm_epochs=args.fgsm_epochs,
        finetune_epochs=args.finetune_epochs,
        finetune_learning_rate=args.finetune_lr,
        fgsm_epsilon=args.fgsm_epsilon,
        fgsm_fraction=args.fgsm_fraction,
        patience=args.patience,
        lr_patience=args.lr_patience,
        freeze_fraction=args.freeze_fraction,
        strategy=args.strategy,
        deterministic=args.deterministic,
        steps_per_epoch=args.steps_per_epoch,
        recipe_params=_recipe_params(args.recipe_param),
        balance_content=not args.no_balance_content,
        exclude_families=list(args.exclude_family or []),
    )


def _train(args: argparse.Namespace) -> int:
    from training.train import train

    config = config_from_args(args)
    card = train(config, verbose=0 if args.quiet else 1)
    test = card.metrics.get("test", {})
    print(
        json.dumps(
            {
                "model": card.name,
                "out": args.out,
                "test": {k: test.get(k) for k in ("roc_auc", "accuracy", "f1")},
                "threshold": card.threshold,
                "temperature": card.temperature,
                "uncertain_band": card.uncertain_band,
            },
            indent=2,
        )
    )
    return 0


def _lofo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from detector.core.card import ModelCard
    from training.lofo import LOFO_FAMILIES, run_lofo

    config = config_from_args(args)
    families = tuple(args.family or LOFO_FAMILIES)
    result = run_lofo(config, args.out, families, verbose=0 if args.quiet else 1)
    if args.card:
        card = ModelCard.load(Path(args.card))
        replace(card, metrics={**card.metrics, "lofo": result}).save(Path(args.card))
    print(json.dumps({k: v.get("recall") for k, v in result["families"].items()}, indent=2))
    return 0


def _truth(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from detector.core.models import load_model, models_dir
    from training.config import TrainConfig
    from training.train import EVAL_SPLITS, load_splits
    from training.truth import headline, truth_table, wild_files

    root = models_dir(args.models_dir)
    det = load_model(args.model, root, cache=False)
    config = TrainConfig(recipe=det.spec.recipe, data=args.data, out="", seed=args.seed)
    splits = {k: v for k, v in load_splits(config).items() if k in ("val", *EVAL_SPLITS)}
    table = truth_table(det, splits)
    if args.wild_files:  # the wild test images as published: the figure a user sees
        files = wild_files(args.data, args.wild_files)
        table["wild_files_test"] = truth_table(det, {"test": files}, {"clean": None})["wild_test"]
    if args.update_card:
        replace(det.card, metrics={**det.card.metrics, "truth": table}).save(root / det.name)
    print(json.dumps(headline(table, det.card.metrics.get("lofo")), indent=2))
    return 0


def _scene_view(args: argparse.Namespace) -> int:
    from detector.core.models import load_model, models_dir
    from training.scene_view import SCENE_SIDE, measure, write_choice
    from training.truth import wild_files

    root = models_dir(args.models_dir)
    det = load_model(args.model, root, cache=False)
    files = wild_files(args.data, args.wild_files, split="val")
    side = args.side or SCENE_SIDE
    result = measure(det, files, side, progress=not args.quiet)
    if args.write:
        write_choice(root / det.name, result)
    print(json.dumps(result, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from detector.core.models import load_model, models_dir
    from training.config import TrainConfig
    from training.evaluate import evaluate, update_card_metrics
    from training.train import EVAL_SPLITS, load_splits
    from training.truth import headline, truth_table

    root = models_dir(args.models_dir)
    det = load_model(args.model, root, cache=False)
    config = TrainConfig(
        recipe=det.spec.recipe, data=args.data, out="", max_eval=args.max_eval, seed=args.seed
    )
    splits = {k: v for k, v in load_splits(config).items() if k in ("val", *EVAL_SPLITS)}
    folder = Path(args.report) if args.report else root / det.name / "report"
    metrics = evaluate(det, splits, folder, adversarial=det.spec.recipe == "efficientnet_b2")
    if any(set(d.origins) - {"package"} for d in splits.values()):
        metrics["truth"] = truth_table(det, splits)
    if "lofo" in det.card.metrics:  # measured by `python -m training lofo`, kept
        metrics["lofo"] = det.card.metrics["lofo"]
    if args.update_card:
        update_card_metrics(root / det.name, metrics)
    summary = {
        name: {
            k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in m.items()
            if k in ("n", "roc_auc", "accuracy", "f1", "ece")
        }
        for name, m in metrics.items()
        if isinstance(m, dict) and "n" in m
    }
    summary["robustness_auc"] = {k: v["roc_auc"] for k, v in metrics.get("robustness", {}).items()}
    if "truth" in metrics:
        summary["headline"] = headline(metrics["truth"], metrics.get("lofo"))
    print(json.dumps(summary, indent=2, default=lambda o: float(np.asarray(o))))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The training CLI parser."""
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a recipe and export model + card + report")
    _add_train_args(t)
    t.set_defaults(func=_train)
    lofo = sub.add_parser(
        "lofo", help="leave-one-family-out: train without each generator family, test on it"
    )
    _add_train_args(lofo)
    lofo.add_argument(
        "--family", action="append", help="only these families (default: all four, repeatable)"
    )
    lofo.add_argument("--card", help="also store the result in this model folder's card")
    lofo.set_defaults(func=_lofo)
    e = sub.add_parser("evaluate", help="evaluate a trained model on a dataset")
    e.add_argument("model")
    e.add_argument("--data", required=True)
    e.add_argument("--models-dir")
    e.add_argument("--max-eval", type=int)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--report", help="report folder (default: the model's report/)")
    e.add_argument("--update-card", action="store_true", help="write the metrics into the card")
    e.set_defaults(func=_evaluate)
    tt = sub.add_parser(
        "truth", help="only the truth table (kit, wild, controls under JPEG and resizing)"
    )
    tt.add_argument("model")
    tt.add_argument("--data", required=True)
    tt.add_argument("--models-dir")
    tt.add_argument("--seed", type=int, default=0)
    tt.add_argument("--update-card", action="store_true", help="write it into the card")
    tt.add_argument(
        "--wild-files",
        metavar="DIR",
        help="also score the wild test images as published, from the wild pool in DIR",
    )
    tt.set_defaults(func=_truth)
    sv = sub.add_parser(
        "scene-view",
        help="measure on the wild validation files whether a scene view helps a model; "
        "--write turns it on or off in its card",
    )
    sv.add_argument("model")
    sv.add_argument("--data", required=True, help="the kit (its manifest names the split)")
    sv.add_argument("--wild-files", required=True, metavar="DIR", help="the wild pool")
    sv.add_argument("--models-dir")
    sv.add_argument(
        "--side", type=int, default=None, help="shorter side of the scene view (default: the kit's)"
    )
    sv.add_argument("--write", action="store_true", help="store the result and choice in the card")
    sv.add_argument("--quiet", action="store_true", help="no progress bars")
    sv.set_defaults(func=_scene_view)
    return parser


def _add_train_args(t: argparse.ArgumentParser) -> None:
    t.add_argument("recipe")
    t.add_argument("--data", required=True, help="starter kit, CIFAKE, Kaggle, FF++ folder or CSV")
    t.add_argument("--out", required=True, help="output folder, e.g. assets/models/NAME")
    t.add_argument("--name")
    t.add_argument("--title")
    t.add_argument("--epochs", type=int)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float)
    t.add_argument("--input-size", type=int)
    t.add_argument("--backbone", help="e.g. mobilenet_v2, efficientnet_b2")
    t.add_argument(
        "--resize",
        choices=("resize", "center_crop", "native_crop"),
        help="override the recipe's resize mode (native_crop keeps generator traces)",
    )
    t.add_argument(
        "--recipe-param",
        action="append",
        metavar="KEY=VALUE",
        help="extra recipe parameter, repeatable (e.g. input_filter=npr)",
    )
    t.add_argument("--backbone-weights", choices=("imagenet", "none"), default="imagenet")
    t.add_argument("--init-from", help="start from this trained model folder (same recipe)")
    t.add_argument("--no-robust-augment", action="store_true")
    t.add_argument("--jpeg-prob", type=float, default=0.5, help="share re-encoded as JPEG")
    t.add_argument("--jpeg-quality-min", type=int, default=60)
    t.add_argument("--jpeg-quality-max", type=int, default=100)
    t.add_argument(
        "--jpeg-last", action="store_true", help="re-encode after the recipe's own augmentation"
    )
    t.add_argument("--max-train", type=int)
    t.add_argument("--max-eval", type=int)
    t.add_argument("--frozen-epochs", type=int, default=6)
    t.add_argument("--fgsm-epochs", type=int, default=2)
    t.add_argument("--finetune-epochs", type=int, default=3)
    t.add_argument("--finetune-lr", type=float, default=1e-5, help="S2 phase 3 learning rate")
    t.add_argument("--fgsm-epsilon", type=float, default=0.05, help="S2 FGSM step, 0-1 pixels")
    t.add_argument("--fgsm-fraction", type=float, default=0.3, help="S2 share of each batch")
    t.add_argument("--patience", type=int)
    t.add_argument(
        "--lr-patience",
        type=int,
        help="epochs without progress before the learning rate drops tenfold (default patience/2)",
    )
    t.add_argument(
        "--freeze-fraction",
        type=float,
        default=0.0,
        metavar="F",
        help="S4: keep the first F (0-1) of the backbone's layers at their pretrained values",
    )
    t.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default")
    t.add_argument("--deterministic", action="store_true")
    t.add_argument("--steps-per-epoch", type=int)
    t.add_argument(
        "--no-balance-content",
        action="store_true",
        help="draw batches uniformly instead of balancing content between the classes",
    )
    t.add_argument(
        "--exclude-family",
        action="append",
        metavar="FAMILY",
        help="leave this generator family's fakes out of training and validation (repeatable)",
    )
    t.add_argument("--quiet", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the training CLI."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from detector.core.errors import DetectorError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, DetectorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
