"""One model's answer on one image, as both apps render it: `ModelOutcome`.

The Gradio app gets it from `detector.ui.presentation.run_model` (with the full-size
`Explanation`), the Streamlit pages from `detector.ui.classroom.analyse` (with the heatmap drawn
at display size in ``view`` and no ``explanation``, so that it is small enough to cache). Both
modules re-export it.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.core.results import Explanation, Prediction
from detector.ui.heatmap_view import HeatmapView
from detector.ui.texts import METHOD_TITLES


@dataclass(frozen=True, eq=False)
class ModelOutcome:
    """One model's answer on one image: a prediction (and maybe a heatmap) or an error.

    Attributes:
        model: The model's name.
        prediction: Its prediction, or None when it failed.
        explanation: The full-size explanation (`presentation.run_model` with a method), or
            None: without a method, on failure, and in the cacheable outcomes of
            `classroom.analyse`, which keep only ``view``.
        error: What went wrong, for the UI (None on success).
        view: The explanation at display size (`classroom.analyse`), or None.
        method: The explanation method asked for (None: prediction only).
    """

    model: str
    prediction: Prediction | None = None
    explanation: Explanation | None = None
    error: str | None = None
    view: HeatmapView | None = None
    method: str | None = None

    @property
    def ok(self) -> bool:
        """True when the model produced a prediction."""
        return self.prediction is not None

    @property
    def shown_method(self) -> str | None:
        """The method of the heatmap shown (``view``, else ``explanation``), or None."""
        if self.view is not None:
            return self.view.method
        return self.explanation.method if self.explanation is not None else None

    @property
    def method_note(self) -> str:
        """Says so when the model lacks the method asked for and another one is shown."""
        shown = self.shown_method
        if shown is None or self.method is None or shown == self.method:
            return ""
        return (
            f"`{self.model}` has no {METHOD_TITLES.get(self.method, self.method)}; showing "
            f"{METHOD_TITLES.get(shown, shown)}."
        )


__all__ = ["ModelOutcome"]
