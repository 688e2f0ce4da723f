"""Provenance evidence on files the tests write themselves, including a C2PA-signed JPEG."""

from __future__ import annotations

import datetime
import io
import json
import struct

import cv2
import numpy as np
import pytest
from conftest import encode, make_image
from PIL import ExifTags, Image, PngImagePlugin

from detector.cli import main
from detector.core import jpeg
from detector.core.errors import DetectorError, ImageLoadError
from detector.core.exif import MAX_VALUE_CHARS, exif_summary, has_camera_exif
from detector.core.jpeg import estimate_jpeg_quality, ijg_table
from detector.evidence import metadata as evidence
from detector.evidence.metadata import EvidenceReport, inspect_file, jpeg_grid

KINDS = (
    "file",
    "c2pa",
    "digital_source_type",
    "generation_settings",
    "exif",
    "gps",
    "jpeg_quality",
    "processing",
    "watermark",
)
A1111 = (
    "a watercolour fox in the snow\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234, Size: 512x768, "
    'Model hash: abc123, Model: sd_xl_base_1.0, Lora hashes: "a: 1, b: 2", Version: v1.9.0'
)
COMFY_PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 20, "cfg": 8.0}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red bicycle", "clip": ["4", 1]}},
}


def png_with_text(chunks: dict[str, str], image: np.ndarray | None = None, itxt=()) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        if key in itxt:
            info.add_itxt(key, value, zip=True)
        else:
            info.add_text(key, value)
    buf = io.BytesIO()
    Image.fromarray(make_image(64, 80) if image is None else image).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def camera_exif(extra: dict[int, object] | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R5"
    exif[0x0132] = "2023:05:01 10:02:11"
    exif[0x0131] = "Firmware Version 1.8.1"
    exif.get_ifd(ExifTags.IFD.Exif).update(
        {0x9003: "2023:05:01 10:02:11", 0xA434: "RF24-105mm F4 L IS USM", **(extra or {})}
    )
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {1: "N", 2: (48.0, 51.0, 29.5), 3: "E", 4: (2.0, 17.0, 40.2)}
    )
    return exif


