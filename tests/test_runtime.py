"""The compiled runtime: batch-norm folding for predictions, fast upsampling, lazy overlays.

Every fast path is checked against the naive one: `model.predict` for probabilities (1e-5), the
unfolded model for explanation maps (1e-5 of their largest magnitude), scipy's zoom for the
upsampling.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_image, tiny_card

from detector.core._keras import keras
from detector.core.card import ModelCard
from detector.core.folding import _tensor_sources, fold_batch_norms
from detector.core.heatmaps import normalize_maps, overlay_heatmap, upsample_maps
from detector.core.models import DEFAULT_MODELS_DIR, load_keras_file, trained_cards
from detector.core.recipes import get_recipe
from detector.core.runtime import Detector, _zoom_weights

layers = keras.layers


def randomise_batch_norms(model: keras.Model, seed: int = 0) -> None:
    """Give every BatchNormalization non-trivial statistics, so that folding has work to do."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            shapes = [w.shape for w in layer.get_weights()]
            values = []
            for variable, shape in zip(layer.weights, shapes, strict=True):
                if variable.name in ("gamma", "moving_variance"):
                    values.append(rng.uniform(0.5, 1.5, shape))
                else:  # beta, moving_mean
                    values.append(rng.normal(0.0, 0.2, shape))
            layer.set_weights([v.astype("float32") for v in values])


def naive_p_fake(model: keras.Model, x: np.ndarray, output: str) -> np.ndarray:
    probs = model.predict(x, verbose=0)
    return {
        "sigmoid_fake": probs[:, 0],
        "sigmoid_real": 1.0 - probs[:, 0],
        "softmax_fake_real": probs[:, 0],
    }[output]


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """Largest difference relative to the largest magnitude (maps have many zeros)."""
    scale = float(np.max(np.abs(expected)))
    return float(np.max(np.abs(actual - expected))) / (scale if scale > 0 else 1.0)


def handmade() -> keras.Model:
    """Every case the folding must handle or leave alone, in one small functional model."""
    inputs = keras.Input((16, 16, 3), name="input")
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(epsilon=1e-5, name="stem_bn")(x)  # folded
    x = layers.ReLU(6.0, name="stem_relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw_conv")(x)
    x = layers.BatchNormalization(name="dw_bn")(x)  # folded, with a depth multiplier and a bias
    x = layers.ReLU(name="dw_relu")(x)
    y = layers.Conv2D(16, 1, groups=2, name="grouped_conv")(x)
    y = layers.BatchNormalization(center=False, scale=False, name="grouped_bn")(y)  # folded
    x = layers.Add(name="residual")([x, y])
    z = layers.Conv2D(16, 3, padding="same", activation="relu", name="act_conv")(x)
    z = layers.BatchNormalization(name="act_bn")(z)  # the convolution has an activation: kept
    shared = layers.Conv2D(16, 1, name="shared_conv")(z)
    a = layers.BatchNormalization(name="shared_bn")(shared)  # its input feeds two layers: kept
    x = layers.Add(name="merge")([a, shared])
    x = layers.Conv2D(12, 3, strides=2, padding="same", name="kept_conv")(x)
    x = layers.BatchNormalization(name="kept_bn")(x)  # the convolution is in ``keep``: kept
    x = layers.ReLU(name="top")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    logits = layers.Dense(1, name="logits")(x)
    outputs = layers.Activation("sigmoid", name="probs")(logits)
    return keras.Model(inputs, outputs, name="handmade")


