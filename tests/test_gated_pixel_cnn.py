"""Tests for the Gated PixelCNN builder: causality, no blind spot, normalisation,
conditioning, serialization, sampling and learning."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixel_models import sampling
from pixel_models.distributions import (
    PixelHead,
    distribution_of,
)
from pixel_models.layers.gated import GatedBlock
from pixel_models.layers.masked_conv import MaskedConv2D
from pixel_models.models.gated_pixel_cnn import gated_pixel_cnn
from pixel_models.models.pixel_cnn import pixel_cnn
from pixel_models.testing import (
    all_images,
    assert_causal,
    dependencies,
    random_images,
    raster_allowed,
    round_trips,
    total_probability,
)
from pixel_models.testing import sharpen as _sharpen


def _small(image_shape, levels=2, hidden_dims=6, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    config = dict(
        image_shape=image_shape,
        levels=levels,
        hidden_dims=hidden_dims,
        recurrent_length=2,
        out_hidden_dims=8,
        out_recurrent_length=1,
        kernel_size=3,
        first_kernel_size=3,
    )
    config.update(kwargs)
    return gated_pixel_cnn(**config)


def _conditional_log_probs(model, label):
    """log p(x | label) of every image of the model's tiny shape."""
    dist = distribution_of(model)
    images = all_images(tuple(model.inputs[0].shape[1:]), dist.levels)
    labels = np.full((len(images),), label, np.int32)
    return dist.log_prob(model([images, labels], training=False), images).numpy()


# ---------------------------------------------------------------------------
# Causality and the blind spot
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image_shape, levels, recurrent_length",
    [((6, 6, 1), 2, 2), ((4, 4, 3), 4, 3)],
    ids=["binary", "rgb4"],
)
def test_gated_pixel_cnn_is_causal(image_shape, levels, recurrent_length):
    model = _small(image_shape, levels, recurrent_length=recurrent_length, first_kernel_size=5)
    found = assert_causal(model, image_shape, strict=True, reaches=0.9)
    assert found.shape == (*image_shape, *image_shape)


@pytest.mark.slow
def test_no_blind_spot_unlike_a_plain_pixel_cnn_of_the_same_depth():
    image_shape = (5, 5, 1)
    depth = dict(recurrent_length=3, out_hidden_dims=16, out_recurrent_length=1)
    allowed = raster_allowed(image_shape)

    gated = _small(image_shape, hidden_dims=16, **depth)
    found = dependencies(gated, image_shape, num_inputs=8)
    # The last pixel sees all 24 earlier pixels, the top-right corner included ...
    np.testing.assert_array_equal(found[4, 4, 0], allowed[4, 4, 0])
    assert found[4, 4, 0, 0, 4, 0] and found[4, 4, 0].sum() == 24
    # ... and so does every other pixel: the dependencies are raster order exactly.
    np.testing.assert_array_equal(found, allowed)

    keras.utils.set_random_seed(0)
    plain = pixel_cnn(
        image_shape, hidden_dims=16, first_kernel_size=3, hidden_kernel_size=3, **depth
    )
    found = dependencies(plain, image_shape, num_inputs=8)
    assert not np.any(found & ~allowed)  # causal ...
    missing = allowed & ~found
    assert missing.any()  # ... but blind to some allowed pixels:
    # masked 3x3 convolutions never reach two columns right of the pixel one row up.
    assert missing[1, 0, 0, 0, 2, 0] and missing[2, 1, 0, 1, 3, 0]
    assert not found[1, 0, 0, 0, 2:].any()


def test_three_blocks_receptive_field_matches_the_drawing():
    # The drawing of the gated_pixel_cnn docstring: output (5, 4), three blocks, k = 3.
    image_shape = (6, 9, 1)
    model = _small(image_shape, hidden_dims=8, first_kernel_size=3, recurrent_length=2)
    found = dependencies(model, image_shape)[5, 4, 0, :, :, 0]
    expected = np.zeros((6, 9), bool)
    expected[1:5, 1:8] = True
    expected[5, 1:4] = True
    np.testing.assert_array_equal(found, expected)


def test_default_kernel_sizes_have_no_blind_spot_either():
    image_shape = (5, 5, 1)
    model = _small(
        image_shape, hidden_dims=16, first_kernel_size=7, recurrent_length=2, out_hidden_dims=16
    )
    found = dependencies(model, image_shape, num_inputs=4)
    np.testing.assert_array_equal(found, raster_allowed(image_shape))


def test_rgb_dependencies_equal_raster_order_exactly():
    image_shape = (2, 2, 3)
    model = _small(image_shape, levels=4, hidden_dims=24, out_hidden_dims=24, seed=1)
    found = dependencies(model, image_shape, num_inputs=8)
    # Channel c of a pixel sees channels < c of that pixel, and not c itself.
    np.testing.assert_array_equal(found, raster_allowed(image_shape, strict=True))


