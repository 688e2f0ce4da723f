"""One answer with its reasons: the headline above the verdict card and the evidence board.

`headline` combines what the file says about itself (`detector.inspect_file`) with a
model's score (`detector.predict`) and that score's stability (`detector.evidence.stability`), in a
fixed order; the first rule that applies gives the label, and every line says what it rests on
and how strong that is:

1. **Signed declaration.** A C2PA manifest whose signature validates (``Valid`` or
   ``Trusted``) and whose actions declare ``trainedAlgorithmicMedia`` or
   ``compositeWithTrainedAlgorithmicMedia``: ``ai_generated``. One declaring a camera capture
   (``digitalCapture``, ``computationalCapture``) from a certificate on a trust list
   (``Trusted``): ``camera_original``. A capture claim from a certificate on no trust list
   decides nothing (anyone can make such a certificate and sign any picture), whereas a signed
   admission of AI has little to gain from forgery.
2. **Unsigned declaration.** A Stable Diffusion invisible watermark, an IPTC digital source
   type, generation settings, or a generator named in EXIF or XMP (or a C2PA manifest declaring
   AI whose signature fails): ``ai_generated``. Metadata is easy to forge or strip; the mark
   survives no resize.
3. **Statistical score.** The model's calibrated P(AI): ``uncertain`` when the verdict flips
   under JPEG q90 or a 0.75x resize, or when the score lies in the model's uncertain band;
   else ``likely_ai`` or ``likely_real``.
4. Otherwise ``cannot_tell``.

Camera EXIF and unsigned capture claims never decide: they are listed as context. Finding no
provenance evidence proves nothing either way, and the headline says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from detector.evidence.c2pa_reader import VALID_STATES, signer_name
from detector.evidence.report import AI_SOURCE_TYPES, DIGITAL_SOURCE_TYPES

if TYPE_CHECKING:
    from detector.core.results import Prediction
    from detector.evidence.metadata import EvidenceItem, EvidenceReport
    from detector.evidence.stability import Stability

HeadlineLabel = Literal[
    "ai_generated", "camera_original", "likely_ai", "likely_real", "uncertain", "cannot_tell"
]
Basis = Literal["signature", "declaration", "model", "none"]

#: The order in which the headline's rules apply, first match wins.
HEADLINE_ORDER: tuple[str, ...] = (
    "a valid C2PA signature declaring AI generation (or, from a trusted certificate, a camera "
    "capture)",
    "a declaration in metadata or an invisible watermark (IPTC source type, generation "
    "settings, Stable Diffusion mark)",
    "the model's calibrated score, if it is stable under JPEG q90 and a 0.75x resize",
    "we cannot tell",
)
#: What finding no provenance evidence means.
ABSENCE_NOTE = (
    "No provenance evidence found in the file. That proves nothing either way: most sites "
    "strip metadata on upload, most generators add no watermark, and any resize removes one."
)
#: Capture source types a trusted signature may turn into ``camera_original`` (scans of film
#: or prints are left out: a print can show anything).
CAMERA_SOURCE_TYPES = frozenset({"digitalCapture", "computationalCapture"})
#: Evidence kinds that can declare AI generation without a signature, strongest first.
DECLARATION_KINDS: tuple[str, ...] = (
    "watermark",
    "digital_source_type",
    "generation_settings",
    "exif",
)
#: Columns `Headline.to_row` gives (the CLI's scan adds them to its rows).
HEADLINE_FIELDS: tuple[str, ...] = ("headline", "headline_title", "headline_basis")

METADATA_STRENGTH = "metadata, easy to forge or strip"
_TRUSTED = "signed, certificate on a trust list; file unchanged since signing"
_UNTRUSTED = "signed, certificate on no trust list; file unchanged since signing"


@dataclass(frozen=True)
class Reason:
    """One line under the headline.

    Attributes:
        source: What it comes from: ``c2pa``, ``watermark``, ``digital_source_type``,
            ``generation_settings``, ``exif``, ``model``, ``stability`` or ``evidence``.
        text: What it says, in plain words.
        strength: What it rests on and how strong that is (``"statistical score, 87%"``).
    """

    source: str
    text: str
    strength: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"source": self.source, "text": self.text, "strength": self.strength}


@dataclass(frozen=True)
class Headline:
    """The one answer shown above everything else.

    Attributes:
        label: ``ai_generated``, ``camera_original``, ``likely_ai``, ``likely_real``,
            ``uncertain`` or ``cannot_tell``.
        title: A short line for display.
        reasons: The deciding reason first, then the others (supporting, conflicting, context).
        basis: Which rule decided: ``signature``, ``declaration``, ``model`` or ``none``.
    """

    label: HeadlineLabel
    title: str
    reasons: tuple[Reason, ...]
    basis: Basis

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the rule order it was built by."""
        return {
            "label": self.label,
            "title": self.title,
            "basis": self.basis,
            "reasons": [r.to_dict() for r in self.reasons],
            "order": list(HEADLINE_ORDER),
        }

    def to_row(self) -> dict[str, str]:
        """The `HEADLINE_FIELDS` columns for a table row."""
        return {"headline": self.label, "headline_title": self.title, "headline_basis": self.basis}

    def to_text(self) -> str:
        """The title and one indented line per reason, for terminals."""
        lines = [self.title]
        lines += [f"  - {r.text} [{r.strength}]" for r in self.reasons]
        return "\n".join(lines) + "\n"