def test_fold_batch_norms_folds_what_it_can_and_keeps_every_output():
    keras.utils.set_random_seed(1)
    model = handmade()
    randomise_batch_norms(model)
    folded, names = fold_batch_norms(model, keep=("kept_conv",))
    assert set(names) == {"stem_bn", "dw_bn", "grouped_bn"}
    for name in names:
        assert isinstance(folded.get_layer(name), layers.Identity)
    for name in ("act_bn", "shared_bn", "kept_bn"):
        assert isinstance(folded.get_layer(name), layers.BatchNormalization)
    assert folded.get_layer("stem_conv").use_bias
    x = np.stack([make_image(16, 16, seed=s) for s in range(3)]).astype("float32")
    for name in ("stem_bn", "dw_bn", "grouped_bn", "residual", "act_bn", "kept_conv", "logits"):
        before = keras.Model(model.inputs, model.get_layer(name).output)([x])
        after = keras.Model(folded.inputs, folded.get_layer(name).output)([x])
        assert relative_error(np.asarray(after), np.asarray(before)) <= 1e-5, name
    assert model.get_layer("stem_conv").get_weights()[0].shape == (3, 3, 3, 8)  # untouched
    assert len(model.get_layer("stem_conv").get_weights()) == 1


def test_fold_batch_norms_leaves_other_models_alone():
    sequential = keras.Sequential(
        [keras.Input((8, 8, 3)), layers.Conv2D(4, 3), layers.BatchNormalization()]
    )
    assert fold_batch_norms(sequential) == (sequential, ())
    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, layers.Dense(1, name="logits")(layers.Flatten()(inputs)))
    assert fold_batch_norms(plain) == (plain, ())
    conv = layers.Conv2D(4, 3, name="conv")(inputs)  # a model output: its value must stay
    both = keras.Model(inputs, [conv, layers.BatchNormalization(name="bn")(conv)])
    assert fold_batch_norms(both) == (both, ())


@pytest.fixture(scope="module", params=["efficientnet_b7_attention", "efficientnet_b2"])
def mobilenet(request):
    """A MobileNetV2-backbone recipe at 64 px with random batch-norm statistics."""
    keras.utils.set_random_seed(0)
    recipe = get_recipe(request.param)
    spec = recipe.spec(input_size=64, backbone="mobilenet_v2", resize="native_crop")
    card = ModelCard(name=f"mnv2_{request.param}", spec=spec, sha256="")
    model = recipe.build(spec)
    randomise_batch_norms(model)
    return card, model, Detector(model, card), Detector(model, card, fold=False)


def test_the_prediction_path_is_folded_on_first_use_only(mobilenet):
    card, model, _, _ = mobilenet
    det = Detector(model, card)
    assert det._compiled_predict is None  # loading and explaining do not fold
    x = card.spec.preprocessing.apply(make_image(70, 90, seed=1))[None]
    p_cam = det.explain(make_image(70, 90, seed=1)).prediction.p_fake
    assert det._compiled_predict is None
    p = det.p_fake_batch(x)
    compiled = det._compiled_predict
    assert compiled is not None and len(det.folded_layers) == 52
    np.testing.assert_allclose(p, [p_cam], atol=1e-5)
    det.p_fake_batch(x)
    assert det._compiled_predict is compiled  # built once
    det.prepare_prediction()  # an app's preload: the same path, not another
    assert det._compiled_predict is compiled
    fresh = Detector(model, card)
    fresh.prepare_prediction()
    assert fresh._compiled_predict is not None
    np.testing.assert_allclose(fresh.p_fake_batch(x), p, atol=1e-6)


def test_folded_predictions_match_model_predict(mobilenet):
    card, model, fast, plain = mobilenet
    assert len(fast.folded_layers) == 52 and plain.folded_layers == ()
    images = [make_image(70, 90, seed=s) for s in range(4)]
    x = np.stack([card.spec.preprocessing.apply(image) for image in images])
    naive = naive_p_fake(model, x, card.spec.output)
    np.testing.assert_allclose(fast.p_fake_batch(x), naive, atol=1e-5)
    np.testing.assert_allclose(fast.p_fake_batch(x), plain.p_fake_batch(x), atol=1e-5)
    single = [fast.predict(image).p_fake for image in images]
    np.testing.assert_allclose(single, naive, atol=1e-5)


