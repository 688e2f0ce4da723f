"""UI-agnostic helpers for the classroom mode and for the Streamlit app.

Plain data in, plain data out: the example images and their known answers, a compact per-model
analysis that is cheap to cache, what a model actually sees (its input and its coarse heatmap
grid), live JPEG / downsizing curves of P(fake), the measured results and known limits from the
model cards, quiz scoring, and the lesson texts. Nothing here imports a UI library, and nothing
writes a user's file (or its name) to disk.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from detector.core.errors import DetectorError
from detector.core.heatmaps import colorize, normalize_maps
from detector.core.images import load_image
from detector.core.models import load_model, models_dir, trained_cards
from detector.core.results import Prediction
from detector.evidence.stress import (
    StressResult,
    plot_stress,
    scale_variant,
)
from detector.ui.presentation import (
    BATCH_FIELDS,
    DISPLAY_MAX_SIDE,
    HEADLINES,
    METHOD_TITLES,
    BatchRow,
    HeatmapView,
    StressOutcome,
    _csv_cell,
    error_text,
    heatmap_view,
    percent,
    run_model,
    run_stress,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

#: Environment variable that points the apps at another folder of example images.
EXAMPLES_DIR_ENV = "FAKEDETECT_EXAMPLES_DIR"
DEFAULT_EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "examples"

#: JPEG qualities of the compression curve, from light to crushing (the untouched image is
#: drawn at 100 as "orig").
JPEG_QUALITIES: tuple[int, ...] = (95, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5)
#: Sizes of the downsizing curve, in percent of the original width and height.
SIZES: tuple[int, ...] = (100, 85, 70, 50, 35, 25, 15, 10)
#: The two ways an image is degraded in the robustness demo.
DEGRADATIONS: dict[str, str] = {"jpeg": "JPEG quality", "resize": "Downsizing"}


# ---------------------------------------------------------------------------------- examples
@dataclass(frozen=True)
class Example:
    """One example image from ``examples.json``, with its known answer and its credit.

    Attributes:
        file: File name inside the examples folder.
        path: Absolute path of the image (checked to be inside the examples folder).
        label: ``fake`` or ``real`` (anything else means the answer is unknown).
        source, generator, licence, author: Attribution, as given in ``examples.json``.
    """

    file: str
    path: Path
    label: str = ""
    source: str = ""
    generator: str = ""
    licence: str = ""
    author: str = ""

    @property
    def known(self) -> bool:
        """True when the example's answer (fake or real) is known."""
        return self.label in ("fake", "real")

    @property
    def answer(self) -> str:
        """The known answer in words, e.g. ``"AI-generated (Stable Diffusion 1.5)"``."""
        if self.label == "fake":
            return "AI-generated" + (f" ({self.generator})" if self.generator else "")
        if self.label == "real":
            return "a real photo"
        return "not known"

    @property
    def credit(self) -> str:
        """Source, author and licence in one line (empty when none is given)."""
        parts = (("source", self.source), ("author", self.author), ("licence", self.licence))
        return ", ".join(f"{key}: {value}" for key, value in parts if value)

    @property
    def title(self) -> str:
        """A short display name: the file name without its extension."""
        return Path(self.file).stem.replace("_", " ").replace("-", " ")


def examples_dir(override: str | Path | None = None) -> Path:
    """The examples folder: ``override``, ``$FAKEDETECT_EXAMPLES_DIR`` or ``assets/examples``."""
    if override is not None:
        return Path(override)
    env = os.environ.get(EXAMPLES_DIR_ENV)
    return Path(env) if env else DEFAULT_EXAMPLES_DIR


