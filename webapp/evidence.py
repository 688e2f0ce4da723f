"""The Detect tab's "Evidence" result tab: provenance, forensic views and a stress test."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gradio as gr
import numpy as np

import detector
from detector import serving
from detector.ui import app_texts, app_views
from detector.ui import presentation as pres
from webapp.common import PRIVATE, RAW, path_of, read_error, result_image

STRESS_HEADERS = list(pres.STRESS_FIELDS)
STRESS_TYPES = ["str", "number", "str", "number", "number", "bool", "str"]

EvidenceOutputs = tuple[
    str, str, dict[str, Any] | None, np.ndarray | None, np.ndarray | None, Any, list[list[Any]], str
]


def _no_evidence(headline: str = "", stress: str = "") -> EvidenceOutputs:
    return headline, "", None, None, None, None, [], stress


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
    path = path_of(image, request)
    if path is None:
        return _no_evidence(stress="Upload, drop or paste an image first.")
    try:
        report = detector.inspect_file(path)
    except detector.ImageLoadError as exc:
        return _no_evidence(app_views.evidence_error_card(read_error(exc)))
    ev = app_views.evidence_card(report)
    if not ev.readable:
        return ev.card, ev.provenance, ev.data, None, None, None, [], ""
    try:
        array = detector.load_image(path)
    except detector.ImageLoadError as exc:  # readable a moment ago: the file changed
        return ev.card, ev.provenance, ev.data, None, None, None, [], read_error(exc)
    spectrum, ela = (view.image for view in pres.forensic_views(array))
    names, missing = app_views.stress_names(detector.list_models(), model_name, scope)
    if not names:
        return ev.card, ev.provenance, ev.data, spectrum, ela, None, [], missing or ""
    outcome = pres.run_stress(array, names)
    errors = {k: serving.scrub_paths(v) for k, v in outcome.errors.items()}
    outcome = replace(outcome, errors=errors)
    figure = detector.plot_stress(outcome.result) if outcome.result is not None else None
    rows = [list(row.values()) for row in pres.stress_rows(outcome)]
    stress = pres.stress_markdown(outcome)
    return ev.card, ev.provenance, ev.data, spectrum, ela, figure, rows, stress


def clear_evidence() -> EvidenceOutputs:
    """Empty evidence outputs (the image changed)."""
    return _no_evidence()


@dataclass
class EvidenceTab:
    """The evidence board's components: the stress scope, its button, then its outputs."""

    scope: Any
    gather_button: Any
    outputs: list[Any]


def layout() -> EvidenceTab:
    """Lay out the evidence board (inside its `gr.Tab`)."""
    gr.Markdown(app_texts.EVIDENCE_INTRO)
    with gr.Row(equal_height=True):
        scope = gr.Radio(
            choices=app_views.STRESS_SCOPES,
            value="selected",
            label="Stress-test",
            scale=3,
            elem_id="fd-stress-scope",
        )
        gather = gr.Button(
            "Gather evidence", variant="primary", scale=1, elem_id="fd-gather-button"
        )
    gr.Markdown("### 1 · Provenance evidence (the file, not a model)")
    headline = gr.HTML(elem_id="fd-evidence-headline")
    gr.Markdown(pres.EVIDENCE_NOTE)
    with gr.Accordion("Every item: what it proves, and what not", open=True):
        items = gr.Markdown(elem_id="fd-evidence-items")
    with gr.Accordion("The full report as JSON", open=False):
        report = gr.JSON(label="report", elem_id="fd-evidence-json")
    gr.Markdown("### 2 · Forensic views (pictures to read, not detectors)")
    views = []
    with gr.Row():
        for key, elem_id in (("spectrum", "fd-spectrum"), ("ela", "fd-ela")):
            with gr.Column():
                # lossless PNG: WebP would blur the traces
                title = pres.FORENSIC_TITLES[key]
                views.append(result_image(title, elem_id, height=300, format="png"))
                gr.Markdown(pres.FORENSIC_EXPLANATIONS[key])
    gr.Markdown("### 3 · Stress test (the scores after JPEG re-compression and downscaling)")
    plot = gr.Plot(label="P(AI-generated) under changes", format="png", elem_id="fd-stress-plot")
    table = gr.Dataframe(
        headers=STRESS_HEADERS,
        datatype=STRESS_TYPES,
        interactive=False,
        wrap=True,
        elem_id="fd-stress-table",
    )
    note = gr.Markdown(elem_id="fd-stress-note")
    return EvidenceTab(scope, gather, [headline, items, report, *views, plot, table, note])


def wire(button: Any, result_tabs: Any, image: Any, model: Any, tab: EvidenceTab) -> None:
    """Empty the board when the image changes; the evidence button shows this tab and fills it,
    the gather button refills it."""
    inputs = [image, model, tab.scope]
    image.change(clear_evidence, None, tab.outputs, **PRIVATE)
    button.click(lambda: gr.Tabs(selected="evidence"), None, result_tabs, **PRIVATE).then(
        evidence_board, inputs, tab.outputs, **RAW, **PRIVATE
    )
    tab.gather_button.click(evidence_board, inputs, tab.outputs, **RAW, **PRIVATE)
