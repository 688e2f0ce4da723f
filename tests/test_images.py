"""Image decoding: formats, modes, orientation, and named errors for bad input."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from conftest import encode, make_image
from PIL import Image

from detector import ImageLoadError, decode_image, load_image
from detector.core.containers import MAX_COUNTED_FRAMES
from detector.core.images import MAX_DECODE_SIDE, load_centre_crop


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_common_formats_decode_to_rgb(fmt):
    image = make_image(40, 50)
    out = load_image(encode(image, fmt))
    assert out.shape == (40, 50, 3) and out.dtype == np.uint8
    if fmt in ("PNG", "BMP", "TIFF"):
        np.testing.assert_array_equal(out, image)
    else:
        assert np.abs(out.astype(int) - image.astype(int)).mean() < 40


def test_paths_file_objects_and_arrays(tmp_path):
    image = make_image(32, 32)
    path = tmp_path / "x.png"
    path.write_bytes(encode(image))
    np.testing.assert_array_equal(load_image(path), image)
    np.testing.assert_array_equal(load_image(str(path)), image)
    np.testing.assert_array_equal(load_image(io.BytesIO(encode(image))), image)
    np.testing.assert_array_equal(load_image(image.astype(np.float32) / 255.0), image)


def test_exif_orientation_is_applied():
    image = make_image(30, 60)
    img = Image.fromarray(image)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = io.BytesIO()
    img.save(data, format="JPEG", exif=exif, quality=95)
    out = load_image(data.getvalue())
    assert out.shape == (60, 30, 3)


def test_modes_convert_to_rgb_correctly():
    grey = np.full((20, 20), 77, np.uint8)
    assert load_image(encode(grey)).tolist()[0][0] == [77, 77, 77]
    sixteen = Image.fromarray(np.full((20, 20), 65535, np.uint16))
    buf = io.BytesIO()
    sixteen.save(buf, format="PNG")
    assert load_image(buf.getvalue())[0, 0].tolist() == [255, 255, 255]
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent -> white background
    assert load_image(encode(rgba))[0, 0].tolist() == [255, 255, 255]
    cmyk = Image.new("CMYK", (20, 20), (0, 255, 255, 0))  # pure red in CMYK
    buf = io.BytesIO()
    cmyk.save(buf, format="JPEG", quality=95)
    r, g, b = load_image(buf.getvalue())[5, 5].tolist()
    assert r > 200 and g < 60 and b < 60
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([0, 0, 255] + [0] * 765)
    buf = io.BytesIO()
    pal.save(buf, format="PNG", transparency=0)
    assert load_image(buf.getvalue())[0, 0].tolist() == [255, 255, 255]


def test_animated_gif_takes_first_frame():
    frames = [Image.new("RGB", (24, 24), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    out, info = decode_image(buf.getvalue())
    assert info.n_frames == 2
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 60


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 100)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "empty_file"),
        (b"hello, this is text\n" * 10, "not_an_image"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "not_an_image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', "not_an_image"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "not_an_image"),
        (_png_header_only(50000, 50000), "too_many_pixels"),
        (encode(np.zeros((1, 1, 3), np.uint8)), "too_small"),
        (encode(np.zeros((100, 20000, 3), np.uint8)), "bad_aspect_ratio"),
        (encode(make_image(64, 64), "JPEG")[:300], "truncated_file"),
        (encode(make_image(64, 64), "PNG")[:200], "truncated_file"),
    ],
    ids=["empty", "text", "pdf", "svg", "html", "bomb", "1x1", "strip", "trunc-jpeg", "trunc-png"],
)
def test_bad_inputs_raise_named_errors(data, code):
    with pytest.raises(ImageLoadError) as info:
        load_image(data)
    assert info.value.code == code
    assert str(info.value)


def test_missing_file_names_only_the_file(tmp_path):
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / "nope.png")
    assert info.value.code == "file_not_found"
    assert str(tmp_path) not in str(info.value)


# --------------------------------------------------------------------------- bounded decoding
def _timed_decode(data: bytes, **kwargs):
    start = time.perf_counter()
    try:
        return decode_image(data, **kwargs), time.perf_counter() - start
    except ImageLoadError as exc:
        return exc, time.perf_counter() - start


def _progressive_jpeg_with_scans(extra_scans: int) -> bytes:
    """A progressive JPEG whose smallest AC scan is repeated ``extra_scans`` times."""
    buf = io.BytesIO()
    Image.fromarray(make_image(256, 256)).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    pos, segments = 2, []
    while data[pos + 1] != 0xD9:
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if data[pos + 1] == 0xDA:  # entropy-coded data runs to the next marker
            while not (data[end] == 0xFF and data[end + 1] not in (0, *range(0xD0, 0xD8))):
                end += 1
        segments.append(data[pos:end])
        pos = end
    ac_scans = [s for s in segments if s[1] == 0xDA and s[5 + 2 * s[4]] > 0]
    return data[:2] + b"".join(segments) + min(ac_scans, key=len) * extra_scans + b"\xff\xd9"


def test_jpeg_with_too_many_scans_is_refused_before_decoding():
    error, seconds = _timed_decode(_progressive_jpeg_with_scans(150))
    assert isinstance(error, ImageLoadError) and error.code == "too_many_scans"
    assert "scans" in str(error) and seconds < 0.5
    (array, info), _ = _timed_decode(_progressive_jpeg_with_scans(40))  # a few dozen are fine
    assert array.shape == (256, 256, 3) and info.format == "JPEG"


def _segment(marker: int, body: bytes = b"") -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


@pytest.mark.parametrize(
    "insert, code",
    [
        (_segment(0xFE) * 20_000, "too_many_segments"),  # 80 kB of empty comments
        (_segment(0xFE, b"x") + b"\x00" * 300_000, "corrupt_file"),  # junk Pillow reads bytewise
        (b"\xff" * 1_000_000, "corrupt_file"),  # fill bytes, also read one at a time
    ],
    ids=["segment flood", "junk", "fill bytes"],
)
def test_jpeg_header_floods_are_refused(insert, code):
    data = encode(make_image(64, 64), "JPEG")
    error, seconds = _timed_decode(data[:2] + insert + data[2:])
    assert isinstance(error, ImageLoadError) and error.code == code
    assert seconds < 0.5


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_png_chunk_flood_is_refused():
    png = encode(make_image(32, 32))
    error, seconds = _timed_decode(png[:33] + _png_chunk(b"prVt", b"") * 120_000 + png[33:])
    assert isinstance(error, ImageLoadError) and error.code == "too_many_segments"
    assert seconds < 0.5


_GIF_HEAD = b"GIF89a" + struct.pack("<HHBBB", 16, 16, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
_GIF_FRAME = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"


def test_gif_frames_are_counted_up_to_a_limit():
    gif = _GIF_HEAD + (b"\x21\xf9\x04\x00\x00\x00\x00\x00" + _GIF_FRAME) * 200_000 + b"\x3b"
    (array, info), seconds = _timed_decode(gif)
    assert info.n_frames == MAX_COUNTED_FRAMES and info.frames_capped
    assert array.shape == (16, 16, 3) and seconds < 1.0
    (_, few), _ = _timed_decode(_GIF_HEAD + _GIF_FRAME * 3 + b"\x3b")
    assert few.n_frames == 3 and not few.frames_capped


@pytest.mark.parametrize(
    "header, code",
    [
        (b"\x21\xfe" + (b"\xff" + b"c" * 255) * 1024 + b"\x00", "metadata_too_large"),
        (b"\x21\xfe" + b"\x01c" * 5000 + b"\x00", "metadata_too_large"),
        (b"\x21\xff" + b"\x01x" * 250_000 + b"\x00", "too_many_segments"),
    ],
    ids=["long comment", "comment of tiny blocks", "extension of tiny blocks"],
)
def test_gif_headers_pillow_would_parse_slowly_are_refused(header, code):
    error, seconds = _timed_decode(_GIF_HEAD + header + _GIF_FRAME + b"\x3b")
    assert isinstance(error, ImageLoadError) and error.code == code
    assert seconds < 0.5


def test_tiff_directories_are_counted_up_to_a_limit_and_loops_end():
    tiff = encode(make_image(16, 16), "TIFF")
    first = struct.unpack_from("<I", tiff, 4)[0]
    count = struct.unpack_from("<H", tiff, first)[0]
    next_at = first + 2 + 12 * count
    chain = bytearray()
    start = len(tiff)
    for i in range(5000):  # empty directories, each pointing at the next
        here = start + 6 * i
        chain += struct.pack("<HI", 0, here + 6 if i < 4999 else 0)
    linked = bytearray(tiff + chain)
    struct.pack_into("<I", linked, next_at, start)
    (_, info), seconds = _timed_decode(bytes(linked))
    assert info.n_frames == MAX_COUNTED_FRAMES and info.frames_capped and seconds < 1.0
    looped = bytearray(tiff)
    struct.pack_into("<I", looped, next_at, first)  # the first directory points at itself
    (_, info), _ = _timed_decode(bytes(looped))
    assert info.n_frames == 1 and not info.frames_capped


def test_large_images_are_reduced_while_decoding():
    wide = np.zeros((400, 5000, 3), np.uint8)
    wide[:, :2500] = (200, 30, 60)
    array, info = decode_image(encode(wide))
    assert array.shape == (328, MAX_DECODE_SIDE, 3)
    assert info.original_size == (5000, 400) and info.downscaled
    assert (info.width, info.height) == (MAX_DECODE_SIDE, 328)
    assert array[:, :2000].tolist() == [[[200, 30, 60]] * 2000] * 328  # flat areas stay exact
    full, full_info = decode_image(encode(wide), max_side=None)
    assert full.shape == (400, 5000, 3) and full_info.original_size is None
    exact = np.zeros((300, MAX_DECODE_SIDE, 3), np.uint8)
    out, exact_info = decode_image(encode(exact))
    assert out.shape == exact.shape and exact_info.original_size is None


def test_large_transparent_images_are_composited_after_reducing():
    rgba = np.zeros((300, 6000, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent: white once composited
    rgba[:, :3000, 3] = 255  # the left half opaque red
    array = load_image(encode(rgba))
    assert array.shape == (205, MAX_DECODE_SIDE, 3)
    assert array[0, 0].tolist() == [255, 0, 0] and array[0, -1].tolist() == [255, 255, 255]
    palette = Image.new("P", (6000, 300), 1)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    buf = io.BytesIO()
    palette.save(buf, "PNG")
    assert load_image(buf.getvalue())[5, 5].tolist() == [0, 0, 255]


def test_large_jpegs_are_scaled_by_the_decoder_and_keep_their_orientation():
    image = Image.fromarray(make_image(500, 9000))
    exif = image.getexif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif, quality=90)
    array, info = decode_image(buf.getvalue())
    assert array.shape == (MAX_DECODE_SIDE, 228, 3)
    assert info.original_size == (500, 9000)
    small = load_image(buf.getvalue(), max_side=1000)
    assert small.shape == (1000, 56, 3)


def test_centre_crop_keeps_the_original_pixels_of_large_images():
    wide = make_image(300, 6000)
    crop = load_centre_crop(encode(wide), 1024)
    np.testing.assert_array_equal(crop, wide[:, 2488:3512])
    image = Image.fromarray(wide)
    exif = image.getexif()
    exif[0x0112] = 8  # shown rotated 90 degrees anticlockwise
    buf = io.BytesIO()
    image.save(buf, "PNG", exif=exif)
    full = load_image(buf.getvalue(), max_side=None)
    np.testing.assert_array_equal(load_centre_crop(buf.getvalue(), 1024), full[2488:3512])
    np.testing.assert_array_equal(load_centre_crop(wide, 1024), wide[:, 2488:3512])
    np.testing.assert_array_equal(
        load_centre_crop(encode(make_image(40, 50)), 64), make_image(40, 50)
    )


@pytest.mark.parametrize("orientation", [1, 7])
def test_reduction_matches_a_whole_image_box_resize(orientation):
    rgba = np.random.default_rng(3).integers(0, 256, (700, 4500, 4), dtype=np.uint8)
    image = Image.fromarray(rgba)
    exif = image.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    image.save(buf, "PNG", exif=exif)
    reference = image.resize((MAX_DECODE_SIDE, 637), Image.Resampling.BOX)
    if orientation == 7:
        reference = reference.transpose(Image.Transpose.TRANSVERSE)
    white = Image.new("RGBA", reference.size, (255, 255, 255, 255))
    expected = np.asarray(Image.alpha_composite(white, reference).convert("RGB"))
    np.testing.assert_array_equal(load_image(buf.getvalue()), expected)


@pytest.mark.slow
def test_large_flat_rgba_png_decodes_in_bounded_memory(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGBA", (6300, 6300), (120, 130, 140, 128)).save(path)  # 170 kB on disk
    code = (  # VmHWM, not ru_maxrss: that one keeps the forking parent's peak across exec
        "import re; from detector.core.images import load_image; "
        f"a = load_image({str(path)!r}); "
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
        "print(a.shape, int(hwm) // 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    shape, peak_mb = out.stdout.rsplit(" ", 1)
    assert shape == f"({MAX_DECODE_SIDE}, {MAX_DECODE_SIDE}, 3)"
    assert int(peak_mb) < 500  # was about 1,250 MB when the full-size image was composited
