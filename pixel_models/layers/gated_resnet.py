"""The gated residual block of PixelCNN++, with the concatenated ELU."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from pixel_models.layers.checks import dropout_rate
from pixel_models.layers.incremental import Here, NotIncremental, Rate, Slot, Step, Whole, Window
from pixel_models.layers.serialization import constructor_config
from pixel_models.layers.shifted_conv import ShiftedConv2D


def concat_elu(x):
    """``concat(elu(x), elu(-x))`` on the last axis: doubles the features.

    Zero maps to zero, so the zero padding of a shifted convolution is the
    same before and after it.

    Example:

    >>> import numpy as np
    >>> np.round(np.asarray(concat_elu(np.array([[1.0, -1.0]]))), 4).tolist()
    [[1.0, -0.6321, -0.6321, 1.0]]
    """
    x = ops.convert_to_tensor(x)
    return ops.elu(ops.concatenate([x, -x], axis=-1))


@keras.saving.register_keras_serializable(package="pixel_models")
class GatedResnet(keras.layers.Layer):
    """A gated residual block of PixelCNN++ on one stream::

        c1 = conv(concat_elu(x)) + sum_n nin_n(concat_elu(a_n))
        c2 = conv'(dropout(concat_elu(c1))) + V h          (2 F features)
        out = x + c2[:F] * sigmoid(c2[F:])

    ``conv`` and ``conv'`` are :class:`~pixel_models.layers.shifted_conv.ShiftedConv2D`
    of the stream's ``direction`` (the paper's ``2 x 3`` down and ``2 x 2``
    down-right kernels); ``a_n`` are the auxiliary inputs of the block (the
    other stream at the same position, the U-Net short-cut of the downward
    pass), each through a ``1 x 1`` convolution ``nin_n`` (one per input,
    which is a ``1 x 1`` convolution of their concatenation, as in the
    paper); ``h`` is the optional conditioning vector (a class one-hot),
    whose learned projection ``V h`` is a per-image bias. Nothing reads a
    later position than the stream's convolutions do, so the block is as
    causal as its inputs.

    Args:
      direction: ``"down"`` or ``"down_right"``.
      kernel_size: of both convolutions (None: ``(2, 3)`` down, ``(2, 2)``
        down-right).
      dropout: dropout rate on ``concat_elu(c1)`` while training.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Call arguments:
      inputs: ``(B, H, W, F)`` the stream.
      aux: a list of ``(B, H, W, F_n)`` auxiliary inputs, or None.
      condition: ``(B, D)`` conditioning vector, or None.
      training: dropout on or off.

    Example:

    >>> import numpy as np
    >>> block = GatedResnet("down_right", dropout=0.5)
    >>> x = np.zeros((2, 4, 4, 6), "float32")
    >>> tuple(block(x, aux=[x], condition=np.eye(2, 3, dtype="float32")).shape)
    (2, 4, 4, 6)

    References:
      Salimans, Karpathy, Chen, Kingma. PixelCNN++: Improving the PixelCNN
      with Discretized Logistic Mixture Likelihood and Other Modifications.
      ICLR 2017. https://arxiv.org/abs/1701.05517 (Section 2.4, 2.6).
      Deviation: no weight normalization (plain convolutions; the second
      convolution is initialised 10 times smaller, as the paper's code does
      with its initial scale).
    """

    def __init__(
        self,
        direction: str = "down",
        kernel_size: Sequence[int] | None = None,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dropout = dropout_rate(dropout)
        self.direction = direction
        if kernel_size is None:
            kernel_size = (2, 3) if direction == "down" else (2, 2)
        self.kernel_size = tuple(int(v) for v in kernel_size)
        ShiftedConv2D(1, self.kernel_size, direction)  # fails early on a bad direction
        self.condition_dims = None
        self.aux_dims: list[int] = []

    def build(self, inputs_shape, aux_shape=None, condition_shape=None):
        filters = int(inputs_shape[-1])
        self.filters = filters
        self.conv1 = ShiftedConv2D(filters, self.kernel_size, self.direction, name="conv1")
        self.conv1.build((*inputs_shape[:-1], 2 * filters))
        self.conv2 = ShiftedConv2D(
            2 * filters,
            self.kernel_size,
            self.direction,
            kernel_initializer=keras.initializers.VarianceScaling(0.01, "fan_avg", "uniform"),
            name="conv2",
        )
        self.conv2.build((*inputs_shape[:-1], 2 * filters))
        self.aux_dims = [int(shape[-1]) for shape in (aux_shape or [])]
        # One attribute per kernel: a TensorFlow checkpoint follows attributes,
        # not the variables of a list, so a model-only restore would miss them.
        for n, d in enumerate(self.aux_dims):
            kernel = self.add_weight(name=f"aux{n}_kernel", shape=(2 * d, filters))
            setattr(self, f"aux{n}_kernel", kernel)
        if condition_shape is not None:
            if len(condition_shape) != 2:
                raise ValueError(f"condition must be (B, D), got shape {condition_shape}")
            self.condition_dims = int(condition_shape[-1])
            self.condition_kernel = self.add_weight(
                name="condition_kernel", shape=(self.condition_dims, 2 * filters)
            )
        self.drop = keras.layers.Dropout(self.dropout)

    @property
    def aux_kernels(self) -> list:
        """The projections of the auxiliary inputs, one per input."""
        return [getattr(self, f"aux{n}_kernel") for n in range(len(self.aux_dims))]

    def _check(self, aux, condition) -> None:
        if len(aux or []) != len(self.aux_dims) or (condition is None) != (
            self.condition_dims is None
        ):
            raise ValueError(
                f"GatedResnet {self.name!r} was built with {len(self.aux_dims)} aux inputs and "
                f"{'no' if self.condition_dims is None else 'a'} condition: call it the same way"
            )

    def _first(self, c1, aux):
        """``c1`` plus the auxiliary inputs' projections, through the ELUs."""
        for a, kernel in zip(aux or [], self.aux_kernels, strict=True):
            c1 = c1 + ops.matmul(concat_elu(ops.cast(a, c1.dtype)), kernel)
        return concat_elu(c1)

    def _gate(self, x, c2, condition):
        if condition is not None:
            bias = ops.matmul(ops.cast(condition, c2.dtype), self.condition_kernel)
            c2 = c2 + ops.reshape(bias, (-1,) + (1,) * (len(c2.shape) - 2) + (2 * self.filters,))
        value, gate = ops.split(c2, 2, axis=-1)
        return x + value * ops.sigmoid(gate)

    def call(self, inputs, aux=None, condition=None, training=None):
        self._check(aux, condition)
        hidden = self._first(self.conv1(concat_elu(inputs)), aux)
        c2 = self.conv2(self.drop(hidden, training=training))
        return self._gate(inputs, c2, condition)

    def compute_output_shape(self, inputs_shape, aux_shape=None, condition_shape=None):
        return tuple(inputs_shape)

    def incremental_steps(self, inputs, outputs) -> list[Step]:
        """Two steps at the stream's rate (per row for the down stream, per
        position for the down-right one): the hidden ``concat_elu(c1)`` from
        the input's window (kept in a slot of the block), then the output
        from the hidden window; auxiliary inputs are read at the position
        (or row), the condition whole."""
        x = inputs["inputs"]
        aux = list(inputs.get("aux") or [])
        condition = inputs.get("condition")
        if x.rate is Rate.CONSTANT or any(a.rate is Rate.CONSTANT for a in aux):
            raise NotIncremental("convolves conditioning inputs")
        if condition is not None and condition.rate is not Rate.CONSTANT:
            raise NotIncremental("has a condition that depends on the image")
        rate = Rate.ROW if x.rate is Rate.ROW and all(a.rate is Rate.ROW for a in aux) else None
        if rate is None:
            if self.direction == "down":
                raise NotIncremental("reads later positions of position-wise features")
            rate = Rate.POSITION
        top, left, right = self.conv1.padding
        hidden = Slot(2 * self.filters, f"{self.name}/hidden")

        def conv(layer, window):
            out = layer._conv(window)
            return out[:, 0] if rate is Rate.ROW else out[:, 0, 0]

        def first(where, window, **values):
            a = [values[f"aux{n}"] for n in range(len(aux))]
            return [self._first(conv(self.conv1, concat_elu(window)), a)]

        def second(where, window, x, condition=None):
            return [self._gate(x, conv(self.conv2, window), condition)]

        reads = {
            "window": Window(x, top, left, right),
            **{f"aux{n}": Here(a) for n, a in enumerate(aux)},
        }
        given = {} if condition is None else {"condition": Whole(condition)}
        second_reads = {"window": Window(hidden, top, left, right), "x": Here(x), **given}
        return [Step(rate, reads, [hidden], first), Step(rate, second_reads, outputs, second)]

    def get_config(self):
        return {**super().get_config(), **constructor_config(self)}
