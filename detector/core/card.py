"""Model cards: the JSON file that travels with every set of trained weights.

A card is data from disk and is checked as such: at most `MAX_CARD_BYTES`, nested at most
`MAX_CARD_DEPTH` deep, a bare ``weights_file`` name (the weights live in the card's own folder),
finite numbers. A card that breaks a rule is a `ModelLoadError` that names the rule.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from dataclasses import asdict, dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from detector.core.errors import ModelLoadError
from detector.core.spec import ModelSpec

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.keras"
#: Largest accepted ``card.json``, in bytes (the shipped cards are about 20 kB).
MAX_CARD_BYTES = 1024 * 1024
#: Deepest accepted nesting of lists and objects in a card (the shipped cards reach 8).
MAX_CARD_DEPTH = 32


def json_depth(value: Any) -> int:
    """How deeply lists and dicts nest in a parsed JSON value (a scalar is 0); no recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def is_bare_file_name(name: Any) -> bool:
    """True for a plain file name: no folder part, no ``..``, not absolute, on POSIX or Windows."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(c in name for c in "/\\\0")
        and PureWindowsPath(name).name == name  # no drive ("C:x.keras")
    )


def _finite(value: Any, what: str, card: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"card {card!r}: {what} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"card {card!r}: {what} must be finite, got {value!r}")


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
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"card name must be a non-empty string, got {self.name!r}")
        if not is_bare_file_name(self.weights_file):
            raise ValueError(
                f"card {self.name!r}: weights_file must be a file name inside the model's "
                f"folder (no '/', '\\', '..' or drive), got {self.weights_file!r}"
            )
        if not isinstance(self.sha256, str):
            raise ValueError(f"card {self.name!r}: sha256 must be a string")
        if len(self.uncertain_band) != 2:
            raise ValueError(f"card {self.name!r}: uncertain_band must be [low, high]")
        for what, value in (
            ("threshold", self.threshold),
            ("temperature", self.temperature),
            ("uncertain_band low", self.uncertain_band[0]),
            ("uncertain_band high", self.uncertain_band[1]),
        ):
            _finite(value, what, self.name)
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
            ModelLoadError: if the card is missing, too large, too deeply nested or malformed.
                The message names ``<folder name>/card.json``, never the full path.
        """
        return cls.from_json(read_card_bytes(folder), where=card_label(folder))

    @classmethod
    def from_json(cls, raw: bytes, *, where: str = CARD_FILE) -> ModelCard:
        """Build a card from the bytes of a ``card.json``.

        Args:
            raw: The file's bytes.
            where: How error messages name the file (e.g. ``s3_simple_cnn_npr/card.json``).

        Raises:
            ModelLoadError: (code ``bad_card``) naming what is wrong.
        """
        if len(raw) > MAX_CARD_BYTES:
            raise ModelLoadError(
                f"model card {where} is too large: over {MAX_CARD_BYTES // 1024} kB",
                code="bad_card",
            )
        try:
            data = json.loads(raw)
        except RecursionError:
            raise ModelLoadError(
                f"malformed model card {where}: nested more than {MAX_CARD_DEPTH} deep",
                code="bad_card",
            ) from None
        except ValueError as exc:  # also UnicodeDecodeError
            raise ModelLoadError(f"malformed model card {where}: {exc}", code="bad_card") from None
        if not isinstance(data, dict):
            raise ModelLoadError(
                f"malformed model card {where}: a JSON object is needed, got {type(data).__name__}",
                code="bad_card",
            )
        if json_depth(data) > MAX_CARD_DEPTH:
            raise ModelLoadError(
                f"malformed model card {where}: nested more than {MAX_CARD_DEPTH} deep",
                code="bad_card",
            )
        try:
            return cls.from_dict(data)
        except Exception as exc:  # untrusted data: any failure to build it is a bad card
            raise ModelLoadError(
                f"malformed model card {where}: {type(exc).__name__}: {exc}", code="bad_card"
            ) from None

    def label_for(self, p_fake: float) -> str:
        """The verdict for a calibrated P(fake): ``fake``, ``real`` or ``uncertain``."""
        return label_for(p_fake, self.threshold, self.uncertain_band)


def label_for(p_fake: float, threshold: float, uncertain_band: tuple[float, float]) -> str:
    """The one verdict rule of a model card: ``uncertain`` inside ``[low, high)``, else ``fake``
    at or above the threshold and ``real`` below it (an empty band, low >= high, is ignored)."""
    low, high = uncertain_band
    if low < high and low <= p_fake < high:
        return "uncertain"
    return "fake" if p_fake >= threshold else "real"


def card_label(folder: Path) -> str:
    """How messages name a folder's card: ``<folder name>/card.json`` (no server path)."""
    return f"{Path(folder).name}/{CARD_FILE}"


def read_card_bytes(folder: Path) -> bytes:
    """The bytes of ``folder/card.json``, refusing anything but a regular file of a sane size.

    Raises:
        ModelLoadError: ``card_missing`` if there is no regular file, ``bad_card`` if it is
            larger than `MAX_CARD_BYTES` or cannot be read.
    """
    path = Path(folder) / CARD_FILE
    where = card_label(folder)
    if not path.is_file():  # also refuses FIFOs and links to devices, which would block
        raise ModelLoadError(f"model card missing: {where}", code="card_missing")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CARD_BYTES + 1)
    except OSError as exc:
        raise ModelLoadError(
            f"cannot read model card {where}: {exc.strerror or exc}", code="bad_card"
        ) from None
    if len(raw) > MAX_CARD_BYTES:
        raise ModelLoadError(
            f"model card {where} is too large: over {MAX_CARD_BYTES // 1024} kB", code="bad_card"
        )
    return raw
