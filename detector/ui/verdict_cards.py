"""Verdict cards, probability bars and notices as HTML, the same for the Gradio and Streamlit apps.

`verdict_html` is the card (headline, P(AI-generated), the bar, why the verdict is uncertain,
one sentence on the threshold, the model and its time, and optionally the domain warnings),
`bar_html` its P(fake) bar (also drawn alone, one per model, when models are compared),
`notice_html` a coloured notice (an error, a warning, the models' agreement) and `code_html`
escapes a text, turning `backticks` into ``<code>``. Everything is built from
`detector.ui.verdicts`, every text escaped. Nothing here imports a UI
library.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from detector.core.results import Prediction
from detector.ui.verdicts import probability_bar, verdict

#: Colour of each notice kind (any other kind is grey).
NOTICE_COLOURS = {"info": "#1565c0", "error": "#c62828", "warning": "#ef6c00", "ok": "#2e7d32"}


def code_html(text: str) -> str:
    """Escape text for HTML, turning `backticks` into <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def notice_html(text: str, kind: str = "info", css_class: str = "fd-notice", **data: Any) -> str:
    """A notice card of one ``kind`` (`NOTICE_COLOURS`) holding ``text`` (`code_html`); each
    keyword becomes a ``data-`` attribute of the card (``tone="ai"`` gives ``data-tone="ai"``)."""
    colour = NOTICE_COLOURS.get(kind, "#616161")
    attrs = "".join(f' data-{k}="{html.escape(str(v))}"' for k, v in data.items())
    return (
        f'<div class="fd-card {css_class}" data-kind="{html.escape(kind)}"{attrs} '
        f'style="--fd-colour:{colour};border-left:6px solid {colour};border-radius:8px;'
        f'padding:0.8rem 1rem">{code_html(text)}</div>'
    )


def bar_html(prediction: Prediction, label: str = "") -> str:
    """A P(fake) bar: fill to the probability, a tick at the threshold, the uncertain band, the
    probability in words beside it, and ``label`` (escaped) above it when given."""
    bar = probability_bar(prediction)
    low, high = bar.band
    band = (
        f'<div title="uncertain band" style="position:absolute;left:{low}%;width:{high - low}%;'
        "top:0;bottom:0;background:repeating-linear-gradient(45deg,rgba(239,108,0,.25) 0 4px,"
        'transparent 4px 8px)"></div>'
        if high > low
        else ""
    )
    name = f'<div style="font-size:0.9em;margin-bottom:2px">{html.escape(label)}</div>'
    return (
        f'<div class="fd-bar" data-model="{html.escape(bar.model)}" style="margin:6px 0">'
        f"{name if label else ''}"
        '<div style="display:flex;align-items:center;gap:0.6rem">'
        '<div style="position:relative;flex:1;height:14px;border-radius:7px;'
        'background:rgba(127,127,127,.2);overflow:hidden">'
        f"{band}"
        f'<div style="height:100%;width:{bar.width}%;background:{bar.colour}"></div>'
        f'<div title="threshold" style="position:absolute;left:{bar.threshold}%;top:-2px;'
        'bottom:-2px;width:2px;background:currentColor;opacity:.7"></div></div>'
        f'<div style="min-width:9.5rem;font-variant-numeric:tabular-nums">'
        f"{html.escape(bar.text)}</div></div></div>"
    )


def warnings_html(warnings: Sequence[str], title: str) -> str:
    """A prediction's domain warnings under ``title`` (empty without warnings)."""
    if not warnings:
        return ""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return (
        '<div class="fd-warnings" style="margin-top:0.5rem;font-size:0.9em">'
        f"<b>⚠️ {html.escape(title)}</b>"
        f'<ul style="margin:0.2rem 0 0 1.1rem;padding:0">{items}</ul></div>'
    )


def verdict_html(
    prediction: Prediction,
    compact: bool = False,
    *,
    stability: Any = None,
    warnings_title: str | None = None,
) -> str:
    """A verdict card: headline, P(AI-generated), the bar, why it is uncertain, one sentence on
    the threshold (not when ``compact``), the model and its time.

    ``stability`` (a `detector.Stability`) lets the card say that a verdict does not survive
    re-compression; with a ``warnings_title`` the card lists the prediction's domain warnings
    under it (`warnings_html`; the Streamlit pages show them under the card instead).
    """
    v = verdict(prediction, stability)
    reason = f'<div class="fd-reason">{html.escape(v.reason)}</div>' if v.reason else ""
    detail = "" if compact else f'<div class="fd-detail">{html.escape(v.detail)}</div>'
    return (
        f'<div class="fd-verdict" data-label="{v.label}" '
        f'data-model="{html.escape(v.model)}" style="--fd-colour:{v.colour};'
        f"border-left:6px solid {v.colour};border-radius:8px;padding:0.8rem 1rem;"
        f'background:{v.colour}14">'
        f'<div class="fd-headline" style="font-size:1.5em;font-weight:700;color:{v.colour}">'
        f"{html.escape(v.headline)}</div>"
        f'<div class="fd-probability" style="font-size:1.1em;margin:0.2rem 0">'
        f"P(AI-generated) = <b>{v.probability}</b></div>"
        f"{bar_html(prediction)}{reason}"
        f'<div style="font-size:0.9em;opacity:.85">{detail}'
        f"Model <code>{html.escape(v.model)}</code> · {v.milliseconds:.0f} ms</div>"
        f"{warnings_html(prediction.warnings, warnings_title) if warnings_title else ''}</div>"
    )