def jpeg_bytes(image: np.ndarray | None = None, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(make_image(64, 80) if image is None else image).save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def xmp_packet(source_type: str, attribute: bool = True) -> str:
    url = f"http://cv.iptc.org/newscodes/digitalsourcetype/{source_type}"
    if attribute:
        body = (
            '<rdf:Description rdf:about="" '
            'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Test Tool 1.0" '
            f'Iptc4xmpExt:DigitalSourceType="{url}"/>'
        )
    else:
        body = (
            '<rdf:Description rdf:about="" '
            'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
            f"<Iptc4xmpExt:DigitalSourceType>{url}</Iptc4xmpExt:DigitalSourceType>"
            "</rdf:Description>"
        )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f"{body}</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    )


def smooth_image(height: int = 256, width: int = 320, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((height // 16, width // 16, 3)).astype(np.float32)
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), 3) + rng.normal(0, 0.01, (height, width, 3))
    return np.clip(big * 255, 0, 255).astype(np.uint8)


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.ascontiguousarray(np.asarray(img.convert("RGB")))


def assert_well_formed(report: EvidenceReport) -> None:
    assert tuple(it.kind for it in report.items) == KINDS
    data = json.loads(json.dumps(report.to_dict()))
    assert data["headline"] == report.headline()
    for item in report.items:
        assert item.title and item.proves and item.does_not_prove and item.summary
    assert report.to_text().strip()


# --------------------------------------------------------------------------- generation settings
def test_png_webui_parameters_and_comfyui_prompt():
    data = png_with_text(
        {
            "parameters": A1111,
            "prompt": json.dumps(COMFY_PROMPT),
            "workflow": json.dumps({"nodes": []}),
        }
    )
    report = inspect_file(data)
    assert_well_formed(report)
    item = report.item("generation_settings")
    assert item.found and item.indicates == "ai_generated"
    assert set(item.details["keys"]) == {"parameters", "prompt", "workflow"}
    assert any("Stable Diffusion WebUI" in t for t in item.details["tools"])
    assert "ComfyUI" in item.details["tools"]
    parsed = item.details["parsed"]["parameters"]
    assert parsed["prompt"] == "a watercolour fox in the snow"
    assert parsed["negative_prompt"] == "blurry, lowres"
    assert parsed["settings"]["Steps"] == "28" and parsed["settings"]["Seed"] == "1234"
    assert parsed["settings"]["Sampler"] == "DPM++ 2M Karras"
    comfy = item.details["parsed"]["prompt"]
    assert "flux1-dev.safetensors" in comfy["models"] and comfy["prompts"] == ["a red bicycle"]
    assert comfy["samplers"][0]["steps"] == 20
    assert report.ai_indicators == (item,)
    assert "made with AI" in report.headline()


def test_compressed_itxt_chunk_and_long_values_are_truncated():
    long_prompt = "word " * 2000 + "\nSteps: 20, Sampler: Euler, Seed: 1"
    report = inspect_file(png_with_text({"parameters": long_prompt}, itxt=("parameters",)))
    value = report.item("generation_settings").details["keys"]["parameters"]
    assert len(value) < MAX_VALUE_CHARS + 40 and "more" not in value[:MAX_VALUE_CHARS]
    assert value.endswith("characters)")


@pytest.mark.parametrize(
    ("chunks", "tool"),
    [
        ({"invokeai_metadata": '{"positive_prompt": "x", "steps": 30}'}, "InvokeAI"),
        ({"sd-metadata": '{"prompt": "x"}'}, "InvokeAI (2.x)"),
        ({"dream": '"a cat" -s 50 -S 42'}, "InvokeAI (legacy 'dream')"),
        (
            {
                "Software": "NovelAI",
                "Source": "Stable Diffusion XL C1E1DE52",
                "Comment": '{"prompt": "x", "steps": 28, "sampler": "k_euler", "seed": 5}',
            },
            "NovelAI",
        ),
        ({"Description": "a castle --ar 16:9 Job ID: 1234-abcd", "Author": "u1"}, "Midjourney"),
    ],
)
def test_other_generators(chunks, tool):
    item = inspect_file(png_with_text(chunks)).item("generation_settings")
    assert item.found and tool in item.details["tools"]


def test_innocent_text_chunks_are_not_generation_settings():
    item = inspect_file(png_with_text({"Author": "Ada", "Comment": "holiday 2019"})).item(
        "generation_settings"
    )
    assert not item.found and item.indicates == "neutral"
    assert set(item.details["other_text_keys"]) == {"Author", "Comment"}


def test_webui_parameters_in_jpeg_user_comment():
    comment = b"UNICODE\x00" + A1111.encode("utf-16-be")
    data = jpeg_bytes(exif=camera_exif({0x9286: comment}))
    item = inspect_file(data).item("generation_settings")
    assert item.found and "EXIF UserComment" in item.details["keys"]
    assert item.details["parsed"]["EXIF UserComment"]["settings"]["Steps"] == "28"


# --------------------------------------------------------------------------- EXIF and GPS
def test_jpeg_camera_exif_and_gps_presence_only():
    data = jpeg_bytes(exif=camera_exif())
    report = inspect_file(data)
    assert_well_formed(report)
    exif = report.item("exif")
    assert exif.found and exif.indicates == "camera_capture"
    assert exif.details["make"] == "Canon" and exif.details["model"] == "Canon EOS R5"
    assert exif.details["capture_time"] == "2023:05:01 10:02:11"
    assert exif.details["lens_model"] == "RF24-105mm F4 L IS USM"
    assert exif.details["software"] == "Firmware Version 1.8.1"
    gps = report.item("gps")
    assert gps.found and gps.details["present"] is True
    text = json.dumps(report.to_dict()) + report.to_text()
    for secret in ("48.0", "51.0", "29.5", "17.0", "40.2"):
        assert secret not in text
    assert report.camera_indicators and "camera" in report.headline()
    fields = exif_summary(data)
    assert has_camera_exif(fields) and fields["has_gps"] is True
    assert not has_camera_exif(exif_summary(encode(make_image(), "PNG")))


def test_editor_and_generator_software():
    exif = Image.Exif()
    exif[0x0131] = "Adobe Photoshop 25.0 (Windows)"
    assert inspect_file(jpeg_bytes(exif=exif)).item("exif").indicates == "processed"
    exif[0x0131] = "Adobe Firefly"
    report = inspect_file(jpeg_bytes(exif=exif))
    assert report.item("exif").indicates == "ai_generated"
    assert report.item("generation_settings").found


def test_no_metadata_says_absence_proves_nothing():
    report = inspect_file(encode(make_image(), "PNG"))
    assert_well_formed(report)
    assert report.found_items == (report.item("file"),)
    assert "says nothing" in report.headline()
    assert not report.item("exif").found and not report.item("gps").found


# --------------------------------------------------------------------------- XMP DigitalSourceType
@pytest.mark.parametrize(
    ("source_type", "indicates"),
    [
        ("trainedAlgorithmicMedia", "ai_generated"),
        ("compositeWithTrainedAlgorithmicMedia", "ai_generated"),
        ("algorithmicMedia", "neutral"),
        ("digitalCapture", "camera_capture"),
    ],
)
@pytest.mark.parametrize("container", ["jpeg", "png"])
def test_xmp_digital_source_type(source_type, indicates, container):
    packet = xmp_packet(source_type, attribute=container == "jpeg")
    if container == "jpeg":
        data = jpeg_bytes(xmp=packet.encode())
    else:
        data = png_with_text({"XML:com.adobe.xmp": packet}, itxt=("XML:com.adobe.xmp",))
    item = inspect_file(data).item("digital_source_type")
    assert item.found and item.indicates == indicates
    assert list(item.details["values"]) == [source_type]
    assert item.details["xmp_packets"] >= 1
    where = " ".join(item.details["found_in"][source_type])
    assert ("APP1" in where) if container == "jpeg" else ("XML:com.adobe.xmp" in where)


def test_xmp_found_by_raw_byte_scan():
    # An XMP packet under a key no reader knows: only the raw byte scan can find it.
    data = png_with_text({"random-key": xmp_packet("trainedAlgorithmicMedia")})
    item = inspect_file(data).item("digital_source_type")
    assert item.found and item.indicates == "ai_generated"
    assert item.details["creator_tool"] == ["Test Tool 1.0"]


# --------------------------------------------------------------------------- JPEG quality
@pytest.mark.parametrize("quality", [*range(50, 96, 5), 53, 67, 71, 88, 93])
@pytest.mark.parametrize("encoder", ["pillow", "opencv"])
def test_jpeg_quality_estimate_within_5(quality, encoder):
    image = make_image(64, 96, seed=quality)
    if encoder == "pillow":
        data = encode(image, "JPEG", quality=quality)
    else:
        ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        data = buf.tobytes()
    estimate = estimate_jpeg_quality(data)
    assert estimate is not None and abs(estimate.quality - quality) <= 5
    assert estimate.exact and estimate.quality == quality  # libjpeg tables invert exactly
    item = inspect_file(data).item("jpeg_quality")
    assert item.found and item.details["quality"] == estimate.quality


def test_jpeg_quality_of_custom_tables_is_approximate():
    luma = (ijg_table(jpeg.IJG_LUMA, 80) + 1).astype(int).tolist()
    chroma = ijg_table(jpeg.IJG_CHROMA, 80).astype(int).tolist()
    data = jpeg_bytes(qtables=[luma, chroma])
    estimate = estimate_jpeg_quality(data)
    assert estimate is not None and not estimate.exact and abs(estimate.quality - 80) <= 5
    assert "custom" in inspect_file(data).item("jpeg_quality").summary


def test_jpeg_quality_none_for_other_formats():
    assert estimate_jpeg_quality(encode(make_image(), "PNG")) is None
    assert estimate_jpeg_quality(b"garbage") is None
    assert not inspect_file(encode(make_image(), "PNG")).item("jpeg_quality").found


# --------------------------------------------------------------------------- processing hints
def test_exif_dimension_mismatch_means_resized():
    data = jpeg_bytes(exif=camera_exif({0xA002: 6000, 0xA003: 4000}))
    item = inspect_file(data).item("processing")
    assert item.found and item.indicates == "processed"
    assert item.details["checks"]["exif_dimensions_match"] is False
    assert "6000x4000" in item.summary
    assert item.details["cannot_tell"]


def test_exif_dimensions_matching_give_no_hint():
    data = jpeg_bytes(exif=camera_exif({0xA002: 80, 0xA003: 64}))
    item = inspect_file(data).item("processing")
    assert item.details["checks"]["exif_dimensions_match"] is True and not item.found


def exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """A minimal little-endian EXIF block: IFD0 (Make) and IFD1 pointing at a JPEG thumbnail."""
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHI4s", 0x010F, 2, 4, b"Cam\x00")
    ifd0 += struct.pack("<I", 26)  # next IFD (IFD1) at offset 26
    thumb_at = 26 + 2 + 2 * 12 + 4
    ifd1 = struct.pack("<H", 2)
    ifd1 += struct.pack("<HHII", 0x0201, 4, 1, thumb_at)
    ifd1 += struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail))
    ifd1 += struct.pack("<I", 0)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd0 + ifd1 + thumbnail


