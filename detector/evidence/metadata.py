"""Provenance evidence read from an image file, kept apart from any model score.

`inspect_file` reads what a file says about its own history: camera EXIF, generation settings
that image generators write into metadata, the IPTC ``DigitalSourceType`` in XMP, C2PA Content
Credentials (`detector.evidence.c2pa_reader`), the JPEG quantisation tables, traces of resizing or
re-encoding, and Stable Diffusion's invisible watermarks in the pixels
(`detector.evidence.evidence_watermark`). Each finding is an `EvidenceItem` that says what it
proves and what its absence does not prove: metadata is easy to strip and easy to forge, so none
of this is a verdict, and nothing here runs a model (`detector.evidence.verdict` combines it with
a model's score).

Every step is bounded, because the metadata comes from whoever made the file: text values are
capped before they are searched (`MAX_PARSE_CHARS`, `MAX_JSON_CHARS`, `MAX_TOTAL_TEXT_BYTES`),
the patterns run in linear time, and the whole pass has a time budget
(`EVIDENCE_TIME_BUDGET`): items not reached in time are reported as not checked.

Example:
    >>> report = inspect_file("photo.jpg")                 # doctest: +SKIP
    >>> report.headline()                                  # doctest: +SKIP
    >>> [item.title for item in report.items if item.found]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import struct
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
from PIL import ExifTags, Image, JpegImagePlugin

from detector.core.errors import DetectorError, ImageLoadError
from detector.core.images import (
    ALLOWED_FORMATS,
    MAX_PNG_CHUNKS,
    ImageInfo,
    _check_container,
    _count_frames,
    _orientation,
    _read_bytes,
    _to_rgb,
    decode_image,
)
from detector.evidence.c2pa_reader import (
    IPTC_DST_PREFIX as IPTC_DST_PREFIX,  # re-exported
)
from detector.evidence.c2pa_reader import (
    load_c2pa,
    manifest_details,
    manifest_summary,
    read_c2pa,
    source_type_code,
)
from detector.evidence.evidence_watermark import DOES_NOT_PROVE as WATERMARK_DOES_NOT_PROVE
from detector.evidence.evidence_watermark import PROVES as WATERMARK_PROVES
from detector.evidence.evidence_watermark import watermark_finding

Indication = Literal["ai_generated", "camera_capture", "processed", "neutral", "not_checked"]

#: Shown with every report: what this evidence is and is not.
EVIDENCE_NOTE = (
    "Evidence read from the file's metadata and structure, not a model score. Metadata is easy "
    "to strip and easy to forge: what is found is a clue about the file's history, and what is "
    "missing proves nothing either way."
)

#: Longest metadata value kept in a report, in characters (longer values are cut).
MAX_VALUE_CHARS = 400
#: Largest text chunk or XMP packet decompressed or kept, in bytes.
MAX_TEXT_BYTES = 2 * 1024 * 1024
#: Most text kept from all of a file's text chunks together, in bytes (zTXt chunks inflate, so
#: a small file could otherwise hold gigabytes of text), and most text chunks read.
MAX_TOTAL_TEXT_BYTES = 8 * 1024 * 1024
MAX_TEXT_CHUNKS = 256
#: Longest part of one metadata value searched or parsed for generation settings, in
#: characters. Prompts and settings lines are a few KiB; a longer value keeps its first and
#: last halves of this (WebUI writes its settings on the last line).
MAX_PARSE_CHARS = 32 * 1024
#: Longest JSON value (a ComfyUI prompt or workflow) parsed, in characters.
MAX_JSON_CHARS = 1024 * 1024
#: Most XMP packets kept, and most XMP text searched in all of them together, in characters.
MAX_XMP_PACKETS = 32
MAX_XMP_TOTAL_CHARS = 4 * 1024 * 1024
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

#: PNG text keys that image generators write with their settings.
GENERATOR_KEYS: dict[str, str] = {
    "parameters": "Stable Diffusion WebUI (AUTOMATIC1111 / Forge / SD.Next)",
    "prompt": "ComfyUI",
    "workflow": "ComfyUI",
    "invokeai_metadata": "InvokeAI",
    "invokeai_graph": "InvokeAI",
    "invokeai_workflow": "InvokeAI",
    "sd-metadata": "InvokeAI (2.x)",
    "dream": "InvokeAI (legacy 'dream')",
    "fooocus_scheme": "Fooocus",
    "generation_data": "an online generator ('generation_data')",
    "negative_prompt": "a Stable Diffusion front end",
    "sui_image_params": "SwarmUI",
}
#: PNG text keys that only hint at a generator when their value names one.
HINT_KEYS = frozenset(
    {"comment", "software", "source", "description", "author", "title", "generator", "model"}
)

_AI_NAMES = re.compile(
    r"stable[\s_-]?diffusion|\bsdxl\b|midjourney|dall[\s·._-]?e|novelai|comfyui|automatic1111|"
    r"invokeai|fooocus|\bfirefly\b|leonardo[\s.]?ai|dreamstudio|\bflux(?:\.1)?\b|craiyon|"
    r"nightcafe|image creator|ideogram|playground\s?ai|kandinsky|gpt-?4o|\bsora\b|openai|"
    r"imagen\s?\d|\bgemini\b|stability\s?ai|\bjob id:",
    re.IGNORECASE,
)
_EDITOR_NAMES = re.compile(
    r"photoshop|lightroom|\bgimp\b|affinity|snapseed|pixelmator|capture one|darktable|"
    r"paint\.net|picasa|instagram|facetune|\bcanva\b|luminar|photopea|rawtherapee|"
    r"acdsee|irfanview|xnview|imagemagick|pillow|\bpil\b",
    re.IGNORECASE,
)
# A WebUI settings line: "Steps: 20, Sampler: ..., Seed: ...". Anchored at each line start and
# confined to one line, with a possessive digit run, so a search is linear in the text's length
# (a pattern whose leading whitespace could span newlines took quadratic time).
_A1111_SETTINGS = re.compile(
    r"^[ \t]*Steps:[ \t]*\d++[^\n]*?(?:Sampler|Seed|CFG scale):", re.IGNORECASE | re.MULTILINE
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


@dataclass(frozen=True)
class JpegQualityEstimate:
    """The IJG quality that reproduces a JPEG's quantisation tables.

    Attributes:
        quality: Estimated quality, 1-100 (libjpeg / Pillow / OpenCV scale).
        exact: The tables are exactly the IJG tables at this quality (typical of Pillow, OpenCV,
            libjpeg-based apps); False means the nearest match to non-standard tables.
        mean_abs_error: Mean absolute difference between the file's tables and the IJG tables.
        n_tables: Number of quantisation tables in the file.
        luma_scale: The luminance table's average scale factor relative to the IJG base table,
            in percent (100 = quality 50).
    """

    quality: int
    exact: bool
    mean_abs_error: float
    n_tables: int
    luma_scale: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "quality": self.quality,
            "exact": self.exact,
            "mean_abs_error": round(self.mean_abs_error, 3),
            "n_tables": self.n_tables,
            "luma_scale": round(self.luma_scale, 2),
        }


# IJG (libjpeg) base tables, Annex K of the JPEG standard, natural (row-major) order.
IJG_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64,
)  # fmt: skip
IJG_CHROMA = np.array(
    [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
     24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99]
    + [99] * 32,
    dtype=np.float64,
)  # fmt: skip


def ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """The quantisation table libjpeg writes for ``quality`` (baseline, values clamped 1-255)."""
    quality = int(np.clip(quality, 1, 100))
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((base * scale + 50) / 100), 1, 255)


_LUMA_TABLES = np.stack([ijg_table(IJG_LUMA, q) for q in range(1, 101)])
_CHROMA_TABLES = np.stack([ijg_table(IJG_CHROMA, q) for q in range(1, 101)])


def estimate_jpeg_quality(source: bytes | Image.Image) -> JpegQualityEstimate | None:
    """Estimate a JPEG's quality by inverting the IJG scaling of its quantisation tables.

    Every quality 1-100 is tried and the one whose IJG tables are closest to the file's
    (luminance, and chrominance when present) wins; for files written by libjpeg-based encoders
    (Pillow, OpenCV, most apps) the match is exact.

    Args:
        source: The file's bytes, or a Pillow image opened from a JPEG file.

    Returns:
        The estimate, or None if the source is not a JPEG with quantisation tables.
    """
    try:
        img = source if isinstance(source, Image.Image) else _open(bytes(source))
        tables = getattr(img, "quantization", None)
    except (DetectorError, OSError, ValueError, SyntaxError, EOFError):
        return None
    if img.format != "JPEG" or not tables or 0 not in tables or len(tables[0]) != 64:
        return None
    luma = np.asarray(tables[0], dtype=np.float64)
    chroma = np.asarray(tables[1], dtype=np.float64) if len(tables.get(1, ())) == 64 else None
    err = np.abs(_LUMA_TABLES - luma).sum(axis=1)
    count = 64
    if chroma is not None:
        err = err + np.abs(_CHROMA_TABLES - chroma).sum(axis=1)
        count += 64
    err = err / count
    index = int(np.argmin(err))  # the lowest quality among equally good fits, as a loop would
    best: tuple[float, int] = (float(err[index]), index + 1)
    unclipped = luma < 255
    scale = float(np.mean(100.0 * luma[unclipped] / IJG_LUMA[unclipped])) if unclipped.any() else 0
    return JpegQualityEstimate(
        quality=best[1],
        exact=best[0] == 0.0,
        mean_abs_error=best[0],
        n_tables=len(tables),
        luma_scale=scale,
    )


# --------------------------------------------------------------------------- entry point
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


def inspect_file(
    source: str | Path | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray,
    *,
    time_budget: float | None = EVIDENCE_TIME_BUDGET,
) -> EvidenceReport:
    """Read the provenance evidence in an image file.

    Args:
        source: A path, raw bytes or a binary file object (the full evidence), a Pillow image
            (its metadata, without C2PA), or an array (pixels only: no metadata to read).
        time_budget: Seconds the whole pass may take (None: no limit). Items not reached in
            time are reported as not checked (`TIME_BUDGET_REASON`) rather than waited for.

    Returns:
        An `EvidenceReport`. A file whose pixels cannot be decoded (truncated, not an image)
        still gets a report, with ``readable=False`` and whatever metadata could be read.

    Raises:
        ImageLoadError: the source cannot be read at all (missing file, empty, too large,
            unsupported source type).
    """
    deadline = _Deadline(time_budget)
    if isinstance(source, np.ndarray):
        pixels, info = decode_image(source)
        reason = "only pixels were given, no file to read metadata from"
        return _pixels_only_report(pixels, info, reason, deadline)
    if isinstance(source, Image.Image):
        return _report(None, source, deadline=deadline)
    data = _read_bytes(source)
    try:
        img = _open(data)
    except ImageLoadError as exc:
        return _report(data, None, open_error=exc, deadline=deadline)
    with img:
        return _report(data, img, deadline=deadline)


# --------------------------------------------------------------------------- report assembly
def _report(
    data: bytes | None,
    img: Image.Image | None,
    open_error: ImageLoadError | None = None,
    deadline: _Deadline | None = None,
) -> EvidenceReport:
    deadline = deadline or _Deadline(None)
    arr: np.ndarray | None = None
    decode_error: ImageLoadError | None = open_error
    info: ImageInfo | None = None
    if img is not None:
        try:
            arr, info = decode_image(img if data is None else data)
        except ImageLoadError as exc:
            decode_error = exc

    fmt = img.format if img is not None else None
    size = img.size if img is not None else None
    exif = _read_exif(img)
    png_text = _text_chunks(data, img)

    steps: list[tuple[str, Any]] = [
        ("c2pa", lambda: _c2pa_item(data, fmt, deadline)),
        ("digital_source_type", lambda: _dst_item(_xmp_packets(data, img, png_text), data)),
        ("generation_settings", lambda: _generation_item(png_text, exif, img, deadline)),
    ]
    if img is None:
        reason = "the file could not be opened as an image"
        kinds = ("exif", "gps", "jpeg_quality")
        steps += [(kind, lambda k=kind: _not_checked(k, reason)) for kind in kinds]
    else:
        steps += [
            ("exif", lambda: _exif_item(exif)),
            ("gps", lambda: _gps_item(exif)),
            ("jpeg_quality", lambda: _jpeg_item(img)),
        ]
    steps.append(("processing", lambda: _processing_item(img, exif, _grid_pixels(img, arr, info))))
    # files are decoded in display orientation (Pillow images as they are): undone for the mark
    steps.append(("watermark", lambda: _watermark_item(arr, info, img, oriented=data is not None)))
    items = [_file_item(data, img, info, decode_error)]
    for kind, make in steps:
        items.append(_not_checked(kind, TIME_BUDGET_REASON) if deadline.expired() else make())
    return EvidenceReport(
        items=tuple(items),
        readable=arr is not None,
        format=fmt,
        width=size[0] if size else None,
        height=size[1] if size else None,
        file_bytes=len(data) if data is not None else None,
        error=decode_error.message if decode_error is not None else None,
    )


def _grid_pixels(
    img: Image.Image | None, arr: np.ndarray | None, info: ImageInfo | None
) -> np.ndarray | None:
    """The pixels the JPEG-grid check reads: the decoded array, or for an image that was
    reduced while decoding, its top-left corner at full resolution (a grid does not survive
    resampling), in the file's stored orientation."""
    if arr is None or img is None or info is None or not info.downscaled:
        return arr
    try:
        width, height = img.size
        corner = img.crop((0, 0, min(width, _GRID_SIDE), min(height, _GRID_SIDE)))
        return _to_rgb(corner)
    except Exception:  # the pixels decoded once already; never let a second pass sink a report
        return None


