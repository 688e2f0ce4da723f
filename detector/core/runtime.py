"""A loaded model with compiled inference and explanation functions.

Inference never goes through ``model.predict``: each path is a ``tf.function`` with a fixed input
signature (traced once), and one forward pass serves both the prediction and its explanation.
None of them has Python control flow, so none is converted by AutoGraph (a cheaper trace).
The prediction function runs an inference-only copy of the model in which every batch
normalisation that directly follows a convolution is folded into that convolution's kernel and
bias (`detector.core.folding`): the same function with two element-wise passes fewer per layer. The
explanation functions run the model as given, so that their maps are the model's own.

A ``native_crop`` model scores a large image on several native-resolution patches at once and
reports their combination (`detector.core.patches`); an explanation explains one of those patches.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from detector.core._keras import keras, tf
from detector.core.card import ModelCard
from detector.core.errors import UnsupportedMethodError
from detector.core.folding import fold_checked
from detector.core.heatmaps import DEFAULT_ALPHA, normalize_maps, to_image_size
from detector.core.images import ImageSource, decode_file, load_image
from detector.core.patches import (
    MAX_PATCHES,
    Views,
    calibrate,
    combine,
    image_views,
    patch_scores,
    place_heatmap,
    score_views,
)
from detector.core.results import Explanation, PatchScore, Prediction
from detector.core.spec import EXPLAIN_METHODS, FAKE_LOGIT_WEIGHTS, ModelSpec

log = logging.getLogger(__name__)

#: Most images one compiled call receives; longer batches are run in chunks of this size
#: (a single call on hundreds of 224 px images can exceed TensorFlow's CPU kernels' limits).
MAX_CALL_BATCH = 64


def fake_logit(logits, output: str):
    """The logit of "fake" for each row of the ``logits`` layer output, per output convention
    (`FAKE_LOGIT_WEIGHTS`: the weighted sum of the ``logits`` units)."""
    if output not in FAKE_LOGIT_WEIGHTS:
        raise ValueError(f"unknown output convention {output!r}")
    first, *rest = FAKE_LOGIT_WEIGHTS[output]
    z = first * logits[:, 0]
    for i, weight in enumerate(rest, start=1):
        z = z + weight * logits[:, i]
    return z


class Detector:
    """A trained model, ready to score and explain images.

    Predictions run on a folded snapshot of the model's weights (see `detector.core.folding`), made
    on the first prediction: an app's first answer comes from an explanation pass, which runs on
    the model as given (as does ``keras_model``), so it does not wait for the fold (an image
    large enough for several patches is scored on the prediction path, and folds it then).

    A ``native_crop`` model scores an image on the patches `detector.core.patches.patch_grid`
    spreads over it (one, the centre crop, for an image less than two patches wide), all in one
    batch; its P(fake) is sigmoid(mean patch logit / temperature), see
    `detector.core.patches.combine`. Other resize modes score their single view, as before.

    Args:
        model: The Keras model (ending in layers ``logits`` and ``probs``).
        card: Its model card (threshold, uncertain band, temperature, spec).
        warmup: Trace and run the Grad-CAM pass once at load time.
        fold: Fold batch normalisations into the convolutions before them for predictions. The
            folded copy is checked against ``model`` on one input, and dropped if they differ.
        max_patches: Most patches an image is scored on (``native_crop`` models).
    """

    def __init__(
        self,
        model: keras.Model,
        card: ModelCard,
        *,
        warmup: bool = True,
        fold: bool = True,
        max_patches: int = MAX_PATCHES,
    ) -> None:
        if max_patches < 1:
            raise ValueError(f"max_patches must be at least 1, got {max_patches}")
        self.max_patches = int(max_patches)
        self.keras_model = model
        self.card = card
        self.name = card.name
        self.spec: ModelSpec = card.spec
        size = self.spec.input_size
        signature = [tf.TensorSpec([None, size, size, 3], tf.float32)]
        self._signature = signature
        self._fold = fold
        self._compiled_predict = None
        self._folded_layers: tuple[str, ...] = ()
        self._predict_lock = threading.Lock()
        self._predict_fn = self._predict_on_first_use
        logits = model.get_layer("logits").output
        conv = model.get_layer(self.spec.gradcam_layer).output
        self._cam_model = keras.Model(model.inputs, [conv, logits], name=f"{model.name}_cam")
        self._attention_model = None
        if self.spec.attention_layer:
            attention = model.get_layer(self.spec.attention_layer).output
            self._attention_model = keras.Model(model.inputs, [attention, logits])
        output = self.spec.output
        self.temperature = float(card.temperature)
        # the compiled functions give fake logits; the temperature is applied in float64 after

        @tf.function(input_signature=signature, reduce_retracing=True, autograph=False)
        def gradcam_fn(x):
            conv_out, z = self._cam_model(x, training=False)
            score = fake_logit(z, output)
            grads = _gradient(score, conv_out)
            weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(conv_out * weights, axis=-1))
            return score, cam

        @tf.function(input_signature=signature, reduce_retracing=True, autograph=False)
        def gradcampp_fn(x):
            conv_out, z = self._cam_model(x, training=False)
            score = fake_logit(z, output)
            grads = _gradient(score, conv_out)
            exp_score = tf.reshape(tf.exp(score), [-1, 1, 1, 1])
            first = exp_score * grads
            second = first * grads
            third = second * grads
            global_sum = tf.reduce_sum(conv_out, axis=(1, 2), keepdims=True)
            denom = second * 2.0 + third * global_sum
            denom = denom + tf.cast(tf.equal(second, 0.0), denom.dtype)
            alphas = second / denom
            norm = tf.reduce_sum(alphas, axis=(1, 2), keepdims=True)
            norm = norm + tf.cast(tf.equal(norm, 0.0), norm.dtype)
            alphas = alphas / norm
            weights = tf.reduce_sum(tf.nn.relu(first) * alphas, axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(weights * conv_out, axis=-1))
            return score, cam

        self._explain_fns = {"gradcam": gradcam_fn, "gradcam++": gradcampp_fn}
        if self._attention_model is not None:
            attention_model = self._attention_model

            @tf.function(input_signature=signature, reduce_retracing=True, autograph=False)
            def attention_fn(x):
                attention, z = attention_model(x, training=False)
                return fake_logit(z, output), attention[..., 0]

            self._explain_fns["attention"] = attention_fn
        self._lock = threading.Lock()
        if warmup:  # trace the app's path now, not on a visitor's first request
            self._explain_fns["gradcam"](tf.zeros((1, size, size, 3), dtype=tf.float32))

    def _compiled_prediction(self):
        """The compiled prediction function, folded and traced on first use (thread-safe)."""
        if self._compiled_predict is not None:
            return self._compiled_predict
        with self._predict_lock:
            if self._compiled_predict is None:
                model, size = self.keras_model, self.spec.input_size
                inference, folded = fold_checked(model, size) if self._fold else (model, ())
                logits = inference.get_layer("logits").output
                logit_model = keras.Model(inference.inputs, logits, name=f"{model.name}_logits")
                output = self.spec.output

                @tf.function(
                    input_signature=self._signature, reduce_retracing=True, autograph=False
                )
                def predict_fn(x):
                    return fake_logit(logit_model(x, training=False), output)

                self._folded_layers = folded
                self._compiled_predict = predict_fn
            return self._compiled_predict

    def prepare_prediction(self) -> None:
        """Fold and trace the prediction path now (about 3 s for the default model on 2 cores)
        instead of on the first `predict`; an app's background preload calls it."""
        size = self.spec.input_size
        self._compiled_prediction()(tf.zeros((2, size, size, 3), dtype=tf.float32))

    def _predict_on_first_use(self, x):
        return self._compiled_prediction()(x)

    @property
    def folded_layers(self) -> tuple[str, ...]:
        """Batch normalisations folded into the prediction path (empty if it runs unfolded)."""
        self._compiled_prediction()
        return self._folded_layers

    # ------------------------------------------------------------------ scoring
    @property
    def methods(self) -> tuple[str, ...]:
        """Explanation methods this model supports."""
        return tuple(self._explain_fns)

    def p_fake_batch(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated P(fake) for a preprocessed float32 batch (N, size, size, 3) in 0-255.

        Each row is scored on its own (one patch each): whole images go through `predict`.
        Any N works: the model is called on at most `MAX_CALL_BATCH` images at a time.
        """
        return calibrate(self.fake_logits_batch(batch), self.temperature)

    def fake_logits_batch(self, batch: np.ndarray) -> np.ndarray:
        """The logit of "fake", before the temperature, for each row of a preprocessed batch.

        Float64 (N,); chunked like `p_fake_batch`, whose probabilities are
        sigmoid(logit / temperature).
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (self.spec.input_size, self.spec.input_size, 3):
            raise ValueError(
                f"expected a batch of shape (N, {self.spec.input_size}, {self.spec.input_size}, 3),"
                f" got {batch.shape}"
            )
        if len(batch) == 0:
            return np.zeros(0)
        parts = _in_chunks(self._predict_fn, batch)
        return np.concatenate([p.numpy() for p in parts]).astype(np.float64)

    def _prediction(
        self,
        p_fake: float,
        seconds: float,
        warnings: tuple[str, ...] = (),
        patches: tuple[PatchScore, ...] = (),
    ) -> Prediction:
        p_fake = float(np.clip(p_fake, 0.0, 1.0))
        return Prediction(
            model=self.name,
            p_fake=p_fake,
            label=self.card.label_for(p_fake),
            threshold=float(self.card.threshold),
            seconds=float(seconds),
            uncertain_band=tuple(float(v) for v in self.card.uncertain_band),
            warnings=warnings,
            patches=patches,
        )

    def _views(self, array: np.ndarray) -> Views:
        return image_views(array, self.spec.preprocessing, max_patches=self.max_patches)

    def _whole_prediction(
        self, views: Views, logits: np.ndarray, seconds: float, warnings: tuple[str, ...] = ()
    ) -> Prediction:
        """The combined verdict on one image's views, with every view's own score."""
        p_fake = float(calibrate(combine(logits, scene=views.scene), self.temperature))
        patches = patch_scores(logits, views, self.temperature)
        return self._prediction(p_fake, seconds, warnings, patches)

    def _load(self, image: ImageSource, warnings: bool) -> tuple[np.ndarray, tuple[str, ...]]:
        """Decode an input and, optionally, say why a score on it may not be trustworthy."""
        if _is_rgb_uint8(image):
            return image, ()
        if not warnings:
            return load_image(image), ()
        from detector.core.domain import domain_warnings

        array, info, data = decode_file(image)
        return array, domain_warnings(info, array, self.card, data=data)

    def predict(self, image: ImageSource, *, warnings: bool = True) -> Prediction:
        """Score one image (path, bytes, file object, Pillow image or RGB array).

        A ``native_crop`` model scores every patch of the image in one batch and combines
        them (see the class); the result's ``patches`` holds each patch's own score.

        Args:
            image: Any accepted image source.
            warnings: Add plain-language domain warnings (sizes, screenshots, compression) to
                the result; not computed for raw arrays.

        Raises:
            ImageLoadError: if the image cannot be read.
        """
        start = time.perf_counter()
        array, notes = self._load(image, warnings)
        views = self._views(array)
        del array  # a large image is not kept while the model runs
        logits = self.fake_logits_batch(views.batch)
        return self._whole_prediction(views, logits, time.perf_counter() - start, notes)

    def predict_batch(
        self, images: Sequence[ImageSource], batch_size: int = 32
    ) -> list[Prediction]:
        """Score several images in batches; the time is shared equally between them.

        Each image is scored as `predict` scores it (every patch of a chunk's images in one
        model run, chunked at `MAX_CALL_BATCH`); only its patches are kept while the chunk's
        other images are read. No domain warnings are computed.

        Raises:
            ImageLoadError: for the first image that cannot be read (use `detector.scan` to get
                one row per file instead).
        """
        results: list[Prediction] = []
        for offset in range(0, len(images), batch_size):
            start = time.perf_counter()
            views = [
                self._views(im if _is_rgb_uint8(im) else load_image(im))
                for im in images[offset : offset + batch_size]
            ]
            logits = score_views(self, views)
            per_image = (time.perf_counter() - start) / max(len(views), 1)
            results.extend(
                self._whole_prediction(v, z, per_image) for v, z in zip(views, logits, strict=True)
            )
        return results

    # ------------------------------------------------------------------ explaining
    def coarse_maps(
        self, batch: np.ndarray, method: str = "gradcam"
    ) -> tuple[np.ndarray, np.ndarray]:
        """One compiled forward(+backward) pass: (calibrated P(fake) (N,), raw maps (N, h, w)).

        Batches longer than `MAX_CALL_BATCH` run in chunks.
        """
        logits, maps = self._coarse_logits(batch, method)
        return calibrate(logits, self.temperature), maps

    def _coarse_logits(self, batch: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
        """`coarse_maps` with fake logits (float64, before the temperature) for P(fake)."""
        parts = _in_chunks(self._explain_fn(method), np.asarray(batch, dtype=np.float32))
        logits = np.concatenate([z.numpy() for z, _ in parts]).astype(np.float64)
        return logits, np.concatenate([m.numpy() for _, m in parts])

    def input_maps(
        self, batch: np.ndarray, method: str = "gradcam"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Maps upsampled to the model input size and min-max normalised to [0, 1].

        The upsampling is `detector.core.heatmaps.upsample_maps` (scipy's linear zoom, as
        tf-keras-vis does), computed as two small matrix products.
        """
        probs, maps = self.coarse_maps(batch, method)
        return probs, normalize_maps(self.upsample(maps))

    def upsample(self, maps: np.ndarray) -> np.ndarray:
        """Coarse maps (N, h, w) upsampled to the input size, as `explain.upsample_maps` does."""
        size = self.spec.input_size
        height, width = maps.shape[1:]
        if (height, width) == (size, size):
            return maps.astype(np.float32)
        rows, cols = _zoom_weights(height, size), _zoom_weights(width, size)
        return (rows @ maps.astype(np.float64) @ cols.T).astype(np.float32)

    def explain(
        self,
        image: ImageSource,
        method: str = "gradcam",
        *,
        alpha: float = DEFAULT_ALPHA,
        warnings: bool = True,
        patch: int | None = None,
    ) -> Explanation:
        """Score an image and explain the score of one of its patches.

        The prediction is the whole-image one (`predict`'s, over every patch). The heatmap
        explains one view, ``prediction.patches[patch]``, and lies over the whole input image
        as before: the view's map is placed at its box, and the rest of the image is 0 (the
        model did not look there for this map); ``Explanation.patch`` says which view it is.
        An image with a single view is explained exactly as before, by one forward and
        backward pass that also gives the verdict; with several, the verdict comes from one
        prediction pass over all of them and the map from one explanation pass over the
        chosen patch.

        Args:
            image: Any accepted image source.
            method: ``gradcam``, ``gradcam++`` or ``attention`` (models with an attention layer).
            alpha: Heatmap opacity in the overlay.
            warnings: Add domain warnings to the prediction, as `predict` does.
            patch: Index in ``prediction.patches`` of the view to explain; None: the one with
                the highest P(fake).

        Returns:
            An `Explanation` whose heatmap is float32 (H, W) in [0, 1] over the input image.

        Raises:
            UnsupportedMethodError: for an unknown method or one this model lacks.
            ImageLoadError: if the image cannot be read.
            IndexError: for a ``patch`` that is not an index of the image's views.
        """
        start = time.perf_counter()
        self._explain_fn(method)  # fail on a bad method before decoding anything
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        array, notes = self._load(image, warnings)
        views = self._views(array)
        count = len(views.boxes)
        if patch is not None and not 0 <= patch < count:
            raise IndexError(f"patch {patch} out of range: this image has {count} view(s)")
        if count == 1:  # one pass gives the verdict and the map
            index = 0
            logits, coarse = self._coarse_logits(views.batch, method)
        else:
            logits = self.fake_logits_batch(views.batch)
            index = int(np.argmax(logits)) if patch is None else int(patch)
            _, coarse = self._coarse_logits(views.batch[index : index + 1], method)
        maps = normalize_maps(self.upsample(coarse))
        height, width = array.shape[:2]
        if count == 1:
            heatmap = to_image_size(maps[0], height, width, self.spec.preprocessing)
        else:
            heatmap = place_heatmap(maps[0], views.boxes[index], height, width)
        prediction = self._whole_prediction(views, logits, time.perf_counter() - start, notes)
        return Explanation(
            model=self.name,
            method=method,
            heatmap=heatmap,
            prediction=prediction,
            image=array,
            alpha=float(alpha),
            patch=index,
        )

    def _explain_fn(self, method: str):
        if method not in EXPLAIN_METHODS:
            raise UnsupportedMethodError(
                f"unknown explanation method {method!r}; known: {', '.join(EXPLAIN_METHODS)}"
            )
        if method not in self._explain_fns:
            raise UnsupportedMethodError(
                f"model {self.name!r} has no attention layer; use one of: {', '.join(self.methods)}"
            )
        return self._explain_fns[method]

    def __repr__(self) -> str:
        return f"Detector(name={self.name!r}, recipe={self.spec.recipe!r})"


def _gradient(score, conv_out):
    """d(sum of ``score``)/d``conv_out`` inside a compiled function, built over the ops between
    them only.

    A ``GradientTape`` watching the input records every op of the model and traces the gradient
    of all of them (the whole backbone, and every other ensemble member), which the graph
    optimiser then prunes again; the symbolic gradient is built on the path from the explained
    layer to the score alone: the same gradient ops, a fraction of the tracing. Rows are
    independent (no op mixes the batch), so each row's gradient is that of its own score.
    """
    return tf.gradients(score, conv_out)[0]


def _in_chunks(fn: Any, batch: np.ndarray) -> list[Any]:
    """``fn`` on at most `MAX_CALL_BATCH` images of ``batch`` at a time (called at least once)."""
    return [
        fn(tf.constant(batch[i : i + MAX_CALL_BATCH]))
        for i in range(0, max(len(batch), 1), MAX_CALL_BATCH)
    ]


@functools.lru_cache(maxsize=64)
def _zoom_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of scipy's order-1 ``zoom`` along one axis (corners aligned)."""
    step = (n_in - 1) / (n_out - 1) if n_out > 1 else 1.0
    position = np.arange(n_out, dtype=np.float64) * step
    low = np.minimum(np.floor(position).astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    fraction = position - low
    weights = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    np.add.at(weights, (rows, low), 1.0 - fraction)
    np.add.at(weights, (rows, high), fraction)
    weights.flags.writeable = False
    return weights


def _is_rgb_uint8(image: object) -> bool:
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
    )
