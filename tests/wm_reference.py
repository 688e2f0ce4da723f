"""Test helpers for detector.evidence.watermark: photo-like images, the dwtDct mark put into them.

The marks are embedded by the ``invisible-watermark`` package (0.2.0) when its files are
installed for development (``bash run.sh setup`` puts them, without their dependencies, in
``.venv/invisible-watermark-0.2.0``), and otherwise by `embed_dwtdct`, a numpy copy of the
package's ``EmbedMaxDct.encode`` that the dev-only tests check against the package bit for bit.

The package's ``__init__`` imports ``torch`` (for its rivaGan method), so only its
``maxDct.py`` (numpy, OpenCV and PyWavelets) is loaded, straight from its file.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

from detector.evidence.watermark import BLOCK, SD_V1, SDXL, STEP

#: Where ``run.sh`` installs the package for the dev tests (outside site-packages, so that
#: ``pip check`` does not see a package whose declared dependencies are left out on purpose).
LIBRARY_DIR = Path(sys.prefix) / "invisible-watermark-0.2.0"

_C = np.float64(0.7071067811865476)  # PyWavelets' Haar tap


@cache
def library_maxdct() -> ModuleType | None:
    """The package's ``imwatermark/maxDct.py`` as a module, or None when not installed.

    Looked for in ``$IMWATERMARK_DIR``, then `LIBRARY_DIR`, then wherever ``imwatermark``
    is importable from (found without importing it).
    """
    candidates = [os.environ.get("IMWATERMARK_DIR", ""), str(LIBRARY_DIR)]
    spec = importlib.util.find_spec("imwatermark")
    if spec is not None and spec.submodule_search_locations:
        candidates += [str(Path(p).parent) for p in spec.submodule_search_locations]
    try:
        import pywt  # noqa: F401  (maxDct.py needs it)
    except ImportError:
        return None
    for folder in filter(None, candidates):
        path = Path(folder) / "imwatermark" / "maxDct.py"
        if path.is_file():
            module_spec = importlib.util.spec_from_file_location("_imwatermark_maxdct", path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module
    return None


def photo(height: int, width: int, seed: int = 0, tint: Sequence[float] = (1, 1, 1)) -> np.ndarray:
    """A deterministic photo-like RGB uint8 image: smooth shading plus texture at 4 scales.

    ``tint`` scales the red, green and blue channels (e.g. ``(1, 0.85, 0.7)`` for a warm
    picture, ``(0.7, 0.85, 1)`` for a cool one).
    """
    rng = np.random.default_rng(seed)
    mix = np.array([[1.0, 0.8, 0.6], [0.8, 1.0, 0.8], [0.6, 0.8, 1.0]], dtype=np.float32)
    img = np.zeros((height, width, 3), dtype=np.float32)
    for step, amplitude in ((64, 36.0), (16, 18.0), (4, 9.0), (1, 4.0)):
        # Noise on a grid ``step`` pixels apart, smoothly enlarged: texture at that scale.
        small = rng.standard_normal((height // step + 2, width // step + 2, 3)).astype(np.float32)
        noise = cv2.resize(small, None, fx=step, fy=step, interpolation=cv2.INTER_CUBIC)
        noise = cv2.GaussianBlur(noise[:height, :width], (0, 0), 0.6)
        noise /= noise.std() + 1e-9
        img += amplitude * (noise @ mix)
    ramp = np.linspace(70.0, 170.0, height, dtype=np.float32)[:, None, None]
    img = (img + ramp) * np.asarray(tint, dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _haar_dwt2(x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``pywt.dwt2(x, "haar")`` for even sides: rows first, then columns (same float ops)."""
    c = x.dtype.type(_C) if x.dtype == np.float32 else _C
    lo = c * x[1::2, :] + c * x[0::2, :]
    hi = -c * x[1::2, :] + c * x[0::2, :]
    aa = c * lo[:, 1::2] + c * lo[:, 0::2]
    ad = -c * lo[:, 1::2] + c * lo[:, 0::2]
    da = c * hi[:, 1::2] + c * hi[:, 0::2]
    dd = -c * hi[:, 1::2] + c * hi[:, 0::2]
    return aa, (da, ad, dd)


