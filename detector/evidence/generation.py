"""Generation settings that image generators write into a file, found and parsed in bounded time.

Stable Diffusion WebUI (A1111) writes a prompt and a settings line, ComfyUI a JSON prompt and
workflow, other tools their names and parameters, into PNG text chunks, EXIF comments or XMP.
`_generation_item` finds them and parses what it can; every search and parse is linear and
capped (`MAX_PARSE_CHARS`, `MAX_JSON_CHARS`, `MAX_SETTINGS`), because the text comes from
whoever made the file.
"""

from __future__ import annotations

import json
import re
from typing import Any

from PIL import Image

from detector.core.exif import _Exif, _truncate
from detector.evidence.report import (
    TIME_BUDGET_REASON,
    EvidenceItem,
    _Deadline,
    _item,
    _jsonable,
)

#: Longest part of one metadata value searched or parsed for generation settings, in
#: characters. Prompts and settings lines are a few KiB; a longer value keeps its first and
#: last halves of this (WebUI writes its settings on the last line).
MAX_PARSE_CHARS = 32 * 1024
#: Longest JSON value (a ComfyUI prompt or workflow) parsed, in characters.
MAX_JSON_CHARS = 1024 * 1024
#: PNG text keys that image generators write with their settings.
GENERATOR_KEYS: dict[str, str] = {
    "parameters": "Stable Diffusion WebUI (AUTOMATIC1111 / Forge / SD.Next)",
    "prompt": "ComfyUI",
    "workflow": "ComfyUI",
    "invokeai_metadata": "InvokeAI",
    "invokeai_graph": "InvokeAI",
    "invokeai_workflow": "InvokeAI",
    "sd-metadata": "InvokeAI (2.x)",
    "dream": "InvokeAI (legacy 'dream')",
    "fooocus_scheme": "Fooocus",
    "generation_data": "an online generator ('generation_data')",
    "negative_prompt": "a Stable Diffusion front end",
    "sui_image_params": "SwarmUI",
}
#: PNG text keys that only hint at a generator when their value names one.
HINT_KEYS = frozenset(
    {"comment", "software", "source", "description", "author", "title", "generator", "model"}
)
_AI_NAMES = re.compile(
    r"stable[\s_-]?diffusion|\bsdxl\b|midjourney|dall[\s·._-]?e|novelai|comfyui|automatic1111|"
    r"invokeai|fooocus|\bfirefly\b|leonardo[\s.]?ai|dreamstudio|\bflux(?:\.1)?\b|craiyon|"
    r"nightcafe|image creator|ideogram|playground\s?ai|kandinsky|gpt-?4o|\bsora\b|openai|"
    r"imagen\s?\d|\bgemini\b|stability\s?ai|\bjob id:",
    re.IGNORECASE,
)
_EDITOR_NAMES = re.compile(
    r"photoshop|lightroom|\bgimp\b|affinity|snapseed|pixelmator|capture one|darktable|"
    r"paint\.net|picasa|instagram|facetune|\bcanva\b|luminar|photopea|rawtherapee|"
    r"acdsee|irfanview|xnview|imagemagick|pillow|\bpil\b",
    re.IGNORECASE,
)
# A WebUI settings line: "Steps: 20, Sampler: ..., Seed: ...". Anchored at each line start and
# confined to one line, with a possessive digit run, so a search is linear in the text's length
# (a pattern whose leading whitespace could span newlines took quadratic time).
_A1111_SETTINGS = re.compile(
    r"^[ \t]*Steps:[ \t]*\d++[^\n]*?(?:Sampler|Seed|CFG scale):", re.IGNORECASE | re.MULTILINE
)
#: Most settings kept from one WebUI settings line.
MAX_SETTINGS = 40
_STEPS_LINE = re.compile(r"\s*+Steps:\s*+\d")
# A double-quoted value with backslash escapes; the two branches cannot match the same text, so
# an unclosed quote fails in linear time (the old pattern backtracked exponentially).
_QUOTED = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
# Characters a settings key may hold, matched on the reversed text before a colon.
_KEY_CHARS = re.compile(r"[\w\s/+-]*+")
_SPACES = re.compile(r"\s*+")
#: What `str.splitlines` splits on.
_LINE_BREAKS = ("\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
#: Longest quoted settings value looked for, in characters.
MAX_QUOTED_CHARS = 2048


def _capped(text: str, limit: int = MAX_PARSE_CHARS) -> str:
    """``text``, or at most ``limit`` characters of it: the first half, then the start of its
    last line (where WebUI writes its settings)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    last = max(text.rfind(mark) for mark in _LINE_BREAKS) + 1
    if last <= half:
        return text[:limit]
    return f"{text[:half]}\n{text[last : last + half]}"


def _parse_settings(line: str) -> dict[str, str]:
    """Split ``Key: value, Key: "quoted, value", ...`` into a dict, in linear time.

    A key is the run of word characters, spaces, ``/``, ``+`` and ``-`` just before a colon; a
    value runs to the next comma, unless it is a double-quoted string (kept with its quotes),
    which may hold commas.
    """
    settings: dict[str, str] = {}
    pos, end = 0, len(line)
    while pos < end and len(settings) < MAX_SETTINGS:
        colon = line.find(":", pos)
        if colon < 0:
            break
        before = line[pos:colon]
        key = before[len(before) - _KEY_CHARS.match(before[::-1]).end() :]
        if not key:  # no key before this colon: look for one after it
            pos = colon + 1
            continue
        start = _SPACES.match(line, colon + 1).end()
        quoted = None
        if line.startswith('"', start):  # scanned at most MAX_QUOTED_CHARS: linear overall
            quoted = _QUOTED.match(line, start, min(end, start + MAX_QUOTED_CHARS))
        if quoted is not None:
            comma = line.find(",", quoted.end())
            if line[quoted.end() : end if comma < 0 else comma].strip():
                quoted = None  # text after the closing quote: not a quoted value after all
        if quoted is not None:
            value = quoted.group(0)
        else:
            comma = line.find(",", start)
            value = line[start : end if comma < 0 else comma]
        if key.strip():  # a blank key still takes its value, as WebUI's own parser does
            settings[key.strip()] = _truncate(value.strip(), 120)
        pos = end if comma < 0 else comma + 1
    return settings


def _parse_a1111(text: str) -> dict[str, Any]:
    """Split Stable Diffusion WebUI ``parameters`` text into prompt, negative prompt, settings.

    The text is capped at `MAX_PARSE_CHARS` first, and every step is linear in its length.
    """
    lines = _capped(text).strip().splitlines()
    settings_line = ""
    if lines and _STEPS_LINE.match(lines[-1]):
        settings_line = lines.pop()
    negative: list[str] = []
    prompt: list[str] = []
    target = prompt
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative
            line = line[len("Negative prompt:") :].strip()
        target.append(line)
    settings = _parse_settings(settings_line)
    out: dict[str, Any] = {"prompt": _truncate("\n".join(prompt).strip())}
    if negative:
        out["negative_prompt"] = _truncate("\n".join(negative).strip())
    if settings:
        out["settings"] = settings
    return out


def _plain(value: Any) -> Any:
    """A JSON scalar as it is; anything else (lists, objects of any depth) by its type name."""
    if isinstance(value, str):
        return _truncate(value, 120)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return f"<{type(value).__name__}>"


def _parse_comfy(text: str) -> dict[str, Any] | None:
    """The node types, models, prompts and samplers of a ComfyUI prompt or workflow (JSON).

    Returns None when the text is not a JSON object, is longer than `MAX_JSON_CHARS`, or is
    nested too deeply to parse.
    """
    if len(text) > MAX_JSON_CHARS:
        return None
    try:
        graph = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(graph, dict):
        return None
    nodes = graph.get("nodes") if isinstance(graph.get("nodes"), list) else graph.values()
    classes: dict[str, None] = {}
    models: dict[str, None] = {}
    prompts: list[str] = []
    samplers: list[dict[str, Any]] = []
    for node in list(nodes)[:2000]:
        if not isinstance(node, dict):
            continue
        ctype = node.get("class_type") or node.get("type") or ""
        ctype = _truncate(ctype, 120) if isinstance(ctype, str) else ""
        if ctype:
            classes.setdefault(ctype)
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        for key in ("ckpt_name", "unet_name", "model_name", "lora_name"):
            if isinstance(inputs.get(key), str):
                models.setdefault(_truncate(inputs[key], 120))
        if "CLIPTextEncode" in ctype and isinstance(inputs.get("text"), str):
            prompts.append(_truncate(inputs["text"], 200))
        if "Sampler" in ctype:
            samplers.append(
                {
                    k: _plain(inputs[k])
                    for k in ("seed", "steps", "cfg", "sampler_name")
                    if k in inputs
                }
            )
    return {
        "node_types": list(classes)[:30],
        "models": list(models)[:10],
        "prompts": prompts[:4],
        "samplers": _jsonable(samplers[:4]),
    }


def _printable_ascii(text: str) -> int:
    """How many of the first 4096 characters are printable ASCII (picks a UTF-16 byte order)."""
    return sum(c.isascii() and c.isprintable() for c in text[:4096])


def _user_comment(value: Any) -> str:
    if not isinstance(value, bytes):
        return value if isinstance(value, str) else str(value or "")[:MAX_PARSE_CHARS]
    head, body = value[:8], value[8:]
    if head.startswith(b"UNICODE"):
        candidates = [body.decode(enc, "replace") for enc in ("utf-16-be", "utf-16-le")]
        return max(candidates, key=_printable_ascii)
    if head.startswith((b"ASCII", b"\x00\x00\x00\x00\x00\x00\x00\x00")):
        return body.decode("latin-1")
    return value.decode("utf-8", "replace")


def _generation_item(
    text: dict[str, str],
    exif: _Exif,
    img: Image.Image | None,
    deadline: _Deadline | None = None,
) -> EvidenceItem:
    keys: dict[str, str] = {}
    tools: list[str] = []
    parsed: dict[str, Any] = {}
    other: list[str] = []
    incomplete = False
    named_novelai = any("novelai" in _capped(v).lower() for v in text.values())
    for key, value in text.items():
        if deadline is not None and deadline.expired():
            incomplete = True
            break
        low = key.lower()
        if low in GENERATOR_KEYS:
            keys[key] = _truncate(value)
            tool = GENERATOR_KEYS[low]
            if low == "parameters":
                stripped = value.strip()
                if stripped.startswith("{"):
                    tool = "SwarmUI" if "sui_image_params" in stripped else "a JSON 'parameters'"
                    if "fooocus" in stripped.lower():
                        tool = "Fooocus"
                else:
                    parsed["parameters"] = _parse_a1111(value)
            elif low in ("prompt", "workflow"):
                comfy = _parse_comfy(value)
                if comfy is not None:
                    parsed[low] = comfy
                elif len(value) > MAX_JSON_CHARS and value.lstrip().startswith("{"):
                    parsed[low] = {"status": f"not parsed: over {MAX_JSON_CHARS} characters"}
                else:
                    tool = "a Stable Diffusion front end ('prompt' text)"
            if tool not in tools:
                tools.append(tool)
        elif low in HINT_KEYS:
            capped = _capped(value)
            if _AI_NAMES.search(capped) or (low == "comment" and _looks_like_settings(value)):
                keys[key] = _truncate(value)
                tool = "NovelAI" if named_novelai else None
                if low == "description" and "job id:" in capped.lower():
                    tool = "Midjourney"
                tool = tool or f"a generator named in '{key}'"
                if tool not in tools:
                    tools.append(tool)
            else:
                other.append(key)
        elif low not in ("xml:com.adobe.xmp",):
            other.append(key)
    # JPEG / WebP: WebUI writes its parameters into the EXIF UserComment; some tools use
    # ImageDescription, Software or the JPEG COM segment.
    comment = _user_comment(exif.exif.get(0x9286)).strip("\x00 ")
    if comment and _A1111_SETTINGS.search(_capped(comment)):
        keys["EXIF UserComment"] = _truncate(comment)
        parsed["EXIF UserComment"] = _parse_a1111(comment)
        tools.append(GENERATOR_KEYS["parameters"])
    for tag, name in ((0x010E, "EXIF ImageDescription"), (0x0131, "EXIF Software")):
        value = exif.base.get(tag)
        if isinstance(value, str) and _names_generator(_capped(value)):
            keys[name] = _truncate(value)
            tools.append(f"a generator named in {name}")
    jpeg_comment = img.info.get("comment") if img is not None else None
    if isinstance(jpeg_comment, bytes):
        jpeg_comment = _capped_bytes(jpeg_comment).decode("utf-8", "replace")
    if isinstance(jpeg_comment, str) and _names_generator(_capped(jpeg_comment)):
        keys["JPEG comment"] = _truncate(jpeg_comment)
        tools.append("a generator named in the JPEG comment")
    details: dict[str, Any] = {"keys": keys}
    if tools:
        details["tools"] = list(dict.fromkeys(tools))
    if parsed:
        details["parsed"] = parsed
    if other:
        details["other_text_keys"] = other[:20]
    if incomplete:
        details["incomplete"] = TIME_BUDGET_REASON
    if not keys:
        summary = "none found" + (f" (other text keys: {', '.join(other[:5])})" if other else "")
        if incomplete:
            return _item("generation_settings", False, details, TIME_BUDGET_REASON, "not_checked")
        return _item("generation_settings", False, details, summary, "neutral")
    summary = "generation settings found: " + ", ".join(keys) + " — " + "; ".join(details["tools"])
    return _item("generation_settings", True, details, summary, "ai_generated")


def _names_generator(text: str) -> bool:
    return bool(_A1111_SETTINGS.search(text) or _AI_NAMES.search(text))


def _capped_bytes(value: bytes, limit: int = MAX_PARSE_CHARS) -> bytes:
    """At most ``limit`` bytes of ``value``: the first half, then the start of its last line."""
    if len(value) <= limit:
        return value
    half = limit // 2
    last = value.rfind(b"\n") + 1
    if last <= half:
        return value[:limit]
    return value[:half] + b"\n" + value[last : last + half]


def _looks_like_settings(value: str) -> bool:
    """Whether a comment holds generation settings: a JSON object with sampler keys (parsed
    only up to `MAX_JSON_CHARS`), or a WebUI settings line."""
    if len(value) <= MAX_JSON_CHARS and value.lstrip().startswith("{"):
        try:
            data = json.loads(value)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict):
            return bool({"steps", "sampler", "seed", "scale"} & set(data))
    return bool(_A1111_SETTINGS.search(_capped(value)))
