"""Tests for pixel_models.layers.recurrent: skew/unskew, Row LSTM and Diagonal (Bi)LSTM."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixel_models.layers.masked_conv import channel_groups
from pixel_models.layers.recurrent import (
    DiagonalBiLSTM,
    DiagonalLSTM,
    RowLSTM,
    skew,
    unskew,
)
from pixel_models.testing import assert_causal, dependencies, raster_allowed

# ---------------------------------------------------------------------------
# skew / unskew on hand-written arrays
# ---------------------------------------------------------------------------


def _grid(rows):
    """(1, H, W, 1) float32 array from nested lists."""
    return np.array(rows, np.float32)[None, :, :, None]


def test_skew_shifts_row_i_right_by_i():
    x = _grid([[1, 2], [3, 4], [5, 6]])  # H = 3, W = 2
    expected = [
        [1, 2, 0, 0],
        [0, 3, 4, 0],
        [0, 0, 5, 6],
    ]
    out = np.asarray(skew(x))
    assert out.shape == (1, 3, 4, 1)
    np.testing.assert_array_equal(out[0, :, :, 0], expected)


def test_skew_wide_image_batch_and_channels():
    # Two images, two channels, H = 2, W = 3; channel 1 is channel 0 negated.
    first = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    second = first + 10
    x = np.stack([first, second])[..., None]
    x = np.concatenate([x, -x], axis=-1)
    out = np.asarray(skew(x))
    assert out.shape == (2, 2, 4, 2)
    np.testing.assert_array_equal(out[0, :, :, 0], [[1, 2, 3, 0], [0, 4, 5, 6]])
    np.testing.assert_array_equal(out[1, :, :, 0], [[11, 12, 13, 0], [0, 14, 15, 16]])
    np.testing.assert_array_equal(out[..., 1], -out[..., 0])


def test_unskew_reads_each_row_from_its_offset():
    skewed = _grid(
        [
            [1, 2, 9, 9],
            [9, 3, 4, 9],
            [9, 9, 5, 6],
        ]
    )  # the 9s lie outside the image and are dropped
    out = np.asarray(unskew(skewed))
    assert out.shape == (1, 3, 2, 1)
    np.testing.assert_array_equal(out[0, :, :, 0], [[1, 2], [3, 4], [5, 6]])


def test_skew_of_one_row_and_of_one_column():
    row = _grid([[1, 2, 3]])
    np.testing.assert_array_equal(np.asarray(skew(row)), row)
    column = _grid([[1], [2], [3]])
    np.testing.assert_array_equal(np.asarray(skew(column))[0, :, :, 0], np.diag([1, 2, 3]))
    np.testing.assert_array_equal(np.asarray(unskew(skew(column))), column)


@pytest.mark.parametrize("shape", [(2, 4, 5, 3), (1, 5, 2, 1), (3, 1, 1, 2), (2, 3, 3, 4)])
def test_unskew_inverts_skew(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    skewed = np.asarray(skew(x))
    height, width = shape[1:3]
    assert skewed.shape == (shape[0], height, width + height - 1, shape[3])
    # Zeros everywhere outside the shifted rows.
    assert np.count_nonzero(skewed) == np.count_nonzero(x)
    np.testing.assert_array_equal(np.asarray(unskew(skewed)), x)


def test_skew_and_unskew_in_a_tf_function_with_unknown_batch():
    spec = tf.TensorSpec([None, 3, 4, 2], tf.float32)
    round_trip = tf.function(lambda x: unskew(skew(x)), input_signature=[spec])
    x = np.random.default_rng(1).normal(size=(5, 3, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(round_trip(x).numpy(), x)


@pytest.mark.parametrize("fn", [skew, unskew])
def test_skew_and_unskew_reject_bad_shapes(fn):
    with pytest.raises(ValueError):
        fn(np.zeros((2, 3, 4), np.float32))
    if fn is unskew:
        with pytest.raises(ValueError, match="skewed width"):
            unskew(np.zeros((1, 4, 2, 1), np.float32))  # W + H - 1 = 2 < H


# ---------------------------------------------------------------------------
# What the paper says each layer sees: an independent dependency calculus
# ---------------------------------------------------------------------------


def _reference(kind, image_shape, units, mask_type, kernel_size=3):
    """Dependencies ``(H, W, units, H, W, C)`` that the paper's equations imply.

    Works on sets, independently of the layers' code: ``gate[i, j, g]`` is
    what the masked input-to-state convolution of colour group ``g`` reads
    (columns ``j - k//2 .. j - 1`` of row ``i``, and the centre by group);
    ``h[i, j, g]`` adds everything the states it reads depend on (the
    state-to-state convolutions mix all groups; the cell state comes from a
    position whose ``h`` is read too, so it adds nothing). ``kind`` is
    ``"row"``, ``"diagonal"`` (left to right only) or ``"bilstm"``.
    """
    height, width, colours = image_shape
    r = kernel_size // 2 if kind == "row" else 0
    gate = np.zeros((height, width, colours, height, width, colours), bool)
    for i in range(height):
        for j in range(width):
            gate[i, j, :, i, max(0, j - r) : j, :] = True
            for g in range(colours):
                for d in range(colours):
                    gate[i, j, g, i, j, d] = d < g if mask_type == "A" else d <= g

    def recur(neighbours, columns):
        h = np.zeros_like(gate)
        for i in range(height):
            for j in columns:
                past = np.zeros((height, width, colours), bool)
                for k, col in neighbours(i, j):
                    if k >= 0 and 0 <= col < width:
                        past |= h[k, col].any(axis=0)
                h[i, j] = gate[i, j] | past[None]
        return h

    if kind == "row":  # the previous row, columns j - k//2 .. j + k//2
        h = recur(lambda i, j: [(i - 1, j + dc) for dc in range(-r, r + 1)], range(width))
    else:  # the left neighbour and the one above
        h = recur(lambda i, j: [(i, j - 1), (i - 1, j)], range(width))
        if kind == "bilstm":  # right to left, shifted down one row
            backward = recur(lambda i, j: [(i, j + 1), (i - 1, j)], range(width - 1, -1, -1))
            h[1:] |= backward[:-1]
    return h[:, :, channel_groups(units, colours)]


def test_reference_bilstm_type_b_is_raster_order_exactly():
    # The calculus itself says the Diagonal BiLSTM sees the whole past.
    for shape in [(4, 5, 1), (3, 3, 3)]:
        np.testing.assert_array_equal(
            _reference("bilstm", shape, 6, "B"), raster_allowed(shape, 6, strict=False)
        )


def _layer(kind, units, mask_type, colours, kernel_size=3, seed=0):
    keras.utils.set_random_seed(seed)
    if kind == "row":
        return RowLSTM(units, kernel_size, mask_type=mask_type, color_channels=colours)
    if kind == "diagonal":
        return DiagonalLSTM(units, mask_type=mask_type, color_channels=colours)
    return DiagonalBiLSTM(units, mask_type=mask_type, color_channels=colours)


# ---------------------------------------------------------------------------
# Causality and exact receptive fields, by gradients
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("colours", [1, 3], ids=["binary", "rgb"])
@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("kind", ["row", "bilstm"])
def test_layer_is_causal_and_sees_exactly_what_the_paper_says(kind, mask_type, colours):
    image_shape = (3, 5, colours) if kind == "row" else (3, 3, colours)
    units = 2 * colours
    layer = _layer(kind, units, mask_type, colours)
    # First layer (type A): strict raster order; later layers (type B): the
    # pixel's own groups <= the output's.
    found = assert_causal(layer, image_shape, out_channels=units, strict=mask_type == "A")
    np.testing.assert_array_equal(found, _reference(kind, image_shape, units, mask_type))
    if kind == "bilstm" and mask_type == "B":
        # No blind spot: one layer already sees every earlier pixel.
        np.testing.assert_array_equal(found, raster_allowed(image_shape, units, strict=False))
    if mask_type == "A" and colours == 1 and kind == "bilstm":
        # Documented: a 1x1 type-A kernel with one colour is all zero.
        assert not found.any()
    else:
        assert found.any()


def test_diagonal_lstm_one_direction_sees_the_upper_left_quadrant():
    image_shape = (4, 4, 3)
    layer = _layer("diagonal", 6, "B", 3)
    found = assert_causal(layer, image_shape, out_channels=6, strict=False)
    np.testing.assert_array_equal(found, _reference("diagonal", image_shape, 6, "B"))
    seen = found[2, 1].any(axis=(0, -1))
    expected = np.zeros((4, 4), bool)
    expected[:3, :2] = True  # rows <= 2, columns <= 1: never the row below
    np.testing.assert_array_equal(seen, expected)


def test_row_lstm_learned_initial_state(tmp_path):
    keras.utils.set_random_seed(3)
    layer = RowLSTM(4, mask_type="B", learn_initial_state=True)
    x = np.random.default_rng(1).normal(size=(2, 3, 5, 1)).astype(np.float32)
    before = layer(x).numpy()
    names = [w.name for w in layer.weights]
    assert "initial_h" in names and "initial_c" in names
    zero_state = RowLSTM(4, mask_type="B")
    zero_state(x)
    others = [w.numpy() for w in layer.weights if not w.name.startswith("initial_")]
    zero_state.set_weights(others)
    np.testing.assert_allclose(zero_state(x).numpy(), before, atol=1e-6)  # starts at zero
    layer.initial_h.assign(np.ones((5, 4), np.float32))
    after = layer(x).numpy()
    assert not np.allclose(after[:, 0], before[:, 0])  # the first row reads it
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) ** 2)
    grads = tape.gradient(loss, [layer.initial_h, layer.initial_c])
    assert all(np.any(g.numpy() != 0) for g in grads)
    # Still causal: the initial state is the same for every image.
    found = assert_causal(layer, (3, 5, 1), out_channels=4, strict=False)
    assert found.any()
    clone = RowLSTM.from_config(layer.get_config())
    assert clone.learn_initial_state
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), after, atol=1e-6)


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_row_lstm_has_the_triangular_receptive_field(kernel_size):
    # One type-B Row LSTM layer, binary: output (i, j) sees row i - d at
    # columns j - (d + 1) r .. j + d r, and row i at j - r .. j (r = k // 2).
    image_shape = (4, 9, 1)
    r = kernel_size // 2
    layer = _layer("row", 2, "B", 1, kernel_size=kernel_size)
    found = assert_causal(layer, image_shape, out_channels=2, strict=False)
    np.testing.assert_array_equal(found, _reference("row", image_shape, 2, "B", kernel_size))
    i, j = 3, 4
    seen = found[i, j].any(axis=(0, -1))
    expected = np.zeros((4, 9), bool)
    for d in range(i + 1):
        lo = j - (d + 1) * r if d else j - r
        expected[i - d, max(0, lo) : j + d * r + 1] = True
    np.testing.assert_array_equal(seen, expected)
    # Spelled out for k = 3: one row up, columns j - 2 .. j + 1, not j + 2.
    if kernel_size == 3:
        assert seen[2, 2:6].all() and not seen[2, 6] and not seen[2, 1]
        assert seen[3, 3:5].all() and not seen[3, 2]  # current row: j - 1 and j only
        # Unlike a full-context model, it misses allowed pixels far to the side.
        assert not np.array_equal(seen, raster_allowed(image_shape, 1, False)[i, j, 0, :, :, 0])


def _unshifted_bilstm(layer):
    """The carpedm20 bug: the right-to-left stream added without the shift down."""

    def call(x):
        backward = tf.reverse(layer.backward_lstm(tf.reverse(x, [2])), [2])
        return layer.forward_lstm(x) + backward

    return call


def test_bilstm_equals_its_two_directions_and_the_unshifted_sum_leaks():
    image_shape = (2, 3, 3)
    layer = _layer("bilstm", 6, "B", 3, seed=3)
    x = np.random.default_rng(0).normal(size=(2, *image_shape)).astype(np.float32)
    out = layer(x).numpy()
    forward = layer.forward_lstm(x).numpy()
    backward = layer.backward_lstm(x[:, :, ::-1]).numpy()[:, :, ::-1]
    shifted = np.pad(backward[:, :-1], [(0, 0), (1, 0), (0, 0), (0, 0)])
    np.testing.assert_allclose(out, forward + shifted, rtol=1e-5, atol=1e-6)
    with pytest.raises(AssertionError, match="forbidden dependencies"):
        assert_causal(_unshifted_bilstm(layer), image_shape, out_channels=6, strict=False)


# ---------------------------------------------------------------------------
# Numerics: the layers compute the paper's equations (tanh candidate)
# ---------------------------------------------------------------------------


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _cell(pre, c_prev):
    i, f, o, g = np.split(pre, 4, axis=-1)
    c = _sigmoid(f) * c_prev + _sigmoid(i) * np.tanh(g)
    return _sigmoid(o) * np.tanh(c), c


def _input_gates(layer, x):
    """The masked input-to-state part, in gate order i, f, o, g (by sublayer name)."""
    convs = {conv.name: conv for conv in layer.input_convs}
    return np.concatenate([convs[f"input_{gate}"](x).numpy() for gate in "ifog"], axis=-1)


def _naive_row_lstm(layer, x):
    gates = _input_gates(layer, x)
    kernel = layer.state_kernel.numpy()  # (k, h, 4h)
    batch, height, width, _ = x.shape
    units, r = layer.units, layer.kernel_size // 2
    out = np.zeros((batch, height, width, units))
    h_prev = np.zeros((batch, width, units))
    c_prev = np.zeros((batch, width, units))
    for i in range(height):
        h_row, c_row = np.zeros_like(h_prev), np.zeros_like(c_prev)
        for j in range(width):
            pre = gates[:, i, j].astype(np.float64)
            for t in range(layer.kernel_size):
                col = j + t - r
                if 0 <= col < width:
                    pre = pre + h_prev[:, col] @ kernel[t]
            h_row[:, j], c_row[:, j] = _cell(pre, c_prev[:, j])
        out[:, i], h_prev, c_prev = h_row, h_row, c_row
    return out


def _naive_diagonal_lstm(layer, x):
    gates = _input_gates(layer, x)
    up, left = layer.state_kernel.numpy()  # (h, 4h) each: row above, same row
    batch, height, width, _ = x.shape
    h = np.zeros((batch, height + 1, width + 1, layer.units))  # one zero row / column of padding
    c = np.zeros_like(h)
    for i in range(height):
        for j in range(width):
            pre = gates[:, i, j] + h[:, i, j + 1] @ up + h[:, i + 1, j] @ left
            h[:, i + 1, j + 1], c[:, i + 1, j + 1] = _cell(pre, c[:, i + 1, j])
    return h[:, 1:, 1:]


def _randomise(layer, seed, scale=1.5):
    """Non-trivial weights: scaled kernels and random biases."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        value = weight.numpy()
        if weight.name == "bias":
            weight.assign(rng.normal(0.0, 0.5, value.shape).astype(np.float32))
        else:
            weight.assign(value * scale)


@pytest.mark.parametrize("colours", [1, 3])
def test_row_lstm_matches_a_pixel_by_pixel_implementation(colours):
    layer = _layer("row", 6, "B", colours, seed=4)
    x = np.random.default_rng(1).normal(size=(2, 4, 5, colours)).astype(np.float32)
    layer(x)
    _randomise(layer, 0)
    np.testing.assert_allclose(layer(x).numpy(), _naive_row_lstm(layer, x), atol=1e-5)


@pytest.mark.parametrize("colours", [1, 3])
def test_diagonal_bilstm_matches_a_pixel_by_pixel_implementation(colours):
    layer = _layer("bilstm", 6, "B", colours, seed=5)
    x = np.random.default_rng(2).normal(size=(2, 4, 3, colours)).astype(np.float32)
    layer(x)
    _randomise(layer, 1)
    forward = _naive_diagonal_lstm(layer.forward_lstm, x)
    backward = _naive_diagonal_lstm(layer.backward_lstm, x[:, :, ::-1])[:, :, ::-1]
    expected = forward + np.pad(backward[:, :-1], [(0, 0), (1, 0), (0, 0), (0, 0)])
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)
    single = layer.forward_lstm
    np.testing.assert_allclose(single(x).numpy(), forward, atol=1e-5)


