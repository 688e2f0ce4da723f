"""The training configuration, saved as ``config.json`` next to the weights it produced."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    """Everything that decides a training run.

    Attributes:
        recipe: Recipe name (see ``python -m detector list``).
        data: Dataset folder or CSV (starter kit, CIFAKE, Kaggle deepfake, FF++ frames, CSV).
        out: Output folder, e.g. ``assets/models/NAME``; its name is the model's name.
        name: Model name; defaults to the output folder's name.
        title: Human-readable model name for the apps.
        epochs: Epochs of the main phase (recipe default when None).
        seed: Seed for shuffling, augmentation, initialisation and splits.
        batch_size: Images per step.
        learning_rate: Main-phase learning rate (recipe default when None).
        input_size: Override the recipe's input size.
        backbone: Override the recipe's backbone (e.g. ``mobilenet_v2``).
        resize: Override the recipe's resize mode (``resize``, ``center_crop`` or
            ``native_crop``: a patch at the image's own resolution, keeping generator traces).
        backbone_weights: ``imagenet`` or ``none``. ImageNet weights come from keras.applications
            (EfficientNets, needs internet) or the offline torchvision conversion (MobileNetV2).
        init_from: A trained model folder of the same recipe and parameters to start from
            (its weights, checked against its card's SHA-256) instead of the backbone's
            pretrained weights: a second training stage on top of a shipped model.
        robust_augment: Random JPEG re-encoding, resizing, blur and crops on both classes.
        jpeg_probability: Share of training images the robust augmentation re-encodes as JPEG.
        jpeg_quality_min: Lowest JPEG quality drawn (inclusive).
        jpeg_quality_max: Highest JPEG quality drawn (inclusive).
        jpeg_last: Re-encode after every other augmentation (the recipe's own included), as an
            image is compressed last on its way to a reader, instead of inside the robust step.
        max_train: Use at most this many training images (balanced, seeded); None for all.
        max_eval: Use at most this many images per evaluation split.
        frozen_epochs: S2 phase 1 (frozen backbone, label smoothing 0.1); the fusion recipe's
            frozen-backbone phase.
        fgsm_epochs: S2 phase 2 (FGSM adversarial examples on a fraction of each batch).
        finetune_epochs: S2 phase 3 (everything trainable at ``finetune_learning_rate``).
        finetune_learning_rate: S2 phase 3 learning rate.
        fgsm_epsilon: FGSM step in [0, 1] pixel units.
        fgsm_fraction: Fraction of each batch that also gets an adversarial copy.
        patience: Early-stopping patience (recipe default when None).
        lr_patience: Epochs without a better validation loss before the learning rate drops
            tenfold (None: half the early-stopping patience, at least 1).
        freeze_fraction: S4: the first this share of the backbone's layers with weights (in
            graph order, so the early, generic stages) stay at their pretrained values, batch
            normalisation statistics included; 0 trains them all.
        strategy: ``default``, ``mirrored`` (all local GPUs/CPU) or ``multiworker`` (TF_CONFIG).
        deterministic: Enable TensorFlow's deterministic kernels.
        steps_per_epoch: Cap on steps per epoch (quick runs and tests).
        recipe_params: Extra recipe parameters.
        balance_content: Draw training batches with `training.balance.sample_weights` (equal
            real and fake weight per content tag, fixed shares for package, wild and control
            images) when the data holds wild or control images.
        exclude_families: Generator families left out of training and validation (their fakes
            only), for leave-one-family-out runs; the test splits keep them.
    """

    recipe: str
    data: str
    out: str
    name: str | None = None
    title: str | None = None
    epochs: int | None = None
    seed: int = 0
    batch_size: int = 32
    learning_rate: float | None = None
    input_size: int | None = None
    backbone: str | None = None
    resize: str | None = None
    backbone_weights: str = "imagenet"
    init_from: str | None = None
    robust_augment: bool = True
    jpeg_probability: float = 0.5
    jpeg_quality_min: int = 60
    jpeg_quality_max: int = 100
    jpeg_last: bool = False
    balance_content: bool = True
    exclude_families: list[str] = field(default_factory=list)
    max_train: int | None = None
    max_eval: int | None = None
    frozen_epochs: int = 6
    fgsm_epochs: int = 2
    finetune_epochs: int = 3
    finetune_learning_rate: float = 1e-5
    fgsm_epsilon: float = 0.05
    fgsm_fraction: float = 0.3
    patience: int | None = None
    lr_patience: int | None = None
    freeze_fraction: float = 0.0
    strategy: str = "default"
    deterministic: bool = False
    steps_per_epoch: int | None = None
    recipe_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.freeze_fraction < 1.0:
            raise ValueError(f"freeze_fraction must be in [0, 1), got {self.freeze_fraction}")
        if not 0.0 <= self.jpeg_probability <= 1.0:
            raise ValueError(f"jpeg_probability must be in [0, 1], got {self.jpeg_probability}")
        if not 1 <= self.jpeg_quality_min <= self.jpeg_quality_max <= 100:
            raise ValueError(
                "JPEG qualities need 1 <= min <= max <= 100, got "
                f"{self.jpeg_quality_min}-{self.jpeg_quality_max}"
            )

    @property
    def model_name(self) -> str:
        """The model's name: ``name`` or the output folder's name."""
        return self.name or Path(self.out).name

    def recipe_overrides(self) -> dict[str, Any]:
        """Recipe parameters set by this config."""
        overrides = dict(self.recipe_params)
        if self.input_size is not None:
            overrides["input_size"] = self.input_size
        if self.backbone is not None:
            overrides["backbone"] = self.backbone
        if self.resize is not None:
            overrides["resize"] = self.resize
        return overrides

    def command(self, data: str = "DATA") -> str:
        """The ``python -m training train`` command line that reproduces this config.

        Args:
            data: What to print for the dataset path (the kit's location differs per machine).
        """
        defaults = TrainConfig(recipe=self.recipe, data=self.data, out=self.out)
        words = ["python", "-m", "training", "train", self.recipe, "--data", data]
        words += ["--out", self.out]
        for attr, flag in _FLAGS.items():
            value = getattr(self, attr)
            if attr != "seed" and value == getattr(defaults, attr):
                continue
            if isinstance(value, bool):  # the --no-* flags are written when the value is off
                words.append(flag)
                continue
            if isinstance(value, list):
                for item in value:
                    words += [flag, str(item)]
                continue
            words += [flag, str(value)]
        for key, value in self.recipe_params.items():
            text = value if isinstance(value, str) else json.dumps(value)
            words += ["--recipe-param", f"{key}={text}"]
        return " ".join(w if w == data else shlex.quote(w) for w in words)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` into ``folder``."""
        path = Path(folder) / "config.json"
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a saved config (unknown keys are an error)."""
        data = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)} in {path}")
        return cls(**data)


#: Config attribute -> its ``python -m training train`` flag (see ``training/__main__.py``).
_FLAGS = {
    "name": "--name",
    "title": "--title",
    "epochs": "--epochs",
    "seed": "--seed",
    "batch_size": "--batch-size",
    "learning_rate": "--lr",
    "input_size": "--input-size",
    "backbone": "--backbone",
    "resize": "--resize",
    "backbone_weights": "--backbone-weights",
    "init_from": "--init-from",
    "robust_augment": "--no-robust-augment",
    "jpeg_probability": "--jpeg-prob",
    "jpeg_quality_min": "--jpeg-quality-min",
    "jpeg_quality_max": "--jpeg-quality-max",
    "jpeg_last": "--jpeg-last",
    "max_train": "--max-train",
    "max_eval": "--max-eval",
    "frozen_epochs": "--frozen-epochs",
    "fgsm_epochs": "--fgsm-epochs",
    "finetune_epochs": "--finetune-epochs",
    "finetune_learning_rate": "--finetune-lr",
    "fgsm_epsilon": "--fgsm-epsilon",
    "fgsm_fraction": "--fgsm-fraction",
    "patience": "--patience",
    "lr_patience": "--lr-patience",
    "freeze_fraction": "--freeze-fraction",
    "strategy": "--strategy",
    "deterministic": "--deterministic",
    "steps_per_epoch": "--steps-per-epoch",
    "balance_content": "--no-balance-content",
    "exclude_families": "--exclude-family",
}
