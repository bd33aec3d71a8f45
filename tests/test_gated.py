"""Tests for pixel_models.layers.gated: shifts, masks and GatedBlock."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixel_models.layers.gated import GatedBlock, horizontal_mask, shift_down
from pixel_models.layers.masked_conv import MaskedConv2D, make_mask
from pixel_models.testing import assert_causal, dependencies, raster_allowed


def _random(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(np.float32)


# ---------------------------------------------------------------------------
# shift_down and horizontal_mask on hand-written arrays
# ---------------------------------------------------------------------------


def test_shift_down_moves_rows_down_and_fills_zeros():
    x = np.arange(1, 13, dtype=np.float32).reshape(1, 4, 3, 1)
    np.testing.assert_array_equal(
        np.asarray(shift_down(x))[0, :, :, 0],
        [[0, 0, 0], [1, 2, 3], [4, 5, 6], [7, 8, 9]],
    )
    np.testing.assert_array_equal(
        np.asarray(shift_down(x, 2))[0, :, :, 0],
        [[0, 0, 0], [0, 0, 0], [1, 2, 3], [4, 5, 6]],
    )
    np.testing.assert_array_equal(np.asarray(shift_down(x, 0)), x)
    np.testing.assert_array_equal(np.asarray(shift_down(x, 5)), np.zeros_like(x))


def test_shift_down_keeps_batch_and_features_apart():
    x = _random((2, 3, 2, 4))
    out = np.asarray(shift_down(x))
    assert out.shape == x.shape
    np.testing.assert_array_equal(out[:, 1:], x[:, :-1])
    np.testing.assert_array_equal(out[:, 0], 0.0)


def test_shift_down_rejects_negative_rows():
    with pytest.raises(ValueError, match="rows"):
        shift_down(np.zeros((1, 2, 2, 1), np.float32), -1)


@pytest.mark.parametrize(
    "kernel_size, mask_type, row",
    [
        (1, "A", [0]),
        (1, "B", [1]),
        (3, "A", [1, 0]),
        (3, "B", [1, 1]),
        (5, "A", [1, 1, 0]),
        (5, "B", [1, 1, 1]),
        (7, "A", [1, 1, 1, 0]),
    ],
)
def test_horizontal_mask_one_colour_channel(kernel_size, mask_type, row):
    mask = horizontal_mask(kernel_size, 2, 3, mask_type)
    assert mask.shape == (1, kernel_size // 2 + 1, 2, 6)
    assert mask.dtype == np.float32
    expected = np.array(row, np.float32)[None, :, None, None]
    np.testing.assert_array_equal(mask, np.broadcast_to(expected, mask.shape))


def test_horizontal_mask_colour_groups_are_the_same_in_both_gate_halves():
    # Input: the RGB image (one feature per channel); output: 3 features per half.
    mask = horizontal_mask(3, 3, 3, "A", color_channels=3)
    assert mask.shape == (1, 2, 3, 6)
    np.testing.assert_array_equal(mask[0, 0], np.ones((3, 6)))  # the pixel to the left
    strictly_lower = [[0, 1, 1], [0, 0, 1], [0, 0, 0]]  # [input group, output group]
    np.testing.assert_array_equal(mask[0, 1], np.hstack([strictly_lower] * 2))
    mask = horizontal_mask(3, 6, 6, "B", color_channels=3)
    # Features 2g, 2g + 1 of each half are group g: output group g sees input groups <= g.
    lower = np.kron([[1, 1, 1], [0, 1, 1], [0, 0, 1]], np.ones((2, 2)))
    np.testing.assert_array_equal(mask[0, 1], np.hstack([lower] * 2))
    # The same rule as the centre of make_mask, for each half.
    np.testing.assert_array_equal(mask[0, 1, :, :6], make_mask(1, 6, 6, "B", 3)[0, 0])


@pytest.mark.parametrize("kernel_size", [0, 2, 4, -3, 3.0, True])
def test_horizontal_mask_rejects_bad_kernel_sizes(kernel_size):
    with pytest.raises(ValueError, match="kernel_size"):
        horizontal_mask(kernel_size, 1, 1, "A")


# ---------------------------------------------------------------------------
# GatedBlock: shapes and arguments
# ---------------------------------------------------------------------------


def test_block_output_shapes_and_weights():
    x = _random((2, 6, 5, 3))
    block = GatedBlock(6, 5, mask_type="A", color_channels=3)
    v, h, skip = block((x, x))
    for out in (v, h, skip):
        assert tuple(out.shape) == (2, 6, 5, 6)
    shapes = {w.name: tuple(w.shape) for w in block.weights}
    assert shapes["vertical_kernel"] == (3, 5, 3, 12)
    assert shapes["horizontal_kernel"] == (1, 3, 3, 12)
    assert shapes["link_kernel"] == (12, 12)
    assert shapes["output_kernel"] == (6, 6)
    assert not any(name.startswith(("condition", "spatial")) for name in shapes)
    # The first block's horizontal output is its skip; later blocks add the skip
    # to their horizontal input (the residual stream).
    np.testing.assert_array_equal(np.asarray(h), np.asarray(skip))
    v2, h2, skip2 = GatedBlock(6, 3, color_channels=3)((v, h))
    assert tuple(h2.shape) == (2, 6, 5, 6)
    np.testing.assert_allclose(np.asarray(h2), np.asarray(h) + np.asarray(skip2), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(filters=0), "filters"),
        (dict(filters=-2), "filters"),
        (dict(kernel_size=4), "kernel_size"),
        (dict(kernel_size=0), "kernel_size"),
        (dict(kernel_size=(3, 3)), "kernel_size"),
        (dict(mask_type="C"), "mask_type"),
        (dict(filters=2, color_channels=3), "colour groups"),
    ],
)
def test_block_rejects_bad_arguments(kwargs, match):
    config = dict(filters=4, kernel_size=3, mask_type="A")
    config.update(kwargs)
    with pytest.raises(ValueError, match=match):
        GatedBlock(**config)


def test_type_b_block_needs_filters_horizontal_features():
    x = _random((1, 4, 4, 1))
    with pytest.raises(ValueError, match="adds its horizontal input"):
        GatedBlock(4, mask_type="B")((x, x))


def test_block_must_be_called_with_the_conditioning_it_was_built_with():
    x = _random((2, 4, 4, 4))
    c = np.eye(2, dtype=np.float32)
    block = GatedBlock(4)
    block((x, x), condition=c)
    with pytest.raises(ValueError, match="built with a condition"):
        block((x, x))
    plain = GatedBlock(4)
    plain((x, x))
    with pytest.raises(ValueError, match="built without a condition"):
        plain((x, x), condition=c)
    with pytest.raises(ValueError, match="condition must be"):
        GatedBlock(4)((x, x), condition=x)
    with pytest.raises(ValueError, match="pair"):
        GatedBlock(4)(x)


# ---------------------------------------------------------------------------
# Causality
# ---------------------------------------------------------------------------

CAUSAL_CASES = [(1, 3), (1, 5), (3, 3), (3, 5)]
CAUSAL_IDS = ["binary-k3", "binary-k5", "rgb-k3", "rgb-k5"]


def _first_block(colours, kernel_size, filters=6, seed=0):
    keras.utils.set_random_seed(seed)
    return GatedBlock(filters, kernel_size, mask_type="A", color_channels=colours)


def _later_block(colours, kernel_size, filters=6, seed=1):
    keras.utils.set_random_seed(seed)
    return GatedBlock(filters, kernel_size, mask_type="B", color_channels=colours)


@pytest.mark.parametrize("colours, kernel_size", CAUSAL_CASES, ids=CAUSAL_IDS)
def test_first_block_horizontal_output_is_strictly_causal(colours, kernel_size):
    # (The first block's skip output is its horizontal output: see the shapes test.)
    image_shape = (5, 5, colours)
    block = _first_block(colours, kernel_size)
    found = assert_causal(lambda x: block((x, x))[1], image_shape, strict=True)
    # Not vacuous: the pixel to the left and the row above are seen.
    assert found[2, 2, :, 2, 1].all() and found[2, 2, :, 1, 2].all()
    if colours == 3:
        # Group g of the current pixel sees exactly colour channels < g of it.
        groups = np.arange(6) // 2
        np.testing.assert_array_equal(found[2, 2, :, 2, 2], groups[:, None] > np.arange(3)[None, :])


@pytest.mark.parametrize("colours, kernel_size", CAUSAL_CASES, ids=CAUSAL_IDS)
def test_later_block_on_type_b_features_is_causal_non_strict(colours, kernel_size):
    # A later block reads features that may see the current pixel's own colour
    # group (type B) and vertical features that end one row up.
    image_shape = (5, 5, colours)
    keras.utils.set_random_seed(2)
    lift = MaskedConv2D(6, 1, mask_type="B", color_channels=colours)
    block = _later_block(colours, kernel_size)

    def horizontal(x):
        features = lift(x)
        return block((shift_down(features), features))[1]

    found = assert_causal(horizontal, image_shape, strict=False)
    groups = np.arange(6) // 2 if colours == 3 else np.zeros(6, int)
    same_pixel = groups[:, None] >= np.arange(colours)[None, :]
    np.testing.assert_array_equal(found[2, 2, :, 2, 2], same_pixel)


def test_negative_control_without_the_shift_the_vertical_stack_leaks():
    # The same later block fed unshifted vertical features reads the current
    # row, right of the current pixel included: the checks must catch it.
    keras.utils.set_random_seed(2)
    lift = MaskedConv2D(4, 1, mask_type="B")
    block = GatedBlock(4, 3)

    def horizontal(x):
        features = lift(x)
        return block((features, features))[1]

    with pytest.raises(AssertionError, match="forbidden dependencies"):
        assert_causal(horizontal, (4, 4, 1), strict=False)


@pytest.mark.parametrize("colours, kernel_size", CAUSAL_CASES, ids=CAUSAL_IDS)
def test_first_then_later_blocks_are_strictly_causal(colours, kernel_size):
    image_shape = (5, 5, colours)
    first = _first_block(colours, kernel_size)
    later = _later_block(colours, kernel_size)
    assert_causal(lambda x: later(first((x, x))[:2])[1], image_shape, strict=True, reaches=0.5)


@pytest.mark.parametrize("colours, kernel_size", CAUSAL_CASES, ids=CAUSAL_IDS)
def test_vertical_output_at_row_i_depends_only_on_rows_above(colours, kernel_size):
    image_shape = (5, 5, colours)
    first = _first_block(colours, kernel_size)
    later = _later_block(colours, kernel_size)
    for fn in (lambda x: first((x, x))[0], lambda x: later(first((x, x))[:2])[0]):
        found = dependencies(fn, image_shape)
        for i in range(5):
            # Nothing in row i or below, whatever the column or channel ...
            assert not found[i, :, :, i:].any()
            # ... and the row just above, to the left and to the right, is seen.
            if i > 0:
                assert found[i, 2, :, i - 1, 1:4].all()


def test_single_first_block_receptive_field_matches_the_drawing():
    # The drawing of the GatedBlock docstring, for output (2, 2), k = 3:
    #   . V V V .
    #   . V V V .
    #   . H o . .
    block = _first_block(1, 3, filters=4)
    vertical = dependencies(lambda x: block((x, x))[0], (5, 5, 1))[2, 2, :, :, :, 0].any(0)
    horizontal = dependencies(lambda x: block((x, x))[1], (5, 5, 1))[2, 2, :, :, :, 0].any(0)
    v_expected = np.zeros((5, 5), bool)
    v_expected[0:2, 1:4] = True
    np.testing.assert_array_equal(vertical, v_expected)
    h_expected = v_expected.copy()
    h_expected[2, 1] = True
    np.testing.assert_array_equal(horizontal, h_expected)


def test_stacked_blocks_have_no_blind_spot():
    # Four blocks with k = 3: the vertical stack grows one column per block on
    # each side, so even (1, 0) sees (0, 4), which masked 3x3 convolutions of
    # the same depth never reach.
    image_shape = (5, 5, 1)
    keras.utils.set_random_seed(0)
    blocks = [GatedBlock(8, 3, mask_type="A")] + [GatedBlock(8, 3) for _ in range(3)]

    def horizontal(x):
        v, h = x, x
        for block in blocks:
            v, h, _ = block((v, h))
        return h

    found = dependencies(horizontal, image_shape, num_inputs=4)
    allowed = raster_allowed(image_shape, 8, strict=True)
    np.testing.assert_array_equal(found, allowed)


# ---------------------------------------------------------------------------
# Conditioning
# ---------------------------------------------------------------------------


def test_conditioning_changes_outputs_but_not_causality():
    image_shape = (4, 4, 3)
    keras.utils.set_random_seed(0)
    block = GatedBlock(6, 3, mask_type="A", color_channels=3)
    x = _random((2, *image_shape))
    c = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
    s = _random((2, 4, 4, 2), seed=1)
    outputs = block((x, x), condition=c, spatial_condition=s)
    names = {w.name for w in block.weights}
    assert {"condition_vertical", "condition_horizontal"} <= names
    assert {"spatial_vertical", "spatial_horizontal"} <= names
    for other_c, other_s in ((c[::-1], s), (c, s[::-1])):
        changed = block((x, x), condition=other_c, spatial_condition=other_s)
        for before, after in zip(outputs, changed, strict=True):
            assert not np.allclose(np.asarray(before), np.asarray(after))
    for label in range(2):

        def horizontal(image, label=label):
            return block((image, image), condition=c[label : label + 1], spatial_condition=s[:1])[1]

        assert_causal(horizontal, image_shape, strict=True)


def test_vector_condition_is_the_same_bias_at_every_position():
    keras.utils.set_random_seed(0)
    block = GatedBlock(4, 3, mask_type="A")
    x = np.zeros((1, 4, 4, 1), np.float32)
    c = np.array([[0.5, -1.0]], np.float32)
    block((x, x), condition=c)
    # With zero image features (and zero biases) every position gets the same
    # vertical pre-activation, except the top row, where the shifted-in zeros
    # also give zero; the condition term itself has no spatial dependence.
    v = np.asarray(block((x, x), condition=c)[0])[0]
    np.testing.assert_allclose(v, np.broadcast_to(v[:1, :1], v.shape), atol=1e-6)
    assert np.abs(v).max() > 0


# ---------------------------------------------------------------------------
# Position-wise form (cached sampling)
# ---------------------------------------------------------------------------


def _rows_then_positions(block, v, h, condition=None):
    """Evaluates a block with vertical_window()/call_vertical_row() row by row and
    horizontal_window()/call_horizontal_window() position by position, from
    zero-padded copies of its inputs, as a cached sampler does."""
    _, height, width, _ = v.shape
    top, bottom, left, right = block.vertical_window()
    h_top, h_left, h_right = block.horizontal_window()
    assert (h_top, h_right) == (0, 0)
    v_padded = np.pad(v, [(0, 0), (top, 0), (left, right), (0, 0)])
    h_padded = np.pad(h, [(0, 0), (0, 0), (h_left, 0), (0, 0)])
    outs = [np.zeros((*v.shape[:3], block.filters), np.float32) for _ in range(3)]
    for i in range(height):
        # Padded rows top + i - top .. top + i - bottom: image rows i - top .. i - bottom.
        window = v_padded[:, i : i + top - bottom + 1]
        v_row, link = block.call_vertical_row(window, condition)
        outs[0][:, i] = np.asarray(v_row)
        for j in range(width):
            h_window = h_padded[:, i : i + 1, j : j + h_left + 1]
            h_out, skip = block.call_horizontal_window(h_window, np.asarray(link)[:, j], condition)
            outs[1][:, i, j], outs[2][:, i, j] = np.asarray(h_out), np.asarray(skip)
    return outs


@pytest.mark.parametrize("colours, kernel_size", [(1, 3), (3, 5)])
def test_position_wise_form_equals_call(colours, kernel_size):
    keras.utils.set_random_seed(0)
    x = _random((2, 5, 4, colours))
    condition = _random((2, 3), seed=1)
    first = GatedBlock(6, kernel_size, mask_type="A", color_channels=colours)
    later = GatedBlock(6, 3, mask_type="B", color_channels=colours, bias_initializer="ones")
    v, h, skip = (np.asarray(t) for t in first((x, x), condition=condition))
    positionwise = _rows_then_positions(first, x, x, condition)
    for actual, expected in zip(positionwise, (v, h, skip), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    # Type A reads the image rows above (its input is shifted down); type B the
    # current row of a vertical stack, which has seen only the rows above.
    assert first.vertical_window() == (kernel_size // 2 + 1, 1, kernel_size // 2, kernel_size // 2)
    assert later.vertical_window() == (1, 0, 1, 1)
    expected = [np.asarray(t) for t in later((v, h))]
    for actual, want in zip(_rows_then_positions(later, v, h), expected, strict=True):
        np.testing.assert_allclose(actual, want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Serialization and precision
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("conditional", [False, True], ids=["plain", "conditional"])
def test_block_get_config_round_trip(conditional):
    block = GatedBlock(6, 5, mask_type="A", color_channels=3, bias_initializer="ones", name="g")
    x = _random((2, 5, 5, 3))
    kwargs = dict(condition=np.eye(2, dtype=np.float32)) if conditional else {}
    out = block((x, x), **kwargs)
    config = block.get_config()
    for key in ("filters", "kernel_size", "mask_type", "color_channels"):
        assert config[key] == getattr(block, key)
    clone = GatedBlock.from_config(config)
    assert (clone.filters, clone.kernel_size, clone.mask_type, clone.color_channels) == (
        6,
        5,
        "A",
        3,
    )
    clone((x, x), **kwargs)
    clone.set_weights(block.get_weights())
    for a, b in zip(out, clone((x, x), **kwargs), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    registered = keras.saving.get_registered_object("pixel_models>GatedBlock")
    assert registered is GatedBlock


def test_block_under_mixed_precision_stays_causal():
    image_shape = (4, 4, 3)
    keras.utils.set_random_seed(0)
    block = GatedBlock(6, 3, mask_type="A", color_channels=3, dtype="mixed_float16")
    x = _random((1, *image_shape))
    v, h, skip = block((x, x), condition=np.ones((1, 2), np.float32))
    assert h.dtype == tf.float16 and v.dtype == tf.float16
    assert block.vertical_kernel.dtype == "float32"

    def horizontal(image):
        return tf.cast(block((image, image), condition=np.ones((1, 2), np.float32))[1], "float32")

    assert_causal(horizontal, image_shape, strict=True)
