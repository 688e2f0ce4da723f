"""The Detect tab's "Compare all models" result tab: every trained model on one image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

import detector
from detector import serving
from detector.ui import app_views
from detector.ui import presentation as pres
from detector.ui.verdict_cards import notice_html
from webapp.common import DEFAULT_OPACITY, PRIVATE, RAW, path_of, read_error, scrubbed

COMPARE_HEADERS = ["model", "verdict", "P(AI-generated)", "threshold", "inference ms", "error"]


def compare(
    image: Any, opacity: float = DEFAULT_OPACITY, request: gr.Request | None = None
) -> tuple[str, str, list[list[Any]], list[tuple[np.ndarray, str]], str]:
    """Run every trained model on one image and line the answers up.

    Returns:
        (agreement HTML, probability bars HTML, table rows, Grad-CAM gallery, status Markdown).
    """
    path = path_of(image, request)
    if path is None:
        return "", "", [], [], "Upload, drop or paste an image first."
    try:
        loaded = pres.load_file(path)
        outcomes = pres.run_models(loaded.array, method="gradcam")
    except detector.ModelNotTrainedError as exc:
        return notice_html(serving.scrub_paths(exc.message), "warning"), "", [], [], ""
    except detector.ImageLoadError as exc:
        return notice_html(read_error(exc), "error"), "", [], [], ""
    view = app_views.compare_view(
        [scrubbed(pres.outcome_with_warnings(o, loaded)) for o in outcomes]
    )
    heatmaps = pres.heatmap_views(loaded.array, [o.explanation for o in view.shown])
    gallery = [(h.overlay(opacity), c) for h, c in zip(heatmaps, view.captions, strict=True)]
    return view.agreement, view.bars, view.rows, gallery, view.status


def clear_compare() -> tuple[str, str, list[list[Any]], list[Any], str]:
    """Empty comparison outputs (the image changed)."""
    return "", "", [], [], ""


@dataclass
class CompareTab:
    """The comparison's components, in `compare`'s output order."""

    agreement: Any
    bars: Any
    table: Any
    gallery: Any
    status: Any

    @property
    def outputs(self) -> list[Any]:
        return [self.agreement, self.bars, self.table, self.gallery, self.status]


def layout() -> CompareTab:
    """Lay out the comparison (inside its `gr.Tab`)."""
    return CompareTab(
        gr.HTML(elem_id="fd-agreement"),
        gr.HTML(elem_id="fd-bars"),
        gr.Dataframe(
            headers=COMPARE_HEADERS, interactive=False, wrap=True, elem_id="fd-compare-table"
        ),
        gr.Gallery(
            label="Grad-CAM of every model",
            columns=3,
            format="jpeg",
            height="auto",
            object_fit="contain",
            interactive=False,
        ),
        gr.Markdown(),
    )


def wire_clear(image: Any, tab: CompareTab) -> None:
    """Empty the comparison when the image changes."""
    image.change(clear_compare, None, tab.outputs, **PRIVATE)


def wire(button: Any, result_tabs: Any, image: Any, opacity: Any, tab: CompareTab) -> None:
    """The compare button shows this tab, then compares."""
    button.click(lambda: gr.Tabs(selected="compare"), None, result_tabs, **PRIVATE).then(
        compare, [image, opacity], tab.outputs, **RAW, **PRIVATE
    )
