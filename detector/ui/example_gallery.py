"""The Gradio app's example images: which exist, where each comes from, and its known answer.

`load_examples` lists the examples of a folder (`detector.ui.classroom.load_examples`) as plain
dictionaries for a gallery; `example_credit` says where one comes from without giving the answer
away, `example_note` gives the answer once it has run, and `credits_markdown` lists every credit.
Nothing here imports a UI library.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from detector.ui import classroom

#: The fields of an example, as `load_examples` gives them.
FIELDS = ("file", "path", "label", "source", "generator", "licence", "author")


def load_examples(folder: str | Path) -> list[dict[str, str]]:
    """The example images listed in ``examples.json`` that exist (none if it is missing)."""
    return [
        {
            "file": example.file,
            "path": str(example.path),
            "label": example.label,
            "source": example.source,
            "generator": example.generator,
            "licence": example.licence,
            "author": example.author,
        }
        for example in classroom.load_examples(folder)
    ]


def example_credit(index: int, examples: Sequence[dict[str, str]]) -> str:
    """Where one example comes from (source, author, licence), without giving the answer away."""
    if not 0 <= index < len(examples):
        return ""
    entry = examples[index]
    return ", ".join(
        f"{key}: {entry[key]}" for key in ("source", "author", "licence") if entry.get(key)
    )


def example_note(index: int, examples: Sequence[dict[str, str]]) -> str:
    """The known answer and attribution of one example, as Markdown ("" for no such example)."""
    if not 0 <= index < len(examples):
        return ""
    entry = examples[index]
    answer = "AI-generated" if entry.get("label") == "fake" else "a real photo"
    generator = entry.get("generator", "")
    if entry.get("label") == "fake" and generator:
        answer += f" ({generator})"
    credit = example_credit(index, examples)
    return f"**Example {index + 1}** is {answer}. {credit}".strip()


def credits_markdown(examples: Sequence[dict[str, str]]) -> str:
    """Every example's credit as a Markdown list, pointing to the attribution file."""
    return (
        "\n".join(f"- #{i + 1}: {example_credit(i, examples)}" for i in range(len(examples)))
        + "\n\nSee `assets/examples/ATTRIBUTION.md`."
    )
