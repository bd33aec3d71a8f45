"""Tests of the PixelCNN autoencoder: causal decoder for every code, exact
normalisation given a code, invariant encoder, serialization, reconstruction
and learning."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import pixel_models as pm
from pixel_models import data, training
from pixel_models.layers.invariant import group_table, transform_images
from pixel_models.models import autoencoder
from pixel_models.testing import (
    assert_causal,
    random_images,
    round_trips,
    sharpen,
    total_probability,
)


def _sharpen(model, seed=0):
    """Large decoder weights and random biases: p(x | z) far from uniform."""
    return sharpen(model, seed, condition_scale=2.0)


def _small(image_shape, levels=2, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    config = dict(
        latent_dims=3,
        encoder_dims=4,
        hidden_dims=6,
        recurrent_length=2,
        out_hidden_dims=6,
        out_recurrent_length=1,
        kernel_size=3,
        first_kernel_size=3,
    )
    config.update(kwargs)
    return autoencoder(image_shape, levels=levels, **config)


# ---------------------------------------------------------------------------
# Causality and normalisation given a code
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image_shape, levels", [((5, 5, 1), 2), ((4, 4, 3), 4)], ids=["binary", "rgb4"]
)
def test_decoder_is_causal_for_every_code_with_no_blind_spot(image_shape, levels):
    model = _small(image_shape, levels, first_kernel_size=5)  # a field wider than the image
    rng = np.random.default_rng(0)
    for _ in range(2):
        code = tf.constant(rng.normal(size=(1, 3)), tf.float32)
        found = assert_causal(lambda x, code=code: model.decoder([x, code]), image_shape)
        seen = found[-1, -1].any(axis=(0, 3)).reshape(-1)
        assert seen[:-1].all()  # the last pixel sees every pixel before it


def test_the_whole_model_is_not_causal_as_its_code_sees_the_image():
    model = _small((4, 4, 1))
    with pytest.raises(AssertionError, match="forbidden dependencies"):
        assert_causal(model, (4, 4, 1))


def test_decoder_is_normalised_for_a_fixed_code():
    model = _sharpen(_small((3, 3, 1)), seed=1)
    codes = np.random.default_rng(1).normal(size=(2, 3)).astype(np.float32)
    for code in codes:
        assert total_probability(model.decoder, condition=code) == pytest.approx(1.0, abs=1e-4)
    # Different codes, different distributions.
    x = random_images(model, 8)
    dist = pm.distribution_of(model)
    log_p = [
        dist.log_prob(model.decoder([x, np.repeat(code[None], 8, 0)]), x).numpy() for code in codes
    ]
    assert np.abs(log_p[0] - log_p[1]).max() > 0.1


def test_call_is_the_decoder_given_the_images_own_codes():
    model = _small((4, 4, 3), levels=4)
    x = tf.constant(random_images(model, 3))
    expected = model.decoder([x, model.encode(x)]).numpy()
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-6, atol=1e-6)
    assert model.output_shape == (None, 4, 4, 3, 4)
    assert pm.distribution_of(model).levels == 4


# ---------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_invariant_encoder_gives_one_code_to_every_turn_and_flip(group):
    model = _small((8, 8, 1), encoder="invariant", group=group)
    x = random_images(model, 2, seed=2)
    code = model.encode(x, training=False).numpy()
    for element in range(group_table(group).order):
        turned = model.encode(transform_images(x, element, group), training=False).numpy()
        np.testing.assert_allclose(turned, code, rtol=1e-5, atol=1e-5)
    # A C4 encoder is not mirror invariant: the negative control of the check.
    if group == "C4":
        mirrored = model.encode(transform_images(x, 4, "D4"), training=False).numpy()
        assert np.abs(mirrored - code).max() > 1e-3


def test_plain_encoder_is_not_invariant():
    model = _small((8, 8, 1))
    x = random_images(model, 2, seed=3)
    code = model.encode(x).numpy()
    turned = model.encode(transform_images(x, 1, "C4")).numpy()
    assert np.abs(turned - code).max() > 1e-3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(encoder="pca"), "encoder must be one of"),
        (dict(encoder="invariant", group="none"), "needs group 'C4' or 'D4'"),
        (dict(latent_dims=0), "latent_dims must be an int >= 1"),
        (dict(encoder_dims=0), "encoder_dims must be an int >= 1"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _small((8, 8, 1), **kwargs)


# ---------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoder", ["conv", "invariant"])
def test_round_trips_give_identical_outputs(tmp_path, encoder):
    model = _small((8, 8, 1), encoder=encoder, group="C4")
    _, loaded = round_trips(model, random_images(model, 3), tmp_path)
    assert loaded.encoder_kind == encoder


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


def test_reconstruct_uses_the_codes_and_the_cached_decoder():
    model = _sharpen(_small((4, 4, 1)), seed=2)
    x = random_images(model, 5, seed=4)
    first = pm.reconstruct(model, x, seed=3)
    assert first.shape == (5, 4, 4, 1) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, pm.reconstruct(model, x, seed=3))
    assert pm.sampling.supports_cached(model.decoder)
    codes = model.encode(x, training=False).numpy()
    np.testing.assert_array_equal(
        first, pm.sample(model.decoder, 5, seed=3, condition=codes, method="reference")
    )


def test_reconstruct_of_no_images_returns_no_images():
    model = _small((4, 4, 1))
    out = pm.reconstruct(model, np.zeros((0, 4, 4, 1)), seed=0)
    assert out.shape == (0, 4, 4, 1) and out.dtype == np.uint8
    # and checks its other arguments as drawing would
    for options, message in [
        (dict(seed=-1), "seed must be an int in"),
        (dict(method="bogus"), "method must be one of"),
        (dict(temperature=-3.0), "temperature must be a finite number > 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            pm.reconstruct(model, np.zeros((0, 4, 4, 1)), **options)


def test_an_autoencoder_has_no_prior_to_sample_from():
    model = _small((4, 4, 1))
    with pytest.raises(ValueError, match="is an autoencoder"):
        pm.sample(model, 2)
    with pytest.raises(ValueError, match="is an autoencoder"):
        pm.complete(model, np.zeros((1, 4, 4, 1)), False)
    with pytest.raises(ValueError, match="not an autoencoder"):
        pm.reconstruct(model.decoder, np.zeros((1, 4, 4, 1)))
    with pytest.raises(ValueError, match="images must hold integers in \\[0, 1\\]"):
        pm.reconstruct(model, np.full((1, 4, 4, 1), 2.0))


# ---------------------------------------------------------------------------
# Learning
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_autoencoder_learns_and_its_codes_matter():
    keras.utils.set_random_seed(0)
    model = autoencoder(
        (8, 8, 1),
        latent_dims=8,
        encoder_dims=16,
        hidden_dims=16,
        recurrent_length=2,
        out_hidden_dims=16,
        out_recurrent_length=1,
        first_kernel_size=5,
    )
    trainer = training.Trainer(model, training.make_optimizer("adam", 3e-3))
    train = data.pipeline(data.load("shapes", "train", image_size=8, seed=0), 64, training=True)
    batches = iter(train)
    for _ in range(300):
        trainer.train_step(next(batches))
    test = next(iter(data.load("shapes", "test", image_size=8, seed=0).batch(500)))
    x = tf.cast(test, tf.float32)
    dist = pm.distribution_of(model)
    codes = model.encode(x, training=False)
    own = float(np.mean(dist.nll(model.decoder([x, codes]), x)))
    shuffled = float(np.mean(dist.nll(model.decoder([x, tf.roll(codes, 1, axis=0)]), x)))
    uniform = 64 * np.log(2.0)
    print(f"autoencoder: NLL given own codes {own:.2f}, others' codes {shuffled:.2f} nats")
    assert own < 0.5 * uniform
    # The decoder reads the code: another image's code fits the image worse.
    assert shuffled > own + 1.0


def test_a_mixed_precision_autoencoder_reconstructs():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = _small((4, 4, 1))
        images = (np.arange(32).reshape(2, 4, 4, 1) % 3 == 0).astype(np.uint8)
        rebuilt = pm.reconstruct(model, images, seed=1)
    finally:
        keras.config.set_dtype_policy("float32")
    assert rebuilt.shape == images.shape and set(np.unique(rebuilt)) <= {0, 1}
