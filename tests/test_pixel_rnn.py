"""Tests for the PixelRNN builder: causality, receptive fields, normalisation, serialization,
sampling and learning."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pixel_models import sampling
from pixel_models.distributions import PixelHead
from pixel_models.layers.masked_conv import MaskedConv2D
from pixel_models.layers.recurrent import DiagonalBiLSTM, RowLSTM
from pixel_models.models.common import model_input
from pixel_models.models.pixel_rnn import RNN_TYPES, pixel_rnn
from pixel_models.testing import (
    assert_causal,
    dependencies,
    log_prob_of_every_image,
    random_images,
    raster_allowed,
    round_trips,
    total_probability,
)
from pixel_models.testing import (
    sharpen_every_weight as _sharpen,
)


def _small(image_shape, levels=2, rnn_type="diagonal_bilstm", use_residual=False, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    config = dict(
        image_shape=image_shape,
        levels=levels,
        hidden_dims=6,
        recurrent_length=2,
        out_hidden_dims=8,
        out_recurrent_length=1,
        use_residual=use_residual,
        rnn_type=rnn_type,
    )
    config.update(kwargs)
    return pixel_rnn(**config)


# ---------------------------------------------------------------------------
# Receptive fields the paper implies, on positions (binary images)
# ---------------------------------------------------------------------------


def _masked_conv_field(height, width, kernel_size):
    """[i, j, k, l]: a k x k type-A convolution at (i, j) reads input (k, l)."""
    r = kernel_size // 2
    field = np.zeros((height, width, height, width), bool)
    for i in range(height):
        for j in range(width):
            field[i, j, max(0, i - r) : i, max(0, j - r) : j + r + 1] = True
            field[i, j, i, max(0, j - r) : j] = True
    return field


def _row_lstm_field(height, width, kernel_size):
    """One type-B Row LSTM: the current row's j - r .. j and the previous row's states."""
    r = kernel_size // 2
    field = np.zeros((height, width, height, width), bool)
    for i in range(height):
        for j in range(width):
            field[i, j, i, max(0, j - r) : j + 1] = True
            if i > 0:
                field[i, j] |= field[i - 1, max(0, j - r) : j + r + 1].any(axis=0)
    return field


def _model_field(height, width, rnn_type, layers, first_kernel_size=7, use_residual=False):
    """What output (i, j) of a binary pixel_rnn sees: the layers' fields composed."""
    field = _masked_conv_field(height, width, first_kernel_size)
    if rnn_type == "row_lstm":
        lstm = _row_lstm_field(height, width, 3)
    else:  # every earlier position and the position itself (tests/test_recurrent.py)
        lstm = raster_allowed((height, width, 1), 1, strict=False)[:, :, 0, :, :, 0]
    if use_residual:
        lstm = lstm | np.eye(height * width, dtype=bool).reshape(field.shape)
    for _ in range(layers):
        field = np.einsum("ijkl,klmn->ijmn", lstm, field) > 0
    return field  # the 1x1 output layers change nothing


# ---------------------------------------------------------------------------
# Causality
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("rnn_type", RNN_TYPES)
@pytest.mark.parametrize("use_residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize(
    "image_shape, levels", [((3, 3, 1), 2), ((2, 2, 3), 4)], ids=["binary", "rgb4"]
)
def test_pixel_rnn_is_causal(image_shape, levels, use_residual, rnn_type):
    # One LSTM layer keeps the gradient check fast; stacks of two are checked
    # by the normalisation and receptive-field tests below.
    model = _small(image_shape, levels, rnn_type, use_residual, recurrent_length=1)
    # Not vacuous: the model does depend on earlier dimensions.
    found = assert_causal(model, image_shape, strict=True, reaches=0.8)
    assert found.shape == (*image_shape, *image_shape)


