"""Batch normalisations folded into the convolutions before them, for faster predictions.

`fold_batch_norms` makes an inference-only copy of a functional model in which every batch
normalisation that directly follows a convolution is folded into that convolution's kernel and
bias: the same function with two element-wise passes fewer per layer. `fold_checked` keeps the
copy only when it gives the model's logits on one input; the `Detector` predicts with it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from detector.core._keras import keras

log = logging.getLogger(__name__)

#: Layer classes a following BatchNormalization can be folded into (channels-last kernels).
FOLDABLE_LAYERS: tuple[str, ...] = ("Conv2D", "DepthwiseConv2D")
#: Largest logit difference, relative to the largest logit magnitude (at least 1), that the
#: load-time check of a folded model accepts; beyond it, predictions run on the unfolded model.
FOLD_CHECK_TOLERANCE = 1e-5


def fold_batch_norms(
    model: keras.Model, keep: Iterable[str] = ()
) -> tuple[keras.Model, tuple[str, ...]]:
    """An inference-only copy of a functional model with batch normalisations folded away.

    Each BatchNormalization whose only input is a `FOLDABLE_LAYERS` convolution (linear
    activation, channels last, float32, feeding nothing else) becomes an Identity layer of the
    same name, and the convolution gets kernel ``W * s`` and bias ``(b - mean) * s + beta``, with
    ``s = gamma / sqrt(variance + epsilon)`` computed in float64. Every named layer's output
    stays what it was (to float32 rounding) except the folded convolutions', which now give
    their normalisation's output. The other layers are copied with their weights.

    Args:
        model: A functional Keras model (anything else is returned as it is).
        keep: Layers whose own output must not change: a convolution named here is not folded.

    Returns:
        The copy and the names of the folded normalisation layers, or ``(model, ())`` when
        nothing can be folded.
    """
    from detector.core.layers import CUSTOM_OBJECTS

    config = model.get_config()
    if not isinstance(config, dict) or "input_layers" not in config or "layers" not in config:
        return model, ()
    config = copy.deepcopy(config)
    entries = {entry["name"]: entry for entry in config["layers"]}
    consumers: dict[str, list[str]] = {}
    for entry in config["layers"]:
        for node in entry["inbound_nodes"]:
            for source in _tensor_sources(node):
                consumers.setdefault(source, []).append(entry["name"])
    outputs = config["output_layers"]  # [name, node, tensor], or a list of them
    for name, *_ in [outputs] if outputs and isinstance(outputs[0], str) else outputs:
        consumers.setdefault(name, []).append("<output>")
    keep = {name for name in keep if name}
    pairs: dict[str, str] = {}  # convolution -> the normalisation folded into it
    for entry in config["layers"]:
        conv_name = _foldable_source(model, entry, entries, consumers)
        if conv_name is not None and conv_name not in keep:
            pairs[conv_name] = entry["name"]
    if not pairs:
        return model, ()
    for conv_name, bn_name in pairs.items():
        entries[conv_name]["config"]["use_bias"] = True
        bn = entries[bn_name]
        bn.update(
            module="keras.layers",
            class_name="Identity",
            registered_name=None,
            config={"name": bn_name, "trainable": False, "dtype": bn["config"].get("dtype")},
        )
        bn.pop("build_config", None)
        for node in bn["inbound_nodes"]:
            node["kwargs"] = {}
    folded = keras.Model.from_config(config, custom_objects=CUSTOM_OBJECTS)
    normalisations = set(pairs.values())
    for layer in model.layers:
        if layer.name in normalisations:
            continue
        target = folded.get_layer(layer.name)
        if layer.name in pairs:
            target.set_weights(_folded_weights(layer, model.get_layer(pairs[layer.name])))
        else:
            target.set_weights(layer.get_weights())
        if hasattr(target, "finalize_state") and getattr(target, "built", False):
            # e.g. Normalization: assigned statistics take effect here
            with contextlib.suppress(AttributeError, ValueError, NotImplementedError):
                target.finalize_state()
    return folded, tuple(pairs.values())


def _tensor_sources(node: Any) -> list[str]:
    """Names of the layers whose outputs a serialized node's arguments refer to."""
    if isinstance(node, dict):
        if node.get("class_name") == "__keras_tensor__":
            return [node["config"]["keras_history"][0]]
        return [name for value in node.values() for name in _tensor_sources(value)]
    if isinstance(node, (list, tuple)):
        return [name for value in node for name in _tensor_sources(value)]
    return []


