"""From dataset samples to training batches, through the serving preprocessing of `detector`."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from detector import DetectorError, load_image
from detector.core._keras import keras
from detector.core.spec import ModelSpec

log = logging.getLogger(__name__)

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass
class ImageSet:
    """Decoded images of one split with their labels (1 = fake) and per-image metadata."""

    images: list[np.ndarray]
    labels: np.ndarray
    paths: list[str]
    generators: list[str]
    sources: list[str]
    #: Per image: content tag, origin (package, wild, control), generator family, control kind.
    contents: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.images)
        self.contents = list(self.contents) or ["photo"] * n
        self.origins = list(self.origins) or ["package"] * n
        self.families = list(self.families) or [""] * n
        self.controls = list(self.controls) or [""] * n

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: Sequence[int]) -> ImageSet:
        """A new set with the given items."""
        return ImageSet(
            [self.images[i] for i in index],
            self.labels[list(index)],
            [self.paths[i] for i in index],
            [self.generators[i] for i in index],
            [self.sources[i] for i in index],
            [self.contents[i] for i in index],
            [self.origins[i] for i in index],
            [self.families[i] for i in index],
            [self.controls[i] for i in index],
        )

    def mask(self, **where: str | set[str]) -> np.ndarray:
        """Boolean mask of the items whose metadata match, e.g. ``mask(origins="wild")``."""
        keep = np.ones(len(self), dtype=bool)
        for name, wanted in where.items():
            values = np.array(getattr(self, name), dtype=object)
            allowed = {wanted} if isinstance(wanted, str) else set(wanted)
            keep &= np.array([v in allowed for v in values], dtype=bool)
        return keep


def balanced_subset(labels: np.ndarray, limit: int | None, seed: int) -> list[int]:
    """Indices of at most ``limit`` items, half of each class where possible, seeded."""
    n = len(labels)
    if limit is None or limit >= n:
        return list(range(n))
    rng = np.random.default_rng(seed)
    fake = rng.permutation(np.flatnonzero(labels == 1))
    real = rng.permutation(np.flatnonzero(labels == 0))
    half = limit // 2
    take_fake = min(len(fake), max(half, limit - len(real)))
    take_real = min(len(real), limit - take_fake)
    return sorted(int(i) for i in np.concatenate([fake[:take_fake], real[:take_real]]))


def _read(path: str, max_side: int) -> np.ndarray | None:
    try:
        image = load_image(path)
    except DetectorError as exc:
        log.warning("skipping unreadable training image %s: %s", path, exc)
        return None
    h, w = image.shape[:2]
    if max(h, w) > max_side:  # keep memory bounded for large photos (e.g. FF++ frames)
        scale = max_side / max(h, w)
        image = cv2.resize(
            image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
    return image


def load_images(samples: Sequence, *, max_side: int = 512, workers: int = 2) -> ImageSet:
    """Decode samples (objects with ``path``, ``label``, optional ``generator``, ``source``)."""
    paths = [str(s.path) for s in samples]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = list(pool.map(lambda p: _read(p, max_side), paths))
    keep = [i for i, im in enumerate(decoded) if im is not None]
    return ImageSet(
        images=[decoded[i] for i in keep],
        labels=np.array([int(samples[i].label) for i in keep], dtype=np.int64),
        paths=[paths[i] for i in keep],
        generators=[str(getattr(samples[i], "generator", "") or "") for i in keep],
        sources=[str(getattr(samples[i], "source", "") or "") for i in keep],
        contents=[str(getattr(samples[i], "content", "") or "photo") for i in keep],
        origins=[str(getattr(samples[i], "origin", "") or "package") for i in keep],
        families=[str(getattr(samples[i], "family", "") or "") for i in keep],
        controls=[str(getattr(samples[i], "control", "") or "") for i in keep],
    )


def targets(labels: np.ndarray, output: str) -> np.ndarray:
    """Training targets for labels (1 = fake) in a model's output convention."""
    y = np.asarray(labels, dtype=np.float32)
    if output == "sigmoid_fake":
        return y[:, None]
    if output == "sigmoid_real":
        return (1.0 - y)[:, None]
    if output == "softmax_fake_real":
        return np.stack([y, 1.0 - y], axis=1)
    raise ValueError(f"unknown output convention {output!r}")


def preprocess(
    images: Sequence[np.ndarray], spec: ModelSpec, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The serving preprocessing, as a float32 batch (random native crops when ``rng`` is set)."""
    return spec.preprocessing.apply_batch(list(images), rng)


class BatchSequence(keras.utils.PyDataset):
    """Shuffled, augmented batches; reproducible from (seed, epoch, batch index).

    With ``weights``, each epoch draws its images in proportion to them (with replacement)
    instead of a permutation: see `training.balance.sample_weights`.
    """

    def __init__(
        self,
        data: ImageSet,
        spec: ModelSpec,
        *,
        batch_size: int,
        augment: Augment | None,
        seed: int,
        steps: int | None = None,
        weights: np.ndarray | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if weights is not None and len(weights) != len(data):
            raise ValueError(f"{len(weights)} weights for {len(data)} images")
        self.weights = None if weights is None else np.asarray(weights, np.float64)
        self.data = data
        self.spec = spec
        self.batch_size = batch_size
        self.augment = augment
        self.seed = seed
        self.steps = steps
        self.epoch = 0
        self.y = targets(data.labels, spec.output)
        self._shuffle()

    def _shuffle(self) -> None:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.weights is None:
            self.order = rng.permutation(len(self.data))
        else:  # an epoch of draws in proportion to the weights (content balancing)
            p = self.weights / self.weights.sum()
            self.order = rng.choice(len(self.data), size=len(self.data), p=p)

    def __len__(self) -> int:
        n = math.ceil(len(self.data) / self.batch_size)
        return min(n, self.steps) if self.steps else n

    def __getitem__(self, index: int):
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        images = [self.data.images[i] for i in chosen]
        if self.augment is not None:
            images = [self.augment(im, rng) for im in images]
        return preprocess(images, self.spec, rng), self.y[chosen]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._shuffle()