@pytest.mark.slow
def test_diagonal_bilstm_sees_every_previous_pixel_but_the_row_end_gap():
    image_shape = (5, 5, 1)
    model = _small(image_shape, hidden_dims=16, out_hidden_dims=16, recurrent_length=1)
    found = dependencies(model, image_shape, num_inputs=6)
    allowed = raster_allowed(image_shape)
    assert not np.any(found & ~allowed)
    seen = found[:, :, 0, :, :, 0]
    # No blind spot: the last pixel and the middle of the last row see every earlier pixel.
    np.testing.assert_array_equal(seen[4, 4], allowed[4, 4, 0, :, :, 0])
    assert seen[4, 4].sum() == 24
    np.testing.assert_array_equal(seen[4, 2], allowed[4, 2, 0, :, :, 0])
    assert seen[4, 2].sum() == 22
    # Exactly the composed field of the paper's layers, which has one gap: the
    # 7x7 type-A convolution puts pixel (i - 1, W - 1) only into features at
    # (i, >= W - 4) and later, so outputs (i, j < W - 4) cannot see it.
    np.testing.assert_array_equal(seen, _model_field(5, 5, "diagonal_bilstm", 1))
    gaps = np.argwhere(allowed[:, :, 0, :, :, 0] & ~seen)
    assert gaps.tolist() == [[i, 0, i - 1, 4] for i in range(1, 5)]


@pytest.mark.parametrize("rnn_type", RNN_TYPES)
def test_rgb_dependencies_equal_raster_order_exactly(rnn_type):
    image_shape = (2, 2, 3)
    model = _small(
        image_shape, 4, rnn_type, hidden_dims=24, out_hidden_dims=24, recurrent_length=1, seed=1
    )
    found = dependencies(model, image_shape, num_inputs=4)
    # Channel c of a pixel sees channels < c of that pixel and not c itself.
    np.testing.assert_array_equal(found, raster_allowed(image_shape, strict=True))


def test_row_lstm_model_reaches_exactly_its_triangular_field():
    # A 3x3 first layer keeps the field small enough to see the triangle in a 4x8 image.
    height, width = 4, 8
    model = _small(
        (height, width, 1),
        rnn_type="row_lstm",
        hidden_dims=12,
        out_hidden_dims=12,
        first_kernel_size=3,
    )
    found = dependencies(model, (height, width, 1), num_inputs=4)[:, :, 0, :, :, 0]
    np.testing.assert_array_equal(found, _model_field(height, width, "row_lstm", 2, 3))
    # Spelled out: after the 3x3 type-A convolution, two Row LSTM layers (k = 3)
    # let output (i, j) see columns j - 3 .. j - 1 of its row and columns
    # j - 3 - d .. j + d of row i - d: a triangle, not the whole past.
    for i, j in [(3, 0), (3, 3), (3, 7), (2, 5)]:
        expected = np.zeros((height, width), bool)
        expected[i, max(0, j - 3) : j] = True
        for d in range(1, i + 1):
            expected[i - d, max(0, j - 3 - d) : j + d + 1] = True
        np.testing.assert_array_equal(found[i, j], expected)
    allowed = raster_allowed((height, width, 1))[:, :, 0, :, :, 0]
    assert not found[3, 0, 2, 2:].any() and allowed[3, 0, 2, 2:].all()


# ---------------------------------------------------------------------------
# Exact normalisation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("rnn_type", RNN_TYPES)
@pytest.mark.parametrize(
    "image_shape, levels, use_residual",
    [
        ((2, 2, 1), 2, False),
        ((3, 3, 1), 2, True),
        ((2, 2, 3), 2, False),
        ((1, 2, 3), 4, True),
    ],
    ids=["binary2x2", "binary3x3-residual", "rgb2x2-levels2", "rgb1x2-levels4-residual"],
)
def test_total_probability_is_one(image_shape, levels, use_residual, rnn_type):
    model = _sharpen(_small(image_shape, levels, rnn_type, use_residual, hidden_dims=6))
    log_p = log_prob_of_every_image(model)
    assert len(log_p) == levels ** int(np.prod(image_shape))
    # The distribution is far from uniform, so the sum is a real check.
    assert log_p.max() - log_p.min() > 0.5
    assert total_probability(model) == pytest.approx(1.0, abs=1e-4)