def _foldable_source(
    model: keras.Model, entry: dict, entries: dict[str, dict], consumers: dict[str, list[str]]
) -> str | None:
    """The convolution a serialized BatchNormalization layer can be folded into, or None."""
    if entry["class_name"] != "BatchNormalization" or len(entry["inbound_nodes"]) != 1:
        return None
    node = entry["inbound_nodes"][0]
    sources = _tensor_sources(node)
    if len(sources) != 1 or node.get("kwargs", {}).get("training"):
        return None
    bn = model.get_layer(entry["name"])
    conv = model.get_layer(sources[0])
    if (
        type(bn) is not keras.layers.BatchNormalization
        or bn.axis not in (-1, 3)
        or type(conv).__name__ not in FOLDABLE_LAYERS
        or type(conv) is not getattr(keras.layers, type(conv).__name__)
        or conv.data_format != "channels_last"
        or entries[conv.name]["config"].get("activation", "linear") != "linear"
        or len(entries[conv.name]["inbound_nodes"]) != 1
        or consumers.get(conv.name) != [bn.name]
        or any(layer.dtype_policy.name != "float32" for layer in (bn, conv))
    ):
        return None
    return conv.name


def _folded_weights(conv: keras.layers.Layer, bn: keras.layers.Layer) -> list[np.ndarray]:
    """The kernel and bias of ``conv`` with the normalisation ``bn`` that follows it folded in."""
    weights = [np.asarray(w, dtype=np.float64) for w in conv.get_weights()]
    kernel = weights[0]
    bias = weights[1] if len(weights) > 1 else 0.0
    mean = np.asarray(bn.moving_mean, dtype=np.float64)
    variance = np.asarray(bn.moving_variance, dtype=np.float64)
    gamma = np.asarray(bn.gamma, dtype=np.float64) if bn.scale else 1.0
    beta = np.asarray(bn.beta, dtype=np.float64) if bn.center else 0.0
    scale = gamma / np.sqrt(variance + float(bn.epsilon))
    if isinstance(conv, keras.layers.DepthwiseConv2D):  # kernel (h, w, in, multiplier)
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:  # kernel (h, w, in / groups, out)
        kernel = kernel * scale
    bias = (bias - mean) * scale + beta
    return [kernel.astype(np.float32), np.asarray(bias, dtype=np.float32)]


def fold_checked(model: keras.Model, size: int) -> tuple[keras.Model, tuple[str, ...]]:
    """`fold_batch_norms`, kept only when the copy gives the model's logits on one input.

    Anything the folding cannot handle, or logits further apart than `FOLD_CHECK_TOLERANCE`,
    leaves the model unfolded.
    """
    try:
        folded, names = fold_batch_norms(model, keep=("logits",))
        if not names:
            return model, ()
        x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
        before = np.asarray(keras.Model(model.inputs, model.get_layer("logits").output)([x]))
        after = np.asarray(keras.Model(folded.inputs, folded.get_layer("logits").output)([x]))
        error = float(np.max(np.abs(before - after))) / max(float(np.max(np.abs(before))), 1.0)
        if not error <= FOLD_CHECK_TOLERANCE:
            log.warning("not folding %s: its logits moved by %.2g", model.name, error)
            return model, ()
    except Exception as exc:  # an architecture the folding does not handle runs unfolded
        log.warning("not folding %s: %s: %s", model.name, type(exc).__name__, exc)
        return model, ()
    return folded, names
