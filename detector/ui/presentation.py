"""UI-agnostic presentation helpers shared by the Gradio and Streamlit apps.

Everything here returns plain data (strings, numbers, dataclasses, numpy arrays): the combined
headline (`detector.headline`) of an upload as escaped HTML or Markdown, verdict text,
probability-bar data, an agreement summary across models, the plain-language note on what a
heatmap means, a prediction's per-patch scores as a map with its caption, per-model runs that
survive a failing model, batch-table rows, and in-memory zip extraction with limits; the domain
warnings of a file, and the evidence board (provenance items as rows and Markdown, the forensic
views, the stress test as a table). Nothing here imports a UI library or writes a user's file
name to disk.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import math
import re
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from detector.core.errors import DetectorError, ModelNotTrainedError
from detector.core.heatmaps import colorize, overlay_heatmap
from detector.core.images import (
    MAX_FILE_BYTES,
    ImageInfo,
    ImageSource,
    decode_file,
    load_image,
)
from detector.core.models import ModelInfo, list_models, load_model, models_dir
from detector.core.patches import patch_map
from detector.core.results import Explanation, PatchScore, Prediction
from detector.evidence.assessment import Assessment
from detector.core.domain import ImageChecks, domain_warnings, image_checks
from detector.evidence.forensics import (
    ELA_EXPLANATION,
    RESIDUAL_SPECTRUM_EXPLANATION,
    error_level_analysis_rgb,
    residual_spectrum_rgb,
)
from detector.evidence.report import EVIDENCE_NOTE as EVIDENCE_NOTE
from detector.evidence.metadata import EvidenceItem, EvidenceReport, inspect_file
from detector.evidence.stability import check_stability
from detector.evidence.stress import (
    DEFAULT_JPEG_QUALITIES,
    DEFAULT_SCALES,
    FRAGILE_DEFINITION,
    StressResult,
    stress_test,
)
from detector.evidence.verdict import Headline, headline

log = logging.getLogger(__name__)

#: The verdict labels, in the order the UIs list them.
LABELS: tuple[str, ...] = ("fake", "uncertain", "real")

#: Headline for each label.
HEADLINES: dict[str, str] = {
    "fake": "Likely AI-generated",
    "real": "Likely a real photo",
    "uncertain": "Uncertain",
}

#: A colour for each label (hex), readable on light and dark backgrounds.
COLOURS: dict[str, str] = {"fake": "#d32f2f", "real": "#2e7d32", "uncertain": "#ef6c00"}

#: Display names of the explanation methods.
METHOD_TITLES: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "attention": "Attention map",
}

#: Display names of the headline test metrics in model cards.
METRIC_TITLES: dict[str, str] = {
    "roc_auc": "ROC-AUC",
    "accuracy": "accuracy",
    "f1": "F1",
    "average_precision": "average precision",
}

#: Longest side of images shown in the UIs (heatmaps are computed on the full image first).
DISPLAY_MAX_SIDE = 768


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

    An app calls this before its UI toolkit is imported, so that TensorFlow's start-up and the
    model's load overlap with the toolkit's. A request that needs the model before the thread is
    done waits for this load (`load_model` loads each model once) instead of starting another.
    Failures are logged; the request that needs the model then reports them.
    """

    def load() -> None:
        trained = trained_models(directory)
        if not trained:
            return
        try:
            load_model(trained[0].name, directory)
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


# ---------------------------------------------------------------------------------- verdicts
def percent(value: float) -> str:
    """A probability as a percentage with one decimal, e.g. ``"87.3%"``."""
    return f"{100.0 * float(value):.1f}%"


@dataclass(frozen=True)
class Verdict:
    """How one prediction reads to a person.

    Attributes:
        label: ``fake``, ``real`` or ``uncertain``.
        headline: e.g. ``"Likely AI-generated"``.
        p_fake: Calibrated P(AI-generated).
        probability: ``p_fake`` as text, e.g. ``"87.3%"``.
        detail: One sentence: the probability, the threshold and the uncertain band.
        colour: Hex colour of the label.
        model: The model that produced it.
        milliseconds: Inference time in ms.
    """

    label: str
    headline: str
    p_fake: float
    probability: str
    detail: str
    colour: str
    model: str
    milliseconds: float


def verdict(prediction: Prediction) -> Verdict:
    """Turn a `Prediction` into headline, probability text and a one-sentence explanation."""
    low, high = prediction.uncertain_band
    detail = (
        f"Calibrated probability that the image is AI-generated: {percent(prediction.p_fake)} "
        f"(threshold {percent(prediction.threshold)}"
    )
    if low < high:
        detail += f"; scores from {percent(low)} to {percent(high)} are reported as uncertain"
    detail += ")."
    return Verdict(
        label=prediction.label,
        headline=HEADLINES.get(prediction.label, prediction.label),
        p_fake=float(prediction.p_fake),
        probability=percent(prediction.p_fake),
        detail=detail,
        colour=COLOURS.get(prediction.label, "#616161"),
        model=prediction.model,
        milliseconds=1000.0 * float(prediction.seconds),
    )


def api_result(prediction: Prediction) -> dict[str, Any]:
    """The JSON an API client gets for one prediction: ``headline`` and ``label_title`` are the
    verdict card's headline (`api_prediction` makes ``headline`` the combined one)."""
    data = prediction.to_dict()
    data["headline"] = data["label_title"] = HEADLINES.get(prediction.label, prediction.label)
    return data