def test_forget_gate_bias_starts_at_one():
    layer = _layer("row", 4, "B", 1)
    layer.build((None, 3, 3, 2))
    biases = {conv.name: conv.bias.numpy() for conv in layer.input_convs}
    np.testing.assert_array_equal(biases["input_f"], np.ones(4))
    for gate in "iog":
        np.testing.assert_array_equal(biases[f"input_{gate}"], np.zeros(4))
    plain = RowLSTM(4, unit_forget_bias=False)
    plain.build((None, 3, 3, 2))
    assert not any(conv.bias.numpy().any() for conv in plain.input_convs)


# ---------------------------------------------------------------------------
# Shapes, graphs and compilation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["row", "diagonal", "bilstm"])
def test_layer_in_tf_function_xla_and_unknown_batch_matches_eager(kind):
    layer = _layer(kind, 4, "B", 1, seed=6)
    x = np.random.default_rng(3).normal(size=(3, 3, 4, 2)).astype(np.float32)
    eager = layer(x).numpy()
    assert eager.shape == (3, 3, 4, 4)
    assert layer.compute_output_shape((None, 3, 4, 2)) == (None, 3, 4, 4)
    spec = [tf.TensorSpec([None, 3, 4, 2], tf.float32)]
    graph = tf.function(layer, input_signature=spec)
    np.testing.assert_allclose(graph(x).numpy(), eager, atol=1e-6)
    xla = tf.function(layer, jit_compile=True)
    np.testing.assert_allclose(xla(x).numpy(), eager, atol=1e-5)