def headline(
    evidence: EvidenceReport | None,
    prediction: Prediction | None,
    stability: Stability | None = None,
) -> Headline:
    """The combined verdict: provenance evidence first, then the model's score.

    A pure function of its arguments; the order of the rules is the module docstring's (also
    `HEADLINE_ORDER`).

    Args:
        evidence: The file's provenance evidence, or None when it was not read.
        prediction: One model's prediction on the image, or None when no model ran.
        stability: That prediction's stability (`detector.check_stability`), or None when it
            was not checked.

    Returns:
        A `Headline`.
    """
    signed, signed_context = _signed(evidence)
    declared = _declared(evidence)
    context = [*signed_context, *_camera_context(evidence)]
    model = _model_reasons(prediction, stability)
    nothing = [] if _anything_found(evidence) else [_absence(evidence)]

    if signed is not None:
        label, title, reason = signed
        return Headline(label, title, (reason, *declared, *context, *model), "signature")
    if declared:
        first = declared[0]
        what = "invisible watermark" if first.source == "watermark" else "declared in metadata"
        if first.source == "c2pa":
            what = "declared in a C2PA manifest whose signature fails"
        return Headline(
            "ai_generated", f"AI-generated: {what}", (*declared, *context, *model), "declaration"
        )
    if prediction is not None:
        label, title = _model_label(prediction, stability)
        return Headline(label, title, (*model, *context, *nothing), "model")
    reasons = (*context, *nothing, Reason("model", "No model scored this image.", "no score"))
    return Headline("cannot_tell", "We cannot tell", reasons, "none")


# ----------------------------------------------------------------------------- the rules
def _signed(
    evidence: EvidenceReport | None,
) -> tuple[tuple[HeadlineLabel, str, Reason] | None, list[Reason]]:
    """Rule 1: the decision of a valid C2PA manifest, if any, and context lines."""
    item = evidence.item("c2pa") if evidence is not None else None
    if item is None or not item.found:
        return None, []
    details = item.details
    state = details.get("validation_state")
    sources = set(details.get("digital_source_types") or ())
    who, tool = signer_name(details), details.get("claim_generator") or "an unnamed tool"
    if details.get("status") != "present":
        text = "A C2PA manifest is present but could not be read or validated."
        return None, [Reason("c2pa", text, "unreadable signature: proves nothing")]
    if state not in VALID_STATES:
        if sources & AI_SOURCE_TYPES:
            return None, []  # rule 2 takes it as an unsigned declaration
        text = (
            f"A C2PA manifest signed by {who} does not validate ({state or 'unknown state'}): "
            "the file changed after signing, or the manifest is damaged."
        )
        return None, [Reason("c2pa", text, "failed signature: proves nothing")]
    strength = _TRUSTED if state == "Trusted" else _UNTRUSTED
    ai = sorted(sources & AI_SOURCE_TYPES)
    if ai:
        text = (
            f"Content Credentials signed by {who} with {tool} declare {_codes(ai)}: "
            f"{DIGITAL_SOURCE_TYPES.get(ai[-1], ai[-1])}."
        )
        only_composite = ai == ["compositeWithTrainedAlgorithmicMedia"]
        title = "Contains AI-generated elements" if only_composite else "AI-generated"
        reason = Reason("c2pa", text, strength)
        return ("ai_generated", f"{title}: declared in signed Content Credentials", reason), []
    capture = sorted(sources & CAMERA_SOURCE_TYPES)
    if capture and state == "Trusted":
        text = (
            f"Content Credentials signed by {who} with {tool} declare {_codes(capture)}, and the "
            "file has not changed since. This shows which device or app signed the picture, "
            "not that the scene in front of it was real (a photo of a screen is a capture too)."
        )
        reason = Reason("c2pa", text, strength)
        return ("camera_original", "Camera capture: signed by a trusted certificate", reason), []
    if capture:
        text = (
            f"Content Credentials signed by {who} declare {_codes(capture)}, but the certificate "
            "is on no trust list: anyone can sign such a claim, so it does not decide."
        )
        return None, [Reason("c2pa", text, strength)]
    text = f"Content Credentials signed by {who} with {tool} declare no source type."
    return None, [Reason("c2pa", text, strength)]