def api_prediction(assessment: Assessment) -> dict[str, Any]:
    """The JSON of a scored upload (the Gradio app's ``/predict``): `api_result` with the
    combined headline (`Headline.to_dict`) as ``headline`` and the score's ``stability``."""
    if assessment.prediction is None:
        raise ValueError("an assessment without a prediction has no API result")
    data = api_result(assessment.prediction)
    data["headline"] = assessment.headline.to_dict()
    stability = assessment.stability
    data["stability"] = None if stability is None else stability.to_dict()
    return data


def inspect_result(report: EvidenceReport) -> dict[str, Any]:
    """The JSON of a file's evidence (the Gradio app's ``/inspect`` and its evidence board):
    `EvidenceReport.to_dict` with the evidence-only headline (no model) as ``verdict``."""
    return {**report.to_dict(), "verdict": headline(report, None, None).to_dict()}


# ---------------------------------------------------------------------------------- headline
#: A colour for each headline label (hex), readable on light and dark backgrounds.
HEADLINE_COLOURS: dict[str, str] = {
    "ai_generated": "#b71c1c",
    "likely_ai": "#d32f2f",
    "camera_original": "#1b5e20",
    "likely_real": "#2e7d32",
    "uncertain": "#ef6c00",
    "cannot_tell": "#616161",
}
#: Streamlit's Markdown colour of each headline label.
HEADLINE_MARKDOWN_COLOURS: dict[str, str] = {
    "ai_generated": "red",
    "likely_ai": "red",
    "camera_original": "green",
    "likely_real": "green",
    "uncertain": "orange",
    "cannot_tell": "gray",
}
#: What decided the headline, one line under its title, for each `Headline.basis`.
BASIS_TEXTS: dict[str, str] = {
    "signature": "Decided by a signed declaration in the file (C2PA Content Credentials).",
    "declaration": "Decided by an unsigned declaration in the file (a watermark or metadata).",
    "model": "Decided by a model's statistical score.",
    "none": "Nothing decides it: no declaration in the file that counts, and no model score.",
}
#: What the absence of provenance evidence means, under a headline the file did not decide.
ABSENCE_LINE = (
    "No signature, watermark or declaration in the file decided this, and their absence is no "
    "sign either way: most sites strip metadata and most generators add no watermark."
)


@dataclass(frozen=True)
class HeadlineView:
    """A `Headline` ready to show, the same in both apps.

    Attributes:
        label, title, basis: From the headline.
        colour: Hex colour of the label (`HEADLINE_COLOURS`).
        basis_text: What decided it (`BASIS_TEXTS`).
        reasons: One ``(source, text, strength)`` per reason, deciding reason first.
        note: `ABSENCE_LINE` when the basis is the model or nothing, else "".
    """

    label: str
    title: str
    basis: str
    colour: str
    basis_text: str
    reasons: tuple[tuple[str, str, str], ...]
    note: str

    @property
    def lines(self) -> list[str]:
        """Each reason as ``"text — strength"`` (plain, unescaped text)."""
        return [f"{text} — {strength}" for _, text, strength in self.reasons]


def headline_view(found: Headline) -> HeadlineView:
    """What the apps show of a headline: its title, colour, basis and reasons."""
    return HeadlineView(
        label=found.label,
        title=found.title,
        basis=found.basis,
        colour=HEADLINE_COLOURS.get(found.label, "#616161"),
        basis_text=BASIS_TEXTS.get(found.basis, ""),
        reasons=tuple((r.source, r.text, r.strength) for r in found.reasons),
        note=ABSENCE_LINE if found.basis in ("model", "none") else "",
    )


def headline_html(found: Headline) -> str:
    """The headline as one HTML card: the title prominent and coloured by its label, what
    decided it, each reason as "text — strength", and the absence note when no declaration
    decided it. Every text is escaped: reasons quote the file's own metadata."""
    v = headline_view(found)
    esc = html.escape
    items = "".join(
        f'<li data-source="{esc(source)}">{esc(text)} '
        f'<span class="fd-strength" style="opacity:.8">— <i>{esc(strength)}</i></span></li>'
        for source, text, strength in v.reasons
    )
    note = (
        f'<div class="fd-headline-note" style="font-size:.85em;opacity:.8;margin-top:.3rem">'
        f"{esc(v.note)}</div>"
        if v.note
        else ""
    )
    return (
        f'<div class="fd-card fd-answer" data-label="{esc(v.label)}" data-basis="{esc(v.basis)}" '
        f'style="--fd-colour:{v.colour};border-left:6px solid {v.colour};border-radius:8px;'
        f'padding:.8rem 1rem;background:{v.colour}14">'
        f'<div class="fd-answer-title" style="font-size:1.6em;font-weight:700;color:{v.colour}">'
        f"{esc(v.title)}</div>"
        f'<div class="fd-answer-basis" style="font-size:.9em;opacity:.85;margin:.15rem 0 .3rem">'
        f"{esc(v.basis_text)}</div>"
        f'<ul class="fd-answer-reasons" style="margin:.2rem 0 0 1.1rem;padding:0;'
        f'font-size:.92em">{items}</ul>{note}</div>'
    )


def headline_markdown(found: Headline) -> str:
    """The headline as Markdown (Streamlit's colour syntax for the title): the same parts as
    `headline_html`, every text escaped with `md_text`."""
    v = headline_view(found)
    colour = HEADLINE_MARKDOWN_COLOURS.get(v.label, "gray")
    lines = [f"#### :{colour}[{md_text(v.title)}]", "", f"*{md_text(v.basis_text)}*", ""]
    lines += [f"- {md_text(text)} — *{md_text(strength)}*" for _, text, strength in v.reasons]
    if v.note:
        lines += ["", f"*{md_text(v.note)}*"]
    return "\n".join(lines)


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