@pytest.mark.parametrize("kind", ["row", "diagonal", "bilstm"])
def test_a_constant_condition_equals_a_gate_bias(kind):
    """The conditioning map is added to the input-to-state pre-activations."""
    layer = _layer(kind, 4, "B", 1, seed=8)
    x = np.random.default_rng(5).normal(size=(2, 3, 4, 2)).astype(np.float32)
    layer(x)
    shift = np.random.default_rng(6).normal(size=16).astype(np.float32)
    condition = np.broadcast_to(shift, (2, 3, 4, 16))
    conditioned = layer(x, condition=condition).numpy()
    assert not np.allclose(conditioned, layer(x).numpy())
    directions = [layer.forward_lstm, layer.backward_lstm] if kind == "bilstm" else [layer]
    for direction in directions:
        for gate, conv in enumerate(direction.input_convs):
            conv.bias.assign(conv.bias.numpy() + shift[4 * gate : 4 * gate + 4])
    np.testing.assert_allclose(layer(x).numpy(), conditioned, atol=1e-5)
    with pytest.raises(ValueError, match=r"condition must have shape"):
        layer(x, condition=np.zeros((2, 3, 4, 4), np.float32))


@pytest.mark.parametrize("kind", ["row", "diagonal", "bilstm"])
def test_checkpoint_saves_and_restores_every_weight(tmp_path, kind):
    x = np.random.default_rng(9).normal(size=(2, 3, 4, 2)).astype(np.float32)
    layer, fresh = _layer(kind, 4, "B", 1, seed=1), _layer(kind, 4, "B", 1, seed=2)
    layer(x), fresh(x)
    path = tf.train.Checkpoint(layer=layer).write(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path) if "VARIABLE_VALUE" in name]
    assert len(saved) == len(layer.weights)
    tf.train.Checkpoint(layer=fresh).read(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(fresh(x).numpy(), layer(x).numpy())


def test_layer_gradients_reach_every_weight():
    layer = _layer("bilstm", 4, "B", 1, seed=7)
    x = tf.constant(np.random.default_rng(4).normal(size=(2, 3, 3, 2)), tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x)))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == 2 * (4 * 2 + 1)  # two directions: 4 convs (kernel, bias) + state kernel
    assert all(grad is not None and np.any(grad.numpy() != 0) for grad in grads)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (RowLSTM, dict(units=0)),
        (RowLSTM, dict(units=4, kernel_size=2)),
        (RowLSTM, dict(units=4, kernel_size=0)),
        (RowLSTM, dict(units=4, kernel_size=3.0)),
        (RowLSTM, dict(units=4, mask_type="C")),
        (RowLSTM, dict(units=2, color_channels=3)),
        (DiagonalLSTM, dict(units=0)),
        (DiagonalLSTM, dict(units=4, mask_type="a")),
        (DiagonalLSTM, dict(units=2, color_channels=3)),
        (DiagonalBiLSTM, dict(units=-1)),
        (DiagonalBiLSTM, dict(units=4, mask_type="C")),
        (DiagonalBiLSTM, dict(units=2, color_channels=3)),
    ],
)
def test_bad_arguments_raise_at_construction(cls, kwargs):
    with pytest.raises(ValueError):
        cls(**kwargs)


