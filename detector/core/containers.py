"""Cheap walks of image containers, so that hostile files are refused before Pillow parses them.

Pillow parses container structure (JPEG segments, PNG chunks, GIF blocks, TIFF IFDs) in Python,
one item at a time, and libjpeg decodes every scan of a progressive JPEG over the whole image.
These walkers look at the same structure with C-speed searches and a bounded number of Python
steps, so floods of segments, chunks or blocks, and progressive JPEGs with thousands of scans,
are refused with a named error (`detector.core.images` calls them before decoding). Frames are
counted here too, up to `MAX_COUNTED_FRAMES`.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from PIL import Image

from detector.core.errors import ImageLoadError

#: Most scans (SOS segments) accepted in a JPEG: a progressive file has about ten, and each
#: extra scan makes libjpeg pass over the whole image again.
MAX_JPEG_SCANS = 100
#: Most marker segments walked in a JPEG (outside entropy-coded data). Real files have dozens.
MAX_JPEG_SEGMENTS = 10_000
#: Most junk or fill bytes accepted between the JPEG segments before the first scan: Pillow
#: skips them one byte at a time in Python (about a second per megabyte); some writers pad.
MAX_JPEG_JUNK_BYTES = 256 * 1024
#: Most chunks accepted in a PNG (a large image stored in small IDAT chunks has a few thousand).
MAX_PNG_CHUNKS = 100_000
#: Most GIF blocks and sub-blocks walked when counting frames (a GIF whose first frame lies
#: beyond them is refused: Pillow walks those blocks in Python before it can decode anything).
MAX_GIF_BLOCKS = 200_000
#: Most comment bytes, and comment sub-blocks, before a GIF's first frame (Pillow joins them by
#: repeated concatenation, in quadratic time).
MAX_GIF_COMMENT_BYTES = 64 * 1024
MAX_GIF_COMMENT_BLOCKS = 1024
#: Frames counted in an animation; past this the count is reported as "at least" this many.
MAX_COUNTED_FRAMES = 1000

#: The next JPEG marker: 0xFF followed by anything but a stuffed zero, a fill byte or a restart
#: marker (those three occur inside entropy-coded data).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: no length field


@dataclass(frozen=True)
class _JpegWalk:
    scans: int
    segments: int
    junk_before_scan: int
    complete: bool  # False when the walk stopped at MAX_JPEG_SEGMENTS


def _walk_jpeg(data: bytes) -> _JpegWalk:
    """Count the scans and segments of a JPEG's first image, in linear time."""
    pos, end = 2, len(data)
    scans = segments = junk = 0
    while pos + 4 <= end:
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            return _JpegWalk(scans, segments, junk, complete=False)
        marker = data[pos + 1] if data[pos] == 0xFF else -1
        if marker in (-1, 0x00, 0xFF) or marker in _JPEG_STANDALONE:
            # junk, fill bytes or a marker without a length: on to the next real marker
            found = _JPEG_MARKER.search(data, pos + 1 if marker in (-1, 0xFF) else pos + 2)
            if found is None:
                break
            if scans == 0:  # Pillow skips these one byte at a time before the first scan
                junk += found.start() - pos
            pos = found.start()
            continue
        if marker == 0xD9:  # end of image
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker
            scans += 1
            found = _JPEG_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return _JpegWalk(scans, segments, junk, complete=True)


def _check_jpeg(data: bytes) -> _JpegWalk:
    walk = _walk_jpeg(data)
    if not walk.complete:
        raise ImageLoadError(
            f"JPEG has over {MAX_JPEG_SEGMENTS} marker segments (a normal file has a few "
            "dozen); refused",
            code="too_many_segments",
        )
    if walk.junk_before_scan > MAX_JPEG_JUNK_BYTES:
        raise ImageLoadError(
            f"damaged JPEG file: {walk.junk_before_scan} bytes of junk between its header segments",
            code="corrupt_file",
        )
    return walk


def _walk_png(data: bytes) -> None:
    pos, end, chunks = 8, len(data), 0
    while pos + 8 <= end:
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise ImageLoadError(
                f"PNG has over {MAX_PNG_CHUNKS} chunks; refused", code="too_many_segments"
            )
        (length,) = struct.unpack_from(">I", data, pos)
        if data[pos + 4 : pos + 8] == b"IEND":
            return
        pos += 12 + length


