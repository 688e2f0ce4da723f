"""The words and colours both apps show: verdict labels and headlines, method and metric names.

Plain constants and text helpers, so that the Gradio and Streamlit apps say the same thing in the
same way; the view models in `detector.ui.presentation` and its sibling modules are built from
them.
"""

from __future__ import annotations

import re
from typing import Any

from detector.core.errors import error_text as error_text

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


def percent(value: float) -> str:
    """A probability as a percentage with one decimal, e.g. ``"87.3%"``."""
    return f"{100.0 * float(value):.1f}%"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^&])")


def md_text(text: Any) -> str:
    """Untrusted text (metadata, file names) made inert in Markdown: every markup character and
    line break escaped, so no link, image or HTML in it can render."""
    flat = " ".join(str(text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def read_error(code: str, message: str) -> str:
    """The message for a file that is not a readable image (both apps use this wording)."""
    return f"Could not read this file as an image ({code}): {message}"