def _idwt_axis(a: np.ndarray, d: np.ndarray, axis: int) -> np.ndarray:
    c = a.dtype.type(_C) if a.dtype == np.float32 else _C
    even = c * a + c * d
    odd = c * a + -c * d
    shape = list(a.shape)
    shape[axis] *= 2
    out = np.empty(shape, dtype=a.dtype)
    index = [slice(None)] * a.ndim
    index[axis] = slice(0, None, 2)
    out[tuple(index)] = even
    index[axis] = slice(1, None, 2)
    out[tuple(index)] = odd
    return out


def _haar_idwt2(aa: np.ndarray, details: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """``pywt.idwt2((aa, (h, v, d)), "haar")``: columns first, then rows."""
    da, ad, dd = details
    lo = _idwt_axis(aa, ad, axis=1)
    hi = _idwt_axis(da, dd, axis=1)
    return _idwt_axis(lo, hi, axis=0)


def embed_dwtdct(bgr: np.ndarray, bits: Sequence[int]) -> np.ndarray:
    """The package's ``EmbedMaxDct(bits, len(bits)).encode(bgr)``, in numpy.

    ``bgr`` is H x W x 3, uint8 or float32 in [0, 255] (both occur: SD v1's script passes
    uint8, SDXL's pipelines float32); the result has the same dtype, with the package's quirks
    kept: the uint8 path truncates (not rounds) the U plane, and the horizontal and vertical
    Haar details are swapped on the way back.
    """
    rows, cols = bgr.shape[0] // 4 * 4, bgr.shape[1] // 4 * 4
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)
    plane = yuv[:rows, :cols, 1]
    x = plane if plane.dtype == np.float32 else plane.astype(np.float64)
    ca, (h, v, d) = _haar_dwt2(x)
    nr, nc = ca.shape[0] // BLOCK, ca.shape[1] // BLOCK
    blocks = (
        ca[: nr * BLOCK, : nc * BLOCK]
        .reshape(nr, BLOCK, nc, BLOCK)
        .transpose(0, 2, 1, 3)
        .reshape(nr * nc, BLOCK * BLOCK)
    )
    pos = np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1
    val = np.take_along_axis(blocks, pos[:, None], axis=1)[:, 0]
    wanted = np.resize(np.asarray(bits, dtype=np.float64), nr * nc)
    magnitude = (np.abs(val) // STEP + 0.25 + 0.5 * wanted) * STEP
    np.put_along_axis(blocks, pos[:, None], np.where(val >= 0, magnitude, -magnitude)[:, None], 1)
    ca[: nr * BLOCK, : nc * BLOCK] = (
        blocks.reshape(nr, nc, BLOCK, BLOCK).transpose(0, 2, 1, 3).reshape(nr * BLOCK, nc * BLOCK)
    )
    # The package writes idwt2((ca, (v, h, d))): details swapped; a float -> uint8 cast truncates.
    yuv[:rows, :cols, 1] = _haar_idwt2(ca, (v, h, d))
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)


def _encode(bgr: np.ndarray, bits: Sequence[int], use_library: bool | None) -> np.ndarray:
    module = library_maxdct() if use_library is not False else None
    if use_library and module is None:
        raise RuntimeError("invisible-watermark 0.2.0 is not installed")
    if module is None:
        return embed_dwtdct(bgr, bits)
    return module.EmbedMaxDct(list(bits), wmLen=len(bits)).encode(bgr.copy())


def mark_sd_v1(rgb: np.ndarray, use_library: bool | None = None) -> np.ndarray:
    """SD v1's ``put_watermark``: uint8 RGB -> BGR, ``encode(..., "dwtDct")``, back to RGB.

    ``use_library``: None uses the package when installed, True requires it, False never.
    """
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    return np.ascontiguousarray(_encode(bgr, SD_V1.bits, use_library)[:, :, ::-1])


def mark_sdxl(
    rgb: np.ndarray, use_library: bool | None = None, bgr_order: bool = True
) -> np.ndarray:
    """SDXL's watermarker: float32 in [0, 255] through ``encode``, then clamp and round to uint8.

    ``bgr_order=True`` is Stability's generative-models and diffusers from 0.27 on (channels
    flipped to BGR first); False is diffusers before 0.27, which passed RGB as if it were BGR.
    """
    image = rgb.astype(np.float32)
    if bgr_order:
        image = np.ascontiguousarray(image[:, :, ::-1])
    out = _encode(image, SDXL.bits, use_library)
    if bgr_order:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(np.round(np.clip(out, 0, 255)).astype(np.uint8))
