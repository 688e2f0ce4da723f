"""Safe image decoding: anything Pillow reads becomes an RGB uint8 array, or a named error.

Nothing here writes to disk or trusts a file name: sources are read as bytes and the format is
decided by the bytes themselves, from an allow-list.

Work is bounded before it starts: the container is walked cheaply (in linear time) before Pillow
parses it, so floods of JPEG segments, PNG chunks or GIF blocks, and progressive JPEGs with
thousands of scans, are refused with a named error instead of costing minutes of CPU; frames are
counted only up to `MAX_COUNTED_FRAMES`; and images whose long side exceeds `MAX_DECODE_SIDE` are
reduced while decoding, before any colour conversion, so memory stays bounded.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from detector.core.containers import MAX_JPEG_SCANS, _check_container, _count_frames
from detector.core.errors import ImageLoadError

#: Formats accepted by `load_image`; everything else is refused before decoding.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
#: File-name extensions of those formats (lower case, no dot): the one list that folder scans in
#: training, upload names and the apps' file pickers derive theirs from. The format itself is
#: always decided by the bytes, never by the name.
IMAGE_EXTENSIONS: tuple[str, ...] = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")
#: Extensions of HEIC/HEIF files, which decode when pillow-heif is installed (`HEIF_SUPPORTED`).
HEIF_EXTENSIONS: tuple[str, ...] = ("heic", "heif")
#: Largest accepted file, in bytes.
MAX_FILE_BYTES = 50 * 1024 * 1024
#: Largest accepted image, in pixels (width x height). Anything larger is treated as a bomb.
MAX_PIXELS = 40_000_000
#: Smallest accepted side, in pixels.
MIN_SIDE = 16
#: Largest accepted ratio of the long side to the short side.
MAX_ASPECT = 30.0
#: Longest side of a decoded image, in pixels. Larger images are reduced while decoding (JPEG
#: DCT scaling, then area averaging, aspect ratio kept) before any colour conversion, so a
#: 40 MP upload never becomes several full-size copies in memory. The shipped models crop a
#: 128-224 px patch at the image's own resolution, so for an image above this size they see
#: resampled pixels rather than the original ones (a small change); images up to this size
#: decode exactly as before. Pass ``max_side=None`` for the native resolution.
MAX_DECODE_SIDE = 4096

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
    #: (width, height) of the image at its own resolution (after EXIF rotation) when the array
    #: is smaller: reduced to `MAX_DECODE_SIDE`, or cropped by `load_centre_crop`; else None.
    original_size: tuple[int, int] | None = None
    #: True when counting stopped at `MAX_COUNTED_FRAMES`: the file has at least that many.
    frames_capped: bool = False

    @property
    def downscaled(self) -> bool:
        """Whether the decoded array is smaller than the image stored in the file."""
        return self.original_size is not None


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
        with path.open("rb") as f:  # at most one byte past the limit, whatever st_size said
            data = f.read(MAX_FILE_BYTES + 1)
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


def decode_image(
    source: ImageSource, *, max_side: int | None = MAX_DECODE_SIDE
) -> tuple[np.ndarray, ImageInfo]:
    """Decode an image and describe it.

    Args:
        source: A path, raw bytes, a binary file object, a Pillow image or an array
            (H x W, H x W x 1, H x W x 3 or H x W x 4; uint8, or float in [0, 1]).
        max_side: Files and Pillow images whose long side exceeds this are reduced to it
            (aspect ratio kept; `ImageInfo.original_size` then gives the full size). None
            decodes at full resolution, for views that must see the original pixels. Arrays
            are returned at their own size.

    Returns:
        The image as a C-contiguous ``uint8`` array of shape (H, W, 3), and its `ImageInfo`.

    Raises:
        ImageLoadError: With a ``code`` naming the problem: ``empty_file``, ``file_too_large``,
            ``not_an_image``, ``unsupported_format``, ``truncated_file``, ``too_many_pixels``,
            ``too_small``, ``bad_aspect_ratio``, ``bad_size``, ``bad_source``,
            ``too_many_scans``, ``too_many_segments``, ``metadata_too_large``...
    """
    return _decode(source, max_side, None)


def load_centre_crop(source: ImageSource, side: int) -> np.ndarray:
    """The centre of an image at its own resolution: at most ``side`` x ``side`` pixels.

    For views that must see the original pixels of images larger than `MAX_DECODE_SIDE`
    (a residual spectrum, error level analysis): only the crop is converted to RGB, so memory
    stays bounded whatever the image's size. EXIF orientation is applied, as in `load_image`.

    Raises:
        ImageLoadError: as `decode_image`.
    """
    if side < 1:
        raise ValueError(f"side must be positive, got {side}")
    return _decode(source, None, side)[0]


def _centre_box(size: tuple[int, int], side: int) -> tuple[int, int, int, int]:
    width, height = size
    crop_w, crop_h = min(width, side), min(height, side)
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


def _decode(
    source: ImageSource, max_side: int | None, crop_side: int | None
) -> tuple[np.ndarray, ImageInfo]:
    if isinstance(source, np.ndarray):
        arr = _array_to_rgb(source)
        height, width = arr.shape[:2]
        _check_size(width, height)
        original = None
        if crop_side is not None and max(width, height) > crop_side:
            left, top, right, bottom = _centre_box((width, height), crop_side)
            arr, original = np.ascontiguousarray(arr[top:bottom, left:right]), (width, height)
        return arr, ImageInfo(None, arr.shape[1], arr.shape[0], "RGB", 1, None, original)
    if isinstance(source, Image.Image):
        _check_size(*source.size)
        width, height = source.size
        if crop_side is not None:  # the caller's image: no draft, no EXIF rotation
            arr = _to_rgb(source.crop(_centre_box(source.size, crop_side)))
        elif max_side is not None and max(width, height) > max_side:
            arr = _reduce_to_rgb(source, max_side)
        else:
            arr = _to_rgb(source)
        original = None if arr.shape[:2] == (height, width) else (width, height)
        info = ImageInfo(source.format, arr.shape[1], arr.shape[0], source.mode, 1, None, original)
        return arr, info

    data = _read_bytes(source)
    jpeg = _check_container(data)
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
        n_frames, capped = 1, False
        try:
            if jpeg is not None and fmt in ("JPEG", "MPO"):
                scans = jpeg.scans
                if scans > MAX_JPEG_SCANS:
                    raise ImageLoadError(
                        f"JPEG has {scans} scans (a progressive file has about 10, the limit is "
                        f"{MAX_JPEG_SCANS}); refused: each scan is another pass over the image",
                        code="too_many_scans",
                    )
            n_frames, capped = _count_frames(img, data)
            if n_frames > 1:
                img.seek(0)
            prepared, original = _prepare(img, max_side, crop_side)
            if prepared is not img:
                img.close()  # frees the full-resolution pixels before the colour conversion
            arr = prepared if isinstance(prepared, np.ndarray) else _to_rgb(prepared)
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
    info = ImageInfo(fmt, arr.shape[1], arr.shape[0], mode, n_frames, len(data), original, capped)
    return arr, info


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = frozenset({5, 6, 7, 8})
#: Modes resized as they are; others are converted first (Pillow resizes "1" and palette
#: images by nearest neighbour, and colour spaces such as CMYK are not averaged linearly).
_RESIZABLE_MODES = frozenset(
    {"L", "LA", "La", "RGB", "RGBA", "RGBa", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
)


def _orientation(img: Image.Image) -> int:
    """The EXIF (or XMP) orientation, 1-8; 1 when missing or unreadable."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a broken EXIF block must not make the pixels unusable
        return 1
    return value if value in _TRANSPOSE else 1


