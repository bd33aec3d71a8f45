"""Tests for pixel_models.distributions: log-probabilities, sampling, the head, helpers."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixel_models.distributions import (
    Bernoulli,
    Categorical,
    LogisticMixture,
    PixelHead,
    bits_per_dim,
    default_kind,
    distribution_of,
    head_of,
    make_distribution,
)


def _log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


def _log_softmax(z):
    return z - np.logaddexp.reduce(z, axis=-1, keepdims=True)


def _seed(value):
    return tf.constant([value, 0], tf.int32)


# ---------------------------------------------------------------------------
# Log-probabilities
# ---------------------------------------------------------------------------


def test_bernoulli_log_prob_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(2, 3, 4, 2)).astype(np.float32)
    images = rng.integers(0, 2, size=(2, 3, 4, 2))
    expected = images * _log_sigmoid(logits) + (1 - images) * _log_sigmoid(-logits)
    dist = Bernoulli(channels=2)
    per_dim = dist.log_prob_per_dim(logits, images).numpy()
    np.testing.assert_allclose(per_dim, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        dist.log_prob(logits, images).numpy(), expected.sum(axis=(1, 2, 3)), rtol=1e-5
    )
    np.testing.assert_allclose(
        dist.nll(logits, images).numpy(), -expected.sum(axis=(1, 2, 3)), rtol=1e-5
    )
    assert dist.log_prob(logits, images).shape == (2,)


def test_bernoulli_log_prob_extreme_logits_are_finite():
    logits = np.array([[[[100.0, -100.0]]]], np.float32)
    per_dim = Bernoulli(2).log_prob_per_dim(logits, np.array([[[[0, 1]]]])).numpy()
    np.testing.assert_allclose(per_dim, [[[[-100.0, -100.0]]]], rtol=1e-5)
    per_dim = Bernoulli(2).log_prob_per_dim(logits, np.array([[[[1, 0]]]])).numpy()
    np.testing.assert_allclose(per_dim, 0.0, atol=1e-6)


def test_categorical_log_prob_matches_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=2.0, size=(2, 3, 2, 3, 5)).astype(np.float32)
    images = rng.integers(0, 5, size=(2, 3, 2, 3))
    expected = np.take_along_axis(_log_softmax(logits.astype(np.float64)), images[..., None], -1)
    expected = expected[..., 0]
    dist = Categorical(channels=3, levels=5)
    per_dim = dist.log_prob_per_dim(logits, images).numpy()
    assert per_dim.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(per_dim, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        dist.log_prob(logits, images).numpy(), expected.sum(axis=(1, 2, 3)), rtol=1e-5
    )
    # Images may come as float32 (the models' input form).
    np.testing.assert_allclose(
        dist.log_prob_per_dim(logits, images.astype(np.float32)).numpy(), per_dim
    )


@pytest.mark.parametrize(
    "dist, shape",
    [(Bernoulli(2), (2, 3, 3, 2)), (Categorical(2, 4), None)],
    ids=["bernoulli", "categorical"],
)
def test_probabilities_of_all_values_sum_to_one_per_dimension(dist, shape):
    rng = np.random.default_rng(2)
    if shape is None:
        shape = (2, 3, 3, 2, dist.levels)
    logits = rng.normal(scale=3.0, size=shape).astype(np.float32)
    image_shape = (2, 3, 3, 2)
    total = sum(
        np.exp(dist.log_prob_per_dim(logits, np.full(image_shape, v)).numpy())
        for v in range(dist.levels)
    )
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_categorical_log_prob_ignores_temperature():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(1, 2, 2, 1, 4)).astype(np.float32)
    images = rng.integers(0, 4, size=(1, 2, 2, 1))
    hot = Categorical(1, 4, temperature=5.0).log_prob(logits, images).numpy()
    plain = Categorical(1, 4).log_prob(logits, images).numpy()
    np.testing.assert_allclose(hot, plain, rtol=1e-6)


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dist, logits_shape",
    [(Bernoulli(1), (4, 5, 5, 1)), (Categorical(3, 7), (4, 5, 5, 3, 7))],
    ids=["bernoulli", "categorical"],
)
def test_sample_shape_dtype_range_and_seeding(dist, logits_shape):
    logits = np.zeros(logits_shape, np.float32)
    a = dist.sample(logits, _seed(1)).numpy()
    b = dist.sample(logits, _seed(1)).numpy()
    c = dist.sample(logits, _seed(2)).numpy()
    assert a.shape == (4, 5, 5, logits_shape[3])
    assert a.dtype == np.int32
    assert a.min() >= 0 and a.max() < dist.levels
    # With uniform logits every value turns up.
    assert set(np.unique(a).tolist()) == set(range(dist.levels))
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.2


def test_bernoulli_sample_follows_extreme_logits():
    logits = np.array([[20.0, -20.0, 20.0], [-20.0, -20.0, 20.0]], np.float32)
    logits = np.tile(logits, (100, 1))
    draws = Bernoulli(1).sample(logits, _seed(3)).numpy()
    np.testing.assert_array_equal(draws, (logits > 0).astype(np.int32))


def _assert_frequencies(draws, probs, sigmas=4.0):
    n = draws.shape[0]
    for value, p in enumerate(probs):
        count = np.sum(draws == value)
        sd = math.sqrt(n * p * (1 - p))
        assert abs(count - n * p) <= sigmas * sd + 1, (value, count, n * p)


def test_bernoulli_sample_frequency_matches_sigmoid():
    n = 20000
    for logit in (-1.5, 0.0, 0.7):
        draws = Bernoulli(1).sample(np.full((n,), logit, np.float32), _seed(4)).numpy()
        p = 1 / (1 + math.exp(-logit))
        _assert_frequencies(draws, [1 - p, p])


def test_categorical_sample_frequencies_match_softmax():
    n = 20000
    logits = np.array([0.0, 1.0, -1.0, 2.0, 0.5], np.float32)
    probs = np.exp(_log_softmax(logits.astype(np.float64)))
    draws = Categorical(1, 5).sample(np.tile(logits, (n, 1)), _seed(5)).numpy()
    assert draws.shape == (n,)
    _assert_frequencies(draws, probs)


def test_categorical_low_temperature_picks_the_argmax():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(50, 3, 6)).astype(np.float32)
    dist = Categorical(3, 6, temperature=1e-4)
    for seed in (0, 1, 2):
        draws = dist.sample(logits, _seed(seed)).numpy()
        np.testing.assert_array_equal(draws, logits.argmax(-1))
    # At temperature 1 the same logits do not always give the argmax.
    plain = Categorical(3, 6).sample(logits, _seed(0)).numpy()
    assert np.any(plain != logits.argmax(-1))


def test_categorical_high_temperature_flattens_the_distribution():
    n = 20000
    logits = np.tile(np.array([0.0, 3.0, -3.0, 1.0], np.float32), (n, 1))
    draws = Categorical(1, 4, temperature=1000.0).sample(logits, _seed(7)).numpy()
    _assert_frequencies(draws, [0.25] * 4)


OUTSIDE_THE_SUPPORT = {"255": 255.0, "minus_1": -1.0, "half": 0.5, "nan": np.nan}
HEADS = {
    "bernoulli": (Bernoulli(1), (1, 2, 2, 1)),
    "categorical": (Categorical(1, levels=4), (1, 2, 2, 1, 4)),
    "mixture": (LogisticMixture(1, levels=4, num_mixtures=2), (1, 2, 2, 6)),
}


@pytest.mark.parametrize("value", OUTSIDE_THE_SUPPORT.values(), ids=OUTSIDE_THE_SUPPORT)
@pytest.mark.parametrize("head", HEADS, ids=HEADS)
def test_log_probabilities_refuse_values_outside_the_support(head, value):
    distribution, logits_shape = HEADS[head]
    logits = np.zeros(logits_shape, np.float32)
    images = np.zeros((1, 2, 2, 1), np.float32)
    assert np.all(np.isfinite(distribution.log_prob(logits, images)))
    images[0, 1, 0, 0] = value
    allowed = f"images must hold integers in \\[0, {distribution.levels - 1}\\]"
    with pytest.raises(ValueError, match=allowed + ".*got 1 other values"):
        distribution.log_prob(logits, images)
    with pytest.raises(ValueError, match=allowed):
        distribution.log_prob_per_dim(logits, images)
    with pytest.raises(ValueError, match=allowed):
        distribution.nll(logits, images.astype(np.float64))

    @tf.function
    def in_a_graph(x):
        return distribution.nll(logits, x)

    with pytest.raises(tf.errors.InvalidArgumentError, match=allowed):
        in_a_graph(tf.constant(images))


def test_log_probabilities_take_integer_images_of_any_dtype():
    logits = np.zeros((1, 2, 2, 1), np.float32)
    for dtype in (np.uint8, np.int32, np.int64, np.float16):
        nll = Bernoulli(1).nll(logits, np.ones((1, 2, 2, 1), dtype))
        np.testing.assert_allclose(nll, [4 * math.log(2)], rtol=1e-6)
    with pytest.raises(TypeError, match="images must be numbers, got dtype string"):
        Bernoulli(1).nll(logits, np.full((1, 2, 2, 1), "1"))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Bernoulli(1, levels=3),
        lambda: Bernoulli(1, levels=256),
        lambda: Categorical(1, levels=1),
        lambda: Categorical(1, levels=0),
        lambda: Categorical(1, levels=4, temperature=0.0),
        lambda: Categorical(1, levels=4, temperature=-1.0),
        lambda: make_distribution("gaussian", 1, 2),
    ],
)
def test_invalid_distribution_arguments_raise(make):
    with pytest.raises(ValueError):
        make()


def test_make_distribution_and_default_kind():
    assert default_kind(2) == "bernoulli"
    assert default_kind(4) == "categorical"
    assert default_kind(256) == "categorical"
    dist = make_distribution("categorical", 3, 256)
    assert isinstance(dist, Categorical)
    assert (dist.channels, dist.levels, dist.kind) == (3, 256, "categorical")
    dist = make_distribution("bernoulli", 1, 2)
    assert isinstance(dist, Bernoulli)
    assert (dist.channels, dist.levels, dist.kind) == (1, 2, "bernoulli")
    assert repr(dist) == "Bernoulli(channels=1, levels=2)"


# ---------------------------------------------------------------------------
# PixelHead, head_of, distribution_of
# ---------------------------------------------------------------------------


def test_bernoulli_head_passes_logits_through():
    head = PixelHead("bernoulli", channels=3, levels=2)
    x = np.random.default_rng(8).normal(size=(2, 4, 4, 3)).astype(np.float32)
    out = head(x)
    assert head.features == 3
    assert out.shape == (2, 4, 4, 3)
    assert out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), x)
    assert head.compute_output_shape((None, 4, 4, 3)) == (None, 4, 4, 3)
    assert isinstance(head.distribution, Bernoulli)


def test_categorical_head_reshapes_contiguous_channel_blocks():
    head = PixelHead("categorical", channels=3, levels=4)
    x = np.arange(2 * 2 * 3 * 12, dtype=np.float32).reshape(2, 2, 3, 12)
    out = head(x).numpy()
    assert head.features == 12
    assert out.shape == (2, 2, 3, 3, 4)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c, :], x[..., 4 * c : 4 * (c + 1)])
    assert head.compute_output_shape((None, 2, 3, 12)) == (None, 2, 3, 3, 4)
    assert isinstance(head.distribution, Categorical)
    assert head.distribution.levels == 4


def test_head_casts_logits_to_float32():
    head = PixelHead("categorical", channels=1, levels=3)
    out = head(tf.ones((1, 2, 2, 3), tf.float16))
    assert out.dtype == tf.float32


@pytest.mark.parametrize("kind, channels, levels", [("bernoulli", 1, 2), ("categorical", 3, 256)])
def test_head_get_config_round_trip(kind, channels, levels):
    head = PixelHead(kind, channels, levels, name="head")
    config = head.get_config()
    assert (config["kind"], config["channels"], config["levels"]) == (kind, channels, levels)
    clone = PixelHead.from_config(config)
    assert (clone.kind, clone.channels, clone.levels) == (kind, channels, levels)
    assert clone.name == "head"
    assert type(clone.distribution) is type(head.distribution)
    x = np.random.default_rng(9).normal(size=(1, 2, 2, head.features)).astype(np.float32)
    np.testing.assert_array_equal(clone(x).numpy(), head(x).numpy())
    generic = keras.layers.deserialize(keras.layers.serialize(head))
    assert isinstance(generic, PixelHead)
    assert generic.get_config() == config


@pytest.mark.parametrize("kind, levels", [("gaussian", 2), ("bernoulli", 4), ("categorical", 1)])
def test_head_bad_arguments_raise(kind, levels):
    with pytest.raises(ValueError):
        PixelHead(kind, 1, levels)


def test_head_of_and_distribution_of_find_the_head():
    inputs = keras.Input((3, 3, 2))
    x = keras.layers.Dense(8)(inputs)
    head = PixelHead("categorical", channels=2, levels=4, name="my_head")
    model = keras.Model(inputs, head(x))
    assert head_of(model) is head
    assert distribution_of(model) is head.distribution
    assert model.output_shape == (None, 3, 3, 2, 4)


def test_head_of_a_model_without_head_raises():
    inputs = keras.Input((3, 3, 1))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs), name="headless")
    with pytest.raises(ValueError, match="headless"):
        head_of(model)
    with pytest.raises(ValueError):
        distribution_of(model)


# ---------------------------------------------------------------------------
# bits_per_dim
# ---------------------------------------------------------------------------


def test_bits_per_dim_arithmetic():
    assert bits_per_dim(64 * math.log(2.0), 64) == pytest.approx(1.0)
    assert bits_per_dim(0.0, 10) == 0.0
    assert bits_per_dim(100.0, 10) == pytest.approx(100.0 / (10 * math.log(2.0)))
    # 8-bit uniform: log(256) nats per dimension is 8 bits.
    assert bits_per_dim(3 * 32 * 32 * math.log(256.0), 3 * 32 * 32) == pytest.approx(8.0)
    nll = tf.constant([math.log(2.0) * 12, math.log(2.0) * 6])
    np.testing.assert_allclose(bits_per_dim(nll, 12).numpy(), [1.0, 0.5], rtol=1e-6)
