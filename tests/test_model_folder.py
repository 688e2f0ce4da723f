"""A models folder is data from disk: bad or clashing cards cannot break listing or loading.

One bad folder is skipped with a logged, named error while the good models still list and load;
cards are bounded in size and depth, their weights stay inside their own folder, their numbers
are finite; two folders giving one name are both refused; errors name files, never server paths.
"""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import tiny_card

import detector
from detector.core import models
from detector.core.card import MAX_CARD_BYTES, ModelCard, sha256_file
from detector.core.models import check_keras_archive, clear_cache, load_keras_file


@pytest.fixture()
def root(trained_dir, tmp_path) -> Path:
    """A private copy of the tiny trained models (tiny_cnn, tiny_attention)."""
    copy = tmp_path / "models"
    shutil.copytree(trained_dir, copy)
    clear_cache()
    yield copy
    clear_cache()


def variant(root: Path, folder: str, **changes) -> Path:
    """A copy of tiny_cnn's folder under another folder name, its card fields changed."""
    target = root / folder
    shutil.copytree(root / "tiny_cnn", target)
    card = json.loads((target / "card.json").read_text())
    card.update(changes)
    (target / "card.json").write_text(json.dumps(card))
    return target


def trained_names(root: Path) -> list[str]:
    return sorted(info.name for info in detector.list_models(root) if info.trained)


def test_a_deeply_nested_card_is_skipped_and_the_good_models_still_work(root, caplog):
    (root / "broken").mkdir()
    (root / "broken" / "card.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "deep_but_short").mkdir()  # deep enough to hurt later, short enough to parse
    (root / "deep_but_short" / "card.json").write_text('{"a": ' + "[" * 500 + "]" * 500 + "}")
    with caplog.at_level(logging.WARNING, logger="detector.core.models"):
        assert trained_names(root) == ["tiny_attention", "tiny_cnn"]
    assert "skipping model folder" in caplog.text and "(bad_card)" in caplog.text
    assert "broken/card.json: nested more than 32 deep" in caplog.text
    assert "deep_but_short/card.json: nested more than 32 deep" in caplog.text
    assert detector.load_model("tiny_cnn", root).name == "tiny_cnn"
    from detector.cli import main

    assert main(["--models-dir", str(root), "list"]) == 0


def test_an_oversized_card_is_skipped(root, caplog):
    big = variant(root, "big", name="big")
    card = json.loads((big / "card.json").read_text())
    card["limitations"] = ["x" * MAX_CARD_BYTES]
    (big / "card.json").write_text(json.dumps(card))
    with caplog.at_level(logging.WARNING, logger="detector.core.models"):
        assert trained_names(root) == ["tiny_attention", "tiny_cnn"]
    assert "big/card.json is too large: over 1024 kB" in caplog.text
    with pytest.raises(detector.ModelNotFoundError):
        detector.load_model("big", root)


@pytest.mark.parametrize(
    "card_text",
    ['"a string"', "[]", '{"name": "x", "spec": [1], "sha256": ""}', "\xff\xfe", "{not json"],
)
def test_a_card_of_the_wrong_shape_is_a_named_error(card_text):
    with pytest.raises(detector.ModelLoadError, match=r"malformed model card m/card\.json") as info:
        ModelCard.from_json(card_text.encode("latin-1"), where="m/card.json")
    assert info.value.code == "bad_card"


@pytest.mark.parametrize(
    "weights_file",
    ["../tiny_attention/model.keras", "../../x.keras", "sub/model.keras", "..", "", "C:m.keras"],
)
def test_weights_file_must_be_a_bare_name_inside_its_folder(root, weights_file, caplog):
    variant(root, "escape", name="escape", weights_file=weights_file)
    with caplog.at_level(logging.WARNING, logger="detector.core.models"):
        assert trained_names(root) == ["tiny_attention", "tiny_cnn"]
    assert "weights_file must be a file name inside the model's folder" in caplog.text
    with pytest.raises(detector.ModelNotFoundError):
        detector.load_model("escape", root)


def test_weights_outside_the_models_folder_do_not_load(root, tmp_path):
    """The probe's case: an absolute path to another model, with its true SHA-256, loaded."""
    outside = tmp_path / "outside" / "evil.keras"
    outside.parent.mkdir()
    shutil.copy(root / "tiny_attention" / "model.keras", outside)
    variant(root, "evil", name="evil", weights_file=str(outside), sha256=sha256_file(outside))
    variant(root, "evil2", name="evil2", weights_file="..\\tiny_attention\\model.keras")
    assert trained_names(root) == ["tiny_attention", "tiny_cnn"]
    for name in ("evil", "evil2"):
        with pytest.raises(detector.ModelNotFoundError):
            detector.load_model(name, root)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", float("inf")),
        ("temperature", float("nan")),
        ("temperature", 0),
        ("temperature", -1.0),
        ("temperature", "1.0"),
        ("temperature", True),
        ("threshold", float("nan")),
        ("threshold", float("inf")),
        ("threshold", 1.5),
        ("threshold", "0.5"),
        ("uncertain_band", [0.4, float("inf")]),
        ("uncertain_band", [0.4, 0.5, 0.6]),
    ],
)
def test_card_numbers_must_be_finite_and_in_range(field, value):
    data = tiny_card("x", "simple_cnn").to_dict()
    data[field] = value
    raw = json.dumps(data).encode()  # Python writes inf and nan as Infinity and NaN
    with pytest.raises(detector.ModelLoadError) as info:
        ModelCard.from_json(raw, where="x/card.json")
    assert info.value.code == "bad_card"
    assert field.split("_")[0] in str(info.value)


