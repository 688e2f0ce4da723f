"""Gradio app: is this image AI-generated? Detect, explain, compare, batch-score and inspect images.

Runs offline on the models in ``assets/models`` (or ``$FAKEDETECT_MODELS_DIR``) and deploys
unchanged as a Hugging Face Space: ``python app.py``. The layout is here; every score, heatmap and
sentence comes from the `detector` package. Handlers are plain functions returning plain data.

API (``gradio_client``): ``/predict`` (image, model) and ``/compare`` (image) return JSON;
``/explain`` (image, model, method) returns the overlay, the heatmap and JSON; ``/models`` lists the
models; ``/batch`` (files, models) returns the table and a CSV file; ``/inspect`` (image) returns
the file's provenance evidence (`detector.inspect_file`) as JSON. The Detect tab and ``/predict``
lead with the combined headline (`detector.headline`): the file's evidence, then the model's
score and its stability; ``/inspect`` gives the evidence-only headline.
"""

from __future__ import annotations

import os

# Set before Gradio is imported: no usage statistics or version checks leave this process.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import html
import logging
import re
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import detector
from detector import serving
from detector.ui import classroom
from detector.ui import presentation as pres

if __name__ == "__main__":
    # TensorFlow starts and the best model loads while Gradio imports and the page is built.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    pres.preload_best_model()

import gradio as gr
from starlette.middleware import Middleware

log = logging.getLogger("fakedetect.app")

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "assets" / "examples"
#: Largest upload Gradio accepts (the detector refuses image files over 50 MB anyway).
MAX_FILE_SIZE = "50mb"
#: Events that run at the same time (2 cores: more would only queue inside TensorFlow).
CONCURRENCY_LIMIT = 2
#: The one concurrency group of every event that decodes images or runs models: together they
#: run at most `CONCURRENCY_LIMIT` at a time (Gradio's limit is otherwise per event).
HEAVY = "heavy"
#: Requests waiting in the queue before new ones are turned away.
QUEUE_MAX_SIZE = 64
DEFAULT_OPACITY = detector.DEFAULT_ALPHA
COMPARE_HEADERS = ["model", "verdict", "P(AI-generated)", "threshold", "inference ms", "error"]
BATCH_HEADERS = list(pres.BATCH_FIELDS)
STRESS_HEADERS = list(pres.STRESS_FIELDS)
#: Which models the evidence board stress-tests.
STRESS_SCOPES = [("The selected model", "selected"), ("All trained models", "all")]
#: Notice colour of each evidence headline tone.
EVIDENCE_KINDS = {"ai": "warning", "camera": "info", "none": "info", "unreadable": "error"}

CSS = """
#fd-verdict { min-height: 4rem; }
.fd-card { border-left: 6px solid var(--fd-colour); border-radius: 8px; padding: 0.8rem 1rem;
  background: color-mix(in srgb, var(--fd-colour) 10%, transparent); }
@media (max-width: 720px) { /* phones: the results right after the image, then the controls */
  #fd-main { flex-direction: column; } #fd-controls { display: contents; } #fd-results { order: 1; }
  #fd-controls > * { order: 2; } #fd-controls > #fd-input { order: 0; }
  #fd-headline .fd-answer { max-height: 20rem; overflow-y: auto; } }
"""


# ------------------------------------------------------------------------------------ helpers
def _path_of(value: Any, request: gr.Request | None = None) -> str | None:
    """The file path in a handler input: a path, or Gradio's file payload (a dict).

    With a ``request`` (Gradio passes one to every event), a path outside Gradio's upload cache
    and the examples folder is a `gr.Error`, whatever the payload's shape: file inputs skip
    Gradio's own check (``preprocess=False``), so any path a visitor sends would be read.
    """
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        path = str(value) or None
    elif isinstance(value, dict):
        path = value.get("path") or None
    else:
        path = getattr(value, "path", None)
    if path is None or request is None:
        return path
    try:
        return serving.confine(path, [gr.utils.get_upload_folder(), EXAMPLES_DIR])
    except serving.PathRefused as exc:
        raise gr.Error(exc.message) from None


def _scrubbed(outcome: pres.ModelOutcome) -> pres.ModelOutcome:
    """A model outcome whose error names no server path."""
    return replace(outcome, error=serving.scrub_paths(outcome.error)) if outcome.error else outcome


def _name_of(value: Any) -> str:
    """The name a visitor's file had (for display only; on disk it is ``upload.<ext>``)."""
    name = value.get("orig_name") if isinstance(value, dict) else getattr(value, "orig_name", None)
    return str(name) if name else Path(_path_of(value) or "").name


