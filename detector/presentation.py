"""UI-agnostic presentation helpers shared by the Gradio and Streamlit apps.

Everything here returns plain data (strings, numbers, dataclasses, numpy arrays): verdict text,
probability-bar data, an agreement summary across models, the plain-language note on what a
heatmap means, per-model runs that survive a failing model, batch-table rows, and in-memory zip
extraction with limits. Nothing here imports a UI library or writes a user's file name to disk.
"""

from __future__ import annotations

import csv
import io
import logging
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from detector.errors import DetectorError, ModelNotTrainedError
from detector.explain import colorize, overlay_heatmap
from detector.images import MAX_FILE_BYTES, ImageSource, load_image
from detector.models import ModelInfo, list_models, load_model, models_dir
from detector.results import Explanation, Prediction

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
    """The JSON an API client gets for one prediction."""
    data = prediction.to_dict()
    data["headline"] = HEADLINES.get(prediction.label, prediction.label)
    return data


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
    small_map = None
    if heatmap is not None:
        resized = Image.fromarray(heatmap.astype(np.float32)).resize(
            (new_w, new_h), Image.Resampling.BILINEAR
        )
        small_map = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    return small, small_map


@dataclass(frozen=True, eq=False)
class HeatmapView:
    """An explanation ready to show: display-size image, heatmap and their blends."""

    method: str
    image: np.ndarray = field(repr=False)
    heatmap: np.ndarray = field(repr=False)

    def overlay(self, opacity: float = 0.45) -> np.ndarray:
        """The image with the heatmap blended over it at ``opacity`` (0 to 1)."""
        return overlay_heatmap(self.image, self.heatmap, alpha=float(np.clip(opacity, 0.0, 1.0)))

    def raw(self) -> np.ndarray:
        """The heatmap alone, coloured."""
        return colorize(self.heatmap)


def heatmap_view(
    image: np.ndarray, explanation: Explanation, max_side: int = DISPLAY_MAX_SIDE
) -> HeatmapView:
    """A display-size view of an explanation over its (full-size) input image."""
    small, small_map = resize_for_display(image, explanation.heatmap, max_side)
    assert small_map is not None
    return HeatmapView(explanation.method, small, small_map)


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

    The prediction comes from a plain forward pass, so its time is the inference time; the
    explanation is a second, compiled forward and backward pass.
    """
    try:
        det = load_model(name)
        prediction = det.predict(image)
        explanation = None
        if method is not None:
            chosen = method if method in det.methods else "gradcam"
            explanation = det.explain(image, chosen, alpha=alpha)
        return ModelOutcome(name, prediction, explanation)
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
