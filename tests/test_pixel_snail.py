"""Tests for the PixelSNAIL builder: what the shared contract does not check
(colour and categorical causality, no blind spot, conditioning, cached logits,
argument errors, learning)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import pixel_models as pm
from pixel_models.layers import CausalAttention
from pixel_models.models.pixel_snail import pixel_snail
from pixel_models.sampling import cached_logits
from pixel_models.testing import assert_causal, raster_allowed, sharpen_every_weight


def _small(image_shape, levels=2, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    config = dict(
        hidden_dims=6,
        num_blocks=1,
        residual_blocks=1,
        attention_heads=2,
        key_dims=3,
        value_dims=2,
        out_hidden_dims=6,
    )
    config.update(kwargs)
    return sharpen_every_weight(pixel_snail(image_shape, levels, **config), seed=seed)


def test_colour_categorical_model_is_causal_and_reads_earlier_channels():
    model = _small((2, 2, 3), levels=4)
    found = assert_causal(lambda x: model(x, training=False), (2, 2, 3))
    # Within a pixel: G reads R, B reads R and G.
    pixel = found[1, 1, :, 1, 1, :]
    np.testing.assert_array_equal(pixel, [[0, 0, 0], [1, 0, 0], [1, 1, 0]])


def test_attention_removes_the_blind_spot_after_one_block():
    # One residual block of 3x3 convolutions cannot reach (0, 4) from (2, 4),
    # nor (0, 3) from (1, 0); the attention reads every earlier pixel.
    model = _small((3, 5, 1))
    found = assert_causal(lambda x: model(x, training=False), (3, 5, 1))
    allowed = raster_allowed((3, 5, 1))
    np.testing.assert_array_equal(found, allowed)


def test_labels_change_the_logits_and_cached_logits_equal_the_full_network():
    model = _small((3, 3, 3), levels=4, num_classes=3, num_blocks=2)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (4, 3, 3, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 1], np.int32)
    full = np.asarray(model([x, labels], training=False))
    other = np.asarray(model([x, (labels + 1) % 3], training=False))
    assert full.shape == (4, 3, 3, 3, 4)
    assert np.abs(full - other).max() > 1e-3
    np.testing.assert_allclose(
        cached_logits(model, x, condition=labels), full, rtol=1e-5, atol=1e-4
    )


def test_cached_sampling_of_a_categorical_colour_model_equals_the_reference():
    model = _small((2, 3, 3), levels=4)
    drawn = {m: pm.sample(model, 4, seed=5, method=m) for m in ("cached", "reference")}
    np.testing.assert_array_equal(drawn["cached"], drawn["reference"])


def test_model_has_one_attention_layer_per_block():
    model = pixel_snail((4, 4, 1), hidden_dims=4, num_blocks=3, residual_blocks=2)
    attention = [layer for layer in model.layers if isinstance(layer, CausalAttention)]
    assert [layer.name for layer in attention] == [f"block{b}_attention" for b in range(3)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_blocks": 0}, "num_blocks must be an int >= 1"),
        ({"attention_heads": 0}, "attention_heads must be an int >= 1"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
        ({"kernel_size": 2}, "kernel_size must be an odd positive int"),
        ({"image_shape": (4, 4, 3), "out_hidden_dims": 2}, "out_hidden_dims must be at least"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    kwargs = {"image_shape": (4, 4, 1), **kwargs}
    with pytest.raises(ValueError, match=message):
        pixel_snail(**kwargs)


def test_dropout_acts_in_training_only():
    keras.utils.set_random_seed(0)
    model = pixel_snail((4, 4, 1), hidden_dims=4, num_blocks=1, residual_blocks=1, dropout=0.5)
    x = np.random.default_rng(0).integers(0, 2, (2, 4, 4, 1)).astype(np.float32)
    np.testing.assert_array_equal(model(x, training=False), model(x, training=False))
    assert np.abs(np.asarray(model(x, training=True)) - np.asarray(model(x))).max() > 0


@pytest.mark.slow
def test_pixel_snail_learns_procedural_shapes():
    from shapes_learning import BASELINE, train_on_shapes

    before, after = train_on_shapes(
        lambda: pixel_snail(
            (8, 8, 1), hidden_dims=16, num_blocks=2, residual_blocks=1, key_dims=8, value_dims=16
        ),
        steps=200,
        label="pixel_snail",
    )
    assert before["nll"] > 0.8 * BASELINE
    assert after["nll"] < 0.5 * BASELINE


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_xla_training_steps_reach_every_attention_weight(policy):
    """The recomputed attention (``CausalAttention(recompute=True)``) in an
    XLA-compiled training step, in float32 and under mixed precision (without
    loss scaling, whose first steps would skip on overflow): finite losses
    that fall, and each attention layer's weights move."""
    from pixel_models.training import Trainer, make_optimizer

    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = pixel_snail(
            (6, 6, 1), hidden_dims=8, num_blocks=2, residual_blocks=1, key_dims=4, value_dims=4
        )
        attention = [layer for layer in model.layers if isinstance(layer, CausalAttention)]
        assert len(attention) == 2 and all(layer.recompute for layer in attention)
        before = [np.asarray(w) for layer in attention for w in layer.get_weights()]
        trainer = Trainer(model, make_optimizer("adam", 1e-2, loss_scale=False), jit_compile=True)
        batch = np.random.default_rng(0).integers(0, 2, (8, 6, 6, 1)).astype(np.uint8)
        losses = [trainer.train_step(batch) for _ in range(3)]
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    after = [np.asarray(w) for layer in attention for w in layer.get_weights()]
    for old, new in zip(before, after, strict=True):
        assert np.abs(new - old).max() > 0