def _prepare(
    img: Image.Image, max_side: int | None, crop_side: int | None = None
) -> tuple[Image.Image | np.ndarray, tuple[int, int] | None]:
    """Decode a file's image, reduce it to ``max_side`` (or crop its centre to ``crop_side``)
    and apply its EXIF orientation.

    Returns the oriented image (a Pillow image still to convert, or the RGB array of a reduced
    one) and, when it was reduced or cropped, the oriented full-resolution size (else None).
    Images within ``max_side`` take the path they always took, so their pixels do not change.
    """
    width, height = img.size
    reduce = crop_side is None and max_side is not None and max(width, height) > max_side
    if reduce and img.format in ("JPEG", "MPO"):
        scale = max_side / max(width, height)  # libjpeg scales by 1/2, 1/4 or 1/8 while decoding
        img.draft(img.mode, (math.ceil(width * scale), math.ceil(height * scale)))
    img.load()
    orientation = _orientation(img)
    full = (height, width) if orientation in _SWAPS_SIDES else (width, height)
    _check_size(*full)
    if reduce:
        arr = _reduce_to_rgb(img, max_side, orientation)
        return arr, (full if arr.shape[1::-1] != full else None)
    prepared = img
    if crop_side is not None:  # a centred box stays centred (to a pixel) under any rotation
        prepared = img.crop(_centre_box(img.size, crop_side))
    if orientation != 1:
        prepared = prepared.transpose(_TRANSPOSE[orientation])
    return prepared, (None if prepared.size == full else full)


