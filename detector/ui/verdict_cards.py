"""A verdict as an HTML card, the way the Streamlit pages draw it.

`verdict_html` is the card (headline, P(AI-generated), the bar, one sentence on the threshold)
and `bar_html` its P(fake) bar; both are built from `detector.ui.verdicts`, every text escaped.
Nothing here imports a UI library.
"""

from __future__ import annotations

import html

from detector.core.results import Prediction
from detector.ui.verdicts import probability_bar, verdict


def bar_html(prediction: Prediction) -> str:
    """A P(fake) bar: fill to the probability, a tick at the threshold, the uncertain band."""
    bar = probability_bar(prediction)
    low, high = bar.band
    band = (
        f'<div title="uncertain band" style="position:absolute;left:{low}%;width:{high - low}%;'
        "top:0;bottom:0;background:repeating-linear-gradient(45deg,rgba(239,108,0,.28) 0 4px,"
        'transparent 4px 8px)"></div>'
        if high > low
        else ""
    )
    return (
        '<div style="position:relative;height:12px;border-radius:6px;margin:.35rem 0;'
        'background:rgba(127,127,127,.2);overflow:hidden">'
        f'{band}<div style="height:100%;width:{bar.width}%;background:{bar.colour}"></div>'
        f'<div title="threshold" style="position:absolute;left:{bar.threshold}%;top:0;bottom:0;'
        'width:2px;background:#212121;opacity:.75"></div></div>'
    )


def verdict_html(prediction: Prediction, compact: bool = False) -> str:
    """A verdict card: headline, P(AI-generated), the bar and one sentence on the threshold."""
    v = verdict(prediction)
    detail = "" if compact else f'<div class="fd-detail">{html.escape(v.detail)}</div>'
    reason = f'<div class="fd-reason">{html.escape(v.reason)}</div>' if v.reason else ""
    return (
        f'<div class="fd-verdict" data-label="{v.label}" data-model="{html.escape(v.model)}" '
        f'style="border-left:6px solid {v.colour};border-radius:8px;padding:.55rem .85rem;'
        f'background:{v.colour}14;font-family:inherit">'
        f'<div style="font-size:.8rem;opacity:.75"><code>{html.escape(v.model)}</code> · '
        f"{v.milliseconds:.0f} ms</div>"
        f'<div class="fd-headline" style="font-size:1.3rem;font-weight:700;color:{v.colour}">'
        f"{html.escape(v.headline)}</div>"
        f"<div>P(AI-generated) = <b>{v.probability}</b></div>"
        f"{bar_html(prediction)}{reason}"
        f'<div style="font-size:.82rem;opacity:.8">{detail}</div></div>'
    )
