"""Tests for pixel_models.sampling: sample() and complete()."""

from __future__ import annotations

import gc
import math
import re
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf

import pixel_models as pm
from pixel_models.layers import GatedBlock, MaskedConv2D
from pixel_models.layers.incremental import Here, Slot, Window
from pixel_models.models import gated_pixel_cnn, pixel_cnn
from pixel_models.sampling import loops
from pixel_models.sampling.loops import plan_of
from pixel_models.testing import all_images, random_images
from pixel_models.testing import sharpen as _sharpen


def _model(image_shape, levels=2, seed=0, condition_scale=2.0, **kwargs):
    """A tiny PixelCNN with weights far enough from uniform to make samples vary."""
    keras.utils.set_random_seed(seed)
    config = dict(hidden_dims=6, recurrent_length=1, out_hidden_dims=6, out_recurrent_length=1)
    config.update(kwargs)
    model = pixel_cnn(image_shape, levels=levels, **config)
    return _sharpen(model, seed, 3.0, condition_scale)


@pytest.fixture(scope="module")
def binary_model():
    return _model((4, 4, 1))


@pytest.fixture(scope="module")
def rgb_model():
    return _model((3, 3, 3), levels=4)


@pytest.fixture(params=["binary", "rgb"])
def model(request, binary_model, rgb_model):
    return binary_model if request.param == "binary" else rgb_model


def _set_logits(model, bias):
    """Makes the logits constant: zero kernel, the given bias."""
    layer = model.get_layer("logits")
    kernel, old = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.asarray(bias, np.float32).reshape(old.shape)])


def _probabilities(model):
    dist = pm.distribution_of(model)
    images = all_images(tuple(model.input_shape[1:]), dist.levels)
    return images, np.exp(dist.log_prob(model(images), images).numpy().astype(np.float64))


def _frequencies(samples, images):
    flat = samples.reshape(len(samples), -1).astype(np.float32)
    keys = images.reshape(len(images), -1)
    counts = np.array([np.sum(np.all(flat == key, axis=1)) for key in keys])
    assert counts.sum() == len(samples)
    return counts


def _assert_counts_match(counts, probs, sigmas=4.0):
    n = counts.sum()
    for count, p in zip(counts, probs, strict=True):
        sd = math.sqrt(n * p * (1 - p))
        assert abs(count - n * p) <= sigmas * sd + 1, (counts.tolist(), (n * probs).round(1))


# ---------------------------------------------------------------------------
# sample()
# ---------------------------------------------------------------------------


def test_sample_shape_dtype_and_range(model):
    levels = pm.distribution_of(model).levels
    samples = pm.sample(model, 5, seed=0)
    assert samples.shape == (5, *model.input_shape[1:])
    assert samples.dtype == np.uint8
    assert samples.min() >= 0 and samples.max() < levels
    # Every value turns up: the samples are not stuck at the blank image.
    assert set(np.unique(samples).tolist()) == set(range(levels))


def test_sample_seeding(model):
    a = pm.sample(model, 6, seed=1)
    np.testing.assert_array_equal(a, pm.sample(model, 6, seed=1))
    np.testing.assert_array_equal(a, pm.sample(model, 6, seed=np.int64(1)))
    assert not np.array_equal(a, pm.sample(model, 6, seed=2))


def test_seeds_apart_by_2_to_the_31_give_other_images(rgb_model):
    images = [pm.sample(rgb_model, 4, seed=seed) for seed in (5, 5 + 2**31, 5 + 2**32)]
    assert len({x.tobytes() for x in images}) == 3


def test_sample_in_batches(binary_model):
    split = pm.sample(binary_model, 7, seed=3, batch_size=3)
    assert split.shape == (7, 4, 4, 1)
    np.testing.assert_array_equal(split, pm.sample(binary_model, 7, seed=3, batch_size=3))
    # Each batch gets its own random stream: no batch repeats another.
    assert not np.array_equal(split[:3], split[3:6])
    assert len({image.tobytes() for image in split}) > 4
    one = pm.sample(binary_model, 1, seed=3, batch_size=1)
    assert one.shape == (1, 4, 4, 1)


