"""Image decoding: formats, modes, orientation, and named errors for bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from conftest import encode, make_image
from PIL import Image

from detector import ImageLoadError, decode_image, load_image


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
