"""Model folders: listing, loading with checksums and safe mode, clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import make_image, tiny_card

import detector
from detector.core._keras import keras
from detector.core.models import clear_cache, export_model, load_keras_file


def test_list_models_marks_trained_and_untrained(trained_dir):
    infos = detector.list_models(trained_dir)
    names = [info.name for info in infos]
    assert names[:2] == ["tiny_attention", "tiny_cnn"], "trained first, best ROC-AUC first"
    assert all(info.trained for info in infos[:2])
    untrained = {info.name for info in infos if not info.trained}
    # a recipe is listed as untrained unless a model with its default backbone ships: the tiny
    # simple_cnn counts (no backbone), the tiny-backbone attention model does not; an ensemble
    # is listed only once one is trained (it cannot be described without its members)
    assert untrained == {
        "efficientnet_b2",
        "efficientnet_b7_attention",
        "efficientnet_b7_finetune",
        "backbone_npr_fusion",
        "dct_spectrum",
        "linear_probe",
    }
    assert all("python -m training train" in i.note for i in infos if not i.trained)
    assert infos[0].methods == ("gradcam", "gradcam++", "attention")


def test_load_predict_and_cache(trained_dir):
    det = detector.load_model("tiny_cnn", trained_dir)
    assert detector.load_model("tiny_cnn", trained_dir) is det
    result = det.predict(make_image(64, 64))
    assert result.model == "tiny_cnn" and result.threshold == 0.5
    assert result.uncertain_band == (0.4, 0.6)
    expected = (
        "uncertain" if 0.4 <= result.p_fake < 0.6 else ("fake" if result.p_fake >= 0.5 else "real")
    )
    assert result.label == expected


def test_concurrent_loads_of_one_model_load_it_once(trained_dir, monkeypatch):
    """The app warms its default model up in the background while a first visitor may already
    ask for it: the second caller waits for the first load instead of loading it again."""
    import threading
    import time

    from detector.core import models

    clear_cache()
    real = models._load_uncached
    calls: list[str] = []

    def slow_load(root, name):
        calls.append(name)
        time.sleep(0.3)  # both threads are inside load_model before the first load ends
        return real(root, name)

    monkeypatch.setattr(models, "_load_uncached", slow_load)
    got: list[object] = []
    threads = [
        threading.Thread(target=lambda: got.append(detector.load_model("tiny_cnn", trained_dir)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["tiny_cnn"]
    assert len(got) == 3 and got[0] is got[1] is got[2]
    clear_cache()


def test_default_model_is_the_best_trained(trained_dir):
    assert detector.default_model_name(trained_dir) == "tiny_attention"


def test_untrained_and_unknown_models_are_clear_errors(trained_dir):
    with pytest.raises(detector.ModelNotTrainedError, match="python -m training train"):
        detector.load_model("efficientnet_b7_finetune", trained_dir)
    # a recipe that cannot even be described without parameters (an ensemble's members)
    with pytest.raises(detector.ModelNotTrainedError, match="train ensemble"):
        detector.load_model("ensemble", trained_dir)
    with pytest.raises(detector.ModelNotFoundError, match="known: "):
        detector.load_model("gpt_vision", trained_dir)


def test_checksum_mismatch_and_missing_weights(trained_dir, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(trained_dir, root)
    clear_cache()
    weights = root / "tiny_cnn" / "model.keras"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(detector.ChecksumError, match="do not match their card"):
        detector.load_model("tiny_cnn", root)
    weights.unlink()
    with pytest.raises(detector.ModelLoadError, match="weights file missing"):
        detector.load_model("tiny_cnn", root)


def test_malformed_card_is_skipped_in_listing(trained_dir, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(trained_dir, root)
    (root / "tiny_cnn" / "card.json").write_text("{not json")
    names = [i.name for i in detector.list_models(root) if i.trained]
    assert names == ["tiny_attention"]


def test_card_band_must_contain_threshold():
    with pytest.raises(ValueError, match="threshold"):
        tiny_card("x", "simple_cnn", threshold=0.7, uncertain_band=(0.4, 0.6))


def test_labels_follow_threshold_and_band():
    card = tiny_card("x", "simple_cnn", threshold=0.5, uncertain_band=(0.4, 0.6))
    assert [card.label_for(p) for p in (0.1, 0.4, 0.59, 0.6, 0.95)] == [
        "real",
        "uncertain",
        "uncertain",
        "fake",
        "fake",
    ]


def test_lambda_models_are_refused(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    path = tmp_path / "evil.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(detector.UnsafeModelError, match="Lambda"):
        load_keras_file(path)


def test_non_keras_files_are_refused(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n")
    with pytest.raises(detector.ModelLoadError, match=r"only \.keras"):
        load_keras_file(path)
    fake = tmp_path / "model.keras"
    fake.write_bytes(b"not a zip")
    with pytest.raises(detector.ModelLoadError, match=r"not a valid \.keras"):
        load_keras_file(fake)


def test_export_writes_card_with_sha(tmp_path):
    card = tiny_card("exported", "simple_cnn")
    model = detector.core.recipes.get_recipe("simple_cnn").build(card.spec)
    written = export_model(model, tmp_path / "exported", card)
    data = json.loads((tmp_path / "exported" / "card.json").read_text())
    assert data["sha256"] == written.sha256 and len(written.sha256) == 64
    det = detector.load_model("exported", tmp_path)
    x = card.spec.preprocessing.apply(make_image(32, 32))[None]
    expected = 1.0 - float(np.asarray(model(x))[0, 0])  # sigmoid_real convention
    assert det.p_fake_batch(x)[0] == pytest.approx(expected, abs=1e-5)


def test_predictions_carry_domain_warnings(trained_dir):
    det = detector.load_model("tiny_cnn", trained_dir)
    grey = np.repeat(make_image(64, 64)[..., :1], 3, axis=2)
    from conftest import encode

    result = det.predict(encode(grey))
    assert any("black-and-white" in w for w in result.warnings)
    assert det.predict(encode(grey), warnings=False).warnings == ()
    colour = det.explain(encode(make_image(64, 64)))
    assert not any("black-and-white" in w for w in colour.prediction.warnings)
    assert result.to_dict()["warnings"] == list(result.warnings)


def test_export_drops_optimizer_state(tmp_path):
    from detector.core._keras import keras

    card = tiny_card("compiled", "simple_cnn")
    model = detector.core.recipes.get_recipe("simple_cnn").build(card.spec)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    x = np.stack([card.spec.preprocessing.apply(make_image(32, 32, s)) for s in range(4)])
    model.fit(x, np.ones((4, 1)), epochs=1, verbose=0)  # creates the Adam slots
    plain = tmp_path / "plain"
    written = export_model(model, tmp_path / "compiled", card)
    plain_card = tiny_card("plain", "simple_cnn")
    export_model(detector.core.recipes.get_recipe("simple_cnn").build(card.spec), plain, plain_card)
    size = (tmp_path / "compiled" / "model.keras").stat().st_size
    assert size <= (plain / "model.keras").stat().st_size * 1.05
    det = detector.load_model("compiled", tmp_path)
    expected = 1.0 - np.asarray(model(x[:1]))[0, 0]
    assert det.p_fake_batch(x[:1])[0] == pytest.approx(expected, abs=1e-5)
    assert written.sha256 == detector.core.card.sha256_file(tmp_path / "compiled" / "model.keras")


def _with_truth(folder, wild_auc: float, controls_fpr: float) -> None:
    path = folder / "card.json"
    card = json.loads(path.read_text())
    card["metrics"]["truth"] = {
        "wild_val": {"clean": {"roc_auc": wild_auc}},
        "controls_val": {"clean": {"false_positive_rate": controls_fpr}},
    }
    path.write_text(json.dumps(card))


def test_default_model_is_chosen_on_wild_validation_and_controls(trained_dir, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(trained_dir, folder)
    assert detector.default_model_name(folder) == "tiny_attention"  # by kit test ROC-AUC
    # a model measured on the wild pool outranks models measured on the kit alone
    _with_truth(folder / "tiny_cnn", wild_auc=0.70, controls_fpr=0.10)
    assert detector.default_model_name(folder) == "tiny_cnn"
    # a better wild ROC-AUC bought with false alarms on the controls loses
    _with_truth(folder / "tiny_attention", wild_auc=0.80, controls_fpr=0.25)
    assert detector.default_model_name(folder) == "tiny_cnn"
    _with_truth(folder / "tiny_attention", wild_auc=0.80, controls_fpr=0.15)
    assert detector.default_model_name(folder) == "tiny_attention"
    # the whole validation split (kit, wild, controls) weighs in: a model that lost the kit's
    # fakes to win on the wild pool does not become the default
    for name, val_auc in (("tiny_cnn", 0.95), ("tiny_attention", 0.60)):
        card = json.loads((folder / name / "card.json").read_text())
        card["metrics"]["val"] = {"roc_auc": val_auc}
        (folder / name / "card.json").write_text(json.dumps(card))
    assert detector.default_model_name(folder) == "tiny_cnn"