@pytest.mark.parametrize("num_samples", [0, -1])
def test_sample_needs_a_positive_number_of_samples(binary_model, num_samples):
    with pytest.raises(ValueError):
        pm.sample(binary_model, num_samples)


def test_sample_bad_arguments_raise(binary_model, rgb_model):
    with pytest.raises(ValueError):
        pm.sample(binary_model, 2, batch_size=0)
    with pytest.raises(TypeError):
        pm.sample(binary_model, 2, seed="zero")
    for seed in (-1, 2**62):
        with pytest.raises(ValueError, match="seed must be an int in \\[0, 2\\*\\*62\\)"):
            pm.sample(binary_model, 2, seed=seed)
    with pytest.raises(ValueError):
        pm.sample(binary_model, 2, temperature=0.5)  # Bernoulli heads have no temperature
    with pytest.raises(ValueError):
        pm.sample(rgb_model, 2, temperature=0.0)
    for temperature in (math.nan, math.inf, "hot", -2, True):  # True is not 1.0
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            pm.sample(rgb_model, 2, temperature=temperature)
    for num_samples in (2.7, "3"):
        with pytest.raises(ValueError, match="num_samples must be a positive int"):
            pm.sample(binary_model, num_samples)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        pm.sample(binary_model, 2, batch_size=1.5)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        pm.complete(binary_model, np.zeros((1, 4, 4, 1)), True, batch_size=0)
    for not_a_model in ("pixel_cnn", None):
        for call in (
            lambda m=not_a_model: pm.sample(m, 2),
            lambda m=not_a_model: pm.complete(m, np.zeros((1, 4, 4, 1)), True),
            lambda m=not_a_model: pm.reconstruct(m, np.zeros((1, 4, 4, 1))),
            lambda m=not_a_model: pm.sampling.cached_logits(m, np.zeros((1, 4, 4, 1))),
            lambda m=not_a_model: pm.sampling.class_rows(m, 2),
        ):
            with pytest.raises(TypeError, match="model must be a keras.Model built by"):
                call()


def test_cached_logits_and_class_rows_check_their_arguments(binary_model, class_model):
    for images in (np.zeros((4, 4, 1)), np.zeros((2, 4, 4, 3))):
        with pytest.raises(ValueError, match="images must have shape \\(N, 4, 4, 1\\)"):
            pm.sampling.cached_logits(binary_model, images)
    with pytest.raises(ValueError, match="images must hold integers in \\[0, 1\\]"):
        pm.sampling.cached_logits(binary_model, np.full((1, 4, 4, 1), 7.0))
    for count in (0, -5, 2.7, "a"):
        with pytest.raises(ValueError, match="num_samples must be a positive int"):
            pm.sampling.class_rows(class_model, count)


@pytest.mark.parametrize("bias, expected", [(30.0, 1), (-30.0, 0)])
def test_binary_samples_follow_forced_logits(bias, expected):
    model = _model((3, 4, 1), seed=4)
    _set_logits(model, [bias])
    samples = pm.sample(model, 20, seed=0)
    np.testing.assert_array_equal(samples, np.full((20, 3, 4, 1), expected, np.uint8))


def test_categorical_samples_follow_forced_logits_per_channel():
    model = _model((2, 3, 3), levels=4, seed=5)
    target = [2, 0, 3]
    bias = np.zeros((3, 4), np.float32)
    bias[np.arange(3), target] = 30.0  # channel c's block of logits favours target[c]
    _set_logits(model, bias)
    samples = pm.sample(model, 10, seed=0)
    np.testing.assert_array_equal(samples, np.broadcast_to(np.uint8(target), (10, 2, 3, 3)))


def test_low_temperature_sampling_is_greedy(rgb_model):
    greedy = pm.sample(rgb_model, 4, seed=0, temperature=1e-4)
    np.testing.assert_array_equal(greedy, pm.sample(rgb_model, 4, seed=1, temperature=1e-4))
    np.testing.assert_array_equal(greedy[0], greedy[3])
    # The compiled loop of one temperature does not leak into another.
    assert not np.array_equal(pm.sample(rgb_model, 4, seed=0), pm.sample(rgb_model, 4, seed=1))


# ---------------------------------------------------------------------------
# Samples follow the model's distribution
# ---------------------------------------------------------------------------


