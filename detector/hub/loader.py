"""Models from the Hugging Face Hub: cached, offline-friendly downloads and safe loading.

- `fetch_from_hub` downloads one file through ``huggingface_hub`` (cache first, so a cached file
  works offline) and turns every failure into a `ModelLoadError` that says what to do.
- `load_keras_from_hub` loads ``.keras`` archives in Keras safe mode (see
  `detector.core.models.load_keras_file`). Pickle-based formats are never loaded.
- `load_s1_h5` / `load_published_s1` load the published S1 checkpoint (a legacy Keras H5 whose
  config holds a ``Lambda`` with marshalled Python bytecode). Its config is never handed to Keras:
  the weights are read with h5py and copied into this package's ``efficientnet_b7_attention``
  recipe, whose `AttentionPooling` layer computes what the published ``RescaleGAP`` Lambda did.

Example:
    >>> from detector.hub.loader import load_published_s1
    >>> det = load_published_s1(export="assets/models/s1_published")  # doctest: +SKIP
    >>> det.predict("photo.jpg").p_fake                                # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from detector.core.errors import ModelLoadError, UnsafeModelError

if TYPE_CHECKING:
    from detector.core.runtime import Detector

log = logging.getLogger(__name__)

#: The published S1 checkpoint (see docs: seed systems, S1).
S1_REPO_ID = "CemRoot/deepfake-detection-model"
S1_FILENAME = "best_model_effatt.h5"
S1_MODEL_NAME = "s1_published"
S1_RECIPE = "efficientnet_b7_attention"

#: File suffixes of pickle-based formats: loading them can run arbitrary code, so they never load.
PICKLE_SUFFIXES: tuple[str, ...] = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib")

#: The ImageNet standard deviations keras.applications EfficientNet stores as its Normalization
#: layer's *variance* (see `load_s1_h5`, ``imagenet_stddev_fix``).
IMAGENET_STDDEV_RGB: tuple[float, float, float] = (0.229, 0.224, 0.225)

_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
_BN_VARIABLES = {"gamma", "beta", "moving_mean", "moving_variance"}
_OPTIONAL_VARIABLES = {"count"}  # Normalization's adapt() counter: unused at inference


# --------------------------------------------------------------------------- downloading
def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in _TRUE_VALUES


def hub_offline() -> bool:
    """True when Hugging Face Hub offline mode is on (``HF_HUB_OFFLINE``, read at call time)."""
    from huggingface_hub import constants

    return (
        _env_true("HF_HUB_OFFLINE")
        or _env_true("TRANSFORMERS_OFFLINE")
        or bool(constants.is_offline_mode())
    )


def _cache_root(cache_dir: str | Path | None) -> str:
    from huggingface_hub import constants

    return str(cache_dir) if cache_dir is not None else str(constants.HF_HUB_CACHE)


def _repo_folder(repo_id: str) -> str:
    return "models--" + repo_id.replace("/", "--")


def _hub_error(
    repo_id: str,
    filename: str,
    revision: str | None,
    cache_dir: str | Path | None,
    reason: str,
    tried: list[str],
    *,
    code: str,
) -> ModelLoadError:
    cache = _cache_root(cache_dir)
    rev = revision or "main"
    lines = [
        f"could not get {filename!r} from the Hugging Face Hub repository {repo_id!r} "
        f"(revision {rev!r}): {reason}.",
        "Tried: " + "; then ".join(tried) + ".",
        "To use it without a connection: download it once where the Hub is reachable "
        f"(`hf download {repo_id} {filename}`) and copy the cache folder "
        f"{Path(cache) / _repo_folder(repo_id)} into {cache} here (or point HF_HUB_CACHE / "
        "cache_dir at a copied cache), or pass the downloaded file's local path instead "
        "(e.g. detector.hub.loader.load_s1_h5(path) or load_published_s1(path=...)).",
        "Set HF_HUB_OFFLINE=1 to use only the local cache and skip network attempts.",
    ]
    return ModelLoadError(" ".join(lines), code=code)


def fetch_from_hub(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """The local path of one file of a Hugging Face Hub model repository.

    The local Hugging Face cache is checked first (``try_to_load_from_cache``), so a cached file
    is used without any network access; otherwise ``hf_hub_download`` downloads it into the cache
    (skipped when ``HF_HUB_OFFLINE`` is set).

    Args:
        repo_id: ``"owner/name"`` of a model repository.
        filename: Path of the file inside the repository.
        revision: Branch, tag or commit; default ``main``.
        cache_dir: Hugging Face cache folder; default the library's (``HF_HUB_CACHE``).

    Returns:
        The cached file's path (inside ``<cache>/models--owner--name/snapshots/<commit>/``).

    Raises:
        ModelLoadError: offline or unreachable without a cached copy (``code`` ``hub_offline``),
            unknown repository, revision or file (``hub_not_found``), other download failures
            (``hub_download_failed``); the message says what was tried and how to work offline.
    """
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    cache = _cache_root(cache_dir)
    try:
        cached = huggingface_hub.try_to_load_from_cache(
            repo_id, filename, cache_dir=cache_dir, revision=revision
        )
    except ValueError as exc:  # invalid repo id or file name
        raise ModelLoadError(
            f"invalid Hub reference {repo_id!r} / {filename!r}: {exc}", code="hub_not_found"
        ) from None
    if isinstance(cached, str):
        log.debug("using cached %s/%s: %s", repo_id, filename, cached)
        return Path(cached)
    tried = [f"the local Hugging Face cache {cache} (not there)"]
    known_missing = cached is huggingface_hub._CACHED_NO_EXIST
    if known_missing:
        tried[0] = f"the local Hugging Face cache {cache} (it records that the file does not exist)"
    if hub_offline():
        tried.append("no download: HF_HUB_OFFLINE is set")
        reason = (
            "the file is not in that repository (cached answer)"
            if known_missing
            else "offline mode is on and the file is not in the local cache"
        )
        raise _hub_error(repo_id, filename, revision, cache_dir, reason, tried, code="hub_offline")
    tried.append(f"a download from the Hub into {cache}")
    try:
        path = huggingface_hub.hf_hub_download(
            repo_id, filename, revision=revision, cache_dir=cache_dir
        )
    except hf_errors.LocalEntryNotFoundError:
        raise _hub_error(
            repo_id,
            filename,
            revision,
            cache_dir,
            "the Hub is unreachable (no connection?) and the file is not in the local cache",
            tried,
            code="hub_offline",
        ) from None
    except hf_errors.RepositoryNotFoundError:  # includes gated / private repositories
        raise _hub_error(
            repo_id,
            filename,
            revision,
            cache_dir,
            "the repository does not exist or needs authorisation (`hf auth login`)",
            tried,
            code="hub_not_found",
        ) from None
    except hf_errors.RevisionNotFoundError:
        raise _hub_error(
            repo_id, filename, revision, cache_dir, "no such revision", tried, code="hub_not_found"
        ) from None
    except hf_errors.EntryNotFoundError:
        raise _hub_error(
            repo_id,
            filename,
            revision,
            cache_dir,
            "the repository has no such file",
            tried,
            code="hub_not_found",
        ) from None
    except Exception as exc:  # httpx / OS / Hub errors: never a raw traceback
        raise _hub_error(
            repo_id,
            filename,
            revision,
            cache_dir,
            f"{type(exc).__name__}: {exc}",
            tried,
            code="hub_download_failed",
        ) from None
    return Path(path)


def _refuse_pickle(filename: str | Path) -> None:
    suffix = Path(filename).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise UnsafeModelError(
            f"refusing {Path(filename).name}: {suffix} files are pickle-based and loading one can "
            "run arbitrary code, so they are never loaded. Use a .keras archive (or, for the "
            "published S1 checkpoint, its .h5 file with detector.hub.loader.load_s1_h5).",
            code="pickle_format",
        )


def load_keras_from_hub(
    repo_id: str,
    filename: str,
    *,
    allow_unsafe: bool = False,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
):
    """Download (or take from the cache) a ``.keras`` model and load it in Keras safe mode.

    Args:
        repo_id: ``"owner/name"`` of a model repository.
        filename: The ``.keras`` file inside it.
        allow_unsafe: Allow Lambda layers and custom code to load (logs a warning: that code runs
            with your privileges). Only for repositories you trust; never for user input.
        revision: Branch, tag or commit; default ``main``.
        cache_dir: Hugging Face cache folder.

    Returns:
        The Keras model (not compiled).

    Raises:
        UnsafeModelError: pickle-based files (``.pkl``, ``.pt``, ``.pth``, ``.bin``...), or a
            model that needs code while ``allow_unsafe`` is False.
        ModelLoadError: other formats, download or loading failures.
    """
    from detector.core.models import load_keras_file

    _refuse_pickle(filename)
    suffix = Path(filename).suffix.lower()
    if suffix != ".keras":
        hint = (
            " For the published S1 checkpoint use detector.hub.load_published_s1 / load_s1_h5, "
            "which read an H5 file's weights only."
            if suffix in (".h5", ".hdf5")
            else ""
        )
        raise ModelLoadError(
            f"refusing {Path(filename).name}: only .keras archives load from the Hub (legacy H5 "
            f"and SavedModel configs can carry code).{hint}",
            code="unsupported_model_format",
        )
    path = fetch_from_hub(repo_id, filename, revision=revision, cache_dir=cache_dir)
    if allow_unsafe:
        log.warning(
            "allow_unsafe=True for %s/%s: Lambda layers and custom code stored in this Hub "
            "file will run with your privileges; do this only for repositories you trust",
            repo_id,
            filename,
        )
    return load_keras_file(path, allow_unsafe=allow_unsafe)


# --------------------------------------------------------------------------- reading H5 weights
@dataclass
class _H5Layer:
    """The weights of one layer of a legacy Keras H5 file."""

    name: str  # the layer's name (from its weights' paths)
    group: str  # the entry of the file's ``layer_names`` that holds it
    weights: dict[str, Any] = field(default_factory=dict)  # variable name -> h5py.Dataset
    paths: dict[str, str] = field(default_factory=dict)  # variable name -> path in the file

    @property
    def where(self) -> str:
        return self.name if self.name == self.group else f"{self.group}/{self.name}"

    @property
    def kind(self) -> str:
        names = set(self.weights)
        if "moving_mean" in names and names <= _BN_VARIABLES:
            return "batch_norm"
        kernel = self.weights.get("kernel")
        if kernel is not None and len(kernel.shape) == 4:
            return "conv"
        if kernel is not None and len(kernel.shape) == 2:
            return "dense"
        return "other"


def _attr_strings(group, name: str) -> list[str]:
    """A list-of-strings attribute, also when Keras split it into ``name0``, ``name1``..."""

    def decode(values) -> list[str]:
        return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]

    if name in group.attrs:
        return decode(group.attrs[name])
    out: list[str] = []
    chunk = 0
    while f"{name}{chunk}" in group.attrs:
        out.extend(decode(group.attrs[f"{name}{chunk}"]))
        chunk += 1
    return out


def _split_weight_name(weight_name: str, group: str) -> tuple[str, str]:
    """``'block1a_dwconv/depthwise_kernel:0'`` -> ``('block1a_dwconv', 'depthwise_kernel')``."""
    parts = re.sub(r":\d+$", "", weight_name).split("/")
    return (parts[-2] if len(parts) > 1 else group), parts[-1]


def _read_h5_layers(h5file, source: str) -> tuple[list[_H5Layer], dict[str, Any]]:
    """Every layer with weights, in the file's ``layer_names`` / ``weight_names`` order."""
    root = h5file.get("model_weights", h5file)
    layer_names = _attr_strings(root, "layer_names")
    if not layer_names:
        raise ModelLoadError(
            f"{source} is not a Keras H5 model (no 'layer_names' in its weights group)",
            code="bad_h5",
        )
    layers: dict[str, _H5Layer] = {}
    for group_name in layer_names:
        if group_name not in root:
            raise ModelLoadError(f"{source}: layer group {group_name!r} is missing", code="bad_h5")
        group = root[group_name]
        for weight_name in _attr_strings(group, "weight_names"):
            if weight_name not in group:
                raise ModelLoadError(
                    f"{source}: weight {group_name}/{weight_name} is listed but missing",
                    code="bad_h5",
                )
            layer_name, variable = _split_weight_name(weight_name, group_name)
            layer = layers.setdefault(layer_name, _H5Layer(layer_name, group_name))
            if variable in layer.weights or layer.group != group_name:
                raise ModelLoadError(
                    f"{source}: ambiguous weight {group_name}/{weight_name} (layer "
                    f"{layer_name!r} has {variable!r} twice)",
                    code="bad_h5",
                )
            layer.weights[variable] = group[weight_name]
            layer.paths[variable] = f"{root.name.rstrip('/')}/{group_name}/{weight_name}"
    meta = {
        "keras_version": _attr_text(root, "keras_version") or _attr_text(h5file, "keras_version"),
        "backend": _attr_text(root, "backend") or _attr_text(h5file, "backend"),
        "model_config": _attr_text(h5file, "model_config"),
    }
    return list(layers.values()), meta