@pytest.mark.parametrize(("thumb_size", "cropped"), [((160, 120), True), ((160, 128), False)])
def test_exif_thumbnail_aspect(thumb_size, cropped):
    thumb = encode(make_image(thumb_size[1], thumb_size[0]), "JPEG", quality=70)
    data = jpeg_bytes(make_image(64, 80), exif=exif_with_thumbnail(thumb))
    item = inspect_file(data).item("processing")
    check = item.details["checks"]["exif_thumbnail"]
    assert check["size"] == list(thumb_size)
    assert check["aspect_matches"] is (not cropped)
    assert item.found is cropped


def test_png_that_was_a_jpeg_before():
    image = smooth_image()
    was_jpeg = encode(decoded(encode(image, "JPEG", quality=50)), "PNG")
    item = inspect_file(was_jpeg).item("processing")
    assert item.found and "was a JPEG before" in item.summary
    assert not inspect_file(encode(image, "PNG")).item("processing").found


def test_jpeg_cropped_after_an_earlier_jpeg_save():
    first = decoded(encode(smooth_image(seed=1), "JPEG", quality=50))
    cropped = np.ascontiguousarray(first[3:, 5:])
    grid = jpeg_grid(cropped)
    assert grid["visible"] and grid["offset"] == (4, 2)
    item = inspect_file(encode(cropped, "JPEG", quality=95)).item("processing")
    assert item.found and "not aligned" in item.summary