@dataclass(frozen=True)
class ProbabilityBar:
    """Data for drawing one model's P(fake) as a horizontal bar (all positions in percent)."""

    model: str
    label: str
    colour: str
    p_fake: float
    width: float
    threshold: float
    band: tuple[float, float]
    text: str
    milliseconds: float


def probability_bar(prediction: Prediction) -> ProbabilityBar:
    """Bar data for one prediction: fill width = P(fake), a marker at the threshold."""
    low, high = prediction.uncertain_band
    return ProbabilityBar(
        model=prediction.model,
        label=prediction.label,
        colour=COLOURS.get(prediction.label, "#616161"),
        p_fake=float(prediction.p_fake),
        width=round(100.0 * float(prediction.p_fake), 2),
        threshold=round(100.0 * float(prediction.threshold), 2),
        band=(round(100.0 * float(low), 2), round(100.0 * float(high), 2)),
        text=f"{percent(prediction.p_fake)} · {prediction.label}",
        milliseconds=round(1000.0 * float(prediction.seconds), 1),
    )


def probability_bars(predictions: Iterable[Prediction]) -> list[ProbabilityBar]:
    """Bar data for several predictions, in the given order."""
    return [probability_bar(p) for p in predictions]


@dataclass(frozen=True)
class Agreement:
    """Whether several models agree on one image.

    Attributes:
        unanimous: True when every model that answered gave the same label (and at least one did).
        label: The unanimous or majority label, or None on a tie or when no model answered.
        counts: How many models gave each label.
        answered: How many models answered.
        failed: How many models failed.
        text: One plain sentence for the UIs.
    """

    unanimous: bool
    label: str | None
    counts: dict[str, int]
    answered: int
    failed: int
    text: str


def agreement(predictions: Sequence[Prediction], failed: int = 0) -> Agreement:
    """Summarise whether models agree: unanimous, a majority, a tie, or nothing to compare."""
    counts = Counter(p.label for p in predictions)
    ordered = {label: counts[label] for label in LABELS if counts[label]}
    answered = len(predictions)
    failed_text = f" ({failed} model{'s' if failed != 1 else ''} failed)" if failed else ""
    if answered == 0:
        return Agreement(
            False, None, {}, 0, failed, "No model produced a score" + failed_text + "."
        )
    top = counts.most_common()
    tie = len(top) > 1 and top[0][1] == top[1][1]
    label = None if tie else top[0][0]
    if answered == 1:
        text = f"Only one model answered: {HEADLINES[top[0][0]].lower()}{failed_text}."
        return Agreement(True, label, ordered, answered, failed, text)
    if len(counts) == 1:
        who = "Both models" if answered == 2 else f"All {answered} models"
        text = f"{who} agree: {HEADLINES[label].lower()}{failed_text}."
        return Agreement(True, label, ordered, answered, failed, text)
    split = ", ".join(f"{n} {lab}" for lab, n in ordered.items())
    if tie:
        text = f"The models disagree ({split}): no majority{failed_text}."
    else:
        text = f"The models disagree ({split}); the majority says {label}{failed_text}."
    return Agreement(False, label, ordered, answered, failed, text)


# ---------------------------------------------------------------------------------- heatmaps
_NOTE_COMMON = (
    "**What it does not mean.** It is not a map of edited or generated pixels, and a hot area "
    "is not proof that that part of the image is fake. The colours are relative to this image "
    "only: the strongest spot is always red, even when the score is low, so read the verdict "
    "first and the colours second. The map is coarse (the model sees the image as a small grid "
    "of blocks), so fine detail is blurred. Other models, or another method, can highlight "
    "different places for the same image: that tells you about the models, not the image."
)

_NOTE_WHAT = {
    "gradcam": (
        "**What the heatmap means.** Red marks the regions that pushed this model's score "
        "towards *AI-generated* the most; blue marks regions that pushed it little or not at all "
        "(Grad-CAM: the model's last convolutional features, weighted by how much they raise the "
        "*AI-generated* score). When the verdict is *real*, it shows what little evidence for "
        "*AI-generated* the model found."
    ),
    "gradcam++": (
        "**What the heatmap means.** Red marks the regions that pushed this model's score "
        "towards *AI-generated* the most (Grad-CAM++: like Grad-CAM, but it weighs each "
        "feature by where it raises the score, so several separate regions can light up). When "
        "the verdict is *real*, it shows what little evidence for *AI-generated* the model found."
    ),
    "attention": (
        "**What the attention map means.** It shows where the model's attention layer chose to "
        "look before deciding: red areas weigh most in its decision. It says where the model "
        "looked, not whether what it saw there looked real or generated."
    ),
}


def heatmap_note(method: str = "gradcam") -> str:
    """The plain-language note (Markdown) on what a heatmap means and does not mean."""
    return _NOTE_WHAT.get(method, _NOTE_WHAT["gradcam"]) + "\n\n" + _NOTE_COMMON


