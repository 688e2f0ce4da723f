"""A model's verdict as both apps show it: label, headline, colour, probability bar, agreement.

`verdict` turns a `Prediction` into the text and colour of its card, `probability_bar(s)` into the
data of a bar, `agreement` summarises several models' verdicts on one image, and `api_result`,
`api_prediction` and `inspect_result` are the JSON the apps' APIs return.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from detector.core.results import Prediction
from detector.evidence.assessment import Assessment
from detector.evidence.metadata import EvidenceReport
from detector.evidence.stability import Stability
from detector.evidence.verdict import headline
from detector.ui.texts import (
    COLOURS,
    HEADLINES,
    LABELS,
    percent,
)


@dataclass(frozen=True)
class Verdict:
    """How one prediction reads to a person.

    Attributes:
        label: ``fake``, ``real`` or ``uncertain``.
        headline: e.g. ``"Likely AI-generated"``.
        p_fake: Calibrated P(AI-generated).
        probability: ``p_fake`` as text, e.g. ``"87.3%"``.
        detail: One sentence: the probability, the threshold and the uncertain band.
        colour: Hex colour of the label.
        model: The model that produced it.
        milliseconds: Inference time in ms.
        reason: Why the verdict is uncertain (the score lies in the uncertain band) and whether
            it is unstable (it flips under the stability check's changes); empty otherwise.
    """

    label: str
    headline: str
    p_fake: float
    probability: str
    detail: str
    colour: str
    model: str
    milliseconds: float
    reason: str = ""


def verdict(prediction: Prediction, stability: Stability | None = None) -> Verdict:
    """Turn a `Prediction` into headline, probability text and a one-sentence explanation.

    ``stability``, the score's stability check when there is one, adds why the verdict may not
    hold (`Verdict.reason`).
    """
    low, high = prediction.uncertain_band
    detail = (
        f"Calibrated probability that the image is AI-generated: {percent(prediction.p_fake)} "
        f"(threshold {percent(prediction.threshold)}"
    )
    if low < high:
        detail += f"; scores from {percent(low)} to {percent(high)} are reported as uncertain"
    detail += ")."
    return Verdict(
        label=prediction.label,
        headline=HEADLINES.get(prediction.label, prediction.label),
        p_fake=float(prediction.p_fake),
        probability=percent(prediction.p_fake),
        detail=detail,
        colour=COLOURS.get(prediction.label, "#616161"),
        model=prediction.model,
        milliseconds=1000.0 * float(prediction.seconds),
        reason=verdict_reason(prediction, stability),
    )


def verdict_reason(prediction: Prediction, stability: Stability | None = None) -> str:
    """Why a verdict is uncertain or unstable, in plain words ("" when it is neither)."""
    parts = []
    low, high = prediction.uncertain_band
    p, threshold = float(prediction.p_fake), float(prediction.threshold)
    if prediction.label == "uncertain":
        side, instead = ("above", "AI-generated") if p >= threshold else ("below", "real")
        parts.append(
            f"Uncertain because {percent(p)} lies inside this model's uncertain band "
            f"({percent(low)} to {percent(high)}): scores there are too close to call, so the "
            f"model reports them as uncertain rather than {instead}, although this one is "
            f"{side} its threshold ({percent(threshold)})."
        )
    if stability is not None and stability.flipped:
        parts.append(
            f"Not stable on this image: {stability.summary().removeprefix('not stable: ')}."
        )
    return " ".join(parts)


def api_result(prediction: Prediction) -> dict[str, Any]:
    """The JSON an API client gets for one prediction: ``headline`` and ``label_title`` are the
    verdict card's headline (`api_prediction` makes ``headline`` the combined one)."""
    data = prediction.to_dict()
    data["headline"] = data["label_title"] = HEADLINES.get(prediction.label, prediction.label)
    return data


def api_prediction(assessment: Assessment) -> dict[str, Any]:
    """The JSON of a scored upload (the Gradio app's ``/predict``): `api_result` with the
    combined headline (`Headline.to_dict`) as ``headline`` and the score's ``stability``."""
    if assessment.prediction is None:
        raise ValueError("an assessment without a prediction has no API result")
    data = api_result(assessment.prediction)
    data["headline"] = assessment.headline.to_dict()
    stability = assessment.stability
    data["stability"] = None if stability is None else stability.to_dict()
    return data


def inspect_result(report: EvidenceReport) -> dict[str, Any]:
    """The JSON of a file's evidence (the Gradio app's ``/inspect`` and its evidence board):
    `EvidenceReport.to_dict` with the evidence-only headline (no model) as ``verdict``."""
    return {**report.to_dict(), "verdict": headline(report, None, None).to_dict()}


@dataclass(frozen=True)
class ProbabilityBar:
    """Data for drawing one model's P(fake) as a horizontal bar (all positions in percent)."""

    model: str
    label: str
    colour: str
    p_fake: float
    width: float
    threshold: float
    band: tuple[float, float]
    text: str
    milliseconds: float


def probability_bar(prediction: Prediction) -> ProbabilityBar:
    """Bar data for one prediction: fill width = P(fake), a marker at the threshold."""
    low, high = prediction.uncertain_band
    return ProbabilityBar(
        model=prediction.model,
        label=prediction.label,
        colour=COLOURS.get(prediction.label, "#616161"),
        p_fake=float(prediction.p_fake),
        width=round(100.0 * float(prediction.p_fake), 2),
        threshold=round(100.0 * float(prediction.threshold), 2),
        band=(round(100.0 * float(low), 2), round(100.0 * float(high), 2)),
        text=f"{percent(prediction.p_fake)} · {prediction.label}",
        milliseconds=round(1000.0 * float(prediction.seconds), 1),
    )


def probability_bars(predictions: Iterable[Prediction]) -> list[ProbabilityBar]:
    """Bar data for several predictions, in the given order."""
    return [probability_bar(p) for p in predictions]


@dataclass(frozen=True)
class Agreement:
    """Whether several models agree on one image.

    Attributes:
        unanimous: True when every model that answered gave the same label (and at least one did).
        label: The unanimous or majority label, or None on a tie or when no model answered.
        counts: How many models gave each label.
        answered: How many models answered.
        failed: How many models failed.
        text: One plain sentence for the UIs.
        default: The default model's name, when it answered and was named.
        default_label: The default model's label (what its verdict card says), or None.
    """

    unanimous: bool
    label: str | None
    counts: dict[str, int]
    answered: int
    failed: int
    text: str
    default: str | None = None
    default_label: str | None = None


def agreement(
    predictions: Sequence[Prediction], failed: int = 0, default: str | None = None
) -> Agreement:
    """Summarise whether models agree: unanimous, a majority, a tie, or nothing to compare.

    The text counts the models per label. With ``default``, the name of the default model (the
    one whose verdict card an app shows first), a split verdict names that model's label and
    never a majority that differs from it: the summary cannot contradict the default's card.
    """
    counts = Counter(p.label for p in predictions)
    ordered = {label: counts[label] for label in LABELS if counts[label]}
    answered = len(predictions)
    failed_text = f" ({failed} model{'s' if failed != 1 else ''} failed)" if failed else ""
    if answered == 0:
        return Agreement(
            False, None, {}, 0, failed, "No model produced a score" + failed_text + "."
        )
    top = counts.most_common()
    tie = len(top) > 1 and top[0][1] == top[1][1]
    label = None if tie else top[0][0]
    chosen = next((p for p in predictions if p.model == default), None)
    named = (chosen.model, chosen.label) if chosen is not None else (None, None)
    if answered == 1:
        text = f"Only one model answered: {HEADLINES[top[0][0]].lower()}{failed_text}."
        return Agreement(True, label, ordered, answered, failed, text, *named)
    if len(counts) == 1:
        who = "Both models" if answered == 2 else f"All {answered} models"
        text = f"{who} agree: {HEADLINES[label].lower()}{failed_text}."
        return Agreement(True, label, ordered, answered, failed, text, *named)
    split = ", ".join(f"{n} {lab}" for lab, n in ordered.items())
    if chosen is not None:
        others = " (as does the majority)" if label == chosen.label else ""
        text = (
            f"The models disagree ({split}); the default model, {chosen.model}, says "
            f"{chosen.label}{others}{failed_text}."
        )
    elif tie:
        text = f"The models disagree ({split}): no majority{failed_text}."
    else:
        text = f"The models disagree ({split}); the majority says {label}{failed_text}."
    return Agreement(False, label, ordered, answered, failed, text, *named)