def test_large_image_report_gives_its_full_size_and_reads_the_grid_at_full_resolution():
    image = smooth_image(256, 4400)  # decoded reduced to 4096 px: resampling hides a grid
    was_jpeg = encode(decoded(encode(image, "JPEG", quality=50)), "PNG")
    report = inspect_file(was_jpeg)
    file_item = report.item("file")
    assert file_item.summary.startswith("PNG, 4400x256 px")
    assert file_item.details["decoded_size"] == [4096, 238]
    item = report.item("processing")
    assert item.found and "was a JPEG before" in item.summary


def test_gif_comment_bomb_gets_a_report_not_a_hang():
    head = b"GIF89a" + struct.pack("<HHBBB", 16, 16, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    comment = b"\x21\xfe" + (b"\xff" + b"\n" * 255) * 40_000 + b"\x00"  # 10 MB
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    report = inspect_file(head + comment + frame + b"\x3b")
    assert not report.readable
    assert report.item("file").details["error_code"] == "metadata_too_large"
    assert_well_formed(report)


def test_upscaled_image_is_not_a_jpeg_grid():
    image = cv2.resize(smooth_image()[:64, :80], (320, 256), interpolation=cv2.INTER_LINEAR)
    assert not jpeg_grid(image)["visible"]


# --------------------------------------------------------------------------- C2PA
def make_signer():
    """A throwaway ES256 root CA + signing certificate, made offline with `cryptography`."""
    c2pa = pytest.importorskip("c2pa")
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evidence Test Org"),
            ]
        )

    now = datetime.datetime.now(datetime.UTC)
    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Evidence Test Root"))
        .issuer_name(name("Evidence Test Root"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("Evidence Test Signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    info = c2pa.C2paSignerInfo(alg=b"es256", sign_cert=chain, private_key=pem_key, ta_url=None)
    return c2pa, c2pa.Signer.from_info(info)


@pytest.fixture(scope="module")
def signed_jpeg() -> bytes:
    c2pa, signer = make_signer()
    manifest = {
        "claim_generator_info": [{"name": "evidence-tests", "version": "1.0"}],
        "title": "generated.jpg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": evidence.IPTC_DST_PREFIX
                            + "trainedAlgorithmicMedia",
                            "softwareAgent": {"name": "Test Generator 2"},
                        }
                    ]
                },
            }
        ],
    }
    source = io.BytesIO(jpeg_bytes(make_image(96, 128, seed=3), quality=90))
    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, "image/jpeg", source, out)
    return out.getvalue()


