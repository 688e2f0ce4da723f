"""Metadata built to cost as much CPU as possible: every file is answered within a fixed budget.

The provenance parser reads text that whoever made the file chose. Each case below is among the
worst inputs for a backtracking pattern (long runs of newlines, spaces, digits, letters after
``Steps:``, unclosed quotes full of escapes) at the largest size a container allows, and must be
inspected in well under a second: a quadratic pattern needs minutes to hours for these, and
holds the interpreter lock all that time.
"""

from __future__ import annotations

import io
import json
import struct
import time
import zlib

import pytest
from conftest import encode, make_image
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from detector.core.exif import _Exif
from detector.evidence import metadata as evidence
from detector.evidence.embedded import _dst_item
from detector.evidence.generation import (
    _A1111_SETTINGS,
    MAX_PARSE_CHARS,
    _generation_item,
    _parse_a1111,
    _parse_comfy,
    _parse_settings,
)
from detector.evidence.metadata import inspect_file
from detector.evidence.report import TIME_BUDGET_REASON, _Deadline

#: Seconds one inspection may take: a linear parse of these files needs a few milliseconds, a
#: quadratic one needs minutes.
BUDGET = 1.0
#: Largest text the cases carry: a PNG text chunk, an EXIF block, an XMP packet.
BIG = 2 * 1024 * 1024
#: A JPEG segment holds at most 65,533 bytes.
SEGMENT = 65_533

