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
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, JpegImagePlugin

from detector.core.containers import _check_container, _count_frames
from detector.core.errors import ImageLoadError
from detector.core.exif import _Exif, _exif_fields, _read_exif, _truncate, has_camera_exif
from detector.core.images import (
    ImageInfo,
    _orientation,
    _read_bytes,
    _to_rgb,
    decode_image,
    open_image,
)
from detector.core.jpeg import estimate_jpeg_quality
from detector.evidence.c2pa_reader import (
    IPTC_DST_PREFIX as IPTC_DST_PREFIX,  # re-exported
)
from detector.evidence.c2pa_reader import (
    load_c2pa,
    manifest_details,
    manifest_summary,
    read_c2pa,
)
from detector.evidence.embedded import _dst_item, _text_chunks, _xmp_packets
from detector.evidence.evidence_watermark import watermark_finding
from detector.evidence.generation import _AI_NAMES, _EDITOR_NAMES, _generation_item
from detector.evidence.report import (
    _DOES_NOT_PROVE,
    _PROVES,
    _TITLES,
    AI_SOURCE_TYPES,
    C2PA_TIME_BUDGET,
    CANNOT_TELL,
    CAPTURE_SOURCE_TYPES,
    EVIDENCE_TIME_BUDGET,
    TIME_BUDGET_REASON,
    EvidenceItem,
    EvidenceReport,
    Indication,
    _Deadline,
    _item,
    _not_checked,
)

# --------------------------------------------------------------------------- entry point


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
        img = open_image(data)
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