def test_c2pa_signed_file(signed_jpeg):
    report = inspect_file(signed_jpeg)
    assert_well_formed(report)
    item = report.item("c2pa")
    assert item.found and item.indicates == "ai_generated"
    details = item.details
    assert details["status"] == "present"
    assert details["validation_state"] == "Valid"
    assert "signingCredential.untrusted" in details["validation_problems"]
    assert details["claim_generator"].startswith("evidence-tests 1.0")
    assert details["signer"] == "Evidence Test Org"
    assert details["digital_source_types"] == ["trainedAlgorithmicMedia"]
    assert details["actions"][0] == {
        "action": "c2pa.created",
        "digital_source_type": "trainedAlgorithmicMedia",
        "software_agent": "Test Generator 2",
    }
    assert "trust list" in item.summary
    assert report.readable and report.item("jpeg_quality").details["quality"] == 90
    assert "Content Credentials" in report.headline()


def test_c2pa_tampered_pixels_fail_validation(signed_jpeg):
    tampered = bytearray(signed_jpeg)
    tampered[-200] ^= 0xFF  # inside the entropy-coded image data
    item = inspect_file(bytes(tampered)).item("c2pa")
    assert item.found and item.details["validation_state"] == "Invalid"
    assert any("mismatch" in code for code in item.details["validation_problems"])


def test_c2pa_damaged_manifest_is_an_item_not_a_crash(signed_jpeg):
    start = signed_jpeg.find(b"jumb")
    damaged = bytearray(signed_jpeg)
    damaged[start + 100 : start + 400] = b"\x00" * 300
    item = inspect_file(bytes(damaged)).item("c2pa")
    assert item.found and item.details["status"] == "invalid"
    assert item.indicates == "processed" and item.details["error"]


def test_c2pa_absent():
    pytest.importorskip("c2pa")
    item = inspect_file(jpeg_bytes()).item("c2pa")
    assert not item.found and item.details["status"] == "no_manifest"


def test_c2pa_package_missing(monkeypatch):
    def missing():
        raise ImportError("No module named 'c2pa'")

    monkeypatch.setattr(evidence, "_load_c2pa", missing)
    item = inspect_file(jpeg_bytes()).item("c2pa")
    assert not item.found and item.indicates == "not_checked"
    assert "not available" in item.summary


# ---------------------------------------------------------------- sources and hostile input
def test_pixel_array_and_pil_sources():
    report = inspect_file(make_image())
    assert report.readable and report.item("file").found
    assert all(it.indicates == "not_checked" for it in report.items[1:])
    with Image.open(io.BytesIO(png_with_text({"parameters": A1111}))) as img:
        pil_report = inspect_file(img)
    assert pil_report.item("generation_settings").found
    assert pil_report.item("c2pa").indicates == "not_checked"


def test_path_and_file_object_sources(tmp_path):
    path = tmp_path / "photo.txt"  # a misleading name: the bytes decide
    path.write_bytes(jpeg_bytes(exif=camera_exif()))
    assert inspect_file(path).format == "JPEG"
    assert inspect_file(str(path)).item("exif").found
    with open(path, "rb") as fh:
        assert inspect_file(fh).item("gps").found