def _gif_colour_table(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _walk_gif(data: bytes, frame_limit: int) -> tuple[int, bool]:
    """Count a GIF's frames (up to ``frame_limit``) by walking its blocks; nothing is decoded.

    At most `MAX_GIF_BLOCKS` blocks and sub-blocks are walked; a count cut short by either limit
    is returned with True ("at least this many").

    Raises:
        ImageLoadError: when the blocks before the first frame are too many, or hold too long a
            comment, for Pillow to parse them in bounded time.
    """
    if len(data) < 13:
        return 1, False
    pos, end = 13 + _gif_colour_table(data[10]), len(data)
    frames = comment_bytes = comment_blocks = steps = 0
    capped = False
    while pos < end:
        kind = data[pos]
        if kind == 0x2C:  # image descriptor, local colour table, LZW code size, sub-blocks
            if frames == frame_limit:
                capped = True
                break
            frames += 1
            if pos + 10 > end:
                break
            pos += 11 + _gif_colour_table(data[pos + 9])
        elif kind == 0x21 and pos + 1 < end:  # extension: label, then sub-blocks
            label = data[pos + 1]
            pos += 2
        else:  # trailer or junk: Pillow stops here too
            break
        while pos < end:  # sub-blocks, up to the empty one
            steps += 1
            size = data[pos]
            pos += 1 + size
            if kind == 0x21 and label == 0xFE and frames == 0:
                comment_bytes += size
                comment_blocks += 1
            if size == 0 or steps > MAX_GIF_BLOCKS:
                break
        if comment_bytes > MAX_GIF_COMMENT_BYTES or comment_blocks > MAX_GIF_COMMENT_BLOCKS:
            raise ImageLoadError(
                f"GIF comment over {MAX_GIF_COMMENT_BYTES // 1024} KiB or "
                f"{MAX_GIF_COMMENT_BLOCKS} blocks before the first frame; refused",
                code="metadata_too_large",
            )
        if steps > MAX_GIF_BLOCKS:
            if frames == 0:
                raise ImageLoadError(
                    f"GIF has over {MAX_GIF_BLOCKS} blocks before its first frame; refused",
                    code="too_many_segments",
                )
            capped = True
            break
    return max(1, frames), capped


def _walk_tiff(data: bytes, frame_limit: int) -> tuple[int, bool]:
    """Count a TIFF's image file directories (frames) up to ``frame_limit``, loops included."""
    head = data[:4]
    if head in (b"II*\x00", b"MM\x00*"):
        big = False
    elif head in (b"II+\x00", b"MM\x00+"):
        big = True
    else:
        return 1, False
    endian = "<" if head[:2] == b"II" else ">"
    count_fmt, entry, next_fmt = (
        (endian + "Q", 20, endian + "Q") if big else (endian + "H", 12, endian + "I")
    )
    count_size = struct.calcsize(count_fmt)
    try:
        (offset,) = struct.unpack_from(next_fmt, data, 8 if big else 4)
        seen: set[int] = set()
        frames = 0
        while offset and offset not in seen and frames <= frame_limit:
            seen.add(offset)
            frames += 1
            (count,) = struct.unpack_from(count_fmt, data, offset)
            (offset,) = struct.unpack_from(next_fmt, data, offset + count_size + count * entry)
    except struct.error:  # a directory past the end of the file ends the count
        pass
    return max(1, min(frames, frame_limit)), frames > frame_limit


def _check_container(data: bytes) -> _JpegWalk | None:
    """Refuse container floods that Pillow would otherwise walk for a long time.

    Returns:
        For a JPEG, what its walk found (the scan count is checked when decoding).

    Raises:
        ImageLoadError: ``too_many_segments``, ``metadata_too_large`` or ``corrupt_file``.
    """
    if data[:2] == b"\xff\xd8":
        return _check_jpeg(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        _walk_png(data)
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        _walk_gif(data, MAX_COUNTED_FRAMES)
    return None


def _count_frames(img: Image.Image, data: bytes | None) -> tuple[int, bool]:
    """Frames in an image file, counted up to `MAX_COUNTED_FRAMES`, and whether it stopped there.

    GIF and TIFF are counted by walking their blocks (Pillow would decode or re-read every
    frame); other formats declare their frame count in a header.
    """
    if data is not None and img.format == "GIF":
        return _walk_gif(data, MAX_COUNTED_FRAMES)
    if data is not None and img.format == "TIFF":
        return _walk_tiff(data, MAX_COUNTED_FRAMES)
    n_frames = int(getattr(img, "n_frames", 1) or 1)
    return min(n_frames, MAX_COUNTED_FRAMES), n_frames > MAX_COUNTED_FRAMES
