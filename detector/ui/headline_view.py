"""The headline above the verdicts, as escaped HTML (Gradio) or Markdown (Streamlit).

`headline_view` turns a `detector.headline` result into the title, colour, basis and reasons
both apps show; `headline_html` and `headline_markdown` render it, every text from the file or
the model escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from detector.evidence.verdict import Headline
from detector.ui.texts import (
    md_text,
)

#: A colour for each headline label (hex), readable on light and dark backgrounds.
HEADLINE_COLOURS: dict[str, str] = {
    "ai_generated": "#b71c1c",
    "likely_ai": "#d32f2f",
    "camera_original": "#1b5e20",
    "likely_real": "#2e7d32",
    "uncertain": "#ef6c00",
    "cannot_tell": "#616161",
}
#: Streamlit's Markdown colour of each headline label.
HEADLINE_MARKDOWN_COLOURS: dict[str, str] = {
    "ai_generated": "red",
    "likely_ai": "red",
    "camera_original": "green",
    "likely_real": "green",
    "uncertain": "orange",
    "cannot_tell": "gray",
}
#: What decided the headline, one line under its title, for each `Headline.basis`.
BASIS_TEXTS: dict[str, str] = {
    "signature": "Decided by a signed declaration in the file (C2PA Content Credentials).",
    "declaration": "Decided by an unsigned declaration in the file (a watermark or metadata).",
    "model": "Decided by a model's statistical score.",
    "none": "Nothing decides it: no declaration in the file that counts, and no model score.",
}
#: What the absence of provenance evidence means, under a headline the file did not decide.
ABSENCE_LINE = (
    "No signature, watermark or declaration in the file decided this, and their absence is no "
    "sign either way: most sites strip metadata and most generators add no watermark."
)


@dataclass(frozen=True)
class HeadlineView:
    """A `Headline` ready to show, the same in both apps.

    Attributes:
        label, title, basis: From the headline.
        colour: Hex colour of the label (`HEADLINE_COLOURS`).
        basis_text: What decided it (`BASIS_TEXTS`).
        reasons: One ``(source, text, strength)`` per reason, deciding reason first.
        note: `ABSENCE_LINE` when the basis is the model or nothing, else "".
    """

    label: str
    title: str
    basis: str
    colour: str
    basis_text: str
    reasons: tuple[tuple[str, str, str], ...]
    note: str

    @property
    def lines(self) -> list[str]:
        """Each reason as ``"text — strength"`` (plain, unescaped text)."""
        return [f"{text} — {strength}" for _, text, strength in self.reasons]


def headline_view(found: Headline) -> HeadlineView:
    """What the apps show of a headline: its title, colour, basis and reasons."""
    return HeadlineView(
        label=found.label,
        title=found.title,
        basis=found.basis,
        colour=HEADLINE_COLOURS.get(found.label, "#616161"),
        basis_text=BASIS_TEXTS.get(found.basis, ""),
        reasons=tuple((r.source, r.text, r.strength) for r in found.reasons),
        note=ABSENCE_LINE if found.basis in ("model", "none") else "",
    )


def headline_html(found: Headline) -> str:
    """The headline as one HTML card: the title prominent and coloured by its label, what
    decided it, each reason as "text — strength", and the absence note when no declaration
    decided it. Every text is escaped: reasons quote the file's own metadata."""
    v = headline_view(found)
    esc = html.escape
    items = "".join(
        f'<li data-source="{esc(source)}">{esc(text)} '
        f'<span class="fd-strength" style="opacity:.8">— <i>{esc(strength)}</i></span></li>'
        for source, text, strength in v.reasons
    )
    note = (
        f'<div class="fd-headline-note" style="font-size:.85em;opacity:.8;margin-top:.3rem">'
        f"{esc(v.note)}</div>"
        if v.note
        else ""
    )
    return (
        f'<div class="fd-card fd-answer" data-label="{esc(v.label)}" data-basis="{esc(v.basis)}" '
        f'style="--fd-colour:{v.colour};border-left:6px solid {v.colour};border-radius:8px;'
        f'padding:.8rem 1rem;background:{v.colour}14">'
        f'<div class="fd-answer-title" style="font-size:1.6em;font-weight:700;color:{v.colour}">'
        f"{esc(v.title)}</div>"
        f'<div class="fd-answer-basis" style="font-size:.9em;opacity:.85;margin:.15rem 0 .3rem">'
        f"{esc(v.basis_text)}</div>"
        f'<ul class="fd-answer-reasons" style="margin:.2rem 0 0 1.1rem;padding:0;'
        f'font-size:.92em">{items}</ul>{note}</div>'
    )


def headline_markdown(found: Headline) -> str:
    """The headline as Markdown (Streamlit's colour syntax for the title): the same parts as
    `headline_html`, every text escaped with `md_text`."""
    v = headline_view(found)
    colour = HEADLINE_MARKDOWN_COLOURS.get(v.label, "gray")
    lines = [f"#### :{colour}[{md_text(v.title)}]", "", f"*{md_text(v.basis_text)}*", ""]
    lines += [f"- {md_text(text)} — *{md_text(strength)}*" for _, text, strength in v.reasons]
    if v.note:
        lines += ["", f"*{md_text(v.note)}*"]
    return "\n".join(lines)
