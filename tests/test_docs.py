"""The README stays a short guide for users: its size, its links, its generated model table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
#: Inline Markdown links and images: [text](target) / ![alt](target).
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _without_code(text: str) -> str:
    """The text without fenced code blocks (whose brackets are not links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def _broken_links(page: Path) -> list[str]:
    text = _without_code(page.read_text(encoding="utf-8"))
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        if not path:
            if anchor not in anchors:
                broken.append(target)
            continue
        resolved = (page.parent / path).resolve()
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(encoding="utf-8"), re.MULTILINE)
            if anchor not in {_slug(h) for h in headings}:
                broken.append(target)
    return broken


def test_readme_is_at_most_12_kib():
    assert README.stat().st_size <= 12 * 1024


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_an_existing_file(page):
    assert LINK.findall(page.read_text(encoding="utf-8"))
    assert _broken_links(page) == []


def test_link_check_sees_a_missing_file_and_a_missing_anchor(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# Here\n")
    page.write_text(
        "# Top\n[a](there.md) [b](there.md#here) [c](missing.md) [d](there.md#nowhere) "
        "[e](#top) [f](#gone) [g](https://example.org/x)\n```\n[h](in-code.md)\n```\n"
    )
    assert _broken_links(page) == ["missing.md", "there.md#nowhere", "#gone"]


def test_readme_model_table_is_the_generated_one():
    """The table is `python -m training.model_table`'s output, pasted as it prints it."""
    from training.model_table import table

    assert table(str(ROOT / "assets" / "models")) in README.read_text(encoding="utf-8")


def test_model_table_writer_replaces_only_the_table(tmp_path):
    from training.model_table import write_into

    page = tmp_path / "README.md"
    page.write_text("# T\n\n| model | a |\n|---|---|\n| old | 1 |\n\nAfter.\n")
    assert write_into(page, "| model | a |\n|---|---|\n| new | 2 |\n")
    assert page.read_text() == "# T\n\n| model | a |\n|---|---|\n| new | 2 |\n\nAfter.\n"
    assert not write_into(page, "| model | a |\n|---|---|\n| new | 2 |")
    (tmp_path / "none.md").write_text("# no table\n")
    with pytest.raises(ValueError, match="no model table"):
        write_into(tmp_path / "none.md", "| model |\n")
