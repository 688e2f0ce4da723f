"""Print the shipped models' headline metrics as a Markdown table (from their cards).

Usage: ``python -m training.model_table [--models-dir DIR]``. The README's table is this output.
Every figure comes from a card's ``metrics`` (written by ``python -m training train`` /
``evaluate`` / ``lofo``); reference rows (models that are not shipped, such as the frozen-feature
baseline) come from ``training/reference/*.json``, written by ``python -m training.model_table
--save-reference MODEL_DIR``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from detector.core.card import ModelCard
from detector.core.models import models_dir, selection_score, trained_cards
from training.truth import headline

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"

COLUMNS: tuple[tuple[str, str], ...] = (
    ("kit_test_auc", "kit test"),
    ("wild_test_auc", "wild test"),
    ("wild_files_auc", "wild files as published"),
    ("wild_test_auc_q75", "wild JPEG q75"),
    ("wild_test_auc_resize", "wild 0.5x"),
    ("wild_photo_auc", "wild photo"),
    ("wild_portrait_auc", "wild portrait"),
    ("controls_fpr", "controls flagged"),
    ("lofo_min_recall", "LOFO min recall"),
)


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(metrics: dict[str, Any]) -> dict[str, Any]:
    if "truth" in metrics:
        return headline(metrics["truth"], metrics.get("lofo"))
    # a card from before the wild pool: only the kit figures exist
    return {"kit_test_auc": metrics.get("test", {}).get("roc_auc")}


def _cell(row: dict[str, Any], key: str) -> str:
    interval = row.get(f"{key}_ci95")
    if interval and row.get(key) is not None:  # the 95 % bootstrap interval, to two digits
        return f"{row[key]:.3f} ({interval[0]:.2f}-{interval[1]:.2f})"
    return _fmt(row.get(key))


def _line(name: str, recipe: str, backbone: str, row: dict[str, Any], extra: str) -> str:
    cells = " | ".join(_cell(row, key) for key, _ in COLUMNS)
    return f"| `{name}` | `{recipe}` | {backbone} | {cells} | {extra} |"


def table(directory: str | None = None, reference: Path = REFERENCE_DIR) -> str:
    """The Markdown table: shipped models (the default first), then reference rows."""
    root = models_dir(directory)
    header = " | ".join(label for _, label in COLUMNS)
    lines = [
        f"| model | recipe | backbone | {header} | size, train time |",
        "|---|---|---|" + "---|" * len(COLUMNS) + "---|",
    ]
    cards = trained_cards(root)
    rows = {name: _row(card.metrics) for name, card in cards.items()}
    # the order the tools offer them: the default (best on wild validation and controls) first
    ordered = sorted(cards, key=lambda name: selection_score(cards[name]), reverse=True)
    for name in ordered:
        card = cards[name]
        weights = Path(root) / name / card.weights_file
        size = weights.stat().st_size / 1e6 if weights.exists() else 0
        megabytes = f"{size:.1f}" if size < 1 else f"{size:.0f}"
        seconds = card.training.get("seconds")
        trained = "-" if seconds is None else f"{seconds / 60:.0f} min"
        backbone = card.spec.params.get("backbone", "none (from scratch)")
        members = card.spec.params.get("members")
        if members:  # an ensemble: its members' weights, trained separately
            backbone = " + ".join(f"`{m['name']}`" for m in members)
            trained = f"{max(seconds or 0, 60) / 60:.0f} min + members'"
        extra = f"{megabytes} MB, {trained}" + ("; **the default**" if name == ordered[0] else "")
        lines.append(_line(name, card.spec.recipe, backbone, rows[name], extra))
    for path in sorted(Path(reference).glob("*.json")):
        ref = json.loads(path.read_text())
        row = _row(ref["metrics"])
        note = ref.get("note") or "reference, not shipped"
        lines.append(_line(ref["name"], ref["recipe"], ref["backbone"], row, note))
    return "\n".join(lines)


def save_reference(
    folder: Path, reference: Path = REFERENCE_DIR, note: str = "reference, not shipped"
) -> Path:
    """Keep a trained model's card figures as a reference row (its weights are not shipped)."""
    card = ModelCard.load(folder)
    reference.mkdir(parents=True, exist_ok=True)
    out = reference / f"{card.name}.json"
    doc = {
        "name": card.name,
        "title": card.title,
        "recipe": card.spec.recipe,
        "backbone": card.spec.params.get("backbone", "none"),
        "note": note,
        "command": card.training.get("command", ""),
        "training_data": card.training_data,
        "metrics": {k: v for k, v in card.metrics.items() if k in ("truth", "lofo", "test")},
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return out


def write_into(page: Path, text: str) -> bool:
    """Replace the model table in a Markdown page (the block starting ``| model |``).

    Returns:
        True when the page changed. Raises ``ValueError`` when the page holds no table.
    """
    lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("| model |")), None)
    if start is None:
        raise ValueError(f"{page}: no model table (a block starting '| model |')")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    before = "".join(lines)
    after = "".join([*lines[:start], text.rstrip("\n") + "\n", *lines[end:]])
    if after == before:
        return False
    page.write_text(after, encoding="utf-8")
    return True


def main() -> None:
    """Print the table (or save a reference row)."""
    parser = argparse.ArgumentParser(prog="python -m training.model_table")
    parser.add_argument("--models-dir")
    parser.add_argument("--save-reference", type=Path, help="a trained model folder to keep")
    parser.add_argument("--note", default="reference, not shipped", help="its last column")
    parser.add_argument(
        "--write",
        type=Path,
        metavar="PAGE",
        help="replace the table in a Markdown page (README.md)",
    )
    args = parser.parse_args()
    if args.save_reference:
        print(save_reference(args.save_reference, note=args.note))
        return
    text = table(args.models_dir)
    if args.write:
        changed = write_into(args.write, text)
        print(f"{args.write}: {'table updated' if changed else 'already up to date'}")
        return
    print(text)


if __name__ == "__main__":
    main()
