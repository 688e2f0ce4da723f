"""Safe image decoding: anything Pillow reads becomes an RGB uint8 array, or a named error.

Nothing here writes to disk or trusts a file name: sources are read as bytes and the format is
decided by the bytes themselves, from an allow-list.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from detector.errors import ImageLoadError

#: Formats accepted by `load_image`; everything else is refused before decoding.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
#: Largest accepted file, in bytes.
MAX_FILE_BYTES = 50 * 1024 * 1024
#: Largest accepted image, in pixels (width x height). Anything larger is treated as a bomb.
MAX_PIXELS = 40_000_000
#: Smallest accepted side, in pixels.
MIN_SIDE = 16
#: Largest accepted ratio of the long side to the short side.
MAX_ASPECT = 30.0

ImageFile.LOAD_TRUNCATED_IMAGES = False

try:  # Optional HEIC/HEIF support when pillow-heif is installed.
    from pillow_heif import register_heif_opener

    register_heif_opener()
    ALLOWED_FORMATS = (*ALLOWED_FORMATS, "HEIF")
    HEIF_SUPPORTED = True
except ImportError:  # pragma: no cover - depends on the environment
    HEIF_SUPPORTED = False

ImageSource = str | Path | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray


@dataclass(frozen=True)
class ImageInfo:
    """What was learnt about a decoded image, for domain warnings and evidence panels."""

    format: str | None
    width: int
    height: int
    mode: str
    n_frames: int
    file_bytes: int | None


def _read_bytes(source: str | Path | bytes | bytearray | memoryview | BinaryIO) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(f"file not found: {path.name}", code="file_not_found")
        if not path.is_file():
            raise ImageLoadError(f"not a regular file: {path.name}", code="not_a_file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageLoadError(
                f"file too large: {size / 1e6:.1f} MB (limit {MAX_FILE_BYTES / 1e6:.0f} MB)",
                code="file_too_large",
            )
        data = path.read_bytes()
    elif hasattr(source, "read"):
        data = source.read(MAX_FILE_BYTES + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise ImageLoadError("file object must be opened in binary mode", code="bad_source")
        data = bytes(data)
    else:
        raise ImageLoadError(
            f"cannot read an image from a {type(source).__name__}", code="bad_source"
        )
    if len(data) == 0:
        raise ImageLoadError("empty file (0 bytes)", code="empty_file")
    if len(data) > MAX_FILE_BYTES:
        raise ImageLoadError(
            f"file too large: over {MAX_FILE_BYTES / 1e6:.0f} MB", code="file_too_large"
        )
    return data


def read_source_bytes(source: ImageSource) -> bytes | None:
    """The raw bytes of a path, bytes-like or file source; None for decoded images and arrays.

    Raises:
        ImageLoadError: for missing, empty or oversized files.
    """
    if isinstance(source, (np.ndarray, Image.Image)):
        return None
    return _read_bytes(source)


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"invalid image size {width}x{height}", code="bad_size")
    if width * height > MAX_PIXELS:
        raise ImageLoadError(
            f"image too large: {width}x{height} px is over the {MAX_PIXELS / 1e6:.0f} MP limit "
            "(possible decompression bomb)",
            code="too_many_pixels",
        )
    if min(width, height) < MIN_SIDE:
        raise ImageLoadError(
            f"image too small: {width}x{height} px (need at least {MIN_SIDE} px per side)",
            code="too_small",
        )
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageLoadError(
            f"absurd aspect ratio: {width}x{height} px (over {MAX_ASPECT:.0f}:1)",
            code="bad_aspect_ratio",
        )


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to RGB uint8, compositing transparency over white."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "I":
            arr = arr / 257.0 if arr.max(initial=0) > 255 else arr
        else:  # float images: assume 0-1 if they look like it, else 0-255
            arr = arr * 255.0 if arr.max(initial=0) <= 1.0 else arr
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode == "P":
        img = img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def decode_image(source: ImageSource) -> tuple[np.ndarray, ImageInfo]:
    """Decode an image and describe it.

    Args:
        source: A path, raw bytes, a binary file object, a Pillow image or an array
            (H x W, H x W x 1, H x W x 3 or H x W x 4; uint8, or float in [0, 1]).

    Returns:
        The image as a C-contiguous ``uint8`` array of shape (H, W, 3), and its `ImageInfo`.

    Raises:
        ImageLoadError: With a ``code`` naming the problem: ``empty_file``, ``file_too_large``,
            ``not_an_image``, ``unsupported_format``, ``truncated_file``, ``too_many_pixels``,
            ``too_small``, ``bad_aspect_ratio``, ``bad_size``, ``bad_source``...
    """
    if isinstance(source, np.ndarray):
        arr = _array_to_rgb(source)
        _check_size(arr.shape[1], arr.shape[0])
        return arr, ImageInfo(None, arr.shape[1], arr.shape[0], "RGB", 1, None)
    if isinstance(source, Image.Image):
        _check_size(*source.size)
        arr = _to_rgb(source)
        info = ImageInfo(source.format, source.size[0], source.size[1], source.mode, 1, None)
        return arr, info

    data = _read_bytes(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except UnidentifiedImageError:
        raise ImageLoadError(_unidentified_message(data), code=_unidentified_code(data)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(
            "image declares too many pixels (possible decompression bomb)", code="too_many_pixels"
        ) from None
    except Exception as exc:  # untrusted bytes: any decoder failure is the file's fault
        if "runcated" in str(exc) or isinstance(exc, EOFError):
            raise ImageLoadError("truncated image file", code="truncated_file") from None
        raise ImageLoadError(
            f"unreadable image header ({type(exc).__name__})", code="corrupt_file"
        ) from None

    with img:
        width, height = img.size
        _check_size(width, height)
        fmt, mode = img.format, img.mode
        n_frames = 1
        try:
            n_frames = int(getattr(img, "n_frames", 1) or 1)
            if n_frames > 1:
                img.seek(0)
            img.load()
            try:
                oriented = ImageOps.exif_transpose(img)
            except Exception:  # a broken EXIF block must not make the pixels unusable
                oriented = img
            if oriented is None:
                oriented = img
            _check_size(*oriented.size)
            arr = _to_rgb(oriented)
        except ImageLoadError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageLoadError(
                "image declares too many pixels (possible decompression bomb)",
                code="too_many_pixels",
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError) as exc:
            text = str(exc)
            if "truncated" in text or "broken data stream" in text or isinstance(exc, EOFError):
                raise ImageLoadError(
                    f"truncated or damaged {fmt or 'image'} file", code="truncated_file"
                ) from None
            raise ImageLoadError(
                f"damaged {fmt or 'image'} file: {text[:200]}", code="corrupt_file"
            ) from None
        except MemoryError:
            raise ImageLoadError("image too large to decode", code="too_many_pixels") from None
        except Exception as exc:  # untrusted bytes: any decoder failure is the file's fault
            raise ImageLoadError(
                f"damaged {fmt or 'image'} file ({type(exc).__name__})", code="corrupt_file"
            ) from None
    info = ImageInfo(fmt, arr.shape[1], arr.shape[0], mode, n_frames, len(data))
    return arr, info


def decode_file(source: ImageSource) -> tuple[np.ndarray, ImageInfo, bytes | None]:
    """Read a source once and decode it, keeping the file's bytes (for warnings and evidence).

    Returns:
        The RGB array, its `ImageInfo`, and the bytes (None for arrays and Pillow images).

    Raises:
        ImageLoadError: as `decode_image`.
    """
    data = read_source_bytes(source)
    array, info = decode_image(data if data is not None else source)
    return array, info, data


def load_image(source: ImageSource) -> np.ndarray:
    """Decode an image into an RGB ``uint8`` array of shape (H, W, 3).

    See `decode_image` for accepted sources and the errors raised.
    """
    return decode_image(source)[0]


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageLoadError(f"array of shape {arr.shape} is not an image", code="bad_source")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise ImageLoadError("array holds non-finite values", code="bad_source")
        scale = 255.0 if float(np.max(arr, initial=0)) <= 1.0 else 1.0
        arr = np.clip(np.rint(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[..., 3:4].astype(np.float32) / 255.0
        rgb = arr[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        arr = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"<svg", "an SVG drawing"),
    (b"<?xml", "an XML/SVG document"),
    (b"<!doctype html", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x00\x00\x00\x18ftypheic", "a HEIC image"),
    (b"\x00\x00\x00\x1cftypheic", "a HEIC image"),
)


def _sniff(data: bytes) -> str | None:
    head = data[:256].lstrip().lower()
    for signature, name in _SIGNATURES:
        if head.startswith(signature.lower()):
            return name
    if b"ftypheic" in data[:32] or b"ftypmif1" in data[:32] or b"ftypheix" in data[:32]:
        return "a HEIC image"
    if b"ftypavif" in data[:32]:
        return "an AVIF image"
    return None


def _unidentified_code(data: bytes) -> str:
    kind = _sniff(data)
    if kind in ("a HEIC image", "an AVIF image"):
        return "unsupported_format"
    return "not_an_image"


def _unidentified_message(data: bytes) -> str:
    kind = _sniff(data)
    if kind in ("a HEIC image", "an AVIF image"):
        return f"unsupported format: {kind} (install pillow-heif to read HEIC)"
    allowed = ", ".join(ALLOWED_FORMATS)
    if kind:
        return f"not an image: the file is {kind}; supported formats: {allowed}"
    return f"not an image, or an unsupported format; supported formats: {allowed}"