def _attr_text(group, name: str) -> str | None:
    value = group.attrs.get(name)
    if value is None:
        return None
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------- EfficientNet input
def _per_channel_rescalings_in_config(config_text: str | None) -> list[np.ndarray] | None:
    """Per-channel ``Rescaling`` scales in a model config, read as plain JSON data.

    Newer keras.applications EfficientNets (Keras >= 2.10 with ImageNet weights) add
    ``Rescaling(1/sqrt(stddev))`` after their Normalization layer. The config is only parsed
    with `json` (never given to Keras), so nothing in it runs. None: no usable config.
    """
    if not config_text:
        return None
    try:
        config = json.loads(config_text)
    except ValueError:
        return None
    found: list[np.ndarray] = []
    stddev_scale = 1.0 / np.sqrt(np.asarray(IMAGENET_STDDEV_RGB, dtype=np.float64))

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("class_name") == "Rescaling" and isinstance(node.get("config"), dict):
                scale = node["config"].get("scale")
                if isinstance(scale, dict):  # a serialized tensor or array
                    value = scale.get("config", {}).get("value")
                    scale = value if isinstance(value, list) else list(stddev_scale)
                if isinstance(scale, list) and len(scale) > 1:
                    found.append(np.asarray(scale, dtype=np.float64))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def _version_at_least(version: str | None, minimum: tuple[int, int]) -> bool:
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return bool(match) and (int(match[1]), int(match[2])) >= minimum


