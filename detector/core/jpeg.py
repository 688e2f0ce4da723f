"""The JPEG quality a file was saved at, read from its quantisation tables.

`estimate_jpeg_quality` inverts the IJG (libjpeg) scaling of the tables: exact for files written
by libjpeg-based encoders (Pillow, OpenCV, most apps), the nearest quality otherwise. The domain
warnings use it to call compression heavy; the evidence panel shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from detector.core.errors import DetectorError
from detector.core.images import open_image


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
        img = source if isinstance(source, Image.Image) else open_image(bytes(source))
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