def test_truncated_jpeg_keeps_its_metadata():
    data = jpeg_bytes(make_image(128, 160), exif=camera_exif(), quality=80)
    report = inspect_file(data[: len(data) // 2])
    assert_well_formed(report)
    assert not report.readable and report.item("file").details["error_code"] == "truncated_file"
    assert report.item("exif").found and report.item("jpeg_quality").details["quality"] == 80
    assert "truncated" in report.error


@pytest.mark.parametrize(
    "data",
    [
        b"just some text, not an image",
        b"%PDF-1.4 fake pdf",
        b"\x89PNG\r\n\x1a\n" + b"\x00\x00\xff\xffIHDR" + b"\x00" * 40,
        b"\xff\xd8\xff\xe1\xff\xff" + b"Exif\x00\x00" + b"\x00" * 30,
        bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
    ],
    ids=["text", "pdf", "bad-png", "bad-jpeg", "random"],
)
def test_hostile_bytes_give_an_unreadable_report(data):
    report = inspect_file(data)
    assert not report.readable and not report.item("file").found
    assert report.item("file").details["error_code"]
    assert tuple(it.kind for it in report.items) == KINDS
    json.dumps(report.to_dict())
    assert report.to_text()


def test_png_zip_bomb_text_chunk_is_capped():
    import zlib

    bomb = zlib.compress(b"A" * (20 * 1024 * 1024), 9)
    body = b"parameters\x00\x00" + bomb
    chunk = (
        struct.pack(">I", len(body))
        + b"zTXt"
        + body
        + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    )
    png = encode(make_image(), "PNG")
    data = png[:33] + chunk + png[33:]  # right after IHDR
    item = inspect_file(data).item("generation_settings")
    assert len(item.details["keys"]["parameters"]) < MAX_VALUE_CHARS + 40


@pytest.mark.parametrize("source", [b"", "/nonexistent/file.jpg", 12345])
def test_unreadable_sources_raise_a_detector_error(source):
    with pytest.raises(ImageLoadError) as info:
        inspect_file(source)  # type: ignore[arg-type]
    assert isinstance(info.value, DetectorError) and info.value.code


# --------------------------------------------------------------------------- CLI
def test_cli_inspect_json(tmp_path, capsys):
    path = tmp_path / "gen.png"
    path.write_bytes(png_with_text({"parameters": A1111}))
    assert main(["inspect", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["readable"] is True and data["format"] == "PNG"
    items = {item["kind"]: item for item in data["items"]}
    assert items["generation_settings"]["found"] is True
    assert items["generation_settings"]["indicates"] == "ai_generated"


def test_cli_inspect_text(tmp_path, capsys):
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes(exif=camera_exif(), quality=85))
    assert main(["inspect", str(path), "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "[x] Camera EXIF: Canon Canon EOS R5" in out
    assert "quality ≈ 85" in out and "does not prove" in out


def test_cli_inspect_bad_files(tmp_path, capsys):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image")
    assert main(["inspect", str(notes), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["readable"] is False
    assert main(["inspect", str(tmp_path / "missing.png")]) == 2
    assert "file not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- watermark
def _marked_png(size=(512, 768), exif: Image.Exif | None = None) -> bytes:
    from wm_reference import mark_sd_v1, photo

    kwargs = {"exif": exif} if exif is not None else {}
    return encode(mark_sd_v1(photo(*size, seed=1)), "PNG", **kwargs)


def test_watermark_item_reports_the_sd_mark_with_its_p_value():
    report = inspect_file(_marked_png())
    assert_well_formed(report)
    item = report.item("watermark")
    assert item.found and item.indicates == "ai_generated"
    sd1 = item.details["stable-diffusion-v1"]
    assert sd1["matched"] and sd1["n_bits"] == 136 and sd1["bit_errors"] <= 5
    assert sd1["p_value"] < 1e-30
    assert item.details["marks_found"] == ["stable-diffusion-v1"]
    assert "chance p" in item.summary
    assert "resizing" in item.does_not_prove and "Stable Diffusion" in item.proves
    assert item in report.ai_indicators


def test_watermark_read_in_stored_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter: decoded turned, read as stored
    item = inspect_file(_marked_png(exif=exif)).item("watermark")
    assert item.found


def test_watermark_absent_on_unmarked_picture():
    from wm_reference import photo

    item = inspect_file(encode(photo(512, 512, seed=2), "PNG")).item("watermark")
    assert not item.found and item.indicates == "neutral"
    assert item.details["sdxl"]["bit_errors"] is not None
    assert item.summary.startswith("no known mark")


def test_watermark_not_checked_when_reduced_small_or_grey():
    big = encode(np.zeros((300, 5000, 3), np.uint8), "PNG")
    item = inspect_file(big).item("watermark")
    assert item.indicates == "not_checked" and "image reduced" in item.summary
    small = inspect_file(encode(make_image(), "PNG")).item("watermark")
    assert small.indicates == "not_checked" and "too small" in small.summary
    grey = encode(np.full((300, 300), 128, np.uint8), "PNG")
    assert "greyscale" in inspect_file(grey).item("watermark").summary


def test_watermark_read_from_pixel_arrays_too():
    from wm_reference import mark_sd_v1, photo

    report = inspect_file(mark_sd_v1(photo(512, 512, seed=1)))
    assert report.item("watermark").found
    assert report.item("exif").indicates == "not_checked"