def load_examples(folder: str | Path | None = None) -> list[Example]:
    """The examples listed in ``examples.json`` whose image exists (none if it is missing).

    Entries that are malformed, or whose file is missing or lies outside the folder, are
    skipped. ``examples.json`` is a list of objects (or ``{"examples": [...]}``) with the keys
    ``file, label, source, generator, licence, author``.
    """
    root = examples_dir(folder)
    try:
        entries: Any = json.loads((root / "examples.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if isinstance(entries, dict):
        entries = entries.get("examples", [])
    found: list[Example] = []
    resolved_root = root.resolve()
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            continue
        path = (root / entry["file"]).resolve()
        if not path.is_file() or path.parent != resolved_root:
            continue
        text = {key: str(entry.get(key) or "") for key in Example.__dataclass_fields__}
        found.append(
            Example(
                file=entry["file"],
                path=path,
                label=text["label"].strip().lower(),
                source=text["source"],
                generator=text["generator"],
                licence=text["licence"],
                author=text["author"],
            )
        )
    return found


def example_note(example: Example, number: int | None = None) -> str:
    """The known answer and the credit of an example, as Markdown."""
    name = f"Example {number}" if number is not None else f"`{example.file}`"
    note = f"**{name}** is {example.answer}."
    return f"{note} {example.credit}." if example.credit else note


# ---------------------------------------------------------------------------------- analysis
@dataclass(frozen=True, eq=False)
class ModelView:
    """One model's answer on one image, small enough to cache: no full-size arrays.

    Attributes:
        model: The model's name.
        prediction: Its prediction, or None when it failed.
        view: The explanation at display size (None without an explanation or on failure).
        method: The explanation method asked for (None: prediction only).
        error: What went wrong, for the UI (None on success).
    """

    model: str
    prediction: Prediction | None = None
    view: HeatmapView | None = None
    method: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the model produced a prediction."""
        return self.prediction is not None

    @property
    def method_note(self) -> str:
        """Says so when the model lacks the method asked for and another one is shown."""
        if self.view is None or self.method is None or self.view.method == self.method:
            return ""
        return (
            f"`{self.model}` has no {METHOD_TITLES.get(self.method, self.method)}; showing "
            f"{METHOD_TITLES.get(self.view.method, self.view.method)}."
        )


def analyse(
    image: np.ndarray, name: str, method: str | None = "gradcam", max_side: int = DISPLAY_MAX_SIDE
) -> ModelView:
    """Score (and explain, unless ``method`` is None) a decoded image with one model.

    Never raises: a model that fails gives a `ModelView` with an ``error``. Models without the
    requested method fall back to Grad-CAM (see `ModelView.method_note`).
    """
    outcome = run_model(image, name, method)
    if outcome.prediction is None:
        return ModelView(name, method=method, error=outcome.error or "unknown error")
    view = None
    if outcome.explanation is not None:
        view = heatmap_view(image, outcome.explanation, max_side)
    return ModelView(name, outcome.prediction, view, method)


def view_rows(file: str, views: Sequence[ModelView]) -> list[BatchRow]:
    """Batch-table rows (`presentation.BatchRow`) for one file's model views."""
    return [
        BatchRow(
            file,
            v.model,
            v.prediction.label if v.prediction else None,
            v.prediction.p_fake if v.prediction else None,
            v.prediction.seconds if v.prediction else None,
            v.error,
        )
        for v in views
    ]


def error_row(file: str, names: Sequence[str], error: str) -> list[BatchRow]:
    """One error row per model for a file that could not be read."""
    return [BatchRow(file, name, None, None, None, error) for name in names]


def results_csv(rows: Sequence[BatchRow]) -> bytes:
    """Rows as CSV bytes (`presentation.BATCH_FIELDS` columns), made safe for spreadsheets."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(BATCH_FIELDS)
    for row in rows:
        writer.writerow([_csv_cell(value) for value in row.to_list()])
    return buffer.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------------- model input
@dataclass(frozen=True, eq=False)
class ModelInput:
    """What a model actually sees of an image, and how coarse its heatmap really is.

    Attributes:
        model: The model's name.
        size: Side of the square model input, in pixels.
        seen: The model input as an RGB uint8 image (size x size).
        grid: (rows, columns) of the model's heatmap before smoothing.
        blocks: The coarse heatmap drawn as blocks over ``seen`` (no smoothing).
        smooth: The smoothed heatmap the apps show, over ``seen``.
        method: The explanation method used.
        p_fake: P(fake) from the same pass.
    """

    model: str
    size: int
    seen: np.ndarray = field(repr=False)
    grid: tuple[int, int]
    blocks: np.ndarray = field(repr=False)
    smooth: np.ndarray = field(repr=False)
    method: str
    p_fake: float


def model_input(image: np.ndarray, name: str, method: str = "gradcam") -> ModelInput:
    """The model's-eye view of an image: its input and its raw heatmap grid.

    Raises:
        DetectorError: if the model cannot be loaded.
    """
    det = load_model(name)
    method = method if method in det.methods else "gradcam"
    seen = det.spec.preprocessing.apply(image)
    batch = seen[None]
    probs, coarse = det.coarse_maps(batch, method)
    _, smooth = det.input_maps(batch, method)
    size = det.spec.input_size
    grid = normalize_maps(coarse)[0]
    rows, cols = grid.shape
    blocks = np.asarray(
        Image.fromarray(grid.astype(np.float32)).resize((size, size), Image.Resampling.NEAREST),
        dtype=np.float32,
    )
    seen_rgb = np.clip(np.rint(seen), 0, 255).astype(np.uint8)
    return ModelInput(
        model=name,
        size=size,
        seen=seen_rgb,
        grid=(int(rows), int(cols)),
        blocks=_blend(seen_rgb, blocks),
        smooth=_blend(seen_rgb, smooth[0]),
        method=method,
        p_fake=float(probs[0]),
    )


def _blend(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    colored = colorize(np.clip(heatmap, 0.0, 1.0)).astype(np.float32)
    return np.clip(np.rint(image * (1 - alpha) + colored * alpha), 0, 255).astype(np.uint8)


def enlarge(image: np.ndarray, side: int = 384) -> np.ndarray:
    """Blow a small image up with visible pixels (nearest neighbour) for display."""
    height, width = image.shape[:2]
    scale = max(1, round(side / max(height, width)))
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def hot_overlap(first: np.ndarray, second: np.ndarray, top: float = 0.2) -> float:
    """How much the hottest ``top`` fraction of two heatmaps overlap (intersection over union).

    1.0 means both maps point at the same place; near 0 means they highlight different areas.
    """
    if first.shape != second.shape:
        second = np.asarray(
            Image.fromarray(second.astype(np.float32)).resize(first.shape[::-1]), np.float32
        )
    a = first >= np.quantile(first, 1.0 - top)
    b = second >= np.quantile(second, 1.0 - top)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


# ---------------------------------------------------------------------------------- robustness
def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """An image encoded as JPEG at ``quality`` (1-100), in memory.

    The encoding is the stress test's (`detector.evidence.stress.jpeg_variant`): the same pixels.
    """
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(np.clip(quality, 1, 100)))
    return buffer.getvalue()


def jpeg_recompress(image: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """Re-encode an image as JPEG at ``quality`` (1-100) in memory: (decoded image, bytes)."""
    data = jpeg_bytes(image, quality)
    return load_image(data), len(data)


def downsize(image: np.ndarray, percent_side: float) -> np.ndarray | None:
    """Shrink an image to ``percent_side`` % of each side, as the stress test does.

    Returns None when the shorter side would fall below `detector.evidence.stress.MIN_VARIANT_SIDE`.
    """
    return scale_variant(image, float(percent_side) / 100.0)


def degrade(image: np.ndarray, kind: str, level: float) -> np.ndarray | None:
    """The image after one degradation: ``jpeg`` at quality ``level`` or ``resize`` to level %."""
    if kind == "jpeg":
        return jpeg_recompress(image, int(level))[0]
    if kind == "resize":
        return downsize(image, float(level))
    raise ValueError(f"unknown degradation {kind!r}; use one of: {', '.join(DEGRADATIONS)}")


def degraded_file(image: np.ndarray, kind: str, level: float) -> bytes | None:
    """The degraded image as a file, in memory: JPEG at quality ``level``, or PNG at level %.

    None when the image is too small to be downsized that far.
    """
    if kind == "jpeg":
        return jpeg_bytes(image, int(level))
    small = degrade(image, kind, level)
    if small is None:
        return None
    buffer = io.BytesIO()
    Image.fromarray(small).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class StressRun(StressOutcome):
    """`detector.ui.presentation.StressOutcome` plus the lesson's per-model summary."""

    def summary(self, kind: str = "jpeg") -> str:
        """A Markdown list: how far each model's P(fake) moved under ``kind``, and its flips."""
        lines = []
        for item in self.result.models if self.result else ():
            values = [v for v in (item.jpeg if kind == "jpeg" else item.scale) if v == v]
            low, high = min([item.baseline, *values]), max([item.baseline, *values])
            flips = [f for f in item.flips if f.startswith("jpeg" if kind == "jpeg" else "scale")]
            moved = (
                f"its verdict flips at {', '.join(flips)}" if flips else "its verdict never flips"
            )
            fragile = " **Fragile on this image.**" if item.fragile else ""
            lines.append(
                f"`{item.model}`: P(AI-generated) between {percent(low)} and {percent(high)} "
                f"(untouched image {percent(item.baseline)}); {moved}.{fragile}"
            )
        lines.extend(f"`{name}` failed: {error}" for name, error in self.errors.items())
        return "\n".join(f"- {line}" for line in lines)


def stress_curves(image: np.ndarray, names: Sequence[str]) -> StressRun:
    """Run `detector.evidence.stress.stress_test` at `JPEG_QUALITIES` and `SIZES`, model by model.

    A model that cannot load or score is listed in ``errors`` and the others go on.
    """
    outcome = run_stress(image, names, JPEG_QUALITIES, tuple(size / 100.0 for size in SIZES))
    return StressRun(outcome.result, outcome.errors)


def plot_curves(
    result: StressResult, kind: str | None = None, level: float | None = None
) -> Figure:
    """`detector.evidence.stress.plot_stress`, with the slider's position marked on its panel.

    Args:
        result: The stress result.
        kind: ``jpeg`` or ``resize``: the panel to mark.
        level: The JPEG quality, or the size in percent, to mark with a vertical line.
    """
    fig = plot_stress(result)
    axes = fig.get_axes()
    if kind in DEGRADATIONS and level is not None and len(axes) >= 2:
        axis = axes[0] if kind == "jpeg" else axes[1]
        x = float(level) if kind == "jpeg" else float(level) / 100.0
        axis.axvline(x, color="#212121", linestyle=":", linewidth=2)
        axis.set_title(axis.get_title(), fontweight="bold")
    return fig


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """A matplotlib figure rendered to PNG bytes (in memory)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------- model cards
_CONDITIONS = {
    "jpeg_q": "JPEG quality {}",
    "downscale_x": "downsized to {}% of its side",
    "blur_sigma": "blurred (Gaussian, sigma {})",
    "center_crop_": "centre crop, {}% of the side",
}

_METRIC_NAMES = {
    "accuracy": "Accuracy",
    "roc_auc": "ROC-AUC",
    "average_precision": "Average precision",
    "f1": "F1",
    "precision": "Precision (of 'AI-generated' calls)",
    "recall": "Recall (fakes caught)",
    "ece": "Calibration error (ECE)",
    "uncertain_fraction": "Share reported 'uncertain'",
    "accuracy_when_confident": "Accuracy when not 'uncertain'",
}


def condition_name(key: str) -> str:
    """A robustness-table key in words, e.g. ``jpeg_q75`` -> ``JPEG quality 75``."""
    for prefix, template in _CONDITIONS.items():
        if key.startswith(prefix):
            value = key[len(prefix) :]
            try:
                number = float(value)
            except ValueError:
                return key.replace("_", " ")
            if prefix in ("downscale_x", "center_crop_") and number <= 1:
                return template.format(round(number * 100))
            return template.format(value)
    return key.replace("_", " ")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class ModelFacts:
    """What a model card says about how good a model is and where it fails.

    Attributes:
        name, title, summary: Identity of the model.
        test: Rows (metric, value) measured on the test split.
        test_size: "n images (n_fake AI-generated, n_real real)" or "".
        ood: Rows (metric, value) on an out-of-distribution test split, if measured.
        robustness: Rows (condition, ROC-AUC, accuracy, accuracy change vs the clean test set).
        per_generator: Rows (generator, images, detection rate) on the test split.
        limitations: The known limits, in plain words.
        training: Rows (split, images, AI-generated, real, generators) of the training data.
        dataset: Where the training data came from.
    """

    name: str
    title: str
    summary: str
    test: tuple[tuple[str, str], ...] = ()
    test_size: str = ""
    ood: tuple[tuple[str, str], ...] = ()
    robustness: tuple[dict[str, Any], ...] = ()
    per_generator: tuple[dict[str, Any], ...] = ()
    limitations: tuple[str, ...] = ()
    training: tuple[dict[str, Any], ...] = ()
    dataset: str = ""

    @property
    def measured(self) -> bool:
        """True when the card holds any measured result."""
        return bool(self.test or self.robustness or self.ood)


def _metric_rows(split: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    rows = []
    for key, title in _METRIC_NAMES.items():
        value = _number(split.get(key))
        if value is None:
            continue
        text = f"{value:.3f}" if key in ("roc_auc", "average_precision", "ece") else percent(value)
        rows.append((title, text))
    return tuple(rows)


def _size_text(split: Mapping[str, Any]) -> str:
    n = split.get("n")
    if not isinstance(n, int):
        return ""
    parts = [f"{n} images"]
    if isinstance(split.get("n_fake"), int) and isinstance(split.get("n_real"), int):
        parts.append(f"({split['n_fake']} AI-generated, {split['n_real']} real)")
    return " ".join(parts)


def _joined(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} ({v})" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def facts_from_card(card: Any) -> ModelFacts:
    """`ModelFacts` from a `ModelCard` (missing sections give empty rows, never an error)."""
    metrics = card.metrics if isinstance(card.metrics, Mapping) else {}
    test = metrics.get("test") if isinstance(metrics.get("test"), Mapping) else {}
    ood_key = next((k for k in ("test_ood", "ood") if isinstance(metrics.get(k), Mapping)), None)
    clean_accuracy = _number(test.get("accuracy"))
    robustness = []
    table = metrics.get("robustness") if isinstance(metrics.get("robustness"), Mapping) else {}
    for key, entry in table.items():
        if not isinstance(entry, Mapping):
            continue
        accuracy = _number(entry.get("accuracy"))
        auc = _number(entry.get("roc_auc"))
        change = (
            f"{100 * (accuracy - clean_accuracy):+.1f} points"
            if accuracy is not None and clean_accuracy is not None
            else ""
        )
        robustness.append(
            {
                "condition": condition_name(key),
                "ROC-AUC": "" if auc is None else f"{auc:.3f}",
                "accuracy": "" if accuracy is None else percent(accuracy),
                "change in accuracy": change,
            }
        )
    per_generator = []
    generators = test.get("per_generator") if isinstance(test.get("per_generator"), Mapping) else {}
    for generator, entry in generators.items():
        if isinstance(entry, Mapping) and _number(entry.get("detection_rate")) is not None:
            per_generator.append(
                {
                    "generator": str(generator),
                    "images": entry.get("n", ""),
                    "detected": percent(float(entry["detection_rate"])),
                }
            )
    data = card.training_data if isinstance(card.training_data, Mapping) else {}
    training = []
    splits = data.get("splits") if isinstance(data.get("splits"), Mapping) else {}
    for split, entry in splits.items():
        if isinstance(entry, Mapping):
            training.append(
                {
                    "split": str(split),
                    "images": entry.get("n", ""),
                    "AI-generated": entry.get("n_fake", ""),
                    "real": entry.get("n_real", ""),
                    "generators": _joined(entry.get("generators")),
                    "sources of real photos": _joined(entry.get("sources")),
                }
            )
    dataset = _joined(data.get("dataset") or data.get("name") or "")
    extra = [
        f"{key.replace('_', ' ')}: {_joined(value)}"
        for key, value in data.items()
        if key not in ("splits", "dataset", "name", "manifest_sha256") and _joined(value)
    ]
    if extra:
        dataset = "; ".join([dataset, *extra] if dataset else extra)
    return ModelFacts(
        name=card.name,
        title=card.title or card.name,
        summary=card.summary,
        test=_metric_rows(test),
        test_size=_size_text(test),
        ood=_metric_rows(metrics[ood_key]) if ood_key else (),
        robustness=tuple(robustness),
        per_generator=tuple(per_generator),
        limitations=tuple(str(item) for item in card.limitations),
        training=tuple(training),
        dataset=dataset,
    )


def model_facts(names: Sequence[str] | None = None) -> list[ModelFacts]:
    """The facts of the trained models (default: all, in the given or card order)."""
    cards = trained_cards()
    wanted = list(names) if names is not None else list(cards)
    return [facts_from_card(cards[name]) for name in wanted if name in cards]


# ---------------------------------------------------------------------------------- quiz
#: The answers a player can give, and the labels they mean.
GUESSES: dict[str, str] = {"AI-generated": "fake", "Real photo": "real"}


def quiz_order(count: int, seed: int | None = None) -> list[int]:
    """A shuffled order of ``count`` quiz rounds (the same for the same seed)."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return order


def new_score(models: Sequence[str] = ()) -> dict[str, Any]:
    """An empty quiz score (a plain dict, ready for a UI's session state)."""
    return {"rounds": 0, "you": 0, "models": {name: 0 for name in models}, "history": []}


def score_round(
    score: Mapping[str, Any], guess: str, truth: str, predictions: Sequence[Prediction]
) -> dict[str, Any]:
    """The score after one round (a new dict; ``score`` is not changed).

    A model is right when its label equals the truth; ``uncertain`` counts as not right.
    """
    guessed = GUESSES.get(guess, guess)
    models = dict(score.get("models", {}))
    for prediction in predictions:
        right = prediction.label == truth
        models[prediction.model] = models.get(prediction.model, 0) + int(right)
    history = [
        *score.get("history", []),
        {
            "truth": truth,
            "guess": guessed,
            "models": {p.model: p.label for p in predictions},
        },
    ]
    return {
        "rounds": int(score.get("rounds", 0)) + 1,
        "you": int(score.get("you", 0)) + int(guessed == truth),
        "models": models,
        "history": history,
    }


def round_feedback(guess: str, truth: str, predictions: Sequence[Prediction]) -> str:
    """What to say when a round is revealed (Markdown)."""
    guessed = GUESSES.get(guess, guess)
    answer = "AI-generated" if truth == "fake" else "a real photo"
    you = "You were right" if guessed == truth else "Not this time"
    lines = [f"**{you}: this image is {answer}.**", "", "What the models said:"]
    for p in predictions:
        if p.label == "uncertain":
            mark = "unsure, counts as not right"
        else:
            mark = "right" if p.label == truth else "wrong"
        lines.append(
            f"- `{p.model}`: {HEADLINES[p.label].lower()}, P(AI-generated) {percent(p.p_fake)} "
            f"({mark})"
        )
    return "\n".join(lines)


def score_text(score: Mapping[str, Any]) -> str:
    """The running score in one line."""
    rounds = int(score.get("rounds", 0))
    parts = [f"You {score.get('you', 0)}/{rounds}"]
    parts += [f"`{name}` {right}/{rounds}" for name, right in score.get("models", {}).items()]
    return " · ".join(parts)


# ---------------------------------------------------------------------------------- lessons
LESSON_INTRO = """A detector is a neural network trained on thousands of images labelled *real*
or *AI-generated*. It never "understands" a picture: it learns statistical traces (textures,
noise, colour patterns, the fingerprints that image generators leave) that separated the two
kinds of images **in its training data**. This page lets you see what that means, live, on any
image: pick one of the examples or upload your own."""

LESSON_PIPELINE = """**How a score is made.** The image is first shrunk (and sometimes cropped)
to the model's small square input, here **{size} x {size} pixels**: everything finer is gone
before the model even looks. The network turns those pixels into one number, a *calibrated
probability* that the image is AI-generated. Above the threshold ({threshold}) the verdict is
*AI-generated*, below it *real*; scores close to the threshold are reported as *uncertain*
rather than forced into a guess. A probability of 80% means: among images that got this score
during testing, about 8 in 10 were AI-generated. It is evidence, not proof."""

LESSON_HEATMAP = """A heatmap tries to answer "where did the model look?". **Grad-CAM**
follows the score back into the network's last layer of image features and colours the places
whose features raised the *AI-generated* score the most. **Grad-CAM++** weighs those features
differently, so several separate areas can light up. Models with an **attention layer** also
show where that layer chose to look before deciding."""

LESSON_MISLEAD = """**Where heatmaps mislead.** The blocky map is what the model really
computed: a grid of only **{rows} x {cols}** blocks over its {size} px input. The smooth map is
the same grid, blurred for display: its soft edges are decoration, not precision. The colours
are relative to this image only (the hottest spot is always red, even when the score is low),
and two methods can disagree about the same image (see their overlap above). A hot area is
never proof that this part of the image was generated."""

LESSON_COMPRESSION = """Detectors learn from tiny pixel-level traces, and those are exactly what
**JPEG compression** and **downsizing** throw away. Every time an image is shared on social
media or a messenger, it is usually compressed and resized again. Move the slider: the image is
re-encoded (or shrunk) in memory and scored again, live. Watch the curve: if the score slides
towards the threshold, the model's evidence is disappearing with the pixels. A model trained
without compressed images can even flip its verdict."""

LESSON_LIMITS = """These numbers come from each model's card: they were measured once, on a
held-out test set of images the model never saw during training. They only hold for images
**like the training data**: a new image generator, a screenshot, a heavily edited photo or a
very small image can be scored badly while the model still sounds confident."""

QUIZ_INTRO = """Can you tell? Look at each image, make your guess, then reveal what the models
say and the true answer. Your score and the models' are kept for this session."""

NO_EXAMPLES = """The quiz needs example images with known answers. Add image files and an
`examples.json` listing them (`file`, `label` = `fake` or `real`, `source`, `generator`,
`licence`, `author`) to `assets/examples/`, or point `FAKEDETECT_EXAMPLES_DIR` at such a
folder, then reload this page."""


def lesson_pipeline(size: int, threshold: float) -> str:
    """`LESSON_PIPELINE` filled in for one model."""
    return LESSON_PIPELINE.format(size=size, threshold=percent(threshold))


def lesson_mislead(view: ModelInput) -> str:
    """`LESSON_MISLEAD` filled in for one model's input."""
    rows, cols = view.grid
    return LESSON_MISLEAD.format(rows=rows, cols=cols, size=view.size)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^&])")