def _two_pixel_model():
    """A 2x1 binary PixelCNN with hand-set weights.

    p(top = 1) = 0.3, p(bottom = 1 | top = 0) = 0.9, p(bottom = 1 | top = 1) = 0.2,
    so the bottom pixel strongly depends on the top one.
    """
    model = pixel_cnn(
        (2, 1, 1), hidden_dims=2, recurrent_length=0, out_hidden_dims=2, out_recurrent_length=0
    )

    def logit(p):
        return math.log(p / (1 - p))

    # conv_a (7x7, type A) reads the pixel above, scaled to s in {-1, 1}:
    # h = (relu(s), relu(-s)); the top pixel only sees padding, so h = (0, 0).
    kernel = np.zeros((7, 7, 1, 2), np.float32)
    kernel[2, 3, 0] = [1.0, -1.0]
    model.get_layer("conv_a").set_weights([kernel, np.zeros(2, np.float32)])
    top = logit(0.3)
    weights = np.array([[[[logit(0.2) - top], [logit(0.9) - top]]]], np.float32)
    model.get_layer("logits").set_weights([weights, np.array([top], np.float32)])
    return model


TWO_PIXEL_PROBS = np.array([0.7 * 0.1, 0.7 * 0.9, 0.3 * 0.8, 0.3 * 0.2])


def test_hand_set_two_pixel_model_has_the_intended_probabilities():
    images, probs = _probabilities(_two_pixel_model())
    np.testing.assert_array_equal(images.reshape(4, 2), [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_allclose(probs, TWO_PIXEL_PROBS, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        _two_pixel_model,
        lambda: _model((2, 1, 1), seed=3),
        lambda: _model((2, 2, 1), seed=0),
        lambda: _model((1, 1, 3), seed=0),
        lambda: _model((1, 2, 2), levels=3, seed=0),
    ],
    ids=["two-pixels-hand-set", "two-pixels", "binary2x2", "rgb-one-pixel", "levels3-1x2x2"],
)
def test_sample_frequencies_match_model_probabilities(make):
    model = make()
    images, probs = _probabilities(model)
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)
    samples = pm.sample(model, 6000, seed=7, batch_size=2000)
    _assert_counts_match(_frequencies(samples, images), probs)


# ---------------------------------------------------------------------------
# complete()
# ---------------------------------------------------------------------------


def test_complete_keeps_known_values(model):
    images = random_images(model, 8, dtype=np.uint8)
    known = np.random.default_rng(1).random(images.shape) < 0.5
    out = pm.complete(model, images, known, seed=0)
    assert out.shape == images.shape
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[known], images[known])
    assert out.max() < pm.distribution_of(model).levels
    # The unknown values are drawn, not copied.
    assert np.any(out[~known] != images[~known])
    np.testing.assert_array_equal(out, pm.complete(model, images, known, seed=0))
    split = pm.complete(model, images, known, seed=0, batch_size=3)
    np.testing.assert_array_equal(split[known], images[known])
    np.testing.assert_array_equal(split, pm.complete(model, images, known, seed=0, batch_size=3))


def test_complete_broadcasts_known(binary_model):
    images = random_images(binary_model, 6, seed=2, dtype=np.uint8)
    top_rows = np.zeros((1, 4, 4, 1), bool)
    top_rows[:, :2] = True
    out = pm.complete(binary_model, images, top_rows, seed=1)
    np.testing.assert_array_equal(out[:, :2], images[:, :2])
    assert np.any(out[:, 2:] != images[:, 2:])


def test_complete_fully_known_image_is_unchanged(model):
    images = random_images(model, 5, seed=3, dtype=np.uint8)
    np.testing.assert_array_equal(pm.complete(model, images, True, seed=4), images)


def test_complete_with_nothing_known_is_sampling(model):
    # The unknown values given (random here) are overwritten before anything reads
    # them, as the model is causal: completing nothing is sampling with that seed.
    images = random_images(model, 7, seed=5, dtype=np.uint8)
    out = pm.complete(model, images, False, seed=6)
    np.testing.assert_array_equal(out, pm.sample(model, 7, seed=6))
    split = pm.complete(model, images, np.zeros(images.shape, bool), seed=6, batch_size=3)
    np.testing.assert_array_equal(split, pm.sample(model, 7, seed=6, batch_size=3))