def _code_html(text: str) -> str:
    """Escape text for HTML, turning `backticks` into <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _notice_html(text: str, kind: str = "info", css_class: str = "fd-notice", **data: Any) -> str:
    colour = {"info": "#1565c0", "error": "#c62828", "warning": "#ef6c00", "ok": "#2e7d32"}.get(
        kind, "#616161"
    )
    attrs = "".join(f' data-{k}="{html.escape(str(v))}"' for k, v in data.items())
    return (
        f'<div class="fd-card {css_class}" data-kind="{kind}"{attrs} style="--fd-colour:{colour};'
        f'border-left:6px solid {colour};border-radius:8px;padding:0.8rem 1rem">'
        f"{_code_html(text)}</div>"
    )


def _bar_html(bar: pres.ProbabilityBar, label: str = "") -> str:
    low, high = bar.band
    band = (
        f'<div title="uncertain band" style="position:absolute;left:{low}%;width:{high - low}%;'
        "top:0;bottom:0;background:repeating-linear-gradient(45deg,rgba(239,108,0,.25) 0 4px,"
        'transparent 4px 8px)"></div>'
        if high > low
        else ""
    )
    name = f'<div style="font-size:0.9em;margin-bottom:2px">{html.escape(label)}</div>'
    return (
        f'<div class="fd-bar" data-model="{html.escape(bar.model)}" style="margin:6px 0">'
        f"{name if label else ''}"
        '<div style="display:flex;align-items:center;gap:0.6rem">'
        '<div style="position:relative;flex:1;height:14px;border-radius:7px;'
        'background:rgba(127,127,127,.2);overflow:hidden">'
        f"{band}"
        f'<div style="height:100%;width:{bar.width}%;background:{bar.colour}"></div>'
        f'<div title="threshold" style="position:absolute;left:{bar.threshold}%;top:-2px;'
        'bottom:-2px;width:2px;background:currentColor;opacity:.7"></div></div>'
        f'<div style="min-width:9.5rem;font-variant-numeric:tabular-nums">'
        f"{html.escape(bar.text)}</div></div></div>"
    )


def _warnings_html(warnings: tuple[str, ...] | list[str]) -> str:
    """A prediction's domain warnings under `pres.WARNINGS_TITLE` (empty without warnings)."""
    if not warnings:
        return ""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return (
        '<div class="fd-warnings" style="margin-top:0.5rem;font-size:0.9em">'
        f"<b>⚠️ {html.escape(pres.WARNINGS_TITLE)}</b>"
        f'<ul style="margin:0.2rem 0 0 1.1rem;padding:0">{items}</ul></div>'
    )


def _verdict_html(prediction: detector.Prediction, stability: Any = None) -> str:
    v = pres.verdict(prediction, stability)
    reason = f'<div class="fd-reason">{html.escape(v.reason)}</div>' if v.reason else ""
    bar = _bar_html(pres.probability_bar(prediction))
    return (
        f'<div class="fd-card fd-verdict fd-{v.label}" data-label="{v.label}" '
        f'style="--fd-colour:{v.colour};border-left:6px solid {v.colour};border-radius:8px;'
        'padding:0.8rem 1rem">'
        f'<div class="fd-headline" style="font-size:1.6em;font-weight:700;color:{v.colour}">'
        f"{html.escape(v.headline)}</div>"
        f'<div class="fd-probability" style="font-size:1.15em;margin:0.2rem 0">'
        f"P(AI-generated) = <b>{v.probability}</b></div>"
        f"{bar}{reason}"
        f'<div style="font-size:0.9em;opacity:.85">{html.escape(v.detail)}<br>'
        f"Model <code>{html.escape(v.model)}</code> · {v.milliseconds:.0f} ms</div>"
        f"{_warnings_html(prediction.warnings)}</div>"
    )


def _model_infos() -> list[detector.ModelInfo]:
    return detector.list_models()


def _find_model(name: str | None) -> tuple[detector.ModelInfo | None, str | None]:
    """The model to use for ``name`` (empty: the best trained one), or a message saying why not."""
    infos = _model_infos()
    trained = [info for info in infos if info.trained]
    if not trained:
        return None, pres.no_models_message()
    if not name:
        return trained[0], None
    for info in infos:
        if info.name == name:
            return (info, None) if info.trained else (None, pres.untrained_message(info))
    known = ", ".join(info.name for info in trained)
    return None, f"Unknown model `{name}`. Trained models: {known}."


def _status(lines: list[str]) -> str:
    return "\n\n".join(lines)


def _read_error(exc: detector.ImageLoadError) -> str:
    return pres.read_error(exc.code, exc.message)


# ------------------------------------------------------------------------------------ detect
def detect(
    image: Any,
    model_name: str | None,
    method: str = "gradcam",
    opacity: float = DEFAULT_OPACITY,
    request: gr.Request | None = None,
) -> tuple[str, np.ndarray | None, np.ndarray | None, str, str, pres.HeatmapView | None]:
    """Score and explain one image with one model.

    Returns:
        (verdict HTML, overlay, raw heatmap, heatmap note, status Markdown, heatmap view state).
        The view state also holds the combined headline (the file's evidence, this model's score
        and its stability), which `show_view` puts above the verdict.
    """
    method = method or "gradcam"
    note = pres.heatmap_note(method)
    path = _path_of(image, request)
    if path is None:
        return "", None, None, note, "Upload, drop or paste an image to start.", None
    info, problem = _find_model(model_name)
    if info is None:
        return _notice_html(problem or "", "warning"), None, None, note, "", None
    try:
        loaded = pres.load_file(path)
    except detector.ImageLoadError as exc:
        message = _read_error(exc)
        return _notice_html(message, "error"), None, None, note, "", None
    array = loaded.array
    outcome = _scrubbed(
        pres.outcome_with_warnings(pres.run_model(array, info.name, method), loaded)
    )
    if not outcome.ok or outcome.explanation is None:
        message = f"Model `{info.name}` failed: {outcome.error}"
        return _notice_html(message, "error"), None, None, note, "", None
    assert outcome.prediction is not None
    found = pres.assess_upload(loaded, outcome.prediction)  # evidence and stability, same decode
    view = replace(pres.heatmap_view(array, outcome.explanation), headline=found.headline)
    lines = []
    if view.method != method:
        lines.append(
            f"`{info.name}` has no {pres.METHOD_TITLES.get(method, method)}; showing "
            f"{pres.METHOD_TITLES[view.method]}."
        )
    return (
        _verdict_html(outcome.prediction, found.stability),
        view.overlay(opacity),
        view.raw(),
        pres.heatmap_note(view.method),
        _status(lines),
        view,
    )


