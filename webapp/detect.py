"""The Detect tab: the examples, the image and its controls, and the results (the combined
headline, then the verdict and heatmaps, the comparison of every model and the evidence board)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gradio as gr
import numpy as np

import detector
from detector.ui import example_gallery
from detector.ui import presentation as pres
from detector.ui.verdict_cards import notice_html, verdict_html
from webapp import compare, evidence
from webapp.common import (
    DEFAULT_OPACITY,
    EXAMPLES,
    PRIVATE,
    RAW,
    find_model,
    path_of,
    read_error,
    result_image,
    scrubbed,
)


# ------------------------------------------------------------------------------------ handlers
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
    path = path_of(image, request)
    if path is None:
        return "", None, None, note, "Upload, drop or paste an image to start.", None
    info, problem = find_model(model_name)
    if info is None:
        return notice_html(problem or "", "warning"), None, None, note, "", None
    try:
        loaded = pres.load_file(path)
    except detector.ImageLoadError as exc:
        return notice_html(read_error(exc), "error"), None, None, note, "", None
    array = loaded.array
    outcome = scrubbed(pres.outcome_with_warnings(pres.run_model(array, info.name, method), loaded))
    if not outcome.ok or outcome.explanation is None:
        message = f"Model `{info.name}` failed: {outcome.error}"
        return notice_html(message, "error"), None, None, note, "", None
    assert outcome.prediction is not None
    found = pres.assess_upload(loaded, outcome.prediction)  # evidence and stability, same decode
    view = replace(pres.heatmap_view(array, outcome.explanation), headline=found.headline)
    card = verdict_html(
        outcome.prediction, stability=found.stability, warnings_title=pres.WARNINGS_TITLE
    )
    status = outcome.method_note
    return card, view.overlay(opacity), view.raw(), pres.heatmap_note(view.method), status, view


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
    infos = {info.name: info for info in detector.list_models()}
    info = infos.get(model_name or "")
    if info is None:
        return "", gr.update()
    choices = [(pres.METHOD_TITLES.get(m, m), m) for m in info.methods]
    value = method if method in info.methods else "gradcam"
    return pres.model_summary(info), gr.update(choices=choices, value=value)


def select_example(index: int) -> tuple[str | None, str]:
    """The image path and the note of one example."""
    if not 0 <= index < len(EXAMPLES):
        return None, ""
    return EXAMPLES[index]["path"], example_gallery.example_note(index, EXAMPLES)


def _on_example_select(evt: gr.SelectData) -> tuple[str | None, str]:
    return select_example(int(evt.index))


# ------------------------------------------------------------------------------------ layout
@dataclass
class DetectTab:
    """The Detect tab's components (the result tabs' own in `compare` and `evidence`)."""

    examples: Any
    example_note: Any
    image: Any
    model: Any
    model_info: Any
    method: Any
    opacity: Any
    detect_button: Any
    compare_button: Any
    evidence_button: Any
    headline: Any
    result_tabs: Any
    verdict: Any
    status: Any
    overlay: Any
    heatmap: Any
    patch_map: Any
    patches: Any
    note: Any
    compare: compare.CompareTab
    evidence: evidence.EvidenceTab


def _controls(infos: list[detector.ModelInfo], default: detector.ModelInfo | None) -> list[Any]:
    methods = default.methods if default else ("gradcam", "gradcam++")
    image = gr.Image(
        label="Image: drop, click to upload, or paste",
        sources=["upload", "clipboard"],
        type="filepath",
        image_mode=None,
        height=340,
        elem_id="fd-input",
    )
    model = gr.Dropdown(
        choices=pres.model_choices(infos),
        value=default.name if default else None,
        label="Model",
        elem_id="fd-model",
    )
    summary = pres.model_summary(default) if default else ""
    model_info = gr.Markdown(summary, elem_id="fd-model-info")
    method = gr.Radio(
        choices=[(pres.METHOD_TITLES[m], m) for m in methods], value="gradcam", label="Explanation"
    )
    opacity = gr.Slider(
        0.0, 1.0, value=DEFAULT_OPACITY, step=0.05, label="Heatmap opacity", elem_id="fd-opacity"
    )
    with gr.Row():
        buttons = [
            gr.Button("Detect", variant="primary"),
            gr.Button("Compare all models", variant="secondary", elem_id="fd-compare-button"),
            gr.Button("Evidence board", variant="secondary", elem_id="fd-evidence-button"),
        ]
    if EXAMPLES:
        with gr.Accordion("Example credits", open=False):
            gr.Markdown(example_gallery.credits_markdown(EXAMPLES))
    return [image, model, model_info, method, opacity, *buttons]


def layout(infos: list[detector.ModelInfo], default: detector.ModelInfo | None) -> DetectTab:
    """Lay out the Detect tab (inside its `gr.Tab`)."""
    gallery = note_md = None
    if EXAMPLES:
        gallery = gr.Gallery(
            value=[(e["path"], f"#{i + 1}") for i, e in enumerate(EXAMPLES)],
            label="Examples: click one to run it",
            columns=len(EXAMPLES),
            height=135,
            allow_preview=False,
            object_fit="cover",
            interactive=False,
            elem_id="fd-examples",
        )
        note_md = gr.Markdown(elem_id="fd-example-note")
    with gr.Row(equal_height=False, elem_id="fd-main"):
        with gr.Column(scale=5, elem_id="fd-controls"):
            controls = _controls(infos, default)
        with gr.Column(scale=7, elem_id="fd-results"):
            # the combined headline of the last detection, above every result
            headline = gr.HTML(elem_id="fd-headline")
            with gr.Tabs() as result_tabs:
                with gr.Tab("Verdict & heatmap", id="verdict"):
                    verdict = gr.HTML(elem_id="fd-verdict")
                    status = gr.Markdown(elem_id="fd-status")
                    with gr.Row():
                        overlay = result_image("Explanation overlay", "fd-overlay")
                        heatmap = result_image("Raw heatmap", "fd-heatmap")
                        patch_map = result_image("Patch scores", "fd-patch-map", visible=False)
                    patches = gr.Markdown(elem_id="fd-patches")
                    note = gr.Markdown(pres.heatmap_note("gradcam"))
                with gr.Tab("Compare all models", id="compare"):
                    compare_tab = compare.layout()
                with gr.Tab("Evidence", id="evidence"):
                    evidence_tab = evidence.layout()
    return DetectTab(
        gallery, note_md, *controls, headline, result_tabs, verdict, status, overlay, heatmap,
        patch_map, patches, note, compare_tab, evidence_tab,
    )  # fmt: skip


def wire(tab: DetectTab) -> None:
    """Wire the Detect tab's events (after the API endpoints, which take their names first)."""
    view_state = gr.State(None)
    inputs = [tab.image, tab.model, tab.method, tab.opacity]
    outputs = [tab.verdict, tab.overlay, tab.heatmap, tab.note, tab.status, view_state]
    # the headline, the patch map and its caption follow each detection, from its view state
    view_args = (show_view, view_state, [tab.headline, tab.patch_map, tab.patches])
    # The image input skips Gradio's own decoding (preprocess=False): a broken file reaches
    # `detect`, which says what is wrong instead of failing with a bare "Error".
    for trigger in (tab.image.change, tab.detect_button.click, tab.method.input):
        trigger(detect, inputs, outputs, **RAW, **PRIVATE).then(*view_args, **PRIVATE)
    compare.wire_clear(tab.image, tab.compare)
    tab.model.input(
        model_changed, [tab.model, tab.method], [tab.model_info, tab.method], **PRIVATE
    ).then(detect, inputs, outputs, **RAW, **PRIVATE).then(*view_args, **PRIVATE)
    tab.opacity.change(
        reblend,
        [view_state, tab.opacity],
        tab.overlay,
        trigger_mode="always_last",
        show_progress="hidden",
        **PRIVATE,
    )
    compare.wire(tab.compare_button, tab.result_tabs, tab.image, tab.opacity, tab.compare)
    evidence.wire(tab.evidence_button, tab.result_tabs, tab.image, tab.model, tab.evidence)
    if EXAMPLES:
        outputs = [tab.image, tab.example_note]
        tab.examples.select(_on_example_select, None, outputs, **PRIVATE)
        tab.image.upload(lambda: "", None, tab.example_note, **PRIVATE)
