"""An ensemble: several trained models in one flat Keras model, averaging calibrated log-odds.

Each member keeps its own layers (prefixed ``m1_``, ``m2_``...) and its own preprocessing
inside the model; the ensemble's input is the largest member's native-resolution patch, and a
smaller member reads the centre of it, which is what it would read of the image on its own
(for images at least as large as the ensemble's input). The ``logits`` layer is a fixed
weighted sum: each member's fake logit divided by its own calibration temperature, averaged.
Training copies the members' trained weights in (nothing is fitted) and calibrates the result.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from detector.core.card import ModelCard
from detector.core.recipes import Recipe, get_recipe, register
from detector.core.spec import FAKE_LOGIT_WEIGHTS, ModelSpec, Preprocessing

if TYPE_CHECKING:
    from detector.core._keras import keras


#: Keys of a resolved member (what the card stores about each member).
MEMBER_KEYS = ("name", "recipe", "params", "output", "temperature", "sha256")


def member_from_folder(folder: str | Path) -> dict[str, Any]:
    """Describe a trained model folder as an ensemble member (from its card)."""
    card = ModelCard.load(Path(folder))
    return {
        "name": card.name,
        "recipe": card.spec.recipe,
        "params": dict(card.spec.params),
        "output": card.spec.output,
        "temperature": float(card.temperature),
        "sha256": card.sha256,
    }


def _resolve(member: Any) -> dict[str, Any]:
    if isinstance(member, str | Path):
        return member_from_folder(member)
    if isinstance(member, dict) and set(MEMBER_KEYS) <= set(member):
        return {key: member[key] for key in MEMBER_KEYS}
    raise ValueError(
        f"an ensemble member is a trained model folder or a dict with {list(MEMBER_KEYS)}, "
        f"got {member!r}"
    )


def _member_specs(params: dict[str, Any]) -> list[tuple[dict[str, Any], ModelSpec]]:
    return [(m, get_recipe(m["recipe"]).spec(**m["params"])) for m in params["members"]]


def _member_list(members: Any) -> list[Any]:
    """Members as given: a list, or one comma-separated string of folders (the command line)."""
    return [m for m in members.split(",") if m] if isinstance(members, str) else list(members)


def _spec(params: dict[str, Any]) -> ModelSpec:
    members = _member_list(params["members"])
    if len(members) < 2:
        raise ValueError(
            "an ensemble needs at least two members: trained model folders, e.g. "
            "--recipe-param members=assets/models/A,assets/models/B"
        )
    params = {**params, "members": [_resolve(m) for m in members]}
    specs = _member_specs(params)
    for member, spec in specs:
        if spec.preprocessing.resize != "native_crop":
            raise ValueError(
                f"ensemble member {member['name']!r} resizes with {spec.preprocessing.resize!r}; "
                "members must read native-resolution patches (resize native_crop)"
            )
        if spec.attention_layer:
            raise ValueError(f"ensemble member {member['name']!r} has an attention head")
    # the first of the largest members sees the whole input: Grad-CAM explains it, so that its
    # map lines up with the image (a cropped member's map would cover only the centre)
    index, largest = max(enumerate(s for _, s in specs), key=lambda pair: pair[1].input_size)
    # the ensemble's crop keeps every member's grid, and so does each member's centre crop
    grid = math.lcm(*(s.preprocessing.grid for _, s in specs))
    for member, spec in specs:
        margin = (largest.input_size - spec.input_size) // 2
        if margin % spec.preprocessing.grid:
            raise ValueError(
                f"ensemble member {member['name']!r} reads the centre {spec.input_size} px, "
                f"{margin} px from the edge: not on its {spec.preprocessing.grid}-pixel grid"
            )
    return ModelSpec(
        recipe="ensemble",
        preprocessing=Preprocessing(
            size=largest.input_size,
            resize="native_crop",
            interpolation=largest.preprocessing.interpolation,
            scale="raw",  # each member scales its own input inside the model
            grid=grid,
        ),
        output="sigmoid_fake",
        gradcam_layer=f"m{index + 1}_{largest.gradcam_layer}",
        params=params,
    )


def _prefixed_member(model: keras.Model, prefix: str, x):
    """Re-create ``model``'s layers, renamed with ``prefix``, on tensor ``x`` (flat)."""
    from detector.core._keras import keras

    def rename(layer):
        config = layer.get_config()
        config["name"] = prefix + layer.name
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, input_tensors=x, clone_function=rename)