@pytest.mark.parametrize("top, p_bottom", [(0, 0.9), (1, 0.2)])
def test_complete_conditions_on_known_pixels(top, p_bottom):
    model = _two_pixel_model()
    n = 4000
    images = np.zeros((n, 2, 1, 1), np.uint8)
    images[:, 0] = top
    known = np.array([True, False]).reshape(1, 2, 1, 1)
    out = pm.complete(model, images, known, seed=8, batch_size=1000)
    assert np.all(out[:, 0] == top)
    ones = int(out[:, 1].sum())
    assert abs(ones - n * p_bottom) <= 4 * math.sqrt(n * p_bottom * (1 - p_bottom)), ones


def test_complete_bad_inputs_raise(binary_model, rgb_model):
    good = np.zeros((2, 4, 4, 1), np.uint8)
    with pytest.raises(ValueError):
        pm.complete(binary_model, good[0], True)  # no batch axis
    with pytest.raises(ValueError):
        pm.complete(binary_model, np.zeros((2, 4, 5, 1)), True)
    with pytest.raises(ValueError):
        pm.complete(binary_model, np.zeros((2, 4, 4, 3)), True)
    with pytest.raises(ValueError):
        pm.complete(binary_model, good + 2, True)  # binary values are 0 or 1
    with pytest.raises(ValueError):
        pm.complete(binary_model, good.astype(np.int64) - 1, True)
    with pytest.raises(ValueError):
        pm.complete(rgb_model, np.full((1, 3, 3, 3), 4), True)  # levels = 4
    with pytest.raises(ValueError, match="known must have the images' shape"):
        pm.complete(binary_model, good, np.zeros((3, 4, 4, 1), bool))  # known not broadcastable
    # Known values must be the integers of the data form: a NaN or a 0.5
    # would be changed by the rounding of the result, and condition the rest.
    for value in (np.nan, 0.5):
        with pytest.raises(ValueError, match="images must hold integers in \\[0, 1\\]"):
            pm.complete(binary_model, np.full((1, 4, 4, 1), value), True)
    with pytest.raises(ValueError, match="known must hold booleans"):
        pm.complete(binary_model, good, np.full((1, 4, 4, 1), 0.3))
    np.testing.assert_array_equal(pm.complete(binary_model, good, 1), good)  # 0/1 known


# ---------------------------------------------------------------------------
# Compiled-loop cache
# ---------------------------------------------------------------------------


def test_sampled_model_can_be_garbage_collected():
    model = _model((2, 2, 1), seed=9)
    pm.sample(model, 1)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


# ---------------------------------------------------------------------------
# The cached sampler against the full network and the reference sampler.
# ---------------------------------------------------------------------------

CACHED_CASES = {
    "binary": dict(image_shape=(5, 5, 1)),
    "binary-residual-k5": dict(image_shape=(5, 4, 1), use_residual=True, hidden_kernel_size=5),
    "rgb4": dict(image_shape=(3, 4, 3), levels=4, recurrent_length=2),
    "rgb256-residual": dict(image_shape=(3, 3, 3), levels=256, use_residual=True),
}


@pytest.fixture(scope="module", params=sorted(CACHED_CASES))
def cached_case(request):
    config = dict(CACHED_CASES[request.param])
    return _model(config.pop("image_shape"), **config)


