"""Tests for the cached sampler of the PixelRNN models (Row LSTM, Diagonal BiLSTM)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import pixel_models as pm
from pixel_models.layers import DiagonalLSTM, MaskedConv2D, RowLSTM
from pixel_models.models import pixel_rnn
from pixel_models.testing import random_images
from pixel_models.testing import sharpen_every_weight as _sharpen


def _rnn(image_shape, levels=2, rnn_type="row_lstm", seed=0, **kwargs):
    """A tiny PixelRNN with sharpened kernels and random biases, so that its
    logits (and samples) depend strongly on the pixels before them."""
    keras.utils.set_random_seed(seed)
    config = dict(
        hidden_dims=6,
        recurrent_length=2,
        out_hidden_dims=6,
        out_recurrent_length=1,
        first_kernel_size=3,
        rnn_type=rnn_type,
    )
    config.update(kwargs)
    model = pixel_rnn(image_shape, levels=levels, **config)
    _sharpen(model, seed)
    return model


# Each Row LSTM and Diagonal BiLSTM, binary and RGB, with and without
# residual connections, one and two LSTM layers (every model costs three
# compiled loops: teacher-forced cached logits, cached and reference sampling).
CASES = {
    "row_lstm-binary": dict(image_shape=(5, 4, 1), rnn_type="row_lstm", recurrent_length=2),
    "row_lstm-rgb4-residual": dict(
        image_shape=(4, 4, 3), levels=4, rnn_type="row_lstm", use_residual=True
    ),
    "diagonal_bilstm-binary-residual": dict(
        image_shape=(4, 5, 1), rnn_type="diagonal_bilstm", use_residual=True, recurrent_length=2
    ),
    "diagonal_bilstm-rgb256": dict(image_shape=(4, 4, 3), levels=256, rnn_type="diagonal_bilstm"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def rnn_case(request):
    config = dict(CASES[request.param])
    return _rnn(config.pop("image_shape"), seed=len(request.param), **config)


def test_cached_logits_equal_full_network_logits(rnn_case):
    model = rnn_case
    assert pm.sampling.supports_cached(model)
    for seed in (1, 2):
        images = random_images(model, 3, seed=seed)
        full = model(images).numpy()
        cached = pm.sampling.cached_logits(model, images)
        assert cached.shape == full.shape
        np.testing.assert_allclose(cached, full, rtol=1e-5, atol=1e-4)


def test_cached_samples_equal_reference_samples(rnn_case):
    model = rnn_case
    for seed in (0, 1, 2):
        reference = pm.sample(model, 5, seed=seed, batch_size=5, method="reference")
        cached = pm.sample(model, 5, seed=seed, batch_size=5, method="cached")
        np.testing.assert_array_equal(cached, reference)
        assert len({image.tobytes() for image in cached}) > 1
        # "auto" picks the cached path.
        np.testing.assert_array_equal(pm.sample(model, 5, seed=seed, batch_size=5), cached)


def test_cached_completion_matches_reference(rnn_case):
    model = rnn_case
    images = random_images(model, 5, seed=5).astype(np.uint8)
    known = np.random.default_rng(6).uniform(size=images.shape) < 0.5
    cached = pm.complete(model, images, known, seed=7, batch_size=5, method="cached")
    np.testing.assert_array_equal(cached[known], images[known])
    reference = pm.complete(model, images, known, seed=7, batch_size=5, method="reference")
    np.testing.assert_array_equal(cached, reference)


def test_cached_logits_of_single_direction_lstm_layers():
    """A Row LSTM with a learned state above the first row (set far from zero)
    and k = 5, then a one-direction Diagonal LSTM, in a hand-built model."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4, 5, 1))
    x = keras.layers.Rescaling(2.0, offset=-1.0)(inputs)
    x = MaskedConv2D(4, 3, mask_type="A", name="conv_a")(x)
    x = RowLSTM(4, kernel_size=5, learn_initial_state=True, name="row")(x)
    x = DiagonalLSTM(4, name="diagonal")(x)
    model = keras.Model(inputs, pm.PixelHead("bernoulli", 1, 2)(MaskedConv2D(1, 1)(x)))
    _sharpen(model, 0)
    row = model.get_layer("row")
    rng = np.random.default_rng(2)
    row.initial_h.assign(rng.normal(size=row.initial_h.shape).astype(np.float32))
    row.initial_c.assign(rng.normal(size=row.initial_c.shape).astype(np.float32))
    assert pm.sampling.supports_cached(model)
    images = random_images(model, 3)
    np.testing.assert_allclose(
        pm.sampling.cached_logits(model, images), model(images).numpy(), rtol=1e-5, atol=1e-4
    )


