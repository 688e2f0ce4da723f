"""Gradio app: is this image AI-generated? Detect, explain, compare, batch-score and inspect images.

Runs offline on the models in ``assets/models`` (or ``$FAKEDETECT_MODELS_DIR``) and deploys
unchanged as a Hugging Face Space: ``python app.py``. This file assembles the tabs (one module each
in the `webapp` package beside it) and sets up the server; every score, heatmap and sentence is
built by the `detector` package. Handlers are plain functions returning plain data.

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

import logging
from typing import Any

import detector
from detector import serving
from detector.ui import app_texts
from detector.ui import presentation as pres
from detector.ui.verdict_cards import notice_html

if __name__ == "__main__":
    # TensorFlow starts and the best model loads while Gradio imports and the page is built.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    pres.preload_best_model()

import gradio as gr
from starlette.middleware import Middleware

import webapp.api
import webapp.batch
import webapp.detect
from webapp.api import api_compare, api_explain, api_inspect, api_models, api_predict
from webapp.batch import batch
from webapp.common import CONCURRENCY_LIMIT, EXAMPLES_DIR, HEAVY
from webapp.compare import compare
from webapp.detect import detect, model_changed, reblend, show_patches, show_view
from webapp.evidence import STRESS_HEADERS, clear_evidence, evidence_board

__all__ = [
    "CONCURRENCY_LIMIT",
    "EXAMPLES_DIR",
    "HEAVY",
    "LAUNCH_KWARGS",
    "QUEUE_MAX_SIZE",
    "STRESS_HEADERS",
    "api_compare",
    "api_explain",
    "api_inspect",
    "api_models",
    "api_predict",
    "batch",
    "build_demo",
    "clear_evidence",
    "compare",
    "demo",
    "detect",
    "evidence_board",
    "model_changed",
    "reblend",
    "show_patches",
    "show_view",
]

log = logging.getLogger("fakedetect.app")

#: Largest upload Gradio accepts (the detector refuses image files over 50 MB anyway).
MAX_FILE_SIZE = "50mb"
#: Requests waiting in the queue before new ones are turned away.
QUEUE_MAX_SIZE = 64

CSS = """
#fd-verdict { min-height: 4rem; }
.fd-card { border-left: 6px solid var(--fd-colour); border-radius: 8px; padding: 0.8rem 1rem;
  background: color-mix(in srgb, var(--fd-colour) 10%, transparent); }
@media (max-width: 720px) { /* phones: the results right after the image, then the controls */
  #fd-main { flex-direction: column; } #fd-controls { display: contents; } #fd-results { order: 1; }
  #fd-controls > * { order: 2; } #fd-controls > #fd-input { order: 0; }
  #fd-headline .fd-answer { max-height: 20rem; overflow-y: auto; } }
"""


def _theme() -> gr.themes.Base:
    # System fonts: the page must not fetch web fonts (offline, and no third-party requests).
    return gr.themes.Soft(
        primary_hue="indigo",
        font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )


def build_demo() -> gr.Blocks:
    """Lay out the app's tabs (`webapp`) and wire their events, the API endpoints first."""
    infos = detector.list_models()
    trained = [info for info in infos if info.trained]
    default = trained[0] if trained else None
    with gr.Blocks(
        title="fakedetect: is this image AI-generated?",
        analytics_enabled=False,
        delete_cache=(3600, 3600),
    ) as demo:
        gr.Markdown(app_texts.INTRO)
        no_models = notice_html(pres.no_models_message(), "warning", "fd-no-models")
        gr.HTML(no_models, visible=not trained)
        with gr.Tabs():
            with gr.Tab("Detect & compare", id="detect"):
                detect_tab = webapp.detect.layout(infos, default)
            with gr.Tab("Batch", id="batch"):
                batch_tab = webapp.batch.layout(trained, default)
            with gr.Tab("API & privacy", id="api"):
                gr.Markdown(app_texts.API_DOCS)
        webapp.api.wire()  # first, so that UI handlers of the same name cannot take their names
        webapp.detect.wire(detect_tab)
        webapp.batch.wire(batch_tab)

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