def test_cached_logits_equal_full_network_logits(cached_case):
    model = cached_case
    levels = pm.distribution_of(model).levels
    rng = np.random.default_rng(1)
    images = rng.integers(0, levels, (3, *model.input_shape[1:])).astype(np.float32)
    full = model(images).numpy()
    cached = pm.sampling.cached_logits(model, images)
    assert cached.shape == full.shape
    np.testing.assert_allclose(cached, full, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cached_samples_equal_reference_samples(cached_case, seed):
    model = cached_case
    reference = pm.sample(model, 6, seed=seed, batch_size=4, method="reference")
    cached = pm.sample(model, 6, seed=seed, batch_size=4, method="cached")
    np.testing.assert_array_equal(cached, reference)
    # "auto" picks the cached path for these models.
    assert pm.sampling.supports_cached(model)
    np.testing.assert_array_equal(pm.sample(model, 6, seed=seed, batch_size=4), cached)


def test_later_passes_at_a_pixel_run_only_the_steps_that_read_it():
    """Mask A on one channel hides the pixel at (i, j) from the features at
    (i, j): once it is drawn, only the pointwise steps on the image run again.
    With colour groups, every layer reads the pixel's earlier channels."""
    binary = plan_of(_model((3, 3, 1)))
    assert len(binary.pixel_steps) < len(binary.position_steps)
    assert all(isinstance(r, Here) for s in binary.pixel_steps for r in s.reads.values())
    rgb = plan_of(_model((3, 3, 3), levels=4))
    assert rgb.pixel_steps == rgb.position_steps
    window = Window(Slot(1), top=1, left=1, right=0)
    assert window.covers_current()
    assert not Window(Slot(1), top=1, left=1, right=0, reads_current=False).covers_current()
    assert not Window(Slot(1), top=1, left=2, right=-1).covers_current()
    assert not Window(Slot(1), top=2, left=1, right=1, bottom=1).covers_current()


def test_a_layer_that_wrongly_says_it_ignores_the_pixel_breaks_cached_sampling():
    """The check above matters: a colour mask A that claimed not to read the
    current pixel would leave features of undrawn channels in the caches."""
    model = _model((3, 3, 3), levels=4)
    first = next(layer for layer in model.layers if isinstance(layer, MaskedConv2D))
    first._reads_centre = False  # before the sampler plans the model
    reference = pm.sample(model, 6, seed=0, method="reference")
    cached = pm.sample(model, 6, seed=0, method="cached")
    assert not np.array_equal(cached, reference)


def test_cached_completion_keeps_known_pixels_and_matches_reference(rgb_model):
    levels = pm.distribution_of(rgb_model).levels
    rng = np.random.default_rng(3)
    images = rng.integers(0, levels, (5, *rgb_model.input_shape[1:]))
    known = rng.uniform(size=images.shape) < 0.5
    cached = pm.complete(rgb_model, images, known, seed=4, method="cached")
    reference = pm.complete(rgb_model, images, known, seed=4, method="reference")
    np.testing.assert_array_equal(cached[known], images[known])
    np.testing.assert_array_equal(cached, reference)
    full = pm.complete(rgb_model, images, np.ones(images.shape, bool), method="cached")
    np.testing.assert_array_equal(full, images)


def test_cached_sampler_after_keras_round_trip(binary_model, tmp_path):
    path = tmp_path / "model.keras"
    binary_model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        pm.sample(loaded, 4, seed=5, method="cached"),
        pm.sample(binary_model, 4, seed=5, method="reference"),
    )


def test_models_without_a_position_wise_form_fall_back_to_reference():
    inputs = keras.Input((3, 3, 1))
    # A plain convolution has no causal_window(): no cached path (and, being
    # unmasked, it is not even causal: this model only exercises the fallback).
    x = keras.layers.Conv2D(1, 1, name="plain")(inputs)
    model = keras.Model(inputs, pm.PixelHead("bernoulli", 1, 2)(x))
    assert not pm.sampling.supports_cached(model)
    with pytest.raises(ValueError, match="'plain' \\(Conv2D\\) has no position-wise form"):
        pm.sample(model, 2, method="cached")
    assert pm.sample(model, 2, seed=0).shape == (2, 3, 3, 1)  # auto: reference


def test_unknown_sampling_method(binary_model):
    with pytest.raises(ValueError, match="method must be one of auto, cached, reference"):
        pm.sample(binary_model, 1, method="fast")


def test_complete_of_no_images_returns_no_images(binary_model):
    empty = np.zeros((0, *binary_model.input_shape[1:]), np.uint8)
    out = pm.complete(binary_model, empty, False)
    assert out.shape == empty.shape and out.dtype == np.uint8


# ---------------------------------------------------------------------------
# The cached sampler of the Gated PixelCNN: vertical stacks a row at a time,
# horizontal stacks a position at a time; conditioning.
# ---------------------------------------------------------------------------


