"""A loaded model with compiled inference and explanation functions.

Inference never goes through ``model.predict``: each path is a ``tf.function`` with a fixed input
signature (traced once), and one forward pass serves both the prediction and its explanation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from detector._keras import keras, tf
from detector.card import ModelCard
from detector.errors import UnsupportedMethodError
from detector.explain import normalize_maps, overlay_heatmap, to_image_size, upsample_maps
from detector.images import ImageSource, decode_file, load_image
from detector.results import Explanation, Prediction
from detector.spec import ModelSpec

EXPLAIN_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "attention")


def fake_logit(logits, output: str):
    """The logit of "fake" for each row of the ``logits`` layer output, per output convention."""
    if output == "sigmoid_fake":
        return logits[:, 0]
    if output == "sigmoid_real":
        return -logits[:, 0]
    if output == "softmax_fake_real":
        return logits[:, 0] - logits[:, 1]
    raise ValueError(f"unknown output convention {output!r}")


class Detector:
    """A trained model, ready to score and explain images.

    Args:
        model: The Keras model (ending in layers ``logits`` and ``probs``).
        card: Its model card (threshold, uncertain band, temperature, spec).
        warmup: Trace and run the compiled functions once at load time.
    """

    def __init__(self, model: keras.Model, card: ModelCard, *, warmup: bool = True) -> None:
        self.keras_model = model
        self.card = card
        self.name = card.name
        self.spec: ModelSpec = card.spec
        size = self.spec.input_size
        signature = [tf.TensorSpec([None, size, size, 3], tf.float32)]
        logits = model.get_layer("logits").output
        self._logit_model = keras.Model(model.inputs, logits, name=f"{model.name}_logits")
        conv = model.get_layer(self.spec.gradcam_layer).output
        self._cam_model = keras.Model(model.inputs, [conv, logits], name=f"{model.name}_cam")
        self._attention_model = None
        if self.spec.attention_layer:
            attention = model.get_layer(self.spec.attention_layer).output
            self._attention_model = keras.Model(model.inputs, [attention, logits])
        output = self.spec.output
        temperature = float(card.temperature)

        def _calibrated(z):
            return tf.sigmoid(z / temperature)

        @tf.function(input_signature=signature, reduce_retracing=True)
        def predict_fn(x):
            z = fake_logit(self._logit_model(x, training=False), output)
            return _calibrated(z)

        @tf.function(input_signature=signature, reduce_retracing=True)
        def gradcam_fn(x):
            with tf.GradientTape() as tape:
                conv_out, z = self._cam_model(x, training=False)
                score = fake_logit(z, output)
            grads = tape.gradient(score, conv_out)
            weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(conv_out * weights, axis=-1))
            return _calibrated(score), cam

        @tf.function(input_signature=signature, reduce_retracing=True)
        def gradcampp_fn(x):
            with tf.GradientTape() as tape:
                conv_out, z = self._cam_model(x, training=False)
                score = fake_logit(z, output)
            grads = tape.gradient(score, conv_out)
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
            return _calibrated(score), cam

        self._predict_fn = predict_fn
        self._explain_fns = {"gradcam": gradcam_fn, "gradcam++": gradcampp_fn}
        if self._attention_model is not None:
            attention_model = self._attention_model

            @tf.function(input_signature=signature, reduce_retracing=True)
            def attention_fn(x):
                attention, z = attention_model(x, training=False)
                return _calibrated(fake_logit(z, output)), attention[..., 0]

            self._explain_fns["attention"] = attention_fn
        self._lock = threading.Lock()
        if warmup:  # trace the default paths now, not on a visitor's first request
            zeros = tf.zeros((1, size, size, 3), dtype=tf.float32)
            self._predict_fn(zeros)
            self._explain_fns["gradcam"](zeros)

    # ------------------------------------------------------------------ scoring
    @property
    def methods(self) -> tuple[str, ...]:
        """Explanation methods this model supports."""
        return tuple(self._explain_fns)

    def p_fake_batch(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated P(fake) for a preprocessed float32 batch (N, size, size, 3) in 0-255."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (self.spec.input_size, self.spec.input_size, 3):
            raise ValueError(
                f"expected a batch of shape (N, {self.spec.input_size}, {self.spec.input_size}, 3),"
                f" got {batch.shape}"
            )
        return self._predict_fn(tf.constant(batch)).numpy().astype(np.float64)

    def _bare_prediction(self, p_fake: float, seconds: float) -> Prediction:
        p_fake = float(np.clip(p_fake, 0.0, 1.0))
        return Prediction(
            model=self.name,
            p_fake=p_fake,
            label=self.card.label_for(p_fake),
            threshold=float(self.card.threshold),
            seconds=float(seconds),
            uncertain_band=tuple(float(v) for v in self.card.uncertain_band),
        )

    def _load(self, image: ImageSource, warnings: bool) -> tuple[np.ndarray, tuple[str, ...]]:
        """Decode an input and, optionally, say why a score on it may not be trustworthy."""
        if _is_rgb_uint8(image):
            return image, ()
        if not warnings:
            return load_image(image), ()
        from detector.domain import domain_warnings

        array, info, data = decode_file(image)
        return array, domain_warnings(info, array, self.card, data=data)

    def _prediction(self, p_fake: float, seconds: float, warnings: tuple[str, ...] = ()):
        return replace(self._bare_prediction(p_fake, seconds), warnings=warnings)

    def predict(self, image: ImageSource, *, warnings: bool = True) -> Prediction:
        """Score one image (path, bytes, file object, Pillow image or RGB array).

        Args:
            image: Any accepted image source.
            warnings: Add plain-language domain warnings (sizes, screenshots, compression) to
                the result; not computed for raw arrays.

        Raises:
            ImageLoadError: if the image cannot be read.
        """
        start = time.perf_counter()
        array, notes = self._load(image, warnings)
        batch = self.spec.preprocessing.apply(array)[None]
        p_fake = float(self.p_fake_batch(batch)[0])
        return self._prediction(p_fake, time.perf_counter() - start, notes)

    def predict_batch(
        self, images: Sequence[ImageSource], batch_size: int = 32
    ) -> list[Prediction]:
        """Score several images in batches; the time is shared equally between them.

        Raises:
            ImageLoadError: for the first image that cannot be read (use `detector.scan` to get
                one row per file instead).
        """
        results: list[Prediction] = []
        for offset in range(0, len(images), batch_size):
            start = time.perf_counter()
            chunk = [
                im if _is_rgb_uint8(im) else load_image(im)
                for im in images[offset : offset + batch_size]
            ]
            probs = self.p_fake_batch(self.spec.preprocessing.apply_batch(chunk))
            per_image = (time.perf_counter() - start) / max(len(chunk), 1)
            results.extend(self._prediction(float(p), per_image) for p in probs)
        return results

    # ------------------------------------------------------------------ explaining
    def coarse_maps(
        self, batch: np.ndarray, method: str = "gradcam"
    ) -> tuple[np.ndarray, np.ndarray]:
        """One compiled forward(+backward) pass: (calibrated P(fake) (N,), raw maps (N, h, w))."""
        fn = self._explain_fn(method)
        probs, maps = fn(tf.constant(np.asarray(batch, dtype=np.float32)))
        return probs.numpy().astype(np.float64), maps.numpy()

    def input_maps(
        self, batch: np.ndarray, method: str = "gradcam"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Maps upsampled to the model input size and min-max normalised to [0, 1]."""
        probs, maps = self.coarse_maps(batch, method)
        return probs, normalize_maps(upsample_maps(maps, self.spec.input_size))

    def explain(
        self,
        image: ImageSource,
        method: str = "gradcam",
        *,
        alpha: float = 0.45,
        warnings: bool = True,
    ) -> Explanation:
        """Score an image and explain the score with one forward pass.

        Args:
            image: Any accepted image source.
            method: ``gradcam``, ``gradcam++`` or ``attention`` (models with an attention layer).
            alpha: Heatmap opacity in the overlay.

        Returns:
            An `Explanation` whose heatmap is float32 (H, W) in [0, 1] over the input image.

        Raises:
            UnsupportedMethodError: for an unknown method or one this model lacks.
            ImageLoadError: if the image cannot be read.
        """
        start = time.perf_counter()
        self._explain_fn(method)  # fail on a bad method before decoding anything
        array, notes = self._load(image, warnings)
        batch = self.spec.preprocessing.apply(array)[None]
        probs, maps = self.input_maps(batch, method)
        height, width = array.shape[:2]
        heatmap = to_image_size(maps[0], height, width, self.spec.preprocessing)
        prediction = self._prediction(float(probs[0]), time.perf_counter() - start, notes)
        return Explanation(
            model=self.name,
            method=method,
            heatmap=heatmap,
            overlay=overlay_heatmap(array, heatmap, alpha=alpha),
            prediction=prediction,
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


def _is_rgb_uint8(image: object) -> bool:
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
    )
