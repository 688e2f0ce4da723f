"""A corpus of hostile and odd inputs, generated in memory (nothing is downloaded or committed).

Each case names the file, its bytes, and what must happen: ``"ok"`` (a correct prediction) or the
`ImageLoadError.code` it must raise.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from detector.core.images import HEIF_SUPPORTED


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: str  # "ok" or an ImageLoadError code


def _img(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header declares a huge image."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + _png_chunk(b"IEND", b"")
    )


def corpus() -> list[Case]:
    """Every case of the hostile-input corpus."""
    rgb = Image.fromarray(_img())
    jpeg = _save(rgb, "JPEG", quality=90)
    png = _save(rgb, "PNG")
    cases = [
        Case("zero_bytes.jpg", b"", "empty_file"),
        Case("truncated.jpg", jpeg[: len(jpeg) // 3], "truncated_file"),
        Case("truncated.png", png[: len(png) // 2], "truncated_file"),
        Case("text_renamed.jpg", b"Just some notes, not a picture.\n" * 20, "not_an_image"),
        Case(
            "pdf_renamed.jpg",
            b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n",
            "not_an_image",
        ),
        Case(
            "drawing.svg",
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" '
            b'width="64" height="64"><rect width="64" height="64"/></svg>',
            "not_an_image",
        ),
        Case("page.html", b"<!DOCTYPE html><html><script>alert(1)</script></html>", "not_an_image"),
        Case("bomb.png", png_bomb(), "too_many_pixels"),
        Case("one_pixel.png", _save(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), "too_small"),
        Case(
            "strip.png",
            _save(Image.new("RGB", (20_000, 100), (120, 80, 40)), "PNG"),
            "bad_aspect_ratio",
        ),
        Case(
            "sixteen_bit.png",
            _save(Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16), "PNG"),
            "ok",
        ),
        Case("grey.png", _save(rgb.convert("L"), "PNG"), "ok"),
        Case("cmyk.jpg", _save(rgb.convert("CMYK"), "JPEG", quality=90), "ok"),
        Case("palette_transparent.png", _palette_transparent(), "ok"),
        Case("rgba.png", _save(rgb.convert("RGBA"), "PNG"), "ok"),
        Case("animated.gif", _animated("GIF"), "ok"),
        Case("animated.webp", _animated("WEBP"), "ok"),
        Case("exif_rotated.jpg", _exif_rotated(), "ok"),
        Case("huge_exif.jpg", _huge_exif(), "ok"),
        Case("image.tiff", _save(rgb, "TIFF"), "ok"),
        Case("image.bmp", _save(rgb, "BMP"), "ok"),
        Case("image.webp", _save(rgb, "WEBP", quality=90), "ok"),
        Case("photo.heic", _heic(), "ok" if HEIF_SUPPORTED else "unsupported_format"),
    ]
    return cases


def _palette_transparent() -> bytes:
    image = Image.fromarray(_img()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _save(image, "PNG", transparency=0)


def _animated(fmt: str) -> bytes:
    frames = [Image.fromarray(_img(seed=s)) for s in range(3)]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=80, loop=0)


def _exif_rotated() -> bytes:
    image = Image.fromarray(_img(48, 96))
    exif = image.getexif()
    exif[0x0112] = 8
    return _save(image, "JPEG", exif=exif, quality=90)


def _huge_exif() -> bytes:
    image = Image.fromarray(_img())
    exif = image.getexif()
    exif[0x010E] = "x" * 60_000  # ImageDescription near the 64 KB APP1 limit
    return _save(image, "JPEG", exif=exif, quality=90)


def _heic() -> bytes:
    if HEIF_SUPPORTED:
        return _save(Image.fromarray(_img()), "HEIF")
    # The start of an ISO-BMFF HEIC file: enough for format sniffing, not a decodable image.
    return struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic" + b"\x00" * 64