def test_lstm_with_an_image_dependent_condition_falls_back_to_reference():
    inputs = keras.Input((3, 3, 1))
    x = MaskedConv2D(2, 3, mask_type="A", name="conv_a")(inputs)
    condition = MaskedConv2D(8, 1, name="condition")(x)
    x = RowLSTM(2, name="lstm")(x, condition=condition)
    model = keras.Model(inputs, pm.PixelHead("bernoulli", 1, 2)(MaskedConv2D(1, 1)(x)))
    assert not pm.sampling.supports_cached(model)
    with pytest.raises(ValueError, match="'lstm' \\(RowLSTM\\) has no position-wise form"):
        pm.sample(model, 2, method="cached")


# Multi-Scale PixelRNN: its second stage reads the small image, which is
# given in full, through an unmasked upsampling network that biases every
# LSTM layer; the cached sampler computes that bias once, before the loop.
MULTISCALE_CASES = {
    "row_lstm-binary": dict(image_shape=(4, 4, 1), rnn_type="row_lstm"),
    "diagonal_bilstm-rgb4-residual": dict(
        image_shape=(4, 4, 3), levels=4, rnn_type="diagonal_bilstm", use_residual=True
    ),
}


@pytest.fixture(scope="module", params=sorted(MULTISCALE_CASES))
def multiscale_case(request):
    keras.utils.set_random_seed(3)
    model = pm.build_model(
        "multiscale_pixel_rnn",
        small_image_size=2,
        hidden_dims=6,
        recurrent_length=2,
        out_hidden_dims=4,
        upsample_length=1,
        **MULTISCALE_CASES[request.param],
    )
    _sharpen(model, 3)
    return model


def test_multiscale_second_stage_cached_logits_equal_full_network_logits(multiscale_case):
    small, full, (sh, sw) = multiscale_case.multiscale_stages()
    assert pm.sampling.supports_cached(small) and pm.sampling.supports_cached(full)
    for seed in (1, 2):
        images = random_images(full, 3, seed=seed)
        reference = full(images).numpy()
        np.testing.assert_allclose(
            pm.sampling.cached_logits(full, images), reference, rtol=1e-5, atol=1e-4
        )
        # The small image matters: other grid pixels, other logits off the grid.
        other = images.copy()
        other[:, ::sh, ::sw] = random_images(small, 3, seed=seed + 10)
        changed = pm.sampling.cached_logits(full, other)
        assert np.abs(changed - reference).max() > 1e-2


def test_multiscale_cached_samples_and_completions_equal_reference(multiscale_case):
    model = multiscale_case
    reference = pm.sample(model, 4, seed=1, batch_size=4, method="reference")
    cached = pm.sample(model, 4, seed=1, batch_size=4, method="cached")
    np.testing.assert_array_equal(cached, reference)
    assert len({image.tobytes() for image in cached}) > 1
    np.testing.assert_array_equal(pm.sample(model, 4, seed=1, batch_size=4), cached)
    images = random_images(model.conditional_model, 4, seed=4).astype(np.uint8)
    known = np.random.default_rng(5).uniform(size=images.shape) < 0.5
    cached = pm.complete(model, images, known, seed=6, method="cached")
    np.testing.assert_array_equal(cached[known], images[known])
    reference = pm.complete(model, images, known, seed=6, method="reference")
    np.testing.assert_array_equal(cached, reference)


def test_second_stage_alone_needs_its_small_image_for_the_cached_sampler(multiscale_case):
    _, full, (sh, sw) = multiscale_case.multiscale_stages()
    images = random_images(full, 2, seed=7).astype(np.uint8)
    known = np.zeros(images.shape, bool)
    known[:, ::sh, ::sw] = True
    known[0, 0, 0, -1] = False  # one channel of one grid pixel unknown
    with pytest.raises(ValueError, match="pixels it reads before the loop .* are known"):
        pm.complete(full, images, known, seed=0, method="cached")
    # "auto" runs the reference loop instead.
    np.testing.assert_array_equal(
        pm.complete(full, images, known, seed=0),
        pm.complete(full, images, known, seed=0, method="reference"),
    )