def show_view(view: pres.HeatmapView | None) -> tuple[str, dict[str, Any], str]:
    """After each detection, from its view state (no model call): the combined headline above
    the verdict (empty when the detection failed), then `show_patches`."""
    found = None if view is None else view.headline
    return ("" if found is None else pres.headline_html(found), *show_patches(view))


def show_patches(view: pres.HeatmapView | None) -> tuple[dict[str, Any], str]:
    """The last detection's patch map beside the overlay (hidden for a single view) and its
    caption, from the heatmap view state (no model call)."""
    patches = None if view is None else view.patches
    if patches is None:
        return gr.update(value=None, visible=False), ""
    return gr.update(value=patches.image, visible=not patches.single), patches.caption


def reblend(view: pres.HeatmapView | None, opacity: float) -> np.ndarray | None:
    """Re-blend the last heatmap over its image at a new opacity (no model call)."""
    return None if view is None else view.overlay(opacity)


def model_changed(model_name: str | None, method: str | None) -> tuple[str, dict[str, Any]]:
    """Describe the selected model and offer only the explanation methods it has."""
    infos = {info.name: info for info in _model_infos()}
    info = infos.get(model_name or "")
    if info is None:
        return "", gr.update()
    choices = [(pres.METHOD_TITLES.get(m, m), m) for m in info.methods]
    value = method if method in info.methods else "gradcam"
    return pres.model_summary(info), gr.update(choices=choices, value=value)


# ------------------------------------------------------------------------------------ compare
def compare(
    image: Any, opacity: float = DEFAULT_OPACITY, request: gr.Request | None = None
) -> tuple[str, str, list[list[Any]], list[tuple[np.ndarray, str]], str]:
    """Run every trained model on one image and line the answers up.

    Returns:
        (agreement HTML, probability bars HTML, table rows, Grad-CAM gallery, status Markdown).
    """
    path = _path_of(image, request)
    if path is None:
        return "", "", [], [], "Upload, drop or paste an image first."
    try:
        loaded = pres.load_file(path)
        array = loaded.array
        outcomes = pres.run_models(array, method="gradcam")
    except detector.ModelNotTrainedError as exc:
        return (
            _notice_html(serving.scrub_paths(exc.message), "warning"),
            "",
            [],
            [],
            "",
        )
    except detector.ImageLoadError as exc:
        message = _read_error(exc)
        return _notice_html(message, "error"), "", [], [], ""
    outcomes = [_scrubbed(pres.outcome_with_warnings(o, loaded)) for o in outcomes]
    predictions = [o.prediction for o in outcomes if o.prediction is not None]
    failed = [o for o in outcomes if not o.ok]
    summary = pres.agreement(predictions, failed=len(failed), default=outcomes[0].model)
    kind = ("ok" if summary.unanimous else "warning") if predictions else "error"
    agreement = _notice_html(summary.text, kind, "fd-agreement", agree=summary.unanimous)
    bars = "".join(
        _bar_html(pres.probability_bar(p), f"{p.model} · {pres.HEADLINES[p.label]}")
        for p in predictions
    )
    rows = [list(row.values()) for row in pres.comparison_rows(outcomes)]
    shown = [o for o in outcomes if o.explanation is not None and o.prediction is not None]
    views = pres.heatmap_views(array, [o.explanation for o in shown])
    gallery = [
        (
            view.overlay(opacity),
            f"{o.model} · {pres.percent(o.prediction.p_fake)} {o.prediction.label}",
        )
        for o, view in zip(shown, views, strict=True)
    ]
    status = [f"**`{o.model}` failed.** {o.error}" for o in failed]
    warnings = pres.warnings_markdown(pres.combined_warnings(predictions))
    return agreement, bars, rows, gallery, _status([*status, warnings] if warnings else status)


def clear_compare() -> tuple[str, str, list[list[Any]], list[Any], str]:
    """Empty comparison outputs (the image changed)."""
    return "", "", [], [], ""


# ------------------------------------------------------------------------------------ batch
_CSV_DIR: list[Path] = []


def _csv_dir() -> Path:
    """A private folder for batch CSV files (generated names, pruned after an hour)."""
    if not _CSV_DIR or not _CSV_DIR[0].is_dir():
        _CSV_DIR[:] = [Path(tempfile.mkdtemp(prefix="fakedetect-app-"))]
    return _CSV_DIR[0]


class _Uploads(Sequence[str | tuple[str, bytes]]):
    """Uploaded files for `pres.read_uploads`: ``(the visitor's name, bytes)``, each file read only
    when its turn comes (its path when it is too large or unreadable, for read_uploads to say so).
    """

    def __init__(self, files: list[tuple[str, str]]) -> None:
        self._files = files  # (path, name shown)

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, index: int) -> str | tuple[str, bytes]:  # type: ignore[override]
        path, name = self._files[index]
        limits = pres.UploadLimits()
        limit = max(limits.max_file_bytes, limits.max_total_bytes)
        try:  # at most limit + 1 bytes, whatever the size the file system reports
            with open(path, "rb") as file:
                data = file.read(limit + 1)
        except OSError:
            return path
        return (name, data) if len(data) <= limit else path


