"""UI-agnostic presentation helpers shared by the Gradio and Streamlit apps: their one entry point.

Everything here returns plain data (strings, numbers, dataclasses, numpy arrays). This module runs
what the apps ask for: per-model runs that survive a failing model (`run_model`, `run_models`,
giving the one `ModelOutcome` type of `outcome` that both apps render), an upload's combined
headline (`assess_upload`), batch-table rows (`batch_rows`), a file's domain warnings (`load_file`,
`with_warnings`) and the stress test (`run_stress`). What they show is built in sibling modules,
re-exported here (`__all__`) so that an app needs only ``from detector.ui import presentation``: the
texts (`texts`), models (`model_list`), verdicts and probability bars (`verdicts`, as HTML cards in
`verdict_cards`), the headline as HTML or Markdown (`headline_view`), heatmaps and patch maps at
display size (`heatmap_view`), in-memory zip extraction with limits and CSV files (`uploads`), and
the evidence board (`evidence_board`). Nothing here imports a UI library or writes a user's file
name to disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from detector.core.domain import ImageChecks, domain_warnings, image_checks
from detector.core.errors import DetectorError, ModelNotTrainedError
from detector.core.heatmaps import DEFAULT_ALPHA
from detector.core.images import (
    ImageInfo,
    ImageSource,
    decode_file,
    load_image,
)
from detector.core.models import load_model
from detector.core.results import Prediction
from detector.evidence.assessment import Assessment
from detector.evidence.metadata import inspect_file
from detector.evidence.report import EVIDENCE_NOTE as EVIDENCE_NOTE
from detector.evidence.stability import check_stability
from detector.evidence.stress import (
    DEFAULT_JPEG_QUALITIES,
    DEFAULT_SCALES,
    StressResult,
    stress_test,
)
from detector.evidence.verdict import headline
from detector.scale.batch import ScanItem, scan
from detector.ui.evidence_board import (
    EVIDENCE_INTRO,
    EVIDENCE_TONES,
    EVIDENCE_VALUE_CHARS,
    FORENSIC_EXPLANATIONS,
    FORENSIC_TITLES,
    INDICATIONS,
    STRESS_FIELDS,
    STRESS_PLOT_ALT,
    EvidenceRow,
    ForensicView,
    StressOutcome,
    evidence_details,
    evidence_error,
    evidence_headline,
    evidence_markdown,
    evidence_rows,
    evidence_table,
    forensic_views,
    stress_markdown,
    stress_rows,
)
from detector.ui.headline_view import (
    ABSENCE_LINE,
    BASIS_TEXTS,
    HEADLINE_COLOURS,
    HEADLINE_MARKDOWN_COLOURS,
    HeadlineView,
    headline_html,
    headline_markdown,
    headline_view,
)
from detector.ui.heatmap_view import (
    HeatmapView,
    PatchView,
    display_size,
    heatmap_note,
    heatmap_view,
    heatmap_views,
    patch_view,
    resize_for_display,
)
from detector.ui.model_list import (
    model_choices,
    model_label,
    model_summary,
    no_models_message,
    offered_methods,
    picker_help,
    preload_best_model,
    trained_models,
    untrained_message,
)
from detector.ui.outcome import ModelOutcome
from detector.ui.texts import (
    COLOURS,
    DISPLAY_MAX_SIDE,
    HEADLINES,
    LABELS,
    METHOD_TITLES,
    METRIC_TITLES,
    error_text,
    md_text,
    percent,
    read_error,
)
from detector.ui.uploads import (
    BATCH_FIELDS,
    BatchRow,
    UploadItem,
    UploadLimits,
    batch_summary,
    clean_name,
    extract_zip,
    prune_files,
    read_uploads,
    write_csv,
)
from detector.ui.verdict_cards import bar_html, verdict_html
from detector.ui.verdicts import (
    Agreement,
    ProbabilityBar,
    Verdict,
    agreement,
    api_prediction,
    api_result,
    inspect_result,
    probability_bar,
    probability_bars,
    verdict,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- headline


def assess_upload(
    image: LoadedImage, prediction: Prediction | None, model: Any | None = None
) -> Assessment:
    """The combined headline of a decoded upload and one model's prediction on it.

    `detector.assess`'s steps on an image already decoded: the evidence is read from the
    upload's bytes (none for a bare array), and the prediction's stability is checked on the
    decoded pixels (two more passes of ``model``, by default the prediction's model). Never
    raises: evidence or a stability check that fails is left out, and the headline says so.
    """
    evidence = None
    if image.data is not None:
        try:
            evidence = inspect_file(image.data)
        except Exception:  # the headline must never hide the verdict
            log.exception("reading the evidence failed")
    stability = None
    if prediction is not None:
        try:
            scorer = model if model is not None else load_model(prediction.model)
            stability = check_stability(image.array, scorer, prediction)
        except Exception:
            log.exception("the stability check of %s failed", prediction.model)
    return Assessment(headline(evidence, prediction, stability), evidence, prediction, stability)


# ---------------------------------------------------------------------------------- running


def run_model(
    image: np.ndarray, name: str, method: str | None = "gradcam", *, alpha: float = DEFAULT_ALPHA
) -> ModelOutcome:
    """Score (and explain, unless ``method`` is None) an image with one model; never raises.

    With a method, one compiled forward and backward pass gives both the explanation and the
    prediction (whose time then covers both); without one, a plain forward pass scores it.
    """
    try:
        det = load_model(name)
        if method is None:
            return ModelOutcome(name, det.predict(image))
        chosen = method if method in det.methods else "gradcam"
        explanation = det.explain(image, chosen, alpha=alpha)
        return ModelOutcome(name, explanation.prediction, explanation, method=method)
    except DetectorError as exc:
        return ModelOutcome(name, error=error_text(exc), method=method)
    except Exception as exc:  # one failing model must not take the others down
        log.exception("model %s failed", name)
        return ModelOutcome(name, error=error_text(exc), method=method)


def run_models(
    image: ImageSource, names: Sequence[str] | None = None, method: str | None = "gradcam"
) -> list[ModelOutcome]:
    """Run several models (default: every trained one) on one image.

    Raises:
        ImageLoadError: if the image cannot be read.
        ModelNotTrainedError: if no name is given and no trained model is installed.
    """
    array = image if _is_rgb(image) else load_image(image)
    if names is None:
        names = [info.name for info in trained_models()]
        if not names:
            raise ModelNotTrainedError(no_models_message())
    return [run_model(array, name, method) for name in names]


def comparison_rows(outcomes: Sequence[ModelOutcome]) -> list[dict[str, Any]]:
    """One row per model: model, verdict, P(fake), threshold, inference ms, error."""
    rows = []
    for outcome in outcomes:
        pred = outcome.prediction
        rows.append(
            {
                "model": outcome.model,
                "verdict": HEADLINES[pred.label] if pred else "failed",
                "p_fake": round(pred.p_fake, 4) if pred else None,
                "threshold": round(pred.threshold, 4) if pred else None,
                "ms": round(1000.0 * pred.seconds, 1) if pred else None,
                "error": outcome.error or "",
            }
        )
    return rows


def _is_rgb(image: object) -> bool:
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
    )


# ---------------------------------------------------------------------------------- batches


def batch_rows(
    items: Sequence[UploadItem | ScanItem],
    names: Sequence[str],
    *,
    chunk: int = 16,
    progress: Callable[[int], None] | None = None,
) -> list[BatchRow]:
    """Score in-memory files with several models: one row per (file, model), in file order.

    The batch engine of the CLI's scan (`detector.scale.batch.scan`) makes the rows: files are
    decoded ``chunk`` at a time (so a large batch never holds every image in memory) and
    ``progress`` is called after each chunk with the number of files it held. Items are
    uploads (`UploadItem`: bytes or the error that refused them) or `ScanItem` (bytes or decoded
    pixels). A file that cannot be read gets an error row per model; a model that fails (or
    cannot load) gets error rows for its files while the other models go on.
    """
    sources = [
        item if isinstance(item, ScanItem) else ScanItem(item.name, item.data, item.error)
        for item in items
    ]
    rows = scan(
        sources,
        list(names),
        batch_size=max(1, chunk),
        workers=1,
        progress=progress,
        load=load_model,
    )
    return [BatchRow.from_scan(row) for row in rows]


# ---------------------------------------------------------------------------------- warnings
#: Title over a prediction's domain warnings, next to the verdict in both apps.
WARNINGS_TITLE = "Why this score may not be trustworthy"


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded upload with what domain warnings need: its `ImageInfo` and its file bytes.

    ``data`` is None when the source was already decoded (an array or a Pillow image).
    """

    array: np.ndarray = field(repr=False)
    info: ImageInfo
    data: bytes | None = field(default=None, repr=False)

    @cached_property
    def checks(self) -> ImageChecks:
        """The model-independent domain checks of this image, measured on first use only."""
        return image_checks(self.info, self.array, data=self.data)


def load_file(source: ImageSource) -> LoadedImage:
    """Read and decode an upload once, keeping its bytes (for warnings and evidence).

    Raises:
        ImageLoadError: if the file is not a readable image (its ``code`` says why).
    """
    return LoadedImage(*decode_file(source))


def with_warnings(prediction: Prediction, image: LoadedImage) -> Prediction:
    """The prediction with the domain warnings of this file for its model.

    A model scores a decoded array without warnings (the array has no file to look at); this
    adds them from the file's bytes and the model card. The image's own checks (flat areas,
    colours, JPEG quality...) are measured once per `LoadedImage`, whatever the number of models.
    Never raises: if the checks fail, the prediction is returned unchanged.
    """
    try:
        card = load_model(prediction.model).card
        notes = domain_warnings(image.info, image.array, card, checks=image.checks)
    except Exception:  # warnings are a courtesy: they must never hide the verdict
        log.exception("domain warnings failed for %s", prediction.model)
        return prediction
    merged = tuple(dict.fromkeys((*prediction.warnings, *notes)))
    return replace(prediction, warnings=merged)


def outcome_with_warnings(outcome: ModelOutcome, image: LoadedImage) -> ModelOutcome:
    """`with_warnings` applied to a model outcome (a failed outcome is returned as it is)."""
    if outcome.prediction is None:
        return outcome
    return replace(outcome, prediction=with_warnings(outcome.prediction, image))


def combined_warnings(predictions: Sequence[Prediction]) -> list[str]:
    """Every model's warnings once each, naming the models when not all of them share one."""
    owners: dict[str, list[str]] = {}
    for prediction in predictions:
        for warning in prediction.warnings:
            owners.setdefault(warning, []).append(prediction.model)
    lines = []
    for warning, models in owners.items():
        if len(predictions) > 1 and len(models) < len(predictions):
            warning += " (" + ", ".join(f"`{m}`" for m in models) + ")"
        lines.append(warning)
    return lines


def warnings_markdown(warnings: Sequence[str], title: str = WARNINGS_TITLE) -> str:
    """Warnings as a Markdown list under ``title`` (empty when there are none)."""
    if not warnings:
        return ""
    return f"**{title}**\n\n" + "\n".join(f"- {warning}" for warning in warnings)


# ---------------------------------------------------------------------------------- stress test


def run_stress(
    image: np.ndarray,
    names: Sequence[str],
    jpeg_qualities: Sequence[int] = DEFAULT_JPEG_QUALITIES,
    scales: Sequence[float] = DEFAULT_SCALES,
) -> StressOutcome:
    """`detector.stress_test` model by model: one that fails is listed in ``errors``.

    The defaults re-score the image 12 times per model (7 JPEG qualities, 5 scales).
    """
    results = []
    errors: dict[str, str] = {}
    for name in names:
        try:
            run = stress_test(image, [load_model(name)], jpeg_qualities, scales)
        except Exception as exc:  # one failing model must not take the others down
            log.warning("model %s failed the stress test: %s", name, exc)
            errors[name] = error_text(exc)
            continue
        results.extend(run.models)
    if not results:
        return StressOutcome(None, errors)
    size = (int(image.shape[0]), int(image.shape[1]))
    result = StressResult(
        tuple(int(q) for q in jpeg_qualities),
        tuple(float(s) for s in scales),
        tuple(results),
        size,
    )
    return StressOutcome(result, errors)


# The apps' single entry point to the view models, wherever each is defined.
__all__ = [
    "ABSENCE_LINE",
    "BASIS_TEXTS",
    "BATCH_FIELDS",
    "COLOURS",
    "DISPLAY_MAX_SIDE",
    "EVIDENCE_INTRO",
    "EVIDENCE_NOTE",
    "EVIDENCE_TONES",
    "EVIDENCE_VALUE_CHARS",
    "FORENSIC_EXPLANATIONS",
    "FORENSIC_TITLES",
    "HEADLINES",
    "HEADLINE_COLOURS",
    "HEADLINE_MARKDOWN_COLOURS",
    "INDICATIONS",
    "LABELS",
    "METHOD_TITLES",
    "METRIC_TITLES",
    "STRESS_FIELDS",
    "STRESS_PLOT_ALT",
    "WARNINGS_TITLE",
    "Agreement",
    "BatchRow",
    "EvidenceRow",
    "ForensicView",
    "HeadlineView",
    "HeatmapView",
    "LoadedImage",
    "ModelOutcome",
    "PatchView",
    "ProbabilityBar",
    "ScanItem",
    "StressOutcome",
    "UploadItem",
    "UploadLimits",
    "Verdict",
    "agreement",
    "api_prediction",
    "api_result",
    "assess_upload",
    "bar_html",
    "batch_rows",
    "batch_summary",
    "clean_name",
    "combined_warnings",
    "comparison_rows",
    "display_size",
    "error_text",
    "evidence_details",
    "evidence_error",
    "evidence_headline",
    "evidence_markdown",
    "evidence_rows",
    "evidence_table",
    "extract_zip",
    "forensic_views",
    "headline_html",
    "headline_markdown",
    "headline_view",
    "heatmap_note",
    "heatmap_view",
    "heatmap_views",
    "inspect_result",
    "load_file",
    "md_text",
    "model_choices",
    "model_label",
    "model_summary",
    "no_models_message",
    "offered_methods",
    "outcome_with_warnings",
    "patch_view",
    "percent",
    "picker_help",
    "preload_best_model",
    "probability_bar",
    "probability_bars",
    "prune_files",
    "read_error",
    "read_uploads",
    "resize_for_display",
    "run_model",
    "run_models",
    "run_stress",
    "stress_markdown",
    "stress_rows",
    "trained_models",
    "untrained_message",
    "verdict",
    "verdict_html",
    "warnings_markdown",
    "with_warnings",
    "write_csv",
]