def _source_post_norm_scale(
    meta: dict[str, Any], src_norm: _H5Layer | None, override: bool | None
) -> tuple[np.ndarray | None, str]:
    """The per-channel scale the published backbone applies after its Normalization layer."""
    stddev_scale = 1.0 / np.sqrt(np.asarray(IMAGENET_STDDEV_RGB, dtype=np.float64))
    found = _per_channel_rescalings_in_config(meta.get("model_config"))
    if override is False:
        return None, "imagenet_stddev_fix=False"
    if override is True:
        scale = found[0] if found and len(found) == 1 else stddev_scale
        return scale, "imagenet_stddev_fix=True"
    if found is not None:
        if len(found) > 1:
            raise ModelLoadError(
                f"the H5 config has {len(found)} per-channel Rescaling layers; expected at most "
                "one (the EfficientNet ImageNet stddev fix); pass imagenet_stddev_fix explicitly",
                code="architecture_mismatch",
            )
        return (found[0], "from the file's config") if found else (None, "from the file's config")
    if src_norm is None or "variance" not in src_norm.weights:
        return None, "no Normalization layer in the file"
    variance = np.asarray(src_norm.weights["variance"][()], dtype=np.float64).ravel()
    imagenet = variance.shape == (3,) and np.allclose(variance, IMAGENET_STDDEV_RGB, atol=1e-4)
    if imagenet and _version_at_least(meta.get("keras_version"), (2, 10)):
        log.warning(
            "the H5 has no model config; assuming its ImageNet EfficientNet applied the "
            "1/sqrt(stddev) rescaling of Keras >= 2.10 (keras_version %s). Pass "
            "imagenet_stddev_fix=False if it did not.",
            meta.get("keras_version"),
        )
        return stddev_scale, f"assumed from keras_version {meta.get('keras_version')}"
    return None, "assumed absent (no config)"


