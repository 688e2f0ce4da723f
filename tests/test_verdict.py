"""The combined headline: every rule of its order, on hand-made evidence and predictions."""

from __future__ import annotations

import json

import pytest
from conftest import encode, make_image
from PIL import PngImagePlugin

from detector.core.results import Prediction
from detector.evidence import verdict
from detector.evidence.metadata import EvidenceItem, EvidenceReport, inspect_file
from detector.evidence.stability import stability_from_scores
from detector.evidence.verdict import (
    ABSENCE_NOTE,
    HEADLINE_FIELDS,
    HEADLINE_ORDER,
    Headline,
    headline,
)

BINARY = "in binary metadata outside XMP (e.g. a C2PA manifest)"


def item(kind: str, found: bool = True, indicates: str = "neutral", **details) -> EvidenceItem:
    return EvidenceItem(
        kind, kind.title(), found, details, "p", "d", summary=f"{kind} summary", indicates=indicates
    )


def report(*items: EvidenceItem) -> EvidenceReport:
    return EvidenceReport(items=(item("file"), *items), readable=True, format="PNG")


def c2pa(state: str | None = "Valid", sources=(), status: str = "present") -> EvidenceItem:
    ai = set(sources) & {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"}
    capture = set(sources) & {"digitalCapture", "computationalCapture"}
    indicates = "ai_generated" if ai else "camera_capture" if capture else "neutral"
    return item(
        "c2pa",
        indicates=indicates,
        status=status,
        validation_state=state,
        digital_source_types=sorted(sources),
        signer="Acme Org",
        signer_common_name="Acme Signer",
        claim_generator="Acme Gen 2",
    )


def watermark(p_value: float = 1.6e-39) -> EvidenceItem:
    return item(
        "watermark",
        indicates="ai_generated",
        marks_found=["stable-diffusion-v1"],
        **{"stable-diffusion-v1": {"p_value": p_value, "matched": True}},
    )


def prediction(p: float, label: str | None = None, warnings=()) -> Prediction:
    label = label or ("fake" if p >= 0.5 else "real")
    return Prediction("m", p, label, 0.5, 0.01, (0.4, 0.6), tuple(warnings))


def stable(p: float, jpeg: float | None = None, resize: float | None = None):
    return stability_from_scores("m", p, 0.5, jpeg, resize, reason="far")


def sources_of(h: Headline) -> list[str]:
    return [r.source for r in h.reasons]


# ------------------------------------------------------------------ rule 1: signed declarations
@pytest.mark.parametrize("state", ["Valid", "Trusted"])
def test_valid_signature_declaring_ai_decides(state):
    h = headline(report(c2pa(state, ["trainedAlgorithmicMedia"])), prediction(0.1), stable(0.1))
    assert (h.label, h.basis) == ("ai_generated", "signature")
    assert h.title == "AI-generated: declared in signed Content Credentials"
    first = h.reasons[0]
    assert first.source == "c2pa" and "Acme Org (Acme Signer)" in first.text
    assert "Acme Gen 2" in first.text and "trainedAlgorithmicMedia" in first.text
    assert ("on a trust list" if state == "Trusted" else "no trust list") in first.strength
    assert "model" in sources_of(h), "the model's disagreeing score is still listed"


def test_signed_composite_says_it_contains_ai_elements():
    h = headline(report(c2pa("Valid", ["compositeWithTrainedAlgorithmicMedia"])), None, None)
    assert h.label == "ai_generated"
    assert h.title.startswith("Contains AI-generated elements")


def test_trusted_capture_is_camera_original_with_its_limits():
    h = headline(report(c2pa("Trusted", ["digitalCapture"])), prediction(0.9), stable(0.9))
    assert (h.label, h.basis) == ("camera_original", "signature")
    assert "photo of a screen" in h.reasons[0].text
    assert "statistical score, 90%" in [r.strength for r in h.reasons]


def test_untrusted_capture_claim_does_not_decide():
    h = headline(report(c2pa("Valid", ["digitalCapture"])), prediction(0.9), stable(0.9))
    assert (h.label, h.basis) == ("likely_ai", "model")
    (claim,) = [r for r in h.reasons if r.source == "c2pa"]
    assert "does not decide" in claim.text and "no trust list" in claim.strength


def test_valid_manifest_without_source_type_is_context():
    h = headline(report(c2pa("Valid", [])), None, None)
    assert h.label == "cannot_tell"
    assert "declare no source type" in h.reasons[0].text


def test_signature_beats_unsigned_declarations():
    evidence = report(c2pa("Valid", ["trainedAlgorithmicMedia"]), watermark())
    h = headline(evidence, None, None)
    assert h.basis == "signature" and sources_of(h)[:2] == ["c2pa", "watermark"]


# --------------------------------------------------------------- rule 2: unsigned declarations
def test_failed_signature_declaring_ai_counts_as_metadata():
    h = headline(report(c2pa("Invalid", ["trainedAlgorithmicMedia"])), prediction(0.2), None)
    assert (h.label, h.basis) == ("ai_generated", "declaration")
    assert h.title == "AI-generated: declared in a C2PA manifest whose signature fails"
    assert h.reasons[0].strength == "failed signature: as weak as plain metadata"


def test_failed_signature_without_ai_is_context_only():
    h = headline(report(c2pa("Invalid", ["digitalCapture"])), prediction(0.2), stable(0.2))
    assert h.label == "likely_real"
    (claim,) = [r for r in h.reasons if r.source == "c2pa"]
    assert "does not validate" in claim.text and "proves nothing" in claim.strength


def test_unreadable_manifest_is_context_only():
    h = headline(report(c2pa(None, [], status="invalid")), None, None)
    assert h.label == "cannot_tell" and "could not be read" in h.reasons[0].text


def test_watermark_comes_first_among_declarations_with_its_p_value():
    gen = item("generation_settings", indicates="ai_generated")
    h = headline(report(gen, watermark()), prediction(0.3), stable(0.3))
    assert (h.label, h.basis) == ("ai_generated", "declaration")
    assert h.title == "AI-generated: invisible watermark"
    assert sources_of(h)[:2] == ["watermark", "generation_settings"]
    assert "p = 1.6e-39" in h.reasons[0].strength
    assert h.reasons[1].strength == verdict.METADATA_STRENGTH


@pytest.mark.parametrize("kind", ["digital_source_type", "generation_settings", "exif"])
def test_each_metadata_declaration_decides(kind):
    h = headline(report(item(kind, indicates="ai_generated")), prediction(0.05), stable(0.05))
    assert (h.label, h.basis) == ("ai_generated", "declaration")
    assert h.title == "AI-generated: declared in metadata"
    assert h.reasons[0].source == kind
    assert h.reasons[0].strength == "metadata, easy to forge or strip"
    assert h.reasons[-2].strength == "statistical score, 5%"


def test_source_type_read_from_the_manifest_bytes_is_not_counted_twice():
    dst = item(
        "digital_source_type",
        indicates="ai_generated",
        found_in={"trainedAlgorithmicMedia": [BINARY]},
    )
    h = headline(report(c2pa("Invalid", ["trainedAlgorithmicMedia"]), dst), None, None)
    assert sources_of(h) == ["c2pa"]
    xmp = item(
        "digital_source_type",
        indicates="ai_generated",
        found_in={"trainedAlgorithmicMedia": ["PNG iTXt XML:com.adobe.xmp"]},
    )
    h = headline(report(c2pa("Invalid", ["trainedAlgorithmicMedia"]), xmp), None, None)
    assert sources_of(h) == ["digital_source_type", "c2pa"]


def test_items_not_found_or_not_pointing_to_ai_do_not_declare():
    evidence = report(
        item("watermark", found=False, indicates="neutral"),
        item("generation_settings", found=False),
        item("exif", indicates="processed"),
    )
    assert headline(evidence, None, None).label == "cannot_tell"


# ----------------------------------------------------------------------- rule 3: the model
def test_model_alone_likely_ai_and_likely_real():
    h = headline(report(), prediction(0.87), stable(0.87))
    assert (h.label, h.basis) == ("likely_ai", "model")
    assert h.title == "Likely AI-generated: statistical score 87%"
    assert h.reasons[0].strength == "statistical score, 87%"
    assert h.reasons[1].source == "stability" and h.reasons[1].strength == "far from the threshold"
    assert h.reasons[-1].text == ABSENCE_NOTE
    h = headline(report(), prediction(0.1), stable(0.1))
    assert h.label == "likely_real" and h.title.startswith("Likely not AI-generated")


def test_unstable_score_is_uncertain():
    flipped = stable(0.62, jpeg=0.45, resize=0.7)
    h = headline(report(), prediction(0.62, "uncertain"), flipped)
    assert (h.label, h.title) == ("uncertain", "Uncertain: the score is not stable on this image")
    assert h.reasons[1].strength == "not stable" and "JPEG q90" in h.reasons[1].text


def test_unstable_beats_a_confident_label():
    h = headline(report(), prediction(0.7, "fake"), stable(0.7, jpeg=0.3, resize=0.8))
    assert h.label == "uncertain"


def test_checked_and_stable_score_keeps_its_label():
    h = headline(report(), prediction(0.7, "fake"), stable(0.7, jpeg=0.66, resize=0.72))
    assert h.label == "likely_ai" and h.reasons[1].strength == "stable"


def test_score_in_the_uncertain_band_is_uncertain():
    h = headline(report(), prediction(0.55, "uncertain"), stable(0.55, 0.56, 0.57))
    assert h.label == "uncertain" and "uncertain band" in h.title


def test_stability_not_checked_is_said():
    h = headline(None, prediction(0.9), None)
    assert h.label == "likely_ai"
    assert [r.strength for r in h.reasons[:2]] == ["statistical score, 90%", "unknown"]
    assert h.reasons[-1].text == "The file's provenance was not read."


def test_model_warnings_are_listed_as_caveats():
    h = headline(report(), prediction(0.9, warnings=["tiny image"]), stable(0.9))
    assert ("tiny image", "caveat") in [(r.text, r.strength) for r in h.reasons]


def test_camera_exif_never_decides():
    exif = item("exif", indicates="camera_capture")
    h = headline(report(exif), prediction(0.8), stable(0.8))
    assert h.label == "likely_ai"
    (camera,) = [r for r in h.reasons if r.source == "exif"]
    assert "proves nothing on its own" in camera.text
    assert ABSENCE_NOTE not in [r.text for r in h.reasons], "something was found"
    assert headline(report(exif), None, None).label == "cannot_tell"


# --------------------------------------------------------------------- rule 4: cannot tell
def test_nothing_at_all_cannot_tell():
    h = headline(None, None, None)
    assert (h.label, h.basis, h.title) == ("cannot_tell", "none", "We cannot tell")
    assert [r.strength for r in h.reasons] == ["no evidence", "no score"]
    h = headline(report(), None, None)
    assert h.reasons[0].text == ABSENCE_NOTE and h.reasons[0].strength == "absence proves nothing"
    unreadable = EvidenceReport(items=(), readable=False, error="not an image")
    assert "not a readable image" in headline(unreadable, None, None).reasons[0].text


# ------------------------------------------------------------------------------- output
def test_outputs_are_json_ready_and_consistent():
    h = headline(report(watermark()), prediction(0.2), stable(0.2))
    data = json.loads(json.dumps(h.to_dict()))
    assert data["label"] == "ai_generated" and data["order"] == list(HEADLINE_ORDER)
    assert data["reasons"][0] == h.reasons[0].to_dict()
    assert tuple(h.to_row()) == HEADLINE_FIELDS
    text = h.to_text()
    assert text.startswith(h.title + "\n") and text.count("\n  - ") == len(h.reasons)


def test_headline_on_a_real_report_with_generation_settings():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1")
    data = encode(make_image(), "PNG", pnginfo=info)
    h = headline(inspect_file(data), prediction(0.1), stable(0.1))
    assert (h.label, h.reasons[0].source) == ("ai_generated", "generation_settings")
    plain = headline(inspect_file(encode(make_image(), "PNG")), prediction(0.1), stable(0.1))
    assert plain.label == "likely_real" and plain.reasons[-1].text == ABSENCE_NOTE


# ------------------------------------------------------------------------- assess a file
def test_assess_builds_the_headline_from_the_file(trained_dir):
    import detector
    from detector.evidence.assessment import assess, score_headline

    det = detector.load_model("tiny_cnn", trained_dir)
    data = encode(make_image(64, 64, 4), "PNG")
    found = assess(data, det)
    assert found.prediction.p_fake == pytest.approx(det.predict(data).p_fake, abs=1e-6)
    assert found.stability.checked and found.headline.basis == "model"
    assert found.headline == headline(found.evidence, found.prediction, found.stability)
    same = score_headline(data, det, found.prediction.p_fake, evidence=found.evidence)
    assert same.label == found.headline.label
    out = json.loads(json.dumps(found.to_dict()))
    assert set(out) == {"headline", "prediction", "stability", "evidence"}
    evidence_only = assess(data)
    assert evidence_only.prediction is None and evidence_only.headline.label == "cannot_tell"
    broken = assess(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, det)
    assert broken.prediction is None and not broken.evidence.readable
    assert broken.headline.label == "cannot_tell"
