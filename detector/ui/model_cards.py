"""What a model card says, for the classroom: test metrics per condition, training data, limits.

`facts_from_card` reads a model card into `ModelFacts` (the headline metrics on clean and
degraded test images, how much data the model was trained on, what it is known to get wrong),
with plain names for the conditions (`condition_name`); `model_facts` does it for the trained
models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detector.core.models import trained_cards
from detector.ui.texts import percent

_CONDITIONS = {
    "jpeg_q": "JPEG quality {}",
    "downscale_x": "downsized to {}% of its side",
    "blur_sigma": "blurred (Gaussian, sigma {})",
    "center_crop_": "centre crop, {}% of the side",
}
_METRIC_NAMES = {
    "accuracy": "Accuracy",
    "roc_auc": "ROC-AUC",
    "average_precision": "Average precision",
    "f1": "F1",
    "precision": "Precision (of 'AI-generated' calls)",
    "recall": "Recall (fakes caught)",
    "ece": "Calibration error (ECE)",
    "uncertain_fraction": "Share reported 'uncertain'",
    "accuracy_when_confident": "Accuracy when not 'uncertain'",
}


def condition_name(key: str) -> str:
    """A robustness-table key in words, e.g. ``jpeg_q75`` -> ``JPEG quality 75``."""
    for prefix, template in _CONDITIONS.items():
        if key.startswith(prefix):
            value = key[len(prefix) :]
            try:
                number = float(value)
            except ValueError:
                return key.replace("_", " ")
            if prefix in ("downscale_x", "center_crop_") and number <= 1:
                return template.format(round(number * 100))
            return template.format(value)
    return key.replace("_", " ")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


#: What a card's ``test_ood`` split is: photos from a source held out of training (the fakes in
#: it come from the same generators as the training fakes), not unseen generators.
HELD_OUT_TITLE = "On images from a held-out source (photos from a source it never saw in training)"


@dataclass(frozen=True)
class ModelFacts:
    """What a model card says about how good a model is and where it fails.

    Attributes:
        name, title, summary: Identity of the model.
        test: Rows (metric, value) measured on the test split.
        test_size: "n images (n_fake AI-generated, n_real real)" or "".
        ood: Rows (metric, value) on the held-out-source test split (`HELD_OUT_TITLE`), if
            measured.
        robustness: Rows (condition, ROC-AUC, accuracy, accuracy change vs the clean test set).
        per_generator: Rows (generator, images, detection rate) on the test split.
        limitations: The known limits, in plain words.
        training: Rows (split, images, AI-generated, real, generators) of the training data.
        dataset: Where the training data came from.
    """

    name: str
    title: str
    summary: str
    test: tuple[tuple[str, str], ...] = ()
    test_size: str = ""
    ood: tuple[tuple[str, str], ...] = ()
    robustness: tuple[dict[str, Any], ...] = ()
    per_generator: tuple[dict[str, Any], ...] = ()
    limitations: tuple[str, ...] = ()
    training: tuple[dict[str, Any], ...] = ()
    dataset: str = ""

    @property
    def measured(self) -> bool:
        """True when the card holds any measured result."""
        return bool(self.test or self.robustness or self.ood)


def _metric_rows(split: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    rows = []
    for key, title in _METRIC_NAMES.items():
        value = _number(split.get(key))
        if value is None:
            continue
        text = f"{value:.3f}" if key in ("roc_auc", "average_precision", "ece") else percent(value)
        rows.append((title, text))
    return tuple(rows)


def _size_text(split: Mapping[str, Any]) -> str:
    n = split.get("n")
    if not isinstance(n, int):
        return ""
    parts = [f"{n} images"]
    if isinstance(split.get("n_fake"), int) and isinstance(split.get("n_real"), int):
        parts.append(f"({split['n_fake']} AI-generated, {split['n_real']} real)")
    return " ".join(parts)


def _joined(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} ({v})" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def facts_from_card(card: Any) -> ModelFacts:
    """`ModelFacts` from a `ModelCard` (missing sections give empty rows, never an error)."""
    metrics = card.metrics if isinstance(card.metrics, Mapping) else {}
    test = metrics.get("test") if isinstance(metrics.get("test"), Mapping) else {}
    ood_key = next((k for k in ("test_ood", "ood") if isinstance(metrics.get(k), Mapping)), None)
    clean_accuracy = _number(test.get("accuracy"))
    robustness = []
    table = metrics.get("robustness") if isinstance(metrics.get("robustness"), Mapping) else {}
    for key, entry in table.items():
        if not isinstance(entry, Mapping):
            continue
        accuracy = _number(entry.get("accuracy"))
        auc = _number(entry.get("roc_auc"))
        change = (
            f"{100 * (accuracy - clean_accuracy):+.1f} points"
            if accuracy is not None and clean_accuracy is not None
            else ""
        )
        robustness.append(
            {
                "condition": condition_name(key),
                "ROC-AUC": "" if auc is None else f"{auc:.3f}",
                "accuracy": "" if accuracy is None else percent(accuracy),
                "change in accuracy": change,
            }
        )
    per_generator = []
    generators = test.get("per_generator") if isinstance(test.get("per_generator"), Mapping) else {}
    for generator, entry in generators.items():
        if isinstance(entry, Mapping) and _number(entry.get("detection_rate")) is not None:
            per_generator.append(
                {
                    "generator": str(generator),
                    "images": entry.get("n", ""),
                    "detected": percent(float(entry["detection_rate"])),
                }
            )
    data = card.training_data if isinstance(card.training_data, Mapping) else {}
    training = []
    splits = data.get("splits") if isinstance(data.get("splits"), Mapping) else {}
    for split, entry in splits.items():
        if isinstance(entry, Mapping):
            training.append(
                {
                    "split": str(split),
                    "images": entry.get("n", ""),
                    "AI-generated": entry.get("n_fake", ""),
                    "real": entry.get("n_real", ""),
                    "generators": _joined(entry.get("generators")),
                    "sources of real photos": _joined(entry.get("sources")),
                }
            )
    dataset = _joined(data.get("dataset") or data.get("name") or "")
    extra = [
        f"{key.replace('_', ' ')}: {_joined(value)}"
        for key, value in data.items()
        if key not in ("splits", "dataset", "name", "manifest_sha256") and _joined(value)
    ]
    if extra:
        dataset = "; ".join([dataset, *extra] if dataset else extra)
    return ModelFacts(
        name=card.name,
        title=card.title or card.name,
        summary=card.summary,
        test=_metric_rows(test),
        test_size=_size_text(test),
        ood=_metric_rows(metrics[ood_key]) if ood_key else (),
        robustness=tuple(robustness),
        per_generator=tuple(per_generator),
        limitations=tuple(str(item) for item in card.limitations),
        training=tuple(training),
        dataset=dataset,
    )


def model_facts(names: Sequence[str] | None = None) -> list[ModelFacts]:
    """The facts of the trained models (default: all, in the given or card order)."""
    cards = trained_cards()
    wanted = list(names) if names is not None else list(cards)
    return [facts_from_card(cards[name]) for name in wanted if name in cards]


def test_set_title(fact: ModelFacts) -> str:
    """The heading of a model's test-set results (Markdown), with the set's size when known."""
    size = f" ({fact.test_size})" if fact.test_size else ""
    return f"**On the test set**{size}"


def limits_markdown(fact: ModelFacts) -> str:
    """A model's known limits as a Markdown list (saying so when its card lists none)."""
    if not fact.limitations:
        return "- The card lists none: that does not mean there are none."
    return "\n".join(f"- {item}" for item in fact.limitations)
