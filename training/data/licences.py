"""Licences and authors of the kit's photos, read from the packages' own records.

Debian packages describe their files' copyright in ``debian/copyright`` (DEP-5, `parse_dep5` and
`dep5_lookup`), GCompris in a README per image folder (`parse_gcompris_readme`);
`normalize_licence` maps the many spellings to SPDX-like names and `clean_author` keeps the
author's name. `training.data.sources.list_photos` attaches both to every photo.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

_LICENCE_MAP = [
    (r"^public[\s-]*domain$", "public-domain"),
    (r"^cc0(?:[\s-]*1\.0)?$", "CC0-1.0"),
    (r"^cc[\s-]*by[\s-]*sa[\s-]*(\d\.\d)$", "CC-BY-SA-{0}"),
    (r"^cc[\s-]*by[\s-]*(\d\.\d)$", "CC-BY-{0}"),
    (r"^gpl[\s-]*v?(\d)(\+?)$", "GPL-{0}{1}"),
    (r"^gpl[\s-]*v?(\d)[\s-]*or[\s-]*later$", "GPL-{0}+"),
]


def normalize_licence(text: str) -> str:
    """``CC-BY-SA 4.0`` -> ``CC-BY-SA-4.0``, ``Public Domain`` -> ``public-domain`` ..."""
    t = text.strip()
    for pat, fmt in _LICENCE_MAP:
        m = re.match(pat, t, flags=re.I)
        if m:
            return fmt.format(*m.groups())
    return t


def clean_author(copyright_text: str) -> str:
    """Names from a Copyright field: years, e-mail addresses and (c) signs removed."""
    names = []
    for line in copyright_text.splitlines():
        s = re.sub(r"<[^>]*>", "", line)
        s = re.sub(r"[©´]|\(c\)", "", s, flags=re.I)
        s = re.sub(r"\b(19|20)\d\d(\s*-\s*(19|20)?\d\d)?\b\.?", "", s)
        s = re.sub(r"^[\s,.;:]+|[\s,.;:]+$", "", s)
        s = re.sub(r"\s{2,}", " ", s)
        if s and s.lower() not in ("none", "*no copyright*"):
            names.append(s)
    return "; ".join(names)


@dataclass
class Dep5Paragraph:
    files: list[str]
    copyright: str
    licence: str


def parse_dep5(text: str) -> list[Dep5Paragraph]:
    """Files paragraphs of a machine-readable Debian copyright file."""
    paras = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, val = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = val.strip()
        if "files" in fields and "license" in fields:
            lic = fields["license"].splitlines()[0].strip() if fields["license"] else ""
            paras.append(Dep5Paragraph(fields["files"].split(), fields.get("copyright", ""), lic))
    return paras


def dep5_lookup(paras: list[Dep5Paragraph], path: str) -> tuple[Dep5Paragraph | None, bool]:
    """The paragraph that covers ``path`` (last match wins, as in DEP-5).

    ``path`` is the installed path; patterns may be relative to the upstream tree, so a pattern
    also matches a path suffix, and an exact file name matches when nothing more specific does.
    Returns (paragraph, specific) where ``specific`` is False for the catch-all ``*``.
    """
    best = None
    for p in paras:
        for pat in p.files:
            if pat == "*":
                continue
            if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, "*/" + pat):
                best = p
    if best is None:
        base = path.rsplit("/", 1)[-1]
        for p in paras:
            if any(
                "*" not in pat and pat.rsplit("/", 1)[-1] == base and pat != "*" for pat in p.files
            ):
                best = p
    if best is not None:
        return best, True
    generic = [p for p in paras if "*" in p.files]
    return (generic[0] if generic else None), False


def parse_gcompris_readme(text: str) -> dict[str, dict[str, str]]:
    """GCompris resource README -> {file name: {copyright, license, source}}.

    Blocks are separated by blank lines; ``Files:`` lists names on the same line or below.
    """
    out: dict[str, dict[str, str]] = {}
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        files: list[str] = []
        in_files = False
        for line in block.splitlines():
            m = re.match(r"^\s*(Copyright|License|Source|Files|Comments?)\s*:\s*(.*)$", line, re.I)
            if m:
                key = m.group(1).lower()
                in_files = key == "files"
                if in_files:
                    files += m.group(2).split()
                else:
                    fields[key] = m.group(2).strip()
            elif in_files and line.strip():
                files += line.split()
        for f in files:
            out[f] = fields
    return out