class _UnshiftedBiLSTM(DiagonalBiLSTM):
    """The carpedm20 bug: the right-to-left stream added without the shift down."""

    def call(self, inputs):
        backward = self.backward_lstm(keras.ops.flip(inputs, axis=2))
        return self.forward_lstm(inputs) + keras.ops.flip(backward, axis=2)


def _unshifted_model(image_shape, seed):
    keras.utils.set_random_seed(seed)
    inputs, x = model_input(image_shape, 2)
    x = MaskedConv2D(8, 7, mask_type="A", name="conv_a")(x)
    x = _UnshiftedBiLSTM(8)(x)
    x = MaskedConv2D(1, 1, mask_type="B", name="logits")(x)
    return _sharpen(keras.Model(inputs, PixelHead("bernoulli", 1, 2)(x)), seed, scale=3.0)


def test_negative_control_unshifted_bilstm_fails_both_checks():
    image_shape = (2, 2, 1)
    totals = [total_probability(_unshifted_model(image_shape, seed)) for seed in range(3)]
    print(f"unshifted BiLSTM: total probabilities {np.round(totals, 3).tolist()}")
    assert max(abs(total - 1.0) for total in totals) > 0.2
    with pytest.raises(AssertionError, match="forbidden dependencies"):
        assert_causal(_unshifted_model(image_shape, 0), image_shape, strict=True)


# ---------------------------------------------------------------------------
# Structure, heads and arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rnn_type, lstm_type", [("diagonal_bilstm", DiagonalBiLSTM), ("row_lstm", RowLSTM)]
)
@pytest.mark.parametrize("use_residual", [False, True], ids=["plain", "residual"])
def test_layer_stack_follows_the_paper(rnn_type, lstm_type, use_residual):
    model = pixel_rnn(
        (8, 8, 3),
        levels=4,
        hidden_dims=9,
        recurrent_length=3,
        out_hidden_dims=6,
        out_recurrent_length=2,
        use_residual=use_residual,
        rnn_type=rnn_type,
    )
    lstms = [layer for layer in model.layers if isinstance(layer, lstm_type)]
    assert [layer.name for layer in lstms] == ["lstm0", "lstm1", "lstm2"]
    assert all(layer.units == 9 and layer.mask_type == "B" for layer in lstms)
    assert all(layer.color_channels == 3 for layer in lstms)
    assert model.output_shape == (None, 8, 8, 3, 4)  # either LSTM keeps the image's size
    if rnn_type == "row_lstm":
        assert all(layer.kernel_size == 3 for layer in lstms)
    convs = [layer for layer in model.layers if isinstance(layer, MaskedConv2D)]
    projections = ["proj0", "proj1", "proj2"] if use_residual else []
    assert [layer.name for layer in convs] == ["conv_a", *projections, "out0", "out1", "logits"]
    assert [layer.mask_type for layer in convs] == ["A"] + ["B"] * (len(convs) - 1)
    assert convs[0].kernel_size == (7, 7)
    assert all(layer.kernel_size == (1, 1) for layer in convs[1:])
    assert [layer.filters for layer in convs] == [9] + [9] * len(projections) + [6, 6, 12]
    assert all(layer.color_channels == 3 for layer in convs)
    relu, linear = keras.activations.get("relu"), keras.activations.get(None)
    assert [layer.activation is relu for layer in convs] == (
        [False] * (1 + len(projections)) + [True, True, False]
    )
    assert convs[-1].activation is linear
    adds = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert adds == (["residual0", "residual1", "residual2"] if use_residual else [])