def _model_post_norm_scale(model) -> np.ndarray | None:
    from detector.core._keras import keras

    scales = [
        np.asarray(layer.scale, dtype=np.float64)
        for layer in model.layers
        if isinstance(layer, keras.layers.Rescaling) and np.size(layer.scale) > 1
    ]
    if len(scales) > 1:
        raise ModelLoadError("the target model has several per-channel Rescaling layers")
    return scales[0] if scales else None


# --------------------------------------------------------------------------- copying weights
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _Copier:
    """Copies H5 weights into a model, checking names and shapes and recording what was used."""

    def __init__(self, model, source: str) -> None:
        self.model = model
        self.source = source
        self.assigned: set[str] = set()
        self.skipped: set[str] = set()

    def copy(self, layer, src: _H5Layer, transform=None) -> None:
        from detector.core._keras import keras

        used: set[str] = set()
        for variable in layer.weights:
            candidates = [variable.name]
            if isinstance(layer, keras.layers.DepthwiseConv2D) and variable.name == "kernel":
                candidates.append("depthwise_kernel")  # tf.keras 2.x name
            key = next((c for c in candidates if c in src.weights), None)
            if key is None:
                if variable.name in _OPTIONAL_VARIABLES:
                    self.skipped.add(variable.path)
                    continue
                raise ModelLoadError(
                    f"{self.source}: H5 layer {src.where!r} has no {variable.name!r} weight for "
                    f"layer {layer.name!r} (it has {sorted(src.weights)})",
                    code="architecture_mismatch",
                )
            dataset = src.weights[key]
            if tuple(dataset.shape) != tuple(variable.shape):
                raise ModelLoadError(
                    f"{self.source}: shape mismatch for layer {layer.name!r} weight "
                    f"{variable.name!r}: the H5 has {tuple(dataset.shape)} at {src.paths[key]} "
                    f"(layer {src.where!r}), the model needs {tuple(variable.shape)}",
                    code="architecture_mismatch",
                )
            value = np.asarray(dataset[()])
            if transform is not None:
                value = transform(variable.name, value)
            variable.assign(value.astype(variable.dtype))
            self.assigned.add(variable.path)
            used.add(key)
        finalize = getattr(layer, "finalize_state", None)
        if callable(finalize):  # Normalization computes from its variables only here
            finalize()
        extra = sorted(set(src.weights) - used - _OPTIONAL_VARIABLES)
        if extra:
            raise ModelLoadError(
                f"{self.source}: H5 layer {src.where!r} has weights {extra} that layer "
                f"{layer.name!r} does not have",
                code="architecture_mismatch",
            )

    def check_complete(self) -> None:
        missing = [
            v.path
            for v in self.model.weights
            if v.path not in self.assigned and v.path not in self.skipped
        ]
        if missing:
            raise ModelLoadError(
                f"{self.source}: no weights in the H5 for {len(missing)} model weight(s): "
                f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}",
                code="architecture_mismatch",
            )