def batch(
    files: Any, model_names: list[str] | None, request: gr.Request | None = None
) -> tuple[list[list[Any]], str | None, str]:
    """Score many files (images or zip archives) with the chosen models.

    ``files`` are paths or Gradio file payloads; rows show a payload's ``orig_name``, the name
    the visitor's file had, which never reaches the disk.

    Returns:
        (table rows in `presentation.BATCH_FIELDS` order, CSV file path, summary Markdown).
    """
    if isinstance(files, (str, Path, dict)):
        files = [files]
    uploads = [(p, _name_of(f)) for f in (files or []) if (p := _path_of(f, request))]
    if not uploads:
        return [], None, "Upload images or a .zip archive first."
    trained = [info.name for info in pres.trained_models()]
    if not trained:
        return [], None, pres.no_models_message()
    # Only trained models' names (this event skips Gradio's check of the choices).
    requested = [name for name in (model_names or []) if name]
    unknown = [str(name)[:80] for name in requested if name not in trained]
    if unknown:
        return [], None, f"Unknown model `{unknown[0]}`. Trained models: {', '.join(trained)}."
    names = requested or trained[:1]
    items = pres.read_uploads(_Uploads(uploads))
    # One image decoded at a time: a batch of large images never sits in memory at once.
    rows = [
        replace(row, error=serving.scrub_paths(row.error)) if row.error else row
        for row in pres.batch_rows(items, names, chunk=1)
    ]
    folder = _csv_dir()
    pres.prune_files(folder)
    csv_path = pres.write_csv(rows, folder)
    return [row.to_list() for row in rows], str(csv_path), pres.batch_summary(rows)


# ------------------------------------------------------------------------------------ evidence
EvidenceOutputs = tuple[
    str, str, dict[str, Any] | None, np.ndarray | None, np.ndarray | None, Any, list[list[Any]], str
]


def _no_evidence(headline: str = "", stress: str = "") -> EvidenceOutputs:
    return headline, "", None, None, None, None, [], stress


def _stress_names(model_name: str | None, scope: str | None) -> tuple[list[str], str | None]:
    """The models to stress-test (``scope`` ``all`` or the selected one), or why there are none."""
    if scope == "all":
        names = [info.name for info in pres.trained_models()]
        return (names, None) if names else ([], pres.no_models_message())
    info, problem = _find_model(model_name)
    return ([info.name], None) if info is not None else ([], problem)


def evidence_board(
    image: Any,
    model_name: str | None = None,
    scope: str | None = "selected",
    request: gr.Request | None = None,
) -> EvidenceOutputs:
    """The evidence board of one uploaded file: provenance, forensic views and a stress test.

    Provenance is read from the uploaded file's own bytes (metadata survives); the forensic
    views and the stress test need decodable pixels, and the stress test a trained model.

    Returns:
        (provenance headline HTML, provenance Markdown, the report as JSON (as ``/inspect`` gives
        it), residual spectrum, ELA map, stress-test Figure, stress-test rows in `STRESS_HEADERS`
        order, stress Markdown).
    """
    path = _path_of(image, request)
    if path is None:
        return _no_evidence(stress="Upload, drop or paste an image first.")
    try:
        report = detector.inspect_file(path)
    except detector.ImageLoadError as exc:
        message = _read_error(exc)
        return _no_evidence(_notice_html(message, "error", "fd-evidence-headline"))
    headline, tone = pres.evidence_headline(report)
    provenance, data = pres.evidence_markdown(report), pres.inspect_result(report)
    problem = pres.evidence_error(report)
    if problem is not None:
        text = problem if tone == "unreadable" else f"{problem}. Its metadata says: {headline}"
        card = _notice_html(text, "error", "fd-evidence-headline", tone="unreadable")
        return card, provenance, data, None, None, None, [], ""
    card = _notice_html(
        headline, EVIDENCE_KINDS.get(tone, "info"), "fd-evidence-headline", tone=tone
    )
    try:
        array = detector.load_image(path)
    except detector.ImageLoadError as exc:  # readable a moment ago: the file changed
        return card, provenance, data, None, None, None, [], _read_error(exc)
    spectrum, ela = (view.image for view in pres.forensic_views(array))
    names, missing = _stress_names(model_name, scope)
    if not names:
        return card, provenance, data, spectrum, ela, None, [], missing or ""
    outcome = pres.run_stress(array, names)
    outcome = replace(
        outcome, errors={k: serving.scrub_paths(v) for k, v in outcome.errors.items()}
    )
    figure = detector.plot_stress(outcome.result) if outcome.result is not None else None
    rows = [list(row.values()) for row in pres.stress_rows(outcome)]
    return (
        card,
        provenance,
        data,
        spectrum,
        ela,
        figure,
        rows,
        pres.stress_markdown(outcome),
    )


def clear_evidence() -> EvidenceOutputs:
    """Empty evidence outputs (the image changed)."""
    return _no_evidence()


# ------------------------------------------------------------------------------------ examples
def load_examples(folder: Path = EXAMPLES_DIR) -> list[dict[str, str]]:
    """The example images listed in ``examples.json`` that exist (none if it is missing)."""
    return [
        {
            "file": example.file,
            "path": str(example.path),
            "label": example.label,
            "source": example.source,
            "generator": example.generator,
            "licence": example.licence,
            "author": example.author,
        }
        for example in classroom.load_examples(folder)
    ]


EXAMPLES = load_examples()


def example_credit(index: int, examples: list[dict[str, str]] | None = None) -> str:
    """Where one example comes from (source, author, licence), without giving the answer away."""
    examples = EXAMPLES if examples is None else examples
    if not 0 <= index < len(examples):
        return ""
    entry = examples[index]
    return ", ".join(
        f"{key}: {entry[key]}" for key in ("source", "author", "licence") if entry.get(key)
    )


