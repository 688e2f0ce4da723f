"""The published S1 checkpoint, loaded from the Hub (or a local copy) into its recipe.

- `load_s1_h5` / `load_published_s1` load the published S1 checkpoint (a legacy Keras H5 whose
  config holds a ``Lambda`` with marshalled Python bytecode). Its config is never handed to Keras:
  the weights are read with h5py and copied into this package's ``efficientnet_b7_attention``
  recipe, whose `AttentionPooling` layer computes what the published ``RescaleGAP`` Lambda did.

Example:
    >>> from detector.hub import load_published_s1
    >>> det = load_published_s1(export="assets/models/s1_published")  # doctest: +SKIP
    >>> det.predict("photo.jpg").p_fake                                # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.hub.download import fetch_from_hub
from detector.hub.h5 import S1_RECIPE, _build_from_h5

if TYPE_CHECKING:
    from detector.core.runtime import Detector

log = logging.getLogger(__name__)

#: The published S1 checkpoint (see docs: seed systems, S1).
S1_REPO_ID = "CemRoot/deepfake-detection-model"
S1_FILENAME = "best_model_effatt.h5"
S1_MODEL_NAME = "s1_published"


def load_s1_h5(
    path: str | Path,
    *,
    backbone: str = "efficientnet_b7",
    input_size: int = 128,
    imagenet_stddev_fix: bool | None = None,
):
    """Load an S1-architecture Keras H5 (weights only) into the S1 attention recipe.

    The file's config is never deserialized by Keras (the published one holds a ``Lambda`` with
    marshalled bytecode). The weights are read with h5py from the ``model_weights`` group (or the
    root of a weights-only file), in the order of its ``layer_names`` / ``weight_names``
    attributes; tf.keras 2.x (``<layer>/<layer>/<var>:0``), Keras 3 legacy H5
    (``<layer>/<layer>/<var>``) and nested-backbone (``<backbone>/<layer>/<var>``) layouts all
    load. Backbone layers are copied by name (auto-named ones such as ``normalization_1`` by name
    stem); the head by type and order: BatchNormalization -> ``attn_bn``; the four attention 1x1
    convs -> ``attn_conv1..3``, ``attention_map``; the bias-free 1x1 conv broadcasting the
    attention to the feature depth is checked to be all ones and skipped (``attention_pool``
    does that broadcast); Dense 64 -> ``head_dense``; the softmax Dense 2 -> ``logits`` (the
    recipe's ``probs`` applies the softmax).

    keras.applications EfficientNet built with ImageNet weights by Keras >= 2.10 has an extra
    ``Rescaling(1/sqrt(stddev))`` after its Normalization layer, which this package's backbone
    (built with ``weights=None``) lacks; when the file has it, it is folded exactly into the
    Normalization variance.

    Args:
        path: The ``.h5`` file.
        backbone: The recipe's backbone parameter (``efficientnet_b7`` for the published model).
        input_size: Model input side (128 as published).
        imagenet_stddev_fix: Whether the file's backbone applied that rescaling; None detects it
            from the file's config (read as JSON data), or, without a config, from its Keras
            version and Normalization statistics.

    Returns:
        A ``keras.Model`` of the ``efficientnet_b7_attention`` recipe (0-255 RGB input, layers
        ``logits`` and ``probs`` = softmax [P(fake), P(real)], attention layer ``attention_map``).

    Raises:
        ModelLoadError: unreadable file, or any layer, weight or shape that does not match
            (the message names the layer).
        UnsafeModelError: for pickle-based files.
    """
    model, _ = _build_from_h5(
        path, backbone=backbone, input_size=input_size, imagenet_stddev_fix=imagenet_stddev_fix
    )
    return model


def _snapshot_commit(path: Path) -> str | None:
    parts = path.parts
    if "snapshots" in parts:
        index = len(parts) - 1 - parts[::-1].index("snapshots")
        if index + 1 < len(parts) and re.fullmatch(r"[0-9a-f]{40}", parts[index + 1]):
            return parts[index + 1]
    return None


def s1_card(
    *,
    name: str = S1_MODEL_NAME,
    backbone: str = "efficientnet_b7",
    input_size: int = 128,
    threshold: float = 0.5,
    uncertain_band: tuple[float, float] = (0.5, 0.5),
    source: dict[str, Any] | None = None,
):
    """The model card of the published S1 model loaded into this package (not evaluated here)."""
    from detector.core.card import ModelCard
    from detector.core.recipes import get_recipe

    spec = get_recipe(S1_RECIPE).spec(backbone=backbone, input_size=input_size)
    return ModelCard(
        name=name,
        spec=spec,
        sha256="",
        threshold=threshold,
        uncertain_band=uncertain_band,
        temperature=1.0,
        title="S1 published: EfficientNetB7 + spatial attention",
        summary=(
            "The published S1 checkpoint (frozen ImageNet EfficientNetB7 + attention head, "
            "128 px), weights copied into this package's attention recipe; not evaluated here."
        ),
        training_data={
            "publisher_says": (
                "128x128 RGB resized with OpenCV and scaled to [0, 1]; 2-way softmax "
                "[P(fake), P(real)]; Adam, categorical cross-entropy; claims robustness to JPEG, "
                "resizing, format conversion and cropping (no numbers given). The publisher's "
                "description names no training data set or test metrics."
            ),
            "evaluated_here": False,
            "note": "Not evaluated by this project: no metrics, threshold not tuned.",
        },
        training={"source": source or {}},
        backbone={
            "name": backbone,
            "pretrained": (
                "ImageNet weights of keras.applications EfficientNetB7 as used (frozen) by the "
                "publisher; every weight, backbone included, is read from the published H5"
            ),
        },
        metrics={},
        limitations=(
            "Not evaluated by this project; the publisher reports no test metrics.",
            "Threshold 0.5 reproduces the publisher's argmax; no calibration was fitted.",
            "Training data unknown: expect weak generalisation to other generators and sources.",
        ),
    )


def load_published_s1(
    repo_id: str = S1_REPO_ID,
    filename: str = S1_FILENAME,
    *,
    path: str | Path | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    backbone: str = "efficientnet_b7",
    input_size: int = 128,
    imagenet_stddev_fix: bool | None = None,
    name: str = S1_MODEL_NAME,
    threshold: float = 0.5,
    uncertain_band: tuple[float, float] = (0.5, 0.5),
    export: str | Path | None = None,
    warmup: bool = True,
) -> Detector:
    """The published S1 model as a `Detector` (fetched from the Hub or its cache, loaded safely).

    Args:
        repo_id: Hub repository (default the published one).
        filename: The H5 file in it.
        path: A local copy of the H5 file: skips the Hub entirely.
        revision: Branch, tag or commit on the Hub.
        cache_dir: Hugging Face cache folder.
        backbone: Recipe backbone parameter (``efficientnet_b7`` as published).
        input_size: Model input side (128 as published).
        imagenet_stddev_fix: See `load_s1_h5`.
        name: The model's name in its card.
        threshold: Decision threshold on P(fake) (0.5 = the publisher's argmax).
        uncertain_band: P(fake) range reported "uncertain"; (0.5, 0.5) = none.
        export: A folder to save the model into (``model.keras`` + ``card.json``) so that it
            then loads safely like any trained model, e.g. ``assets/models/s1_published``.
        warmup: Trace the compiled predict function at load time.

    Raises:
        ModelLoadError: the file cannot be fetched (offline-friendly message) or does not match
            the S1 architecture.
    """
    from detector.core.card import sha256_file
    from detector.core.models import export_model
    from detector.core.runtime import Detector

    if path is None:
        file = fetch_from_hub(repo_id, filename, revision=revision, cache_dir=cache_dir)
        source = {"repo_id": repo_id, "filename": filename, "revision": revision or "main"}
        commit = _snapshot_commit(file)
        if commit:
            source["commit"] = commit
    else:
        file = Path(path)
        source = {"file": file.name}
    model, report = _build_from_h5(
        file, backbone=backbone, input_size=input_size, imagenet_stddev_fix=imagenet_stddev_fix
    )
    source["sha256"] = sha256_file(file)
    source["conversion"] = report
    card = s1_card(
        name=name,
        backbone=backbone,
        input_size=input_size,
        threshold=threshold,
        uncertain_band=uncertain_band,
        source=source,
    )
    if export is not None:
        card = export_model(model, export, card)
    return Detector(model, card, warmup=warmup)
