"""Two-dimensional LSTM layers of PixelRNN: Row LSTM and Diagonal (Bi)LSTM.

Both layers compute, for every pixel, an LSTM state from these parts:

- *input-to-state*: a masked convolution of the layer's input, computed for
  the whole image at once (1 x k for the Row LSTM, 1 x 1 for the Diagonal
  LSTM). It is the only part that reads the current row, so its mask (type A
  or B, with colour groups) is what keeps the layer causal within a row.
- an optional *conditioning* map ``(B, H, W, 4 * units)`` added to the
  input-to-state part (``layer(x, condition=...)``);
- *state-to-state*: a convolution of the states computed one step earlier,
  applied in a loop over rows (Row LSTM) or over the columns of the skewed
  image (Diagonal LSTM).

Every step is a standard LSTM update with gates ``i, f, o`` (sigmoid) and
candidate ``g`` (tanh)::

    [i, f, o, g] = input_to_state(x)[here] + state_to_state(h[previous step])
    c = sigmoid(f) * c[previous step] + sigmoid(i) * tanh(g)
    h = sigmoid(o) * tanh(c)

With ``C`` colour channels the ``units`` hidden features are split into ``C``
contiguous groups (:func:`~pixel_models.layers.masked_conv.channel_groups`);
each gate has its own masked input-to-state convolution so that gate feature
``f`` is in the same colour group as hidden feature ``f``. The cell update is
elementwise and the state-to-state convolution only reads states of earlier
pixels (the previous row, or the left and upper neighbours), which are
entirely in the past, so it needs no mask.

**Incremental evaluation.** For cached sampling every layer also computes
its output one pixel at a time in raster order, with the same weights,
carrying its recurrent states in buffers that the sampler keeps:

- ``step_states()``: ``{name: (features, rate)}``, the per-pixel maps the
  layer carries (``rate`` ``Rate.POSITION``: written at each pixel;
  ``Rate.ROW``: written a whole row at a time, before the row's first pixel);
- ``step_windows()``: ``{name: (rows_above, cols_left, cols_right)}``, the
  window of the layer input (``"inputs"``) and of each state that one pixel
  reads, as ``MaskedConv2D.causal_window()``;
- ``call_step_row(i, inputs_above, states_above, condition_above=None)``:
  before row ``i``, from row ``i - 1`` of the input, of every state (zeros
  above the image) and of the conditioning map if the layer has one, gives
  ``(link, row_states)``: what the row's pixels share (or None) and row
  ``i`` of the row-rate states;
- ``call_step(windows, link, condition=None)``: the output at ``(i, j)`` and
  the position-rate states there, from the windows, column ``j`` of the link
  and the conditioning map at ``(i, j)`` (``(B, 4 * units)``).

``incremental_steps()`` turns these into the steps of the incremental
protocol (:mod:`pixel_models.layers.incremental`): a row step for
``call_step_row()`` (when the layer has a link or row-rate states) and a
position step for ``call_step()``, each state a slot of its own. A
conditioning map is known in full before sampling starts only when it does
not depend on the pixels being drawn (for example, when it is computed from a
small image that is already given); ``incremental_steps()`` checks that.

``call()`` stays the reference they are tested against.

References:
  van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural Networks.
  ICML 2016. https://arxiv.org/abs/1601.06759 (Section 3.1 Row LSTM,
  Section 3.2 Diagonal BiLSTM, Figure 2 colour masks, Figure 4 receptive fields).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from pixel_models.layers.checks import check_mask_type, odd_positive_int, positive_int
from pixel_models.layers.incremental import Here, NotIncremental, Rate, Slot, Step, Whole, Window
from pixel_models.layers.masked_conv import MaskedConv2D, channel_groups
from pixel_models.layers.serialization import constructor_config

GATES = ("i", "f", "o", "g")


def skew(x) -> tf.Tensor:
    """Shifts row ``i`` of a ``(B, H, W, C)`` map right by ``i`` positions.

    The result has shape ``(B, H, W + H - 1, C)`` and zeros where no input
    lands. Each diagonal of the input (going up and to the right) becomes a
    column, so that a loop over the columns of the skewed map visits the
    image diagonal by diagonal. For ``H = 3, W = 3``::

        a b c        a b c 0 0
        d e f   ->   0 d e f 0
        g h k        0 0 g h k

    Column ``t`` of the skewed map holds the pixels ``(i, t - i)``; its
    neighbours in column ``t - 1`` at rows ``i`` and ``i - 1`` are the left
    neighbour ``(i, j - 1)`` and the upper neighbour ``(i - 1, j)`` of pixel
    ``(i, j)``.

    Args:
      x: tensor or array of shape ``(B, H, W, C)``.

    Returns:
      tensor of shape ``(B, H, W + H - 1, C)``.

    Example:

    >>> import numpy as np
    >>> x = np.arange(1, 5, dtype="float32").reshape(1, 2, 2, 1)
    >>> np.asarray(skew(x))[0, ..., 0].tolist()
    [[1.0, 2.0, 0.0], [0.0, 3.0, 4.0]]
    """
    x = ops.convert_to_tensor(x)
    height, width, channels = _static_hwc(x, "skew")
    length = width + height  # each row padded with H zeros
    # Row i starts at flat index i * length in the padded map, which is
    # position i of row i in a map of rows of length - 1: read the flat
    # padded rows back with one position fewer per row.
    padded = ops.pad(x, [[0, 0], [0, 0], [0, height], [0, 0]])
    flat = ops.reshape(padded, (-1, height * length, channels))
    flat = flat[:, : height * (length - 1)]
    return ops.reshape(flat, (-1, height, length - 1, channels))


def unskew(x) -> tf.Tensor:
    """Inverts :func:`skew`: ``(B, H, W + H - 1, C)`` to ``(B, H, W, C)``.

    Row ``i`` of the result is the slice ``[i, i + W)`` of row ``i`` of the
    skewed map; everything else is dropped.

    Args:
      x: tensor or array of shape ``(B, H, W + H - 1, C)``.

    Returns:
      tensor of shape ``(B, H, W, C)``.

    Example:

    >>> import numpy as np
    >>> skewed = np.array([[1, 2, 0], [0, 3, 4]], "float32").reshape(1, 2, 3, 1)
    >>> np.asarray(unskew(skewed))[0, ..., 0].tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    """
    x = ops.convert_to_tensor(x)
    height, skewed_width, channels = _static_hwc(x, "unskew")
    width = skewed_width - height + 1
    if width < 1:
        raise ValueError(f"unskew needs a skewed width W + H - 1 >= H, got shape {tuple(x.shape)}")
    # Inverse of skew: append H zeros to the flat skewed rows and read them
    # back with one position more per row; row i then starts at its pixel 0.
    flat = ops.reshape(x, (-1, height * skewed_width, channels))
    flat = ops.pad(flat, [[0, 0], [0, height], [0, 0]])
    rows = ops.reshape(flat, (-1, height, skewed_width + 1, channels))
    return rows[:, :, :width]


def _static_hwc(x, name: str) -> tuple[int, int, int]:
    if len(x.shape) != 4 or any(v is None for v in x.shape[1:]):
        raise ValueError(f"{name} needs a (B, H, W, C) tensor with static H, W, C, got {x.shape}")
    return int(x.shape[1]), int(x.shape[2]), int(x.shape[3])


def _check_condition(condition, dtype, units: int, shape, layer: str):
    """The conditioning map, checked against the ``(B, H, W, 4 * units)`` gates."""
    condition = ops.cast(condition, dtype)
    expected = (*tuple(shape)[1:3], 4 * units)
    if tuple(condition.shape[1:]) != expected:
        raise ValueError(
            f"{layer} condition must have shape (B, H, W, 4 * units) = "
            f"{(None, *expected)}, got {tuple(condition.shape)}"
        )
    return condition


def _lstm_update(gates, c_prev):
    """One LSTM step from the summed gate pre-activations ``[i, f, o, g]``."""
    i, f, o, g = ops.split(gates, 4, axis=-1)
    c = ops.sigmoid(f) * c_prev + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


def _scan(step: Callable, sequence, units: int, initial=None):
    """Runs an LSTM ``step`` over axis 0 of ``sequence`` from a zero state.

    Args:
      step: ``(gates_t, h, c) -> (h, c)``.
      sequence: ``(T, B, ..., 4 * units)`` input-to-state gates of each step.
      units: hidden features.
      initial: optional ``(h, c)`` to start from instead of zeros, each
        broadcastable to ``(B, ..., units)``.

    Returns:
      ``(T, B, ..., units)``: ``h`` after every step.

    A ``tf.while_loop`` over ``T`` with ``TensorArray`` inputs and outputs: one
    loop in the graph whatever ``T``, differentiable, usable inside
    ``tf.function``, XLA and an enclosing ``tf.while_loop`` (the sampler).
    """
    length = sequence.shape[0]
    if length is None:
        length = tf.shape(sequence)[0]
    zeros = ops.zeros_like(sequence[0, ..., :units])
    h0, c0 = (zeros, zeros) if initial is None else (zeros + initial[0], zeros + initial[1])
    inputs = tf.TensorArray(sequence.dtype, size=length, element_shape=sequence.shape[1:]).unstack(
        sequence
    )
    outputs = tf.TensorArray(sequence.dtype, size=length, element_shape=zeros.shape)

    def body(t, h, c, outputs):
        h, c = step(inputs.read(t), h, c)
        return t + 1, h, c, outputs.write(t, h)

    _, _, _, outputs = tf.while_loop(
        lambda t, *_: t < length,
        body,
        (tf.constant(0), h0, c0, outputs),
        maximum_iterations=length,
    )
    return outputs.stack()


def _diagonal_indices(height: int, width: int, mirrored: Sequence[bool]):
    """Index tables between an image and its skewed, time-major form.

    Returns ``(read, write, valid)``:

    - ``read``: ``(T, D, H)`` positions in the flattened ``H * W`` image (plus
      one zero row at index ``H * W``) of the pixel that direction ``d``
      visits at row ``i`` of skewed column ``t``: pixel ``(i, t - i)``, or
      ``(i, W - 1 - (t - i))`` for a mirrored direction;
    - ``write``: ``(D, H * W)`` positions in the flattened ``(T, D, H)``
      loop outputs of each pixel of each direction (the inverse of ``read``);
    - ``valid``: ``(T, H)`` 1 where ``0 <= t - i < W``, else 0.

    ``T = W + H - 1``.
    """
    steps = width + height - 1
    t, i = np.meshgrid(np.arange(steps), np.arange(height), indexing="ij")
    j = t - i
    valid = (j >= 0) & (j < width)
    read = np.empty((steps, len(mirrored), height), np.int32)
    write = np.empty((len(mirrored), height * width), np.int32)
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    for d, mirror in enumerate(mirrored):
        column = width - 1 - j if mirror else j
        read[:, d] = np.where(valid, i * width + column, height * width)
        # Pixel (r, c) is visited at column r + c (r + W - 1 - c if mirrored), row r.
        step = rows + (width - 1 - cols if mirror else cols)
        write[d] = ((step * len(mirrored) + d) * height + rows).reshape(-1)
    return read, write, valid.astype(np.float32)


def _diagonal_kernel(layer, dtype, condition: bool = False):
    """The fused kernel and bias of one Diagonal LSTM step.

    Returns ``(kernel, bias)``: ``kernel`` of shape ``(C [+ 4h] + 2h, 4h)``
    multiplies ``[x, condition, h above, h left]`` (the rows of the 1x1
    masked input-to-state kernels of the four gates, the identity for the
    conditioning map when ``condition`` is set, then the two taps of the
    state-to-state kernel); ``bias`` ``(4h,)`` is the input-to-state bias.
    """
    # 1x1 masked kernels of the four gates, concatenated: (C, 4h).
    kernel = ops.concatenate(
        [
            ops.cast(conv.kernel, dtype)[0, 0] * ops.cast(conv.mask, dtype)[0, 0]
            for conv in layer.input_convs
        ],
        axis=-1,
    )
    units = layer.units
    parts = [kernel, ops.reshape(ops.cast(layer.state_kernel, dtype), (2 * units, -1))]
    if condition:
        parts.insert(1, ops.eye(4 * units, dtype=dtype))  # the map is added as it is
    bias = ops.concatenate([ops.cast(c.bias, dtype) for c in layer.input_convs], -1)
    return ops.concatenate(parts, axis=0), bias


def _diagonal_lstm(layers, mirrored: Sequence[bool], inputs, condition=None):
    """Diagonal LSTMs of ``D`` directions in one loop over the skewed columns.

    Args:
      layers: the ``D`` :class:`DiagonalLSTM` layers (their input-to-state
        convolutions and state kernels are used).
      mirrored: for each direction, whether it runs right to left (on the
        horizontally mirrored image).
      inputs: ``(B, H, W, C)`` layer input.
      condition: optional ``(B, H, W, 4 * units)`` conditioning map.

    Returns:
      ``(D, B, H, W, units)``: ``h`` of every pixel and direction, in the
      original (unmirrored) column order.

    The image is gathered once into the skewed, time-major layout
    ``(T, D, H, B, C)`` with ``T = W + H - 1`` (a zero row where no pixel
    lands), so neither the gates nor the skewed map are ever materialised at
    full size; each step computes, for every direction in one batched
    matrix product, ``[x, h above, h left] @ [W_in; K_up; K_left] + bias``:
    the 1x1 masked input-to-state convolution and the 2x1 state-to-state
    convolution over the previous column, zero-padded on top only. Positions
    outside the image (left of a row's start, right of its end) have their
    state reset to zero, which makes the loop equal to the per-pixel
    recurrence of :class:`DiagonalLSTM`.
    """
    units = layers[0].units
    batch_dims = ops.shape(inputs)[0]
    height, width = int(inputs.shape[1]), int(inputs.shape[2])
    directions = len(layers)
    dtype = inputs.dtype
    read, write, valid = _diagonal_indices(height, width, mirrored)
    steps = read.shape[0]

    kernels, biases = zip(
        *(_diagonal_kernel(layer, dtype, condition is not None) for layer in layers), strict=True
    )
    kernels = ops.stack(kernels)  # (D, C [+ 4h] + 2h, 4h)
    biases = ops.reshape(ops.stack(biases), (directions, 1, 1, 4 * units))

    features = inputs
    if condition is not None:
        condition = _check_condition(
            condition, dtype, units, inputs.shape, type(layers[0]).__name__
        )
        features = ops.concatenate([inputs, condition], -1)
    channels = int(features.shape[-1])
    # (H * W + 1, B, C): pixels first, then one zero row for the padding.
    flat = ops.transpose(ops.reshape(features, (-1, height * width, channels)), (1, 0, 2))
    flat = ops.pad(flat, [[0, 1], [0, 0], [0, 0]])
    sequence = ops.take(flat, ops.convert_to_tensor(read), axis=0)  # (T, D, H, B, C)
    valid = ops.reshape(ops.cast(valid, dtype), (steps, 1, height, 1, 1))

    zeros = ops.zeros((directions, height, batch_dims, units), dtype)
    sequence = tf.TensorArray(dtype, size=steps, element_shape=sequence.shape[1:]).unstack(sequence)
    outputs = tf.TensorArray(dtype, size=steps, element_shape=zeros.shape)

    def body(t, h, c, outputs):
        above = ops.pad(h[:, :-1], [[0, 0], [1, 0], [0, 0], [0, 0]])
        x = ops.concatenate([sequence.read(t), above, h], axis=-1)
        x = ops.reshape(x, (directions, -1, x.shape[-1]))
        gates = ops.reshape(ops.matmul(x, kernels), (directions, height, -1, 4 * units))
        h, c = _lstm_update(gates + biases, c)
        keep = valid[t]
        h, c = h * keep, c * keep
        return t + 1, h, c, outputs.write(t, h)

    _, _, _, outputs = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), zeros, zeros, outputs),
        maximum_iterations=steps,
    )
    # (T * D * H, B, h) -> each direction's pixels in raster order.
    columns = ops.reshape(outputs.stack(), (steps * directions * height, -1, units))
    pixels = ops.take(columns, ops.convert_to_tensor(write), axis=0)  # (D, H * W, B, h)
    pixels = ops.transpose(pixels, (0, 2, 1, 3))
    return ops.reshape(pixels, (directions, -1, height, width, units))


class _GatedInput(keras.layers.Layer):
    """Shared parts of the LSTM layers: arguments and masked input-to-state."""

    def __init__(
        self,
        units: int,
        mask_type: str,
        color_channels: int,
        unit_forget_bias: bool,
        kernel_initializer,
        recurrent_initializer,
        bias_initializer,
        input_kernel_size: tuple[int, int],
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = positive_int("units", units)
        self.mask_type = check_mask_type(mask_type)
        self.color_channels = int(color_channels)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        # Fail at construction on impossible colour groups.
        channel_groups(self.units, self.color_channels)
        # One masked convolution per gate, so that every gate's features are
        # in the colour groups of the hidden features they update. Each is its
        # own attribute (input_i, input_f, input_o, input_g) so that
        # tf.train.Checkpoint tracks it.
        convs = [
            MaskedConv2D(
                self.units,
                input_kernel_size,
                mask_type=self.mask_type,
                color_channels=self.color_channels,
                kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                bias_initializer=(
                    "ones"
                    if gate == "f" and self.unit_forget_bias
                    else keras.initializers.serialize(self.bias_initializer)
                ),
                dtype=self.dtype_policy,
                name=f"input_{gate}",
            )
            for gate in GATES
        ]
        for gate, conv in zip(GATES, convs, strict=True):
            setattr(self, f"input_{gate}", conv)

    @property
    def input_convs(self) -> list[MaskedConv2D]:
        """The masked input-to-state convolutions of the gates ``i, f, o, g``."""
        return [getattr(self, f"input_{gate}") for gate in GATES]

    def _build_input(self, input_shape):
        if len(input_shape) != 4 or any(v is None for v in input_shape[1:]):
            raise ValueError(
                f"{type(self).__name__} needs inputs (B, H, W, C) with static H, W, C, "
                f"got {tuple(input_shape)}"
            )
        for conv in self.input_convs:
            conv.build(input_shape)

    def _input_to_state(self, inputs, condition=None):
        """``(B, H, W, 4 * units)``: the gates' input-to-state part, order ``i, f, o, g``,
        plus the conditioning map when one is given."""
        gates = ops.concatenate([conv(inputs) for conv in self.input_convs], axis=-1)
        if condition is not None:
            gates = gates + _check_condition(
                condition, gates.dtype, self.units, gates.shape, type(self).__name__
            )
        return gates

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), **constructor_config(self)}


def _recurrent_steps(layer, inputs, outputs, link_features: int | None) -> list[Step]:
    """The steps of a recurrent layer from its ``step_*`` methods (see the
    module docstring): a row step for ``call_step_row()`` when the layer has a
    row link (``link_features`` features) or row-rate states, and a position
    step for ``call_step()``."""
    x, condition = inputs["inputs"], inputs.get("condition")
    if condition is not None and condition.rate is not Rate.CONSTANT:
        raise NotIncremental(
            "has no position-wise form with a condition that depends on the pixels being drawn"
        )
    if x.rate is not Rate.POSITION:
        raise NotIncremental("reads features that are not computed per position")
    declared = layer.step_states()
    # Their rows above are read before the step that writes them: rates known up front.
    states = {
        name: Slot(int(features), f"{layer.name}/{name}", rate)
        for name, (features, rate) in declared.items()
    }
    by_row = [name for name, (_, rate) in declared.items() if rate is Rate.ROW]
    by_position = [name for name in declared if name not in by_row]
    link = None if link_features is None else Slot(link_features, f"{layer.name}/link")
    given = {} if condition is None else {"condition": Whole(condition)}

    def row(where, inputs, condition=None, **above):
        if condition is not None:  # its row above (any row at i = 0, unused)
            condition = condition[:, tf.maximum(where.i - 1, 0)]
        states_above = {name: above[f"state/{name}"][:, 0] for name in states}
        value, written = layer.call_step_row(where.i, inputs[:, 0], states_above, condition)
        return ([] if link is None else [value]) + [written[name] for name in by_row]

    def position(where, link=None, condition=None, **windows):
        if condition is not None:
            condition = condition[:, where.i, where.j]
        windows = {name[len("window/") :]: value for name, value in windows.items()}
        output, written = layer.call_step(windows, link, condition)
        return [output] + [written[name] for name in by_position]

    steps = []
    if link is not None or by_row:
        # Before the row: the row above of the input and of every state.
        above = {f"state/{name}": Window(slot, 1, 0, 0, bottom=1) for name, slot in states.items()}
        reads = {"inputs": Window(x, 1, 0, 0, bottom=1), **above, **given}
        writes = ([] if link is None else [link]) + [states[name] for name in by_row]
        steps.append(Step(Rate.ROW, reads, writes, row))
    reads = {
        f"window/{name}": Window(x if name == "inputs" else states[name], *size)
        for name, size in layer.step_windows().items()
    }
    if link is not None:
        reads["link"] = Here(link)
    writes = [*outputs, *(states[name] for name in by_position)]
    steps.append(Step(Rate.POSITION, {**reads, **given}, writes, position))
    return steps


@keras.saving.register_keras_serializable(package="pixel_models")
class RowLSTM(_GatedInput):
    """Row LSTM: an LSTM over the rows of an image, one whole row per step.

    The input-to-state part is a ``1 x k`` masked convolution over the
    current row, computed for all rows at once; the state-to-state part is a
    1-D convolution of width ``k`` over the hidden state of the previous row
    (zero above the first row). Rows are processed top to bottom::

        [i, f, o, g]_r = maskedconv_1xk(x)_r + conv1d_k(h_{r-1})
        c_r = sigmoid(f) * c_{r-1} + sigmoid(i) * tanh(g)
        h_r = sigmoid(o) * tanh(c_r)

    The output at ``(i, j)`` sees the current row's inputs ``j - k//2 .. j``
    (the mask: type A hides ``j``, type B shows it, by colour group) and,
    through the states, a triangle above: with ``r = k // 2``, row ``i - d``
    contributes columns ``j - (d + 1) r .. j + d r`` (k = 3, one layer,
    ``x`` the output pixel, ``*`` its inputs, type B)::

        * * * * * * * * .      d = 3
        . * * * * * * . .      d = 2
        . . * * * * . . .      d = 1
        . . . * x . . . .      current row (type B: x sees itself)

    so a single layer does not see the whole past (Figure 4 of the paper);
    stacked layers widen the triangle.

    Args:
      units: hidden features ``h`` (each gate has ``h`` features).
      kernel_size: odd width ``k`` of the input-to-state and state-to-state
        convolutions (3 in the paper).
      mask_type: ``"A"`` (first layer: a pixel does not see itself) or
        ``"B"``.
      color_channels: colour groups ``C`` of the input and hidden features.
      unit_forget_bias: initialise the forget gate's bias to 1.
      kernel_initializer: initializer of the input-to-state kernels.
      recurrent_initializer: initializer of the state-to-state kernel.
      bias_initializer: initializer of the input-to-state biases.
      learn_initial_state: learn the state above the first row (one ``h``
        and one ``c`` per column, starting at zero) instead of zeros.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Input: ``(B, H, W, C_in)`` with static ``H, W, C_in``. Output:
    ``(B, H, W, units)``, the hidden state ``h`` of every pixel.

    Call arguments: ``layer(inputs, condition=None)``. ``condition`` is an
    optional ``(B, H, W, 4 * units)`` map added to the input-to-state
    pre-activations (gate order ``i, f, o, g``): a conditioning bias such as
    the upsampled small image of the Multi-Scale PixelRNN. It is not masked,
    so it must not depend on the pixels being modelled. The Diagonal
    (Bi)LSTM layers take the same argument.

    Example:

    >>> import numpy as np
    >>> layer = RowLSTM(4, kernel_size=3, mask_type="B")
    >>> tuple(layer(np.zeros((2, 5, 6, 1), "float32")).shape)
    (2, 5, 6, 4)

    References:
      van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural
      Networks. ICML 2016. https://arxiv.org/abs/1601.06759 (Section 3.1).
      Deviation: Eq. 3 of the paper writes one nonlinearity ``sigma`` over
      all four pre-activations ``[o, f, i, g]``; here the candidate ``g``
      uses ``tanh``, as in the standard LSTM (a sigmoid candidate can only
      add to the cell, never subtract). The same holds for the Diagonal LSTM.
    """

    def __init__(
        self,
        units: int,
        kernel_size: int = 3,
        mask_type: str = "B",
        color_channels: int = 1,
        unit_forget_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        learn_initial_state: bool = False,
        **kwargs,
    ):
        odd_positive_int("kernel_size", kernel_size)
        super().__init__(
            units,
            mask_type,
            color_channels,
            unit_forget_bias,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            input_kernel_size=(1, int(kernel_size)),
            **kwargs,
        )
        self.kernel_size = int(kernel_size)
        self.learn_initial_state = bool(learn_initial_state)

    def build(self, input_shape):
        self._build_input(input_shape)
        self.state_kernel = self.add_weight(
            name="state_kernel",
            shape=(self.kernel_size, self.units, 4 * self.units),
            initializer=self.recurrent_initializer,
        )
        if self.learn_initial_state:
            # The state "above the first row", one per column: learned, and
            # the same for every image, so it carries no pixel information.
            shape = (int(input_shape[2]), self.units)
            self.initial_h = self.add_weight(name="initial_h", shape=shape, initializer="zeros")
            self.initial_c = self.add_weight(name="initial_c", shape=shape, initializer="zeros")

    def call(self, inputs, condition=None):
        gates = self._input_to_state(inputs, condition)  # (B, H, W, 4h)
        kernel = ops.cast(self.state_kernel, gates.dtype)

        def step(gates_row, h, c):  # (B, W, 4h), (B, W, h), (B, W, h)
            return _lstm_update(gates_row + ops.conv(h, kernel, padding="same"), c)

        initial = None
        if self.learn_initial_state:
            initial = (
                ops.cast(self.initial_h, gates.dtype),
                ops.cast(self.initial_c, gates.dtype),
            )
        rows = _scan(step, ops.transpose(gates, (1, 0, 2, 3)), self.units, initial)
        return ops.transpose(rows, (1, 0, 2, 3))

    # Incremental evaluation (see the module docstring). Row i - 1 of ``h``
    # and ``c`` is complete before row i starts, so the state-to-state part
    # of the whole row is one 1-D convolution before its first pixel; each
    # pixel then adds its own 1 x k input-to-state part and updates its cell.

    def step_states(self) -> dict[str, tuple[int, Rate]]:
        """``h`` and ``c``, each ``units`` features, written at every pixel."""
        return {"h": (self.units, Rate.POSITION), "c": (self.units, Rate.POSITION)}

    def step_windows(self) -> dict[str, tuple[int, int, int]]:
        """A pixel reads the ``k // 2`` inputs on each side of it in its row
        (the mask hides those after it)."""
        return {"inputs": self.input_i.causal_window()}

    def call_step_row(self, i, inputs_above, states_above, condition_above=None):
        """Row ``i``'s state-to-state pre-activations and previous cell states.

        Args:
          i: the row (a scalar tensor).
          inputs_above: row ``i - 1`` of the input (unused).
          states_above: ``{"h": (B, W, h), "c": (B, W, h)}`` at row ``i - 1``
            (zeros above the image).
          condition_above: unused (the conditioning map enters at each pixel).

        Returns:
          ``(link, {})``: ``link`` ``(B, W, 5 * units)`` holds, per column,
          the state-to-state gates ``[i, f, o, g]`` and the cell state above.
        """
        h, c = states_above["h"], states_above["c"]
        if self.learn_initial_state:
            first = ops.equal(i, 0)
            h = ops.where(first, ops.cast(self.initial_h, h.dtype)[None], h)
            c = ops.where(first, ops.cast(self.initial_c, c.dtype)[None], c)
        state = ops.conv(h, ops.cast(self.state_kernel, h.dtype), padding="same")
        return ops.concatenate([state, c], axis=-1), {}

    def call_step(self, windows, link, condition=None):
        """The output at one pixel from its input window and the row's link.

        Args:
          windows: ``{"inputs": (B, 1, k, C_in)}``, the input at columns
            ``j - k // 2 .. j + k // 2`` of the current row.
          link: ``(B, 5 * units)``: column ``j`` of :meth:`call_step_row`'s link.
          condition: ``(B, 4 * units)``, the conditioning map at the pixel,
            or None.

        Returns:
          ``(h, {"h": h, "c": c})``: what ``call()`` gives at that pixel and
          the cell state there.
        """
        window = windows["inputs"]
        gates = ops.concatenate([conv.call_window(window) for conv in self.input_convs], -1)
        if condition is not None:
            gates = gates + ops.cast(condition, gates.dtype)
        split = 4 * self.units
        h, c = _lstm_update(gates + link[:, :split], link[:, split:])
        return h, {"h": h, "c": c}

    def incremental_steps(self, inputs, outputs) -> list[Step]:
        """Steps of the incremental protocol: per row, the state-to-state link;
        per pixel, one LSTM step (see the module docstring)."""
        return _recurrent_steps(self, inputs, outputs, link_features=5 * self.units)


@keras.saving.register_keras_serializable(package="pixel_models")
class DiagonalLSTM(_GatedInput):
    """Diagonal LSTM in one direction: left to right along the diagonals.

    The input goes through a ``1 x 1`` masked input-to-state convolution, is
    :func:`skew`-ed, and the columns of the skewed map are processed left to
    right. The state-to-state part is a ``2 x 1`` convolution over the
    previous column with zero padding on top only: it reads the same row and
    the row above, which are the left neighbour ``(i, j - 1)`` and the upper
    neighbour ``(i - 1, j)`` of pixel ``(i, j)``; never the row below. The
    cell state comes from the left neighbour. The outputs are unskewed::

        [i, f, o, g]_(i,j) = maskedconv_1x1(x)_(i,j)
                             + K_up h_(i-1,j) + K_left h_(i,j-1)
        c_(i,j) = sigmoid(f) * c_(i,j-1) + sigmoid(i) * tanh(g)
        h_(i,j) = sigmoid(o) * tanh(c_(i,j))

    The output at ``(i, j)`` sees every pixel ``(k, l)`` with ``k <= i`` and
    ``l <= j`` (and the pixel itself as the mask allows)::

        * * * . .
        * * * . .
        * * x . .

    :class:`DiagonalBiLSTM` adds the mirrored direction to cover the rest.

    Args:
      units: hidden features ``h``.
      mask_type: ``"A"`` or ``"B"``. With one colour channel a type-A 1x1
        convolution is all zero, so a type-A Diagonal LSTM sees no input at
        all: use it after a type-A convolution, as :func:`pixel_rnn` does.
      color_channels: colour groups ``C``.
      unit_forget_bias: initialise the forget gate's bias to 1.
      kernel_initializer: initializer of the input-to-state kernels.
      recurrent_initializer: initializer of the state-to-state kernel, of
        shape ``(2, units, 4 * units)``: ``[0]`` reads the row above, ``[1]``
        the same row of the previous column.
      bias_initializer: initializer of the input-to-state biases.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Example:

    >>> import numpy as np
    >>> layer = DiagonalLSTM(4)
    >>> tuple(layer(np.zeros((2, 5, 6, 1), "float32")).shape)
    (2, 5, 6, 4)

    References:
      van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural
      Networks. ICML 2016. https://arxiv.org/abs/1601.06759 (Section 3.2).
    """

    def __init__(
        self,
        units: int,
        mask_type: str = "B",
        color_channels: int = 1,
        unit_forget_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(
            units,
            mask_type,
            color_channels,
            unit_forget_bias,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            input_kernel_size=(1, 1),
            **kwargs,
        )

    def build(self, input_shape):
        self._build_input(input_shape)
        self.state_kernel = self.add_weight(
            name="state_kernel",
            shape=(2, self.units, 4 * self.units),
            initializer=self.recurrent_initializer,
        )

    def call(self, inputs, condition=None):
        return _diagonal_lstm([self], [False], inputs, condition)[0]

    # Incremental evaluation (see the module docstring): in raster order the
    # upper and left neighbours of a pixel are known before it, so one LSTM
    # step per pixel gives exactly the skewed loop's value.

    def step_states(self) -> dict[str, tuple[int, Rate]]:
        """``h`` and ``c``, each ``units`` features, written at every pixel."""
        return {"h": (self.units, Rate.POSITION), "c": (self.units, Rate.POSITION)}

    def step_windows(self) -> dict[str, tuple[int, int, int]]:
        """A pixel reads its own input, ``h`` above and left of it, ``c`` left of it."""
        return {"inputs": self.input_i.causal_window(), "h": (1, 1, 0), "c": (0, 1, 0)}

    def call_step_row(self, i, inputs_above, states_above, condition_above=None):
        """Nothing to do per row: ``(None, {})``."""
        return None, {}

    def call_step(self, windows, link=None, condition=None):
        """The output at ``(i, j)``.

        Args:
          windows: ``{"inputs": (B, 1, 1, C_in), "h": (B, 2, 2, h),
            "c": (B, 1, 2, h)}`` as :meth:`step_windows` names them (zeros
            outside the image); the values at ``(i, j)`` itself are not read.
          link: unused.
          condition: ``(B, 4 * units)``, the conditioning map at ``(i, j)``,
            or None.

        Returns:
          ``(h, {"h": h, "c": c})`` at ``(i, j)``.
        """
        x = windows["inputs"][:, 0, 0]
        above, left = windows["h"][:, 0, 1], windows["h"][:, 1, 0]
        kernel, bias = _diagonal_kernel(self, x.dtype)
        gates = ops.matmul(ops.concatenate([x, above, left], axis=-1), kernel) + bias
        if condition is not None:
            gates = gates + ops.cast(condition, gates.dtype)
        h, c = _lstm_update(gates, windows["c"][:, 0, 0])
        return h, {"h": h, "c": c}

    def incremental_steps(self, inputs, outputs) -> list[Step]:
        """Steps of the incremental protocol: one LSTM step per pixel (see the
        module docstring); nothing per row."""
        return _recurrent_steps(self, inputs, outputs, link_features=None)

    def call_mirrored_row(self, inputs, above, condition=None):
        """One image row of the direction run right to left (on the mirrored image).

        Args:
          inputs: ``(B, W, C_in)``: the input row.
          above: ``(B, W, h)``: this direction's ``h`` on the row above
            (zeros above the image).
          condition: ``(B, W, 4 * units)``: the conditioning map of the row,
            or None.

        Returns:
          ``(B, W, h)``: ``h`` along the row, as the mirrored stream of
          :class:`DiagonalBiLSTM` gives it (column order of the image).
        """
        dtype = inputs.dtype
        kernel, bias = _diagonal_kernel(self, dtype)
        fixed = int(inputs.shape[-1]) + self.units  # rows of kernel for [x, h above]
        # The input and upper-neighbour parts of the whole row at once; the
        # loop adds the right neighbour (the left one on the mirrored image).
        gates = ops.matmul(ops.concatenate([inputs, above], axis=-1), kernel[:fixed]) + bias
        if condition is not None:
            gates = gates + ops.cast(condition, dtype)
        right = kernel[fixed:]

        def step(gates_t, h, c):
            return _lstm_update(gates_t + ops.matmul(h, right), c)

        rows = _scan(step, ops.flip(ops.transpose(gates, (1, 0, 2)), axis=0), self.units)
        return ops.transpose(ops.flip(rows, axis=0), (1, 0, 2))


@keras.saving.register_keras_serializable(package="pixel_models")
class DiagonalBiLSTM(keras.layers.Layer):
    """Diagonal BiLSTM: two Diagonal LSTMs, one of them mirrored and shifted down.

    A :class:`DiagonalLSTM` runs left to right; a second one runs on the
    horizontally mirrored input (right to left). The right-to-left output is
    mirrored back and shifted down by one row, so that pixel ``(i, j)``
    receives its value at ``(i - 1, j)``, which has seen rows ``<= i - 1``
    at columns ``>= j`` and nothing of row ``i``. The two are added::

        left to right      right to left,      sum: every pixel before
        at (i, j)          shifted down        (i, j) in raster order
        * * * . .          . . * * *           * * * * *
        * * * . .          . . * * *           * * * * *
        * * x . .          . . x . .           * * x . .

    so one layer already sees the whole past: there is no blind spot.
    Colour: the shifted stream reads only rows above, all of whose channels
    are in the past; the current pixel enters only through the type A/B
    input-to-state masks.

    Args:
      units: hidden features of each direction and of the output.
      mask_type: ``"A"`` or ``"B"`` (see :class:`DiagonalLSTM`).
      color_channels: colour groups ``C``.
      unit_forget_bias, kernel_initializer, recurrent_initializer,
        bias_initializer: as in :class:`DiagonalLSTM`, for both directions.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Example:

    >>> import numpy as np
    >>> layer = DiagonalBiLSTM(4, color_channels=2)
    >>> tuple(layer(np.zeros((1, 3, 4, 2), "float32")).shape)
    (1, 3, 4, 4)

    References:
      van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural
      Networks. ICML 2016. https://arxiv.org/abs/1601.06759 (Section 3.2:
      "the output map of the right-to-left LSTM is shifted down by one row
      and added to the left-to-right output map").
    """

    def __init__(
        self,
        units: int,
        mask_type: str = "B",
        color_channels: int = 1,
        unit_forget_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = positive_int("units", units)
        self.mask_type = mask_type
        self.color_channels = int(color_channels)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

        def direction(name):
            return DiagonalLSTM(**constructor_config(self), dtype=self.dtype_policy, name=name)

        self.forward_lstm = direction("left_to_right")
        self.backward_lstm = direction("right_to_left")

    def build(self, input_shape):
        self.forward_lstm.build(input_shape)
        self.backward_lstm.build(input_shape)

    def call(self, inputs, condition=None):
        # Both directions run in one loop (their states stacked on a leading
        # axis); the weights stay in the two DiagonalLSTM sublayers.
        both = _diagonal_lstm(
            [self.forward_lstm, self.backward_lstm], [False, True], inputs, condition
        )
        forward, backward = both[0], both[1]
        # Shift down one row: row i gets row i - 1, row 0 gets zeros.
        backward = ops.pad(backward[:, :-1], [[0, 0], [1, 0], [0, 0], [0, 0]])
        return forward + backward

    # Incremental evaluation (see the module docstring): the left-to-right
    # stream takes one LSTM step per pixel; the right-to-left stream, shifted
    # down one row, needs at row i only row i - 1, which is complete before
    # row i starts, so it is computed a whole row at a time (a loop over the
    # row's columns, right to left). It is kept as the row-rate state
    # ``back``: row i holds the right-to-left ``h`` of image row i - 1.

    def step_states(self) -> dict[str, tuple[int, Rate]]:
        """The left-to-right ``h`` and ``c`` (per pixel) and ``back`` (per row)."""
        return {**self.forward_lstm.step_states(), "back": (self.units, Rate.ROW)}

    def step_windows(self) -> dict[str, tuple[int, int, int]]:
        """The left-to-right stream's windows, and ``back`` at the pixel."""
        return {**self.forward_lstm.step_windows(), "back": (0, 0, 0)}

    def call_step_row(self, i, inputs_above, states_above, condition_above=None):
        """Row ``i`` of the shifted right-to-left stream.

        Args:
          i: the row (a scalar tensor).
          inputs_above: ``(B, W, C_in)``: row ``i - 1`` of the input.
          states_above: holds ``"back"`` at row ``i - 1``: the right-to-left
            ``h`` of image row ``i - 2`` (zeros for ``i < 2``).
          condition_above: ``(B, W, 4 * units)``: row ``i - 1`` of the
            conditioning map, or None.

        Returns:
          ``(None, {"back": (B, W, units)})``: the right-to-left ``h`` of
          image row ``i - 1``, zeros for ``i = 0``.
        """
        row = self.backward_lstm.call_mirrored_row(
            inputs_above, states_above["back"], condition_above
        )
        return None, {"back": row * ops.cast(ops.greater(i, 0), row.dtype)}

    def call_step(self, windows, link=None, condition=None):
        """The output at ``(i, j)``: the left-to-right step plus ``back`` there.

        ``condition`` is the conditioning map at ``(i, j)`` (``(B, 4 * units)``)
        or None.

        Returns:
          ``(output, {"h": h, "c": c})``: what ``call()`` gives at the pixel
          and the left-to-right states there.
        """
        forward, states = self.forward_lstm.call_step(windows, condition=condition)
        return forward + windows["back"][:, 0, 0], states

    def incremental_steps(self, inputs, outputs) -> list[Step]:
        """Steps of the incremental protocol: per row, the right-to-left stream
        (the state ``back``); per pixel, the left-to-right step (see the
        module docstring)."""
        return _recurrent_steps(self, inputs, outputs, link_features=None)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), **constructor_config(self)}