def _pixels_only_report(
    pixels: np.ndarray, info: ImageInfo, reason: str, deadline: _Deadline
) -> EvidenceReport:
    items = [
        EvidenceItem(
            "file",
            _TITLES["file"],
            True,
            {"width": info.width, "height": info.height, "source": "pixel array"},
            _PROVES["file"],
            _DOES_NOT_PROVE["file"],
            summary=f"{info.width}x{info.height} pixels (no file)",
        )
    ]
    for kind in (
        "c2pa",
        "digital_source_type",
        "generation_settings",
        "exif",
        "gps",
        "jpeg_quality",
        "processing",
    ):
        items.append(_not_checked(kind, reason))
    expired = deadline.expired()
    items.append(
        _not_checked("watermark", TIME_BUDGET_REASON)
        if expired
        else _watermark_item(pixels, info, None)
    )
    return EvidenceReport(items=tuple(items), readable=True, width=info.width, height=info.height)


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


def _watermark_item(
    arr: np.ndarray | None,
    info: ImageInfo | None,
    img: Image.Image | None,
    oriented: bool = False,
) -> EvidenceItem:
    """Stable Diffusion's invisible marks, read by `detector.evidence.evidence_watermark`.

    ``oriented``: the decoder turned ``arr`` by the file's EXIF orientation (files, not Pillow
    images), which is undone so that the mark is read in the pixels as stored.
    """
    mode = img.mode if img is not None else None
    orientation = _orientation(img) if img is not None and oriented else 1
    found = watermark_finding(arr, info, mode=mode, orientation=orientation)
    return _item("watermark", found.found, found.details, found.summary, found.indicates)