WORST_TEXT = {
    "letters after Steps": "Steps: 1, " + "a" * BIG,
    "newlines": "\n" * BIG,
    "newlines then spaces": "\n" + " " * BIG,
    "newline-space pairs": "\n " * (BIG // 2),
    "Steps lines": "Steps: 1\n" * (BIG // 9),
    "digits after Steps": "Steps: " + "1" * BIG,
    "spaces after Steps": "Steps:" + " " * BIG,
    "key characters": "Steps: 1, " + "a b/c+d-" * (BIG // 8),
    "colons": "Steps: 1, " + ":" * BIG,
    "blank keys": "Steps: 1, " + " : x," * (BIG // 6),
    "unclosed escapes": 'Steps: 1, Key: "' + "\\a" * (BIG // 2),
    "quoted commas": "Steps: 1, " + 'K: "x, ' * (BIG // 7),
    "settings words": "Steps: 1 " + "Sample " * (BIG // 7),
}


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_with(*chunks: bytes) -> bytes:
    png = encode(make_image(), "PNG")
    return png[:33] + b"".join(chunks) + png[33:]  # right after IHDR


def jpeg_with(*segments: bytes) -> bytes:
    jpeg = encode(make_image(), "JPEG")
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def jpeg_segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def user_comment_exif(text: str) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + text.encode("latin-1")
    return exif.tobytes()


def containers(text: str) -> dict[str, bytes]:
    """The text in each place the parser reads it from, at the most each place holds."""
    raw = text.encode("latin-1")
    jpeg_text = raw[:SEGMENT]
    return {
        "PNG tEXt parameters": png_with(_chunk(b"tEXt", b"parameters\x00" + raw)),
        "PNG tEXt Comment": png_with(_chunk(b"tEXt", b"Comment\x00" + raw)),
        "PNG zTXt parameters": png_with(  # Pillow itself refuses to inflate over 1 MiB
            _chunk(b"zTXt", b"parameters\x00\x00" + zlib.compress(raw[: 1024 * 1024], 9))
        ),
        "PNG eXIf UserComment": png_with(_chunk(b"eXIf", user_comment_exif(text))),
        "JPEG COM": jpeg_with(*[jpeg_segment(0xFE, jpeg_text)] * 4),
        "JPEG EXIF UserComment": jpeg_with(
            jpeg_segment(0xE1, b"Exif\x00\x00" + user_comment_exif(text[: SEGMENT - 200]))
        ),
    }


def timed_inspect(data: bytes, **kwargs) -> tuple[evidence.EvidenceReport, float]:
    start = time.perf_counter()
    report = inspect_file(data, **kwargs)
    return report, time.perf_counter() - start


@pytest.mark.parametrize("name", list(WORST_TEXT))
def test_worst_metadata_text_is_inspected_within_budget(name):
    for where, data in containers(WORST_TEXT[name]).items():
        report, seconds = timed_inspect(data)
        assert seconds < BUDGET, f"{name} in {where}: {seconds:.2f} s"
        assert report.readable
        assert report.item("generation_settings").indicates != "not_checked"
        json.dumps(report.to_dict())


def test_settings_line_of_a_megabyte_parses_in_a_tenth_of_a_second():
    text = "a prompt\nSteps: 1, Sampler: Euler, " + "Seed: 1, " * (1024 * 1024 // 9)
    start = time.perf_counter()
    parsed = _parse_a1111(text)
    assert time.perf_counter() - start < 0.1
    assert parsed["prompt"] == "a prompt"
    assert parsed["settings"]["Steps"] == "1" and parsed["settings"]["Seed"] == "1"


def test_long_values_keep_their_settings_line():
    prompt = "a very long prompt, " * (MAX_PARSE_CHARS // 10)
    parsed = _parse_a1111(prompt + "\nSteps: 30, Sampler: Euler a, Seed: 7")
    assert parsed["settings"] == {"Steps": "30", "Sampler": "Euler a", "Seed": "7"}
    item = inspect_file(
        png_with(_chunk(b"tEXt", b"Comment\x00" + prompt.encode() + b"\nSteps: 3, Seed: 1"))
    )
    assert item.item("generation_settings").found


def test_settings_split_like_webui_writes_them():
    line = 'Steps: 20, Sampler: DPM++ 2M, Lora hashes: "a: 1, b: 2", Size: 512x512, TI: "x\\"y"'
    assert _parse_settings(line) == {
        "Steps": "20",
        "Sampler": "DPM++ 2M",
        "Lora hashes": '"a: 1, b: 2"',
        "Size": "512x512",
        "TI": '"x\\"y"',
    }
    assert _parse_settings('Steps: 1, Broken: "never closed, Seed: 5') == {
        "Steps": "1",
        "Broken": '"never closed',
        "Seed": "5",
    }
    assert _parse_settings("Model.hash: abc, : orphan, Seed: 2") == {"hash": "abc", "Seed": "2"}


def test_xmp_floods_are_searched_in_linear_time():
    packets = {
        "DigitalSourceType tags": "<x:DigitalSourceType " * (BIG // 21),
        "rdf:resource without end": "<x:DigitalSourceType " + "rdf:resource='x' " * (BIG // 17),
        "CreatorTool spaces": "<xmp:CreatorTool>" + " " * BIG,
        "CreatorTool quotes": "CreatorTool='" + "a" * BIG,
        "tag prefixes": "<" + "a" * BIG,
        "distinct creator tools": "".join(f'CreatorTool="t{i}" ' for i in range(BIG // 20)),
        "distinct source types": "".join(
            f'<x:DigitalSourceType rdf:resource="c{i}"/>' for i in range(BIG // 45)
        ),
    }
    for name, body in packets.items():
        xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/">{body}</x:xmpmeta>'.encode()
        data = png_with(_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp))
        report, seconds = timed_inspect(data)
        assert seconds < BUDGET, f"{name}: {seconds:.2f} s"
        item = report.item("digital_source_type")
        assert item.indicates != "not_checked"
        assert len(item.details["values"]) <= 50 and len(item.details.get("creator_tool", ())) <= 50


def test_xmp_digital_source_type_forms_still_read():
    url = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    for body in (
        f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{url}"/>',
        f"<Iptc4xmpExt:DigitalSourceType>{url}</Iptc4xmpExt:DigitalSourceType>",
        "<Iptc4xmpExt:DigitalSourceType>  trainedAlgorithmicMedia </Iptc4xmpExt:DigitalSourceType>",
    ):
        item = _dst_item([("test", f"<x:xmpmeta>{body}</x:xmpmeta>")], None)
        assert "trainedAlgorithmicMedia" in item.details["values"], body
    item = _dst_item([("t", "<xmp:CreatorTool>   Midjourney 6  </xmp:CreatorTool>")], None)
    assert item.details["creator_tool"] == ["Midjourney 6"]


@pytest.mark.parametrize(
    "text",
    [
        "[" * 200_000 + "]" * 200_000,
        '{"a": ' * 100_000 + "1" + "}" * 100_000,
        json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": []}}}).replace(
            "[]", "[" * 900 + "]" * 900
        ),
        json.dumps({"1": {"class_type": ["x"] * 3, "inputs": {"ckpt_name": {"a": 1}}}}),
        "{" + '"k": 1, ' * 200_000 + '"z": 2}',
    ],
    ids=["deep list", "deep object", "deep sampler input", "odd types", "over the JSON cap"],
)
def test_comfy_json_of_any_shape_gives_a_report(text):
    _parse_comfy(text)  # never raises
    data = png_with(_chunk(b"tEXt", b"prompt\x00" + text.encode()))
    report, seconds = timed_inspect(data)
    assert seconds < BUDGET
    json.dumps(report.to_dict())
    assert report.item("generation_settings").found


def test_zip_bombs_in_many_chunks_are_capped_in_total():
    bomb = zlib.compress(b"Steps: 1, Seed: 2, " + b"a" * (4 * 1024 * 1024), 9)
    keys = [
        "".join(c.upper() if i >> n & 1 else c for n, c in enumerate("comment")) for i in range(128)
    ]
    chunks = [_chunk(b"zTXt", key.encode() + b"\x00\x00" + bomb) for key in keys]
    report, seconds = timed_inspect(png_with(*chunks))  # Pillow refuses it; the text is read
    assert seconds < BUDGET
    item = report.item("generation_settings")
    assert item.found and len(item.details["keys"]) <= 5


def test_time_budget_turns_unreached_items_into_not_checked(monkeypatch):
    report = inspect_file(encode(make_image(), "PNG"), time_budget=0)
    assert report.item("file").found
    for item in report.items[1:]:
        assert item.indicates == "not_checked" and item.summary == TIME_BUDGET_REASON

    def slow(*args):
        time.sleep(0.3)
        return evidence._not_checked("digital_source_type", "slow")

    monkeypatch.setattr(evidence, "_dst_item", slow)
    report, seconds = timed_inspect(encode(make_image(), "PNG"), time_budget=0.1)
    assert seconds < 0.3 + BUDGET
    assert report.item("c2pa").summary != TIME_BUDGET_REASON
    assert report.item("digital_source_type").summary == "slow"
    assert report.item("exif").summary == TIME_BUDGET_REASON


def test_c2pa_reader_stops_at_the_deadline():
    pytest.importorskip("c2pa")
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    comment = b"\x21\xfe\x09jumb c2pa\x00"  # looks like a manifest to a byte search
    gif = (
        b"GIF89a"
        + struct.pack("<HHBBB", 16, 16, 0x80, 0, 0)
        + b"\x00\x00\x00\xff\xff\xff"
        + comment
        + frame * 200_000
        + b"\x3b"
    )
    item = evidence._c2pa_item(gif, "GIF", _Deadline(0.2))
    assert item.indicates == "not_checked" and item.summary == TIME_BUDGET_REASON
    report, seconds = timed_inspect(gif, time_budget=0.5)
    assert seconds < 0.5 + 2 * BUDGET
    assert report.item("file").details["frames"] == 1000
    assert "at least" in report.item("file").details["frames_note"]


def test_files_without_a_manifest_skip_the_c2pa_reader(monkeypatch):
    c2pa = pytest.importorskip("c2pa")

    def refuse(*args, **kwargs):
        raise AssertionError("the reader must not run on a file without JUMBF")

    monkeypatch.setattr(c2pa.Reader, "try_create", refuse)
    item = inspect_file(encode(make_image(), "JPEG")).item("c2pa")
    assert item.details["status"] == "no_manifest"


_PIECES = [
    "Steps:",
    "Steps: 1",
    "Sampler:",
    "Seed: 3",
    "CFG scale:",
    "Negative prompt:",
    "\n",
    "\r\n",
    " ",
    "\t",
    ",",
    ", ",
    ":",
    '"',
    "\\",
    '\\"',
    "a",
    "1",
    "{",
    "}",
    "[",
    "]",
    "<x:DigitalSourceType ",
    "rdf:resource='",
    "<xmp:CreatorTool>",
    'CreatorTool="',
    ">",
    "<",
    "midjourney",
    "é",
    "\x00",
]
_texts = st.one_of(
    st.text(max_size=400),
    st.lists(st.sampled_from(_PIECES), max_size=200).map("".join),
    st.tuples(
        st.lists(st.sampled_from(_PIECES), min_size=1, max_size=6), st.integers(1, 40_000)
    ).map(lambda pair: "".join(pair[0]) * (pair[1] // len("".join(pair[0]) or "x"))),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts)
@example(text='CREATORTOOL=""')  # an empty creator tool in an attribute once raised
def test_parser_returns_quickly_and_never_raises_on_any_text(text):
    start = time.perf_counter()
    _parse_a1111(text)
    _A1111_SETTINGS.search(text[:MAX_PARSE_CHARS])
    _parse_settings(text[:MAX_PARSE_CHARS])
    _parse_comfy(text)
    item = _generation_item(
        {"parameters": text, "Comment": text, "prompt": text, "Description": text}, _Exif(), None
    )
    dst = _dst_item([("random", text)], text.encode("utf-8", "replace"))
    json.dumps(item.to_dict())
    json.dumps(dst.to_dict())
    assert time.perf_counter() - start < BUDGET


def test_pillow_image_sources_are_capped_too():
    img = Image.open(io.BytesIO(png_with(_chunk(b"tEXt", b"Comment\x00" + b"\n" * BIG))))
    start = time.perf_counter()
    report = inspect_file(img)
    assert time.perf_counter() - start < BUDGET
    assert report.item("generation_settings").indicates != "not_checked"


def test_odd_values_in_a_c2pa_manifest_stay_scalars():
    deep: list = []
    for _ in range(5000):  # deeper than any recursive walk could follow
        deep = [deep]
    action = {"action": deep, "digitalSourceType": deep, "softwareAgent": {"name": deep}}
    manifest = {
        "claim_generator": deep,
        "title": {"a": deep},
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
        "signature_info": {"issuer": deep, "time": deep},
    }
    store = {
        "active_manifest": "m",
        "manifests": {"m": manifest},
        "validation_status": [{"code": deep}],
    }
    item = evidence._c2pa_found(store, "Valid")
    text = json.dumps(item.to_dict())
    assert item.details["claim_generator"] == "<list>" and "<list>" in text