def _model(spec: ModelSpec, weights: str | None) -> keras.Model:
    from detector.core._keras import keras

    layers = keras.layers

    if weights not in (None, "none"):
        raise ValueError("an ensemble takes its weights from its trained members")
    size = spec.input_size
    inputs = keras.Input(shape=(size, size, 3), name="input")
    member_logits, kernel = [], []
    n = len(spec.params["members"])
    for i, (member, member_spec) in enumerate(_member_specs(spec.params), start=1):
        margin = (size - member_spec.input_size) // 2
        x = layers.Cropping2D(margin, name=f"m{i}_crop")(inputs) if margin else inputs
        member_model = get_recipe(member["recipe"]).build(member_spec)
        clone = _prefixed_member(member_model, f"m{i}_", x)
        member_logits.append(clone.get_layer(f"m{i}_logits").output)
        scale = 1.0 / (n * float(member["temperature"]))
        kernel += [w * scale for w in FAKE_LOGIT_WEIGHTS[member["output"]]]
    joined = layers.Concatenate(name="head_members")(member_logits)
    logits = layers.Dense(
        1,
        name="logits",
        trainable=False,
        kernel_initializer=keras.initializers.Constant(np.array(kernel, "float32")[:, None]),
        bias_initializer="zeros",
    )(joined)
    outputs = layers.Activation("sigmoid", name="probs")(logits)
    return keras.Model(inputs, outputs, name="ensemble")


def member_folders(members: Any, models_root: str | Path) -> list[Path]:
    """Where each member's trained folder is: the folder given, or ``models_root/NAME``."""
    return [
        Path(m) if isinstance(m, str | Path) else Path(models_root) / m["name"]
        for m in _member_list(members)
    ]


def copy_member_weights(
    model: keras.Model, spec: ModelSpec, folders: list[Path]
) -> list[ModelCard]:
    """Copy each trained member's weights into the ensemble's ``m{i}_`` layers.

    Every member file is checked against the SHA-256 its description records and loaded in
    Keras safe mode. Returns the members' cards, in order.

    Raises:
        ValueError: if a member's weights changed since the ensemble's spec was resolved.
    """
    from detector.core.card import sha256_file
    from detector.core.models import load_keras_file

    members = spec.params["members"]
    if len(folders) != len(members):
        raise ValueError(f"{len(members)} members but {len(folders)} folders")
    cards = []
    for i, (member, folder) in enumerate(zip(members, folders, strict=True), start=1):
        card = ModelCard.load(folder)
        path = folder / card.weights_file
        if member["sha256"] and sha256_file(path) != member["sha256"]:
            raise ValueError(f"member {member['name']!r} changed: {path} has another SHA-256")
        trained = load_keras_file(path)
        for layer in trained.layers:
            if layer.weights:
                model.get_layer(f"m{i}_{layer.name}").set_weights(layer.get_weights())
        cards.append(card)
    return cards


def _tiny_member(name: str, recipe: str, output: str, **params: Any) -> dict[str, Any]:
    return {
        "name": name,
        "recipe": recipe,
        "params": {"resize": "native_crop", **params},
        "output": output,
        "temperature": 1.0,
        "sha256": "",
    }


RECIPE = register(
    Recipe(
        name="ensemble",
        summary=(
            "Trained models combined: the average of their calibrated log-odds, in one model."
        ),
        reference=(
            "Not a published system: averages members such as S4 (pretrained backbone) and S3 "
            "(residual CNN), whose errors differ. Members are trained model folders; their "
            "weights are copied in unchanged, and the ensemble is calibrated on validation."
        ),
        defaults={"members": ()},
        make_spec=_spec,
        make_model=_model,
        tiny={
            "members": (
                _tiny_member(
                    "tiny_a",
                    "efficientnet_b7_finetune",
                    "sigmoid_fake",
                    input_size=32,
                    backbone="tiny",
                ),
                _tiny_member(
                    "tiny_b",
                    "simple_cnn",
                    "sigmoid_real",
                    input_size=16,
                    widths=(4, 8, 8, 8),
                    dense=(16, 8, 8),
                    input_filter="npr",
                    head="gap",
                ),
            )
        },
    )
)