# ---------------------------------------------------------------------------
# Exact normalisation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image_shape, levels",
    [((2, 2, 1), 2), ((3, 3, 1), 2), ((2, 2, 3), 2), ((1, 2, 3), 4)],
    ids=["binary2x2", "binary3x3", "rgb2x2-levels2", "rgb1x2-levels4"],
)
def test_total_probability_is_one(image_shape, levels):
    model = _sharpen(_small(image_shape, levels, hidden_dims=6))
    dist = distribution_of(model)
    images = all_images(image_shape, levels)
    log_p = dist.log_prob(model(images), images).numpy()
    assert len(log_p) == levels ** int(np.prod(image_shape))
    assert log_p.max() - log_p.min() > 0.5  # far from uniform: a real check
    assert total_probability(model) == pytest.approx(1.0, abs=1e-4)


def test_class_conditional_model_is_normalised_for_each_class():
    model = _sharpen(_small((3, 3, 1), num_classes=2))
    log_p = [_conditional_log_probs(model, label) for label in (0, 1)]
    for values in log_p:
        assert np.exp(values.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-4)
    # Two different distributions over the same images.
    assert np.abs(log_p[0] - log_p[1]).max() > 0.1


def _leaky_model(image_shape, seed):
    """A gated stack whose first block wrongly is type B on unshifted features."""
    keras.utils.set_random_seed(seed)
    images = keras.Input(image_shape)
    x = MaskedConv2D(4, 1, mask_type="B", name="lift")(images)
    _, h, _ = GatedBlock(4, 3, mask_type="B", name="leaky")((x, x))
    logits = MaskedConv2D(1, 1, mask_type="B", name="logits")(keras.layers.ReLU()(h))
    return _sharpen(keras.Model(images, PixelHead("bernoulli", 1, 2)(logits)), seed, 3.0)


@pytest.mark.parametrize("image_shape", [(2, 2, 1), (3, 3, 1)])
def test_negative_control_leaky_block_fails_both_checks(image_shape):
    # How far a leak moves the total depends on the weights: try a few and
    # require a clear failure from at least one (a correct model gives 1 for all).
    totals = [total_probability(_leaky_model(image_shape, seed)) for seed in range(3)]
    print(f"leaky gated model {image_shape}: total probabilities {np.round(totals, 3).tolist()}")
    assert max(abs(total - 1.0) for total in totals) > 0.2
    with pytest.raises(AssertionError, match="forbidden dependencies"):
        assert_causal(_leaky_model(image_shape, 0), image_shape, strict=True)


# ---------------------------------------------------------------------------
# Conditioning
# ---------------------------------------------------------------------------


def test_labels_change_the_logits_but_not_causality():
    image_shape = (3, 3, 3)
    model = _small(image_shape, levels=4, num_classes=3)
    assert [x.name for x in model.inputs] == ["images", "labels"]
    x = random_images(model, 3)
    logits = [model([x, np.full((3,), label, np.int32)]).numpy() for label in range(3)]
    assert not np.allclose(logits[0], logits[1]) and not np.allclose(logits[1], logits[2])
    for label in (0, 2):
        labels = tf.constant([label], tf.int32)
        assert_causal(lambda images, labels=labels: model([images, labels]), image_shape)
    blocks = [layer for layer in model.layers if isinstance(layer, GatedBlock)]
    assert len(blocks) == 3 and all(block.condition_dims == 3 for block in blocks)


def test_latent_and_class_conditioning_together():
    image_shape = (3, 3, 1)
    model = _small(image_shape, num_classes=2, latent_dims=4)
    assert [x.name for x in model.inputs] == ["images", "labels", "latents"]
    x = random_images(model, 2)
    labels = np.array([0, 1], np.int32)
    z = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    base = model([x, labels, z]).numpy()
    assert not np.allclose(base, model([x, labels, -z]).numpy())
    assert not np.allclose(base, model([x, labels[::-1], z]).numpy())
    assert all(block.condition_dims == 6 for block in model.layers if isinstance(block, GatedBlock))
    one_label, one_z = tf.constant(labels[:1]), tf.constant(z[:1])
    assert_causal(lambda images: model([images, one_label, one_z]), image_shape)

    latent_only = _small(image_shape, latent_dims=2)
    assert [x.name for x in latent_only.inputs] == ["images", "latents"]


# ---------------------------------------------------------------------------
# Structure, heads and arguments
# ---------------------------------------------------------------------------


