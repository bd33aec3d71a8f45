"""The transposed (upsampling) shifted convolutions of PixelCNN++."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import ops

from pixel_models.layers.convolution import Convolution, with_bias
from pixel_models.layers.incremental import NotIncremental, Rate, Step, Window
from pixel_models.layers.serialization import constructor_config
from pixel_models.layers.shifted_conv import _pair, shifted_padding


@keras.saving.register_keras_serializable(package="pixel_models")
class ShiftedConv2DTranspose(Convolution):
    """A transposed convolution that keeps a PixelCNN++ stream causal.

    Input ``(p, q)`` at the low resolution spreads to the outputs ``(s p +
    a, s q + b)`` for kernel offsets ``0 <= a < kh`` and ``b`` in ``0 .. kw -
    1`` (``"down_right"``) or ``-(kw - 1) / 2 .. (kw - 1) / 2`` (``"down"``,
    ``kw`` odd). So an output at row ``i`` reads low-resolution rows ``p <=
    i / s`` and, for ``"down_right"``, columns ``q <= j / s``: a stream that
    at ``(p, q)`` has seen the image before ``(s p, s q)`` (what the strided
    :class:`~pixel_models.layers.shifted_conv.ShiftedConv2D` gives) stays
    causal after upsampling. The output has ``s h x s w`` positions, cropped
    at the bottom and right to ``target_size`` (the size of the resolution
    above, when it was not a multiple of ``s``).

    Args:
      filters: output features.
      kernel_size: int or pair ``(kh, kw)`` (the paper's ``2 x 3`` down and
        ``2 x 2`` down-right).
      direction: ``"down"`` or ``"down_right"``.
      strides: int or pair ``s``.
      target_size: ``(H, W)`` to crop the output to, or None for ``(s h, s w)``.
      use_bias: add a bias.
      kernel_initializer, bias_initializer: Keras initializers.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Example:

    >>> import numpy as np
    >>> up = ShiftedConv2DTranspose(4, (2, 3), "down", strides=2, target_size=(5, 5))
    >>> tuple(up(np.zeros((1, 3, 3, 2), "float32")).shape)
    (1, 5, 5, 4)

    References:
      Salimans, Karpathy, Chen, Kingma. PixelCNN++: Improving the PixelCNN
      with Discretized Logistic Mixture Likelihood and Other Modifications.
      ICLR 2017. https://arxiv.org/abs/1701.05517 (Section 2.4, Figure 2).
      Deviation: plain convolutions, without the paper's weight normalization.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int] = (2, 3),
        direction: str = "down",
        strides: int | Sequence[int] = 2,
        target_size: Sequence[int] | None = None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(filters, use_bias, kernel_initializer, bias_initializer, **kwargs)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        shifted_padding(self.kernel_size, direction)  # refuses a bad direction or kernel width
        self.direction = direction
        self.strides = _pair(strides, "strides")
        self.target_size = None if target_size is None else _pair(target_size, "target_size")

    def build(self, inputs_shape):
        # Keras's transposed-convolution kernels are (kh, kw, out, in).
        self.add_kernel_and_bias((*self.kernel_size, self.filters, int(inputs_shape[-1])))

    def _size(self, height, width) -> tuple[int, int]:
        if self.target_size is not None:
            return self.target_size
        return height * self.strides[0], width * self.strides[1]

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        full = ops.conv_transpose(inputs, self.kernel, strides=self.strides, padding="valid")
        left = (self.kernel_size[1] - 1) // 2 if self.direction == "down" else 0
        out_h, out_w = self._size(height, width)
        if out_h > height * self.strides[0] or out_w > width * self.strides[1]:
            raise ValueError(
                f"{self.name}: target_size {self.target_size} exceeds the upsampled "
                f"{height * self.strides[0]}x{width * self.strides[1]}"
            )
        return with_bias(full[:, :out_h, left : left + out_w], self.bias)

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1:3]
        if self.target_size is not None:
            return (input_shape[0], *self.target_size, self.filters)
        sizes = [
            None if n is None else int(n) * s
            for n, s in zip((height, width), self.strides, strict=True)
        ]
        return (input_shape[0], *sizes, self.filters)

    def incremental_steps(self, inputs, outputs) -> list[Step]:
        """One step at the input's scale divided by the stride (see
        :mod:`pixel_models.layers.incremental`): output row ``i`` is the
        transposed convolution of input row ``i // s`` with kernel row
        ``i % s`` (a row step, on a row-rate input), and output ``(i, j)`` of
        a ``"down_right"`` layer on a position-rate input is input ``(i // s,
        j // s)`` times kernel entry ``(i % s, j % s)`` (a position step).
        Kernels taller or wider than the stride have no such form."""
        x = inputs["inputs"]
        if x.rate is Rate.CONSTANT:
            raise NotIncremental("convolves conditioning inputs")
        sh, sw = self.strides
        kh, kw = self.kernel_size
        if sh != sw or x.scale % sh:
            raise NotIncremental(f"upsamples a map of scale {x.scale} by {self.strides}")
        if kh > sh or (x.rate is Rate.POSITION and (kw > sw or self.direction == "down")):
            raise NotIncremental("has a kernel larger than its stride on position-wise features")
        scale = x.scale // sh
        left = (kw - 1) // 2 if self.direction == "down" else 0

        def kernel_row(a):
            used = tf.cast(a < kh, self.kernel.dtype)  # kernel rows past kh give zeros
            return tf.gather(self.kernel, tf.minimum(a, kh - 1), axis=0) * used

        def row(where, window):
            kernel = kernel_row(where.i % sh)[None]  # (1, kw, out, in)
            width = self.target_size[1] if self.target_size is not None else None
            full = ops.conv_transpose(window, kernel, strides=(1, sw), padding="valid")
            width = width or window.shape[2] * sw
            out = full[:, 0, left : left + width]
            return [with_bias(out, self.bias)]

        def position(where, window):
            b = where.j % sw
            kernel = kernel_row(where.i % sh)
            kernel = tf.gather(kernel, tf.minimum(b, kw - 1), axis=0) * tf.cast(
                b < kw, kernel.dtype
            )
            out = ops.einsum("bf,of->bo", window[:, 0, 0], kernel)
            return [with_bias(out, self.bias)]

        call = row if x.rate is Rate.ROW else position
        return [Step(x.rate, {"window": Window(x, 0, 0, 0)}, outputs, call, scale=scale)]

    def get_config(self):
        return {**super().get_config(), **constructor_config(self)}