def test_unknown_height_or_width_is_rejected_at_build():
    with pytest.raises(ValueError, match="static H, W, C"):
        RowLSTM(4).build((None, None, None, 1))


# ---------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["row", "diagonal", "bilstm"])
def test_get_config_round_trip(kind):
    keras.utils.set_random_seed(8)
    kwargs = dict(
        mask_type="A",
        color_channels=3,
        unit_forget_bias=False,
        kernel_initializer="he_normal",
        recurrent_initializer="glorot_uniform",
        bias_initializer="ones",
        name="lstm",
    )
    if kind == "row":
        layer = RowLSTM(6, kernel_size=5, **kwargs)
    elif kind == "diagonal":
        layer = DiagonalLSTM(6, **kwargs)
    else:
        layer = DiagonalBiLSTM(6, **kwargs)
    x = np.random.default_rng(5).normal(size=(2, 3, 4, 3)).astype(np.float32)
    out = layer(x).numpy()
    config = layer.get_config()
    assert config["units"] == 6
    assert config["mask_type"] == "A"
    assert config["color_channels"] == 3
    assert config["unit_forget_bias"] is False
    if kind == "row":
        assert config["kernel_size"] == 5
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x).numpy(), out)
    generic = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(generic, type(layer))
    assert generic.get_config() == config


