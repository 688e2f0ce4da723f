"""Every registered recipe: builds tiny, round-trips through .keras, predicts and explains."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RECIPE_NAMES, make_image, tiny_card
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

from detector import UnsupportedMethodError
from detector.core._keras import keras
from detector.core.models import load_keras_file
from detector.core.recipes import get_recipe, is_head_layer
from detector.core.runtime import Detector, fake_logit


@pytest.fixture(scope="module", params=RECIPE_NAMES)
def tiny(request):
    keras.utils.set_random_seed(0)
    recipe = get_recipe(request.param)
    card = tiny_card(f"tiny_{request.param}", request.param, uncertain_band=(0.45, 0.55))
    model = recipe.build(card.spec)
    return recipe, card, model


def test_registry_has_the_four_published_recipes():
    assert {
        "simple_cnn",
        "efficientnet_b2",
        "efficientnet_b7_attention",
        "efficientnet_b7_finetune",
    } <= set(RECIPE_NAMES)


def test_recipe_builds_flat_with_declared_layers(tiny):
    _, card, model = tiny
    spec = card.spec
    assert model.input_shape == (None, spec.input_size, spec.input_size, 3)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "nested sub-model"
    assert model.get_layer("logits") is not None and model.layers[-1].name == "probs"
    conv = model.get_layer(spec.gradcam_layer)
    assert len(conv.output.shape) == 4
    if spec.attention_layer:
        assert model.get_layer(spec.attention_layer).output.shape[-1] == 1
        assert "attention" in spec.explain_methods
    expected_units = 2 if spec.output == "softmax_fake_real" else 1
    assert model.output_shape == (None, expected_units)
    assert all(is_head_layer(layer.name) for layer in model.layers[-2:])


def test_unknown_parameter_is_a_clear_error(tiny):
    recipe, _, _ = tiny
    with pytest.raises(ValueError, match="has no parameter"):
        recipe.spec(no_such_parameter=1)


def test_save_load_round_trip_is_identical(tiny, tmp_path):
    _, card, model = tiny
    x = np.stack([make_image(card.spec.input_size, card.spec.input_size, s) for s in (1, 2)])
    before = np.asarray(model(x.astype("float32"), training=False))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_keras_file(path)
    after = np.asarray(loaded(x.astype("float32"), training=False))
    np.testing.assert_array_equal(before, after)


def test_predict_matches_the_output_convention(tiny):
    _, card, model = tiny
    det = Detector(model, card)
    image = make_image(70, 50, seed=3)
    result = det.predict(image)
    x = card.spec.preprocessing.apply(image)[None]
    probs = np.asarray(model(x, training=False))[0]
    expected = {
        "sigmoid_fake": probs[0],
        "sigmoid_real": 1.0 - probs[0],
        "softmax_fake_real": probs[0],
    }[card.spec.output]
    assert result.p_fake == pytest.approx(float(expected), abs=1e-5)
    assert 0.0 <= result.p_fake <= 1.0
    assert result.label == card.label_for(result.p_fake)
    assert result.model == card.name and result.seconds > 0
    batch = det.predict_batch([image, make_image(40, 90, seed=4)])
    assert batch[0].p_fake == pytest.approx(result.p_fake, abs=1e-5)
    assert len(batch) == 2


def test_temperature_changes_confidence_not_ranking(tiny):
    from dataclasses import replace

    _, card, model = tiny
    images = [make_image(48, 48, seed=s) for s in range(6)]
    cold = Detector(model, card).predict_batch(images)
    hot = Detector(model, replace(card, temperature=4.0)).predict_batch(images)
    cold_p = np.array([r.p_fake for r in cold])
    hot_p = np.array([r.p_fake for r in hot])
    assert np.all(np.abs(hot_p - 0.5) <= np.abs(cold_p - 0.5) + 1e-7)
    assert list(np.argsort(cold_p)) == list(np.argsort(hot_p))


def test_explain_every_supported_method(tiny):
    _, card, model = tiny
    det = Detector(model, card)
    image = make_image(45, 77, seed=5)
    for method in card.spec.explain_methods:
        result = det.explain(image, method)
        assert result.heatmap.shape == (45, 77)
        assert result.heatmap.dtype == np.float32
        assert result.heatmap.min() >= 0.0 and result.heatmap.max() <= 1.0
        # min-max normalised: all zero (no evidence for "fake" anywhere) or reaching near 1
        assert result.heatmap.max() == 0.0 or result.heatmap.max() > 0.5
        assert result.overlay.shape == (45, 77, 3) and result.overlay.dtype == np.uint8
        assert result.prediction.p_fake == pytest.approx(det.predict(image).p_fake, abs=1e-5)
    if "attention" not in card.spec.explain_methods:
        with pytest.raises(UnsupportedMethodError, match="no attention layer"):
            det.explain(image, "attention")
    with pytest.raises(UnsupportedMethodError, match="unknown explanation method"):
        det.explain(image, "lime")


@pytest.mark.parametrize(
    "method, reference", [("gradcam", Gradcam), ("gradcam++", GradcamPlusPlus)]
)
def test_compiled_cams_agree_with_tf_keras_vis(tiny, method, reference):
    _, card, model = tiny
    det = Detector(model, card)
    x = np.stack([card.spec.preprocessing.apply(make_image(60, 60, seed=s)) for s in (7, 8)])
    explainer = reference(model, model_modifier=ReplaceToLinear(), clone=True)
    expected = explainer(
        lambda out: fake_logit(out, card.spec.output),
        x,
        penultimate_layer=card.spec.gradcam_layer,
        seek_penultimate_conv_layer=False,
    )
    _, ours = det.input_maps(x, method)
    assert ours.shape == expected.shape == (2, card.spec.input_size, card.spec.input_size)
    assert np.abs(ours - expected).max() <= 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_b7_attention", "efficientnet_b7_finetune"])
def test_real_efficientnet_b7_recipes_build(name):
    recipe = get_recipe(name)
    model = recipe.build(input_size=64)
    assert 63e6 < model.count_params() < 68e6
    assert model.get_layer("top_activation").output.shape[1:3] == (2, 2)


def test_native_crop_keeps_pixels_and_maps_heatmaps_back():
    from detector.core.spec import Preprocessing

    prep = Preprocessing(size=32, resize="native_crop")
    image = make_image(50, 80, seed=9)
    out = prep.apply(image)
    np.testing.assert_array_equal(out, image[9:41, 24:56].astype(np.float32))  # no resampling
    rng = np.random.default_rng(0)
    boxes = {prep.crop_box(50, 80, rng) for _ in range(20)}
    assert len(boxes) > 5 and all(b[2] - b[0] == 32 and b[3] - b[1] == 32 for b in boxes)
    small = prep.apply(make_image(20, 24))  # smaller than the input: enlarged
    assert small.shape == (32, 32, 3)
    spec = get_recipe("simple_cnn").spec(
        **{**get_recipe("simple_cnn").tiny, "resize": "native_crop"}
    )
    det = Detector(
        get_recipe("simple_cnn").build(spec),
        tiny_card("n", "simple_cnn").__class__(name="n", spec=spec, sha256=""),
    )
    heat = det.explain(image).heatmap
    assert heat.shape == (50, 80)
    assert heat[:9].max() == 0 and heat[:, :24].max() == 0  # outside the patch: nothing


def test_compiled_path_matches_model_predict(tiny):
    """The fast path gives the naive `model.predict` outputs (within 1e-5)."""
    _, card, model = tiny
    det = Detector(model, card)
    x = np.stack([card.spec.preprocessing.apply(make_image(50, 60, seed=s)) for s in range(5)])
    probs = model.predict(x, verbose=0)
    naive = {
        "sigmoid_fake": probs[:, 0],
        "sigmoid_real": 1.0 - probs[:, 0],
        "softmax_fake_real": probs[:, 0],
    }[card.spec.output]
    np.testing.assert_allclose(det.p_fake_batch(x), naive, atol=1e-5)
    single = [det.predict(make_image(50, 60, seed=s)).p_fake for s in range(5)]
    np.testing.assert_allclose(single, naive, atol=1e-5)


def test_npr_filter_removes_block_anchors_and_round_trips(tmp_path):
    from detector.core.layers import NPRFilter

    x = np.arange(2 * 4 * 4 * 1, dtype="float32").reshape(2, 4, 4, 1)
    out = np.asarray(NPRFilter()(x))
    assert out[0, 0, 0, 0] == 0 and out[0, 1, 1, 0] == x[0, 1, 1, 0] - x[0, 0, 0, 0]
    assert np.all(out[:, ::2, ::2] == 0)
    recipe = get_recipe("simple_cnn")
    spec = recipe.spec(**{**recipe.tiny, "input_filter": "npr"})
    model = recipe.build(spec)
    assert model.get_layer("scale_npr") is not None
    # residuals are scaled to about unit size for batch norm's moving statistics
    assert model.get_layer("scale_npr_gain").scale == spec.params["residual_gain"] == 16.0
    model.save(tmp_path / "npr.keras")
    images = np.stack([spec.preprocessing.apply(make_image(40, 40, seed=s)) for s in (1, 2)])
    np.testing.assert_array_equal(
        np.asarray(model(images)), np.asarray(load_keras_file(tmp_path / "npr.keras")(images))
    )
    with pytest.raises(ValueError, match="unknown input_filter"):
        recipe.build(recipe.spec(**{**recipe.tiny, "input_filter": "fft"}))


def test_simple_cnn_gap_head_pools_the_last_block():
    recipe = get_recipe("simple_cnn")
    flat = recipe.build(recipe.spec(**recipe.tiny))
    gap = recipe.build(recipe.spec(**{**recipe.tiny, "head": "gap"}))
    assert "head_flatten" in [layer.name for layer in flat.layers]
    assert "head_gap" in [layer.name for layer in gap.layers]
    # the pooled head's first Dense sees one vector per image, the flatten head every position
    widths = recipe.tiny["widths"]
    cells = (recipe.tiny["input_size"] // 2 ** len(widths)) ** 2
    assert gap.get_layer("head_dense1").kernel.shape[0] == widths[-1]
    assert flat.get_layer("head_dense1").kernel.shape[0] == widths[-1] * cells
    with pytest.raises(ValueError, match="unknown head"):
        recipe.build(recipe.spec(**{**recipe.tiny, "head": "attention"}))


def _residual_features(model):
    return keras.Model(model.input, model.get_layer("head_npr_gap").output)


def test_fusion_residual_branch_reads_only_pixel_relations_in_the_centre_crop():
    keras.utils.set_random_seed(0)
    recipe = get_recipe("backbone_npr_fusion")
    spec = recipe.spec(**recipe.tiny)
    model = recipe.build(spec)
    size, crop = spec.input_size, spec.params["residual_crop"]
    margin = (size - crop) // 2
    x = np.random.default_rng(0).uniform(20, 200, (1, size, size, 3)).astype("float32")
    branch = _residual_features(model)
    base = np.asarray(branch(x))
    outside = x.copy()
    outside[:, :margin] = 255.0  # a band above the crop
    brighter = x + 30.0  # the same pixel relations everywhere
    inside = x.copy()
    inside[:, size // 2 + 1, size // 2 + 1] += 60.0  # one non-anchor pixel in the crop
    np.testing.assert_allclose(np.asarray(branch(outside)), base, atol=1e-6)
    np.testing.assert_allclose(np.asarray(branch(brighter)), base, atol=1e-5)
    assert np.abs(np.asarray(branch(inside)) - base).max() > 1e-4
    # the fused head sees the backbone's pooled features and the residual branch's
    head = model.get_layer("logits")
    assert head.kernel.shape[0] == model.get_layer("head_concat").output.shape[-1]
    assert model.get_layer("head_concat").output.shape[-1] == (
        model.get_layer(spec.gradcam_layer).output.shape[-1] + spec.params["residual_widths"][-1]
    )
    # the published prediction changes when only the outside band changes (backbone branch)
    assert not np.allclose(np.asarray(model(outside)), np.asarray(model(x)))


@pytest.mark.parametrize("crop", [15, 0, 64])
def test_fusion_residual_crop_must_fit_the_input(crop):
    recipe = get_recipe("backbone_npr_fusion")
    with pytest.raises(ValueError, match="residual_crop must be even"):
        recipe.spec(**{**recipe.tiny, "residual_crop": crop})


def _trained_member(folder, recipe: str, temperature: float, seed: int, **params):
    """A tiny model exported like a trained one (native-resolution patches, a temperature)."""
    from detector.core.card import ModelCard
    from detector.core.models import export_model

    keras.utils.set_random_seed(seed)
    spec = get_recipe(recipe).spec(**{**get_recipe(recipe).tiny, "resize": "native_crop", **params})
    card = ModelCard(name=folder.name, spec=spec, sha256="", temperature=temperature)
    return export_model(get_recipe(recipe).build(spec), folder, card)


@pytest.fixture
def members(tmp_path):
    big = _trained_member(tmp_path / "big", "efficientnet_b7_finetune", 2.0, seed=1)
    small = _trained_member(
        tmp_path / "small", "simple_cnn", 0.5, seed=2, input_size=16, input_filter="npr"
    )
    return tmp_path, big, small


def test_ensemble_averages_its_members_calibrated_log_odds(members):
    from detector.core.recipes.ensemble import copy_member_weights, member_folders
    from detector.core.runtime import Detector

    root, big, small = members
    recipe = get_recipe("ensemble")
    folders = f"{root / 'big'},{root / 'small'}"
    spec = recipe.spec(members=folders)
    assert spec.input_size == 32 and spec.preprocessing.resize == "native_crop"
    assert [m["name"] for m in spec.params["members"]] == ["big", "small"]
    assert spec.params["members"][0]["sha256"] == big.sha256
    model = recipe.build(spec)
    cards = copy_member_weights(model, spec, member_folders(folders, root))
    assert [card.name for card in cards] == ["big", "small"]
    x = np.stack([spec.preprocessing.apply(make_image(48, 48, seed=s)) for s in range(4)])
    p_big = Detector(load_keras_file(root / "big" / "model.keras"), big).p_fake_batch(x)
    # the small member reads the centre of the ensemble's patch, as it would read the image
    p_small = Detector(load_keras_file(root / "small" / "model.keras"), small).p_fake_batch(
        x[:, 8:24, 8:24]
    )

    def log_odds(p):
        return np.log(p) - np.log1p(-p)

    expected = 1 / (1 + np.exp(-(log_odds(p_big) + log_odds(p_small)) / 2))
    np.testing.assert_allclose(model.predict(x, verbose=0)[:, 0], expected, rtol=1e-4)
    assert not np.allclose(p_big, p_small)  # the average is not one member's answer
    assert spec.gradcam_layer == "m1_" + big.spec.gradcam_layer
    assert not model.get_layer("logits").trainable
    # Grad-CAM explains the member that sees the whole input, whatever the order
    reversed_spec = recipe.spec(members=f"{root / 'small'},{root / 'big'}")
    assert reversed_spec.gradcam_layer == "m2_" + big.spec.gradcam_layer
    assert reversed_spec.input_size == 32


def test_ensemble_refuses_a_member_that_changed(members):
    from detector.core.models import export_model
    from detector.core.recipes.ensemble import copy_member_weights, member_folders

    root, big, _ = members
    recipe = get_recipe("ensemble")
    folders = f"{root / 'big'},{root / 'small'}"
    spec = recipe.spec(members=folders)
    keras.utils.set_random_seed(7)  # retrain "big": new weights under the same name
    export_model(get_recipe(big.spec.recipe).build(big.spec), root / "big", big)
    with pytest.raises(ValueError, match="member 'big' changed"):
        copy_member_weights(recipe.build(spec), spec, member_folders(folders, root))


def test_ensemble_members_must_be_two_native_patch_models(members, tmp_path):
    root, _, _ = members
    recipe = get_recipe("ensemble")
    with pytest.raises(ValueError, match="at least two members"):
        recipe.spec(members=str(root / "big"))
    squashing = _trained_member(tmp_path / "squash", "efficientnet_b2", 1.0, seed=3)
    squashing_spec = {**squashing.spec.params, "resize": "resize"}
    squashing = {
        "name": "squash",
        "recipe": "efficientnet_b2",
        "params": squashing_spec,
        "output": "sigmoid_fake",
        "temperature": 1.0,
        "sha256": "",
    }
    with pytest.raises(ValueError, match="native_crop"):
        recipe.spec(members=[str(root / "big"), squashing])
    with pytest.raises(ValueError, match="trained model folder or a dict"):
        recipe.spec(members=[str(root / "big"), {"name": "x"}])


def test_crop_grid_keeps_the_encoders_blocks():
    from detector.core.spec import ModelSpec, Preprocessing

    free = Preprocessing(size=32, resize="native_crop")
    on_grid = Preprocessing(size=32, resize="native_crop", grid=8)
    assert free.crop_box(50, 83) == (9, 25, 41, 57)  # centred, anywhere
    assert on_grid.crop_box(50, 83) == (8, 24, 40, 56)  # centred, rounded down to the grid
    rng = np.random.default_rng(0)
    boxes = {on_grid.crop_box(90, 120, rng) for _ in range(40)}
    assert len(boxes) > 10
    assert all(top % 8 == 0 and left % 8 == 0 for top, left, _, _ in boxes)
    assert all(b[2] - b[0] == 32 and b[3] - b[1] == 32 for b in boxes)
    image = make_image(50, 83, seed=3)
    np.testing.assert_array_equal(on_grid.apply(image), image[8:40, 24:56].astype(np.float32))
    for bad in (0, -8, 2.5):
        with pytest.raises(ValueError, match="crop grid"):
            Preprocessing(size=32, grid=bad)
    # cards written before the grid existed load with grid 1 (crop anywhere)
    spec = get_recipe("simple_cnn").spec(**get_recipe("simple_cnn").tiny)
    old = spec.to_dict()
    del old["preprocessing"]["grid"]
    assert ModelSpec.from_dict(old).preprocessing.grid == 1


def test_block_dct_is_jpegs_transform_of_the_luma():
    from scipy.fft import dctn

    from detector.core.layers import BlockDCT, dct_basis

    basis = dct_basis(8).reshape(64, 64)
    np.testing.assert_allclose(basis.T @ basis, np.eye(64), atol=1e-5)  # orthonormal
    x = np.random.default_rng(0).integers(0, 256, (2, 16, 24, 3)).astype("float32")
    out = np.asarray(BlockDCT()(x))
    assert out.shape == (2, 2, 3, 64)
    luma = x @ np.array([0.299, 0.587, 0.114], "float32") - 128.0
    blocks = luma.reshape(2, 2, 8, 3, 8).transpose(0, 1, 3, 2, 4)
    expected = dctn(blocks, axes=(3, 4), norm="ortho").reshape(2, 2, 3, 64)
    np.testing.assert_allclose(out, expected, atol=2e-3)
    # a flat mid-grey block has no energy at all; a horizontal ramp only horizontal frequencies
    assert np.abs(np.asarray(BlockDCT()(np.full((1, 8, 8, 3), 128.0, "float32")))).max() < 1e-3
    ramp = np.broadcast_to(np.arange(8, dtype="float32")[None, :, None], (8, 8, 3))[None] * 10
    coefficients = np.asarray(BlockDCT()(ramp)).reshape(8, 8)  # [vertical u, horizontal v]
    assert np.abs(coefficients[1:, :]).max() < 1e-3 and abs(coefficients[0, 1]) > 10


def test_coefficient_features_are_log_magnitudes_and_soft_counts():
    from detector.core.layers import CoefficientFeatures

    layer = CoefficientFeatures(thresholds=(2.0, 8.0), sharpness=4.0)
    c = np.array([[[[0.0, -3.0, 20.0]]]], "float32")
    out = np.asarray(layer(c))[0, 0, 0]
    assert out.shape == (9,)
    np.testing.assert_allclose(out[:3], np.log1p([0.0, 3.0, 20.0]), rtol=1e-6)
    above_2, above_8 = out[3:6], out[6:9]
    assert above_2[0] < 0.01 and 0.95 < above_2[1] < 0.99 and above_2[2] > 0.999
    assert above_8[1] < 0.01 and above_8[2] > 0.999  # |-3| is below 8: sign does not matter
    clone = CoefficientFeatures.from_config(layer.get_config())
    assert clone.thresholds == (2.0, 8.0) and clone.sharpness == 4.0


def test_dct_spectrum_reads_whole_blocks_on_the_grid_and_explains_blocks():
    from detector.core.card import ModelCard

    recipe = get_recipe("dct_spectrum")
    with pytest.raises(ValueError, match="multiple of 8"):
        recipe.spec(input_size=36)
    spec = recipe.spec(**recipe.tiny)
    assert spec.preprocessing.grid == 8 and spec.preprocessing.resize == "native_crop"
    assert spec.gradcam_layer == "head_coef"
    hidden = recipe.spec(**{**recipe.tiny, "hidden": (6, 4)})
    assert hidden.gradcam_layer == "head_block2_conv"
    assert recipe.build(hidden).get_layer("head_block1_conv").kernel.shape[:2] == (1, 1)
    # a model that calls "fake" whatever has strong high frequencies: its Grad-CAM lights up
    # the noisy block, not the flat ones (the DCT before the explained layer has no weights)
    model = recipe.build(spec)
    features = model.get_layer("head_norm").input.shape[-1]
    weights = np.zeros((features, 1), "float32")
    weights[63] = 1.0  # log magnitude of the highest frequency (u=7, v=7)
    model.get_layer("logits").set_weights([weights, np.zeros(1, "float32")])
    image = np.full((32, 32, 3), 120, np.uint8)
    checker = (np.indices((8, 8)).sum(axis=0) % 2 * 80).astype(np.uint8)[..., None]
    image[8:16, 16:24] += checker
    det = Detector(model, ModelCard(name="dct", spec=spec, sha256=""))
    heat = det.explain(image, "gradcam").heatmap
    cells = heat.reshape(4, 8, 4, 8).mean(axis=(1, 3))  # one value per 8 x 8 block
    assert np.unravel_index(cells.argmax(), cells.shape) == (1, 2)
    assert cells[1, 2] > 0.5 and cells[3, 0] < 0.05 and cells[3, 3] < 0.2


def test_ensemble_keeps_its_members_crop_grid(members, tmp_path):
    root, _, _ = members
    recipe = get_recipe("ensemble")
    _trained_member(tmp_path / "dct16", "dct_spectrum", 1.0, seed=4, input_size=16)
    spec = recipe.spec(members=f"{root / 'big'},{tmp_path / 'dct16'}")
    # the 16 px member reads the centre of the 32 px patch: 8 px in, on its grid
    assert spec.preprocessing.grid == 8 and spec.input_size == 32
    without = recipe.spec(members=f"{root / 'big'},{root / 'small'}")
    assert without.preprocessing.grid == 1
    _trained_member(tmp_path / "dct24", "dct_spectrum", 1.0, seed=5, input_size=24)
    with pytest.raises(ValueError, match="4 px from the edge: not on its 8-pixel grid"):
        recipe.spec(members=f"{root / 'big'},{tmp_path / 'dct24'}")