def test_zero_recurrent_layers_is_a_valid_model():
    model = _small((3, 3, 1), recurrent_length=0, out_recurrent_length=0)
    assert not any(isinstance(layer, DiagonalBiLSTM) for layer in model.layers)
    assert_causal(model, (3, 3, 1))
    assert total_probability(_sharpen(model)) == pytest.approx(1.0, abs=1e-4)


def test_unknown_rnn_type_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="diagonal_bilstm, row_lstm.*'gru'"):
        pixel_rnn((4, 4, 1), rnn_type="gru")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(hidden_dims=0),
        dict(recurrent_length=-1),
        dict(out_hidden_dims=0),
        dict(out_recurrent_length=-1),
        dict(image_shape=(4, 4, 3), hidden_dims=2),
        dict(image_shape=(4, 4, 3), out_hidden_dims=2),
        dict(image_shape=(0, 4, 1)),
        dict(levels=1),
        dict(first_kernel_size=4),
        dict(rnn_type="row_lstm", row_kernel_size=2),
        dict(rnn_type="Row_LSTM"),
    ],
)
def test_invalid_arguments_raise(kwargs):
    config = dict(image_shape=(4, 4, 1), hidden_dims=4, out_hidden_dims=4)
    config.update(kwargs)
    with pytest.raises(ValueError):
        pixel_rnn(**config)


@pytest.mark.parametrize("rnn_type", ["row_lstm", "diagonal_bilstm"])
def test_a_bad_row_kernel_size_is_refused_by_name_for_either_lstm(rnn_type):
    with pytest.raises(ValueError, match="^row_kernel_size must be an odd positive int, got 0"):
        pixel_rnn((4, 4, 1), hidden_dims=2, rnn_type=rnn_type, row_kernel_size=0)


# ---------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------

SERIAL_CASES = [
    ((4, 4, 1), 2, "diagonal_bilstm", True),
    ((3, 3, 3), 256, "row_lstm", False),
]
SERIAL_IDS = ["binary-diagonal-residual", "rgb256-row"]


@pytest.mark.parametrize(
    "image_shape, levels, rnn_type, use_residual", SERIAL_CASES, ids=SERIAL_IDS
)
def test_round_trips_give_identical_outputs(tmp_path, image_shape, levels, rnn_type, use_residual):
    model = _sharpen(_small(image_shape, levels, rnn_type, use_residual))
    _, loaded = round_trips(model, random_images(model, 3), tmp_path)
    lstm = loaded.get_layer("lstm0")
    assert type(lstm) is type(model.get_layer("lstm0"))
    assert lstm.color_channels == image_shape[-1]


# ---------------------------------------------------------------------------
# Sampling (the samplers run in a tf.while_loop under XLA)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rnn_type, image_shape, levels",
    [("diagonal_bilstm", (3, 3, 1), 2), ("row_lstm", (2, 2, 3), 4)],
)
def test_sample_works_and_is_reproducible(rnn_type, image_shape, levels):
    model = _sharpen(_small(image_shape, levels, rnn_type, hidden_dims=6))
    assert sampling.supports_cached(model)  # "auto": the cached loop (tests/test_rnn_sampling.py)
    images = sampling.sample(model, 2, seed=0)
    assert images.shape == (2, *image_shape)
    assert images.dtype == np.uint8
    assert images.min() >= 0 and images.max() < levels
    np.testing.assert_array_equal(sampling.sample(model, 2, seed=0), images)


# ---------------------------------------------------------------------------
# Learning
# ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("rnn_type", RNN_TYPES)
def test_pixel_rnn_learns_procedural_shapes(rnn_type):
    from shapes_learning import BASELINE, train_on_shapes

    def build():
        return pixel_rnn(
            (8, 8, 1),
            hidden_dims=16,
            recurrent_length=1,
            out_hidden_dims=32,
            out_recurrent_length=1,
            use_residual=True,
            rnn_type=rnn_type,
        )

    before, after = train_on_shapes(build, 200, rnn_type, test_images=256)
    assert before["nll"] > 0.9 * BASELINE
    assert after["nll"] < 0.5 * BASELINE
