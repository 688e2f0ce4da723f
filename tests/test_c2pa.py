"""C2PA Content Credentials read with c2pa-python, on files signed here with throwaway certificates.

A root CA and a signing certificate are made offline with `cryptography` (ES256 or PS256); files
are signed with `c2pa.Builder`: an AI generator's output (``c2pa.created`` with
``trainedAlgorithmicMedia``), a camera capture (``digitalCapture``), and a tampered copy whose
pixels changed after signing. The root is a trust anchor only where a test says so.
"""

from __future__ import annotations

import datetime
import io
import json

import pytest
from conftest import encode, make_image

from detector.evidence import c2pa_reader
from detector.evidence.c2pa_reader import IPTC_DST_PREFIX, TRUST_ANCHORS_ENV, read_c2pa
from detector.evidence.metadata import inspect_file
from detector.evidence.verdict import headline

c2pa = pytest.importorskip("c2pa")
pytest.importorskip("cryptography")

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

_USAGE = dict.fromkeys(
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


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "C2PA Test Org"),
        ]
    )


def make_signer(alg: str = "es256") -> tuple[object, str]:
    """A signer with a fresh root CA and signing certificate, and the root as PEM text."""
    now = datetime.datetime.now(datetime.UTC)

    def new_key():
        if alg == "es256":
            return ec.generate_private_key(ec.SECP256R1())
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    ca_key, key = new_key(), new_key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("C2PA Test Root"))
        .issuer_name(_name("C2PA Test Root"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **_USAGE),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("C2PA Test Signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **_USAGE),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    root = ca.public_bytes(serialization.Encoding.PEM)
    chain = cert.public_bytes(serialization.Encoding.PEM) + root
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    info = c2pa.C2paSignerInfo(alg=alg.encode(), sign_cert=chain, private_key=pem_key, ta_url=None)
    return c2pa.Signer.from_info(info), root.decode()


def manifest(source_type: str, tool: str) -> dict:
    return {
        "claim_generator_info": [{"name": tool, "version": "1.0"}],
        "title": "picture",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": IPTC_DST_PREFIX + source_type,
                            "softwareAgent": {"name": tool},
                        }
                    ]
                },
            }
        ],
    }


def sign(data: bytes, mime: str, source_type: str, tool: str, signer) -> bytes:
    out = io.BytesIO()
    with c2pa.Builder(manifest(source_type, tool)) as builder:
        builder.sign(signer, mime, io.BytesIO(data), out)
    return out.getvalue()


@pytest.fixture(scope="module")
def keys():
    return make_signer("es256")


@pytest.fixture(scope="module")
def generated(keys) -> bytes:
    """An AI generator's PNG, signed."""
    png = encode(make_image(96, 128, seed=3), "PNG")
    return sign(png, "image/png", "trainedAlgorithmicMedia", "Test Diffusion", keys[0])


@pytest.fixture(scope="module")
def captured(keys) -> bytes:
    """A camera's JPEG, signed."""
    jpeg = encode(make_image(96, 128, seed=4), "JPEG", quality=92)
    return sign(jpeg, "image/jpeg", "digitalCapture", "Test Camera", keys[0])


def tampered(data: bytes) -> bytes:
    """``data`` with pixels changed after signing: bytes flipped in the JPEG scan data."""
    changed = bytearray(data)
    end = changed.rfind(b"\xff\xd9")
    for offset in range(20, 60):
        changed[end - offset] ^= 0x55
    return bytes(changed)


@pytest.fixture(autouse=True)
def no_trust_list(monkeypatch):
    monkeypatch.delenv(TRUST_ANCHORS_ENV, raising=False)


# ------------------------------------------------------------------------------ the reader
def test_generator_made_image(generated):
    reading = read_c2pa(generated, "PNG")
    assert reading.status == "present" and reading.found
    details = reading.details
    assert reading.validation_state == details["validation_state"] == "Valid"
    assert "signingCredential.untrusted" in details["validation_problems"]
    assert details["claim_generator"].startswith("Test Diffusion 1.0")
    assert (details["signer"], details["signer_common_name"]) == (
        "C2PA Test Org",
        "C2PA Test Signer",
    )
    assert details["digital_source_types"] == ["trainedAlgorithmicMedia"]
    assert details["actions"] == [
        {
            "action": "c2pa.created",
            "digital_source_type": "trainedAlgorithmicMedia",
            "software_agent": "Test Diffusion",
        }
    ]
    assert details["trust_list"] == "none configured"
    assert reading.summary.startswith("signed by C2PA Test Org (C2PA Test Signer) with Test")
    json.dumps(details)


def test_camera_capture(captured):
    reading = read_c2pa(captured, "JPEG")
    assert reading.validation_state == "Valid"
    assert reading.details["digital_source_types"] == ["digitalCapture"]


def test_tampered_file_is_not_valid(captured):
    reading = read_c2pa(tampered(captured), "JPEG")
    assert reading.status == "present" and reading.validation_state == "Invalid"
    assert any("mismatch" in code for code in reading.details["validation_problems"])
    assert "changed after signing" in reading.summary


