"""Tests for pixel_models.layers.masked_conv: masks, colour groups and MaskedConv2D."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixel_models.layers import MaskedConv2D, channel_groups, make_mask
from pixel_models.testing import assert_causal, dependencies, raster_allowed

# ---------------------------------------------------------------------------
# make_mask on hand-written grids
# ---------------------------------------------------------------------------

GRIDS = {
    (3, "A"): [
        [1, 1, 1],
        [1, 0, 0],
        [0, 0, 0],
    ],
    (3, "B"): [
        [1, 1, 1],
        [1, 1, 0],
        [0, 0, 0],
    ],
    (5, "A"): [
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
        [1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ],
    (5, "B"): [
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ],
    (1, "A"): [[0]],
    (1, "B"): [[1]],
}


@pytest.mark.parametrize("kernel_size, mask_type", sorted(GRIDS))
def test_make_mask_one_colour_channel_matches_hand_written_grid(kernel_size, mask_type):
    mask = make_mask(kernel_size, 1, 1, mask_type)
    assert mask.shape == (kernel_size, kernel_size, 1, 1)
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask[:, :, 0, 0], np.array(GRIDS[kernel_size, mask_type]))


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_make_mask_one_colour_channel_is_the_same_for_every_feature_pair(mask_type):
    mask = make_mask(3, 4, 5, mask_type)
    assert mask.shape == (3, 3, 4, 5)
    expected = np.array(GRIDS[3, mask_type], np.float32)[:, :, None, None]
    np.testing.assert_array_equal(mask, np.broadcast_to(expected, mask.shape))


def test_make_mask_rectangular_kernels():
    # (kh, kw) = (3, 5): one row above the centre, two columns left of it.
    mask = make_mask((3, 5), 1, 1, "B")[:, :, 0, 0]
    np.testing.assert_array_equal(
        mask,
        [
            [1, 1, 1, 1, 1],
            [1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],
        ],
    )
    mask = make_mask((1, 3), 1, 1, "A")[:, :, 0, 0]
    np.testing.assert_array_equal(mask, [[1, 0, 0]])
    mask = make_mask((3, 1), 1, 1, "A")[:, :, 0, 0]
    np.testing.assert_array_equal(mask, [[1], [0], [0]])


# Centre of a 1x1 mask, indexed [input feature, output feature], three colour groups.
RGB_CENTRE = {
    "A": [
        [0, 1, 1],
        [0, 0, 1],
        [0, 0, 0],
    ],
    "B": [
        [1, 1, 1],
        [0, 1, 1],
        [0, 0, 1],
    ],
}


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_make_mask_colour_groups_one_feature_per_channel(mask_type):
    mask = make_mask(1, 3, 3, mask_type, color_channels=3)
    assert mask.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(mask[0, 0], RGB_CENTRE[mask_type])
    # The same rule, written as a comparison of groups.
    groups = np.arange(3)
    rule = groups[:, None] < groups[None, :] if mask_type == "A" else groups[:, None] <= groups
    np.testing.assert_array_equal(mask[0, 0], rule.astype(np.float32))


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_make_mask_colour_groups_of_two_features(mask_type):
    mask = make_mask(1, 6, 6, mask_type, color_channels=3)
    expected = {
        "A": [
            [0, 0, 1, 1, 1, 1],
            [0, 0, 1, 1, 1, 1],
            [0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        "B": [
            [1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 1],
            [0, 0, 1, 1, 1, 1],
            [0, 0, 1, 1, 1, 1],
            [0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 1, 1],
        ],
    }[mask_type]
    np.testing.assert_array_equal(mask[0, 0], expected)


def test_make_mask_colour_groups_with_different_in_and_out_features():
    # Raw RGB input (3 features) into 6 features: out groups [0, 0, 1, 1, 2, 2].
    mask = make_mask(1, 3, 6, "A", color_channels=3)
    np.testing.assert_array_equal(
        mask[0, 0],
        [
            [0, 0, 1, 1, 1, 1],
            [0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 0, 0],
        ],
    )


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_make_mask_colour_groups_only_change_the_centre(mask_type):
    mask = make_mask(3, 6, 6, mask_type, color_channels=3)
    grid = np.array(GRIDS[3, "A"], np.float32)  # 3x3 without the centre
    off_centre = mask.copy()
    off_centre[1, 1] = 0.0
    np.testing.assert_array_equal(off_centre, np.broadcast_to(grid[:, :, None, None], mask.shape))
    np.testing.assert_array_equal(mask[1, 1], make_mask(1, 6, 6, mask_type, 3)[0, 0])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=2, in_channels=1, out_channels=1, mask_type="A"),
        dict(kernel_size=4, in_channels=1, out_channels=1, mask_type="B"),
        dict(kernel_size=0, in_channels=1, out_channels=1, mask_type="B"),
        dict(kernel_size=(3, 2), in_channels=1, out_channels=1, mask_type="B"),
        dict(kernel_size=(3, 3, 3), in_channels=1, out_channels=1, mask_type="B"),
        dict(kernel_size=3, in_channels=1, out_channels=1, mask_type="C"),
        dict(kernel_size=3, in_channels=1, out_channels=1, mask_type="a"),
        dict(kernel_size=3, in_channels=3, out_channels=2, mask_type="A", color_channels=3),
        dict(kernel_size=3, in_channels=2, out_channels=3, mask_type="B", color_channels=3),
        dict(kernel_size=3, in_channels=3, out_channels=3, mask_type="B", color_channels=0),
    ],
)
def test_make_mask_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        make_mask(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(filters=4, kernel_size=2),
        dict(filters=4, kernel_size=3, mask_type="C"),
        dict(filters=2, kernel_size=3, color_channels=3),
        dict(filters=0, kernel_size=3),
    ],
)
def test_masked_conv_bad_arguments_raise_at_construction(kwargs):
    with pytest.raises(ValueError):
        MaskedConv2D(**kwargs)


# ---------------------------------------------------------------------------
# channel_groups
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_features, color_channels, expected",
    [
        (3, 3, [0, 1, 2]),
        (6, 3, [0, 0, 1, 1, 2, 2]),
        (7, 3, [0, 0, 0, 1, 1, 2, 2]),
        (12, 3, [0] * 4 + [1] * 4 + [2] * 4),
        (4, 1, [0, 0, 0, 0]),
        (1, 1, [0]),
    ],
)
def test_channel_groups_values(num_features, color_channels, expected):
    groups = channel_groups(num_features, color_channels)
    assert groups.tolist() == expected


@pytest.mark.parametrize("num_features, color_channels", [(2, 3), (0, 1), (3, 0)])
def test_channel_groups_bad_arguments_raise(num_features, color_channels):
    with pytest.raises(ValueError):
        channel_groups(num_features, color_channels)


# ---------------------------------------------------------------------------
# MaskedConv2D: what it sees and what it does not
# ---------------------------------------------------------------------------

LAYER_CASES = [
    (mask_type, kernel_size, colours)
    for mask_type in ("A", "B")
    for kernel_size in (1, 3, 5, 7)
    for colours in (1, 3)
    if not (mask_type == "A" and kernel_size == 1 and colours == 1)
]


def _window(image_shape, kernel_size):
    """[i, j, k, l]: input (k, l) lies in the kernel window centred on output (i, j)."""
    height, width, _ = image_shape
    rows = np.arange(height)
    cols = np.arange(width)
    near_row = np.abs(rows[:, None] - rows[None, :]) <= kernel_size // 2
    near_col = np.abs(cols[:, None] - cols[None, :]) <= kernel_size // 2
    return near_row[:, None, :, None] & near_col[None, :, None, :]


@pytest.mark.parametrize("mask_type, kernel_size, colours", LAYER_CASES)
def test_masked_conv_is_causal_and_sees_its_whole_allowed_window(mask_type, kernel_size, colours):
    keras.utils.set_random_seed(1)
    image_shape = (6, 6, colours)
    filters = 2 * colours
    layer = MaskedConv2D(filters, kernel_size, mask_type=mask_type, color_channels=colours)
    strict = mask_type == "A"
    found = assert_causal(layer, image_shape, out_channels=filters, strict=strict)
    assert found.shape == (6, 6, filters, 6, 6, colours)
    # A linear layer with non-zero weights sees exactly the allowed part of its window.
    allowed = raster_allowed(image_shape, filters, strict=strict)
    window = _window(image_shape, kernel_size)[:, :, None, :, :, None]
    np.testing.assert_array_equal(found, allowed & window)


def test_masked_conv_type_b_3x3_interior_pixel_sees_exactly_its_neighbourhood():
    keras.utils.set_random_seed(2)
    image_shape = (6, 6, 1)
    layer = MaskedConv2D(4, 3, mask_type="B", activation="relu", bias_initializer="ones")
    found = dependencies(layer, image_shape, num_inputs=4)
    seen = found[3, 2, :, :, :, 0].any(axis=0)
    expected = np.zeros((6, 6), bool)
    expected[2, 1:4] = True  # row above: three pixels
    expected[3, 1:3] = True  # same row: left neighbour and the pixel itself
    np.testing.assert_array_equal(seen, expected)
    allowed = raster_allowed(image_shape, 1, strict=False)[3, 2, 0, :, :, 0]
    np.testing.assert_array_equal(seen, allowed & _window(image_shape, 3)[3, 2])


@pytest.mark.parametrize("mask_type, strict", [("B", True), ("A", False)])
def test_assert_causal_detects_a_layer_checked_against_the_wrong_mask(mask_type, strict):
    keras.utils.set_random_seed(3)
    layer = MaskedConv2D(6, 3, mask_type=mask_type, color_channels=3)
    if mask_type == "B":
        # A type-B layer sees the centre, which strict (type-A) causality forbids.
        with pytest.raises(AssertionError, match="forbidden dependencies"):
            assert_causal(layer, (4, 4, 3), out_channels=6, strict=strict)
    else:
        # A type-A layer is also causal in the looser type-B sense ...
        found = assert_causal(layer, (4, 4, 3), out_channels=6, strict=strict)
        # ... but misses the same-group centre dependencies that type B would have.
        loose = raster_allowed((4, 4, 3), 6, strict=False)
        assert not np.array_equal(found, loose & _window((4, 4, 3), 3)[:, :, None, :, :, None])


def test_masked_conv_computes_conv_of_masked_kernel_plus_bias():
    layer = MaskedConv2D(
        6,
        3,
        mask_type="A",
        color_channels=3,
        kernel_initializer="ones",
        bias_initializer=keras.initializers.Constant(0.5),
    )
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 3)).astype(np.float32)
    out = layer(x).numpy()
    mask = make_mask(3, 3, 6, "A", color_channels=3)
    expected = tf.nn.conv2d(x, mask, strides=1, padding="SAME").numpy() + 0.5
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert layer.compute_output_shape((None, 5, 5, 3)) == (None, 5, 5, 6)


def test_masked_conv_activation_and_no_bias():
    layer = MaskedConv2D(3, 3, mask_type="B", activation="relu", use_bias=False)
    out = layer(np.random.default_rng(1).normal(size=(1, 4, 4, 2)).astype(np.float32))
    assert layer.bias is None
    assert len(layer.weights) == 1
    assert float(tf.reduce_min(out)) >= 0.0
    assert float(tf.reduce_max(out)) > 0.0


# ---------------------------------------------------------------------------
# The mask is applied in call(); the kernel variable itself is untouched
# ---------------------------------------------------------------------------


def _tiny_model(colours=3):
    inputs = keras.Input((5, 5, colours))
    x = MaskedConv2D(2 * colours, 3, "A", colours, "relu", name="first")(inputs)
    x = MaskedConv2D(colours, 3, "B", colours, name="second")(x)
    return keras.Model(inputs, x)


def test_masked_kernel_entries_get_zero_gradient_and_keep_their_values_after_training():
    keras.utils.set_random_seed(4)
    model = _tiny_model()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5, 5, 3)).astype(np.float32)
    y = rng.normal(size=(8, 5, 5, 3)).astype(np.float32)
    layers = [model.get_layer("first"), model.get_layer("second")]
    before = [layer.kernel.numpy().copy() for layer in layers]
    masks = [np.asarray(layer.mask) for layer in layers]
    optimizer = keras.optimizers.Adam(0.05)
    for step in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        kernels = [layer.kernel for layer in layers]
        grads = tape.gradient(loss, kernels)
        if step == 0:
            for grad, mask in zip(grads, masks, strict=True):
                assert np.all(grad.numpy()[mask == 0] == 0.0)
                assert np.any(grad.numpy()[mask == 1] != 0.0)
        optimizer.apply_gradients(zip(grads, kernels, strict=True))
    for layer, old, mask in zip(layers, before, masks, strict=True):
        new = layer.kernel.numpy()
        # Hidden entries keep their (non-zero) initial values: the mask is not baked in.
        assert np.any(old[mask == 0] != 0.0)
        np.testing.assert_array_equal(new[mask == 0], old[mask == 0])
        # Visible entries did train.
        assert np.any(new[mask == 1] != old[mask == 1])


# ---------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------


def test_masked_conv_get_config_round_trip():
    keras.utils.set_random_seed(5)
    layer = MaskedConv2D(
        6,
        (3, 5),
        mask_type="A",
        color_channels=3,
        activation="tanh",
        use_bias=True,
        bias_initializer="ones",
        name="masked",
    )
    x = np.random.default_rng(2).normal(size=(2, 6, 6, 3)).astype(np.float32)
    out = layer(x).numpy()
    config = layer.get_config()
    assert config["filters"] == 6
    assert tuple(config["kernel_size"]) == (3, 5)
    assert config["mask_type"] == "A"
    assert config["color_channels"] == 3
    assert config["use_bias"] is True
    clone = MaskedConv2D.from_config(config)
    assert clone.kernel_size == (3, 5)
    assert clone.mask_type == "A"
    assert clone.color_channels == 3
    assert clone.name == "masked"
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone.mask, layer.mask)
    np.testing.assert_allclose(clone(x).numpy(), out, rtol=1e-6, atol=1e-6)
    # Also through the generic Keras (de)serialisation of registered layers.
    generic = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(generic, MaskedConv2D)
    assert generic.get_config() == config


def test_masked_conv_keras_save_load_gives_identical_outputs(tmp_path):
    keras.utils.set_random_seed(6)
    model = _tiny_model()
    x = np.random.default_rng(3).normal(size=(3, 5, 5, 3)).astype(np.float32)
    out = model(x).numpy()
    path = tmp_path / "masked.keras"
    keras.saving.save_model(model, path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("first"), MaskedConv2D)
    assert loaded.get_layer("first").mask_type == "A"
    assert loaded.get_layer("second").mask_type == "B"
    np.testing.assert_array_equal(loaded(x).numpy(), out)
    # The loaded layers still apply their masks.
    assert_causal(loaded, (5, 5, 3), strict=True)


def test_masked_conv_runs_under_mixed_precision():
    layer = MaskedConv2D(4, 3, mask_type="A", dtype="mixed_float16")
    out = layer(np.ones((1, 4, 4, 1), np.float32))
    assert out.dtype == tf.float16
    assert layer.kernel.dtype == "float32"