def test_explanations_are_the_unfolded_models(mobilenet):
    card, _, fast, plain = mobilenet
    x = np.stack([card.spec.preprocessing.apply(make_image(64, 64, seed=s)) for s in (5, 6)])
    for method in card.spec.explain_methods:
        probs, maps = fast.coarse_maps(x, method)
        expected_probs, expected_maps = plain.coarse_maps(x, method)
        assert relative_error(maps, expected_maps) <= 1e-5, method
        np.testing.assert_allclose(probs, expected_probs, atol=1e-5)
        np.testing.assert_allclose(probs, fast.p_fake_batch(x), atol=1e-5)


def test_a_fold_that_changes_the_logits_is_dropped(mobilenet, monkeypatch, caplog):
    import detector.core.folding as folding

    card, model, _, plain = mobilenet
    right = folding._folded_weights

    def wrong(conv, bn):
        kernel, bias = right(conv, bn)
        return [kernel * 1.5, bias]

    monkeypatch.setattr(folding, "_folded_weights", wrong)
    det = Detector(model, card, warmup=False)
    assert det.folded_layers == ()
    assert "not folding" in caplog.text
    x = card.spec.preprocessing.apply(make_image(64, 64))[None]
    np.testing.assert_allclose(det.p_fake_batch(x), plain.p_fake_batch(x), atol=1e-6)


def test_folding_keeps_the_model_as_given(mobilenet):
    card, model, _, _ = mobilenet
    weights = [w.copy() for w in model.get_weights()]
    det = Detector(model, card, warmup=False)
    assert det.keras_model is model
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))


SHIPPED = sorted(trained_cards(DEFAULT_MODELS_DIR))


def _batch_norms_after_linear_convs(model) -> list[str]:
    """BatchNormalization layers whose only input is a convolution without activation."""
    entries = {entry["name"]: entry for entry in model.get_config()["layers"]}
    found = []
    for entry in entries.values():
        if entry["class_name"] != "BatchNormalization":
            continue
        sources = {name for node in entry["inbound_nodes"] for name in _tensor_sources(node)}
        if len(sources) != 1:
            continue
        source = entries[sources.pop()]
        if source["class_name"] in ("Conv2D", "DepthwiseConv2D") and source["config"].get(
            "activation"
        ) in (None, "linear"):
            found.append(entry["name"])
    return found


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED, reason="no shipped models")
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_fold_and_match_model_predict(name):
    card = trained_cards(DEFAULT_MODELS_DIR)[name]
    model = load_keras_file(DEFAULT_MODELS_DIR / name / card.weights_file)
    det = Detector(model, card)
    # every batch norm straight after a linear convolution folds (MobileNetV2: all of them);
    # simple_cnn normalises after the ReLU, which no convolution can absorb
    after_conv = _batch_norms_after_linear_convs(model)
    assert bool(det.folded_layers) == bool(after_conv), "a shipped model runs unfolded"
    assert set(det.folded_layers) <= set(after_conv)
    x = np.stack([card.spec.preprocessing.apply(make_image(240, 260, seed=s)) for s in range(3)])
    logit_model = keras.Model(model.inputs, model.get_layer("logits").output)
    z = logit_model.predict(x, verbose=0)  # the naive path, before calibration
    logit = z[:, 0] - z[:, 1] if card.spec.output == "softmax_fake_real" else z[:, 0]
    logit = -logit if card.spec.output == "sigmoid_real" else logit
    expected = 1.0 / (1.0 + np.exp(-logit / card.temperature))
    np.testing.assert_allclose(det.p_fake_batch(x), expected, atol=1e-5)
    if card.temperature == 1.0:
        np.testing.assert_allclose(
            det.p_fake_batch(x), naive_p_fake(model, x, card.spec.output), atol=1e-5
        )


