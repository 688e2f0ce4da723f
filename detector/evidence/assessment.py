"""The headline of one image, from its file: evidence, score, stability, then `headline`.

`assess` does it all for one image (the apps' and the API's path); `score_headline` builds it
for a score computed elsewhere, such as a row of `detector.scan` (the CLI's ``scan
--headline``), without scoring the untouched image again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detector.core.images import ImageSource, read_source_bytes
from detector.core.models import load_model
from detector.core.results import Prediction
from detector.evidence.metadata import EvidenceReport, inspect_file
from detector.evidence.stability import STABILITY_MARGIN, Stability, check_stability
from detector.evidence.stress import ScoringModel
from detector.evidence.verdict import Headline, headline


@dataclass(frozen=True)
class Assessment:
    """A headline with everything it was built from (`assess`)."""

    headline: Headline
    evidence: EvidenceReport | None
    prediction: Prediction | None
    stability: Stability | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``headline``, ``prediction``, ``stability``, ``evidence``."""
        parts = (self.prediction, self.stability, self.evidence)
        keys = ("prediction", "stability", "evidence")
        return {
            "headline": self.headline.to_dict(),
            **{k: None if v is None else v.to_dict() for k, v in zip(keys, parts, strict=True)},
        }


def assess(
    source: ImageSource,
    model: str | ScoringModel | None = None,
    *,
    read_evidence: bool = True,
    margin: float = STABILITY_MARGIN,
) -> Assessment:
    """Read the evidence, score the image, check the score's stability, and build the headline.

    Args:
        source: Any accepted image source (a path or bytes give the full evidence).
        model: A model name, a loaded model, or None for the evidence alone.
        read_evidence: Read the file's provenance evidence (`detector.inspect_file`).
        margin: The stability check's margin (`detector.evidence.stability.STABILITY_MARGIN`).

    Returns:
        An `Assessment`. A file whose pixels cannot be decoded gets its evidence-only headline.

    Raises:
        ImageLoadError: the source cannot be read at all.
        ModelNotFoundError, ModelNotTrainedError, ModelLoadError: the model cannot be used.
    """
    data = read_source_bytes(source)
    image = data if data is not None else source
    report = inspect_file(image) if read_evidence else None
    det = load_model(model) if isinstance(model, str) else model
    prediction = stability = None
    if det is not None and (report is None or report.readable):
        prediction = det.predict(image)
        stability = check_stability(image, det, prediction, margin=margin)
    return Assessment(headline(report, prediction, stability), report, prediction, stability)


def score_headline(
    source: ImageSource,
    model: Any,
    p_fake: float,
    *,
    evidence: EvidenceReport | None = None,
    margin: float = STABILITY_MARGIN,
) -> Headline:
    """The headline of a score computed elsewhere (a scan row): its label from the model card,
    the file's evidence (read unless given) and the score's stability.

    Args:
        source: The image the score is for.
        model: The loaded `detector.core.runtime.Detector` that gave it (its ``card`` is read).
        p_fake: The whole-image P(fake), as `Detector.predict` gives it.
        evidence: The file's evidence, when already read (one file, several models).
        margin: The stability check's margin.
    """
    card = model.card
    label = card.label_for(p_fake)
    band = tuple(card.uncertain_band)
    prediction = Prediction(model.name, p_fake, label, card.threshold, 0.0, band)
    report = evidence if evidence is not None else inspect_file(source)
    stability = check_stability(source, model, prediction, margin=margin)
    return headline(report, prediction, stability)
