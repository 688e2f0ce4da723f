"""The camera fields of an image's EXIF block, read defensively (never its GPS values).

EXIF blocks come from whoever made the file: every value is cleaned and truncated
(`MAX_VALUE_CHARS`), and a broken block or IFD gives an error note, never an exception.
`exif_summary` and `has_camera_exif` serve the domain warnings; the evidence report reads the
same fields through `_read_exif`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import ExifTags, Image

from detector.core.errors import DetectorError
from detector.core.images import open_image

#: Longest metadata value kept in a report, in characters (longer values are cut).
MAX_VALUE_CHARS = 400


def _truncate(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    value = value.replace("\x00", "")
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… (+{len(value) - limit} characters)"


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
        img = source if isinstance(source, Image.Image) else open_image(bytes(source))
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
