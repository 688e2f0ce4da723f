"""Training: each recipe trains briefly on a tiny generated set, calibrates, evaluates, exports."""

from __future__ import annotations

import csv
import json
import shlex

import numpy as np
import pytest
from conftest import RECIPE_NAMES
from PIL import Image

import detector
from detector.core.recipes import get_recipe
from training.augment import GeometricColourAugment, RandomJpeg, RobustAugment, jpeg
from training.calibration import fit_temperature, pr_threshold, sigmoid, uncertain_band
from training.config import TrainConfig
from training.datasets import BatchSequence, ImageSet, balanced_subset, targets


def _tile(label: int, seed: int, size: int = 48) -> np.ndarray:
    """Reals are noisy textures; fakes are smooth upsampled versions (learnable, like the kit)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    if label == 1:
        small = Image.fromarray(noise).resize((size // 4, size // 4), Image.BILINEAR)
        return np.asarray(small.resize((size, size), Image.BICUBIC))
    return noise


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    root = tmp_path_factory.mktemp("tinyset")
    rows = []
    for split, n in (("train", 32), ("val", 16), ("test", 16)):
        for i in range(n):
            label = i % 2
            path = root / f"{split}_{i}.png"
            Image.fromarray(_tile(label, hash((split, i)) % 10_000)).save(path)
            rows.append({"path": str(path), "label": label, "split": split})
    csv_path = root / "set.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return csv_path


def test_targets_follow_output_convention():
    labels = np.array([1, 0])
    assert targets(labels, "sigmoid_fake").tolist() == [[1.0], [0.0]]
    assert targets(labels, "sigmoid_real").tolist() == [[0.0], [1.0]]
    assert targets(labels, "softmax_fake_real").tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_balanced_subset_is_balanced_and_seeded():
    labels = np.array([1] * 30 + [0] * 70)
    chosen = balanced_subset(labels, 20, seed=3)
    assert len(chosen) == 20 and labels[chosen].sum() == 10
    assert chosen == balanced_subset(labels, 20, seed=3)
    assert chosen != balanced_subset(labels, 20, seed=4)


def test_temperature_recovers_a_known_scale():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 4000)
    labels = (rng.random(4000) < sigmoid(true_logits)).astype(int)
    temperature = fit_temperature(labels, true_logits * 3.0)  # over-confident by 3x
    assert temperature == pytest.approx(3.0, rel=0.15)


def test_pr_threshold_and_band():
    labels = np.array([0] * 50 + [1] * 50)
    p = np.concatenate([np.linspace(0.0, 0.45, 50), np.linspace(0.55, 1.0, 50)])
    assert 0.45 <= pr_threshold(labels, p) <= 0.55
    assert uncertain_band(labels, p, 0.5) == (0.5, 0.5)  # perfectly separated: no band needed
    noisy = np.concatenate([np.linspace(0.2, 0.7, 50), np.linspace(0.3, 0.8, 50)])
    low, high = uncertain_band(labels, noisy, 0.5)
    assert low < 0.5 < high


def test_robust_augment_is_deterministic_and_keeps_images_valid():
    image = _tile(0, 1, 64)
    a = RobustAugment(p_jpeg=1, p_resize=1, p_blur=1, p_crop=1)
    first = a(image, np.random.default_rng(5))
    second = a(image, np.random.default_rng(5))
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.uint8 and first.ndim == 3 and min(first.shape[:2]) >= 8
    assert np.abs(jpeg(image, 50).astype(int) - image.astype(int)).mean() > 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"jpeg_probability": 1.5},
        {"jpeg_quality_min": 0},
        {"jpeg_quality_min": 90, "jpeg_quality_max": 80},
    ],
)
def test_config_refuses_impossible_jpeg_settings(kwargs):
    with pytest.raises(ValueError, match=r"(?i)jpeg"):
        TrainConfig(recipe="simple_cnn", data="kit", out="o", **kwargs)


def _jpeg_steps(sequence) -> list:
    """The JPEG-encoding steps of a training sequence's augmentation, in order, as (kind, p)."""
    found = []
    for step in sequence.augment.steps:
        if isinstance(step, RobustAugment):
            found.append(("robust", step.p_jpeg, step.jpeg_quality))
        elif isinstance(step, RandomJpeg):
            found.append(("last", step.p, step.quality))
        else:
            found.append(("other", None, None))
    return found


