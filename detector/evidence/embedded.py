"""Text embedded in an image file: PNG, GIF and WebP text chunks, XMP packets, and what they say.

The chunks and packets are read with bounded work and bounded memory (`MAX_TEXT_BYTES`,
`MAX_TOTAL_TEXT_BYTES`, `MAX_TEXT_CHUNKS`, `MAX_XMP_PACKETS`: zTXt chunks inflate, so a small
file could otherwise hold gigabytes of text). `_dst_item` reads the IPTC digital source type
from the XMP (and from the raw bytes, where a packet was cut), which says whether a camera or an
algorithm made the picture; the generation settings are read from the same text
(`detector.evidence.generation`).
"""

from __future__ import annotations

import itertools
import re
import struct
import zlib
from typing import Any

from PIL import Image

from detector.core.containers import MAX_PNG_CHUNKS
from detector.core.exif import _truncate
from detector.evidence.c2pa_reader import (
    source_type_code,
)
from detector.evidence.generation import _AI_NAMES
from detector.evidence.report import (
    AI_SOURCE_TYPES,
    CAPTURE_SOURCE_TYPES,
    DIGITAL_SOURCE_TYPES,
    SYNTHETIC_SOURCE_TYPES,
    EvidenceItem,
    Indication,
    _item,
)

#: Largest text chunk or XMP packet decompressed or kept, in bytes.
MAX_TEXT_BYTES = 2 * 1024 * 1024
#: Most text kept from all of a file's text chunks together, in bytes (zTXt chunks inflate, so
#: a small file could otherwise hold gigabytes of text), and most text chunks read.
MAX_TOTAL_TEXT_BYTES = 8 * 1024 * 1024
MAX_TEXT_CHUNKS = 256
#: Most XMP packets kept, and most XMP text searched in all of them together, in characters.
MAX_XMP_PACKETS = 32
MAX_XMP_TOTAL_CHARS = 4 * 1024 * 1024
_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _text_chunks(data: bytes | None, img: Image.Image | None) -> dict[str, str]:
    """A file's text metadata: PNG text chunks, or the string values Pillow read (capped)."""
    if data is not None and data[:8] == _PNG_SIG:
        chunks = _png_text_chunks(data)
        if chunks:
            return chunks
    out: dict[str, str] = {}
    total = 0
    if img is not None:
        for key, value in img.info.items():
            if not isinstance(value, str) or str(key) == "XML:com.adobe.xmp":
                continue
            if len(out) >= MAX_TEXT_CHUNKS or total >= MAX_TOTAL_TEXT_BYTES:
                break
            value = value[: min(MAX_TEXT_BYTES, MAX_TOTAL_TEXT_BYTES - total)]
            out[str(key)[:200]] = value
            total += len(value)
    return out


def _png_text_chunks(data: bytes) -> dict[str, str]:
    """All tEXt / zTXt / iTXt chunks of a PNG, each capped at `MAX_TEXT_BYTES` and all of them
    together at `MAX_TOTAL_TEXT_BYTES` (compressed ones are inflated only that far)."""
    out: dict[str, str] = {}
    pos = 8
    end = len(data)
    total = 0
    walked = 0
    while pos + 8 <= end and len(out) < MAX_TEXT_CHUNKS and total < MAX_TOTAL_TEXT_BYTES:
        walked += 1
        if walked > MAX_PNG_CHUNKS:  # as many as `detector.core.images` accepts
            break
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        start = pos + 8
        pos += 12 + length
        if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
            if ctype == b"IEND":
                break
            continue
        body = data[start : start + length]
        if len(body) < length:
            break
        limit = min(MAX_TEXT_BYTES, MAX_TOTAL_TEXT_BYTES - total)
        try:
            if ctype == b"tEXt":
                key, _, value = body.partition(b"\x00")
                text = value[:limit].decode("latin-1")
            elif ctype == b"zTXt":
                key, _, rest = body.partition(b"\x00")
                text = _inflate(rest[1:], limit).decode("latin-1")
            else:
                key, _, rest = body.partition(b"\x00")
                compressed, _method = rest[0], rest[1]
                _lang, _, rest = rest[2:].partition(b"\x00")
                _translated, _, raw = rest.partition(b"\x00")
                raw = _inflate(raw, limit) if compressed else raw[:limit]
                text = raw.decode("utf-8", "replace")
        except (zlib.error, IndexError, UnicodeDecodeError, ValueError):
            continue
        out[key[:200].decode("latin-1")] = text
        total += len(text)
    return out


