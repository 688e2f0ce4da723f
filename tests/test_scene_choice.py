"""`python -m training scene-view`: is a model's scene view measured to help, and its card set."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest
from conftest import tiny_card
from test_patches import SIZE, brightness_detector
from test_wild_kit import wild_kit  # noqa: F401  (the fixture)

from detector.core.card import ModelCard
from detector.core.patches import scene_box
from training.data.neutral import NeutralSettings
from training.datasets import ImageSet
from training.scene_view import (
    SCENE_SIDE,
    choose,
    measure,
    paired_auc_gain,
    scene_logits,
    write_choice,
)

SIDE = 48
SIDE_PX = 128  # 4 x 4 patches of 32 px cover it exactly: the patches' mean is the image's mean


def centre_vs_edges(n: int, centre_brighter: bool, seed: int) -> list[np.ndarray]:
    """Images whose mean brightness is the same, with a brighter (or darker) central square:
    the native patches see only the mean, the scene view sees mostly the centre."""
    rng = np.random.default_rng(seed)
    top, left, bottom, right = scene_box(
        SIDE_PX, SIDE_PX, brightness_detector(scene_side=SIDE).spec.preprocessing
    )
    inside = (bottom - top) * (right - left) / SIDE_PX**2
    out = []
    for _ in range(n):
        d = rng.uniform(20, 60) * (1 if centre_brighter else -1)
        image = np.full((SIDE_PX, SIDE_PX, 3), 120.0) + rng.normal(0, 4, (1, 1, 1))
        image -= d * inside
        image[top:bottom, left:right] += d
        out.append(np.clip(np.rint(image), 0, 255).astype(np.uint8))
    return out


def files_of(fakes: list[np.ndarray], reals: list[np.ndarray]) -> ImageSet:
    images = fakes + reals
    labels = np.array([1] * len(fakes) + [0] * len(reals))
    return ImageSet(images, labels, [""] * len(images), [""] * len(images), [""] * len(images))


def test_the_scene_side_is_the_kits_scene_scale():
    assert SCENE_SIDE == round(NeutralSettings.side * sum(NeutralSettings.context) / 2) == 320


def test_the_paired_interval_is_that_of_the_change():
    rng = np.random.default_rng(0)
    y = np.array([1] * 40 + [0] * 40)
    a = rng.normal(size=80)
    assert paired_auc_gain(y, a, a.copy()) == [0.0, 0.0]
    better = a + 2.0 * y  # the same scores, the fakes lifted
    low, high = paired_auc_gain(y, a, better)
    assert 0 < low <= high


def test_a_scene_view_that_separates_the_classes_is_chosen():
    det = brightness_detector(scene_side=None)
    files = files_of(centre_vs_edges(12, True, 1), centre_vs_edges(12, False, 2))
    logits = scene_logits(det, files.images, SIDE)
    # the patches see only the mean brightness, alike in both classes; the scene view the centre
    fakes_mean, reals_mean = logits.without[:12].mean(), logits.without[12:].mean()
    assert abs(fakes_mean - reals_mean) < 0.1
    assert logits.with_scene[:12].min() > logits.with_scene[12:].max()
    result = measure(det, files, SIDE)
    assert result["with"]["roc_auc"] == 1.0 and result["without"]["roc_auc"] < 0.9
    assert result["roc_auc_gain_ci95"][0] > 0
    assert result["n_fake"] == result["n_real"] == result["n_enlarged"] == 12
    assert result["chosen"] is True and choose(result)


def test_a_scene_view_that_confuses_the_classes_is_not_chosen():
    det = brightness_detector()
    files = files_of(centre_vs_edges(12, False, 3), centre_vs_edges(12, True, 4))
    result = measure(det, files, SIDE)
    assert (
        result["with"]["roc_auc"] < result["without"]["roc_auc"] or result["with"]["roc_auc"] == 0.0
    )
    assert result["chosen"] is False


def test_more_flagged_reals_veto_a_higher_roc_auc():
    base = {
        "roc_auc": 0.70,
        "recall": 0.4,
        "false_positive_rate": 0.05,
        "enlarged_2x_flagged": 0.02,
    }
    assert choose({"without": base, "with": {**base, "roc_auc": 0.72}})
    assert not choose(
        {"without": base, "with": {**base, "roc_auc": 0.72, "false_positive_rate": 0.08}}
    )
    assert not choose(
        {"without": base, "with": {**base, "roc_auc": 0.72, "enlarged_2x_flagged": 0.05}}
    )
    assert not choose({"without": base, "with": {**base, "roc_auc": 0.70}})


def test_measure_refuses_what_it_cannot_measure():
    files = files_of(centre_vs_edges(3, True, 1), centre_vs_edges(3, False, 2))
    with pytest.raises(ValueError, match="must lie in"):
        measure(brightness_detector(), files, 2 * SIZE)
    with pytest.raises(ValueError, match="native_crop models"):
        measure(brightness_detector(whole_view=True), files, SIDE)
    with pytest.raises(ValueError, match="both"):
        measure(brightness_detector(), files_of(files.images, []), SIDE)


def test_write_choice_sets_and_clears_the_cards_scene_side(tmp_path):
    card = tiny_card("t", "simple_cnn", metrics={"test": {"roc_auc": 0.7}})
    prep = dataclasses.replace(card.spec.preprocessing, resize="native_crop")
    card = dataclasses.replace(card, spec=dataclasses.replace(card.spec, preprocessing=prep))
    card.save(tmp_path)
    result = {"side": 40, "chosen": True, "without": {}, "with": {}}
    write_choice(tmp_path, result)
    saved = ModelCard.load(tmp_path)
    assert saved.spec.preprocessing.scene_side == 40
    assert saved.metrics["scene_view"] == result and saved.metrics["test"] == {"roc_auc": 0.7}
    write_choice(tmp_path, {**result, "chosen": False})
    assert ModelCard.load(tmp_path).spec.preprocessing.scene_side is None


def test_the_command_measures_the_validation_files_and_writes_the_card(
    wild_kit,  # noqa: F811
    tmp_path,
    capsys,
):
    from detector.core.models import export_model
    from detector.core.recipes import recipes
    from training.__main__ import main

    kit, pool, _ = wild_kit
    card = tiny_card("native", "simple_cnn", threshold=0.5, uncertain_band=(0.4, 0.6))
    prep = dataclasses.replace(card.spec.preprocessing, resize="native_crop")
    card = dataclasses.replace(card, spec=dataclasses.replace(card.spec, preprocessing=prep))
    models = tmp_path / "models"
    export_model(recipes()["simple_cnn"].build(card.spec), models / "native", card)
    argv = ["scene-view", "native", "--data", str(kit), "--wild-files", str(pool)]
    argv += ["--models-dir", str(models), "--quiet"]
    assert main([*argv, "--side", str(prep.size + 8), "--write"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out[out.index("{") :])
    saved = ModelCard.load(models / "native")
    assert saved.metrics["scene_view"] == shown
    with (kit / "manifest.csv").open(newline="") as f:
        val = [r for r in csv.DictReader(f) if r["split"] == "val" and r["origin"] == "wild"]
    assert shown["n_fake"] + shown["n_real"] == len(val) and shown["split"] == "val"
    assert shown["n_fake"] == sum(r["label_id"] == "1" for r in val)
    expected = prep.size + 8 if shown["chosen"] else None
    assert saved.spec.preprocessing.scene_side == expected
    assert main(argv) == 2  # the kit's 320 px scene side does not fit a 32 px input
    assert "scene_side must lie in" in capsys.readouterr().err
    shutil.rmtree(models / "native")
    assert main(argv) == 2  # a clear error, not a traceback
    assert "unknown model 'native'" in capsys.readouterr().err