def test_freeze_fraction_freezes_the_early_backbone_layers():
    from training.procedures import freeze_early_layers, set_backbone_trainable

    recipe = get_recipe("efficientnet_b7_finetune")
    model = recipe.build(recipe.spec(**recipe.tiny), weights=None)
    set_backbone_trainable(model, True)
    weighted = [layer for layer in model.layers if layer.weights]
    before = len(model.trainable_weights)
    frozen = freeze_early_layers(model, 0.5)
    assert frozen and len(model.trainable_weights) < before
    names = [layer.name for layer in weighted]
    # the first half of the backbone in graph order: no later layer frozen, the head trained
    assert frozen == names[: len(frozen)]
    assert all(model.get_layer(n).trainable is False for n in frozen)
    assert weighted[-1].trainable and frozen[-1] != names[-1]
    assert freeze_early_layers(model, 0.0) == []
    with pytest.raises(ValueError, match="freeze_fraction"):
        TrainConfig(recipe=recipe.name, data="kit", out="o", freeze_fraction=1.0)


def test_jpeg_settings_reach_the_training_augmentation(tmp_path):
    from training import procedures

    recipe = get_recipe("efficientnet_b7_finetune")
    spec = recipe.spec(**recipe.tiny)
    images = [_tile(i % 2, i) for i in range(4)]
    data = ImageSet(images, np.array([0, 1, 0, 1]), [""] * 4, [""] * 4, [""] * 4)

    def steps(**kwargs):
        config = TrainConfig(recipe=recipe.name, data="kit", out="o", **kwargs)
        ctx = procedures.TrainingContext(config, spec, data, data, tmp_path, None)
        return _jpeg_steps(ctx.sequence(augment=GeometricColourAugment()))

    assert steps() == [("robust", 0.5, (60, 100)), ("other", None, None)]
    heavy = {"jpeg_probability": 1.0, "jpeg_quality_min": 50, "jpeg_quality_max": 95}
    assert steps(**heavy) == [("robust", 1.0, (50, 95)), ("other", None, None)]
    # compressed last: after the recipe's rotation, which would otherwise smear the 8x8 blocks
    assert steps(**heavy, jpeg_last=True) == [
        ("robust", 0.0, (50, 95)),
        ("other", None, None),
        ("last", 1.0, (50, 95)),
    ]


def test_random_jpeg_encodes_at_its_probability():
    image = _tile(1, 3, 64)
    out = RandomJpeg(1.0, (50, 50))(image, np.random.default_rng(0))
    np.testing.assert_array_equal(out, jpeg(image, 50))
    assert RandomJpeg(0.0)(image, np.random.default_rng(0)) is image


def test_batch_sequence_shapes_and_reshuffle():
    spec = get_recipe("simple_cnn").spec(**get_recipe("simple_cnn").tiny)
    images = [_tile(i % 2, i) for i in range(10)]
    data = ImageSet(images, np.array([i % 2 for i in range(10)]), [""] * 10, [""] * 10, [""] * 10)
    seq = BatchSequence(data, spec, batch_size=4, augment=None, seed=0)
    x, y = seq[0]
    assert len(seq) == 3 and x.shape == (4, 32, 32, 3) and y.shape == (4, 1)
    order = seq.order.copy()
    seq.on_epoch_end()
    assert not np.array_equal(order, seq.order)