def example_note(index: int, examples: list[dict[str, str]] | None = None) -> str:
    """The known answer and attribution of one example, as Markdown."""
    examples = EXAMPLES if examples is None else examples
    if not 0 <= index < len(examples):
        return ""
    entry = examples[index]
    answer = "AI-generated" if entry.get("label") == "fake" else "a real photo"
    generator = entry.get("generator", "")
    if entry.get("label") == "fake" and generator:
        answer += f" ({generator})"
    credit = example_credit(index, examples)
    return f"**Example {index + 1}** is {answer}. {credit}".strip()


def select_example(index: int) -> tuple[str | None, str]:
    """The image path and the note of one example."""
    if not 0 <= index < len(EXAMPLES):
        return None, ""
    return EXAMPLES[index]["path"], example_note(index)


def _on_example_select(evt: gr.SelectData) -> tuple[str | None, str]:
    return select_example(int(evt.index))


# ------------------------------------------------------------------------------------ API
def _api_image(image: Any, request: gr.Request | None = None) -> str:
    path = _path_of(image, request)
    if path is None:
        raise gr.Error("No image received: send one image file.")
    return path


def _api_error(exc: Exception, model: str | None = None) -> gr.Error:
    if isinstance(exc, detector.ImageLoadError):
        return gr.Error(_read_error(exc))
    prefix = f"Model {model} failed" if model else "Failed"
    return gr.Error(serving.scrub_paths(f"{prefix}: {pres.error_text(exc)}"))


def api_predict(
    image: Any, model: str | None = "", request: gr.Request | None = None
) -> dict[str, Any]:
    """Score one image with one model (empty name: the best) and return JSON, with the combined
    headline (the file's evidence, the score and its stability)."""
    path = _api_image(image, request)
    info, problem = _find_model(model)
    if info is None:
        raise gr.Error(problem or "no model")
    try:
        loaded = pres.load_file(path)
        scorer = detector.load_model(info.name)
        prediction = pres.with_warnings(scorer.predict(loaded.array), loaded)
    except Exception as exc:
        raise _api_error(exc, info.name) from None
    return pres.api_prediction(pres.assess_upload(loaded, prediction, scorer))


def api_compare(image: Any, request: gr.Request | None = None) -> dict[str, Any]:
    """Score one image with every trained model and return JSON, with a per-model error field."""
    path = _api_image(image, request)
    try:
        loaded = pres.load_file(path)
        outcomes = pres.run_models(loaded.array, method=None)
    except Exception as exc:
        raise _api_error(exc) from None
    outcomes = [_scrubbed(pres.outcome_with_warnings(o, loaded)) for o in outcomes]
    predictions = [o.prediction for o in outcomes if o.prediction is not None]
    summary = pres.agreement(predictions, len(outcomes) - len(predictions), outcomes[0].model)
    return {
        "agreement": {
            "unanimous": summary.unanimous,
            "label": summary.label,
            "counts": summary.counts,
            "text": summary.text,
        },
        "models": [
            {**pres.api_result(o.prediction), "error": None}
            if o.prediction is not None
            else {"model": o.model, "error": o.error}
            for o in outcomes
        ],
    }