def display_size(height: int, width: int, max_side: int = DISPLAY_MAX_SIDE) -> tuple[int, int]:
    """(height, width) scaled down so the longer side is at most ``max_side``."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_for_display(
    image: np.ndarray, heatmap: np.ndarray | None = None, max_side: int = DISPLAY_MAX_SIDE
) -> tuple[np.ndarray, np.ndarray | None]:
    """Shrink an RGB image (and its [0, 1] heatmap) for display; small images are unchanged."""
    height, width = image.shape[:2]
    new_h, new_w = display_size(height, width, max_side)
    if (new_h, new_w) == (height, width):
        return image, heatmap
    small = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.LANCZOS))
    small_map = None if heatmap is None else _shrink_heatmap(heatmap, new_h, new_w)
    return small, small_map


def _shrink_heatmap(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    if heatmap.shape == (height, width):
        return heatmap
    resized = Image.fromarray(heatmap.astype(np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class PatchView:
    """The per-patch scores of a prediction, ready to show beside its explanation.

    A ``native_crop`` model scores a large image on up to 16 native-resolution patches and
    averages their logits into the verdict (`detector.core.patches`); this is what the apps show of
    those patches.

    Attributes:
        image: RGB uint8 at display size: the picture with each patch's box coloured by its own
            P(fake) (`detector.patch_map`); None when the image had a single view (no map).
        caption: One line: how the image was scored and, with several patches, the most
            suspicious one and which patch the explanation explains.
        count: Patches scored at full resolution (a resized whole-picture view not counted).
        single: The image had a single view (one patch, or the whole picture resized).
        explained: Which patch the explanation explains, for the overlay's caption (e.g.
            ``"explains the patch at (112, 32), the most suspicious of 16"``); "" when single.
    """

    image: np.ndarray | None = field(repr=False)
    caption: str
    count: int
    single: bool
    explained: str = ""


def _place(patch: PatchScore) -> str:
    return "on the whole picture" if patch.whole_image else f"at ({patch.x}, {patch.y})"


def _single_caption(patches: Sequence[PatchScore]) -> str:
    if not patches:
        return ""
    (patch,) = patches
    if patch.whole_image:
        return "One view: the model scored the whole picture, resized to its input size."
    return (
        f"One patch: the model scored the central crop ({patch.size} x {patch.size} px at "
        f"({patch.x}, {patch.y}))."
    )


def patch_view(
    image: np.ndarray,
    prediction: Prediction,
    *,
    size: tuple[int, int] | None = None,
    explained: int | None = None,
    method: str = "gradcam",
) -> PatchView:
    """The patch map and its caption for one prediction.

    Args:
        image: RGB uint8: the scored image, or its display-size copy (then give ``size``).
        prediction: The whole-image prediction (`Prediction.patches`).
        size: (height, width) of the scored image, when ``image`` is a resized copy.
        explained: Index in ``prediction.patches`` of the view an explanation explains (None:
            no explanation is shown).
        method: The explanation's method (named in the caption).
    """
    patches = prediction.patches
    if len(patches) <= 1:
        return PatchView(None, _single_caption(patches), len(patches), single=True)
    crops = [p for p in patches if not p.whole_image]
    sides = {p.size for p in crops}
    what = f"{len(crops)} patch{'es' if len(crops) != 1 else ''}"
    what += f" of {sides.pop()} px" if len(sides) == 1 else ""
    what += " at full resolution"
    what += " and the whole picture resized" if len(crops) < len(patches) else ""
    top = prediction.top_patch
    assert top is not None
    caption = (
        f"{what}, scores averaged: highest P(fake) {percent(patches[top].p_fake)} "
        f"{_place(patches[top])}"
    )
    note = ""
    if explained is not None and 0 <= explained < len(patches):
        title = METHOD_TITLES.get(method, method)
        chosen = patches[explained]
        kind = "view" if chosen.whole_image else "patch"
        if explained == top:
            caption += f"; the {title} explains that {kind}"
            rank = f"the most suspicious of {len(patches)}"
        else:
            caption += f"; the {title} explains the {kind} {_place(chosen)}"
            rank = f"one of {len(patches)}"
        note = f"explains the {kind} {_place(chosen)}, {rank}"
    return PatchView(
        patch_map(image, prediction, size=size), caption + ".", len(crops), False, note
    )


@dataclass(frozen=True, eq=False)
class HeatmapView:
    """An explanation ready to show: display-size image, heatmap and their blends.

    ``patches`` is the prediction's per-patch scores (`PatchView`), made by `heatmap_view`;
    ``headline`` the combined headline of the detection it belongs to, when the app built one.
    """

    method: str
    image: np.ndarray = field(repr=False)
    heatmap: np.ndarray = field(repr=False)
    patches: PatchView | None = field(default=None, repr=False)
    headline: Headline | None = field(default=None, repr=False)

    def overlay(self, opacity: float = 0.45) -> np.ndarray:
        """The image with the heatmap blended over it at ``opacity`` (0 to 1)."""
        return overlay_heatmap(self.image, self.heatmap, alpha=float(np.clip(opacity, 0.0, 1.0)))

    def raw(self) -> np.ndarray:
        """The heatmap alone, coloured."""
        return colorize(self.heatmap)


def heatmap_view(
    image: np.ndarray, explanation: Explanation, max_side: int = DISPLAY_MAX_SIDE
) -> HeatmapView:
    """A display-size view of an explanation over its (full-size) input image, with the
    prediction's patch map drawn on the same display-size copy."""
    small, small_map = resize_for_display(image, explanation.heatmap, max_side)
    assert small_map is not None
    patches = patch_view(
        small,
        explanation.prediction,
        size=image.shape[:2],
        explained=explanation.patch,
        method=explanation.method,
    )
    return HeatmapView(explanation.method, small, small_map, patches)


def heatmap_views(
    image: np.ndarray, explanations: Sequence[Explanation], max_side: int = DISPLAY_MAX_SIDE
) -> list[HeatmapView]:
    """`heatmap_view` of several explanations of one image (one per model), shrinking the image
    once instead of once per explanation."""
    small, _ = resize_for_display(image, None, max_side)
    height, width = small.shape[:2]
    return [
        HeatmapView(e.method, small, _shrink_heatmap(e.heatmap, height, width))
        for e in explanations
    ]


