"""Tests for the PixelCNN builder: causality, normalisation, serialization, learning."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import pixel_models as pm
from pixel_models.distributions import PixelHead, distribution_of
from pixel_models.layers import MaskedConv2D
from pixel_models.models import MODELS, model_input, pixel_cnn
from pixel_models.testing import (
    all_images,
    assert_causal,
    dependencies,
    log_prob_of_every_image,
    random_images,
    raster_allowed,
    round_trips,
    sharpen,
    total_probability,
)


def _sharpen(model, seed=0, scale=2.0):
    return sharpen(model, seed, scale, condition_scale=1.0)


def _small(image_shape, levels=2, use_residual=False, hidden_dims=6, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    config = dict(
        image_shape=image_shape,
        levels=levels,
        hidden_dims=hidden_dims,
        recurrent_length=2,
        out_hidden_dims=8,
        out_recurrent_length=1,
        use_residual=use_residual,
    )
    config.update(kwargs)
    return pixel_cnn(**config)


# ---------------------------------------------------------------------------
# Causality
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize(
    "image_shape, levels",
    [((6, 6, 1), 2), ((4, 4, 3), 4), ((3, 3, 3), 256)],
    ids=["binary", "rgb4", "rgb256"],
)
def test_pixel_cnn_is_causal(image_shape, levels, use_residual):
    model = _small(image_shape, levels, use_residual)
    # Not vacuous: the model does depend on earlier dimensions.
    found = assert_causal(model, image_shape, strict=True, reaches=0.5)
    assert found.shape == (*image_shape, *image_shape)


@pytest.mark.parametrize("use_residual", [False, True], ids=["plain", "residual"])
def test_last_pixel_sees_every_previous_pixel(use_residual):
    image_shape = (5, 5, 1)
    model = _small(image_shape, hidden_dims=16, use_residual=use_residual, out_hidden_dims=16)
    found = dependencies(model, image_shape, num_inputs=8)
    allowed = raster_allowed(image_shape)
    assert not np.any(found & ~allowed)
    np.testing.assert_array_equal(found[4, 4, 0], allowed[4, 4, 0])
    assert found[4, 4, 0].sum() == 24


def test_rgb_dependencies_equal_raster_order_exactly():
    image_shape = (2, 2, 3)
    model = _small(image_shape, levels=4, hidden_dims=24, out_hidden_dims=24, seed=1)
    found = dependencies(model, image_shape, num_inputs=8)
    # In particular, channel c of a pixel sees channels < c of that pixel and not c itself.
    np.testing.assert_array_equal(found, raster_allowed(image_shape, strict=True))


# ---------------------------------------------------------------------------
# Exact normalisation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize(
    "image_shape, levels",
    [((2, 2, 1), 2), ((3, 3, 1), 2), ((2, 2, 3), 2), ((1, 2, 3), 4)],
    ids=["binary2x2", "binary3x3", "rgb2x2-levels2", "rgb1x2-levels4"],
)
def test_total_probability_is_one(image_shape, levels, use_residual):
    model = _sharpen(_small(image_shape, levels, use_residual, hidden_dims=8))
    log_p = log_prob_of_every_image(model)
    assert len(log_p) == levels ** int(np.prod(image_shape))
    # The distribution is far from uniform, so the sum is a real check.
    assert log_p.max() - log_p.min() > 0.5
    assert total_probability(model) == pytest.approx(1.0, abs=1e-4)


def _leaky_model(image_shape, seed):
    """A PixelCNN-like stack whose first layer wrongly uses mask type B."""
    keras.utils.set_random_seed(seed)
    inputs, x = model_input(image_shape, 2)
    x = MaskedConv2D(8, 3, mask_type="B", activation="relu", name="leaky_first")(x)
    x = MaskedConv2D(8, 3, mask_type="B", activation="relu")(x)
    x = MaskedConv2D(1, 1, mask_type="B", name="logits")(x)
    return _sharpen(keras.Model(inputs, PixelHead("bernoulli", 1, 2)(x)), seed, scale=3.0)


@pytest.mark.parametrize("image_shape", [(2, 2, 1), (3, 3, 1)])
def test_negative_control_leaky_model_fails_both_checks(image_shape):
    # How far a leak moves the total depends on the weights: try a few and
    # require a clear failure from at least one (a correct model gives 1 for all).
    totals = [total_probability(_leaky_model(image_shape, seed)) for seed in range(4)]
    print(f"leaky model {image_shape}: total probabilities {np.round(totals, 3).tolist()}")
    assert max(abs(total - 1.0) for total in totals) > 0.2
    with pytest.raises(AssertionError, match="forbidden dependencies"):
        assert_causal(_leaky_model(image_shape, 0), image_shape, strict=True)


# ---------------------------------------------------------------------------
# Structure, heads and arguments
# ---------------------------------------------------------------------------


def test_layer_stack_follows_the_paper():
    model = pixel_cnn(
        (8, 8, 3),
        levels=4,
        hidden_dims=9,
        recurrent_length=3,
        out_hidden_dims=6,
        out_recurrent_length=2,
    )
    convs = [layer for layer in model.layers if isinstance(layer, MaskedConv2D)]
    assert [layer.name for layer in convs] == [
        "conv_a",
        "conv_b0",
        "conv_b1",
        "conv_b2",
        "out0",
        "out1",
        "logits",
    ]
    assert [layer.mask_type for layer in convs] == ["A"] + ["B"] * 6
    assert [layer.kernel_size for layer in convs] == [(7, 7)] + [(3, 3)] * 3 + [(1, 1)] * 3
    assert [layer.filters for layer in convs] == [9, 9, 9, 9, 6, 6, 12]
    assert all(layer.color_channels == 3 for layer in convs)
    relu = keras.activations.get("relu")
    assert all(layer.activation is relu for layer in convs[:-1])
    assert convs[-1].activation is keras.activations.get(None)


def test_residual_adds_connections_without_new_weights():
    plain = _small((4, 4, 1), use_residual=False)
    residual = _small((4, 4, 1), use_residual=True)
    adds = [layer for layer in residual.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 2
    assert not any(isinstance(layer, keras.layers.Add) for layer in plain.layers)
    assert plain.count_params() == residual.count_params()
    residual.set_weights(plain.get_weights())
    x = random_images(plain, 2)
    assert not np.allclose(plain(x).numpy(), residual(x).numpy())


def test_custom_kernel_sizes_are_used():
    model = _small((5, 5, 1), first_kernel_size=5, hidden_kernel_size=5)
    assert model.get_layer("conv_a").kernel_size == (5, 5)
    assert model.get_layer("conv_b0").kernel_size == (5, 5)
    assert_causal(model, (5, 5, 1))


def test_zero_recurrent_layers_is_a_valid_model():
    model = _small((3, 3, 1), recurrent_length=0, out_recurrent_length=0)
    assert_causal(model, (3, 3, 1))
    assert total_probability(_sharpen(model)) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(hidden_dims=0),
        dict(hidden_dims=-3),
        dict(recurrent_length=-1),
        dict(out_hidden_dims=0),
        dict(out_recurrent_length=-1),
        dict(image_shape=(4, 4, 3), hidden_dims=2),
        dict(image_shape=(4, 4, 3), out_hidden_dims=2),
        dict(image_shape=(0, 4, 1)),
        dict(image_shape=(4, 4, 0)),
        dict(levels=1),
        dict(first_kernel_size=4),
        dict(hidden_kernel_size=2),
    ],
)
def test_invalid_arguments_raise(kwargs):
    config = dict(image_shape=(4, 4, 1), hidden_dims=4, out_hidden_dims=4)
    config.update(kwargs)
    with pytest.raises(ValueError):
        pixel_cnn(**config)


def test_build_model_knows_pixel_cnn_and_rejects_unknown_names():
    assert MODELS["pixel_cnn"] is pixel_cnn
    with pytest.raises(ValueError, match="unknown model"):
        pm.build_model("pixel_gan", image_shape=(4, 4, 1))


# ---------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------

SERIAL_CASES = [((4, 4, 1), 2, False), ((3, 3, 3), 256, True)]
SERIAL_IDS = ["binary", "rgb256-residual"]


@pytest.mark.parametrize("image_shape, levels, use_residual", SERIAL_CASES, ids=SERIAL_IDS)
def test_round_trips_give_identical_outputs(tmp_path, image_shape, levels, use_residual):
    model = _small(image_shape, levels, use_residual)
    clone, loaded = round_trips(model, random_images(model, 3), tmp_path)
    assert_causal(clone, image_shape)
    assert loaded.get_layer("conv_a").mask_type == "A"


# ---------------------------------------------------------------------------
# Class- and latent-conditional PixelCNN
# ---------------------------------------------------------------------------


def test_conditional_pixel_cnn_is_causal_for_every_condition():
    image_shape = (4, 4, 3)
    model = _sharpen(_small(image_shape, levels=4, num_classes=3), seed=1)
    assert [x.name for x in model.inputs] == ["images", "labels"]
    convs = [layer for layer in model.layers if isinstance(layer, MaskedConv2D)]
    # Every masked convolution, the output layers included, is conditioned.
    assert len(convs) == 5 and all(conv.condition_dims == 3 for conv in convs)
    for label in range(3):
        labels = tf.constant([label], tf.int32)
        found = assert_causal(lambda x, labels=labels: model([x, labels]), image_shape)
        seen = found[-1, -1].any(axis=(0, 3)).reshape(-1)
        assert seen[:-1].all()  # the last pixel sees every pixel before it


@pytest.mark.parametrize(
    "kwargs, condition",
    [
        (dict(num_classes=2), 0),
        (dict(num_classes=2), 1),
        (dict(latent_dims=3), np.array([0.5, -1.0, 2.0], np.float32)),
        (dict(num_classes=2, latent_dims=2), (1, np.array([1.0, -1.0], np.float32))),
    ],
    ids=["class0", "class1", "latent", "class-and-latent"],
)
def test_conditional_pixel_cnn_is_normalised_for_a_fixed_condition(kwargs, condition):
    model = _sharpen(_small((3, 3, 1), **kwargs), seed=2)
    assert total_probability(model, condition=condition) == pytest.approx(1.0, abs=1e-4)


def test_the_condition_changes_the_distribution():
    model = _sharpen(_small((3, 3, 1), num_classes=2), seed=3)
    images = all_images((3, 3, 1), 2)
    dist = distribution_of(model)
    log_p = [
        dist.log_prob(model([images, np.full(len(images), label, np.int32)]), images).numpy()
        for label in (0, 1)
    ]
    assert np.abs(log_p[0] - log_p[1]).max() > 0.1


def test_conditional_pixel_cnn_round_trips(tmp_path):
    model = _sharpen(_small((4, 4, 1), num_classes=3, latent_dims=2), seed=4)
    labels = np.array([0, 2, 1], np.int32)
    codes = np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)
    _, loaded = round_trips(model, [random_images(model, 3), labels, codes], tmp_path)
    assert loaded.get_layer("conv_a").condition_dims == 5


def test_masked_conv_condition_must_be_used_consistently():
    layer = MaskedConv2D(2, 3, mask_type="A")
    x = np.zeros((2, 4, 4, 1), np.float32)
    layer(x, condition=np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="built with a condition"):
        layer(x)
    plain = MaskedConv2D(2, 3, mask_type="A")
    plain(x)
    with pytest.raises(ValueError, match="built without a condition"):
        plain(x, condition=np.ones((2, 3), np.float32))


# ---------------------------------------------------------------------------
# Learning
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_pixel_cnn_learns_procedural_shapes():
    from shapes_learning import BASELINE, train_on_shapes

    def build():
        return pixel_cnn(
            (8, 8, 1),
            hidden_dims=16,
            recurrent_length=3,
            out_hidden_dims=32,
            out_recurrent_length=1,
        )

    before, after = train_on_shapes(build, 300, "pixel_cnn")
    assert before["nll"] > 0.9 * BASELINE
    assert after["nll"] < 0.6 * BASELINE