# --------------------------------------------------------------------------- reading helpers
_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _open(data: bytes) -> Image.Image:
    """Open (not decode) an image from bytes, with the same allow-list and container checks
    as `decode_image`."""
    _check_container(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(
            "image declares too many pixels (possible decompression bomb)", code="too_many_pixels"
        ) from None
    except Exception:
        # decode_image names the problem precisely (not an image, truncated, ...).
        try:
            decode_image(data)
        except ImageLoadError as exc:
            raise exc from None
        raise ImageLoadError("unreadable image header", code="corrupt_file") from None


def _truncate(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    value = value.replace("\x00", "")
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… (+{len(value) - limit} characters)"


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


def _clean_exif_value(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.rstrip(b"\x00").decode("utf-8", "replace")
    if isinstance(value, str):
        return _truncate(value.strip().rstrip("\x00"))
    if isinstance(value, tuple):
        return [_clean_exif_value(v) for v in value[:16]]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _truncate(str(value))
    if number.is_integer():
        return int(number)
    return round(number, 6)


@dataclass
class _Exif:
    base: dict[int, Any] = field(default_factory=dict)
    exif: dict[int, Any] = field(default_factory=dict)
    gps: dict[int, Any] = field(default_factory=dict)
    ifd1: dict[int, Any] = field(default_factory=dict)
    raw: bytes = b""
    error: str | None = None


def _read_exif(img: Image.Image | None) -> _Exif:
    out = _Exif()
    if img is None:
        return out
    try:
        exif = img.getexif()
        out.base = dict(exif)
        for attr, ifd in (
            ("exif", ExifTags.IFD.Exif),
            ("gps", ExifTags.IFD.GPSInfo),
            ("ifd1", ExifTags.IFD.IFD1),
        ):
            try:
                setattr(out, attr, dict(exif.get_ifd(ifd)))
            except Exception:  # one broken IFD must not hide the others
                setattr(out, attr, {})
        raw = img.info.get("exif")
        out.raw = raw if isinstance(raw, bytes) else b""
    except Exception as exc:  # EXIF blocks come from anywhere; never let one crash a report
        out.error = f"EXIF block could not be read: {type(exc).__name__}"
    return out


def _text_chunks(data: bytes | None, img: Image.Image | None) -> dict[str, str]:
    """A file's text metadata: PNG text chunks, or the string values Pillow read (capped)."""
    if data is not None and data[:8] == _PNG_SIG:
        chunks = _png_text_chunks(data)
        if chunks:
            return chunks
    out: dict[str, str] = {}
    total = 0
    if img is not None:
        for key, value in img.info.items():
            if not isinstance(value, str) or str(key) == "XML:com.adobe.xmp":
                continue
            if len(out) >= MAX_TEXT_CHUNKS or total >= MAX_TOTAL_TEXT_BYTES:
                break
            value = value[: min(MAX_TEXT_BYTES, MAX_TOTAL_TEXT_BYTES - total)]
            out[str(key)[:200]] = value
            total += len(value)
    return out


def _png_text_chunks(data: bytes) -> dict[str, str]:
    """All tEXt / zTXt / iTXt chunks of a PNG, each capped at `MAX_TEXT_BYTES` and all of them
    together at `MAX_TOTAL_TEXT_BYTES` (compressed ones are inflated only that far)."""
    out: dict[str, str] = {}
    pos = 8
    end = len(data)
    total = 0
    walked = 0
    while pos + 8 <= end and len(out) < MAX_TEXT_CHUNKS and total < MAX_TOTAL_TEXT_BYTES:
        walked += 1
        if walked > MAX_PNG_CHUNKS:  # as many as `detector.core.images` accepts
            break
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        start = pos + 8
        pos += 12 + length
        if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
            if ctype == b"IEND":
                break
            continue
        body = data[start : start + length]
        if len(body) < length:
            break
        limit = min(MAX_TEXT_BYTES, MAX_TOTAL_TEXT_BYTES - total)
        try:
            if ctype == b"tEXt":
                key, _, value = body.partition(b"\x00")
                text = value[:limit].decode("latin-1")
            elif ctype == b"zTXt":
                key, _, rest = body.partition(b"\x00")
                text = _inflate(rest[1:], limit).decode("latin-1")
            else:
                key, _, rest = body.partition(b"\x00")
                compressed, _method = rest[0], rest[1]
                _lang, _, rest = rest[2:].partition(b"\x00")
                _translated, _, raw = rest.partition(b"\x00")
                raw = _inflate(raw, limit) if compressed else raw[:limit]
                text = raw.decode("utf-8", "replace")
        except (zlib.error, IndexError, UnicodeDecodeError, ValueError):
            continue
        out[key[:200].decode("latin-1")] = text
        total += len(text)
    return out


def _inflate(data: bytes, limit: int = MAX_TEXT_BYTES) -> bytes:
    inflater = zlib.decompressobj()
    return inflater.decompress(data, max(1, limit))


# --------------------------------------------------------------------------- items
def _file_item(
    data: bytes | None,
    img: Image.Image | None,
    info: ImageInfo | None,
    error: ImageLoadError | None,
) -> EvidenceItem:
    details: dict[str, Any] = {}
    if img is not None:
        details.update(format=img.format, width=img.size[0], height=img.size[1], mode=img.mode)
        if info is not None:
            frames, capped = info.n_frames, info.frames_capped
        else:
            try:
                frames, capped = _count_frames(img, data)
            except Exception:  # a damaged file: its frames cannot be counted
                frames, capped = 1, False
        details["frames"] = frames
        if capped:
            details["frames_note"] = f"at least {frames} (counting stops there)"
    if info is not None and info.original_size is not None:
        details["decoded_size"] = [info.width, info.height]
    if data is not None:
        details["file_bytes"] = len(data)
        details["sha256"] = hashlib.sha256(data).hexdigest()
    if error is not None:
        details["error_code"] = error.code
        details["error"] = error.message
        where = f"{img.format} " if img is not None else ""
        summary = f"unreadable {where}file: {error.message}"
        return _item("file", False, details, summary, "not_checked")
    assert info is not None
    width, height = info.original_size or (info.width, info.height)
    summary = f"{info.format or 'image'}, {width}x{height} px"
    if data is not None:
        summary += f", {len(data) / 1024:.1f} KiB"
    return _item("file", True, details, summary, "neutral")


def _load_c2pa():
    """Import c2pa-python (its native library may be missing or fail to load)."""
    return load_c2pa()


def _c2pa_item(
    data: bytes | None, fmt: str | None, deadline: _Deadline | None = None
) -> EvidenceItem:
    """The C2PA item, read by `detector.evidence.c2pa_reader` within `C2PA_TIME_BUDGET`."""
    if data is None:
        return _not_checked("c2pa", "no file bytes given: Content Credentials were not checked")
    limit = (deadline or _Deadline(None)).sooner(C2PA_TIME_BUDGET)
    reading = read_c2pa(data, fmt, expired=limit.expired, load=_load_c2pa)
    if reading.status == "not_checked":
        return _not_checked("c2pa", reading.summary)
    if reading.status == "no_manifest":
        return _item("c2pa", False, {"status": "no_manifest"}, reading.summary, "neutral")
    if reading.status == "invalid":
        return _item("c2pa", True, reading.details, reading.summary, "processed")
    return _c2pa_from_details(reading.details)


def _c2pa_found(store: dict[str, Any], state: str | None) -> EvidenceItem:
    """The C2PA item of a parsed manifest store and its validation state."""
    return _c2pa_from_details(manifest_details(store, state))


def _c2pa_from_details(details: dict[str, Any]) -> EvidenceItem:
    sources = set(details.get("digital_source_types") or ())
    if sources & AI_SOURCE_TYPES:
        indicates: Indication = "ai_generated"
    elif sources & CAPTURE_SOURCE_TYPES:
        indicates = "camera_capture"
    else:
        indicates = "neutral"
    return _item("c2pa", True, details, manifest_summary(details), indicates)


_dst_code = source_type_code


_XMP_START = (b"<x:xmpmeta", b"<x:xapmeta")
_XMP_END = (b"</x:xmpmeta>", b"</x:xapmeta>")


def _xmp_packets(
    data: bytes | None, img: Image.Image | None, png_text: dict[str, str]
) -> list[tuple[str, str]]:
    """(where, packet text) for every XMP packet found, deduplicated: at most `MAX_XMP_PACKETS`
    packets and `MAX_XMP_TOTAL_CHARS` characters in all."""
    found: list[tuple[str, str]] = []
    if "XML:com.adobe.xmp" in png_text:
        found.append(("PNG iTXt XML:com.adobe.xmp", png_text["XML:com.adobe.xmp"]))
    if img is not None:
        for marker, payload in getattr(img, "applist", []) or []:
            if len(found) >= 4 * MAX_XMP_PACKETS:  # duplicates are dropped below
                break
            if marker == "APP1" and payload.startswith(b"http://ns.adobe.com/xap/1.0/\x00"):
                found.append(("JPEG APP1 XMP", payload[29:].decode("utf-8", "replace")))
            elif marker == "APP1" and payload.startswith(b"http://ns.adobe.com/xmp/extension/"):
                found.append(("JPEG APP1 extended XMP", payload[75:].decode("utf-8", "replace")))
        for key in ("xmp", "XML:com.adobe.xmp"):
            value = img.info.get(key)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, str) and value:
                found.append((f"{img.format or 'image'} XMP ({key})", value))
    if data is not None:
        for start_tag, end_tag in zip(_XMP_START, _XMP_END, strict=True):
            pos = 0
            while len(found) < MAX_XMP_PACKETS:
                start = data.find(start_tag, pos)
                if start < 0:
                    break
                stop = data.find(end_tag, start, start + MAX_TEXT_BYTES)
                if stop < 0:
                    break
                packet = data[start : stop + len(end_tag)].decode("utf-8", "replace")
                found.append(("XMP packet in the file bytes", packet))
                pos = stop + len(end_tag)
    seen: set[str] = set()
    unique: list[tuple[str, str]] = []
    total = 0
    for where, text in found:
        if len(unique) >= MAX_XMP_PACKETS or total >= MAX_XMP_TOTAL_CHARS:
            break
        room = min(MAX_TEXT_BYTES, MAX_XMP_TOTAL_CHARS - total)
        key = text[: room + 1024].strip()[:room]
        body = key[key.find("<x:x") :] if "<x:x" in key else key
        if body in seen:
            continue
        seen.add(body)
        unique.append((where, key))
        total += len(key)
    return unique


_DST_ATTR = re.compile(r"DigitalSourceType\s*+=\s*+[\"']([^\"']*+)[\"']", re.IGNORECASE)
# A DigitalSourceType element: its attributes (read for rdf:resource separately) and the text
# after it. Every repeat stops at the next "<" or ">", and is possessive, so a search is linear.
_DST_ELEM = re.compile(r"<[\w.-]*:?DigitalSourceType([^<>]*+)>\s*+([^<\s]*+)", re.IGNORECASE)
_RDF_RESOURCE = re.compile(r"rdf:resource\s*+=\s*+[\"']([^\"'<>]*+)[\"']", re.IGNORECASE)
_DST_URL = re.compile(rb"cv\.iptc\.org/newscodes/digitalsourcetype/([A-Za-z]+)")
# The element form takes no leading-space run of its own: "\s*([^<]*)<" was quadratic on a
# long run of spaces with no closing tag; the value is stripped afterwards.
_CREATOR_TOOL = re.compile(
    r"CreatorTool\s*+=\s*+[\"']([^\"']*+)[\"']|<xmp:CreatorTool>([^<]*+)<", re.IGNORECASE
)


#: Most matches of each pattern read from XMP or the file bytes, and most distinct values and
#: creator tools kept (a hostile packet can repeat a tag a hundred thousand times).
MAX_XMP_MATCHES = 10_000
MAX_XMP_VALUES = 50


def _matches(pattern: re.Pattern, text: Any) -> list[Any]:
    """The groups of at most `MAX_XMP_MATCHES` matches of ``pattern``, as ``findall`` gives them."""
    found = []
    for match in itertools.islice(pattern.finditer(text), MAX_XMP_MATCHES):
        groups = match.groups()
        found.append(groups[0] if len(groups) == 1 else groups)
    return found


def _dst_item(packets: list[tuple[str, str]], data: bytes | None) -> EvidenceItem:
    values: dict[str, dict[str, None]] = {}
    creator_tools: dict[str, None] = {}
    for where, text in packets:
        codes = _matches(_DST_ATTR, text)
        for attributes, body in _matches(_DST_ELEM, text):
            resource = _RDF_RESOURCE.search(attributes)
            code = resource.group(1) if resource else body
            if code:
                codes.append(code)
        codes += [m.decode() for m in _matches(_DST_URL, text.encode("utf-8", "replace"))]
        for code in codes:
            key = _truncate(_dst_code(code), 120)
            if key in values or len(values) < MAX_XMP_VALUES:
                values.setdefault(key, {})[where] = None
        for a, b in _matches(_CREATOR_TOOL, text):
            tool = _truncate((a or b).strip(), 120)
            if tool and len(creator_tools) < MAX_XMP_VALUES:
                creator_tools.setdefault(tool)
    if data is not None:
        for match in _matches(_DST_URL, data):
            code = match.decode()
            if code not in values and len(values) < MAX_XMP_VALUES:
                values[code] = {"in binary metadata outside XMP (e.g. a C2PA manifest)": None}
    found_in = {k: sorted(v) for k, v in values.items() if k}
    tools = list(creator_tools)
    details: dict[str, Any] = {
        "xmp_packets": len(packets),
        "values": {k: DIGITAL_SOURCE_TYPES.get(k, "unknown code") for k in found_in},
        "found_in": found_in,
    }
    if tools:
        details["creator_tool"] = tools
    if not found_in:
        summary = "no DigitalSourceType" + (
            f" (XMP present: {len(packets)} packet(s))" if packets else " (no XMP)"
        )
        indicates: Indication = "neutral"
        if tools and any(_AI_NAMES.search(t) for t in tools):
            summary += f"; XMP CreatorTool names a generator: {tools[0]}"
            indicates = "ai_generated"
            return _item("digital_source_type", True, details, summary, indicates)
        return _item("digital_source_type", False, details, summary, indicates)
    codes = set(values)
    if codes & AI_SOURCE_TYPES:
        indicates = "ai_generated"
    elif codes & CAPTURE_SOURCE_TYPES:
        indicates = "camera_capture"
    elif codes & SYNTHETIC_SOURCE_TYPES:
        indicates = "ai_generated" if "algorithmicMedia" not in codes else "neutral"
    else:
        indicates = "neutral"
    summary = "; ".join(f"{k} ({DIGITAL_SOURCE_TYPES.get(k, 'unknown code')})" for k in values)
    return _item("digital_source_type", True, details, summary, indicates)


#: Most settings kept from one WebUI settings line.
MAX_SETTINGS = 40
_STEPS_LINE = re.compile(r"\s*+Steps:\s*+\d")
# A double-quoted value with backslash escapes; the two branches cannot match the same text, so
# an unclosed quote fails in linear time (the old pattern backtracked exponentially).
_QUOTED = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
# Characters a settings key may hold, matched on the reversed text before a colon.
_KEY_CHARS = re.compile(r"[\w\s/+-]*+")
_SPACES = re.compile(r"\s*+")
#: What `str.splitlines` splits on.
_LINE_BREAKS = ("\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
#: Longest quoted settings value looked for, in characters.
MAX_QUOTED_CHARS = 2048


def _capped(text: str, limit: int = MAX_PARSE_CHARS) -> str:
    """``text``, or at most ``limit`` characters of it: the first half, then the start of its
    last line (where WebUI writes its settings)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    last = max(text.rfind(mark) for mark in _LINE_BREAKS) + 1
    if last <= half:
        return text[:limit]
    return f"{text[:half]}\n{text[last : last + half]}"


def _parse_settings(line: str) -> dict[str, str]:
    """Split ``Key: value, Key: "quoted, value", ...`` into a dict, in linear time.

    A key is the run of word characters, spaces, ``/``, ``+`` and ``-`` just before a colon; a
    value runs to the next comma, unless it is a double-quoted string (kept with its quotes),
    which may hold commas.
    """
    settings: dict[str, str] = {}
    pos, end = 0, len(line)
    while pos < end and len(settings) < MAX_SETTINGS:
        colon = line.find(":", pos)
        if colon < 0:
            break
        before = line[pos:colon]
        key = before[len(before) - _KEY_CHARS.match(before[::-1]).end() :]
        if not key:  # no key before this colon: look for one after it
            pos = colon + 1
            continue
        start = _SPACES.match(line, colon + 1).end()
        quoted = None
        if line.startswith('"', start):  # scanned at most MAX_QUOTED_CHARS: linear overall
            quoted = _QUOTED.match(line, start, min(end, start + MAX_QUOTED_CHARS))
        if quoted is not None:
            comma = line.find(",", quoted.end())
            if line[quoted.end() : end if comma < 0 else comma].strip():
                quoted = None  # text after the closing quote: not a quoted value after all
        if quoted is not None:
            value = quoted.group(0)
        else:
            comma = line.find(",", start)
            value = line[start : end if comma < 0 else comma]
        if key.strip():  # a blank key still takes its value, as WebUI's own parser does
            settings[key.strip()] = _truncate(value.strip(), 120)
        pos = end if comma < 0 else comma + 1
    return settings


def _parse_a1111(text: str) -> dict[str, Any]:
    """Split Stable Diffusion WebUI ``parameters`` text into prompt, negative prompt, settings.

    The text is capped at `MAX_PARSE_CHARS` first, and every step is linear in its length.
    """
    lines = _capped(text).strip().splitlines()
    settings_line = ""
    if lines and _STEPS_LINE.match(lines[-1]):
        settings_line = lines.pop()
    negative: list[str] = []
    prompt: list[str] = []
    target = prompt
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative
            line = line[len("Negative prompt:") :].strip()
        target.append(line)
    settings = _parse_settings(settings_line)
    out: dict[str, Any] = {"prompt": _truncate("\n".join(prompt).strip())}
    if negative:
        out["negative_prompt"] = _truncate("\n".join(negative).strip())
    if settings:
        out["settings"] = settings
    return out


def _plain(value: Any) -> Any:
    """A JSON scalar as it is; anything else (lists, objects of any depth) by its type name."""
    if isinstance(value, str):
        return _truncate(value, 120)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return f"<{type(value).__name__}>"


def _parse_comfy(text: str) -> dict[str, Any] | None:
    """The node types, models, prompts and samplers of a ComfyUI prompt or workflow (JSON).

    Returns None when the text is not a JSON object, is longer than `MAX_JSON_CHARS`, or is
    nested too deeply to parse.
    """
    if len(text) > MAX_JSON_CHARS:
        return None
    try:
        graph = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(graph, dict):
        return None
    nodes = graph.get("nodes") if isinstance(graph.get("nodes"), list) else graph.values()
    classes: dict[str, None] = {}
    models: dict[str, None] = {}
    prompts: list[str] = []
    samplers: list[dict[str, Any]] = []
    for node in list(nodes)[:2000]:
        if not isinstance(node, dict):
            continue
        ctype = node.get("class_type") or node.get("type") or ""
        ctype = _truncate(ctype, 120) if isinstance(ctype, str) else ""
        if ctype:
            classes.setdefault(ctype)
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        for key in ("ckpt_name", "unet_name", "model_name", "lora_name"):
            if isinstance(inputs.get(key), str):
                models.setdefault(_truncate(inputs[key], 120))
        if "CLIPTextEncode" in ctype and isinstance(inputs.get("text"), str):
            prompts.append(_truncate(inputs["text"], 200))
        if "Sampler" in ctype:
            samplers.append(
                {
                    k: _plain(inputs[k])
                    for k in ("seed", "steps", "cfg", "sampler_name")
                    if k in inputs
                }
            )
    return {
        "node_types": list(classes)[:30],
        "models": list(models)[:10],
        "prompts": prompts[:4],
        "samplers": _jsonable(samplers[:4]),
    }


def _printable_ascii(text: str) -> int:
    """How many of the first 4096 characters are printable ASCII (picks a UTF-16 byte order)."""
    return sum(c.isascii() and c.isprintable() for c in text[:4096])


def _user_comment(value: Any) -> str:
    if not isinstance(value, bytes):
        return value if isinstance(value, str) else str(value or "")[:MAX_PARSE_CHARS]
    head, body = value[:8], value[8:]
    if head.startswith(b"UNICODE"):
        candidates = [body.decode(enc, "replace") for enc in ("utf-16-be", "utf-16-le")]
        return max(candidates, key=_printable_ascii)
    if head.startswith((b"ASCII", b"\x00\x00\x00\x00\x00\x00\x00\x00")):
        return body.decode("latin-1")
    return value.decode("utf-8", "replace")


def _generation_item(
    text: dict[str, str],
    exif: _Exif,
    img: Image.Image | None,
    deadline: _Deadline | None = None,
) -> EvidenceItem:
    keys: dict[str, str] = {}
    tools: list[str] = []
    parsed: dict[str, Any] = {}
    other: list[str] = []
    incomplete = False
    named_novelai = any("novelai" in _capped(v).lower() for v in text.values())
    for key, value in text.items():
        if deadline is not None and deadline.expired():
            incomplete = True
            break
        low = key.lower()
        if low in GENERATOR_KEYS:
            keys[key] = _truncate(value)
            tool = GENERATOR_KEYS[low]
            if low == "parameters":
                stripped = value.strip()
                if stripped.startswith("{"):
                    tool = "SwarmUI" if "sui_image_params" in stripped else "a JSON 'parameters'"
                    if "fooocus" in stripped.lower():
                        tool = "Fooocus"
                else:
                    parsed["parameters"] = _parse_a1111(value)
            elif low in ("prompt", "workflow"):
                comfy = _parse_comfy(value)
                if comfy is not None:
                    parsed[low] = comfy
                elif len(value) > MAX_JSON_CHARS and value.lstrip().startswith("{"):
                    parsed[low] = {"status": f"not parsed: over {MAX_JSON_CHARS} characters"}
                else:
                    tool = "a Stable Diffusion front end ('prompt' text)"
            if tool not in tools:
                tools.append(tool)
        elif low in HINT_KEYS:
            capped = _capped(value)
            if _AI_NAMES.search(capped) or (low == "comment" and _looks_like_settings(value)):
                keys[key] = _truncate(value)
                tool = "NovelAI" if named_novelai else None
                if low == "description" and "job id:" in capped.lower():
                    tool = "Midjourney"
                tool = tool or f"a generator named in '{key}'"
                if tool not in tools:
                    tools.append(tool)
            else:
                other.append(key)
        elif low not in ("xml:com.adobe.xmp",):
            other.append(key)
    # JPEG / WebP: WebUI writes its parameters into the EXIF UserComment; some tools use
    # ImageDescription, Software or the JPEG COM segment.
    comment = _user_comment(exif.exif.get(0x9286)).strip("\x00 ")
    if comment and _A1111_SETTINGS.search(_capped(comment)):
        keys["EXIF UserComment"] = _truncate(comment)
        parsed["EXIF UserComment"] = _parse_a1111(comment)
        tools.append(GENERATOR_KEYS["parameters"])
    for tag, name in ((0x010E, "EXIF ImageDescription"), (0x0131, "EXIF Software")):
        value = exif.base.get(tag)
        if isinstance(value, str) and _names_generator(_capped(value)):
            keys[name] = _truncate(value)
            tools.append(f"a generator named in {name}")
    jpeg_comment = img.info.get("comment") if img is not None else None
    if isinstance(jpeg_comment, bytes):
        jpeg_comment = _capped_bytes(jpeg_comment).decode("utf-8", "replace")
    if isinstance(jpeg_comment, str) and _names_generator(_capped(jpeg_comment)):
        keys["JPEG comment"] = _truncate(jpeg_comment)
        tools.append("a generator named in the JPEG comment")
    details: dict[str, Any] = {"keys": keys}
    if tools:
        details["tools"] = list(dict.fromkeys(tools))
    if parsed:
        details["parsed"] = parsed
    if other:
        details["other_text_keys"] = other[:20]
    if incomplete:
        details["incomplete"] = TIME_BUDGET_REASON
    if not keys:
        summary = "none found" + (f" (other text keys: {', '.join(other[:5])})" if other else "")
        if incomplete:
            return _item("generation_settings", False, details, TIME_BUDGET_REASON, "not_checked")
        return _item("generation_settings", False, details, summary, "neutral")
    summary = "generation settings found: " + ", ".join(keys) + " — " + "; ".join(details["tools"])
    return _item("generation_settings", True, details, summary, "ai_generated")


def _names_generator(text: str) -> bool:
    return bool(_A1111_SETTINGS.search(text) or _AI_NAMES.search(text))


def _capped_bytes(value: bytes, limit: int = MAX_PARSE_CHARS) -> bytes:
    """At most ``limit`` bytes of ``value``: the first half, then the start of its last line."""
    if len(value) <= limit:
        return value
    half = limit // 2
    last = value.rfind(b"\n") + 1
    if last <= half:
        return value[:limit]
    return value[:half] + b"\n" + value[last : last + half]


def _looks_like_settings(value: str) -> bool:
    """Whether a comment holds generation settings: a JSON object with sampler keys (parsed
    only up to `MAX_JSON_CHARS`), or a WebUI settings line."""
    if len(value) <= MAX_JSON_CHARS and value.lstrip().startswith("{"):
        try:
            data = json.loads(value)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict):
            return bool({"steps", "sampler", "seed", "scale"} & set(data))
    return bool(_A1111_SETTINGS.search(_capped(value)))


_EXIF_FIELDS: tuple[tuple[str, int, str], ...] = (
    ("make", 0x010F, "base"),
    ("model", 0x0110, "base"),
    ("lens_make", 0xA433, "exif"),
    ("lens_model", 0xA434, "exif"),
    ("capture_time", 0x9003, "exif"),
    ("digitized_time", 0x9004, "exif"),
    ("modified_time", 0x0132, "base"),
    ("software", 0x0131, "base"),
    ("artist", 0x013B, "base"),
    ("exposure_time", 0x829A, "exif"),
    ("f_number", 0x829D, "exif"),
    ("iso", 0x8827, "exif"),
    ("focal_length", 0x920A, "exif"),
    ("orientation", 0x0112, "base"),
    ("pixel_x_dimension", 0xA002, "exif"),
    ("pixel_y_dimension", 0xA003, "exif"),
)
_CAMERA_FIELDS = ("make", "model", "lens_model", "exposure_time", "f_number", "iso")


def exif_summary(source: bytes | Image.Image) -> dict[str, Any]:
    """The camera-related EXIF fields of an image (never GPS values).

    Args:
        source: The file's bytes or an opened Pillow image.

    Returns:
        A dict of the fields present (make, model, lens_model, capture_time, software...),
        plus ``has_gps`` (bool); empty dict if the source cannot be opened.
    """
    try:
        img = source if isinstance(source, Image.Image) else _open(bytes(source))
    except DetectorError:
        return {}
    exif = _read_exif(img)
    fields = _exif_fields(exif)
    fields["has_gps"] = bool(exif.gps)
    return fields


def has_camera_exif(fields: dict[str, Any]) -> bool:
    """Whether `exif_summary` output holds camera fields (make, model or exposure settings)."""
    return any(fields.get(name) not in (None, "") for name in _CAMERA_FIELDS)


def _exif_fields(exif: _Exif) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, tag, ifd in _EXIF_FIELDS:
        value = (exif.base if ifd == "base" else exif.exif).get(tag)
        if value is not None and value != b"" and value != "":
            fields[name] = _clean_exif_value(value)
    return fields


def _exif_item(exif: _Exif) -> EvidenceItem:
    fields = _exif_fields(exif)
    details: dict[str, Any] = dict(fields)
    if exif.error:
        details["error"] = exif.error
    camera = has_camera_exif(fields)
    software = str(fields.get("software", ""))
    if not fields:
        summary = exif.error or "no EXIF"
        return _item("exif", False, details, summary, "neutral")
    parts = [
        " ".join(str(fields[k]) for k in ("make", "model") if k in fields),
        str(fields.get("lens_model", "")),
        str(fields.get("capture_time", fields.get("modified_time", ""))),
    ]
    summary = ", ".join(p for p in parts if p) or "EXIF without camera fields"
    if software:
        summary += f"; software: {software}"
    if _AI_NAMES.search(software):
        indicates: Indication = "ai_generated"
    elif _EDITOR_NAMES.search(software):
        indicates = "processed"
    elif camera:
        indicates = "camera_capture"
    else:
        indicates = "neutral"
    return _item("exif", camera or bool(software), details, summary, indicates)


def _gps_item(exif: _Exif) -> EvidenceItem:
    present = bool(exif.gps)
    details = {"present": present, "gps_tags": len(exif.gps)}
    summary = "GPS data present (value not shown)" if present else "no GPS data"
    return _item("gps", present, details, summary, "neutral")


_SAMPLING = {-1: "unknown", 0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


def _jpeg_item(img: Image.Image) -> EvidenceItem:
    if img.format != "JPEG":
        what = img.format or "not a file format"
        return _item("jpeg_quality", False, {"format": what}, f"not a JPEG ({what})", "neutral")
    estimate = estimate_jpeg_quality(img)
    if estimate is None:
        return _item(
            "jpeg_quality", False, {"error": "no quantisation tables"}, "unknown", "not_checked"
        )
    details = estimate.to_dict()
    try:
        details["subsampling"] = _SAMPLING.get(JpegImagePlugin.get_sampling(img), "unknown")
    except Exception:
        details["subsampling"] = "unknown"
    details["progressive"] = bool(img.info.get("progressive") or img.info.get("progression"))
    how = "standard IJG tables" if estimate.exact else "nearest IJG match to custom tables"
    summary = f"quality ≈ {estimate.quality} ({how})"
    if estimate.quality < 60:
        summary += "; heavily compressed"
    return _item("jpeg_quality", True, details, summary, "neutral")


def _exif_thumbnail_size(exif: _Exif) -> tuple[int, int] | None:
    offset, length = exif.ifd1.get(0x0201), exif.ifd1.get(0x0202)
    if not exif.raw or not isinstance(offset, int) or not isinstance(length, int):
        return None
    start = 6 + offset if exif.raw.startswith(b"Exif\x00\x00") else offset
    blob = exif.raw[start : start + length]
    if not blob.startswith(b"\xff\xd8"):
        return None
    try:
        _check_container(blob)  # Pillow would walk a flood of junk in it byte by byte
        with Image.open(io.BytesIO(blob), formats=["JPEG"]) as thumb:
            return thumb.size
    except Exception:
        return None


#: Side of the top-left corner `jpeg_grid` reads, in pixels.
_GRID_SIDE = 2048


def jpeg_grid(array: np.ndarray) -> dict[str, Any]:
    """Look for the 8x8 block grid that JPEG compression leaves in the pixels.

    For each axis, the mean absolute difference between neighbouring pixels is averaged per
    position modulo 8; a JPEG grid makes one position stand out from its neighbours.

    Args:
        array: RGB uint8 (H, W, 3) or grey (H, W) image.

    Returns:
        ``{"strength": (sy, sx), "offset": (oy, ox), "visible": bool}``: strength is the
        boundary step relative to the neighbouring positions (1.0 = no grid), offset the
        position (0-7) of the last pixel before each block boundary (7 = aligned with the image
        corner), ``visible`` whether both axes show a clear, 8-periodic (not 4- or 2-periodic)
        grid.
    """
    grey = array.astype(np.float32)
    if grey.ndim == 3:
        grey = grey @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    height, width = grey.shape
    if min(height, width) < 32:
        return {"strength": (1.0, 1.0), "offset": (7, 7), "visible": False}
    grey = grey[:_GRID_SIDE, :_GRID_SIDE]  # the top-left corner: block offsets are unchanged
    strengths, offsets, clear = [], [], []
    for axis in (0, 1):
        diff = np.abs(np.diff(grey, axis=axis)).mean(axis=1 - axis)
        n = len(diff) // 8 * 8
        profile = diff[:n].reshape(-1, 8).mean(axis=0)
        best = int(np.argmax(profile))
        around = (profile[(best - 1) % 8] + profile[(best + 1) % 8]) / 2
        strength = float(profile[best] / max(around, 1e-6))
        half = float(profile[best] / max(profile[(best + 4) % 8], 1e-6))
        strengths.append(round(strength, 3))
        offsets.append(best)
        clear.append(strength > 1.10 and half > 1.10)
    return {"strength": tuple(strengths), "offset": tuple(offsets), "visible": all(clear)}


def _processing_item(img: Image.Image | None, exif: _Exif, arr: np.ndarray | None) -> EvidenceItem:
    if img is None:
        return _not_checked("processing", "the file could not be opened as an image")
    hints: list[str] = []
    checks: dict[str, Any] = {}
    width, height = img.size
    fields = _exif_fields(exif)
    camera = has_camera_exif(fields)
    checks["multiple_of_8"] = width % 8 == 0 and height % 8 == 0
    checks["multiple_of_16"] = width % 16 == 0 and height % 16 == 0
    exif_w, exif_h = fields.get("pixel_x_dimension"), fields.get("pixel_y_dimension")
    if isinstance(exif_w, int) and isinstance(exif_h, int) and exif_w > 0 and exif_h > 0:
        match = (exif_w, exif_h) in ((width, height), (height, width))
        checks["exif_dimensions"] = {"exif": [exif_w, exif_h], "actual": [width, height]}
        checks["exif_dimensions_match"] = match
        if not match:
            hints.append(
                f"EXIF says {exif_w}x{exif_h} px but the image is {width}x{height} px: it was "
                "resized or cropped after the EXIF was written"
            )
    thumb = _exif_thumbnail_size(exif)
    if thumb is not None:
        thumb_aspect = thumb[0] / thumb[1]
        aspects = (width / height, height / width)
        close = min(abs(np.log(thumb_aspect / a)) for a in aspects) < 0.06
        checks["exif_thumbnail"] = {"size": list(thumb), "aspect_matches": bool(close)}
        if not close:
            hints.append(
                f"the EXIF thumbnail ({thumb[0]}x{thumb[1]}) has a different shape from the "
                "image: it was probably cropped after the thumbnail was made"
            )
    if camera and img.format == "JPEG" and not checks["multiple_of_8"]:
        hints.append(
            "camera EXIF but dimensions are not multiples of 8: probably cropped or resized "
            "after capture (weak hint)"
        )
    if arr is not None:
        grid = jpeg_grid(arr)
        checks["jpeg_grid"] = grid
        if grid["visible"] and img.format in ("PNG", "BMP", "TIFF", "GIF"):
            hints.append(
                f"8x8 JPEG block traces in a lossless {img.format}: it was a JPEG before "
                "(re-encoded)"
            )
        elif grid["visible"] and img.format == "JPEG" and tuple(grid["offset"]) != (7, 7):
            hints.append(
                "a JPEG block grid not aligned with the image corner: cropped or shifted after "
                "an earlier JPEG save, then saved again (double compression)"
            )
    software = str(fields.get("software", ""))
    if software and _EDITOR_NAMES.search(software):
        hints.append(f"EXIF Software names an editor: {_truncate(software, 80)}")
    details: dict[str, Any] = {"hints": hints, "checks": checks, "cannot_tell": list(CANNOT_TELL)}
    if not hints:
        return _item("processing", False, details, "no resizing or re-encoding hint", "neutral")
    summary = hints[0] + (f" (+{len(hints) - 1} more)" if len(hints) > 1 else "")
    return _item("processing", True, details, summary, "processed")