# ---------------------------------------------------------------------------------- running
def error_text(exc: BaseException) -> str:
    """A one-line, user-facing description of an error (its code and message)."""
    if isinstance(exc, DetectorError):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, eq=False)
class ModelOutcome:
    """One model's answer on one image: a prediction (and maybe an explanation) or an error."""

    model: str
    prediction: Prediction | None = None
    explanation: Explanation | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the model produced a prediction."""
        return self.prediction is not None


def run_model(
    image: np.ndarray, name: str, method: str | None = "gradcam", *, alpha: float = 0.45
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
        return ModelOutcome(name, explanation.prediction, explanation)
    except DetectorError as exc:
        return ModelOutcome(name, error=error_text(exc))
    except Exception as exc:  # one failing model must not take the others down
        log.exception("model %s failed", name)
        return ModelOutcome(name, error=error_text(exc))


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


# ---------------------------------------------------------------------------------- uploads
@dataclass(frozen=True)
class UploadLimits:
    """Limits on what a batch upload may contain.

    Attributes:
        max_files: Most images in one batch (archive members included).
        max_file_bytes: Largest single file or archive member, in bytes.
        max_total_bytes: Most bytes read in one batch (archives counted uncompressed).
        max_ratio: Largest compression ratio accepted for an archive member (zip-bomb guard).
    """

    max_files: int = 200
    max_file_bytes: int = MAX_FILE_BYTES
    max_total_bytes: int = 300 * 1024 * 1024
    max_ratio: float = 250.0


@dataclass(frozen=True)
class UploadItem:
    """One file of a batch, read into memory: either ``data`` or ``error`` is set."""

    name: str
    data: bytes | None = field(default=None, repr=False)
    error: str | None = None


def clean_name(name: str, limit: int = 200) -> str:
    """A user's file name made safe to show: printable characters only, at most ``limit``."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(name)).strip() or "(unnamed)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def extract_zip(
    data: bytes,
    archive_name: str = "archive.zip",
    limits: UploadLimits | None = None,
    *,
    used_files: int = 0,
    used_bytes: int = 0,
) -> list[UploadItem]:
    """Read the files of a zip archive into memory (nothing touches the disk).

    Folders, hidden files and ``__MACOSX`` entries are skipped. Members that are too large,
    compressed suspiciously well, encrypted, damaged or themselves archives become items with an
    error; files past ``limits.max_files`` or ``limits.max_total_bytes`` become one error item.
    ``used_files`` and ``used_bytes`` count what earlier files of the same batch used up.
    """
    limits = limits or UploadLimits()
    archive_name = clean_name(archive_name)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        return [UploadItem(archive_name, error=f"bad_archive: not a readable zip file ({exc})")]
    items: list[UploadItem] = []
    total = used_bytes
    with archive:
        wanted = [m for m in members if not m.is_dir() and not _hidden(m.filename)]
        for index, info in enumerate(wanted):
            name = f"{archive_name}/{clean_name(info.filename)}"
            if used_files + len(items) >= limits.max_files:
                items.append(
                    UploadItem(
                        archive_name,
                        error=f"too_many_files: {len(wanted) - index} more file(s) skipped "
                        f"(limit {limits.max_files} per batch)",
                    )
                )
                break
            if info.flag_bits & 0x1:
                items.append(UploadItem(name, error="encrypted: password-protected member"))
                continue
            if info.file_size > limits.max_file_bytes:
                items.append(UploadItem(name, error=_too_large(info.file_size, limits)))
                continue
            if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
                items.append(
                    UploadItem(name, error="suspicious_archive: compression ratio too high")
                )
                continue
            if total + info.file_size > limits.max_total_bytes:
                items.append(
                    UploadItem(
                        archive_name,
                        error=f"batch_too_large: {len(wanted) - index} more file(s) skipped "
                        f"(limit {limits.max_total_bytes // (1024 * 1024)} MB per batch)",
                    )
                )
                break
            try:
                with archive.open(info) as member:
                    content = member.read(limits.max_file_bytes + 1)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError) as exc:
                items.append(UploadItem(name, error=f"bad_archive_member: {exc}"))
                continue
            if len(content) > limits.max_file_bytes:
                items.append(UploadItem(name, error=_too_large(len(content), limits)))
                continue
            total += len(content)
            if _is_zip(content):
                items.append(
                    UploadItem(
                        name, error="nested_archive: archives inside archives are not opened"
                    )
                )
                continue
            items.append(UploadItem(name, data=content))
    if not items:
        items.append(UploadItem(archive_name, error="empty_archive: no files in the archive"))
    return items


def _hidden(member: str) -> bool:
    parts = [p for p in member.replace("\\", "/").split("/") if p]
    return not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


def _too_large(size: int, limits: UploadLimits) -> str:
    return (
        f"file_too_large: {size / 1e6:.1f} MB (limit {limits.max_file_bytes / 1e6:.0f} MB per file)"
    )