# ----------------------------------------------------------------------------- upsampling
@pytest.mark.parametrize(
    "shape, size", [((7, 7), 224), ((1, 1), 32), ((2, 3), 64), ((5, 4), 31), ((14, 14), 8)]
)
def test_upsampling_is_scipy_zoom(shape, size):
    maps = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
    rows, cols = _zoom_weights(shape[0], size), _zoom_weights(shape[1], size)
    ours = (rows @ maps.astype(np.float64) @ cols.T).astype(np.float32)
    np.testing.assert_allclose(ours, upsample_maps(maps, size), rtol=0, atol=1e-6)


def test_input_maps_match_the_reference_pipeline():
    keras.utils.set_random_seed(0)
    card = tiny_card("t", "efficientnet_b7_attention")
    det = Detector(get_recipe("efficientnet_b7_attention").build(card.spec), card)
    x = np.stack([card.spec.preprocessing.apply(make_image(40, 40, seed=s)) for s in (1, 2)])
    for method in det.methods:
        _, coarse = det.coarse_maps(x, method)
        _, maps = det.input_maps(x, method)
        expected = normalize_maps(upsample_maps(coarse, card.spec.input_size))
        np.testing.assert_allclose(maps, expected, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- overlays
def test_overlay_is_blended_on_first_use():
    keras.utils.set_random_seed(0)
    card = tiny_card("t", "simple_cnn")
    det = Detector(get_recipe("simple_cnn").build(card.spec), card)
    image = make_image(50, 70, seed=2)
    explanation = det.explain(image, alpha=0.3)
    assert "overlay" not in explanation.__dict__
    expected = overlay_heatmap(image, explanation.heatmap, alpha=0.3)
    np.testing.assert_array_equal(explanation.overlay, expected)
    assert explanation.overlay is explanation.overlay
    with pytest.raises(ValueError, match="alpha"):
        det.explain(image, alpha=1.5)


def test_long_batches_run_in_chunks_with_the_same_results(monkeypatch):
    import detector.core.runtime as runtime

    keras.utils.set_random_seed(0)
    card = tiny_card("t", "efficientnet_b7_finetune")
    det = Detector(get_recipe("efficientnet_b7_finetune").build(card.spec), card)
    x = np.stack([card.spec.preprocessing.apply(make_image(40, 40, seed=s)) for s in range(11)])
    whole = det.p_fake_batch(x)
    whole_probs, whole_maps = det.coarse_maps(x)
    sizes = []
    predict_fn = det._predict_fn
    monkeypatch.setattr(runtime, "MAX_CALL_BATCH", 4)
    monkeypatch.setattr(
        det, "_predict_fn", lambda batch: sizes.append(len(batch)) or predict_fn(batch)
    )
    chunked = det.p_fake_batch(x)
    assert sizes == [4, 4, 3]
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    probs, maps = det.coarse_maps(x)
    assert maps.shape == whole_maps.shape and probs.shape == (11,)
    np.testing.assert_allclose(probs, whole_probs, atol=1e-6)
    np.testing.assert_allclose(maps, whole_maps, atol=1e-5)
    assert det.p_fake_batch(x[:0]).shape == (0,)


# ----------------------------------------------------------------------------- logits and patches
def test_fake_logits_come_before_the_temperature():
    keras.utils.set_random_seed(0)
    card = tiny_card("t", "efficientnet_b7_finetune", temperature=2.5)
    model = get_recipe("efficientnet_b7_finetune").build(card.spec)
    det = Detector(model, card)
    x = np.stack([card.spec.preprocessing.apply(make_image(40, 40, seed=s)) for s in range(3)])
    z = det.fake_logits_batch(x)
    expected = np.asarray(keras.Model(model.inputs, model.get_layer("logits").output)(x))[:, 0]
    assert z.dtype == np.float64 and z.shape == (3,)
    np.testing.assert_allclose(z, expected, atol=1e-5)
    np.testing.assert_allclose(det.p_fake_batch(x), 1.0 / (1.0 + np.exp(-z / 2.5)), atol=1e-7)
    probs, _ = det.coarse_maps(x)
    np.testing.assert_allclose(probs, det.p_fake_batch(x), atol=1e-5)


def test_a_large_image_runs_all_its_patches_in_one_call(monkeypatch):
    keras.utils.set_random_seed(0)
    card = tiny_card("t", "dct_spectrum")
    det = Detector(get_recipe("dct_spectrum").build(card.spec), card, warmup=False)
    sizes = []
    predict_fn = det._compiled_prediction()
    monkeypatch.setattr(
        det, "_predict_fn", lambda batch: sizes.append(len(batch)) or predict_fn(batch)
    )
    result = det.predict(make_image(128, 160, seed=1))
    assert sizes == [16] and len(result.patches) == 16
    det.predict(make_image(60, 160, seed=1))  # under two patches high: the centre crop alone
    assert sizes == [16, 1]
    with pytest.raises(ValueError, match="max_patches"):
        Detector(det.keras_model, card, warmup=False, max_patches=0)


# ----------------------------------------------------------------------------- explanation passes
def _tape_maps(det: Detector, x: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM / Grad-CAM++ as a GradientTape watching the input computes them (reference)."""
    import tensorflow as tf

    from detector.core.runtime import fake_logit

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        conv_out, z = det._cam_model(x, training=False)
        score = fake_logit(z, det.spec.output)
    grads = tape.gradient(score, conv_out)
    if method == "gradcam":
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(conv_out * weights, axis=-1))
        return score.numpy(), cam.numpy()
    first = tf.reshape(tf.exp(score), [-1, 1, 1, 1]) * grads
    second = first * grads
    third = second * grads
    global_sum = tf.reduce_sum(conv_out, axis=(1, 2), keepdims=True)
    denom = second * 2.0 + third * global_sum
    alphas = second / (denom + tf.cast(tf.equal(second, 0.0), denom.dtype))
    norm = tf.reduce_sum(alphas, axis=(1, 2), keepdims=True)
    alphas = alphas / (norm + tf.cast(tf.equal(norm, 0.0), norm.dtype))
    weights = tf.reduce_sum(tf.nn.relu(first) * alphas, axis=(1, 2), keepdims=True)
    return score.numpy(), tf.nn.relu(tf.reduce_sum(weights * conv_out, axis=-1)).numpy()


@pytest.mark.parametrize("recipe", ["ensemble", "simple_cnn", "efficientnet_b7_attention"])
def test_gradient_maps_match_a_tape_over_the_whole_model(recipe):
    keras.utils.set_random_seed(0)
    card = tiny_card("t", recipe, temperature=1.5)
    model = get_recipe(recipe).build(card.spec)
    randomise_batch_norms(model)
    det = Detector(model, card)
    size = card.spec.input_size
    x = np.stack([card.spec.preprocessing.apply(make_image(size, size, seed=s)) for s in (1, 2)])
    for method in ("gradcam", "gradcam++"):
        z, cam = _tape_maps(det, x, method)
        logits, coarse = det._coarse_logits(x, method)
        np.testing.assert_allclose(logits, z, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(coarse, cam, rtol=1e-5, atol=1e-6 * float(cam.max() + 1))


def test_images_of_other_sizes_do_not_retrace_the_explanation():
    keras.utils.set_random_seed(0)
    card = tiny_card("t", "ensemble")
    det = Detector(get_recipe("ensemble").build(card.spec), card)  # warm-up: one trace
    gradcam = det._explain_fn("gradcam")
    assert gradcam.experimental_get_tracing_count() == 1
    size = card.spec.input_size
    det.explain(make_image(size + 7, size + 3, seed=1), warnings=False)  # one view
    det.explain(make_image(4 * size, 3 * size, seed=2), warnings=False)  # a grid of patches
    predict = det._compiled_prediction()
    assert predict.experimental_get_tracing_count() == 1
    det.explain(make_image(2 * size, 5 * size, seed=3), warnings=False)  # another grid
    det.predict(make_image(3 * size, 3 * size, seed=4), warnings=False)
    assert gradcam.experimental_get_tracing_count() == 1
    assert predict.experimental_get_tracing_count() == 1