def _inflate(data: bytes, limit: int = MAX_TEXT_BYTES) -> bytes:
    inflater = zlib.decompressobj()
    return inflater.decompress(data, max(1, limit))


_dst_code = source_type_code
_XMP_START = (b"<x:xmpmeta", b"<x:xapmeta")
_XMP_END = (b"</x:xmpmeta>", b"</x:xapmeta>")


def _xmp_packets(
    data: bytes | None, img: Image.Image | None, png_text: dict[str, str]
) -> list[tuple[str, str]]:
    """(where, packet text) for every XMP packet found, deduplicated: at most `MAX_XMP_PACKETS`
    packets and `MAX_XMP_TOTAL_CHARS` characters in all."""
    found: list[tuple[str, str]] = []
    if "XML:com.adobe.xmp" in png_text:
        found.append(("PNG iTXt XML:com.adobe.xmp", png_text["XML:com.adobe.xmp"]))
    if img is not None:
        for marker, payload in getattr(img, "applist", []) or []:
            if len(found) >= 4 * MAX_XMP_PACKETS:  # duplicates are dropped below
                break
            if marker == "APP1" and payload.startswith(b"http://ns.adobe.com/xap/1.0/\x00"):
                found.append(("JPEG APP1 XMP", payload[29:].decode("utf-8", "replace")))
            elif marker == "APP1" and payload.startswith(b"http://ns.adobe.com/xmp/extension/"):
                found.append(("JPEG APP1 extended XMP", payload[75:].decode("utf-8", "replace")))
        for key in ("xmp", "XML:com.adobe.xmp"):
            value = img.info.get(key)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, str) and value:
                found.append((f"{img.format or 'image'} XMP ({key})", value))
    if data is not None:
        for start_tag, end_tag in zip(_XMP_START, _XMP_END, strict=True):
            pos = 0
            while len(found) < MAX_XMP_PACKETS:
                start = data.find(start_tag, pos)
                if start < 0:
                    break
                stop = data.find(end_tag, start, start + MAX_TEXT_BYTES)
                if stop < 0:
                    break
                packet = data[start : stop + len(end_tag)].decode("utf-8", "replace")
                found.append(("XMP packet in the file bytes", packet))
                pos = stop + len(end_tag)
    seen: set[str] = set()
    unique: list[tuple[str, str]] = []
    total = 0
    for where, text in found:
        if len(unique) >= MAX_XMP_PACKETS or total >= MAX_XMP_TOTAL_CHARS:
            break
        room = min(MAX_TEXT_BYTES, MAX_XMP_TOTAL_CHARS - total)
        key = text[: room + 1024].strip()[:room]
        body = key[key.find("<x:x") :] if "<x:x" in key else key
        if body in seen:
            continue
        seen.add(body)
        unique.append((where, key))
        total += len(key)
    return unique


