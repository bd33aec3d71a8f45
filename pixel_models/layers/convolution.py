"""What every convolution of the package shares: ``filters`` output features,
one kernel, an optional bias, and the initializers of both.

:class:`~pixel_models.layers.MaskedConv2D`,
:class:`~pixel_models.layers.ShiftedConv2D`,
:class:`~pixel_models.layers.ShiftedConv2DTranspose` and
:class:`~pixel_models.layers.GroupConv2D` differ in their kernel's shape and
in how they apply it; they keep and create these weights the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import ops

from pixel_models.layers.checks import positive_int


class Convolution(keras.layers.Layer):
    """A layer of ``filters`` output features computed with one kernel and,
    with ``use_bias``, a bias of ``filters`` values.

    A subclass checks its own arguments, computes its kernel's shape in
    ``build`` and calls :meth:`add_kernel_and_bias`; ``get_config`` stays the
    subclass's (its constructor's arguments, read from these attributes).

    Args:
      filters: output features (a positive int).
      use_bias: whether a bias is added.
      kernel_initializer, bias_initializer: Keras initializers.
      **kwargs: forwarded to ``keras.layers.Layer``.
    """

    def __init__(
        self,
        filters: int,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = positive_int("filters", filters)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def add_kernel_and_bias(self, kernel_shape: Sequence[int]) -> None:
        """Adds ``self.kernel`` of ``kernel_shape`` and then ``self.bias``
        (None without ``use_bias``): always in that order, so that a seeded
        model's initial weights do not depend on which subclass holds them."""
        self.kernel = self.add_weight(
            name="kernel", shape=tuple(kernel_shape), initializer=self.kernel_initializer
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )


def with_bias(outputs, bias):
    """``outputs + bias`` on the last axis (``bias`` None: ``outputs``), as one
    bias-add op, whose gradient is a single reduction."""
    if bias is None:
        return outputs
    return tf.nn.bias_add(outputs, ops.cast(bias, outputs.dtype))