#: Output rows made at a time when reducing a large image: each step crops, converts and
#: resamples only the source rows those need, so no full-size copy is made besides the
#: decoded image itself.
_STRIP_ROWS = 256
#: The EXIF orientations as array operations (the same results as `Image.transpose`).
_ORIENT_ARRAY = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _reduce_to_rgb(img: Image.Image, max_side: int, orientation: int = 1) -> np.ndarray:
    """``img`` reduced so its long side is ``max_side`` (aspect ratio kept), oriented, as RGB.

    Area averaging (a box filter, alpha-premultiplied for transparent modes): it adds no
    ringing, and like the "area" interpolation of the model recipes every source pixel counts.
    The result is built a strip of rows at a time, converting only each strip's source rows.
    """
    width, height = img.size
    scale = max_side / max(width, height)
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    if img.mode in ("I", "F"):  # their grey scaling depends on the whole image's range
        arr = _to_rgb(img.resize((out_w, out_h), Image.Resampling.BOX))
    else:
        arr = np.empty((out_h, out_w, 3), np.uint8)
        step = height / out_h
        for first in range(0, out_h, _STRIP_ROWS):
            last = min(out_h, first + _STRIP_ROWS)
            y0, y1 = first * step, last * step
            top, bottom = int(y0), min(height, math.ceil(y1))
            strip = _resizable(img.crop((0, top, width, bottom)))
            part = strip.resize(
                (out_w, last - first), Image.Resampling.BOX, box=(0, y0 - top, width, y1 - top)
            )
            arr[first:last] = _to_rgb(part)
    if orientation in _ORIENT_ARRAY:
        arr = np.ascontiguousarray(_ORIENT_ARRAY[orientation](arr))
    return arr


def _resizable(img: Image.Image) -> Image.Image:
    """``img`` in a mode Pillow resamples by averaging (it resizes "1" and palette images by
    nearest neighbour, and colour spaces such as CMYK are better averaged as RGB)."""
    if img.mode in _RESIZABLE_MODES:
        return img
    if img.mode == "1":
        return img.convert("L")
    if img.mode == "PA" or (img.mode == "P" and "transparency" in img.info):
        return img.convert("RGBA")
    return img.convert("RGB")


def decode_file(
    source: ImageSource, *, max_side: int | None = MAX_DECODE_SIDE
) -> tuple[np.ndarray, ImageInfo, bytes | None]:
    """Read a source once and decode it, keeping the file's bytes (for warnings and evidence).

    Returns:
        The RGB array, its `ImageInfo`, and the bytes (None for arrays and Pillow images).

    Raises:
        ImageLoadError: as `decode_image`.
    """
    data = read_source_bytes(source)
    array, info = decode_image(data if data is not None else source, max_side=max_side)
    return array, info, data


def load_image(source: ImageSource, *, max_side: int | None = MAX_DECODE_SIDE) -> np.ndarray:
    """Decode an image into an RGB ``uint8`` array of shape (H, W, 3).

    Images whose long side exceeds ``max_side`` (`MAX_DECODE_SIDE` by default) come back
    reduced to it; ``max_side=None`` keeps the native resolution. See `decode_image` for
    accepted sources and the errors raised.
    """
    return decode_image(source, max_side=max_side)[0]


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


def open_image(data: bytes) -> Image.Image:
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