_DST_ATTR = re.compile(r"DigitalSourceType\s*+=\s*+[\"']([^\"']*+)[\"']", re.IGNORECASE)
# A DigitalSourceType element: its attributes (read for rdf:resource separately) and the text
# after it. Every repeat stops at the next "<" or ">", and is possessive, so a search is linear.
_DST_ELEM = re.compile(r"<[\w.-]*:?DigitalSourceType([^<>]*+)>\s*+([^<\s]*+)", re.IGNORECASE)
_RDF_RESOURCE = re.compile(r"rdf:resource\s*+=\s*+[\"']([^\"'<>]*+)[\"']", re.IGNORECASE)
_DST_URL = re.compile(rb"cv\.iptc\.org/newscodes/digitalsourcetype/([A-Za-z]+)")
# The element form takes no leading-space run of its own: "\s*([^<]*)<" was quadratic on a
# long run of spaces with no closing tag; the value is stripped afterwards.
_CREATOR_TOOL = re.compile(
    r"CreatorTool\s*+=\s*+[\"']([^\"']*+)[\"']|<xmp:CreatorTool>([^<]*+)<", re.IGNORECASE
)
#: Most matches of each pattern read from XMP or the file bytes, and most distinct values and
#: creator tools kept (a hostile packet can repeat a tag a hundred thousand times).
MAX_XMP_MATCHES = 10_000
MAX_XMP_VALUES = 50


def _matches(pattern: re.Pattern, text: Any) -> list[Any]:
    """The groups of at most `MAX_XMP_MATCHES` matches of ``pattern``, as ``findall`` gives them."""
    found = []
    for match in itertools.islice(pattern.finditer(text), MAX_XMP_MATCHES):
        groups = match.groups()
        found.append(groups[0] if len(groups) == 1 else groups)
    return found


def _dst_item(packets: list[tuple[str, str]], data: bytes | None) -> EvidenceItem:
    values: dict[str, dict[str, None]] = {}
    creator_tools: dict[str, None] = {}
    for where, text in packets:
        codes = _matches(_DST_ATTR, text)
        for attributes, body in _matches(_DST_ELEM, text):
            resource = _RDF_RESOURCE.search(attributes)
            code = resource.group(1) if resource else body
            if code:
                codes.append(code)
        codes += [m.decode() for m in _matches(_DST_URL, text.encode("utf-8", "replace"))]
        for code in codes:
            key = _truncate(_dst_code(code), 120)
            if key in values or len(values) < MAX_XMP_VALUES:
                values.setdefault(key, {})[where] = None
        for a, b in _matches(_CREATOR_TOOL, text):
            tool = _truncate((a or b or "").strip(), 120)  # CreatorTool="" gives ("", None)
            if tool and len(creator_tools) < MAX_XMP_VALUES:
                creator_tools.setdefault(tool)
    if data is not None:
        for match in _matches(_DST_URL, data):
            code = match.decode()
            if code not in values and len(values) < MAX_XMP_VALUES:
                values[code] = {"in binary metadata outside XMP (e.g. a C2PA manifest)": None}
    found_in = {k: sorted(v) for k, v in values.items() if k}
    tools = list(creator_tools)
    details: dict[str, Any] = {
        "xmp_packets": len(packets),
        "values": {k: DIGITAL_SOURCE_TYPES.get(k, "unknown code") for k in found_in},
        "found_in": found_in,
    }
    if tools:
        details["creator_tool"] = tools
    if not found_in:
        summary = "no DigitalSourceType" + (
            f" (XMP present: {len(packets)} packet(s))" if packets else " (no XMP)"
        )
        indicates: Indication = "neutral"
        if tools and any(_AI_NAMES.search(t) for t in tools):
            summary += f"; XMP CreatorTool names a generator: {tools[0]}"
            indicates = "ai_generated"
            return _item("digital_source_type", True, details, summary, indicates)
        return _item("digital_source_type", False, details, summary, indicates)
    codes = set(values)
    if codes & AI_SOURCE_TYPES:
        indicates = "ai_generated"
    elif codes & CAPTURE_SOURCE_TYPES:
        indicates = "camera_capture"
    elif codes & SYNTHETIC_SOURCE_TYPES:
        indicates = "ai_generated" if "algorithmicMedia" not in codes else "neutral"
    else:
        indicates = "neutral"
    summary = "; ".join(f"{k} ({DIGITAL_SOURCE_TYPES.get(k, 'unknown code')})" for k in values)
    return _item("digital_source_type", True, details, summary, indicates)