def read_uploads(
    files: Sequence[str | Path | tuple[str, bytes]], limits: UploadLimits | None = None
) -> list[UploadItem]:
    """Read uploaded files (paths, or ``(name, bytes)`` pairs) into memory, opening zip archives.

    Names shown to users are the files' base names (archive members as ``archive.zip/member``).
    Unreadable files and anything past the limits become items with an error.
    """
    limits = limits or UploadLimits()
    items: list[UploadItem] = []
    total = 0
    for index, entry in enumerate(files):
        if len(items) >= limits.max_files:
            items.append(
                UploadItem(
                    "(more files)",
                    error=f"too_many_files: {len(files) - index} more file(s) skipped "
                    f"(limit {limits.max_files} per batch)",
                )
            )
            break
        if isinstance(entry, tuple):
            name, data = clean_name(entry[0]), bytes(entry[1])
        else:
            path = Path(entry)
            name = clean_name(path.name)
            try:
                size = path.stat().st_size
                if size > max(limits.max_file_bytes, limits.max_total_bytes):
                    items.append(UploadItem(name, error=_too_large(size, limits)))
                    continue
                data = path.read_bytes()
            except OSError as exc:
                items.append(UploadItem(name, error=f"unreadable_file: {exc.strerror or exc}"))
                continue
        if _is_zip(data):
            members = extract_zip(data, name, limits, used_files=len(items), used_bytes=total)
            total += sum(len(m.data) for m in members if m.data is not None)
            items.extend(members)
            continue
        if len(data) > limits.max_file_bytes:
            items.append(UploadItem(name, error=_too_large(len(data), limits)))
            continue
        if total + len(data) > limits.max_total_bytes:
            items.append(
                UploadItem(
                    name,
                    error=f"batch_too_large: over {limits.max_total_bytes // (1024 * 1024)} MB",
                )
            )
            continue
        total += len(data)
        items.append(UploadItem(name, data=data))
    return items


# ---------------------------------------------------------------------------------- batches
#: Columns of the batch table and its CSV.
BATCH_FIELDS: tuple[str, ...] = ("file", "model", "verdict", "p_fake", "seconds", "error")


@dataclass(frozen=True)
class BatchRow:
    """One (file, model) row of a batch: a verdict and P(fake), or an error."""

    file: str
    model: str
    verdict: str | None
    p_fake: float | None
    seconds: float | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the `BATCH_FIELDS` keys."""
        return {
            "file": self.file,
            "model": self.model,
            "verdict": self.verdict,
            "p_fake": None if self.p_fake is None else round(self.p_fake, 6),
            "seconds": None if self.seconds is None else round(self.seconds, 6),
            "error": self.error,
        }

    def to_list(self) -> list[Any]:
        """The row's values in `BATCH_FIELDS` order (empty strings for missing values)."""
        data = self.to_dict()
        return ["" if data[key] is None else data[key] for key in BATCH_FIELDS]


def batch_rows(
    items: Sequence[UploadItem], names: Sequence[str], *, chunk: int = 16
) -> list[BatchRow]:
    """Score in-memory files with several models: one row per (file, model), in file order.

    Files are decoded ``chunk`` at a time (so a large batch never holds every image in memory).
    A file that cannot be read gets an error row per model; a model that fails gets error rows
    for its files while the other models go on.
    """
    rows: list[BatchRow] = []
    models: dict[str, Any] = {}
    model_errors: dict[str, str] = {}
    for name in names:
        try:
            models[name] = load_model(name)
        except Exception as exc:
            model_errors[name] = f"model_failed: {error_text(exc)}"
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        decoded: list[np.ndarray | str] = []
        for item in part:
            if item.data is None:
                decoded.append(item.error or "unreadable_file")
                continue
            try:
                decoded.append(load_image(item.data))
            except DetectorError as exc:
                decoded.append(error_text(exc))
        good = [i for i, d in enumerate(decoded) if isinstance(d, np.ndarray)]
        results: dict[str, list[Prediction] | str] = {}
        for name in names:
            if name in model_errors:
                results[name] = model_errors[name]
                continue
            try:
                arrays = [decoded[i] for i in good]
                results[name] = models[name].predict_batch(arrays) if arrays else []
            except Exception as exc:
                log.exception("model %s failed on a batch", name)
                results[name] = f"model_failed: {error_text(exc)}"
        position = {file_index: k for k, file_index in enumerate(good)}
        for i, item in enumerate(part):
            for name in names:
                result = results[name]
                if not isinstance(decoded[i], np.ndarray):
                    rows.append(BatchRow(item.name, name, None, None, None, str(decoded[i])))
                elif isinstance(result, str):
                    rows.append(BatchRow(item.name, name, None, None, None, result))
                else:
                    pred = result[position[i]]
                    rows.append(
                        BatchRow(item.name, name, pred.label, pred.p_fake, pred.seconds, None)
                    )
    return rows


def batch_summary(rows: Sequence[BatchRow]) -> str:
    """One sentence summarising a batch, e.g. ``"3 files x 2 models: 2 fake, 3 real, 1 error."``."""
    files = len(dict.fromkeys(r.file for r in rows))
    models = len(dict.fromkeys(r.model for r in rows))
    counts = Counter(r.verdict or "error" for r in rows)
    parts = [f"{counts[k]} {k}" for k in (*LABELS, "error") if counts[k]]
    return (
        f"{files} file{'s' if files != 1 else ''} x {models} model{'s' if models != 1 else ''}: "
        + (", ".join(parts) if parts else "nothing scored")
        + "."
    )


def _csv_cell(value: Any) -> Any:
    # Spreadsheets run cells that start with these characters as formulas.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_csv(rows: Sequence[BatchRow], directory: str | Path | None = None) -> Path:
    """Write rows to a fresh CSV file with a generated name (never a user's file name).

    Args:
        rows: The batch rows.
        directory: Folder for the file (default: the system temporary folder).

    Returns:
        The path of the new file.
    """
    handle, name = tempfile.mkstemp(prefix="fakedetect-batch-", suffix=".csv", dir=directory)
    with open(handle, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(BATCH_FIELDS)
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row.to_list()])
    return Path(name)


