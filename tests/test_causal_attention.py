"""Tests for pixel_models.layers.causal_attention and gated_residual: hand-computed
attention, the strict mask, causality, the incremental form and serialization."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from pixel_models.distributions import PixelHead
from pixel_models.layers import (
    CausalAttention,
    GatedResidual,
    MaskedConv2D,
    coordinate_background,
    masked_attention,
    strict_causal_mask,
)
from pixel_models.sampling import cached_logits
from pixel_models.testing import assert_causal, dependencies, sharpen_every_weight

# ---------------------------------------------------------------------------
# Pure functions on hand-written arrays
# ---------------------------------------------------------------------------


def test_strict_causal_mask_of_a_2x2_image():
    expected = [
        [0, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 0],
    ]
    np.testing.assert_array_equal(strict_causal_mask(2, 2).astype(int), expected)


def test_strict_causal_mask_follows_raster_order_across_rows():
    mask = strict_causal_mask(2, 3)
    # Position (1, 0) = 3 reads the whole first row and nothing of its own.
    np.testing.assert_array_equal(mask[3].astype(int), [1, 1, 1, 0, 0, 0])
    assert not mask.diagonal().any()


def test_coordinate_background_by_hand():
    background = coordinate_background(2, 2)
    np.testing.assert_allclose(background[..., 0], [[-0.5, -0.5], [0.0, 0.0]])
    np.testing.assert_allclose(background[..., 1], [[-0.5, 0.0], [-0.5, 0.0]])


def test_masked_attention_by_hand():
    # One head, three keys with scores 0, ln 2, ln 3: weights 1/6, 2/6, 3/6.
    scores = np.log(np.array([1.0, 2.0, 3.0], np.float32)).reshape(1, 1, 1, 3)
    values = np.array([6.0, 12.0, 60.0], np.float32).reshape(1, 3, 1, 1)
    out = masked_attention(scores, np.array([True, True, True]), values)
    assert float(np.asarray(out)[0, 0, 0, 0]) == pytest.approx(1 + 4 + 30, rel=1e-6)
    # The last key hidden: weights 1/3, 2/3.
    out = masked_attention(scores, np.array([True, True, False]), values)
    assert float(np.asarray(out)[0, 0, 0, 0]) == pytest.approx(2 + 8, rel=1e-6)
    # Nothing allowed: zeros, not NaN.
    out = masked_attention(scores, np.array([False, False, False]), values)
    assert float(np.asarray(out)[0, 0, 0, 0]) == 0.0


def test_masked_attention_ignores_huge_hidden_scores_and_keeps_gradients_finite():
    import tensorflow as tf

    scores = tf.constant([[[[1.0, 1e30, 2.0]]]])
    values = tf.constant(np.arange(3, dtype=np.float32).reshape(1, 3, 1, 1))
    mask = np.array([True, False, True])
    with tf.GradientTape() as tape:
        tape.watch(scores)
        out = masked_attention(scores, mask, values)
    grad = tape.gradient(out, scores).numpy()
    weight = 1 / (1 + math.e)  # of the first key
    assert float(out[0, 0, 0, 0]) == pytest.approx(2 * (1 - weight), rel=1e-6)
    assert np.isfinite(grad).all() and grad[0, 0, 0, 1] == 0.0


# ---------------------------------------------------------------------------
# CausalAttention on hand-set weights
# ---------------------------------------------------------------------------


def _layer_with(heads, key_dims, value_dims, content_kernel, query_kernel, query_bias):
    layer = CausalAttention(heads, key_dims, value_dims)
    features = content_kernel.shape[0] - 2
    layer.build((None, 1, 3, features))
    layer.content_kernel.assign(content_kernel.astype(np.float32))
    layer.content_bias.assign(np.zeros(heads * (key_dims + value_dims), np.float32))
    layer.query_kernel.assign(query_kernel.astype(np.float32))
    layer.query_bias.assign(query_bias.astype(np.float32))
    return layer


def test_attention_by_hand_two_heads():
    # A 1x3 image with one feature x = [0, ln 2, 5]. Content rows: x, row, col
    # coordinates; columns: keys (head 0, head 1), values (head 0, head 1).
    # Head 0: keys 0, so it averages the values x of the earlier positions.
    # Head 1: key x and query 1: weights exp(x) over the earlier positions.
    content = np.array(
        [
            [0.0, 1.0, 1.0, 1.0],  # x
            [0.0, 0.0, 0.0, 0.0],  # row coordinate
            [0.0, 0.0, 0.0, 0.0],  # column coordinate
        ]
    )
    query_kernel = np.zeros((3, 2))
    layer = _layer_with(2, 1, 1, content, query_kernel, np.array([0.0, 1.0]))
    x = np.array([0.0, math.log(2.0), 5.0], np.float32).reshape(1, 1, 3, 1)
    out = np.asarray(layer(x))[0, 0]
    ln2 = math.log(2.0)
    expected = [
        [0.0, 0.0],  # the first position reads nothing
        [0.0, 0.0],  # only position 0, of value 0
        [ln2 / 2, 2 * ln2 / 3],  # mean of (0, ln 2); weights (1/3, 2/3)
    ]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_attention_reads_the_positional_background():
    # Values are the column coordinate: position j reads the mean of (k - 3/2) / 3, k < j.
    content = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    layer = _layer_with(1, 1, 1, content, np.zeros((3, 1)), np.zeros(1))
    out = np.asarray(layer(np.zeros((1, 1, 3, 1), np.float32)))[0, 0, :, 0]
    np.testing.assert_allclose(out, [0.0, -0.5, (-0.5 + -1 / 6) / 2], atol=1e-6)


def test_attention_output_sees_strictly_earlier_positions_only():
    keras.utils.set_random_seed(0)
    layer = CausalAttention(2, 3, 2)
    queries = np.zeros((1, 3, 3, 2), np.float32)  # queries that depend on no pixel
    found = assert_causal(lambda x: layer(x, queries=queries), (3, 3, 1), out_channels=4)
    # Every position but the first sees every earlier one.
    seen = found[:, :, :, :, :, 0].any(axis=2).reshape(9, 9)
    np.testing.assert_array_equal(seen, strict_causal_mask(3, 3))


def test_attention_queries_at_a_position_change_only_that_position():
    keras.utils.set_random_seed(0)
    layer = CausalAttention(1, 2, 2)
    content = np.random.default_rng(0).normal(size=(1, 2, 2, 3)).astype(np.float32)
    found = dependencies(lambda q: layer(content, queries=q), (2, 2, 1))
    pairs = found[..., 0].any(axis=2).reshape(4, 4)
    # Position 0 reads nothing and position 1 one key (whose weight is 1
    # whatever the query): their queries do not matter.
    np.testing.assert_array_equal(pairs, np.diag([False, False, True, True]))


def test_recomputed_attention_has_the_gradients_of_the_stored_one():
    # recompute=True keeps only the output of the attention for the backward
    # pass and computes its weights again there: the same values and gradients.
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 3, 4, 3)).astype(np.float32))
    q = tf.constant(rng.normal(size=(2, 3, 4, 2)).astype(np.float32))
    results = []
    for recompute in (False, True):
        keras.utils.set_random_seed(0)
        layer = CausalAttention(2, 3, 2, recompute=recompute)
        layer(x, queries=q)
        weights = [np.asarray(w) for w in layer.get_weights()]
        with tf.GradientTape() as tape:
            tape.watch([x, q])
            out = layer(x, queries=q)
            loss = tf.reduce_sum(tf.sin(out))
        grads = tape.gradient(loss, [x, q, *layer.trainable_variables])
        results.append((weights, np.asarray(out), [np.asarray(g) for g in grads]))
    (w0, out0, g0), (w1, out1, g1) = results
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(out0, out1)
    assert all(np.abs(g).max() > 1e-3 for g in g0)  # every gradient is reached
    for a, b in zip(g0, g1, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_attention_rejects_bad_sizes():
    with pytest.raises(ValueError, match="heads"):
        CausalAttention(heads=0)
    with pytest.raises(ValueError, match="one height and width"):
        CausalAttention()([np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 3, 1))])


# ---------------------------------------------------------------------------
# GatedResidual
# ---------------------------------------------------------------------------


def test_gated_residual_by_hand_with_zero_gate_weights():
    block = GatedResidual(2, kernel_size=1)
    x = np.random.default_rng(0).normal(size=(1, 2, 2, 2)).astype(np.float32)
    block(x)
    block.conv_out.kernel.assign(np.zeros_like(block.conv_out.kernel))
    block.conv_out.bias.assign(np.array([1.0, 2.0, 0.0, 0.0], np.float32))
    # a = (1, 2), b = 0: out = x + a * sigmoid(0) = x + (0.5, 1).
    np.testing.assert_allclose(np.asarray(block(x)), x + np.array([0.5, 1.0]), atol=1e-6)


def test_gated_residual_keeps_a_stream_strictly_causal():
    keras.utils.set_random_seed(0)
    first = MaskedConv2D(3, 3, mask_type="A")
    block = GatedResidual(3, kernel_size=3)
    found = assert_causal(lambda x: block(first(x)), (3, 3, 1), out_channels=3)
    assert found[2, 2].any()


def test_gated_residual_must_be_called_as_built():
    block = GatedResidual(2, kernel_size=1)
    x = np.zeros((1, 2, 2, 2), np.float32)
    block(x, aux=x)
    with pytest.raises(ValueError, match="built with aux"):
        block(x)
    with pytest.raises(ValueError, match="input must be"):
        GatedResidual(3)(x)


# ---------------------------------------------------------------------------
# The incremental forms against call(), and serialization
# ---------------------------------------------------------------------------


def _attention_model(channels, queries):
    keras.utils.set_random_seed(1)
    images = keras.Input((3, 4, channels))
    x = keras.layers.Rescaling(2.0, offset=-1.0)(images)
    s = MaskedConv2D(4, 3, mask_type="A")(x)
    s = GatedResidual(4, 3)(s)
    q = GatedResidual(4, 1)(s) if queries else None
    a = CausalAttention(2, 3, 2)([s, x], queries=q) if queries else CausalAttention(2, 3, 2)(s)
    s = GatedResidual(4, 1)(s, aux=a)
    logits = MaskedConv2D(channels, 1, mask_type="B")(keras.layers.Activation("elu")(s))
    model = keras.Model(images, PixelHead("bernoulli", channels, 2)(logits))
    return sharpen_every_weight(model, seed=1)


@pytest.mark.parametrize("channels, queries", [(1, True), (3, False)], ids=["grey", "rgb"])
def test_cached_logits_equal_the_full_network(channels, queries):
    model = _attention_model(channels, queries)
    x = np.random.default_rng(0).integers(0, 2, (3, 3, 4, channels)).astype(np.float32)
    full = np.asarray(model(x, training=False))
    assert np.abs(full).max() > 1.0  # far from a flat model
    np.testing.assert_allclose(cached_logits(model, x), full, atol=1e-4)


def test_layers_round_trip_their_config():
    attention = CausalAttention(3, 4, 5, recompute=False, name="attention")
    again = CausalAttention.from_config(attention.get_config())
    assert (again.heads, again.key_dims, again.value_dims, again.recompute) == (3, 4, 5, False)
    block = GatedResidual(4, 3, dropout=0.25)
    again = GatedResidual.from_config(block.get_config())
    assert (again.filters, again.kernel_size, again.dropout) == (4, 3, 0.25)
