"""The JSON API (``/predict``, ``/compare``, ``/explain``, ``/inspect``, ``/models``): its
handlers, the hidden components behind them, and the "API & privacy" tab."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

import detector
from detector import serving
from detector.ui import api_payloads
from detector.ui import presentation as pres
from webapp.common import DEFAULT_OPACITY, RAW, find_model, path_of, read_error, scrubbed


def _api_image(image: Any, request: gr.Request | None = None) -> str:
    path = path_of(image, request)
    if path is None:
        raise gr.Error("No image received: send one image file.")
    return path


def _api_error(exc: Exception, model: str | None = None) -> gr.Error:
    if isinstance(exc, detector.ImageLoadError):
        return gr.Error(read_error(exc))
    prefix = f"Model {model} failed" if model else "Failed"
    return gr.Error(serving.scrub_paths(f"{prefix}: {pres.error_text(exc)}"))


def _api_model(model: str | None) -> detector.ModelInfo:
    info, problem = find_model(model)
    if info is None:
        raise gr.Error(problem or "no model")
    return info


def api_predict(
    image: Any, model: str | None = "", request: gr.Request | None = None
) -> dict[str, Any]:
    """Score one image with one model (empty name: the best) and return JSON, with the combined
    headline (the file's evidence, the score and its stability)."""
    path = _api_image(image, request)
    info = _api_model(model)
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
    return api_payloads.compare_payload(
        [scrubbed(pres.outcome_with_warnings(o, loaded)) for o in outcomes]
    )


def api_explain(
    image: Any,
    model: str | None = "",
    method: str | None = "gradcam",
    request: gr.Request | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Score and explain one image: (overlay, coloured heatmap, JSON with the method used)."""
    path = _api_image(image, request)
    info = _api_model(model)
    method = str(method or "gradcam")  # as a Textbox would pass it (no preprocessing)
    if (problem := api_payloads.unknown_method(method)) is not None:
        raise gr.Error(problem)
    try:
        array = detector.load_image(path)
    except Exception as exc:
        raise _api_error(exc) from None
    outcome = pres.run_model(array, info.name, method)
    if outcome.explanation is None or outcome.prediction is None:
        raise gr.Error(serving.scrub_paths(f"Model {info.name} failed: {outcome.error}"))
    view = pres.heatmap_view(array, outcome.explanation)
    result = api_payloads.explain_payload(
        outcome.prediction, view.method, outcome.explanation.patch
    )
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
    return api_payloads.models_payload(detector.list_models())


def wire() -> None:
    """The hidden components behind the JSON API endpoints, and the endpoints.

    Wired before the page's events, so that UI handlers of the same name cannot take their
    names. File inputs skip Gradio's preprocessing (`common.RAW`; Gradio still checks that the
    path is an upload, and `path_of` checks it for every event, UI events included): `gr.File`
    would leave an empty temporary file per call in its cache.
    """
    image = gr.File(type="filepath", visible=False, label="image")
    model = gr.Textbox(value="", visible=False, label="model")
    method = gr.Textbox(value="gradcam", visible=False, label="method")
    result = gr.JSON(visible=False, label="result")
    overlay = gr.Image(visible=False, label="overlay", format="jpeg")
    heatmap = gr.Image(visible=False, label="heatmap", format="jpeg")
    button = gr.Button(visible=False)
    button.click(api_predict, [image, model], result, api_name="predict", **RAW)
    button.click(api_compare, image, result, api_name="compare", **RAW)
    button.click(
        api_explain, [image, model, method], [overlay, heatmap, result], api_name="explain", **RAW
    )
    button.click(api_models, None, result, api_name="models")
    button.click(api_inspect, image, result, api_name="inspect", **RAW)