def prune_files(directory: str | Path, max_age_seconds: float = 3600.0) -> int:
    """Delete files older than ``max_age_seconds`` in ``directory``; returns how many."""
    removed = 0
    cutoff = time.time() - max_age_seconds
    for path in Path(directory).glob("fakedetect-batch-*.csv"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


# ---------------------------------------------------------------------------------- warnings
#: Title over a prediction's domain warnings, next to the verdict in both apps.
WARNINGS_TITLE = "Why this score may not be trustworthy"


def read_error(code: str, message: str) -> str:
    """The message for a file that is not a readable image (both apps use this wording)."""
    return f"Could not read this file as an image ({code}): {message}"


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


# ---------------------------------------------------------------------------------- evidence
#: What the evidence board is, shown above it in both apps.
EVIDENCE_INTRO = (
    "Kept apart from the model scores: what the file says about its own history, two forensic "
    "pictures to look at, and whether the verdicts survive re-compression and downscaling. None "
    "of these is a verdict."
)
#: Plain words for `EvidenceItem.indicates`.
INDICATIONS: dict[str, str] = {
    "ai_generated": "points to AI generation",
    "camera_capture": "points to a camera capture",
    "processed": "points to editing or re-encoding",
    "neutral": "neutral",
    "not_checked": "could not be checked",
}
#: Headline tone of a report: ``ai``, ``camera``, ``none`` or ``unreadable``.
EVIDENCE_TONES: tuple[str, ...] = ("ai", "camera", "none", "unreadable")
#: Longest metadata value shown in the evidence board, in characters.
EVIDENCE_VALUE_CHARS = 240

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^&])")


