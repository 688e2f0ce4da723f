"""What every tab of the Gradio app shares: limits, the examples, the concurrency group of heavy
events, and file paths read from Gradio payloads (confined to uploads and examples)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr

import detector
from detector import serving
from detector.ui import app_views, example_gallery
from detector.ui import presentation as pres

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "assets" / "examples"
#: Events that run at the same time (2 cores: more would only queue inside TensorFlow).
CONCURRENCY_LIMIT = 2
#: The one concurrency group of every event that decodes images or runs models: together they
#: run at most `CONCURRENCY_LIMIT` at a time (Gradio's limit is otherwise per event).
HEAVY = "heavy"
#: Keyword arguments of every event that decodes an image or runs a model.
HEAVY_EVENT: dict[str, Any] = {"concurrency_id": HEAVY, "concurrency_limit": CONCURRENCY_LIMIT}
#: ... and of those with a file input: it skips Gradio's preprocessing (`path_of` checks it).
RAW: dict[str, Any] = {"preprocess": False, **HEAVY_EVENT}
#: Events of the page that are not API endpoints.
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
DEFAULT_OPACITY = detector.DEFAULT_ALPHA
EXAMPLES = example_gallery.load_examples(EXAMPLES_DIR)


def path_of(value: Any, request: gr.Request | None = None) -> str | None:
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


def name_of(value: Any) -> str:
    """The name a visitor's file had (for display only; on disk it is ``upload.<ext>``)."""
    name = value.get("orig_name") if isinstance(value, dict) else getattr(value, "orig_name", None)
    return str(name) if name else Path(path_of(value) or "").name


def scrubbed(outcome: pres.ModelOutcome) -> pres.ModelOutcome:
    """A model outcome whose error names no server path."""
    return replace(outcome, error=serving.scrub_paths(outcome.error)) if outcome.error else outcome


def read_error(exc: detector.ImageLoadError) -> str:
    return pres.read_error(exc.code, exc.message)


def find_model(name: str | None) -> tuple[detector.ModelInfo | None, str | None]:
    """The model to use for ``name`` (empty: the best trained one), or a message saying why not."""
    return app_views.find_model(detector.list_models(), name)


def result_image(label: str, elem_id: str, visible: bool = True, **kwargs: Any) -> gr.Image:
    """A read-only result image (JPEG unless ``format`` says otherwise), 320 pixels high."""
    options = {"format": "jpeg", "height": 320, **kwargs}
    return gr.Image(label=label, interactive=False, visible=visible, elem_id=elem_id, **options)