@pytest.mark.slow
# every recipe but the ensemble, which is built from trained members (its own test below)
@pytest.mark.parametrize("recipe", [name for name in RECIPE_NAMES if name != "ensemble"])
def test_every_recipe_trains_calibrates_evaluates_and_exports(recipe, tiny_csv, tmp_path):
    from training.train import train

    config = TrainConfig(
        recipe=recipe,
        data=str(tiny_csv),
        out=str(tmp_path / "models" / f"tiny_{recipe}"),
        epochs=1,
        frozen_epochs=1,
        fgsm_epochs=1,
        finetune_epochs=1,
        batch_size=8,
        backbone_weights="none",
        steps_per_epoch=2,
        recipe_params=dict(get_recipe(recipe).tiny),
    )
    card = train(config, verbose=0)
    folder = tmp_path / "models" / f"tiny_{recipe}"
    assert (folder / "model.keras").is_file() and (folder / "config.json").is_file()
    saved = json.loads((folder / "card.json").read_text())
    assert saved["sha256"] == card.sha256
    assert card.temperature > 0 and 0 < card.threshold < 1
    test = card.metrics["test"]
    assert test["n"] == 16 and 0.0 <= test["roc_auc"] <= 1.0
    assert set(card.metrics["robustness"]) >= {"jpeg_q75", "downscale_x0.5"}
    for png in ("roc.png", "pr.png", "confusion.png", "reliability.png"):
        assert (folder / "report" / "test" / png).stat().st_size > 1000
    if recipe == "efficientnet_b2":
        assert {"clean", "fgsm", "mixed"} <= set(card.metrics["adversarial"])
        assert [p["phase"] for p in card.training["phases"]] == ["frozen", "fgsm", "finetune"]
    if recipe == "backbone_npr_fusion":
        phases = card.training["phases"]
        assert [p["phase"] for p in phases] == ["frozen", "finetune"]
        assert [p["learning_rate"] for p in phases] == [1e-3, 3e-4]
    det = detector.load_model(card.name, folder.parent)
    assert det.predict(_tile(1, 99)).model == card.name


@pytest.mark.slow
def test_simple_cnn_learns_the_tiny_task(tiny_csv, tmp_path):
    from training.train import train

    config = TrainConfig(
        recipe="simple_cnn",
        data=str(tiny_csv),
        out=str(tmp_path / "m" / "cnn"),
        epochs=12,
        batch_size=8,
        learning_rate=1e-3,
        robust_augment=False,
        recipe_params=dict(get_recipe("simple_cnn").tiny),
    )
    card = train(config, verbose=0)
    assert card.metrics["test"]["roc_auc"] >= 0.9


def test_mirrored_strategy_single_machine():
    from training.train import get_strategy

    strategy = get_strategy("mirrored")
    assert strategy.num_replicas_in_sync >= 1
    with pytest.raises(ValueError, match="unknown strategy"):
        get_strategy("tpu-pod")


@pytest.mark.slow
def test_training_under_mirrored_strategy(tiny_csv, tmp_path):
    from training.train import train

    config = TrainConfig(
        recipe="efficientnet_b2",
        data=str(tiny_csv),
        out=str(tmp_path / "m" / "mirrored"),
        frozen_epochs=1,
        fgsm_epochs=0,
        finetune_epochs=0,
        batch_size=8,
        steps_per_epoch=1,
        backbone_weights="none",
        strategy="mirrored",
        recipe_params=dict(get_recipe("efficientnet_b2").tiny),
    )
    card = train(config, verbose=0)
    assert card.training["config"]["strategy"] == "mirrored"
    assert 0.0 <= card.metrics["test"]["roc_auc"] <= 1.0


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(recipe="simple_cnn", data="kit", out="assets/models/a"),
        TrainConfig(
            recipe="efficientnet_b2",
            data="kit",
            out="assets/models/s2 x",
            title="MobileNetV2 + FGSM (S2 recipe)",
            epochs=4,
            seed=3,
            learning_rate=3e-4,
            input_size=224,
            backbone="mobilenet_v2",
            resize="native_crop",
            robust_augment=False,
            frozen_epochs=4,
            finetune_learning_rate=2e-5,
            fgsm_epsilon=0.02,
            fgsm_fraction=0.5,
            patience=2,
            deterministic=True,
            recipe_params={"input_filter": "npr", "widths": [4, 8]},
        ),
        TrainConfig(
            recipe="efficientnet_b7_finetune",
            data="kit",
            out="data/members/jpeg",
            jpeg_probability=1.0,
            jpeg_quality_min=50,
            jpeg_quality_max=95,
            jpeg_last=True,
            init_from="assets/models/s4_mobilenetv2_finetune",
            freeze_fraction=0.4,
        ),
    ],
)
def test_card_command_reproduces_the_config(config):
    from training.__main__ import build_parser, config_from_args

    words = shlex.split(config.command(data="kit"))
    assert words[:4] == ["python", "-m", "training", "train"]
    args = build_parser().parse_args(words[3:])
    assert config_from_args(args) == config


