"""The weights of a legacy Keras H5 checkpoint, copied into a recipe's model without its config.

The published S1 checkpoint's config holds a ``Lambda`` with marshalled Python bytecode, so it
is never handed to Keras: `_build_from_h5` reads the weights with h5py, matches the backbone's
and the head's layers to the recipe's by kind and order, copies them, and folds the ImageNet
rescaling the file's Normalization layer stores into the recipe's own (``imagenet_stddev_fix``).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.core.errors import ModelLoadError
from detector.hub.download import _refuse_pickle

log = logging.getLogger(__name__)

#: The recipe the published S1 checkpoint's weights are copied into.
S1_RECIPE = "efficientnet_b7_attention"
#: The ImageNet standard deviations keras.applications EfficientNet stores as its Normalization
#: layer's *variance* (see `load_s1_h5`, ``imagenet_stddev_fix``).
IMAGENET_STDDEV_RGB: tuple[float, float, float] = (0.229, 0.224, 0.225)
_BN_VARIABLES = {"gamma", "beta", "moving_mean", "moving_variance"}
_OPTIONAL_VARIABLES = {"count"}  # Normalization's adapt() counter: unused at inference


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