def test_keras_save_load_of_a_model_with_every_layer(tmp_path):
    keras.utils.set_random_seed(9)
    inputs = keras.Input((3, 4, 3))
    x = RowLSTM(6, mask_type="A", color_channels=3, name="row")(inputs)
    x = DiagonalLSTM(6, color_channels=3, name="diagonal")(x)
    x = DiagonalBiLSTM(6, color_channels=3, name="bilstm")(x)
    model = keras.Model(inputs, x)
    x = np.random.default_rng(6).normal(size=(2, 3, 4, 3)).astype(np.float32)
    out = model(x).numpy()
    path = tmp_path / "recurrent.keras"
    keras.saving.save_model(model, path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("bilstm"), DiagonalBiLSTM)
    assert loaded.get_layer("row").mask_type == "A"
    np.testing.assert_array_equal(loaded(x).numpy(), out)


def test_dependencies_of_the_stack_match_the_calculus_composed():
    # Row LSTM (A) then Diagonal BiLSTM (B), binary: the BiLSTM sees every
    # earlier position of the Row LSTM's output, which saw its own triangle.
    keras.utils.set_random_seed(10)
    image_shape = (3, 3, 1)
    inputs = keras.Input(image_shape)
    x = RowLSTM(4, mask_type="A")(inputs)
    model = keras.Model(inputs, DiagonalBiLSTM(4)(x))
    found = dependencies(model, image_shape)
    row = _reference("row", image_shape, 1, "A")[:, :, 0, :, :, 0]  # (H, W, H, W)
    bilstm = _reference("bilstm", image_shape, 1, "B")[:, :, 0, :, :, 0]
    expected = np.einsum("ijkl,klmn->ijmn", bilstm, row) > 0
    np.testing.assert_array_equal(found.any(axis=2)[..., 0], expected)
