"""Down-shifted and down-right-shifted convolutions of PixelCNN++.

PixelCNN++ keeps causality without masks: its two streams are convolved with
kernels that only reach up (``"down"``, the stream of the rows above) or up
and to the left (``"down_right"``, the stream of the rows above and the
current row's pixels to the left), by padding the input on the top (and
left) before a ``VALID`` convolution. The shift functions :func:`down_shift`
and :func:`right_shift` move a map one row down or one column right, so that
a stream's first layer does not see the current pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from pixel_models.layers.convolution import Convolution, with_bias
from pixel_models.layers.incremental import NotIncremental, Rate, Step, Window
from pixel_models.layers.serialization import constructor_config

DIRECTIONS = ("down", "down_right")


def down_shift(x):
    """Shifts ``(B, H, W, F)`` one row down: zeros enter at the top, the last row leaves.

    Example:

    >>> import numpy as np
    >>> x = np.arange(1, 7, dtype="float32").reshape(1, 3, 2, 1)
    >>> np.asarray(down_shift(x))[0, :, :, 0].tolist()
    [[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]]
    """
    x = ops.convert_to_tensor(x)
    return ops.pad(x, [[0, 0], [1, 0], [0, 0], [0, 0]])[:, :-1]


def right_shift(x):
    """Shifts ``(B, H, W, F)`` one column right: zeros enter on the left.

    Example:

    >>> import numpy as np
    >>> x = np.arange(1, 7, dtype="float32").reshape(1, 2, 3, 1)
    >>> np.asarray(right_shift(x))[0, :, :, 0].tolist()
    [[0.0, 1.0, 2.0], [0.0, 4.0, 5.0]]
    """
    x = ops.convert_to_tensor(x)
    return ops.pad(x, [[0, 0], [0, 0], [1, 0], [0, 0]])[:, :, :-1]


def shifted_padding(kernel_size: Sequence[int], direction: str) -> tuple[int, int, int]:
    """``(top, left, right)`` zero padding before a ``VALID`` convolution.

    ``"down"``: ``kh - 1`` rows on top, ``(kw - 1) / 2`` columns on each side
    (``kw`` odd), so output ``(i, j)`` reads rows ``i - kh + 1 .. i`` and
    columns ``j - (kw - 1) / 2 .. j + (kw - 1) / 2``. ``"down_right"``:
    ``kh - 1`` rows on top and ``kw - 1`` columns on the left, so output
    ``(i, j)`` reads rows ``i - kh + 1 .. i`` and columns ``j - kw + 1 .. j``.

    Example:

    >>> shifted_padding((2, 3), "down"), shifted_padding((2, 2), "down_right")
    ((1, 1, 1), (1, 1, 0))
    """
    kh, kw = (int(v) for v in kernel_size)
    if direction == "down":
        if kw % 2 == 0:
            raise ValueError(f"a down-shifted kernel needs an odd width, got {kw}")
        return kh - 1, (kw - 1) // 2, (kw - 1) // 2
    if direction == "down_right":
        return kh - 1, kw - 1, 0
    raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or int(v) != v or int(v) < 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


@keras.saving.register_keras_serializable(package="pixel_models")
class ShiftedConv2D(Convolution):
    """A convolution whose kernel reaches up (and left) only, as in PixelCNN++.

    ``"down"`` (``kh x kw``, ``kw`` odd; the paper's ``2 x 3``) and
    ``"down_right"`` (the paper's ``2 x 2``) windows of output ``(i, j)``,
    for ``2 x 3`` and ``2 x 2``::

        down          down_right
        x x x         x x
        x o x         x o          (o: the output position; x: inputs read)

    With ``shift=True`` the output is shifted one row down (``"down"``) or
    one column right (``"down_right"``) after the convolution
    (:func:`down_shift`, :func:`right_shift`), so the output at ``(i, j)``
    no longer reads the input at ``(i, j)``: a network's first layers on the
    image. With ``strides > 1`` the input is downsampled, output ``(p, q)``
    being the window at input ``(s p, s q)`` (``ceil(H / s) x ceil(W / s)``
    outputs).

    Args:
      filters: output features.
      kernel_size: int or pair ``(kh, kw)``.
      direction: ``"down"`` or ``"down_right"``.
      strides: int or pair (1: same size).
      shift: shift the output (stride 1 only).
      use_bias: add a bias.
      kernel_initializer, bias_initializer: Keras initializers.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Example:

    >>> import numpy as np
    >>> conv = ShiftedConv2D(4, (2, 3), direction="down")
    >>> tuple(conv(np.zeros((1, 5, 5, 3), "float32")).shape)
    (1, 5, 5, 4)
    >>> tuple(ShiftedConv2D(4, (2, 2), "down_right", strides=2)(np.zeros((1, 5, 5, 3))).shape)
    (1, 3, 3, 4)

    References:
      Salimans, Karpathy, Chen, Kingma. PixelCNN++: Improving the PixelCNN
      with Discretized Logistic Mixture Likelihood and Other Modifications.
      ICLR 2017. https://arxiv.org/abs/1701.05517 (Section 2.3, 2.4,
      Figure 2). Deviation: plain convolutions, without the paper's weight
      normalization.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int] = (2, 3),
        direction: str = "down",
        strides: int | Sequence[int] = 1,
        shift: bool = False,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(filters, use_bias, kernel_initializer, bias_initializer, **kwargs)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.direction = direction
        self.padding = shifted_padding(self.kernel_size, direction)
        self.strides = _pair(strides, "strides")
        self.shift = bool(shift)
        if self.shift and self.strides != (1, 1):
            raise ValueError("shift=True needs strides=1")

    def build(self, inputs_shape):
        self.add_kernel_and_bias((*self.kernel_size, int(inputs_shape[-1]), self.filters))

    def _conv(self, padded):
        outputs = ops.conv(padded, self.kernel, strides=self.strides, padding="valid")
        return with_bias(outputs, self.bias)

    def call(self, inputs):
        top, left, right = self.padding
        outputs = self._conv(ops.pad(inputs, [[0, 0], [top, 0], [left, right], [0, 0]]))
        if not self.shift:
            return outputs
        return down_shift(outputs) if self.direction == "down" else right_shift(outputs)

    def compute_output_shape(self, input_shape):
        sizes = [
            None if n is None else -(-int(n) // s)
            for n, s in zip(input_shape[1:3], self.strides, strict=True)
        ]
        return (input_shape[0], *sizes, self.filters)

    # Position-wise form, for the cached sampler (stride 1).

    def incremental_steps(self, inputs, outputs) -> list[Step]:
        """The layer one row (when its input is computed per row, or when a
        down shift makes it read only rows above) or one position at a time.

        - ``"down"`` with ``shift``: a row step reading the ``kh`` rows above;
        - ``"down"`` on a row-rate input: a row step reading rows ``i - kh + 1 .. i``;
        - ``"down_right"``: a position step on the ``kh x kw`` window ending
          at the position (one column left of it with ``shift``), or a row
          step on a row-rate input.

        A strided layer's step runs at its input's scale times its stride
        (see :mod:`pixel_models.layers.incremental`).
        """
        x = inputs["inputs"]
        if x.rate is Rate.CONSTANT:
            raise NotIncremental("convolves conditioning inputs")
        sh, sw = self.strides
        if sh != sw:
            raise NotIncremental("has unequal strides: it has no single lower resolution")
        # A strided convolution runs at its own, lower, resolution: output (p, q)
        # is the window at input (s p, s q), computed when the sampler is there.
        scale = None if sh == 1 else x.scale * sh
        top, left, right = self.padding
        if self.direction == "down" and self.shift:
            window = Window(x, top + 1, left, right, bottom=1)

            def shifted_row(where, window):
                row = self._conv(window)[:, 0]
                return [row * ops.cast(where.i > 0, row.dtype)]  # zeros enter at the top

            return [Step(Rate.ROW, {"window": window}, outputs, shifted_row)]
        if x.rate is Rate.ROW:

            def row(where, window):
                out = self._conv(window)[:, 0]
                if self.shift:  # a right shift of the row
                    out = ops.pad(out, [[0, 0], [1, 0], [0, 0]])[:, :-1]
                return [out]

            reads = {"window": Window(x, top, left, right)}
            return [Step(Rate.ROW, reads, outputs, row, scale=scale)]
        if self.direction == "down":
            raise NotIncremental(
                "reads later positions of the current row of position-wise features"
            )
        if self.shift:
            window = Window(x, top, left + 1, -1)

            def shifted_position(where, window):
                out = self._conv(window)[:, 0, 0]
                return [out * ops.cast(where.j > 0, out.dtype)]  # zeros enter on the left

            return [Step(Rate.POSITION, {"window": window}, outputs, shifted_position)]

        def position(where, window):
            return [self._conv(window)[:, 0, 0]]

        reads = {"window": Window(x, top, left, right)}
        return [Step(Rate.POSITION, reads, outputs, position, scale=scale)]

    def get_config(self):
        return {**super().get_config(), **constructor_config(self)}
