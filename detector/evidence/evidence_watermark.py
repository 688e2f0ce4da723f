"""The invisible-watermark item of the evidence board: Stable Diffusion's public marks.

`watermark_finding` runs `detector.evidence.watermark.detect_watermarks` on the pixels as the file
stores them, at full resolution: every bit of a mark lives in fixed 8x8 pixel blocks, so an
image reduced while decoding (longer side above `detector.core.images.MAX_DECODE_SIDE`) cannot carry
a readable mark and is reported as not checked, and an image turned by its EXIF orientation is
turned back first. Each mark's bit errors and chance p-value go into the details.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.images import MAX_DECODE_SIDE, ImageInfo
from detector.evidence.watermark import (
    GREY_REASON,
    MATCH_ALPHA,
    MATCH_MEANING,
    SDXL,
    SDXL_NOTE,
    WATERMARK_CAVEAT,
    WatermarkMatch,
    detect_watermarks,
)

#: Reason given when the pixels were reduced while decoding.
REDUCED_REASON = (
    f"not checked: image reduced (longer side above {MAX_DECODE_SIDE} px; a resized image "
    "cannot carry a readable mark)"
)
#: What a match proves, and what neither a match nor its absence proves.
PROVES = MATCH_MEANING
DOES_NOT_PROVE = WATERMARK_CAVEAT + " " + SDXL_NOTE

#: Pillow modes without colour: the marks live in a colour channel.
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

#: Array operations that undo each EXIF orientation `detector.core.images` applied.
_UNDO_ORIENTATION = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, -1),
}


@dataclass(frozen=True)
class WatermarkFinding:
    """The watermark item's content, before it becomes an `EvidenceItem`.

    Attributes:
        found: A known mark matched.
        summary: One line for the board.
        indicates: ``ai_generated`` on a match, ``neutral`` when checked and absent,
            ``not_checked`` otherwise.
        details: Per mark (by key) its bit errors, bits, p-value and verdict, plus
            ``match_alpha`` and, when a mark matched, ``marks_found``.
    """

    found: bool
    summary: str
    indicates: str
    details: dict[str, Any] = field(default_factory=dict)


def watermark_finding(
    pixels: np.ndarray | None,
    info: ImageInfo | None,
    *,
    mode: str | None = None,
    orientation: int = 1,
) -> WatermarkFinding:
    """Look for Stable Diffusion's public marks in decoded pixels.

    Args:
        pixels: The RGB uint8 image as `detector.core.images.decode_image` gave it, or None when it
            could not be decoded.
        info: Its `ImageInfo` (``downscaled`` images are not checked).
        mode: The file's Pillow mode; greyscale modes are not checked.
        orientation: The EXIF orientation (1-8) the decoder applied, undone before decoding.

    Returns:
        A `WatermarkFinding`.
    """
    if pixels is None or info is None:
        return _not_checked("not checked: the pixels could not be decoded")
    if info.downscaled:
        return _not_checked(REDUCED_REASON)
    if mode in _GREY_MODES:
        return _not_checked(GREY_REASON)
    stored = _UNDO_ORIENTATION.get(orientation, lambda a: a)(pixels)
    return finding_from_matches(detect_watermarks(np.ascontiguousarray(stored)))


def finding_from_matches(matches: list[WatermarkMatch]) -> WatermarkFinding:
    """Summarise `detect_watermarks` results as the board's watermark item."""
    details: dict[str, Any] = {m.mark: _match_details(m) for m in matches}
    details["match_alpha"] = MATCH_ALPHA
    found = [m for m in matches if m.matched]
    if found:
        details["marks_found"] = [m.mark for m in found]
        best = min(found, key=lambda m: m.p_value if m.p_value is not None else 1.0)
        summary = "; ".join(m.summary() for m in found)
        if best.mark == SDXL.key:
            details["note"] = SDXL_NOTE
        return WatermarkFinding(True, summary, "ai_generated", details)
    checked = [m for m in matches if m.checked]
    if not checked:
        reason = matches[0].reason if matches else "not checked"
        return _not_checked(reason, details)
    summary = "no known mark: " + "; ".join(m.summary() for m in checked)
    return WatermarkFinding(False, summary, "neutral", details)


def _match_details(match: WatermarkMatch) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": match.name,
        "matched": match.matched,
        "bit_errors": match.bit_errors,
        "n_bits": match.n_bits,
        "p_value": None if match.p_value is None else float(f"{match.p_value:.3g}"),
    }
    if match.repeat_period:
        out["repeat_period"] = match.repeat_period
    if match.reason:
        out["reason"] = match.reason
    return out


def _not_checked(reason: str, details: dict[str, Any] | None = None) -> WatermarkFinding:
    return WatermarkFinding(
        False, reason, "not_checked", {"status": "not_checked", "reason": reason, **(details or {})}
    )
