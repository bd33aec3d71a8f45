"""Tests of PixelCNN++: its shifted convolutions, gated blocks and the network.

The shared contract (causality, exact normalisation, sampling, save/load) is
in test_model_contract.py; here: what is special to this model.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import pixel_models as pm
from pixel_models.layers import (
    GatedResnet,
    ShiftedConv2D,
    ShiftedConv2DTranspose,
    concat_elu,
    down_shift,
    right_shift,
)
from pixel_models.testing import dependencies, sharpen_every_weight


def _seen(layer, shape):
    """``seen[i, j, k, l]``: output (i, j) depends on input (k, l) (summed over features)."""
    found = dependencies(layer, shape)
    return found.any(axis=(2, 5))


def test_shift_functions_on_hand_computed_arrays():
    x = np.arange(1, 7, dtype="float32").reshape(1, 2, 3, 1)
    assert np.asarray(down_shift(x))[0, :, :, 0].tolist() == [[0, 0, 0], [1, 2, 3]]
    assert np.asarray(right_shift(x))[0, :, :, 0].tolist() == [[0, 1, 2], [0, 4, 5]]
    y = np.asarray(concat_elu(np.array([[0.0, 2.0]], "float32")))
    np.testing.assert_allclose(y, [[0.0, 2.0, 0.0, np.expm1(-2.0)]], rtol=1e-6)


@pytest.mark.parametrize(
    "kernel, direction, shift, expected",
    [
        ((2, 3), "down", False, [[1, 1, 1], [1, 1, 1], [0, 0, 0]]),
        ((2, 3), "down", True, [[1, 1, 1], [0, 0, 0], [0, 0, 0]]),
        ((2, 2), "down_right", False, [[1, 1, 0], [1, 1, 0], [0, 0, 0]]),
        ((2, 1), "down_right", True, [[1, 0, 0], [1, 0, 0], [0, 0, 0]]),
    ],
)
def test_shifted_conv_windows(kernel, direction, shift, expected):
    layer = ShiftedConv2D(2, kernel, direction, shift=shift)
    seen = _seen(layer, (5, 5, 1))
    # What output (2, 2) reads, rows 1..3 and columns 1..3.
    assert seen[2, 2, 1:4, 1:4].astype(int).tolist() == expected


def test_strided_and_transposed_convs_keep_the_streams_causal():
    """A down-right stream through a strided and a transposed conv still sees only
    pixels before the output in raster order."""
    inputs = keras.Input((5, 4, 1))
    ul = ShiftedConv2D(2, (2, 1), "down_right", shift=True)(inputs)
    ul = keras.layers.Add()([ul, ShiftedConv2D(2, (1, 3), "down", shift=True)(inputs)])
    low = ShiftedConv2D(2, (2, 2), "down_right", strides=2)(ul)
    assert tuple(low.shape[1:3]) == (3, 2)
    up = ShiftedConv2DTranspose(2, (2, 2), "down_right", 2, target_size=(5, 4))(low)
    model = keras.Model(inputs, up)
    sharpen_every_weight(model)
    seen = _seen(model, (5, 4, 1)).reshape(20, 20)
    before = np.arange(20)[:, None] > np.arange(20)[None, :]
    assert not (seen & ~before).any()
    assert seen.any()


def test_transposed_conv_shapes_and_bad_target():
    up = ShiftedConv2DTranspose(3, (2, 3), "down", strides=2)
    assert tuple(up(np.zeros((1, 2, 3, 2), "float32")).shape) == (1, 4, 6, 3)
    with pytest.raises(ValueError, match="target_size"):
        ShiftedConv2DTranspose(3, (2, 2), "down_right", 2, target_size=(9, 9))(
            np.zeros((1, 2, 2, 1), "float32")
        )


def test_layer_arguments_are_checked():
    with pytest.raises(ValueError, match="direction"):
        ShiftedConv2D(2, (2, 2), "up")
    with pytest.raises(ValueError, match="odd width"):
        ShiftedConv2D(2, (2, 2), "down")
    with pytest.raises(ValueError, match="shift=True needs strides=1"):
        ShiftedConv2D(2, (2, 3), "down", strides=2, shift=True)
    with pytest.raises(ValueError, match="dropout"):
        GatedResnet("down", dropout=1.0)


@pytest.mark.parametrize(
    "layer",
    [
        ShiftedConv2D(3, (2, 2), "down_right", strides=2, name="c"),
        ShiftedConv2DTranspose(3, (2, 3), "down", 2, target_size=(3, 5), name="t"),
        GatedResnet("down_right", dropout=0.25, name="g"),
    ],
    ids=["conv", "transpose", "resnet"],
)
def test_layer_get_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_gated_resnet_dropout_only_in_training_and_condition_is_required():
    block = GatedResnet("down", dropout=0.5)
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
    a = np.asarray(block(x, training=False))
    np.testing.assert_array_equal(a, np.asarray(block(x, training=False)))
    assert not np.allclose(a, np.asarray(block(x, training=True)))
    with pytest.raises(ValueError, match="call it the same way"):
        block(x, condition=np.ones((2, 3), "float32"))


@pytest.mark.slow
def test_every_earlier_pixel_is_seen_no_blind_spot():
    shape = (5, 4, 3)
    model = pm.build_model(
        "pixel_cnn_pp", image_shape=shape, levels=4, hidden_dims=4, num_resnet=1, num_mixtures=1
    )
    sharpen_every_weight(model)
    seen = _seen(lambda x: model(x, training=False), shape).reshape(20, 20)
    before = np.arange(20)[:, None] > np.arange(20)[None, :]
    np.testing.assert_array_equal(seen, before)


def test_odd_sizes_and_conditioning_build():
    model = pm.build_model(
        "pixel_cnn_pp",
        image_shape=(5, 3, 1),
        levels=2,
        hidden_dims=4,
        num_resnet=1,
        num_resolutions=3,
        num_mixtures=2,
        num_classes=3,
    )
    assert model.output_shape == (None, 5, 3, 6)
    x = np.zeros((2, 5, 3, 1), "float32")
    a = np.asarray(model([x, np.array([0, 1])], training=False))
    b = np.asarray(model([x, np.array([2, 1])], training=False))
    assert not np.allclose(a[0], b[0]) and np.allclose(a[1], b[1])


def test_builder_arguments_are_checked():
    with pytest.raises(ValueError, match="num_resnet"):
        pm.build_model("pixel_cnn_pp", image_shape=(4, 4, 1), levels=2, num_resnet=0)
    with pytest.raises(ValueError, match="dropout"):
        pm.build_model("pixel_cnn_pp", image_shape=(4, 4, 1), levels=2, dropout=1.5)


@pytest.mark.slow
def test_pixel_cnn_pp_learns_colored_shapes():
    from shapes_learning import train_on_colored_shapes

    def build():
        return pm.build_model(
            "pixel_cnn_pp",
            image_shape=(8, 8, 3),
            levels=4,
            hidden_dims=16,
            num_resnet=1,
            num_resolutions=2,
            num_mixtures=3,
            dropout=0.0,
        )

    _, after = train_on_colored_shapes(build, 300, "pixel_cnn_pp")
    assert after < 0.6 * 2.0


# ---------------------------------------------------------------------------
# Cached sampling at every resolution
# ---------------------------------------------------------------------------


def _cached_model(shape, levels, resolutions, **kwargs):
    keras.utils.set_random_seed(1)
    model = pm.build_model(
        "pixel_cnn_pp",
        image_shape=shape,
        levels=levels,
        hidden_dims=4,
        num_resnet=1,
        num_resolutions=resolutions,
        num_mixtures=2,
        **kwargs,
    )
    return sharpen_every_weight(model, seed=1)


@pytest.mark.parametrize(
    "shape, levels, resolutions",
    [
        ((4, 4, 1), 2, 3),
        ((5, 3, 3), 4, 2),
    ],
    ids=["4x4_binary_3res", "5x3_rgb_odd_2res"],
)
def test_cached_logits_equal_the_full_network_at_every_position(shape, levels, resolutions):
    model = _cached_model(shape, levels, resolutions)
    assert pm.sampling.supports_cached(model)
    x = np.random.default_rng(0).integers(0, levels, (2, *shape)).astype("float32")
    np.testing.assert_allclose(
        pm.sampling.cached_logits(model, x), np.asarray(model(x, training=False)), atol=1e-5
    )


def test_strided_and_transposed_steps_run_at_their_own_scale():
    from pixel_models.sampling.loops import plan_of

    plan = plan_of(_cached_model((8, 8, 3), 4, 3))
    scales = {step.scale for step in plan.row_steps + plan.position_steps}
    assert scales == {1, 2, 4}
    # The buffers of the lower resolutions have their own sizes.
    sizes = {plan.size(key) for key in plan.pads}
    assert {(8, 8), (4, 4), (2, 2)} <= sizes


def test_cached_samples_and_completions_equal_the_reference_loop():
    model = _cached_model((4, 3, 3), 4, 2, num_classes=3)
    labels = np.array([0, 1, 2, 0])
    drawn = {
        m: pm.sample(model, 4, seed=5, method=m, condition=labels) for m in ("cached", "reference")
    }
    np.testing.assert_array_equal(drawn["cached"], drawn["reference"])
    assert len(np.unique(drawn["cached"].reshape(4, -1), axis=0)) > 1
    known = np.zeros(drawn["cached"].shape, bool)
    known[:, :2] = True
    known[:, 3, 1, 0] = True  # a known R with unknown G and B
    completed = {
        m: pm.complete(model, drawn["cached"], known, seed=6, method=m, condition=labels)
        for m in ("cached", "reference")
    }
    np.testing.assert_array_equal(completed["cached"], completed["reference"])
    np.testing.assert_array_equal(completed["cached"][known], drawn["cached"][known])
    tempered = pm.sample(model, 2, seed=5, temperature=0.5, condition=labels[:2])
    assert tempered.shape == (2, 4, 3, 3) and tempered.max() < 4
