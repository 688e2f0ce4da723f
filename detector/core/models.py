"""Finding, verifying and loading trained models (cards + ``.keras`` weights)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.core.card import ModelCard, card_label, read_card_bytes, sha256_file
from detector.core.errors import (
    ChecksumError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotTrainedError,
    UnsafeModelError,
)
from detector.core.recipes import get_recipe, recipes

log = logging.getLogger(__name__)

#: Environment variable that points the package at another folder of trained models.
MODELS_DIR_ENV = "FAKEDETECT_MODELS_DIR"
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[2] / "assets" / "models"


def models_dir(override: str | Path | None = None) -> Path:
    """The folder holding one sub-folder per trained model."""
    if override is not None:
        return Path(override)
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env) if env else DEFAULT_MODELS_DIR


@dataclass(frozen=True)
class ModelInfo:
    """A model the tool knows: trained (weights + card present) or a recipe without weights.

    Attributes:
        name: Name to load it by.
        recipe: Recipe it was built from.
        trained: True when trained weights and a card are present.
        title: Human-readable name.
        summary: One line for the UIs.
        methods: Explanation methods it supports.
        input_size: Model input side in pixels.
        metrics: Headline test metrics from the card (empty for untrained recipes).
        note: For untrained recipes, how to get weights.
    """

    name: str
    recipe: str
    trained: bool
    title: str
    summary: str
    methods: tuple[str, ...]
    input_size: int
    metrics: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "recipe": self.recipe,
            "trained": self.trained,
            "title": self.title,
            "summary": self.summary,
            "methods": list(self.methods),
            "input_size": self.input_size,
            "metrics": self.metrics,
            "note": self.note,
        }


def _untrained_note(recipe: str) -> str:
    backbone = recipes()[recipe].params().get("backbone") if recipe in recipes() else None
    what = f"recipe {recipe!r}" + (f" with its default {backbone} backbone" if backbone else "")
    return (
        f"no trained weights ship for {what}; train one with "
        f"`python -m training train {recipe} --data DIR --out assets/models/NAME` "
        "(README, 'Models', also says how to load the published S1 checkpoint)"
    )


def _headline(card: ModelCard) -> dict[str, Any]:
    test = card.metrics.get("test", {}) if isinstance(card.metrics, dict) else {}
    keys = ("roc_auc", "accuracy", "f1", "average_precision")
    return {k: test[k] for k in keys if k in test}


#: Parsed cards by card path: (SHA-256 of the card's bytes, the card or why it was refused).
#: `list_models` runs on every app request; a card is parsed again only when its bytes change.
_CARDS: dict[str, tuple[str, ModelCard | ModelLoadError]] = {}
_CARDS_LOCK = threading.Lock()
#: Problems already logged, so a bad folder is reported once rather than on every request.
_REPORTED: set[str] = set()


def _report(message: str, *args: Any, level: int = logging.WARNING) -> None:
    text = message % args
    with _CARDS_LOCK:
        if text in _REPORTED:
            return
        if len(_REPORTED) >= 1000:  # bounded, whatever keeps changing on disk
            _REPORTED.clear()
        _REPORTED.add(text)
    log.log(level, text)


def _card_of(folder: Path) -> ModelCard | ModelLoadError:
    """The folder's card, or the named error that keeps it out (cached by the card's bytes)."""
    try:
        raw = read_card_bytes(folder)
    except ModelLoadError as exc:
        return exc
    key = str(folder / "card.json")
    digest = hashlib.sha256(raw).hexdigest()
    with _CARDS_LOCK:
        cached = _CARDS.get(key)
    if cached is not None and cached[0] == digest:
        return cached[1]
    try:
        result: ModelCard | ModelLoadError = ModelCard.from_json(raw, where=card_label(folder))
    except ModelLoadError as exc:
        result = exc
    with _CARDS_LOCK:
        _CARDS[key] = (digest, result)
    return result


def _survey(
    directory: str | Path | None,
) -> tuple[dict[str, tuple[ModelCard, Path]], dict[str, ModelLoadError]]:
    """Good models by name, and names refused because more than one folder claims them.

    Only the models folder's own sub-folders are read (no deeper walk). A folder whose card is
    missing, too large, too deeply nested or invalid is skipped with a logged warning that names
    the folder and the problem, and the other models still list and load. Two or more folders
    whose cards give the same name are all refused (none silently shadows the others): a logged
    error names them, and loading that name raises `ModelLoadError` (``duplicate_model_name``).
    """
    root = models_dir(directory)
    if not root.is_dir():
        return {}, {}
    claims: dict[str, list[tuple[ModelCard, Path]]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if not (folder / "card.json").is_file():
            continue
        card = _card_of(folder)
        if isinstance(card, ModelLoadError):
            _report("skipping model folder %s (%s): %s", folder, card.code, card)
            continue
        claims.setdefault(card.name, []).append((card, folder))
    found: dict[str, tuple[ModelCard, Path]] = {}
    refused: dict[str, ModelLoadError] = {}
    for name, owners in claims.items():
        if len(owners) == 1:
            found[name] = owners[0]
            continue
        folders = ", ".join(folder.name for _, folder in owners)
        refused[name] = ModelLoadError(
            f"model name {name!r} is given by more than one model folder ({folders}); none of "
            "them is loaded until the names are made unique",
            code="duplicate_model_name",
        )
        _report("refusing model %r: %s", name, refused[name], level=logging.ERROR)
    return found, refused


def _scan(directory: str | Path | None) -> dict[str, tuple[ModelCard, Path]]:
    """Good models by name: (card, folder) (see `_survey` for what is skipped and why)."""
    return _survey(directory)[0]


def trained_cards(directory: str | Path | None = None) -> dict[str, ModelCard]:
    """Cards of every model folder under the models directory, by name (bad cards are skipped)."""
    return {name: card for name, (card, _) in _scan(directory).items()}


def selection_score(card: ModelCard) -> tuple[int, float]:
    """How the default model is chosen: on validation data like the images people bring.

    A card with a truth table ranks by the mean of two validation ROC-AUCs, on the wild split
    (source repositories apart from training) and on the whole validation split (starter kit,
    wild pool and controls: the kit's upscaler fakes still count), minus the share of the
    validation negative controls (enlarged, shrunk, re-encoded real photos) it flags, all before
    any stress. Such cards rank above cards measured only on the starter kit, which rank by kit
    test ROC-AUC. The test splits never choose.
    """
    metrics = card.metrics if isinstance(card.metrics, dict) else {}
    truth = metrics.get("truth", {}) if isinstance(metrics.get("truth"), dict) else {}
    wild = truth.get("wild_val", {}).get("clean", {}).get("roc_auc")
    controls = truth.get("controls_val", {}).get("clean", {}).get("false_positive_rate")
    whole = metrics.get("val", {}).get("roc_auc") if isinstance(metrics.get("val"), dict) else None
    if isinstance(wild, (int, float)) and isinstance(controls, (int, float)):
        auc = (wild + whole) / 2 if isinstance(whole, (int, float)) else wild
        return (1, float(auc) - float(controls))
    return (0, float(_headline(card).get("roc_auc", 0.0)))


def list_models(directory: str | Path | None = None) -> list[ModelInfo]:
    """Every trained model (best first, see `selection_score`), then recipes without weights."""
    cards = trained_cards(directory)
    infos = [
        ModelInfo(
            name=card.name,
            recipe=card.spec.recipe,
            trained=True,
            title=card.title or card.name,
            summary=card.summary,
            methods=card.spec.explain_methods,
            input_size=card.spec.input_size,
            metrics=_headline(card),
        )
        for card in cards.values()
    ]
    ranks = {name: selection_score(card) for name, card in cards.items()}
    infos.sort(key=lambda info: ranks[info.name], reverse=True)
    # a recipe counts as trained when a model with its default backbone ships
    trained = {(c.spec.recipe, c.spec.params.get("backbone")) for c in cards.values()}
    for name, recipe in recipes().items():
        if name in cards or (name, recipe.params().get("backbone")) in trained:
            continue
        try:
            spec = recipe.spec()
        except ValueError:  # needs parameters to exist at all (an ensemble's members)
            continue
        infos.append(
            ModelInfo(
                name=name,
                recipe=name,
                trained=False,
                title=name,
                summary=recipe.summary,
                methods=spec.explain_methods,
                input_size=spec.input_size,
                note=_untrained_note(name),
            )
        )
    return infos


def default_model_name(directory: str | Path | None = None) -> str:
    """The best trained model's name.

    Raises:
        ModelNotTrainedError: if no trained model is present.
    """
    for info in list_models(directory):
        if info.trained:
            return info.name
    root = models_dir(directory)
    log.info("no trained models in %s", root)
    raise ModelNotTrainedError(
        f"no trained models found in the models folder ({root.name or root}); train one with "
        "`python -m training train simple_cnn ...`"
    )


#: The model "name" that asks for every trained model (``--model all`` on the command line).
ALL_MODELS = "all"


def resolve_model_names(
    names: Sequence[str] | None = None,
    directory: str | Path | None = None,
    *,
    check: bool = False,
) -> list[str]:
    """The models a request means: the names as given, the best trained model, or all of them.

    The one place where a list of model names is resolved: the CLI, the Beam pipeline and
    `detector.scan_paths` pick their models here.

    Args:
        names: Model names; None or empty for the best trained model; ``["all"]`` for every
            trained model, best first (`list_models` order).
        directory: Models folder; defaults to ``assets/models`` or ``$FAKEDETECT_MODELS_DIR``.
        check: Also refuse, before anything runs, a name that is not a trained model.

    Raises:
        ModelNotTrainedError: no trained model is present (for the default or ``all``), or with
            ``check``, a name that is a recipe without weights.
        ModelNotFoundError: with ``check``, an unknown name (the message lists the known ones).
    """
    if not names or list(names) == [ALL_MODELS]:
        trained = [info.name for info in list_models(directory) if info.trained]
        if not trained:
            raise ModelNotTrainedError(
                "no trained models found; train one (see README, 'Training') or point "
                "--models-dir / FAKEDETECT_MODELS_DIR at a folder of trained models"
            )
        return trained if names else trained[:1]
    if check:
        cards = trained_cards(directory)
        for name in names:
            if name in cards:
                continue
            if name in recipes():
                raise ModelNotTrainedError(f"no trained weights for {name!r} in the models folder")
            known = ", ".join(sorted(set(cards) | set(recipes())))
            raise ModelNotFoundError(f"unknown model {name!r}; known: {known}")
    return list(names)


#: Largest accepted ``config.json`` inside a ``.keras`` archive (the shipped ones are < 400 kB).
MAX_CONFIG_BYTES = 64 * 1024 * 1024
#: Deepest accepted nesting of a ``.keras`` config (the shipped ones reach 12).
MAX_CONFIG_DEPTH = 200


def check_keras_archive(path: Path) -> None:
    """Refuse ``.keras`` archives that would need arbitrary code to load.

    Looks inside the archive's config for Lambda layers and for classes outside Keras and this
    package. Keras ``safe_mode`` also refuses Lambda layers; this gives a clearer message first.
    The config is read at most `MAX_CONFIG_BYTES` and walked without recursion; nesting deeper
    than `MAX_CONFIG_DEPTH` is refused.

    Raises:
        UnsafeModelError: naming what was found.
        ModelLoadError: if the file is not a ``.keras`` archive, or its config is too large or
            too deeply nested.
    """
    import json

    try:
        with zipfile.ZipFile(path) as archive, archive.open("config.json") as member:
            raw = member.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ModelLoadError(
                f"{path.name}: config.json is over {MAX_CONFIG_BYTES // 2**20} MB; refusing",
                code="bad_archive",
            )
        config = json.loads(raw)
    except RecursionError:
        raise ModelLoadError(
            f"{path.name}: config.json is nested too deeply; refusing", code="bad_archive"
        ) from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        text = _without_folders(str(exc), path)
        raise ModelLoadError(f"{path.name} is not a valid .keras archive: {text}") from None
    found: list[str] = []
    stack: list[tuple[Any, int]] = [(config, 1)]
    while stack:  # not recursive: a deep config is a named error, not a RecursionError
        node, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_CONFIG_DEPTH:
            raise ModelLoadError(
                f"{path.name}: config.json is nested more than {MAX_CONFIG_DEPTH} deep; refusing",
                code="bad_archive",
            )
        if isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
            continue
        class_name = node.get("class_name")
        module = node.get("module")
        registered = node.get("registered_name")
        if class_name in ("Lambda", "TFOpLambda") or (
            class_name == "function" and module not in (None, "builtins")
        ):
            inner = node.get("config")
            layer = inner.get("name", "") if isinstance(inner, dict) else ""
            found.append(f"{class_name} layer {layer!r}")
        elif isinstance(registered, str) and ">" in registered:
            package = registered.split(">", 1)[0]
            if package not in ("detector", "keras"):
                found.append(f"custom object {registered!r}")
        stack.extend((value, depth + 1) for value in node.values())
    if found:
        raise UnsafeModelError(
            f"{path.name} needs code to load ({', '.join(sorted(set(found)))}); refusing. "
            "Load it with allow_unsafe=True only if you trust its author."
        )


def _without_folders(text: str, path: Path) -> str:
    """``text`` with ``path``'s folders taken out: messages name the file, logs hold the path."""
    for full in sorted({str(path), str(path.absolute()), str(path.resolve())}, key=len)[::-1]:
        text = text.replace(full, path.name)
    parents = {str(path.parent), str(path.absolute().parent), str(path.resolve().parent)}
    for folder in sorted(parents, key=len)[::-1]:
        if folder.rstrip(os.sep) not in ("", "."):  # never "/" itself: that is every slash
            text = text.replace(folder.rstrip(os.sep) + os.sep, "")
    return text


def load_keras_file(path: Path, *, allow_unsafe: bool = False):
    """Load a ``.keras`` file with Keras safe mode and this package's layers.

    Args:
        path: The ``.keras`` archive.
        allow_unsafe: Allow Lambda layers / custom code (logs a warning). Never for user uploads.

    Raises:
        UnsafeModelError: if the model needs code and ``allow_unsafe`` is False.
        ModelLoadError: for any other loading failure.
    """
    from detector.core._keras import keras
    from detector.core.layers import CUSTOM_OBJECTS

    if path.suffix != ".keras":
        raise ModelLoadError(
            f"refusing {path.name}: only .keras archives load (no pickle, no SavedModel code)",
            code="unsupported_model_format",
        )
    if allow_unsafe:
        log.warning(
            "loading %s with safe_mode=False: Lambda layers and custom code in it will run", path
        )
    else:
        check_keras_archive(path)
    try:
        return keras.saving.load_model(
            path, custom_objects=CUSTOM_OBJECTS, compile=False, safe_mode=not allow_unsafe
        )
    except ValueError as exc:
        log.warning("cannot load %s: %s", path, exc)
        text = _without_folders(str(exc), path)
        if "safe_mode" in text or "Lambda" in text:
            raise UnsafeModelError(f"{path.name}: {text}") from None
        raise ModelLoadError(f"cannot load {path.name}: {text}") from None
    except Exception as exc:  # keras raises many types for damaged archives
        log.warning("cannot load %s: %s: %s", path, type(exc).__name__, exc)
        text = _without_folders(str(exc), path)
        raise ModelLoadError(f"cannot load {path.name}: {type(exc).__name__}: {text}") from None


_CACHE: dict[tuple[str, str], Any] = {}
_CACHE_LOCK = threading.Lock()
#: One lock per model being loaded: a second caller waits for the first load instead of
#: loading the same weights again (e.g. the app's background warm-up and a first visitor).
_LOADING: dict[tuple[str, str], threading.Lock] = {}


def load_model(name: str | None = None, directory: str | Path | None = None, *, cache: bool = True):
    """Load a trained model by name, verified against its card.

    Args:
        name: Model name (see `list_models`); None for the best trained model.
        directory: Models folder; defaults to ``assets/models`` or ``$FAKEDETECT_MODELS_DIR``.
        cache: Reuse an already-loaded model in this process (models are never mutated).

    Returns:
        A `detector.core.runtime.Detector`.

    Raises:
        ModelNotFoundError: unknown name.
        ModelNotTrainedError: the recipe exists but ships no weights.
        ChecksumError: the weights' SHA-256 differs from the card's.
        ModelLoadError: missing or unloadable files.
    """
    name = name or default_model_name(directory)
    root = models_dir(directory)
    key = (str(root.resolve()), name)
    if not cache:
        return _load_uncached(root, name)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        loading = _LOADING.setdefault(key, threading.Lock())
    with loading:
        with _CACHE_LOCK:
            if key in _CACHE:  # loaded by another thread while this one waited
                return _CACHE[key]
        detector = _load_uncached(root, name)
        with _CACHE_LOCK:
            _CACHE[key] = detector
            _LOADING.pop(key, None)
        return detector


def _load_uncached(root: Path, name: str):
    """Find, verify and load model ``name`` from ``root`` (no cache)."""
    from detector.core.runtime import Detector

    found, refused = _survey(root)
    if name in refused:
        raise ModelLoadError(str(refused[name]), code=refused[name].code)
    if name not in found:
        if name in recipes():
            raise ModelNotTrainedError(_untrained_note(name))
        known = ", ".join(sorted(set(found) | set(recipes())))
        raise ModelNotFoundError(f"unknown model {name!r}; known: {known}")
    card, folder = found[name]
    get_recipe(card.spec.recipe)  # the recipe must exist in this version
    weights = folder / card.weights_file  # a bare file name: the card checks it
    if not weights.is_file():
        log.warning("weights file missing for model %r: %s", name, weights)
        raise ModelLoadError(
            f"weights file missing for model {name!r}: {card.weights_file}",
            code="missing",
        )
    digest = sha256_file(weights)
    if digest != card.sha256:
        raise ChecksumError(
            f"weights of model {name!r} do not match their card (sha256 {digest[:12]}... != "
            f"{card.sha256[:12]}...); the file is damaged or was replaced"
        )
    model = load_keras_file(weights)
    return Detector(model, card)


def clear_cache() -> None:
    """Forget every loaded model (tests, reloading after training)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def export_model(model: Any, folder: str | Path, card: ModelCard) -> ModelCard:
    """Save a Keras model and its card into ``folder``, recording the weights' SHA-256.

    Args:
        model: The Keras model.
        folder: Destination folder (created if needed).
        card: The card to write; its ``sha256`` is replaced by the saved file's.

    Returns:
        The card as written.
    """
    from dataclasses import replace

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = _without_optimizer(model)
    weights = folder / card.weights_file
    tmp = weights.with_name(weights.stem + ".tmp.keras")
    model.save(tmp)
    tmp.replace(weights)
    written = replace(card, sha256=sha256_file(weights))
    written.save(folder)
    clear_cache()
    return written


def _without_optimizer(model: Any) -> Any:
    """An uncompiled copy of a compiled model, so the archive holds no optimizer state."""
    if getattr(model, "optimizer", None) is None:
        return model
    from detector.core._keras import keras
    from detector.core.layers import CUSTOM_OBJECTS

    # rebuilt from its layer config only (clone_model and model_from_json recompile it)
    copy = keras.Model.from_config(model.get_config(), custom_objects=CUSTOM_OBJECTS)
    copy.set_weights(model.get_weights())
    for layer in copy.layers:  # e.g. Normalization: assigned statistics take effect here
        if hasattr(layer, "finalize_state") and getattr(layer, "built", False):
            with contextlib.suppress(AttributeError, ValueError, NotImplementedError):
                layer.finalize_state()
    return copy


def reexport(folder: str | Path) -> ModelCard:
    """Rewrite a model folder's weights without optimizer state (same weights, new SHA-256)."""
    folder = Path(folder)
    card = ModelCard.load(folder)
    model = load_keras_file(folder / card.weights_file)
    return export_model(model, folder, card)
