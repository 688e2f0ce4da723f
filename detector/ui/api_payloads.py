"""The JSON the Gradio app's API endpoints return, built from model outcomes and model lists.

``/predict`` and ``/inspect`` return `detector.ui.verdicts.api_prediction` and `inspect_result`;
this module builds the others: `compare_payload` (``/compare``: the agreement and one entry per
model, a failed model with its error and no score), `explain_payload` (``/explain``: the score,
the heatmap method used and the patch it explains) and `models_payload` (``/models``).
Plain dictionaries; nothing here imports a UI library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from detector.core.models import ModelInfo
from detector.core.results import Prediction
from detector.ui import presentation as pres


def compare_payload(outcomes: Sequence[pres.ModelOutcome]) -> dict[str, Any]:
    """Every model's answer on one image and whether they agree (at least one outcome)."""
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


def explain_payload(prediction: Prediction, method: str, patch: Any) -> dict[str, Any]:
    """One explained score: `api_result` plus the heatmap ``method`` used and the ``patch`` (the
    index in ``patches``) it explains."""
    return {**pres.api_result(prediction), "method": method, "patch": patch}


def models_payload(infos: Sequence[ModelInfo]) -> list[dict[str, Any]]:
    """Every model the app knows, in the order given (trained first, best first)."""
    return [info.to_dict() for info in infos]


def unknown_method(method: str) -> str | None:
    """Why ``method`` is no explanation method (None when it is one)."""
    if method in pres.METHOD_TITLES:
        return None
    return f"Unknown method {method!r}; use one of: {', '.join(pres.METHOD_TITLES)}"