def test_layer_stack_follows_the_paper():
    model = gated_pixel_cnn(
        (8, 8, 3),
        levels=4,
        hidden_dims=9,
        recurrent_length=3,
        out_hidden_dims=6,
        out_recurrent_length=2,
        kernel_size=5,
        first_kernel_size=7,
    )
    blocks = [layer for layer in model.layers if isinstance(layer, GatedBlock)]
    assert [b.name for b in blocks] == ["gated_a", "gated_b0", "gated_b1", "gated_b2"]
    assert [b.mask_type for b in blocks] == ["A", "B", "B", "B"]
    assert [b.kernel_size for b in blocks] == [7, 5, 5, 5]
    assert all(b.filters == 9 and b.color_channels == 3 for b in blocks)
    assert all(b.condition_dims is None for b in blocks)
    convs = [layer for layer in model.layers if isinstance(layer, MaskedConv2D)]
    assert [c.name for c in convs] == ["out0", "out1", "logits"]
    assert all(c.mask_type == "B" and c.kernel_size == (1, 1) for c in convs)
    assert [c.filters for c in convs] == [6, 6, 12]
    assert all(c.color_channels == 3 for c in convs)
    assert convs[-1].activation is keras.activations.get(None)


def test_zero_hidden_blocks_and_output_layers_is_a_valid_model():
    model = _small((3, 3, 1), recurrent_length=0, out_recurrent_length=0)
    assert_causal(model, (3, 3, 1))
    assert total_probability(_sharpen(model)) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(hidden_dims=0),
        dict(recurrent_length=-1),
        dict(recurrent_length=1.5),
        dict(out_hidden_dims=0),
        dict(out_recurrent_length=-1),
        dict(image_shape=(4, 4, 3), hidden_dims=2),
        dict(image_shape=(4, 4, 3), out_hidden_dims=2),
        dict(image_shape=(0, 4, 1)),
        dict(levels=1),
        dict(kernel_size=2),
        dict(kernel_size=0),
        dict(first_kernel_size=4),
        dict(num_classes=0),
        dict(num_classes=2.5),
        dict(latent_dims=0),
        dict(latent_dims=True),
    ],
)
def test_invalid_arguments_raise(kwargs):
    config = dict(image_shape=(4, 4, 1), hidden_dims=4, out_hidden_dims=4)
    config.update(kwargs)
    with pytest.raises(ValueError):
        gated_pixel_cnn(**config)


# ---------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------

SERIAL_CASES = [((4, 4, 1), 2, None), ((3, 3, 3), 256, None), ((3, 3, 1), 2, 3)]
SERIAL_IDS = ["binary", "rgb256", "class-conditional"]


def _serial_inputs(model, num_classes):
    x = random_images(model, 3)
    return x if num_classes is None else [x, np.array([0, 2, 1], np.int32)]


@pytest.mark.parametrize("image_shape, levels, num_classes", SERIAL_CASES, ids=SERIAL_IDS)
def test_round_trips_give_identical_outputs(tmp_path, image_shape, levels, num_classes):
    model = _sharpen(_small(image_shape, levels, num_classes=num_classes))
    _, loaded = round_trips(model, _serial_inputs(model, num_classes), tmp_path)
    first = loaded.get_layer("gated_a")
    assert (first.mask_type, first.kernel_size) == ("A", 3)
    if num_classes is not None:
        assert first.condition_dims == num_classes
    else:
        assert_causal(loaded, image_shape)


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


def test_sample_draws_images_of_the_model():
    model = _sharpen(_small((4, 4, 1), hidden_dims=4, recurrent_length=1))
    # "auto" uses the cached sampler, which draws what the reference loop draws.
    assert sampling.supports_cached(model)
    images = sampling.sample(model, 2, seed=0)
    np.testing.assert_array_equal(images, sampling.sample(model, 2, seed=0, method="reference"))
    assert images.shape == (2, 4, 4, 1) and images.dtype == np.uint8
    assert set(np.unique(images)) <= {0, 1}
    np.testing.assert_array_equal(images, sampling.sample(model, 2, seed=0))
    more = sampling.sample(model, 8, seed=1)
    assert len({image.tobytes() for image in more}) > 1


def test_sample_categorical_rgb():
    model = _sharpen(_small((2, 2, 3), levels=4, hidden_dims=6, recurrent_length=1))
    images = sampling.sample(model, 2, seed=3)
    assert images.shape == (2, 2, 2, 3) and images.max() < 4


# ---------------------------------------------------------------------------
# Learning
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_gated_pixel_cnn_learns_procedural_shapes():
    from shapes_learning import BASELINE, train_on_shapes

    before, after = train_on_shapes(
        lambda: gated_pixel_cnn(
            (8, 8, 1),
            hidden_dims=16,
            recurrent_length=3,
            out_hidden_dims=32,
            out_recurrent_length=1,
            first_kernel_size=5,
        ),
        steps=300,
        label="gated",
    )
    assert before["nll"] > 0.9 * BASELINE
    assert after["nll"] < 0.5 * BASELINE
