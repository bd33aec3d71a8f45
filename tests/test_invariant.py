"""Tests for pixel_models.layers.invariant and pixel_models.models.invariant_cnn.

Group tables against hand-computed arrays and the group axioms; exact
equivariance of the group convolutions for every element; invariance of
InvariantConv2D and of the classifier; negative controls that must fail the
same checks; parameter counts; serialization.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixel_models.layers.invariant import (
    GroupBatchNormalization,
    GroupConv2D,
    GroupPooling,
    InvariantConv2D,
    group_table,
    kernel_bank_indices,
    transform_group_features,
    transform_images,
    windows_are_symmetric,
)
from pixel_models.models.invariant_cnn import group_width, invariant_cnn

GROUPS = ("C4", "D4")
TOLERANCE = 1e-5  # relative, float32
FAILS = 1e-2  # a broken symmetry shows errors far above rounding


def _random(shape, seed=0, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _relative_error(actual, expected) -> float:
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-12))


def _transform(x, element, group, kind):
    if kind == "image":
        return transform_images(x, element, group)
    if kind == "group":
        return transform_group_features(x, element, group)
    assert kind == "invariant"
    return x


def equivariance_errors(fn, x, group, in_kind, out_kind, elements=None) -> dict[str, float]:
    """Relative error of ``fn(t x)`` against ``t fn(x)`` for each element ``t``."""
    table = group_table(group)
    out = fn(x)
    elements = range(table.order) if elements is None else elements
    return {
        table.names[t]: _relative_error(
            fn(_transform(x, t, group, in_kind)), _transform(out, t, group, out_kind)
        )
        for t in elements
    }


def assert_equivariant(fn, x, group, in_kind, out_kind, elements=None):
    errors = equivariance_errors(fn, x, group, in_kind, out_kind, elements)
    assert max(errors.values()) < TOLERANCE, errors


def assert_not_equivariant(fn, x, group, in_kind, out_kind, elements):
    errors = equivariance_errors(fn, x, group, in_kind, out_kind, elements)
    assert min(errors.values()) > FAILS, errors


# ---------------------------------------------------------------------------
# Group tables
# ---------------------------------------------------------------------------


def test_group_elements_and_names():
    assert group_table("C4").names == ("e", "r", "r2", "r3")
    assert group_table("D4").names == ("e", "r", "r2", "r3", "m", "rm", "r2m", "r3m")
    assert group_table("D4") is group_table("D4")
    with pytest.raises(ValueError, match="group must be one of"):
        group_table("C8")


@pytest.mark.parametrize("group", GROUPS)
def test_group_axioms(group):
    table = group_table(group)
    n = table.order
    cayley = table.cayley
    # Closure: every product is an element, and each row and column is a permutation.
    assert cayley.shape == (n, n)
    for i in range(n):
        assert sorted(cayley[i].tolist()) == list(range(n))
        assert sorted(cayley[:, i].tolist()) == list(range(n))
    # Identity is element 0.
    np.testing.assert_array_equal(cayley[0], np.arange(n))
    np.testing.assert_array_equal(cayley[:, 0], np.arange(n))
    # Inverses.
    for g in range(n):
        assert cayley[g, table.inverse[g]] == 0
        assert cayley[table.inverse[g], g] == 0
    # Associativity.
    for a, b, c in itertools.product(range(n), repeat=3):
        assert cayley[cayley[a, b], c] == cayley[a, cayley[b, c]]


def test_cayley_tables_by_hand():
    c4 = group_table("C4").cayley
    np.testing.assert_array_equal(c4, (np.arange(4)[:, None] + np.arange(4)[None, :]) % 4)
    d4 = group_table("D4")
    index = {name: i for i, name in enumerate(d4.names)}
    product = lambda a, b: d4.names[d4.cayley[index[a], index[b]]]  # noqa: E731
    assert product("m", "m") == "e"
    assert product("r", "r3") == "e"
    assert product("r", "m") == "rm"
    assert product("m", "r") == "r3m"  # a mirror reverses the turn: m r = r^-1 m
    assert product("rm", "rm") == "e"
    # D4 is not commutative, C4 is the rotation subgroup of D4.
    assert not np.array_equal(d4.cayley, d4.cayley.T)
    np.testing.assert_array_equal(d4.cayley[:4, :4], c4)
    assert d4.inverse.tolist() == [0, 3, 2, 1, 4, 5, 6, 7]


# The drawing in GroupConv2D's docstring, written out by hand.
HAND_3X3 = {
    "e": "abc def ghi",
    "r": "cfi beh adg",
    "r2": "ihg fed cba",
    "r3": "gda heb ifc",
    "m": "cba fed ihg",
    "rm": "adg beh cfi",
    "r2m": "ghi def abc",
    "r3m": "ifc heb gda",
}


def test_action_on_a_3x3_kernel_matches_hand_written_arrays():
    table = group_table("D4")
    kernel = np.array(list("abcdefghi")).reshape(3, 3)
    for g, name in enumerate(table.names):
        expected = np.array([list(row) for row in HAND_3X3[name].split()])
        np.testing.assert_array_equal(table.act(kernel, g), expected, err_msg=name)


def test_45_degree_ring_shift_of_a_3x3_kernel_is_not_a_grid_symmetry():
    ring = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]  # clockwise
    kernel = np.arange(1, 10).reshape(3, 3)

    def ring_shift(steps):
        out = kernel.copy()
        for i, position in enumerate(ring):
            out[ring[(i + steps) % 8]] = kernel[position]
        return out

    table = group_table("D4")
    images = [table.act(kernel, g) for g in range(table.order)]
    # Two steps are a clockwise quarter turn (r3) ...
    np.testing.assert_array_equal(ring_shift(2), images[table.names.index("r3")])
    # ... but one step ("45 degrees") is none of the grid's symmetries.
    assert not any(np.array_equal(ring_shift(1), image) for image in images)


@pytest.mark.parametrize("group", GROUPS)
def test_transform_of_transform_is_transform_by_the_product(group):
    table = group_table(group)
    n = table.order
    cases = [
        (np.arange(5 * 4 * 2).reshape(5, 4, 2), {}),  # an image, not square
        (np.arange(3 * 3 * 2 * 5).reshape(3, 3, 2, 5), {}),  # a lifting kernel
        (np.arange(3 * 3 * 2 * n * 5).reshape(3, 3, 2, n, 5), {"orientation_axis": 3}),
        (np.arange(4 * 4 * 3 * n).reshape(4, 4, 3, n), {"orientation_axis": 3}),
    ]
    for array, kwargs in cases:
        for g, h in itertools.product(range(n), repeat=2):
            twice = table.act(table.act(array, h, **kwargs), g, **kwargs)
            once = table.act(array, table.cayley[g, h], **kwargs)
            np.testing.assert_array_equal(twice, once)


@pytest.mark.parametrize("group", GROUPS)
def test_tensor_transforms_match_the_numpy_action(group):
    table = group_table(group)
    n = table.order
    images = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)  # not square
    features = np.arange(2 * 3 * 3 * 2 * n, dtype=np.float32).reshape(2, 3, 3, 2 * n)
    for g in range(n):
        np.testing.assert_array_equal(
            np.asarray(transform_images(images, g, group)), table.act(images, g, axes=(1, 2))
        )
        expected = table.act(features.reshape(2, 3, 3, 2, n), g, axes=(1, 2), orientation_axis=4)
        np.testing.assert_array_equal(
            np.asarray(transform_group_features(features, g, group)),
            expected.reshape(features.shape),
        )


@pytest.mark.parametrize(
    "size, window, stride, padding, symmetric",
    [
        (8, 3, 1, "same", True),
        (7, 5, 1, "same", True),
        (8, 2, 1, "same", False),  # even kernel, the extra padding goes after
        (8, 3, 2, "same", False),
        (7, 3, 2, "same", True),
        (8, 1, 2, "same", False),
        (7, 1, 2, "same", True),
        (9, 3, 3, "same", True),
        (8, 3, 3, "same", False),
        (7, 3, 2, "valid", True),
        (8, 3, 2, "valid", False),
        (8, 2, 2, "valid", True),
        (8, 4, 1, "valid", True),
        (2, 3, 1, "valid", False),
    ],
)
def test_windows_are_symmetric_by_hand(size, window, stride, padding, symmetric):
    assert windows_are_symmetric(size, window, stride, padding) is symmetric


# ---------------------------------------------------------------------------
# GroupConv2D
# ---------------------------------------------------------------------------


def _in_channels(input_kind, group, features=2):
    return features * group_table(group).order if input_kind == "group" else features


@pytest.mark.parametrize("input_kind", ["image", "group"])
@pytest.mark.parametrize("group", GROUPS)
def test_kernel_bank_holds_the_transformed_kernels(group, input_kind):
    table = group_table(group)
    n = table.order
    layer = GroupConv2D(3, 3, group=group, input_kind=input_kind)
    layer.build((None, 5, 5, _in_channels(input_kind, group)))
    kernel = np.asarray(layer.kernel)
    bank = np.asarray(layer.kernel_bank())
    bank = bank.reshape(*kernel.shape, n)
    axis = 3 if input_kind == "group" else None
    for g in range(n):
        np.testing.assert_array_equal(bank[..., g], table.act(kernel, g, orientation_axis=axis))
    indices = kernel_bank_indices(kernel.shape, group, input_kind)
    assert indices.dtype == np.int32
    assert sorted(np.unique(indices).tolist()) == list(range(kernel.size))


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("input_kind", ["image", "group"])
@pytest.mark.parametrize("group", GROUPS)
def test_group_conv_is_equivariant_for_every_element(group, input_kind, kernel_size, size):
    keras.utils.set_random_seed(0)
    layer = GroupConv2D(3, kernel_size, group=group, input_kind=input_kind, bias_initializer="ones")
    x = _random((2, size, size, _in_channels(input_kind, group)))
    assert_equivariant(layer, x, group, input_kind, "group")


@pytest.mark.parametrize(
    "size, kernel_size, strides, padding",
    [
        (7, 3, 2, "same"),
        (8, 3, 2, "same"),
        (7, 3, 2, "valid"),
        (8, 3, 2, "valid"),
        (8, 2, 2, "valid"),
        (8, 2, 1, "same"),
        (9, 5, 2, "same"),
        (8, 1, 2, "same"),
        (9, 3, 3, "same"),
    ],
)
def test_group_conv_strides_and_padding_equivariant_exactly_when_windows_are_symmetric(
    size, kernel_size, strides, padding
):
    keras.utils.set_random_seed(1)
    layer = GroupConv2D(2, kernel_size, group="D4", strides=strides, padding=padding)
    x = _random((2, size, size, 2), seed=1)
    if windows_are_symmetric(size, kernel_size, strides, padding):
        assert_equivariant(layer, x, "D4", "image", "group")
    else:
        # Every element that reverses an axis shifts the grid. The transpose
        # (rm) reverses neither axis and maps any square grid onto itself.
        reversing = [g for g, name in enumerate(group_table("D4").names) if name not in ("e", "rm")]
        assert len(reversing) == 6
        assert_not_equivariant(layer, x, "D4", "image", "group", elements=reversing)
        assert_equivariant(layer, x, "D4", "image", "group", elements=[5])


@pytest.mark.parametrize("input_kind", ["image", "group"])
def test_group_conv_is_equivariant_on_a_non_square_image(input_kind):
    keras.utils.set_random_seed(2)
    layer = GroupConv2D(2, 3, group="D4", input_kind=input_kind)
    x = _random((1, 5, 8, _in_channels(input_kind, "D4")), seed=2)
    assert_equivariant(layer, x, "D4", input_kind, "group")


@pytest.mark.parametrize("input_kind", ["image", "group"])
@pytest.mark.parametrize("group", GROUPS)
def test_group_conv_equals_one_convolution_per_orientation(group, input_kind):
    table = group_table(group)
    n = table.order
    keras.utils.set_random_seed(3)
    layer = GroupConv2D(3, 3, group=group, input_kind=input_kind, bias_initializer="ones")
    x = _random((2, 6, 6, _in_channels(input_kind, group)), seed=3)
    out = np.asarray(layer(x)).reshape(2, 6, 6, 3, n)
    kernel = np.asarray(layer.kernel)
    axis = 3 if input_kind == "group" else None
    for g in range(n):
        copy = table.act(kernel, g, orientation_axis=axis).reshape(3, 3, x.shape[-1], 3)
        expected = tf.nn.conv2d(x, copy, strides=1, padding="SAME") + 1.0
        np.testing.assert_allclose(out[..., g], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("input_kind", ["image", "group"])
@pytest.mark.parametrize("group", GROUPS)
def test_group_conv_parameter_counts(group, input_kind):
    n = group_table(group).order
    layer = GroupConv2D(5, 3, group=group, input_kind=input_kind)
    c = 2
    out = layer(np.zeros((1, 4, 4, c * n if input_kind == "group" else c), np.float32))
    assert out.shape == (1, 4, 4, 5 * n)
    weights = 3 * 3 * c * 5 * (n if input_kind == "group" else 1)
    assert layer.count_params() == weights + 5  # one bias per feature, not per orientation
    assert tuple(layer.bias.shape) == (5,)
    no_bias = GroupConv2D(5, 3, group=group, input_kind=input_kind, use_bias=False)
    no_bias(np.zeros((1, 4, 4, c * n if input_kind == "group" else c), np.float32))
    assert no_bias.count_params() == weights


def test_group_conv_output_shape_and_symbolic_batch():
    layer = GroupConv2D(4, 3, group="C4", strides=2, padding="valid", activation="relu")
    inputs = keras.Input((9, 9, 3))
    assert tuple(layer(inputs).shape) == (None, 4, 4, 16)
    assert layer.compute_output_shape((None, 9, 9, 3)) == (None, 4, 4, 16)


def test_group_conv_rejects_bad_arguments():
    with pytest.raises(ValueError, match="group must be one of"):
        GroupConv2D(4, 3, group="C2")
    with pytest.raises(ValueError, match="input_kind"):
        GroupConv2D(4, 3, input_kind="orientations")
    with pytest.raises(ValueError, match="padding"):
        GroupConv2D(4, 3, padding="causal")
    with pytest.raises(ValueError, match="square"):
        GroupConv2D(4, (3, 5))
    with pytest.raises(ValueError, match="filters"):
        GroupConv2D(0, 3)
    with pytest.raises(ValueError, match="strides"):
        GroupConv2D(4, 3, strides=(1, 2))
    with pytest.raises(ValueError, match="features \\* 8"):
        GroupConv2D(4, 3, group="D4", input_kind="group")(np.zeros((1, 4, 4, 12), np.float32))
    with pytest.raises(ValueError, match="always 'image'"):
        InvariantConv2D(4, 3, input_kind="group")


def test_group_conv_under_mixed_precision():
    layer = GroupConv2D(2, 3, group="C4", dtype="mixed_float16")
    out = layer(_random((1, 5, 5, 1)))
    assert out.dtype == tf.float16
    assert layer.kernel.dtype == "float32"


# ---------------------------------------------------------------------------
# GroupPooling, InvariantConv2D, GroupBatchNormalization
# ---------------------------------------------------------------------------


def test_group_pooling_by_hand():
    x = np.array([3.0, -1.0, 5.0, 1.0, 0.0, 2.0, -4.0, 6.0], np.float32).reshape(1, 1, 1, 8)
    np.testing.assert_array_equal(np.asarray(GroupPooling("C4", "max")(x)).ravel(), [5.0, 6.0])
    np.testing.assert_array_equal(np.asarray(GroupPooling("C4", "mean")(x)).ravel(), [2.0, 1.0])
    np.testing.assert_array_equal(np.asarray(GroupPooling("D4", "max")(x)).ravel(), [6.0])
    with pytest.raises(ValueError, match="features \\* 8"):
        GroupPooling("D4")(np.zeros((1, 1, 1, 4), np.float32))
    with pytest.raises(ValueError, match="reduction"):
        GroupPooling("D4", "median")


@pytest.mark.parametrize("reduction", ["max", "mean"])
@pytest.mark.parametrize("group", GROUPS)
def test_invariant_conv_is_invariant_for_every_element(group, reduction):
    keras.utils.set_random_seed(4)
    layer = InvariantConv2D(3, 3, group=group, reduction=reduction, activation="relu")
    x = _random((2, 7, 7, 2), seed=4)
    # The features only move with the image ...
    assert_equivariant(layer, x, group, "image", "image")

    # ... so a global pooling over positions does not change at all.
    def pooled(images):
        return keras.ops.mean(layer(images), axis=(1, 2))

    assert_equivariant(pooled, x, group, "image", "invariant")


@pytest.mark.parametrize("group", GROUPS)
def test_invariant_conv_is_group_conv_then_group_pooling(group):
    keras.utils.set_random_seed(5)
    layer = InvariantConv2D(3, 3, group=group, activation="relu", bias_initializer="ones")
    x = _random((2, 6, 6, 2), seed=5)
    out = layer(x)
    conv = GroupConv2D(3, 3, group=group, activation="relu")
    conv.build(x.shape)
    conv.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(out), np.asarray(GroupPooling(group)(conv(x))))
    assert layer.count_params() == 3 * 3 * 2 * 3 + 3


@pytest.mark.parametrize("group", GROUPS)
def test_group_batch_norm_shares_statistics_over_orientations(group):
    n = group_table(group).order
    layer = GroupBatchNormalization(group, epsilon=1e-6)
    scales = np.array([1.0, 10.0], np.float32)
    x = _random((3, 4, 4, 2 * n), seed=6) * np.repeat(scales, n) + 5.0
    out = np.asarray(layer(x, training=True)).reshape(3, 4, 4, 2, n)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2, 4)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2, 4)), 1.0, atol=1e-3)
    # The orientations are not normalised one by one.
    assert np.max(np.abs(out.mean(axis=(0, 1, 2)))) > 1e-3
    assert layer.count_params() == 4 * 2  # gamma, beta, moving mean and variance per feature
    assert [tuple(w.shape) for w in layer.weights] == [(2,)] * 4


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("group", GROUPS)
def test_group_batch_norm_is_equivariant(group, training):
    n = group_table(group).order
    layer = GroupBatchNormalization(group, momentum=0.5)
    x = _random((2, 5, 5, 3 * n), seed=7) * 3.0 + 1.0
    layer(x, training=True)  # moves the moving statistics away from 0 and 1

    def fn(features):
        return layer(features, training=training)

    assert_equivariant(fn, x, group, "group", "group")


# ---------------------------------------------------------------------------
# Negative controls: the same checks must fail
# ---------------------------------------------------------------------------


def test_plain_conv2d_fails_the_equivariance_check():
    keras.utils.set_random_seed(8)
    conv = keras.layers.Conv2D(3, 3, padding="same")
    x = _random((2, 7, 7, 2), seed=8)
    assert_not_equivariant(conv, x, "D4", "image", "image", elements=range(1, 8))


def _flip_maxout(x, kernel):
    """Max over the kernel, its left-right and its up-down flip: not a group."""
    copies = [kernel, kernel[:, ::-1], kernel[::-1, :]]
    outs = [tf.nn.conv2d(x, np.ascontiguousarray(k), 1, "SAME") for k in copies]
    return tf.reduce_max(tf.stack(outs), axis=0)


def test_three_copy_flip_maxout_fails_the_flip_invariance_check():
    x = _random((2, 7, 7, 2), seed=9)
    kernel = _random((3, 3, 2, 3), seed=10)
    d4 = group_table("D4")
    flips = [d4.names.index("m"), d4.names.index("r2m")]  # left-right, up-down
    assert_not_equivariant(lambda v: _flip_maxout(v, kernel), x, "D4", "image", "image", flips)
    # The exact version, a maximum over all of D4, passes under the same flips.
    layer = InvariantConv2D(3, 3, group="D4", use_bias=False)
    layer.build(x.shape)
    layer.set_weights([kernel])
    assert_equivariant(layer, x, "D4", "image", "image", flips)


def test_c4_model_is_not_mirror_invariant():
    keras.utils.set_random_seed(11)
    model = invariant_cnn((8, 8, 1), num_classes=4, group="C4", base_width=8, stages=(1, 1))
    x = _random((2, 8, 8, 1), seed=11, low=0.0, high=255.0)

    def logits(images):
        return model(images, training=False)

    # Invariant under the rotations (elements 0..3 of D4 are C4) ...
    assert_equivariant(logits, x, "D4", "image", "invariant", elements=range(4))
    # ... but not under any mirror.
    assert_not_equivariant(logits, x, "D4", "image", "invariant", elements=range(4, 8))


def test_plain_cnn_baseline_is_not_invariant():
    keras.utils.set_random_seed(12)
    model = invariant_cnn((8, 8, 1), num_classes=4, group="none", base_width=8, stages=(1, 1))
    x = _random((2, 8, 8, 1), seed=12, low=0.0, high=255.0)
    assert_not_equivariant(
        lambda v: model(v, training=False), x, "D4", "image", "invariant", range(1, 8)
    )


# ---------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("group, size", [("C4", 8), ("C4", 9), ("D4", 8), ("D4", 9)])
def test_invariant_cnn_logits_are_invariant(group, size, training):
    keras.utils.set_random_seed(13)
    model = invariant_cnn(
        (size, size, 2), num_classes=5, group=group, base_width=8, stages=(1, 1, 1)
    )
    x = _random((3, size, size, 2), seed=13, low=0.0, high=255.0)

    def logits(images):
        return model(images, training=training)

    assert_equivariant(logits, x, group, "image", "invariant")


def test_invariant_cnn_parameter_counts_follow_the_width_rule():
    assert [group_width(32, g) for g in ("none", "C4", "D4")] == [32, 16, 11]
    counts = {
        g: invariant_cnn((16, 16, 1), 10, group=g, base_width=16, stages=(2, 1)).count_params()
        for g in ("none", "C4", "D4")
    }
    # By hand: two 3x3 layers after the first, batch norms (4 per feature),
    # a dense head (features + 1) * 10.
    expected = {}
    for g, n, f in (("none", 1, 16), ("C4", 4, 8), ("D4", 8, 6)):
        convs = 9 * 1 * f + 2 * 9 * n * f * f
        expected[g] = convs + 3 * 4 * f + (f + 1) * 10
    assert counts == expected
    assert max(counts.values()) / min(counts.values()) < 1.25, counts


def test_invariant_cnn_rejects_bad_arguments():
    with pytest.raises(ValueError, match="square"):
        invariant_cnn((8, 6, 1), group="C4")
    with pytest.raises(ValueError, match="group must be one of"):
        invariant_cnn((8, 8, 1), group="C8")
    with pytest.raises(ValueError, match="odd"):
        invariant_cnn((8, 8, 1), kernel_size=2)
    assert invariant_cnn((8, 6, 1), group="none", base_width=4, stages=(1,)).output_shape == (
        None,
        10,
    )


# ---------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, input_channels",
    [
        (GroupConv2D(3, 3, group="C4", input_kind="group", strides=2, activation="relu"), 8),
        (InvariantConv2D(3, 5, group="D4", reduction="mean", padding="valid"), 2),
        (GroupPooling("D4", "mean"), 16),
        (GroupBatchNormalization("C4", momentum=0.9, epsilon=1e-4), 8),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, keras.layers.Layer) else str(v),
)
def test_layer_get_config_round_trip(layer, input_channels):
    x = _random((2, 7, 7, input_channels), seed=14)
    out = layer(x)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(out), np.asarray(clone(x)))
    registered = keras.saving.get_registered_object(f"pixel_models>{type(layer).__name__}")
    assert registered is type(layer)


def test_invariant_cnn_keras_file_round_trip(tmp_path):
    keras.utils.set_random_seed(15)
    model = invariant_cnn((8, 8, 1), num_classes=3, group="D4", base_width=6, stages=(1, 1))
    x = _random((2, 8, 8, 1), seed=15, low=0.0, high=255.0)
    model(x, training=True)  # moving statistics away from their initial values
    path = tmp_path / "invariant_cnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))
    np.testing.assert_array_equal(
        np.asarray(model(x, training=True)), np.asarray(loaded(x, training=True))
    )