def _gated(image_shape, levels=2, seed=0, condition_scale=2.0, **kwargs):
    """A tiny Gated PixelCNN with sharpened weights and random biases."""
    keras.utils.set_random_seed(seed)
    config = dict(
        hidden_dims=6,
        recurrent_length=1,
        out_hidden_dims=6,
        out_recurrent_length=1,
        kernel_size=3,
        first_kernel_size=3,
    )
    config.update(kwargs)
    model = gated_pixel_cnn(image_shape, levels=levels, **config)
    return _sharpen(model, seed, 2.0, condition_scale)


GATED_CASES = {
    "binary-k5-first": dict(image_shape=(5, 4, 1), recurrent_length=2, first_kernel_size=5),
    "binary-no-residual": dict(image_shape=(4, 4, 1), recurrent_length=0),
    "rgb4-k5": dict(image_shape=(3, 4, 3), levels=4, kernel_size=5),
    "rgb256": dict(image_shape=(3, 3, 3), levels=256),
}


@pytest.fixture(scope="module", params=sorted(GATED_CASES))
def gated_case(request):
    config = dict(GATED_CASES[request.param])
    return _gated(config.pop("image_shape"), **config)


def test_gated_cached_logits_equal_full_network_logits(gated_case):
    model = gated_case
    assert pm.sampling.supports_cached(model)
    images = random_images(model, 3, seed=1, dtype=np.uint8).astype(np.float32)
    full = model(images).numpy()
    cached = pm.sampling.cached_logits(model, images)
    assert cached.shape == full.shape
    np.testing.assert_allclose(cached, full, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gated_cached_samples_equal_reference_samples(gated_case, seed):
    model = gated_case
    reference = pm.sample(model, 6, seed=seed, batch_size=4, method="reference")
    cached = pm.sample(model, 6, seed=seed, batch_size=4, method="cached")
    np.testing.assert_array_equal(cached, reference)
    assert len({image.tobytes() for image in cached}) > 1
    np.testing.assert_array_equal(pm.sample(model, 6, seed=seed, batch_size=4), cached)  # auto


def test_gated_cached_completion_matches_reference():
    model = _gated((3, 4, 3), levels=4, seed=2)
    images = random_images(model, 5, seed=3, dtype=np.uint8)
    known = np.random.default_rng(4).uniform(size=images.shape) < 0.5
    cached = pm.complete(model, images, known, seed=4, method="cached")
    np.testing.assert_array_equal(cached[known], images[known])
    np.testing.assert_array_equal(
        cached, pm.complete(model, images, known, seed=4, method="reference")
    )


@pytest.fixture(scope="module", params=["gated_pixel_cnn", "pixel_cnn"])
def class_model(request):
    if request.param == "gated_pixel_cnn":
        return _gated((4, 4, 1), num_classes=3, condition_scale=3.0, seed=3)
    # Every layer of the PixelCNN adds the conditioning bias: smaller weights.
    return _model((4, 4, 1), num_classes=3, condition_scale=1.0, seed=3)


def test_conditional_cached_logits_equal_full_network_logits(class_model):
    images = random_images(class_model, 3, seed=5, dtype=np.uint8).astype(np.float32)
    labels = np.array([0, 2, 1], np.int32)
    full = class_model([images, labels]).numpy()
    np.testing.assert_allclose(
        pm.sampling.cached_logits(class_model, images, condition=labels),
        full,
        rtol=1e-5,
        atol=1e-4,
    )
    # The labels matter.
    assert not np.allclose(class_model([images, labels[::-1]]).numpy(), full, atol=1e-3)


@pytest.mark.parametrize("label", [0, 2])
def test_class_conditional_cached_samples_equal_reference(class_model, label):
    assert pm.sampling.supports_cached(class_model)
    labels = np.full(6, label)
    for seed in (0, 1):
        cached = pm.sample(class_model, 6, seed=seed, batch_size=4, condition=labels)
        reference = pm.sample(
            class_model, 6, seed=seed, batch_size=4, method="reference", condition=labels
        )
        np.testing.assert_array_equal(cached, reference)
    # One label broadcasts to every image.
    np.testing.assert_array_equal(
        pm.sample(class_model, 6, seed=1, batch_size=4, condition=label), cached
    )


def test_class_conditional_samples_differ_between_classes(class_model):
    n = 200
    by_class = [pm.sample(class_model, n, seed=0, condition=label) for label in range(3)]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not np.array_equal(by_class[a], by_class[b])
    # Mixed labels in one batch give each image its own class's sample.
    mixed = pm.sample(class_model, n, seed=0, condition=np.arange(n) % 3)
    for label in range(3):
        assert np.mean(mixed[label::3]) == pytest.approx(np.mean(by_class[label]), abs=0.1)
    # The classes' pixel means differ (the conditioning weights are large).
    means = [images.mean(axis=0) for images in by_class]
    assert max(np.abs(means[a] - means[b]).max() for a, b in [(0, 1), (0, 2), (1, 2)]) > 0.3


@pytest.mark.parametrize("build", [_gated, _model], ids=["gated_pixel_cnn", "pixel_cnn"])
def test_latent_and_class_conditional_cached_samples_equal_reference(build):
    model = build((3, 3, 1), num_classes=2, latent_dims=3, seed=4)
    assert pm.sampling.supports_cached(model)
    codes = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    condition = (np.array([0, 1, 1, 0, 1]), codes)
    cached = pm.sample(model, 5, seed=2, condition=condition)
    np.testing.assert_array_equal(
        cached, pm.sample(model, 5, seed=2, condition=condition, method="reference")
    )
    images = random_images(model, 5, seed=6, dtype=np.uint8)
    known = np.zeros(images.shape, bool)
    known[:, 0] = True
    completed = pm.complete(model, images, known, seed=3, condition=condition)
    np.testing.assert_array_equal(completed[:, 0], images[:, 0])
    np.testing.assert_array_equal(
        completed,
        pm.complete(model, images, known, seed=3, condition=condition, method="reference"),
    )


def test_condition_errors(class_model, binary_model):
    with pytest.raises(ValueError, match="is conditional: pass condition="):
        pm.sample(class_model, 2)
    with pytest.raises(ValueError, match="is conditional: pass condition="):
        pm.complete(class_model, np.zeros((2, 4, 4, 1)), False)
    with pytest.raises(ValueError, match="is unconditional"):
        pm.sample(binary_model, 2, condition=[0, 1])
    with pytest.raises(ValueError, match="must have shape \\(2,\\)"):
        pm.sample(class_model, 2, condition=[0, 1, 2])
    with pytest.raises(ValueError, match="must lie in \\[0, 2\\]"):
        pm.sample(class_model, 2, condition=[0, 3])
    with pytest.raises(ValueError, match="takes integers"):
        pm.sample(class_model, 2, condition=[0.5, 1])
    both = _gated((2, 2, 1), num_classes=2, latent_dims=3)
    with pytest.raises(ValueError, match="takes 2 conditions"):
        pm.sample(both, 2, condition=np.array([0, 1]))  # labels only
    with pytest.raises(ValueError, match="takes 2 conditions"):
        pm.sample(both, 2, condition=([0, 1], np.zeros((2, 3)), 0))
    # A list of two numbers is two labels, not a label and a code to broadcast.
    with pytest.raises(ValueError, match="takes 2 conditions: pass the tuple"):
        pm.sample(both, 2, condition=[0, 1])
    labels, codes = np.array([0, 1]), np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(
        pm.sample(both, 2, seed=4, condition=[labels, codes]),
        pm.sample(both, 2, seed=4, condition=(labels, codes)),
    )
    # Codes of a mixed-precision encoder come as bfloat16, which numpy does
    # not count as a number.
    np.testing.assert_array_equal(
        pm.sample(both, 2, seed=4, condition=(labels, codes.astype(tf.bfloat16.as_numpy_dtype))),
        pm.sample(both, 2, seed=4, condition=(labels, codes)),
    )
    for wrong in (np.array(["a", "b"]), np.array([True, False])):
        with pytest.raises(ValueError, match="must be numeric, got"):
            pm.sample(class_model, 2, condition=wrong)
    for code in (np.nan, np.inf, -np.inf):  # a code that would draw blank images
        with pytest.raises(ValueError, match="must be finite, got NaN or infinity"):
            pm.sample(both, 2, condition=(labels, np.full((2, 3), code)))


def test_spatial_condition_falls_back_to_reference():
    images = keras.Input((3, 3, 1))
    spatial = keras.Input((3, 3, 2))
    x = keras.layers.Rescaling(2.0, offset=-1.0)(images)
    _, h, _ = GatedBlock(2, 3, mask_type="A", name="gated")((x, x), spatial_condition=spatial)
    logits = MaskedConv2D(1, 1, name="logits")(h)
    model = keras.Model([images, spatial], pm.PixelHead("bernoulli", 1, 2)(logits))
    assert not pm.sampling.supports_cached(model)
    with pytest.raises(ValueError, match="'gated' \\(GatedBlock\\) .* spatial_condition"):
        pm.sample(model, 2, method="cached", condition=np.ones((2, 3, 3, 2)))
    maps = np.random.default_rng(0).normal(size=(2, 3, 3, 2))
    assert pm.sample(model, 2, seed=0, condition=maps).shape == (2, 3, 3, 1)


@pytest.mark.parametrize("axis, cached", [(-1, True), (1, False)])
def test_a_batch_norm_is_cached_only_along_the_features(axis, cached):
    images = keras.Input((3, 3, 1))
    h = MaskedConv2D(2, 3, mask_type="A")(images)
    h = keras.layers.BatchNormalization(axis=axis)(h)
    model = keras.Model(images, pm.PixelHead("bernoulli", 1, 2)(MaskedConv2D(1, 1)(h)))
    assert pm.sampling.supports_cached(model) == cached
    drawn = pm.sample(model, 4, seed=1)  # "auto": the reference loop where not cached
    np.testing.assert_array_equal(drawn, pm.sample(model, 4, seed=1, method="reference"))


def test_region_analysis_flag_is_added_once_and_leaves_the_users_choice():
    flag = loops.REGION_ANALYSIS_FLAG
    environ: dict = {}
    assert loops.prefer_in_place_buffers(environ, "2.21.0")
    assert environ["XLA_FLAGS"] == f"{flag}=true"
    assert loops.prefer_in_place_buffers(environ, "2.21.0")
    assert environ["XLA_FLAGS"] == f"{flag}=true"  # not added twice
    environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/dump"}
    assert loops.prefer_in_place_buffers(environ, "2.21.1")
    assert environ["XLA_FLAGS"] == f"--xla_dump_to=/tmp/dump {flag}=true"
    environ = {"XLA_FLAGS": f"{flag}=false"}
    assert not loops.prefer_in_place_buffers(environ, "2.21.0")
    assert environ["XLA_FLAGS"] == f"{flag}=false"
    environ = {}
    assert not loops.prefer_in_place_buffers(environ, "2.20.0")  # not checked there
    assert "XLA_FLAGS" not in environ


def _copies_in_loop_bodies(hlo: str) -> list[str]:
    """The array copies in the while-loop bodies of an optimised HLO module."""
    computation, copies = "", []
    for line in hlo.splitlines():
        if not line.startswith(" ") and line.rstrip().endswith("{"):
            computation = line
        elif "while_body" in computation and " copy(" in line and re.search(r"= \w+\[\d", line):
            copies.append(line.strip())
    return copies


@pytest.mark.skipif(
    not loops.IN_PLACE_BUFFERS,
    reason="XLA's region analysis is not enabled for this TensorFlow version",
)
def test_cached_loop_updates_its_buffers_in_place():
    """Every buffer of the cached loop (per resolution, of both streams) is
    updated in place: no copy of an array at any step of the compiled loops."""
    model = pm.build_model(
        "pixel_cnn_pp",
        image_shape=(8, 8, 3),
        levels=256,
        hidden_dims=8,
        num_resnet=1,
        num_resolutions=2,
        num_mixtures=3,
    )
    run = loops.cached_loop(model, pm.distribution_of(model), collect_logits=False)
    images = tf.zeros((4, 8, 8, 3))
    known = tf.zeros((4, 8, 8, 3), tf.bool)
    hlo = run.experimental_get_compiler_ir(images, known, tf.constant([0, 0]), ())(
        stage="optimized_hlo"
    )
    assert "while_body" in hlo
    assert _copies_in_loop_bodies(hlo) == []
