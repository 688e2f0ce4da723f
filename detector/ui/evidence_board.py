"""The evidence board as both apps show it: provenance rows, forensic views, the stress table.

Kept apart from the scores: `evidence_rows`, `evidence_table` and `evidence_markdown` show an
`EvidenceReport` item by item (untrusted metadata escaped, long values cut); `forensic_views` are
the residual spectrum and the error-level analysis of an image at display size; `stress_rows` and
`stress_markdown` show how a score moves under JPEG and resizing (`run_stress` runs it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.evidence.forensics import (
    ELA_EXPLANATION,
    RESIDUAL_SPECTRUM_EXPLANATION,
    error_level_analysis_rgb,
    residual_spectrum_rgb,
)
from detector.evidence.metadata import EvidenceItem, EvidenceReport
from detector.evidence.stress import (
    FRAGILE_DEFINITION,
    StressResult,
)
from detector.ui.heatmap_view import resize_for_display
from detector.ui.texts import (
    DISPLAY_MAX_SIDE,
    md_text,
    read_error,
)

#: What the evidence board is, shown above it in both apps.
EVIDENCE_INTRO = (
    "Kept apart from the model scores: what the file says about its own history, two forensic "
    "pictures to look at, and whether the verdicts survive re-compression and downscaling. None "
    "of these is a verdict."
)
#: Plain words for `EvidenceItem.indicates`.
INDICATIONS: dict[str, str] = {
    "ai_generated": "points to AI generation",
    "camera_capture": "points to a camera capture",
    "processed": "points to editing or re-encoding",
    "neutral": "neutral",
    "not_checked": "could not be checked",
}
#: Headline tone of a report: ``ai``, ``camera``, ``none`` or ``unreadable``.
EVIDENCE_TONES: tuple[str, ...] = ("ai", "camera", "none", "unreadable")
#: Longest metadata value shown in the evidence board, in characters.
EVIDENCE_VALUE_CHARS = 240


@dataclass(frozen=True)
class EvidenceRow:
    """One provenance item ready to show.

    Attributes:
        kind, title, found, summary, proves, does_not_prove: From the `EvidenceItem`.
        status: ``found``, ``not found`` or ``not checked``.
        indicates: The item's `EvidenceItem.indicates`.
        indication: ``indicates`` in words (`INDICATIONS`).
        details: (label, value) pairs of its details, flattened and shortened (untrusted text).
    """

    kind: str
    title: str
    found: bool
    status: str
    indicates: str
    indication: str
    summary: str
    details: tuple[tuple[str, str], ...]
    proves: str
    does_not_prove: str


def _short(value: Any, limit: int = EVIDENCE_VALUE_CHARS) -> str:
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _flatten(details: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    if not isinstance(details, dict):
        return [(prefix or "value", _short(details))]
    pairs: list[tuple[str, str]] = []
    for key, value in details.items():
        name = str(key).replace("_", " ") if str(key).islower() else str(key)
        label = f"{prefix} › {name}" if prefix else name
        if isinstance(value, dict) and value and depth < 2:
            pairs.extend(_flatten(value, label, depth + 1))
        elif isinstance(value, (list, tuple)) and all(
            isinstance(v, (str, int, float)) for v in value
        ):
            sentences = all(isinstance(v, str) and v.endswith(".") for v in value)
            if value:
                pairs.append((label, (" " if sentences else "; ").join(_short(v) for v in value)))
        elif value not in (None, "", {}, []):
            pairs.append((label, _short(value)))
    return pairs


def evidence_details(item: EvidenceItem) -> list[tuple[str, str]]:
    """An item's details as (label, value) pairs: nested values flattened, long ones shortened.

    Generation settings show the parsed prompt and settings (and the raw text only of keys that
    could not be parsed); an item that could not be checked shows nothing (its summary says why).
    """
    details = dict(item.details)
    if details.get("status") == "not_checked":
        return []
    if item.kind == "generation_settings":
        parsed = details.pop("parsed", None) or {}
        raw = details.pop("keys", None) or {}
        pairs = _flatten({k: v for k, v in details.items() if k != "tools"})
        tools = item.details.get("tools")
        if tools:
            pairs.insert(0, ("tools", "; ".join(_short(t) for t in tools)))
        pairs += _flatten(parsed)
        pairs += _flatten({k: v for k, v in raw.items() if k not in parsed})
        return pairs
    if item.kind == "processing":
        details.pop("checks", None)
    return _flatten(details)


def evidence_rows(report: EvidenceReport) -> list[EvidenceRow]:
    """The report's items, in report order, ready for a UI."""
    rows = []
    for item in report.items:
        status = "not checked" if item.indicates == "not_checked" and not item.found else None
        rows.append(
            EvidenceRow(
                kind=item.kind,
                title=item.title,
                found=bool(item.found),
                status=status or ("found" if item.found else "not found"),
                indicates=item.indicates,
                indication=INDICATIONS.get(item.indicates, item.indicates),
                summary=item.summary,
                details=tuple(evidence_details(item)),
                proves=item.proves,
                does_not_prove=item.does_not_prove,
            )
        )
    return rows


def evidence_headline(report: EvidenceReport) -> tuple[str, str]:
    """The report's headline and its tone (`EVIDENCE_TONES`), for colouring it."""
    if not report.readable and report.format is None:
        tone = "unreadable"
    elif report.ai_indicators:
        tone = "ai"
    elif report.camera_indicators:
        tone = "camera"
    else:
        tone = "none"
    return report.headline(), tone