def _declared(evidence: EvidenceReport | None) -> list[Reason]:
    """Rule 2: unsigned declarations of AI generation, strongest first."""
    if evidence is None:
        return []
    reasons = []
    for kind in DECLARATION_KINDS:
        item = evidence.item(kind)
        if item is None or not item.found or item.indicates != "ai_generated":
            continue
        if kind == "digital_source_type" and _dst_from_c2pa(evidence):
            continue  # the C2PA manifest's own source type, read again from the bytes
        if kind == "watermark":
            reasons.append(Reason("watermark", item.summary, _mark_strength(item)))
        else:
            reasons.append(Reason(kind, f"{item.title}: {item.summary}", METADATA_STRENGTH))
    c2pa = evidence.item("c2pa")
    if c2pa is not None and c2pa.found and c2pa.indicates == "ai_generated":
        state = c2pa.details.get("validation_state")
        if state not in VALID_STATES and c2pa.details.get("status") == "present":
            text = (
                f"A C2PA manifest declares {_codes(c2pa.details.get('digital_source_types'))} "
                f"but its signature does not validate ({state or 'unknown state'}): the file "
                "changed after signing, or the manifest is damaged."
            )
            reasons.append(Reason("c2pa", text, "failed signature: as weak as plain metadata"))
    return reasons


def _camera_context(evidence: EvidenceReport | None) -> list[Reason]:
    """Unsigned camera claims: listed, never deciding."""
    if evidence is None:
        return []
    out = []
    for kind in ("exif", "digital_source_type"):
        item = evidence.item(kind)
        if kind == "digital_source_type" and _dst_from_c2pa(evidence):
            continue
        if item is not None and item.found and item.indicates == "camera_capture":
            text = f"{item.title}: {item.summary}. It proves nothing on its own."
            out.append(Reason(kind, text, METADATA_STRENGTH))
    return out


def _model_reasons(prediction: Prediction | None, stability: Stability | None) -> list[Reason]:
    if prediction is None:
        return []
    p, threshold = float(prediction.p_fake), float(prediction.threshold)
    low, high = (float(v) for v in prediction.uncertain_band)
    band = f", uncertain between {low:.0%} and {high:.0%}" if high > low else ""
    text = f"Model {prediction.model}: P(AI-generated) = {p:.0%} (threshold {threshold:.0%}{band})."
    reasons = [Reason("model", text, f"statistical score, {p:.0%}")]
    if stability is None:
        reasons.append(
            Reason("stability", "Not checked under JPEG q90 and a 0.75x resize.", "unknown")
        )
    elif stability.flipped:
        reasons.append(Reason("stability", _capital(stability.summary()), "not stable"))
    else:
        strength = "stable" if stability.checked else "far from the threshold"
        reasons.append(Reason("stability", _capital(stability.summary()), strength))
    reasons += [Reason("model", warning, "caveat") for warning in prediction.warnings]
    return reasons


def _model_label(prediction: Prediction, stability: Stability | None) -> tuple[HeadlineLabel, str]:
    """Rule 3: the model's label, unless its score is not stable or in the uncertain band."""
    p = float(prediction.p_fake)
    if stability is not None and stability.flipped:
        return "uncertain", "Uncertain: the score is not stable on this image"
    if prediction.label == "uncertain":
        return "uncertain", f"Uncertain: the score ({p:.0%}) is in the model's uncertain band"
    if prediction.label == "fake":
        return "likely_ai", f"Likely AI-generated: statistical score {p:.0%}"
    return "likely_real", f"Likely not AI-generated: statistical score {p:.0%}"


# ----------------------------------------------------------------------------- helpers
_PROVENANCE_KINDS = ("c2pa", "watermark", "digital_source_type", "generation_settings", "exif")


def _anything_found(evidence: EvidenceReport | None) -> bool:
    if evidence is None:
        return False
    return any(
        (item := evidence.item(kind)) is not None and item.found for kind in _PROVENANCE_KINDS
    )


def _dst_from_c2pa(evidence: EvidenceReport) -> bool:
    """Whether every source type the IPTC item found is the C2PA manifest's own, found only in
    the binary metadata where the manifest lives (not in XMP)."""
    dst, c2pa = evidence.item("digital_source_type"), evidence.item("c2pa")
    if dst is None or c2pa is None or not c2pa.found:
        return False
    found_in = dst.details.get("found_in") or {}
    manifest = set(c2pa.details.get("digital_source_types") or ())
    return bool(found_in) and all(
        code in manifest and all(where.startswith("in binary metadata") for where in places)
        for code, places in found_in.items()
    )


def _absence(evidence: EvidenceReport | None) -> Reason:
    if evidence is None:
        return Reason("evidence", "The file's provenance was not read.", "no evidence")
    if not evidence.readable and evidence.format is None:
        text = f"The file is not a readable image ({evidence.error or 'unknown format'})."
        return Reason("evidence", text, "no evidence")
    return Reason("evidence", ABSENCE_NOTE, "absence proves nothing")


def _mark_strength(item: EvidenceItem) -> str:
    found = item.details.get("marks_found") or []
    values = [item.details.get(key, {}).get("p_value") for key in found]
    values = [v for v in values if isinstance(v, (int, float))]
    chance = f", chance p = {min(values):.2g}" if values else ""
    return f"invisible watermark{chance}; can be added on purpose, lost on any resize"


def _codes(codes: Any) -> str:
    return ", ".join(f"'{c}'" for c in (codes or ())) or "nothing"


def _capital(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."