def md_text(text: Any) -> str:
    """Untrusted text (metadata, file names) made inert in Markdown: every markup character and
    line break escaped, so no link, image or HTML in it can render."""
    flat = " ".join(str(text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


@dataclass(frozen=True)
class EvidenceRow:
    """One provenance item ready to show.

    Attributes:
        kind, title, found, summary, proves, does_not_prove: From the `EvidenceItem`.
        status: ``found``, ``not found`` or ``not checked``.
        indicates: The item's `EvidenceItem.indicates`.
        indication: ``indicates`` in words (`INDICATIONS`).
        details: (label, value) pairs of its details, flattened and shortened (untrusted text).
    """

    kind: str
    title: str
    found: bool
    status: str
    indicates: str
    indication: str
    summary: str
    details: tuple[tuple[str, str], ...]
    proves: str
    does_not_prove: str


def _short(value: Any, limit: int = EVIDENCE_VALUE_CHARS) -> str:
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _flatten(details: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    if not isinstance(details, dict):
        return [(prefix or "value", _short(details))]
    pairs: list[tuple[str, str]] = []
    for key, value in details.items():
        name = str(key).replace("_", " ") if str(key).islower() else str(key)
        label = f"{prefix} › {name}" if prefix else name
        if isinstance(value, dict) and value and depth < 2:
            pairs.extend(_flatten(value, label, depth + 1))
        elif isinstance(value, (list, tuple)) and all(
            isinstance(v, (str, int, float)) for v in value
        ):
            sentences = all(isinstance(v, str) and v.endswith(".") for v in value)
            if value:
                pairs.append((label, (" " if sentences else "; ").join(_short(v) for v in value)))
        elif value not in (None, "", {}, []):
            pairs.append((label, _short(value)))
    return pairs


def evidence_details(item: EvidenceItem) -> list[tuple[str, str]]:
    """An item's details as (label, value) pairs: nested values flattened, long ones shortened.

    Generation settings show the parsed prompt and settings (and the raw text only of keys that
    could not be parsed); an item that could not be checked shows nothing (its summary says why).
    """
    details = dict(item.details)
    if details.get("status") == "not_checked":
        return []
    if item.kind == "generation_settings":
        parsed = details.pop("parsed", None) or {}
        raw = details.pop("keys", None) or {}
        pairs = _flatten({k: v for k, v in details.items() if k != "tools"})
        tools = item.details.get("tools")
        if tools:
            pairs.insert(0, ("tools", "; ".join(_short(t) for t in tools)))
        pairs += _flatten(parsed)
        pairs += _flatten({k: v for k, v in raw.items() if k not in parsed})
        return pairs
    if item.kind == "processing":
        details.pop("checks", None)
    return _flatten(details)


def evidence_rows(report: EvidenceReport) -> list[EvidenceRow]:
    """The report's items, in report order, ready for a UI."""
    rows = []
    for item in report.items:
        status = "not checked" if item.indicates == "not_checked" and not item.found else None
        rows.append(
            EvidenceRow(
                kind=item.kind,
                title=item.title,
                found=bool(item.found),
                status=status or ("found" if item.found else "not found"),
                indicates=item.indicates,
                indication=INDICATIONS.get(item.indicates, item.indicates),
                summary=item.summary,
                details=tuple(evidence_details(item)),
                proves=item.proves,
                does_not_prove=item.does_not_prove,
            )
        )
    return rows


def evidence_headline(report: EvidenceReport) -> tuple[str, str]:
    """The report's headline and its tone (`EVIDENCE_TONES`), for colouring it."""
    if not report.readable and report.format is None:
        tone = "unreadable"
    elif report.ai_indicators:
        tone = "ai"
    elif report.camera_indicators:
        tone = "camera"
    else:
        tone = "none"
    return report.headline(), tone


def evidence_error(report: EvidenceReport) -> str | None:
    """Why the pixels of a reported file could not be decoded (code and message), or None."""
    if report.readable:
        return None
    file_item = report.item("file")
    code = (file_item.details.get("error_code") if file_item else None) or "unreadable_file"
    return read_error(str(code), report.error or "the image could not be decoded")


def evidence_table(report: EvidenceReport) -> list[dict[str, Any]]:
    """One compact row per item: item, status, what the file says, what it points to."""
    return [
        {
            "item": row.title,
            "status": row.status,
            "what the file says": row.summary,
            "points to": row.indication,
        }
        for row in evidence_rows(report)
    ]


def evidence_markdown(report: EvidenceReport) -> str:
    """Every provenance item as Markdown: status, summary, details, what it proves and what its
    absence does not prove. Metadata values are escaped (they are untrusted text)."""
    blocks = []
    for row in evidence_rows(report):
        lines = [
            f"**{row.title}** · {row.status} · *{row.indication}*  ",
            md_text(row.summary),
        ]
        if row.details:
            lines.append("")
            lines.extend(f"- {md_text(label)}: {md_text(value)}" for label, value in row.details)
        lines.append("")
        if row.found:
            lines.append(f"*What it proves:* {row.proves}  ")
        lines.append(
            f"*What it cannot prove, and what its absence does not prove:* {row.does_not_prove}"
        )
        blocks.append("\n".join(lines))
    return "\n\n---\n\n".join(blocks)


# ---------------------------------------------------------------------------------- forensics
#: Display titles of the forensic views.
FORENSIC_TITLES: dict[str, str] = {
    "spectrum": "Residual spectrum",
    "ela": "Error level analysis (re-saved at JPEG quality 90)",
}
#: The one-line explanation of each forensic view.
FORENSIC_EXPLANATIONS: dict[str, str] = {
    "spectrum": RESIDUAL_SPECTRUM_EXPLANATION,
    "ela": ELA_EXPLANATION,
}


@dataclass(frozen=True, eq=False)
class ForensicView:
    """One forensic picture of an image: uint8 RGB, with its title and one-line explanation."""

    name: str
    title: str
    image: np.ndarray = field(repr=False)
    explanation: str


def forensic_views(image: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> list[ForensicView]:
    """The residual spectrum and the ELA map of a decoded image.

    The spectrum keeps its own size (at most `detector.evidence.forensics.SPECTRUM_MAX_SIDE`:
    resizing would blur the dots it shows); the ELA map is shrunk like the other displayed images.
    """
    spectrum = residual_spectrum_rgb(image)
    ela, _ = resize_for_display(error_level_analysis_rgb(image), max_side=max_side)
    return [
        ForensicView(
            "spectrum", FORENSIC_TITLES["spectrum"], spectrum, FORENSIC_EXPLANATIONS["spectrum"]
        ),
        ForensicView("ela", FORENSIC_TITLES["ela"], ela, FORENSIC_EXPLANATIONS["ela"]),
    ]


# ---------------------------------------------------------------------------------- stress test
#: Columns of the stress-test table in both apps.
STRESS_FIELDS: tuple[str, ...] = (
    "model",
    "P(AI-generated), untouched",
    "verdict, untouched",
    "lowest P under changes",
    "highest P under changes",
    "fragile",
    "verdict flips at",
)


#: Alternative text of the stress-test plot.
STRESS_PLOT_ALT = (
    "Stress test: P(AI-generated) of each model after JPEG re-compression (left) and "
    "downscaling (right); dashed lines are the thresholds."
)


@dataclass(frozen=True)
class StressOutcome:
    """The stress test of one image by several models, and the models that failed.

    Attributes:
        result: The `detector.StressResult` of the models that answered (None if none).
        errors: For each model that failed, why.
    """

    result: StressResult | None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def definition(self) -> str:
        """What "fragile" means (`detector.evidence.stress.FRAGILE_DEFINITION`)."""
        return FRAGILE_DEFINITION

    @property
    def fragile(self) -> dict[str, bool]:
        """Whether each model that answered is fragile on this image."""
        return {m.model: bool(m.fragile) for m in self.result.models} if self.result else {}


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


def stress_rows(outcome: StressOutcome) -> list[dict[str, Any]]:
    """One row per model that answered, with the `STRESS_FIELDS` keys (``fragile`` is a bool)."""
    rows = []
    for item in outcome.result.models if outcome.result else ():
        values = [item.baseline, *item.jpeg, *item.scale]
        finite = [v for v in values if not math.isnan(v)]
        rows.append(
            {
                "model": item.model,
                "P(AI-generated), untouched": round(item.baseline, 4),
                "verdict, untouched": item.baseline_verdict,
                "lowest P under changes": round(min(finite), 4),
                "highest P under changes": round(max(finite), 4),
                "fragile": bool(item.fragile),
                "verdict flips at": ", ".join(item.flips) or "never",
            }
        )
    return rows


def stress_markdown(outcome: StressOutcome) -> str:
    """Which models are fragile on this image, which failed, and what fragile means."""
    lines = []
    if outcome.result is not None:
        fragile = [f"`{name}`" for name, flag in outcome.fragile.items() if flag]
        if fragile:
            lines.append(f"**Fragile on this image:** {', '.join(fragile)}.")
        else:
            lines.append(
                "**No model is fragile on this image:** no verdict flips under a mild change."
            )
    lines.extend(f"**`{name}` failed.** {error}" for name, error in outcome.errors.items())
    lines.append(f"*Fragile:* {FRAGILE_DEFINITION}")
    return "\n\n".join(lines)