def test_ps256_signature(keys):
    signer, _root = make_signer("ps256")
    data = sign(encode(make_image(80, 80), "JPEG"), "image/jpeg", "digitalCapture", "Cam", signer)
    assert read_c2pa(data, "JPEG").validation_state == "Valid"


def test_trust_anchor_makes_it_trusted(captured, keys, tmp_path, monkeypatch):
    assert read_c2pa(captured, "JPEG", trust_anchors=keys[1]).validation_state == "Trusted"
    other_root = make_signer("es256")[1]
    assert read_c2pa(captured, "JPEG", trust_anchors=other_root).validation_state == "Valid"
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(keys[1])
    monkeypatch.setenv(TRUST_ANCHORS_ENV, str(anchors))
    reading = read_c2pa(captured, "JPEG")
    assert reading.validation_state == "Trusted" and reading.details["trust_list"] == "configured"
    assert read_c2pa(tampered(captured), "JPEG").validation_state == "Invalid"


def test_unusable_trust_list_is_said(captured, tmp_path, monkeypatch):
    monkeypatch.setenv(TRUST_ANCHORS_ENV, str(tmp_path / "missing.pem"))
    reading = read_c2pa(captured, "JPEG")
    assert reading.validation_state == "Valid" and "trust_list_problem" in reading.details
    (tmp_path / "junk.pem").write_text("not a certificate")
    monkeypatch.setenv(TRUST_ANCHORS_ENV, str(tmp_path / "junk.pem"))
    assert "no PEM" in read_c2pa(captured, "JPEG").details["trust_list_problem"]


def test_no_manifest_never_runs_the_reader(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the reader must not run without JUMBF")

    monkeypatch.setattr(c2pa.Reader, "try_create", refuse)
    reading = read_c2pa(encode(make_image(), "JPEG"), "JPEG")
    assert (reading.status, reading.found) == ("no_manifest", False)
    assert read_c2pa(b"plain text", None).status == "not_checked"


def test_manifest_words_without_a_manifest_are_no_manifest():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "jumb c2pa")  # passes the byte search: the reader says None
    reading = read_c2pa(encode(make_image(), "PNG", pnginfo=info), "PNG")
    assert (reading.status, reading.summary) == ("no_manifest", "no Content Credentials")


def test_library_missing():
    def missing():
        raise ImportError("no c2pa")

    reading = read_c2pa(b"jumb c2pa", "JPEG", load=missing)
    assert reading.status == "not_checked" and "not available" in reading.summary


def test_expired_reader_is_not_checked(generated):
    reading = read_c2pa(generated, "PNG", expired=lambda: True)
    assert reading.status == "not_checked" and reading.summary == c2pa_reader.TIME_BUDGET_REASON


def test_damaged_manifest_is_invalid(generated):
    start = generated.find(b"jumb")
    damaged = bytearray(generated)
    damaged[start + 100 : start + 400] = b"\x00" * 300
    reading = read_c2pa(bytes(damaged), "PNG")
    assert (reading.status, reading.found, reading.validation_state) == ("invalid", True, None)
    assert reading.details["error"]


# ------------------------------------------------------------------ evidence and headline
def test_generated_file_headline(generated):
    report = inspect_file(generated)
    item = report.item("c2pa")
    assert item.found and item.indicates == "ai_generated"
    found = headline(report, None, None)
    assert (found.label, found.basis) == ("ai_generated", "signature")
    assert "C2PA Test Org (C2PA Test Signer)" in found.reasons[0].text
    assert "no trust list" in found.reasons[0].strength
    assert [r.source for r in found.reasons] == ["c2pa"], "the manifest's own source type once"


def test_capture_headline_needs_a_trusted_certificate(captured, keys, tmp_path, monkeypatch):
    untrusted = headline(inspect_file(captured), None, None)
    assert untrusted.label == "cannot_tell"
    assert "does not decide" in untrusted.reasons[0].text
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(keys[1])
    monkeypatch.setenv(TRUST_ANCHORS_ENV, str(anchors))
    report = inspect_file(captured)
    assert report.item("c2pa").details["validation_state"] == "Trusted"
    trusted = headline(report, None, None)
    assert (trusted.label, trusted.basis) == ("camera_original", "signature")


def test_tampered_generated_file_counts_only_as_metadata(keys):
    jpeg = encode(make_image(96, 128, seed=5), "JPEG", quality=92)
    signed = sign(jpeg, "image/jpeg", "trainedAlgorithmicMedia", "Test Diffusion", keys[0])
    report = inspect_file(tampered(signed))
    assert report.item("c2pa").details["validation_state"] == "Invalid"
    found = headline(report, None, None)
    assert (found.label, found.basis) == ("ai_generated", "declaration")
    assert found.reasons[0].strength == "failed signature: as weak as plain metadata"


def test_tampered_capture_is_context_only(captured):
    found = headline(inspect_file(tampered(captured)), None, None)
    assert found.label == "cannot_tell"
    assert "does not validate" in found.reasons[0].text


def test_signed_pixels_are_still_decoded(captured):
    report = inspect_file(captured)
    assert report.readable and report.format == "JPEG"
    assert report.item("jpeg_quality").details["quality"] == 92
    assert report.item("watermark").indicates == "not_checked", "96 x 128 is too small for a mark"
