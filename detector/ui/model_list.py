"""The models both apps offer: which are trained, how each is labelled and summarised.

`trained_models` lists what can score; `model_choices`, `model_label` and `model_summary` show a
model card's facts (recipe, test metrics) in a line or a paragraph; `no_models_message` and
`untrained_message` say what to do when nothing is trained; `preload_best_model` loads the best
model in the background while an app starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from detector.core.errors import DetectorError
from detector.core.models import ModelInfo, list_models, load_model, models_dir
from detector.ui.texts import (
    METHOD_TITLES,
    METRIC_TITLES,
)

log = logging.getLogger(__name__)


def no_models_message(directory: str | Path | None = None) -> str:
    """What to say when no trained model is installed: plainly, and how to train one."""
    return (
        f"No trained detector is installed (looked in `{models_dir(directory)}`). "
        "This app never scores images with an untrained or random model, so there is nothing to "
        "run yet. Train one with `python -m training train simple_cnn --data DIR --out "
        "assets/models/NAME` (see the README), or set `FAKEDETECT_MODELS_DIR` to a folder of "
        "trained models, then restart the app."
    )


def untrained_message(info: ModelInfo) -> str:
    """What to say when a recipe without weights is selected."""
    return (
        f"`{info.name}` is a recipe without trained weights, so it cannot score images: "
        f"{info.note}."
    )


def trained_models(directory: str | Path | None = None) -> list[ModelInfo]:
    """The trained models, best first (`list_models` order)."""
    return [info for info in list_models(directory) if info.trained]


def preload_best_model(directory: str | Path | None = None) -> threading.Thread:
    """Load the best trained model in a background thread and return the (started) thread.

    An app calls this before its UI toolkit is imported, so that TensorFlow's start-up, the
    model's load and the tracing of its prediction path (`Detector.prepare_prediction`) overlap
    with the toolkit's. A request that needs the model before the thread is done waits for this
    load (`load_model` loads each model once) instead of starting another.
    Failures are logged; the request that needs the model then reports them.
    """

    def load() -> None:
        trained = trained_models(directory)
        if not trained:
            return
        try:
            load_model(trained[0].name, directory).prepare_prediction()
        except DetectorError as exc:
            log.warning("could not preload %s: %s", trained[0].name, exc)

    thread = threading.Thread(target=load, name="preload-best-model", daemon=True)
    thread.start()
    return thread


def model_label(info: ModelInfo) -> str:
    """A short label for a model selector, e.g. ``"simple_cnn_cifake · ROC-AUC 0.91"``."""
    if not info.trained:
        return f"{info.name} · not trained (no weights)"
    text = info.name
    auc = info.metrics.get("roc_auc")
    if isinstance(auc, (int, float)):
        text += f" · ROC-AUC {float(auc):.2f}"
    return text


def model_choices(infos: Sequence[ModelInfo]) -> list[tuple[str, str]]:
    """(label, name) pairs for a model selector: trained models first, in the given order."""
    ordered = [i for i in infos if i.trained] + [i for i in infos if not i.trained]
    return [(model_label(info), info.name) for info in ordered]


def model_summary(info: ModelInfo) -> str:
    """A short Markdown description of a model for the UIs."""
    if not info.trained:
        return untrained_message(info)
    parts = [f"**{info.title or info.name}**"]
    if info.summary:
        parts.append(info.summary)
    metrics = ", ".join(
        f"{METRIC_TITLES.get(key, key.replace('_', ' '))} {float(value):.3f}"
        for key, value in info.metrics.items()
        if isinstance(value, (int, float))
    )
    if metrics:
        parts.append(f"Test set: {metrics}.")
    parts.append(
        f"Input {info.input_size} px; explanations: "
        + ", ".join(METHOD_TITLES.get(m, m) for m in info.methods)
        + "."
    )
    return " ".join(parts)


def picker_help(infos: Sequence[ModelInfo]) -> str:
    """The help of a model picker: every trained model in a line, best first (Markdown)."""
    return (
        "Trained models, best on images from unseen sources first:\n\n"
        + "\n".join(f"- {model_label(info)}" for info in infos)
        + "\n\nPick several to compare them side by side."
    )


def offered_methods(infos: Sequence[ModelInfo], names: Sequence[str]) -> list[str]:
    """The explanation methods any of the chosen models offers, in the usual order."""
    chosen = [info for info in infos if info.name in names]
    offered = [m for m in METHOD_TITLES if any(m in info.methods for info in chosen)]
    return offered or ["gradcam"]