def md_escape(text: str) -> str:
    """Text (e.g. a user's file name) made inert in Markdown: every markup character escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def safe_call(func: Callable[[], Any]) -> tuple[Any, str | None]:
    """Run ``func``; return (result, None), or (None, error text) if it raised."""
    try:
        return func(), None
    except DetectorError as exc:
        return None, error_text(exc)
    except Exception as exc:  # a UI section must not take the page down
        log.exception("classroom helper failed")
        return None, error_text(exc)


__all__ = [
    "DEFAULT_EXAMPLES_DIR",
    "DEGRADATIONS",
    "EXAMPLES_DIR_ENV",
    "GUESSES",
    "JPEG_QUALITIES",
    "SIZES",
    "Example",
    "ModelFacts",
    "ModelInput",
    "ModelView",
    "StressRun",
    "analyse",
    "degrade",
    "degraded_file",
    "downsize",
    "enlarge",
    "error_row",
    "example_note",
    "examples_dir",
    "facts_from_card",
    "figure_png",
    "hot_overlap",
    "jpeg_bytes",
    "jpeg_recompress",
    "load_examples",
    "md_escape",
    "model_facts",
    "model_input",
    "models_dir",
    "new_score",
    "plot_curves",
    "quiz_order",
    "results_csv",
    "round_feedback",
    "safe_call",
    "score_round",
    "score_text",
    "stress_curves",
    "view_rows",
]