def test_a_finite_card_still_loads():
    card = tiny_card("x", "simple_cnn", threshold=0.4, uncertain_band=(0.3, 0.6), temperature=0.7)
    again = ModelCard.from_json(json.dumps(card.to_dict()).encode())
    assert (again.threshold, again.uncertain_band, again.temperature) == (0.4, (0.3, 0.6), 0.7)


def test_two_folders_giving_one_name_are_both_refused(root, caplog):
    """A second card with the same name (here with threshold 0) must not shadow the first."""
    variant(root, "zz_shadow", threshold=0.0, uncertain_band=[0.0, 0.0])
    with caplog.at_level(logging.WARNING, logger="detector.core.models"):
        assert trained_names(root) == ["tiny_attention"]
        with pytest.raises(detector.ModelLoadError, match="more than one model folder") as info:
            detector.load_model("tiny_cnn", root)
    assert info.value.code == "duplicate_model_name"
    assert "(tiny_cnn, zz_shadow)" in str(info.value)
    assert "refusing model 'tiny_cnn'" in caplog.text
    assert detector.load_model("tiny_attention", root).name == "tiny_attention"
    shutil.rmtree(root / "zz_shadow")  # unique again: it loads
    assert detector.load_model("tiny_cnn", root).card.threshold == 0.5


def test_cards_are_parsed_again_only_when_their_bytes_change(root, monkeypatch):
    parsed: list[str] = []
    real = ModelCard.from_json.__func__

    def counting(cls, raw, *, where="card.json"):
        parsed.append(where)
        return real(cls, raw, where=where)

    monkeypatch.setattr(ModelCard, "from_json", classmethod(counting))
    for _ in range(5):
        detector.list_models(root)
    assert sorted(parsed) == ["tiny_attention/card.json", "tiny_cnn/card.json"]
    card = json.loads((root / "tiny_cnn" / "card.json").read_text())
    card["title"] = "Retitled"  # same file, new bytes: read afresh on the next call
    (root / "tiny_cnn" / "card.json").write_text(json.dumps(card))
    titles = {info.name: info.title for info in detector.list_models(root)}
    assert titles["tiny_cnn"] == "Retitled"
    assert sorted(parsed) == [
        "tiny_attention/card.json",
        "tiny_cnn/card.json",
        "tiny_cnn/card.json",
    ]


def _archive(path: Path, config: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", config)
        archive.writestr("metadata.json", "{}")
    return path


def test_a_deeply_nested_keras_config_is_a_named_error(tmp_path):
    deep = _archive(tmp_path / "deep.keras", b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(detector.ModelLoadError, match="nested too deeply") as info:
        check_keras_archive(deep)
    assert info.value.code == "bad_archive"
    layered = {"class_name": "Functional", "config": {}}
    node = layered["config"]
    for _ in range(300):  # parses fine, still far deeper than any real model
        node["layers"] = [{"class_name": "Dense", "config": {}}]
        node = node["layers"][0]["config"]
    medium = _archive(tmp_path / "medium.keras", json.dumps(layered).encode())
    with pytest.raises(detector.ModelLoadError, match="nested more than 200 deep"):
        load_keras_file(medium)


def test_a_huge_keras_config_is_refused_without_reading_it_all(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "MAX_CONFIG_BYTES", 1000)
    big = _archive(tmp_path / "big.keras", b'{"class_name": "Functional"}' + b" " * 5000)
    with pytest.raises(detector.ModelLoadError, match=r"config\.json is over"):
        check_keras_archive(big)


def test_the_unsafe_check_still_finds_code_without_recursion(tmp_path):
    config = {
        "class_name": "Functional",
        "config": {
            "layers": [
                {"class_name": "Lambda", "config": {"name": "scale"}},
                {"class_name": "Lambda", "config": "not a dict"},
                {"class_name": "system", "registered_name": "os>system", "config": {}},
            ]
        },
    }
    path = _archive(tmp_path / "code.keras", json.dumps(config).encode())
    with pytest.raises(detector.UnsafeModelError) as info:
        check_keras_archive(path)
    assert "Lambda layer 'scale'" in str(info.value)
    assert "custom object 'os>system'" in str(info.value)


def test_model_load_errors_name_the_file_not_the_server_path(root, caplog):
    """Visitors see these messages in the apps; the full path goes to the log only."""
    (root / "tiny_cnn" / "model.keras").unlink()
    with (
        caplog.at_level(logging.WARNING, logger="detector.core.models"),
        pytest.raises(detector.ModelLoadError, match="weights file missing") as info,
    ):
        detector.load_model("tiny_cnn", root)
    message = str(info.value)
    assert message == "weights file missing for model 'tiny_cnn': model.keras"
    assert str(root) not in message and "/" not in message
    assert str(root / "tiny_cnn" / "model.keras") in caplog.text
    with pytest.raises(detector.ModelNotTrainedError) as none:
        detector.default_model_name(root / "empty")
    assert str(root) not in str(none.value)


def test_keras_errors_lose_their_folders(tmp_path, caplog):
    config = {"class_name": "NoSuchLayerAnywhere", "config": {}, "module": "keras.layers"}
    path = _archive(tmp_path / "odd.keras", json.dumps(config).encode())
    with (
        caplog.at_level(logging.WARNING, logger="detector.core.models"),
        pytest.raises(detector.ModelLoadError) as info,
    ):
        load_keras_file(path)
    assert str(info.value).startswith("cannot load odd.keras")
    assert str(tmp_path) not in str(info.value)
    text = models._without_folders(f"open {path} in {path.parent}/x failed", path)
    assert text == "open odd.keras in x failed"