def evidence_error(report: EvidenceReport) -> str | None:
    """Why the pixels of a reported file could not be decoded (code and message), or None."""
    if report.readable:
        return None
    file_item = report.item("file")
    code = (file_item.details.get("error_code") if file_item else None) or "unreadable_file"
    return read_error(str(code), report.error or "the image could not be decoded")


def evidence_table(report: EvidenceReport) -> list[dict[str, Any]]:
    """One compact row per item: item, status, what the file says, what it points to."""
    return [
        {
            "item": row.title,
            "status": row.status,
            "what the file says": row.summary,
            "points to": row.indication,
        }
        for row in evidence_rows(report)
    ]


def evidence_markdown(report: EvidenceReport) -> str:
    """Every provenance item as Markdown: status, summary, details, what it proves and what its
    absence does not prove. Metadata values are escaped (they are untrusted text)."""
    blocks = []
    for row in evidence_rows(report):
        lines = [
            f"**{row.title}** · {row.status} · *{row.indication}*  ",
            md_text(row.summary),
        ]
        if row.details:
            lines.append("")
            lines.extend(f"- {md_text(label)}: {md_text(value)}" for label, value in row.details)
        lines.append("")
        if row.found:
            lines.append(f"*What it proves:* {row.proves}  ")
        lines.append(
            f"*What it cannot prove, and what its absence does not prove:* {row.does_not_prove}"
        )
        blocks.append("\n".join(lines))
    return "\n\n---\n\n".join(blocks)


#: Display titles of the forensic views.
FORENSIC_TITLES: dict[str, str] = {
    "spectrum": "Residual spectrum",
    "ela": "Error level analysis (re-saved at JPEG quality 90)",
}
#: The one-line explanation of each forensic view.
FORENSIC_EXPLANATIONS: dict[str, str] = {
    "spectrum": RESIDUAL_SPECTRUM_EXPLANATION,
    "ela": ELA_EXPLANATION,
}


@dataclass(frozen=True, eq=False)
class ForensicView:
    """One forensic picture of an image: uint8 RGB, with its title and one-line explanation."""

    name: str
    title: str
    image: np.ndarray = field(repr=False)
    explanation: str


def forensic_views(image: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> list[ForensicView]:
    """The residual spectrum and the ELA map of a decoded image.

    The spectrum keeps its own size (at most `detector.evidence.forensics.SPECTRUM_MAX_SIDE`:
    resizing would blur the dots it shows); the ELA map is shrunk like the other displayed images.
    """
    spectrum = residual_spectrum_rgb(image)
    ela, _ = resize_for_display(error_level_analysis_rgb(image), max_side=max_side)
    return [
        ForensicView(
            "spectrum", FORENSIC_TITLES["spectrum"], spectrum, FORENSIC_EXPLANATIONS["spectrum"]
        ),
        ForensicView("ela", FORENSIC_TITLES["ela"], ela, FORENSIC_EXPLANATIONS["ela"]),
    ]


#: Columns of the stress-test table in both apps.
STRESS_FIELDS: tuple[str, ...] = (
    "model",
    "P(AI-generated), untouched",
    "verdict, untouched",
    "lowest P under changes",
    "highest P under changes",
    "fragile",
    "verdict flips at",
)
#: Alternative text of the stress-test plot.
STRESS_PLOT_ALT = (
    "Stress test: P(AI-generated) of each model after JPEG re-compression (left) and "
    "downscaling (right); dashed lines are the thresholds."
)


@dataclass(frozen=True)
class StressOutcome:
    """The stress test of one image by several models, and the models that failed.

    Attributes:
        result: The `detector.StressResult` of the models that answered (None if none).
        errors: For each model that failed, why.
    """

    result: StressResult | None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def definition(self) -> str:
        """What "fragile" means (`detector.evidence.stress.FRAGILE_DEFINITION`)."""
        return FRAGILE_DEFINITION

    @property
    def fragile(self) -> dict[str, bool]:
        """Whether each model that answered is fragile on this image."""
        return {m.model: bool(m.fragile) for m in self.result.models} if self.result else {}


def stress_rows(outcome: StressOutcome) -> list[dict[str, Any]]:
    """One row per model that answered, with the `STRESS_FIELDS` keys (``fragile`` is a bool)."""
    rows = []
    for item in outcome.result.models if outcome.result else ():
        values = [item.baseline, *item.jpeg, *item.scale]
        finite = [v for v in values if not math.isnan(v)]
        rows.append(
            {
                "model": item.model,
                "P(AI-generated), untouched": round(item.baseline, 4),
                "verdict, untouched": item.baseline_verdict,
                "lowest P under changes": round(min(finite), 4),
                "highest P under changes": round(max(finite), 4),
                "fragile": bool(item.fragile),
                "verdict flips at": ", ".join(item.flips) or "never",
            }
        )
    return rows


def stress_markdown(outcome: StressOutcome) -> str:
    """Which models are fragile on this image, which failed, and what fragile means."""
    lines = []
    if outcome.result is not None:
        fragile = [f"`{name}`" for name, flag in outcome.fragile.items() if flag]
        if fragile:
            lines.append(f"**Fragile on this image:** {', '.join(fragile)}.")
        else:
            lines.append(
                "**No model is fragile on this image:** no verdict flips under a mild change."
            )
    lines.extend(f"**`{name}` failed.** {error}" for name, error in outcome.errors.items())
    lines.append(f"*Fragile:* {FRAGILE_DEFINITION}")
    return "\n\n".join(lines)