def _match_backbone(model, src_layers: list[_H5Layer], source: str, backbone: str):
    """Pairs (our backbone layer, H5 layer): by name; auto-named layers by name stem, in order."""
    from detector.core.recipes import is_head_layer

    by_name = {layer.name: layer for layer in src_layers}
    ours = [layer for layer in model.layers if layer.weights and not is_head_layer(layer.name)]
    taken = {layer.name for layer in ours if layer.name in by_name}
    pairs = []
    for layer in ours:
        src = by_name.get(layer.name)
        if src is None:
            stem = re.sub(r"_\d+$", "", layer.name)
            if stem == _snake(type(layer).__name__):  # auto-named, e.g. normalization_3
                src = next(
                    (
                        s
                        for s in src_layers
                        if s.name not in taken and re.sub(r"_\d+$", "", s.name) == stem
                    ),
                    None,
                )
        if src is None:
            raise ModelLoadError(
                f"{source}: no weights for backbone layer {layer.name!r} in the H5; was it "
                f"built on the {backbone!r} backbone (keras.applications layer names)?",
                code="architecture_mismatch",
            )
        taken.add(src.name)
        pairs.append((layer, src))
    return pairs


def _match_head(model, head: list[_H5Layer], source: str):
    """Pairs the published attention head's layers with the recipe's, by type and order."""
    kinds: dict[str, list[_H5Layer]] = {"batch_norm": [], "conv": [], "dense": [], "other": []}
    for layer in head:
        kinds[layer.kind].append(layer)
    if kinds["other"]:
        raise ModelLoadError(
            f"{source}: unexpected head layer(s) with weights: "
            + ", ".join(f"{s.where!r} {sorted(s.weights)}" for s in kinds["other"]),
            code="architecture_mismatch",
        )
    broadcast = []
    attention = []
    for conv in kinds["conv"]:
        kernel = conv.weights["kernel"]
        if "bias" not in conv.weights and tuple(kernel.shape[:3]) == (1, 1, 1):
            values = np.asarray(kernel[()])
            if not np.all(values == 1.0):
                raise ModelLoadError(
                    f"{source}: head conv {conv.where!r} looks like the 1x1 conv that broadcasts "
                    "the attention map to the feature depth, but its kernel is not all ones "
                    f"(min {values.min():g}, max {values.max():g}); cannot express it as "
                    "attention pooling",
                    code="architecture_mismatch",
                )
            broadcast.append(conv)
        else:
            attention.append(conv)
    expected = {"batch_norm": 1, "attention conv": 4, "dense": 2, "broadcast conv": (0, 1)}
    counts = {
        "batch_norm": len(kinds["batch_norm"]),
        "attention conv": len(attention),
        "dense": len(kinds["dense"]),
        "broadcast conv": len(broadcast),
    }
    for what, want in expected.items():
        ok = counts[what] in want if isinstance(want, tuple) else counts[what] == want
        if not ok:
            found = ", ".join(f"{s.where!r} ({s.kind})" for s in head) or "none"
            raise ModelLoadError(
                f"{source}: the head does not match S1's attention head: expected {want} "
                f"{what} layer(s), found {counts[what]} (head layers with weights: {found})",
                code="architecture_mismatch",
            )
    targets = ["attn_bn", "attn_conv1", "attn_conv2", "attn_conv3", "attention_map"]
    targets += ["head_dense", "logits"]
    sources = kinds["batch_norm"] + attention + kinds["dense"]
    return [(model.get_layer(t), s) for t, s in zip(targets, sources, strict=True)], broadcast


