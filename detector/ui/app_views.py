"""What the Gradio app's Detect, Compare and Evidence handlers show, built from plain results.

`find_model` picks the model a visitor asked for (or says why there is none), `stress_names`
the models the evidence board stress-tests (`STRESS_SCOPES`); `compare_view` lines up every
model's answer on one image (agreement notice, one bar per model, table rows, gallery captions,
failures) and `evidence_card` turns a file's `EvidenceReport` into the board's headline card.
The handlers read the input, run the models (`detector.ui.presentation`) and call these; every
function here is pure and imports no UI library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from detector.core.models import ModelInfo
from detector.evidence.metadata import EvidenceReport
from detector.ui import presentation as pres
from detector.ui.verdict_cards import bar_html, notice_html

#: Which models the evidence board stress-tests: (label, value) choices.
STRESS_SCOPES = [("The selected model", "selected"), ("All trained models", "all")]
#: Notice colour of each evidence headline tone.
EVIDENCE_KINDS = {"ai": "warning", "camera": "info", "none": "info", "unreadable": "error"}
#: The CSS class of the evidence board's headline card.
EVIDENCE_CLASS = "fd-evidence-headline"


def find_model(infos: Sequence[ModelInfo], name: str | None) -> tuple[ModelInfo | None, str | None]:
    """The model to use for ``name`` among ``infos`` (empty: the best trained one), or a message
    saying why not (no trained model, an untrained or unknown name)."""
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


def stress_names(
    infos: Sequence[ModelInfo], model_name: str | None, scope: str | None
) -> tuple[list[str], str | None]:
    """The models to stress-test (``scope`` ``all``: every trained one, else the selected one),
    or why there are none."""
    if scope == "all":
        names = [info.name for info in infos if info.trained]
        return (names, None) if names else ([], pres.no_models_message())
    info, problem = find_model(infos, model_name)
    return ([info.name], None) if info is not None else ([], problem)


@dataclass(frozen=True)
class CompareView:
    """Every model's answer on one image, as the Compare tab shows it.

    Attributes:
        agreement: The agreement notice (HTML, class ``fd-agreement``).
        bars: One probability bar per model that answered (HTML).
        rows: Table rows in `pres.comparison_rows` order.
        shown: The outcomes with a heatmap, in order, and `captions` their gallery captions.
        status: Markdown naming every model that failed, then the combined warnings.
    """

    agreement: str
    bars: str
    rows: list[list[Any]]
    shown: list[pres.ModelOutcome]
    captions: list[str]
    status: str


def compare_view(outcomes: Sequence[pres.ModelOutcome]) -> CompareView:
    """Line up every model's outcome on one image (at least one outcome)."""
    predictions = [o.prediction for o in outcomes if o.prediction is not None]
    failed = [o for o in outcomes if not o.ok]
    summary = pres.agreement(predictions, failed=len(failed), default=outcomes[0].model)
    kind = ("ok" if summary.unanimous else "warning") if predictions else "error"
    bars = "".join(bar_html(p, f"{p.model} · {pres.HEADLINES[p.label]}") for p in predictions)
    shown = [o for o in outcomes if o.explanation is not None and o.prediction is not None]
    captions = [
        f"{o.model} · {pres.percent(o.prediction.p_fake)} {o.prediction.label}"
        for o in shown
        if o.prediction is not None
    ]
    status = [f"**`{o.model}` failed.** {o.error}" for o in failed]
    warnings = pres.warnings_markdown(pres.combined_warnings(predictions))
    return CompareView(
        agreement=notice_html(summary.text, kind, "fd-agreement", agree=summary.unanimous),
        bars=bars,
        rows=[list(row.values()) for row in pres.comparison_rows(outcomes)],
        shown=shown,
        captions=captions,
        status="\n\n".join([*status, warnings] if warnings else status),
    )


@dataclass(frozen=True)
class EvidenceCard:
    """The provenance part of the evidence board.

    Attributes:
        card: The headline card (HTML, class `EVIDENCE_CLASS`, ``data-tone`` its tone).
        provenance: Every item as Markdown (`pres.evidence_markdown`).
        data: The report as ``/inspect`` returns it.
        readable: Whether the pixels decode (the forensic views and the stress test need them).
    """

    card: str
    provenance: str
    data: dict[str, Any]
    readable: bool


def evidence_card(report: EvidenceReport) -> EvidenceCard:
    """The evidence board's headline card, items and JSON for one file's report."""
    headline, tone = pres.evidence_headline(report)
    provenance, data = pres.evidence_markdown(report), pres.inspect_result(report)
    problem = pres.evidence_error(report)
    if problem is not None:
        text = problem if tone == "unreadable" else f"{problem}. Its metadata says: {headline}"
        card = notice_html(text, "error", EVIDENCE_CLASS, tone="unreadable")
        return EvidenceCard(card, provenance, data, readable=False)
    card = notice_html(headline, EVIDENCE_KINDS.get(tone, "info"), EVIDENCE_CLASS, tone=tone)
    return EvidenceCard(card, provenance, data, readable=True)


def evidence_error_card(message: str) -> str:
    """The evidence board's headline card when the file cannot be read at all."""
    return notice_html(message, "error", EVIDENCE_CLASS)