def api_explain(
    image: Any,
    model: str | None = "",
    method: str | None = "gradcam",
    request: gr.Request | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Score and explain one image: (overlay, coloured heatmap, JSON with the method used)."""
    path = _api_image(image, request)
    info, problem = _find_model(model)
    if info is None:
        raise gr.Error(problem or "no model")
    method = str(method or "gradcam")  # as a Textbox would pass it (no preprocessing)
    if method not in pres.METHOD_TITLES:
        raise gr.Error(f"Unknown method {method!r}; use one of: {', '.join(pres.METHOD_TITLES)}")
    try:
        array = detector.load_image(path)
    except Exception as exc:
        raise _api_error(exc) from None
    outcome = pres.run_model(array, info.name, method)
    if outcome.explanation is None or outcome.prediction is None:
        raise gr.Error(serving.scrub_paths(f"Model {info.name} failed: {outcome.error}"))
    view = pres.heatmap_view(array, outcome.explanation)
    result = {
        **pres.api_result(outcome.prediction),
        "method": view.method,
        "patch": outcome.explanation.patch,
    }
    return view.overlay(DEFAULT_OPACITY), view.raw(), result


def api_inspect(image: Any, request: gr.Request | None = None) -> dict[str, Any]:
    """The provenance evidence of one image file (`EvidenceReport.to_dict`), read from its bytes,
    with its evidence-only headline as ``verdict``.

    A file whose pixels cannot be decoded is an error naming the problem, as in ``/predict``.
    """
    path = _api_image(image, request)
    try:
        report = detector.inspect_file(path)
    except Exception as exc:
        raise _api_error(exc) from None
    problem = pres.evidence_error(report)
    if problem is not None:
        raise gr.Error(problem)
    return pres.inspect_result(report)


def api_models() -> list[dict[str, Any]]:
    """Every model the app knows (trained first, best first) as JSON."""
    return [info.to_dict() for info in _model_infos()]


# ------------------------------------------------------------------------------------ layout
EVIDENCE_INTRO = (
    pres.EVIDENCE_INTRO
    + " Provenance is read from the uploaded file itself; an image pasted from the clipboard is a "
    "fresh copy and carries no metadata. The stress test re-scores the image about 12 times per "
    "model."
)

INTRO = """# Is this image AI-generated?
Drop an image to get a calibrated verdict from a trained detector and a heatmap of where it looked.
Scores are statistical evidence, not proof: read the note under the heatmap before you rely on one.
"""

API_DOCS = """### API
Every call below works with `gradio_client` (`pip install gradio_client`):

```python
from gradio_client import Client, handle_file
client = Client("http://127.0.0.1:7860/")          # or "user/space-name"
client.predict(handle_file("photo.jpg"), "", api_name="/predict")      # "" = best model
client.predict(handle_file("photo.jpg"), api_name="/compare")         # every model
client.predict(handle_file("photo.jpg"), "", "gradcam", api_name="/explain")
client.predict(handle_file("photo.jpg"), api_name="/inspect")         # provenance evidence
client.predict(api_name="/models")
```

`/predict` returns `{"model", "p_fake", "label", "label_title", "threshold", "seconds",
"uncertain_band", "warnings", "patches", "stability", "headline"}`; `label` is `fake`, `real` or
`uncertain`, `label_title` its words. `headline` is the combined headline, the one the Detect
tab shows first: `{"label", "title", "basis", "reasons", "order"}`, `label` one of
`ai_generated`, `camera_original`, `likely_ai`, `likely_real`, `uncertain`, `cannot_tell`;
`basis` what decided it (`signature`, `declaration`, `model`, `none`) by the rules of `order`,
first match wins; each reason `{"source", "text", "strength"}`. `stability` says whether the
verdict survives JPEG q90 and a 0.75x resize. `patches` lists
the views the score combines, each `{"x", "y", "size", "p_fake", "fake_logit"}` (`"whole_image":
true` for the whole picture resized): a native-resolution model scores a large image on up to 16
patches and `p_fake` combines them (mean logit), a small image on its central crop. `/explain`
adds `method` and `patch`, the index in `patches` its heatmap explains (the most suspicious).
`/compare` returns `{"agreement": {...}, "models": [...]}` where a model that failed has an
`error` and no score (there and in `/explain`, `headline` is the model's verdict in words).
`/inspect` returns the file's provenance evidence, read from the file's own bytes and kept apart
from any model score: `{"readable", "format", "width", "height", "headline", "note", "items",
"verdict"}`, each item with `kind`, `title`, `found`, `summary`, `indicates`, `details`, `proves`
and `does_not_prove`; `headline` is the evidence board's one line, `verdict` the combined
headline from the evidence alone (no model). An unreadable file is an error whose message names
the problem (e.g. `truncated_file`).

### Privacy
Images are scored in memory and never leave this server. Gradio keeps uploads in its temporary
cache under neutral names (`upload.png`; your file's name is never written to disk), and the app
clears that cache of files older than an hour, every hour; zip archives are opened in memory and
batch CSV files get generated names. No usage statistics are sent.
"""


def _theme() -> gr.themes.Base:
    # System fonts: the page must not fetch web fonts (offline, and no third-party requests).
    return gr.themes.Soft(
        primary_hue="indigo",
        font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )


def _result_image(label: str, elem_id: str, visible: bool = True) -> gr.Image:
    """One of the Detect tab's result images (overlay, heatmap, patch map): JPEG, read-only."""
    return gr.Image(
        label=label,
        format="jpeg",
        interactive=False,
        height=320,
        visible=visible,
        elem_id=elem_id,
    )


def build_demo() -> gr.Blocks:
    """Lay out the app and wire its events."""
    infos = _model_infos()
    trained = [info for info in infos if info.trained]
    default = trained[0] if trained else None
    methods = default.methods if default else ("gradcam", "gradcam++")
    with gr.Blocks(
        title="fakedetect: is this image AI-generated?",
        analytics_enabled=False,
        delete_cache=(3600, 3600),
    ) as demo:
        gr.Markdown(INTRO)
        gr.HTML(
            _notice_html(pres.no_models_message(), "warning", "fd-no-models"),
            visible=not trained,
        )
        with gr.Tabs():
            with gr.Tab("Detect & compare", id="detect"):
                if EXAMPLES:
                    examples_gallery = gr.Gallery(
                        value=[(e["path"], f"#{i + 1}") for i, e in enumerate(EXAMPLES)],
                        label="Examples: click one to run it",
                        columns=len(EXAMPLES),
                        height=135,
                        allow_preview=False,
                        object_fit="cover",
                        interactive=False,
                        elem_id="fd-examples",
                    )
                    example_md = gr.Markdown(elem_id="fd-example-note")
                with gr.Row(equal_height=False, elem_id="fd-main"):
                    with gr.Column(scale=5, elem_id="fd-controls"):
                        image_in = gr.Image(
                            label="Image: drop, click to upload, or paste",
                            sources=["upload", "clipboard"],
                            type="filepath",
                            image_mode=None,
                            height=340,
                            elem_id="fd-input",
                        )
                        model_dd = gr.Dropdown(
                            choices=pres.model_choices(infos),
                            value=default.name if default else None,
                            label="Model",
                            elem_id="fd-model",
                        )
                        model_md = gr.Markdown(
                            pres.model_summary(default) if default else "",
                            elem_id="fd-model-info",
                        )
                        method_in = gr.Radio(
                            choices=[(pres.METHOD_TITLES[m], m) for m in methods],
                            value="gradcam",
                            label="Explanation",
                        )
                        opacity_in = gr.Slider(
                            0.0,
                            1.0,
                            value=DEFAULT_OPACITY,
                            step=0.05,
                            label="Heatmap opacity",
                            elem_id="fd-opacity",
                        )
                        with gr.Row():
                            detect_btn = gr.Button("Detect", variant="primary")
                            compare_btn = gr.Button(
                                "Compare all models",
                                variant="secondary",
                                elem_id="fd-compare-button",
                            )
                            evidence_btn = gr.Button(
                                "Evidence board",
                                variant="secondary",
                                elem_id="fd-evidence-button",
                            )
                        if EXAMPLES:
                            with gr.Accordion("Example credits", open=False):
                                gr.Markdown(
                                    "\n".join(
                                        f"- #{i + 1}: {example_credit(i)}"
                                        for i in range(len(EXAMPLES))
                                    )
                                    + "\n\nSee `assets/examples/ATTRIBUTION.md`."
                                )
                    with gr.Column(scale=7, elem_id="fd-results"):
                        # the combined headline of the last detection, above every result
                        headline_out = gr.HTML(elem_id="fd-headline")
                        with gr.Tabs() as result_tabs:
                            with gr.Tab("Verdict & heatmap", id="verdict"):
                                verdict_out = gr.HTML(elem_id="fd-verdict")
                                status_out = gr.Markdown(elem_id="fd-status")
                                with gr.Row():
                                    overlay_out = _result_image("Explanation overlay", "fd-overlay")
                                    heatmap_out = _result_image("Raw heatmap", "fd-heatmap")
                                    patch_map_out = _result_image(
                                        "Patch scores", "fd-patch-map", visible=False
                                    )
                                patches_md = gr.Markdown(elem_id="fd-patches")
                                note_out = gr.Markdown(pres.heatmap_note("gradcam"))
                            with gr.Tab("Compare all models", id="compare"):
                                agreement_out = gr.HTML(elem_id="fd-agreement")
                                bars_out = gr.HTML(elem_id="fd-bars")
                                compare_table = gr.Dataframe(
                                    headers=COMPARE_HEADERS,
                                    interactive=False,
                                    wrap=True,
                                    elem_id="fd-compare-table",
                                )
                                compare_gallery = gr.Gallery(
                                    label="Grad-CAM of every model",
                                    columns=3,
                                    format="jpeg",
                                    height="auto",
                                    object_fit="contain",
                                    interactive=False,
                                )
                                compare_status = gr.Markdown()
                            with gr.Tab("Evidence", id="evidence"):
                                gr.Markdown(EVIDENCE_INTRO)
                                with gr.Row(equal_height=True):
                                    scope_in = gr.Radio(
                                        choices=STRESS_SCOPES,
                                        value="selected",
                                        label="Stress-test",
                                        scale=3,
                                        elem_id="fd-stress-scope",
                                    )
                                    gather_btn = gr.Button(
                                        "Gather evidence",
                                        variant="primary",
                                        scale=1,
                                        elem_id="fd-gather-button",
                                    )
                                gr.Markdown("### 1 · Provenance evidence (the file, not a model)")
                                evidence_headline = gr.HTML(elem_id="fd-evidence-headline")
                                gr.Markdown(pres.EVIDENCE_NOTE)
                                with gr.Accordion(
                                    "Every item: what it proves, and what not", open=True
                                ):
                                    evidence_md = gr.Markdown(elem_id="fd-evidence-items")
                                with gr.Accordion("The full report as JSON", open=False):
                                    evidence_json = gr.JSON(
                                        label="report", elem_id="fd-evidence-json"
                                    )
                                gr.Markdown(
                                    "### 2 · Forensic views (pictures to read, not detectors)"
                                )
                                with gr.Row():
                                    with gr.Column():
                                        spectrum_out = gr.Image(
                                            label=pres.FORENSIC_TITLES["spectrum"],
                                            interactive=False,
                                            height=300,
                                            format="png",  # lossless: WebP would blur the traces
                                            elem_id="fd-spectrum",
                                        )
                                        gr.Markdown(pres.FORENSIC_EXPLANATIONS["spectrum"])
                                    with gr.Column():
                                        ela_out = gr.Image(
                                            label=pres.FORENSIC_TITLES["ela"],
                                            interactive=False,
                                            height=300,
                                            format="png",  # lossless: WebP would blur the traces
                                            elem_id="fd-ela",
                                        )
                                        gr.Markdown(pres.FORENSIC_EXPLANATIONS["ela"])
                                gr.Markdown(
                                    "### 3 · Stress test (the scores after JPEG re-compression and "
                                    "downscaling)"
                                )
                                stress_plot = gr.Plot(
                                    label="P(AI-generated) under changes",
                                    format="png",
                                    elem_id="fd-stress-plot",
                                )
                                stress_table = gr.Dataframe(
                                    headers=STRESS_HEADERS,
                                    datatype=[
                                        "str",
                                        "number",
                                        "str",
                                        "number",
                                        "number",
                                        "bool",
                                        "str",
                                    ],
                                    interactive=False,
                                    wrap=True,
                                    elem_id="fd-stress-table",
                                )
                                stress_md = gr.Markdown(elem_id="fd-stress-note")
            with gr.Tab("Batch", id="batch"):
                gr.Markdown(
                    "Score many images at once: upload image files and/or `.zip` archives. "
                    "Each (file, model) pair becomes one row; files that are not readable images "
                    "get a row with the error. Archives are opened in memory. One upload holds "
                    f"at most {serving.MAX_UPLOAD_FILES} files and "
                    f"{serving.MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
                )
                with gr.Row():
                    files_in = gr.File(
                        label="Images or .zip archives",
                        file_count="multiple",
                        type="filepath",
                        elem_id="fd-batch-files",
                    )
                    with gr.Column():
                        models_in = gr.CheckboxGroup(
                            choices=pres.model_choices(trained),
                            value=[default.name] if default else [],
                            label="Models",
                        )
                        batch_btn = gr.Button("Score all files", variant="primary")
                batch_status = gr.Markdown(label="summary")
                batch_table = gr.Dataframe(
                    headers=BATCH_HEADERS, interactive=False, wrap=True, label="Results"
                )
                csv_out = gr.File(label="Results as CSV", interactive=False)
            with gr.Tab("API & privacy", id="api"):
                gr.Markdown(API_DOCS)

        # Hidden components behind the JSON API endpoints.
        api_image = gr.File(type="filepath", visible=False, label="image")
        api_model = gr.Textbox(value="", visible=False, label="model")
        api_method = gr.Textbox(value="gradcam", visible=False, label="method")
        api_json = gr.JSON(visible=False, label="result")
        api_overlay = gr.Image(visible=False, label="overlay", format="jpeg")
        api_heatmap = gr.Image(visible=False, label="heatmap", format="jpeg")
        api_button = gr.Button(visible=False)

        # API endpoints first, so that UI handlers of the same name cannot take their names.
        # File inputs skip Gradio's preprocessing (preprocess=False; Gradio still checks that the
        # path is an upload, and `_path_of` checks it for every event, UI events included):
        # `gr.File` would leave an empty temporary file per call in its cache. Every event that
        # decodes an image or runs a model is in the one `HEAVY` concurrency group.
        heavy = {"concurrency_id": HEAVY, "concurrency_limit": CONCURRENCY_LIMIT}
        raw = {"preprocess": False, **heavy}
        api_button.click(api_predict, [api_image, api_model], api_json, api_name="predict", **raw)
        api_button.click(api_compare, api_image, api_json, api_name="compare", **raw)
        api_button.click(
            api_explain,
            [api_image, api_model, api_method],
            [api_overlay, api_heatmap, api_json],
            api_name="explain",
            **raw,
        )
        api_button.click(api_models, None, api_json, api_name="models")
        api_button.click(api_inspect, api_image, api_json, api_name="inspect", **raw)

        view_state = gr.State(None)
        detect_inputs = [image_in, model_dd, method_in, opacity_in]
        detect_outputs = [verdict_out, overlay_out, heatmap_out, note_out, status_out, view_state]
        # the headline, the patch map and its caption follow each detection, from its view state
        view_args = (show_view, view_state, [headline_out, patch_map_out, patches_md])
        compare_outputs = [agreement_out, bars_out, compare_table, compare_gallery, compare_status]
        private = {"api_visibility": "private"}

        # The image input skips Gradio's own decoding (preprocess=False): a broken file reaches
        # `detect`, which says what is wrong instead of failing with a bare "Error".
        for trigger in (image_in.change, detect_btn.click, method_in.input):
            trigger(detect, detect_inputs, detect_outputs, **raw, **private).then(
                *view_args, **private
            )
        image_in.change(clear_compare, None, compare_outputs, **private)
        model_dd.input(model_changed, [model_dd, method_in], [model_md, method_in], **private).then(
            detect, detect_inputs, detect_outputs, **raw, **private
        ).then(*view_args, **private)
        opacity_in.change(
            reblend,
            [view_state, opacity_in],
            overlay_out,
            trigger_mode="always_last",
            show_progress="hidden",
            **private,
        )
        compare_btn.click(lambda: gr.Tabs(selected="compare"), None, result_tabs, **private).then(
            compare, [image_in, opacity_in], compare_outputs, **raw, **private
        )
        evidence_outputs = [
            evidence_headline,
            evidence_md,
            evidence_json,
            spectrum_out,
            ela_out,
            stress_plot,
            stress_table,
            stress_md,
        ]
        evidence_inputs = [image_in, model_dd, scope_in]
        image_in.change(clear_evidence, None, evidence_outputs, **private)
        evidence_btn.click(lambda: gr.Tabs(selected="evidence"), None, result_tabs, **private).then(
            evidence_board, evidence_inputs, evidence_outputs, **raw, **private
        )
        gather_btn.click(evidence_board, evidence_inputs, evidence_outputs, **raw, **private)
        if EXAMPLES:
            examples_gallery.select(_on_example_select, None, [image_in, example_md], **private)
            image_in.upload(lambda: "", None, example_md, **private)
        batch_btn.click(
            batch,
            [files_in, models_in],
            [batch_table, csv_out, batch_status],
            api_name="batch",
            **raw,
        )

    # api_open=False: the REST routes (/gradio_api/run/<api>) do not skip the queue.
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_MAX_SIZE, api_open=False)
    return demo


demo = build_demo()


def _queued(event_id: str) -> bool:
    """Whether Gradio's queue still holds (waits for or runs) an event."""
    return event_id in demo._queue.event_ids_to_events


#: Arguments for `demo.launch` (Gradio 6 takes the theme and CSS here, not in `Blocks`).
#: ``app_kwargs`` go to the FastAPI app Gradio builds: `serving.NeutralUploadNames` renames
#: every uploaded file to ``upload.<ext>`` before Gradio's upload route stores it under that name,
#: refuses API calls that pass a file as a URL, which Gradio would download into its cache, and
#: URL fetches through Gradio's file route, and caps each upload request; behind it,
#: `serving.FairQueue` caps the events each client has waiting or running (`HEAVY` ones
#: apart). Monitoring is off: its summary route is public.
LAUNCH_KWARGS: dict[str, Any] = {
    "max_file_size": MAX_FILE_SIZE,
    "allowed_paths": [str(EXAMPLES_DIR)],
    "theme": _theme(),
    "css": CSS,
    "enable_monitoring": False,
    "app_kwargs": {
        "middleware": [
            Middleware(
                serving.NeutralUploadNames,
                fair_queue={
                    "pending": _queued,
                    "heavy_events": {i for i, fn in demo.fns.items() if fn.concurrency_id == HEAVY},
                    "heavy_apis": {
                        fn.api_name for fn in demo.fns.values() if fn.concurrency_id == HEAVY
                    },
                },
            )
        ]
    },
}


if __name__ == "__main__":
    demo.launch(**LAUNCH_KWARGS)