def _build_from_h5(
    path: str | Path,
    *,
    backbone: str,
    input_size: int,
    imagenet_stddev_fix: bool | None,
) -> tuple[Any, dict[str, Any]]:
    import h5py

    from detector.core._keras import keras
    from detector.core.recipes import get_recipe

    path = Path(path)
    _refuse_pickle(path)
    source = path.name
    if not path.is_file():
        raise ModelLoadError(f"no such file: {path}", code="missing")
    if not h5py.is_hdf5(path):
        raise ModelLoadError(f"{source} is not an HDF5 (Keras .h5) file", code="bad_h5")
    recipe = get_recipe(S1_RECIPE)
    spec = recipe.spec(backbone=backbone, input_size=input_size)
    model = recipe.build(spec)
    report: dict[str, Any] = {}
    try:
        with h5py.File(path, "r") as h5file:
            src_layers, meta = _read_h5_layers(h5file, source)
            copier = _Copier(model, source)
            pairs = _match_backbone(model, src_layers, source, backbone)
            used = {src.name for _, src in pairs}
            head = [s for s in src_layers if s.name not in used]
            head_pairs, broadcast = _match_head(model, head, source)

            norm_pairs = [(o, s) for o, s in pairs if isinstance(o, keras.layers.Normalization)]
            src_scale, how = _source_post_norm_scale(
                meta, norm_pairs[0][1] if norm_pairs else None, imagenet_stddev_fix
            )
            our_scale = _model_post_norm_scale(model)
            ratio = None
            if src_scale is not None or our_scale is not None:
                if len(norm_pairs) != 1:
                    raise ModelLoadError(
                        f"{source}: a per-channel rescaling after the input Normalization was "
                        f"found ({how}) but the {backbone!r} backbone has "
                        f"{len(norm_pairs)} Normalization layers",
                        code="architecture_mismatch",
                    )
                one = np.ones(3)
                ratio = (
                    (one if our_scale is None else our_scale)
                    / (one if src_scale is None else src_scale)
                ) ** 2

            def fold(name: str, value: np.ndarray) -> np.ndarray:
                # Normalization(x) * s == (x - mean) / sqrt(variance / s**2)
                if name != "variance" or ratio is None:
                    return value
                return value * ratio.reshape(value.shape)

            for ours, src in pairs:
                is_norm = isinstance(ours, keras.layers.Normalization)
                copier.copy(ours, src, fold if is_norm else None)
            for ours, src in head_pairs:
                copier.copy(ours, src)
            copier.check_complete()
            report = {
                "keras_version": meta.get("keras_version"),
                "backend": meta.get("backend"),
                "had_config": bool(meta.get("model_config")),
                "layers_copied": len(pairs) + len(head_pairs),
                "weights_copied": len(copier.assigned),
                "broadcast_conv": [s.where for s in broadcast],
                "imagenet_stddev_fix": {
                    "applied": src_scale is not None,
                    "how": how,
                    "folded_into_normalization_variance": ratio is not None,
                },
            }
    except ModelLoadError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ModelLoadError(
            f"cannot read {source}: {type(exc).__name__}: {exc}", code="bad_h5"
        ) from None
    log.info("loaded %s into %s: %s", source, S1_RECIPE, report)
    return model, report


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


__all__ = [
    "IMAGENET_STDDEV_RGB",
    "PICKLE_SUFFIXES",
    "S1_FILENAME",
    "S1_REPO_ID",
    "fetch_from_hub",
    "hub_offline",
    "load_keras_from_hub",
    "load_published_s1",
    "load_s1_h5",
    "s1_card",
]
