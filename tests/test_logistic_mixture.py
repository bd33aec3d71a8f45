"""Tests for the discretized logistic mixture head (PixelCNN++)."""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixel_models.distributions import LogisticMixture, PixelHead, make_distribution


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _direct_pixel_probability(params, pixel, channels, levels, mixtures):
    """p(pixel) from the mixture's definition, in float64, term by term."""
    k = mixtures
    logits = params[:k]
    pi = np.exp(logits - logits.max())
    pi /= pi.sum()
    rest = params[k:].reshape(-1, k)
    mu, log_s, alpha = rest[:channels], rest[channels : 2 * channels], np.tanh(rest[2 * channels :])
    log_s = np.maximum(log_s, -7.0)
    y = 2.0 * np.asarray(pixel, np.float64) / (levels - 1) - 1.0
    half = 1.0 / (levels - 1)
    total = 0.0
    for comp in range(k):
        prob = pi[comp]
        for c in range(channels):
            mean = mu[c, comp]
            for d in range(c):
                mean += alpha[c * (c - 1) // 2 + d, comp] * y[d]
            s = np.exp(log_s[c, comp])
            hi = 1.0 if pixel[c] == levels - 1 else _sigmoid((y[c] + half - mean) / s)
            lo = 0.0 if pixel[c] == 0 else _sigmoid((y[c] - half - mean) / s)
            prob *= hi - lo
        total += prob
    return total


def _all_pixels(channels, levels):
    return np.array(list(itertools.product(range(levels), repeat=channels)), np.float32)


@pytest.mark.parametrize(
    "channels, levels, mixtures", [(1, 2, 1), (1, 5, 3), (3, 2, 2), (3, 4, 3), (2, 7, 2)]
)
def test_probabilities_of_every_pixel_sum_to_one_and_match_numpy(channels, levels, mixtures):
    mixture = LogisticMixture(channels, levels, mixtures)
    params = np.random.default_rng(levels).normal(scale=1.5, size=mixture.logit_shape)
    pixels = _all_pixels(channels, levels)
    logits = np.repeat(params[None].astype(np.float32), len(pixels), axis=0)
    log_p = mixture.log_prob(logits[:, None, None], pixels[:, None, None]).numpy()
    expected = [_direct_pixel_probability(params, p, channels, levels, mixtures) for p in pixels]
    np.testing.assert_allclose(np.exp(log_p), expected, rtol=1e-4, atol=1e-7)
    assert np.exp(log_p.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-5)


def test_per_dimension_terms_are_the_chain_rule_conditionals():
    """log p(x_c | x_<c) sums to 1 over x_c for every earlier x_<c."""
    channels, levels = 3, 3
    mixture = LogisticMixture(channels, levels, 2)
    params = np.random.default_rng(0).normal(size=mixture.logit_shape).astype(np.float32)
    pixels = _all_pixels(channels, levels)
    logits = np.repeat(params[None], len(pixels), axis=0)[:, None, None]
    per_dim = np.exp(mixture.log_prob_per_dim(logits, pixels[:, None, None]).numpy()[:, 0, 0])
    for c in range(channels):
        for before in itertools.product(range(levels), repeat=c):
            rows = np.all(pixels[:, :c] == before, axis=1) & np.all(pixels[:, c + 1 :] == 0, axis=1)
            assert per_dim[rows, c].sum() == pytest.approx(1.0, abs=1e-5)


def test_joint_log_prob_equals_the_sum_of_the_chain_rule_terms():
    """log_prob's one log-sum-exp per pixel is the telescoped sum of the
    per-channel conditionals, in value and in gradient."""
    mixture = LogisticMixture(3, 256, 4)
    rng = np.random.default_rng(7)
    params = tf.constant(rng.normal(scale=2.0, size=(2, 3, 4, 40)), tf.float32)
    images = tf.constant(rng.integers(0, 256, size=(2, 3, 4, 3)), tf.int32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(params)
        joint = mixture.log_prob(params, images)
        chained = tf.reduce_sum(mixture.log_prob_per_dim(params, images), axis=[1, 2, 3])
    np.testing.assert_allclose(joint.numpy(), chained.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        tape.gradient(joint, params).numpy(),
        tape.gradient(chained, params).numpy(),
        rtol=1e-3,
        atol=1e-5,
    )


def test_256_levels_sum_to_one_per_channel_and_extremes_are_finite():
    mixture = LogisticMixture(1, 256, 2)
    values = np.arange(256, dtype=np.float32).reshape(256, 1, 1, 1)
    for scale in (-7.0, 0.0, 6.0):  # sharp, unit and very wide logistics
        params = np.array([0.3, -0.2, -0.9, 0.95, scale, scale], np.float32)
        logits = np.repeat(params[None, None, None], 256, axis=0)
        log_p = mixture.log_prob(logits, values).numpy()
        assert np.isfinite(log_p).all()
        assert np.exp(log_p.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-4)
    # Means far outside [-1, 1] and tiny scales: every value still has a finite log-probability.
    params = np.array([0.0, 0.0, 30.0, -30.0, -20.0, -20.0], np.float32)
    log_p = mixture.log_prob(np.repeat(params[None, None, None], 256, axis=0), values).numpy()
    assert np.isfinite(log_p).all()
    np.testing.assert_allclose(np.exp(log_p[[0, 255]]), [0.5, 0.5], rtol=1e-5)


def test_gradients_are_finite_at_extreme_parameters():
    mixture = LogisticMixture(3, 256, 2)
    params = tf.constant(
        np.random.default_rng(1).normal(scale=20.0, size=(4, 1, 1, 20)), tf.float32
    )
    images = tf.constant([[[[0, 255, 17]]], [[[255, 0, 128]]], [[[1, 254, 0]]], [[[3, 3, 3]]]])
    with tf.GradientTape() as tape:
        tape.watch(params)
        loss = tf.reduce_sum(mixture.nll(params, images))
    assert np.isfinite(loss.numpy())
    assert np.isfinite(tape.gradient(loss, params).numpy()).all()


def test_sampling_frequencies_match_probabilities():
    channels, levels = 3, 2
    mixture = LogisticMixture(channels, levels, 2)
    params = np.random.default_rng(3).normal(scale=1.5, size=mixture.logit_shape).astype("float32")
    n = 20000
    draws = mixture.sample(np.repeat(params[None], n, axis=0), seed=[4, 5]).numpy()
    assert draws.shape == (n, channels) and draws.dtype == np.int32
    pixels = _all_pixels(channels, levels)
    codes = draws @ (levels ** np.arange(channels)[::-1])
    frequencies = np.bincount(codes, minlength=len(pixels)) / n
    expected = [_direct_pixel_probability(params, p, channels, levels, 2) for p in pixels]
    np.testing.assert_allclose(frequencies, expected, atol=0.015)


def test_channel_draws_follow_the_conditional_given_earlier_channels():
    """With R given, G is drawn from p(G | R) (the component's posterior given R)."""
    mixture = LogisticMixture(2, 3, 2)
    params = np.random.default_rng(6).normal(scale=2.0, size=mixture.logit_shape).astype("float32")
    n = 20000
    logits = tf.constant(np.repeat(params[None], n, axis=0))
    pixel = tf.constant(np.tile([[2.0, 0.0]], (n, 1)), tf.float32)
    drawn = mixture.sample_channel(logits, pixel, 1, tf.constant([7, 8])).numpy()
    joint = [_direct_pixel_probability(params, (2, g), 2, 3, 2) for g in range(3)]
    expected = np.array(joint) / sum(joint)
    np.testing.assert_allclose(np.bincount(drawn, minlength=3) / n, expected, atol=0.015)


def test_sampling_is_seeded_and_temperature_sharpens():
    mixture = LogisticMixture(1, 256, 3)
    params = np.random.default_rng(2).normal(size=(500, 9)).astype("float32")
    params[:, 6:] = -1.0  # log-scales
    a = mixture.sample(params, seed=[1, 2]).numpy()
    b = mixture.sample(params, seed=[1, 2]).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, mixture.sample(params, seed=[1, 3]).numpy())
    assert a.min() >= 0 and a.max() <= 255
    cold = mixture.with_temperature(0.05).sample(params, seed=[1, 2]).numpy()
    warm = mixture.with_temperature(1.0).sample(params, seed=[1, 2]).numpy()
    # Near zero temperature a draw sits at the mean of one component.
    means = np.round((params[:, 3:6] + 1.0) * 127.5).clip(0, 255)
    distance = np.abs(cold - means).min(axis=1)
    assert np.median(distance) <= 2
    assert np.median(np.abs(warm - means).min(axis=1)) > np.median(distance)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_mixtures"):
        LogisticMixture(3, 256, 0)
    with pytest.raises(ValueError, match="levels"):
        LogisticMixture(3, 1, 2)
    with pytest.raises(ValueError, match="needs num_mixtures"):
        make_distribution("logistic_mixture", 3, 256)
    with pytest.raises(ValueError, match="logistic_mixture heads only"):
        make_distribution("categorical", 3, 256, num_mixtures=4)
    with pytest.raises(ValueError, match="temperature"):
        make_distribution("bernoulli", 1, 2).with_temperature(0.5)


def test_head_shapes_declares_joint_channels_and_round_trips():
    head = PixelHead("logistic_mixture", channels=3, levels=16, num_mixtures=4, name="head")
    assert head.features == 40 and head.distribution.joint_channels
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 40)).astype("float32")
    np.testing.assert_array_equal(np.asarray(head(x)), x)
    clone = PixelHead.from_config(head.get_config())
    assert clone.distribution.num_mixtures == 4 and clone.kind == "logistic_mixture"
    assert repr(clone.distribution) == "LogisticMixture(channels=3, levels=16, num_mixtures=4)"
    assert head.compute_output_shape((None, 3, 3, 40)) == (None, 3, 3, 40)
    assert not PixelHead("categorical", channels=3, levels=4).distribution.joint_channels
    assert math.isclose(keras.ops.convert_to_numpy(head(x)).sum(), x.sum(), rel_tol=1e-6)