def test_every_config_field_has_a_command_line_flag():
    from dataclasses import fields

    from training.__main__ import build_parser
    from training.config import _FLAGS

    positional = {"recipe", "data", "out", "recipe_params"}  # written out by command() itself
    assert set(_FLAGS) == {f.name for f in fields(TrainConfig)} - positional
    train = next(a for a in build_parser()._actions if a.dest == "command").choices["train"]
    options = {s for action in train._actions for s in action.option_strings}
    assert set(_FLAGS.values()) <= options


@pytest.mark.parametrize(
    ("patience", "lr_patience", "expected"), [(3, None, 1), (6, None, 3), (1, None, 1), (3, 4, 4)]
)
def test_learning_rate_drops_after_its_own_patience(tmp_path, patience, lr_patience, expected):
    from types import SimpleNamespace

    from training.procedures import _callbacks

    config = TrainConfig(recipe="simple_cnn", data="kit", out="", lr_patience=lr_patience)
    ctx = SimpleNamespace(config=config, workdir=tmp_path, verbose=0)
    callbacks = {type(c).__name__: c for c in _callbacks(ctx, patience, "finetune")}
    assert callbacks["EarlyStopping"].patience == patience
    assert callbacks["ReduceLROnPlateau"].patience == expected
    assert "ReduceLROnPlateau" not in {
        type(c).__name__ for c in _callbacks(ctx, patience, "frozen", reduce_lr=False)
    }


def test_fusion_procedure_freezes_the_backbone_only_in_its_first_phase(monkeypatch, tmp_path):
    from detector.core.recipes import is_head_layer
    from training import procedures

    recipe = get_recipe("backbone_npr_fusion")
    spec = recipe.spec(**recipe.tiny)
    model = recipe.build(spec)
    seen = []

    def record(model, ctx, *, epochs, lr, tag, **kwargs):
        trainable = {layer.name: layer.trainable for layer in model.layers if layer.weights}
        seen.append((epochs, lr, trainable))
        return {"phase": tag}

    monkeypatch.setattr(procedures, "_fit", record)
    config = TrainConfig(recipe=recipe.name, data="unused", out=str(tmp_path), frozen_epochs=2)
    ctx = procedures.TrainingContext(config, spec, None, None, tmp_path, None)
    log_ = procedures.procedure_for(recipe.name)(model, ctx)
    assert [entry["phase"] for entry in log_] == ["frozen", "finetune"]
    (epochs1, lr1, frozen), (epochs2, lr2, finetune) = seen
    assert (epochs1, lr1, epochs2, lr2) == (2, 1e-3, 5, 3e-4)
    backbone = [name for name in frozen if not is_head_layer(name)]
    residual = [name for name in frozen if name.startswith("head_npr_block")]
    assert backbone and residual
    assert not any(frozen[name] for name in backbone)
    assert all(frozen[name] for name in residual) and frozen["logits"]
    assert all(finetune.values())


@pytest.mark.slow
def test_ensemble_trains_from_member_folders(tiny_csv, tmp_path):
    from training.train import train

    members = []
    for recipe, params in (
        ("efficientnet_b7_finetune", {}),
        ("simple_cnn", {"input_size": 16, "input_filter": "npr", "head": "gap"}),
    ):
        folder = tmp_path / "models" / f"member_{recipe}"
        train(
            TrainConfig(
                recipe=recipe,
                data=str(tiny_csv),
                out=str(folder),
                epochs=1,
                batch_size=8,
                backbone_weights="none",
                steps_per_epoch=2,
                resize="native_crop",
                recipe_params={**get_recipe(recipe).tiny, **params},
            ),
            verbose=0,
        )
        members.append(str(folder))
    out = tmp_path / "models" / "tiny_ensemble"
    config = TrainConfig(
        recipe="ensemble", data=str(tiny_csv), out=str(out), recipe_params={"members": members}
    )
    card = train(config, verbose=0)
    assert card.training["phases"][0]["members"] == [
        "member_efficientnet_b7_finetune",
        "member_simple_cnn",
    ]
    assert [m["name"] for m in card.backbone["members"]] == card.training["phases"][0]["members"]
    assert card.metrics["test"]["n"] == 16 and card.temperature > 0
    # the exported ensemble loads like any model and its card reproduces the command
    det = detector.load_model(card.name, out.parent)
    assert det.predict(_tile(1, 5)).model == "tiny_ensemble"
    assert "--recipe-param" in card.training["command"] and members[1] in card.training["command"]
    assert all(
        "python -m training train" in c for c in card.training["phases"][0]["member_commands"]
    )


