"""What serving needs to know about a model: input size, preprocessing, output convention, layers.

A `ModelSpec` is resolved from a recipe and saved in every model card, so that training and
serving read preprocessing from one place and can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

ResizeMode = Literal["resize", "center_crop", "native_crop"]
Interpolation = Literal["area", "bilinear"]
ValueScale = Literal["unit", "raw", "imagenet", "div127"]
OutputConvention = Literal["sigmoid_fake", "sigmoid_real", "softmax_fake_real"]

#: How each output convention's ``logits`` units combine into the logit of "fake".
FAKE_LOGIT_WEIGHTS: dict[str, tuple[float, ...]] = {
    "sigmoid_fake": (1.0,),
    "sigmoid_real": (-1.0,),
    "softmax_fake_real": (1.0, -1.0),
}
OUTPUT_CONVENTIONS: tuple[str, ...] = tuple(FAKE_LOGIT_WEIGHTS)
VALUE_SCALES: tuple[str, ...] = ("unit", "raw", "imagenet", "div127")

#: The explanation methods, in the order the apps and the CLI offer them: the first two (Grad-CAM
#: and Grad-CAM++, from gradients) work on every model, ``attention`` on models with an attention
#: layer (`ModelSpec.explain_methods`). Every other list of methods is derived from this one.
EXPLAIN_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "attention")
GRADIENT_METHODS: tuple[str, ...] = EXPLAIN_METHODS[:2]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: JPEG's block side, in pixels.
JPEG_BLOCK = 8


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the model's input.

    Attributes:
        size: Side of the square model input, in pixels.
        resize: ``"resize"`` squashes the whole image to size x size (as the published systems
            did); ``"center_crop"`` resizes the shorter side to ``size`` and crops the centre;
            ``"native_crop"`` crops a size x size patch at the image's own resolution (no
            resampling, so generator traces survive; images smaller than ``size`` are enlarged;
            serving scores several such patches spread over a large image, `detector.core.patches`).
        interpolation: ``"area"`` (OpenCV INTER_AREA when shrinking, bilinear when enlarging) or
            ``"bilinear"`` (OpenCV INTER_LINEAR, as the published systems did).
        scale: Value scaling applied by the model's first layer (documented here, executed in the
            model so a saved model is self-contained): ``unit`` x/255, ``raw`` 0-255 (the
            EfficientNet applications rescale internally), ``imagenet`` (x/255 - mean)/std,
            ``div127`` x/127.
        grid: The crop's top-left corner is a multiple of ``grid`` pixels from the image's
            top-left corner (crop modes only). 8 keeps JPEG's 8 x 8 blocks where the encoder
            put them, for models that read block statistics; 1 crops anywhere.
        whole_view: With ``native_crop``, also score the whole image resized to size x size,
            as one more view beside the native-resolution patches (`detector.core.patches`). Off by
            default: resizing a large photo to the input wipes out the pixel-level traces these
            models read, so a model card turns it on only where it was measured to help.
        scene_side: With ``native_crop``, also score one *scene view*: the image shrunk so its
            shorter side is ``scene_side`` px, its central ``size`` x ``size`` square. Models
            trained on the kit's wild tiles learnt from pictures shrunk to about this scale
            (a tile shows most of a scene), while uploads are read at full resolution; the
            scene view shows them the picture as they learnt it. Only an image whose shorter
            side is larger than ``scene_side`` gets one (a smaller image's scene view would be
            its own centre crop), and it carries half the whole-image score
            (`detector.core.patches.combine`). None (the default): off; a card turns it on
            where it was measured to help (``python -m training scene-view``). It must lie in
            [size, 2 * size) and cannot be combined with ``whole_view``.
    """

    size: int
    resize: ResizeMode = "resize"
    interpolation: Interpolation = "area"
    scale: ValueScale = "unit"
    grid: int = 1
    whole_view: bool = False
    scene_side: int | None = None

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"input size must be at least 8 px, got {self.size}")
        if self.resize not in ("resize", "center_crop", "native_crop"):
            raise ValueError(f"unknown resize mode {self.resize!r}")
        if self.interpolation not in ("area", "bilinear"):
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        if self.scale not in VALUE_SCALES:
            raise ValueError(f"unknown value scale {self.scale!r}")
        if not isinstance(self.grid, int) or self.grid < 1:
            raise ValueError(f"crop grid must be a whole number of pixels >= 1, got {self.grid!r}")
        if not isinstance(self.whole_view, bool):
            raise ValueError(f"whole_view must be true or false, got {self.whole_view!r}")
        if self.scene_side is not None:
            self._check_scene_side()

    def _check_scene_side(self) -> None:
        side = self.scene_side
        if isinstance(side, bool) or not isinstance(side, int):
            raise ValueError(f"scene_side must be a whole number of pixels, got {side!r}")
        if self.resize != "native_crop":
            raise ValueError(f"scene_side needs the native_crop resize mode, not {self.resize!r}")
        if self.whole_view:
            raise ValueError("scene_side and whole_view cannot both be set: choose one")
        if not self.size <= side < 2 * self.size:
            raise ValueError(
                f"scene_side must lie in [{self.size}, {2 * self.size}) for a {self.size} px "
                f"input, got {side}"
            )

    def crop_box(
        self, height: int, width: int, rng: np.random.Generator | None = None
    ) -> tuple[int, int, int, int]:
        """The region (top, left, bottom, right) of an H x W image that the model sees.

        With ``native_crop`` and a random generator (training), the patch position is random;
        otherwise it is centred. Either way its corner is rounded down to the crop ``grid``.
        """
        if self.resize == "resize":
            return 0, 0, height, width
        side = min(height, width)
        if self.resize == "native_crop" and side >= self.size:
            side = self.size
        if rng is not None and self.resize == "native_crop":
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
        else:
            top, left = (height - side) // 2, (width - side) // 2
        top, left = top - top % self.grid, left - left % self.grid
        return top, left, top + side, left + side

    def apply(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Bring one RGB uint8 image to the model input; returns float32 (size, size, 3), 0-255.

        Value scaling is not applied here: it is the model's first layer.
        """
        top, left, bottom, right = self.crop_box(*image.shape[:2], rng=rng)
        region = image[top:bottom, left:right]
        h, w = region.shape[:2]
        if (h, w) == (self.size, self.size):
            out = region
        else:
            shrinking = h * w > self.size * self.size
            flag = (
                cv2.INTER_AREA if self.interpolation == "area" and shrinking else cv2.INTER_LINEAR
            )
            out = cv2.resize(region, (self.size, self.size), interpolation=flag)
        return out.astype(np.float32)

    def apply_batch(
        self, images: list[np.ndarray], rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Preprocess several images into one float32 batch (N, size, size, 3)."""
        batch = np.empty((len(images), self.size, self.size, 3), dtype=np.float32)
        for i, image in enumerate(images):
            batch[i] = self.apply(image, rng)
        return batch


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to serve a model, resolved from a recipe and stored in its card.

    Attributes:
        recipe: Name of the recipe that built the model.
        preprocessing: Input size and preprocessing.
        output: How the output maps to P(fake): ``sigmoid_fake``, ``sigmoid_real`` (1 = real, as
            S3 published) or ``softmax_fake_real`` (2-way softmax [fake, real], as S1 published).
            Every recipe ends in a Dense layer named ``logits`` followed by an activation layer
            named ``probs``.
        gradcam_layer: Name of the convolutional layer Grad-CAM explains.
        attention_layer: Name of the layer whose output is a spatial attention map in [0, 1], or
            None.
        params: The recipe parameters (e.g. the backbone) the model was built with.
    """

    recipe: str
    preprocessing: Preprocessing
    output: OutputConvention
    gradcam_layer: str
    attention_layer: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_CONVENTIONS:
            raise ValueError(f"unknown output convention {self.output!r}")

    @property
    def input_size(self) -> int:
        """Side of the square model input."""
        return self.preprocessing.size

    @property
    def explain_methods(self) -> tuple[str, ...]:
        """The explanation methods this model supports."""
        return EXPLAIN_METHODS if self.attention_layer else GRADIENT_METHODS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Rebuild a spec from `to_dict` output."""
        data = dict(data)
        data["preprocessing"] = Preprocessing(**data["preprocessing"])
        return cls(**data)
