"""Model cards: the JSON file that travels with every set of trained weights."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from detector.errors import ModelLoadError
from detector.spec import ModelSpec

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.keras"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelCard:
    """What a trained model is, how to serve it, what it was trained on and how well it does.

    Attributes:
        name: The model's name (its folder under ``assets/models``).
        spec: Serving spec (recipe, preprocessing, output convention, explain layers).
        weights_file: File name of the ``.keras`` weights inside the model folder.
        sha256: SHA-256 of the weights file; loading refuses a file that does not match.
        threshold: Decision threshold on the calibrated P(fake).
        uncertain_band: (low, high): calibrated P(fake) in [low, high) is reported "uncertain".
        temperature: Temperature T for calibration: P(fake) = sigmoid(fake_logit / T).
        title: Human-readable name for the UIs.
        summary: One or two sentences for the UIs.
        training_data: Dataset, splits, sizes, generators, licences.
        training: Training configuration (epochs, optimiser, seed, duration...).
        backbone: Backbone and the provenance of its pretrained weights.
        metrics: Evaluation results (test split, robustness table...).
        limitations: Known failure modes, in plain words.
    """

    name: str
    spec: ModelSpec
    sha256: str
    weights_file: str = WEIGHTS_FILE
    threshold: float = 0.5
    uncertain_band: tuple[float, float] = (0.5, 0.5)
    temperature: float = 1.0
    title: str = ""
    summary: str = ""
    training_data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    backbone: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    limitations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        low, high = self.uncertain_band
        if not 0.0 <= low <= self.threshold <= high <= 1.0:
            raise ValueError(
                f"card {self.name!r}: need 0 <= band low <= threshold <= band high <= 1, got "
                f"band {self.uncertain_band} and threshold {self.threshold}"
            )
        if not self.temperature > 0:
            raise ValueError(f"card {self.name!r}: temperature must be > 0")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        data["uncertain_band"] = list(self.uncertain_band)
        data["limitations"] = list(self.limitations)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Rebuild a card from `to_dict` output."""
        data = dict(data)
        data["spec"] = ModelSpec.from_dict(data["spec"])
        data["uncertain_band"] = tuple(data.get("uncertain_band", (0.5, 0.5)))
        data["limitations"] = tuple(data.get("limitations", ()))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, folder: Path) -> Path:
        """Write ``card.json`` into ``folder``."""
        path = Path(folder) / CARD_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> ModelCard:
        """Read ``card.json`` from ``folder``.

        Raises:
            ModelLoadError: if the card is missing or malformed.
        """
        path = Path(folder) / CARD_FILE
        if not path.is_file():
            raise ModelLoadError(f"model card missing: {path}", code="card_missing")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"malformed model card {path}: {exc}", code="bad_card") from None

    def label_for(self, p_fake: float) -> str:
        """The verdict for a calibrated P(fake): ``fake``, ``real`` or ``uncertain``."""
        low, high = self.uncertain_band
        if low < high and low <= p_fake < high:
            return "uncertain"
        return "fake" if p_fake >= self.threshold else "real"