@pytest.mark.slow
def test_init_from_starts_at_a_trained_models_weights(tiny_csv, tmp_path):
    from training.train import build_model, get_strategy, train

    params = {**get_recipe("simple_cnn").tiny, "input_filter": "npr", "head": "gap"}
    first = tmp_path / "models" / "first"
    base = {"recipe": "simple_cnn", "data": str(tiny_csv), "recipe_params": params}
    base |= {"epochs": 1, "batch_size": 8, "steps_per_epoch": 2}
    train(TrainConfig(out=str(first), **base), verbose=0)
    trained = detector.load_model("first", first.parent, cache=False).keras_model

    config = TrainConfig(out=str(tmp_path / "second"), init_from=str(first), **base)
    spec = get_recipe("simple_cnn").spec(**config.recipe_overrides())
    model, provenance = build_model(config, spec, get_strategy("default"))
    for got, want in zip(model.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert provenance["init_from"]["name"] == "first"
    assert provenance["init_from"]["command"].startswith("python -m training train simple_cnn")

    other = get_recipe("simple_cnn").spec(**{**params, "head": "flatten"})
    with pytest.raises(ValueError, match="this run builds"):
        build_model(config, other, get_strategy("default"))
    weights = first / "model.keras"
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(detector.ChecksumError, match="do not match their card"):
        build_model(config, spec, get_strategy("default"))


def test_generator_aucs_score_each_generator_against_all_reals():
    from training.evaluate import generator_aucs, group_rates

    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    gens = ["", "", "", "esrgan", "esrgan", "style", "style"]
    data = ImageSet([_tile(0, i) for i in range(7)], labels, [""] * 7, gens, [""] * 7)
    p = np.array([0.2, 0.4, 0.6, 0.9, 0.8, 0.1, 0.5])
    # esrgan fakes score above every real; style fakes win 2 of their 6 (fake, real) pairs
    assert generator_aucs(data, p) == {"esrgan": 1.0, "style": pytest.approx(1 / 3)}
    style = group_rates(data, p, 0.5)["per_generator"]["style"]
    assert style == {
        "n": 2,
        "detection_rate": 0.5,
        "mean_p_fake": 0.3,
        "roc_auc": pytest.approx(1 / 3),
    }


class _Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_last_epoch(tiny_csv, tmp_path, monkeypatch):
    from detector.core._keras import keras
    from training import procedures
    from training.train import resume_dir, train

    class StopAfterTwo(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise _Interrupt

    original = procedures._callbacks
    monkeypatch.setattr(
        procedures, "_callbacks", lambda *a, **k: [*original(*a, **k), StopAfterTwo()]
    )
    config = TrainConfig(
        recipe="simple_cnn",
        data=str(tiny_csv),
        out=str(tmp_path / "m" / "cnn"),
        epochs=4,
        patience=10,
        batch_size=8,
        robust_augment=False,
        recipe_params=dict(get_recipe("simple_cnn").tiny),
    )
    with pytest.raises(_Interrupt):
        train(config, verbose=0)
    state = tmp_path / "m" / ".cnn.partial"
    assert (state / "config.json").exists() and (state / "backup_main").exists()

    monkeypatch.setattr(procedures, "_callbacks", original)
    card = train(config, verbose=0)
    # the resumed fit ran only the two epochs the interruption left
    assert card.training["phases"][0]["epochs_run"] == 2
    assert not state.exists()

    # another configuration never resumes someone else's state
    (state / "backup_main").mkdir(parents=True)
    other = TrainConfig(**{**config.to_dict(), "epochs": 3})
    assert not (resume_dir(other) / "backup_main").exists()
