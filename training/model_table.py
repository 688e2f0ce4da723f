"""Print the shipped models' headline metrics as a Markdown table (from their cards).

Usage: ``python -m training.model_table [--models-dir DIR]``. The README's table is this output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.models import models_dir, trained_cards


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(directory: str | None = None) -> str:
    """The Markdown table."""
    root = models_dir(directory)
    lines = [
        "| model | recipe | backbone | input | test ROC-AUC | test acc | unseen-source ROC-AUC "
        "| JPEG q75 ROC-AUC | uncertain band | size | train time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, card in sorted(
        trained_cards(root).items(),
        key=lambda kv: -(kv[1].metrics.get("test", {}).get("roc_auc") or 0),
    ):
        test = card.metrics.get("test", {})
        ood = card.metrics.get("test_ood", {})
        jpeg = card.metrics.get("robustness", {}).get("jpeg_q75", {})
        weights = Path(root) / name / card.weights_file
        size = weights.stat().st_size / 1e6 if weights.exists() else 0
        megabytes = f"{size:.1f}" if size < 1 else f"{size:.0f}"
        low, high = card.uncertain_band
        seconds = card.training.get("seconds")
        trained = "-" if seconds is None else f"{seconds / 60:.0f} min"
        backbone = card.spec.params.get("backbone", "none (from scratch)")
        members = card.spec.params.get("members")
        if members:  # an ensemble: its members' weights, trained separately
            backbone = " + ".join(f"`{m['name']}`" for m in members)
            trained = f"{max(seconds or 0, 60) / 60:.0f} min + members'"
        lines.append(
            f"| `{name}` | `{card.spec.recipe}` | {backbone} | "
            f"{card.spec.input_size} px | {_fmt(test.get('roc_auc'))} | "
            f"{_fmt(test.get('accuracy'))} | {_fmt(ood.get('roc_auc'))} | "
            f"{_fmt(jpeg.get('roc_auc'))} | {low:.2f}-{high:.2f} | {megabytes} MB | "
            f"{trained} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(prog="python -m training.model_table")
    parser.add_argument("--models-dir")
    print(table(parser.parse_args().models_dir))


if __name__ == "__main__":
    main()
