"""What an evidence report is: its items, what each kind proves and does not prove, its budget.

An `EvidenceReport` is a list of `EvidenceItem`s, one per kind of evidence (file, Content
Credentials, digital source type, generation settings, EXIF, GPS, JPEG quality, processing,
watermark), each saying what it found, what that proves and what its absence does not prove.
`detector.evidence.metadata` fills one in (`inspect_file`); the verdict and both apps read it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from detector.core.exif import _truncate
from detector.evidence.evidence_watermark import DOES_NOT_PROVE as WATERMARK_DOES_NOT_PROVE
from detector.evidence.evidence_watermark import PROVES as WATERMARK_PROVES

Indication = Literal["ai_generated", "camera_capture", "processed", "neutral", "not_checked"]
#: Shown with every report: what this evidence is and is not.
EVIDENCE_NOTE = (
    "Evidence read from the file's metadata and structure, not a model score. Metadata is easy "
    "to strip and easy to forge: what is found is a clue about the file's history, and what is "
    "missing proves nothing either way."
)
#: Wall-clock budget of one `inspect_file` call, in seconds, checked between items (and while
#: c2pa reads the file): items not reached in time are reported as not checked.
EVIDENCE_TIME_BUDGET = 10.0
#: Most of that budget the C2PA reader may use.
C2PA_TIME_BUDGET = 3.0
#: Why an item was not checked when the budget ran out.
TIME_BUDGET_REASON = "not checked: time budget exceeded"
#: IPTC Digital Source Type codes and what each means, in plain words.
DIGITAL_SOURCE_TYPES: dict[str, str] = {
    "trainedAlgorithmicMedia": "created by a trained AI model (generative AI)",
    "compositeWithTrainedAlgorithmicMedia": "a composite that includes AI-generated elements",
    "algorithmicMedia": "created purely by an algorithm, without a trained model or sampled data",
    "compositeSynthetic": "a composite that includes synthetic elements",
    "algorithmicallyEnhanced": "a capture enhanced by an algorithm",
    "digitalCapture": "captured by a digital camera or phone from a real scene",
    "computationalCapture": "captured from a real scene with computational processing",
    "negativeFilm": "scanned from a film negative",
    "positiveFilm": "scanned from a film positive (slide)",
    "print": "scanned from a print",
    "compositeCapture": "a composite of several captures",
    "screenCapture": "a screenshot",
    "virtualRecording": "recorded from a virtual environment",
    "digitalArt": "digital art made by a person with software",
    "minorHumanEdits": "a capture with minor edits by a person",
    "humanEdits": "edited by a person",
    "dataDrivenMedia": "generated from data (e.g. a chart or a rendering of data)",
    "composite": "a composite of several sources",
}
AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})
SYNTHETIC_SOURCE_TYPES = frozenset(
    {*AI_SOURCE_TYPES, "algorithmicMedia", "compositeSynthetic", "virtualRecording"}
)
CAPTURE_SOURCE_TYPES = frozenset(
    {"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print"}
)
_PROVES: dict[str, str] = {
    "file": "That the bytes are an image of this format and size, and its SHA-256 fingerprint.",
    "c2pa": (
        "When present and valid: who signed the file, with which tool, and that it has not "
        "changed since signing; an action with digitalSourceType 'trainedAlgorithmicMedia' is "
        "the signer's own statement that the image was made by generative AI."
    ),
    "digital_source_type": (
        "When present: what the tool or person that wrote the metadata declared about the "
        "image's origin (e.g. 'trainedAlgorithmicMedia' = made by generative AI)."
    ),
    "generation_settings": (
        "When present: a generator or its front end wrote prompts or sampler settings into the "
        "file, which strongly suggests the image came out of that tool."
    ),
    "exif": (
        "When present: something wrote camera-style EXIF (make, model, lens, capture time); "
        "cameras and phones do this, and so can any editing tool."
    ),
    "gps": "When present: a location was recorded (its value is never shown here).",
    "jpeg_quality": (
        "How strongly the file was last JPEG-compressed; low quality means fine detail (and "
        "the traces detectors look for) was thrown away."
    ),
    "processing": (
        "When a hint is found: the file was probably resized, cropped or re-encoded after its "
        "first save."
    ),
    "watermark": WATERMARK_PROVES,
}
_DOES_NOT_PROVE: dict[str, str] = {
    "file": "Anything about how the picture was made.",
    "c2pa": (
        "No credentials proves nothing: most cameras, apps and sites add none, and re-saving or "
        "uploading strips them. A valid signature shows who signed, not that their claims are "
        "true; 'untrusted' means the certificate is not on a known trust list."
    ),
    "digital_source_type": (
        "Its absence proves nothing (most files have none), and it is easy to write or remove."
    ),
    "generation_settings": (
        "Their absence proves nothing: most sites strip text chunks, and anyone can add or edit "
        "them."
    ),
    "exif": (
        "That the image is a real photo: EXIF is easy to copy or forge. Its absence proves "
        "nothing: many apps and sites strip EXIF on upload."
    ),
    "gps": "That the picture was taken there, or taken at all; most shared images carry no GPS.",
    "jpeg_quality": (
        "Whether the image is AI-generated; the tables describe only the last save, and "
        "non-standard tables (cameras, Photoshop) give only an approximate value."
    ),
    "processing": (
        "Finding no hint does not prove the file is original: most resizing and re-encoding "
        "leaves no trace these checks can see."
    ),
    "watermark": WATERMARK_DOES_NOT_PROVE,
}
_TITLES: dict[str, str] = {
    "file": "File",
    "c2pa": "Content Credentials (C2PA)",
    "digital_source_type": "Declared source type (IPTC DigitalSourceType)",
    "generation_settings": "Generation settings in metadata",
    "exif": "Camera EXIF",
    "gps": "GPS location",
    "jpeg_quality": "JPEG compression quality",
    "processing": "Resizing and re-encoding traces",
    "watermark": "Invisible watermark (Stable Diffusion)",
}
#: What these checks cannot tell, listed in every processing item.
CANNOT_TELL: tuple[str, ...] = (
    "Whether an image without EXIF dimensions was resized: the pixels alone rarely say so "
    "(the residual spectrum view can show periodic resampling traces).",
    "Whether a JPEG was saved twice at the same block alignment (aligned double compression).",
    "Whether metadata was copied from another file or edited.",
    "Anything about edits made before the last lossless save of a PNG, BMP or TIFF.",
)


@dataclass(frozen=True)
class EvidenceItem:
    """One piece of provenance evidence.

    Attributes:
        kind: Machine name: ``file``, ``c2pa``, ``digital_source_type``, ``generation_settings``,
            ``exif``, ``gps``, ``jpeg_quality``, ``processing`` or ``watermark``.
        title: Display title.
        found: Whether the thing looked for is present in the file.
        details: JSON-ready values (long strings are truncated to `MAX_VALUE_CHARS`).
        proves: What the item proves when found.
        does_not_prove: What it cannot prove, and what its absence does not prove.
        summary: One line for a UI (e.g. ``"Canon EOS R5, 2023:05:01 10:02:11"``).
        indicates: Which way the item points: ``ai_generated``, ``camera_capture``,
            ``processed``, ``neutral``, or ``not_checked`` (could not be checked).
    """

    kind: str
    title: str
    found: bool
    details: dict[str, Any] = field(default_factory=dict)
    proves: str = ""
    does_not_prove: str = ""
    summary: str = ""
    indicates: Indication = "neutral"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "kind": self.kind,
            "title": self.title,
            "found": bool(self.found),
            "summary": self.summary,
            "indicates": self.indicates,
            "details": _jsonable(self.details),
            "proves": self.proves,
            "does_not_prove": self.does_not_prove,
        }


@dataclass(frozen=True)
class EvidenceReport:
    """Everything `inspect_file` learnt about one file.

    Attributes:
        items: The evidence items, strongest kinds first, always in the same order.
        readable: Whether the pixels could be decoded (metadata may be readable even if not).
        format: Image format decided from the bytes (``JPEG``, ``PNG``...), or None.
        width: Width in pixels as stored (before EXIF rotation), or None.
        height: Height in pixels as stored, or None.
        file_bytes: Size of the file, or None when no file bytes were given.
        error: Why the image could not be decoded, if it could not.
        note: What this evidence is and is not (`EVIDENCE_NOTE`).
    """

    items: tuple[EvidenceItem, ...]
    readable: bool
    format: str | None = None
    width: int | None = None
    height: int | None = None
    file_bytes: int | None = None
    error: str | None = None
    note: str = EVIDENCE_NOTE

    def item(self, kind: str) -> EvidenceItem | None:
        """The item of this kind, or None."""
        return next((it for it in self.items if it.kind == kind), None)

    @property
    def found_items(self) -> tuple[EvidenceItem, ...]:
        """Items whose target was found."""
        return tuple(it for it in self.items if it.found)

    @property
    def ai_indicators(self) -> tuple[EvidenceItem, ...]:
        """Found items that point to AI generation."""
        return tuple(it for it in self.items if it.found and it.indicates == "ai_generated")

    @property
    def camera_indicators(self) -> tuple[EvidenceItem, ...]:
        """Found items that point to a camera capture."""
        return tuple(it for it in self.items if it.found and it.indicates == "camera_capture")

    def headline(self) -> str:
        """One plain-language sentence summarising the evidence."""
        if not self.readable and self.format is None:
            return f"Not a readable image: {self.error or 'unknown format'}."
        ai = self.ai_indicators
        camera = self.camera_indicators
        if ai:
            names = "; ".join(it.title for it in ai)
            text = f"The metadata says this image was made with AI ({names})."
            if camera:
                text += " Other metadata points to a camera: the file's history is mixed."
            return text
        if camera:
            names = "; ".join(it.title for it in camera)
            return (
                f"The metadata points to a camera capture ({names}), which is easy to forge "
                "and proves nothing on its own."
            )
        return (
            "No provenance metadata found. That says nothing about whether the image is "
            "AI-generated: most files lose their metadata when shared."
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "readable": self.readable,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "file_bytes": self.file_bytes,
            "error": self.error,
            "headline": self.headline(),
            "note": self.note,
            "items": [it.to_dict() for it in self.items],
        }

    def to_text(self) -> str:
        """A plain-text rendering for terminals."""
        lines = [self.headline(), "", self.note, ""]
        for it in self.items:
            mark = "[x]" if it.found else "[ ]"
            lines.append(f"{mark} {it.title}: {it.summary}")
            for key, value in it.details.items():
                lines.append(f"      {key}: {_short_text(value)}")
            if it.found:
                lines.append(f"      proves: {it.proves}")
            lines.append(f"      does not prove: {it.does_not_prove}")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


class _Deadline:
    """A wall-clock limit, checked between evidence items and while c2pa reads the file."""

    def __init__(self, seconds: float | None) -> None:
        self.at = None if seconds is None else time.monotonic() + max(0.0, float(seconds))

    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def sooner(self, seconds: float) -> _Deadline:
        """A deadline ``seconds`` from now, or this one if it comes first."""
        inner = _Deadline(seconds)
        if self.at is not None and inner.at is not None:
            inner.at = min(inner.at, self.at)
        return inner


def _item(kind: str, found: bool, details: dict[str, Any], summary: str, indicates: Indication):
    return EvidenceItem(
        kind=kind,
        title=_TITLES[kind],
        found=found,
        details=details,
        proves=_PROVES[kind],
        does_not_prove=_DOES_NOT_PROVE[kind],
        summary=summary,
        indicates=indicates,
    )


def _not_checked(kind: str, reason: str) -> EvidenceItem:
    return _item(kind, False, {"status": "not_checked", "reason": reason}, reason, "not_checked")


def _short_text(value: Any) -> str:
    text = json.dumps(_jsonable(value), ensure_ascii=False) if not isinstance(value, str) else value
    return _truncate(text.replace("\n", " ⏎ "), 200)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, bytes):
        return _truncate(value.decode("utf-8", "replace"))
    return _truncate(str(value))
