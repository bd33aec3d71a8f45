"""The gated residual block of PixelCNN++ and PixelSNAIL, on a causal stream."""

from __future__ import annotations

import keras
from keras import ops

from pixel_models.layers.checks import dropout_rate, positive_int
from pixel_models.layers.gated_resnet import concat_elu
from pixel_models.layers.incremental import Here, NotIncremental, Rate, Slot, Step, Whole, Window
from pixel_models.layers.masked_conv import MaskedConv2D
from pixel_models.layers.serialization import constructor_config


@keras.saving.register_keras_serializable(package="pixel_models")
class GatedResidual(keras.layers.Layer):
    """A gated residual block of masked convolutions: ``x + a * sigmoid(b)``.

    On ``x`` ``(B, H, W, F)``, with an optional auxiliary input ``aux``
    ``(B, H, W, F_a)`` and an optional conditioning vector ``c`` ``(B, D)``::

        u      = conv_k(concat_elu(x)) + conv_1x1(concat_elu(aux))     (F)
        h      = dropout(concat_elu(u))                                (2 F)
        [a, b] = conv_k(h) + V c                                       (2 F)
        out    = x + a * sigmoid(b)

    Both ``conv_k`` are :class:`~pixel_models.layers.MaskedConv2D` of type B
    (``k x k``, one colour group), so the block keeps *strict* causality of
    a stream: if ``x`` (and ``aux``) at every position ``p`` depend on pixels
    strictly before ``p`` only, so does the output. For ``k = 3`` the output
    at ``o`` reads ``x`` at::

        x x x .
        x x o .      (two layers: x at these positions, and at theirs)
        . . . .

    With ``kernel_size=1`` the block is position-wise (the "network in
    network" residual blocks of PixelSNAIL's attention block).

    **Incremental evaluation.** Two position steps: ``h`` at the position
    from the window of ``x`` that the first convolution reads (kept in a
    buffer of the layer's own), then the output from the window of ``h``;
    ``call()`` stays the reference they are tested against.

    Args:
      filters: features ``F`` of the input and of the output.
      kernel_size: odd size ``k`` of the two masked convolutions.
      dropout: dropout rate on ``h`` in training.
      kernel_initializer, bias_initializer: Keras initializers.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Call arguments:
      inputs: ``x``, ``(B, H, W, filters)``.
      aux: optional ``(B, H, W, F_a)`` auxiliary input (PixelSNAIL: the
        attention output).
      condition: optional ``(B, D)`` conditioning vector (a class one-hot).
      training: whether dropout is applied.

    A block called with ``aux`` or ``condition`` must always be called with
    them (their weights are made on the first call).

    Example:

    >>> import numpy as np
    >>> block = GatedResidual(4, kernel_size=3)
    >>> x = np.ones((2, 5, 5, 4), "float32")
    >>> tuple(block(x, aux=np.ones((2, 5, 5, 3), "float32")).shape)
    (2, 5, 5, 4)

    References:
      Salimans, Karpathy, Chen, Kingma. PixelCNN++: Improving the PixelCNN
      with Discretized Logistic Mixture Likelihood and Other Modifications.
      ICLR 2017. https://arxiv.org/abs/1701.05517 (Section 2.4, the gated
      ResNet block).
      Chen, Mishra, Rohaninejad, Abbeel. PixelSNAIL: An Improved
      Autoregressive Generative Model. ICML 2018.
      https://arxiv.org/abs/1712.09763 (Figure 4, the residual block).

    Deviations from the papers: the convolutions are masked ``k x k``
    convolutions of type B instead of the ``2 x 2`` down-right-shifted
    convolutions of PixelSNAIL's code (for ``k = 3`` the masked kernel holds
    the four taps of the ``2 x 2`` one and the one above-right, which keeps
    the stream strictly causal and widens its field to the right); no weight
    normalisation or data-dependent initialisation.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        dropout: float = 0.0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = positive_int("filters", filters)
        self.kernel_size = int(kernel_size)
        self.dropout = dropout_rate(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        initializers = {
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }
        self.conv_in = MaskedConv2D(
            self.filters, self.kernel_size, mask_type="B", name="conv_in", **initializers
        )
        self.conv_aux = MaskedConv2D(
            self.filters, 1, mask_type="B", use_bias=False, name="conv_aux", **initializers
        )
        self.conv_out = MaskedConv2D(
            2 * self.filters, self.kernel_size, mask_type="B", name="conv_out", **initializers
        )
        self.dropout_layer = keras.layers.Dropout(self.dropout)
        self.has_aux = False
        self.has_condition = False

    def build(self, inputs_shape, aux_shape=None, condition_shape=None):
        if len(inputs_shape) != 4 or int(inputs_shape[-1]) != self.filters:
            raise ValueError(
                f"GatedResidual {self.name!r} adds its input to its output: the input must be "
                f"(B, H, W, {self.filters}), got {inputs_shape}"
            )
        hidden = (*inputs_shape[:-1], 2 * self.filters)
        self.conv_in.build(hidden)
        if aux_shape is not None:
            self.has_aux = True
            self.conv_aux.build((*aux_shape[:-1], 2 * int(aux_shape[-1])))
        self.conv_out.build(hidden, condition_shape)
        self.has_condition = condition_shape is not None

    def _check(self, aux, condition) -> None:
        for given, has, arg in (
            (aux, self.has_aux, "aux"),
            (condition, self.has_condition, "condition"),
        ):
            if (given is None) == has:
                raise ValueError(
                    f"GatedResidual {self.name!r} was built {'with' if has else 'without'} "
                    f"{arg}: call it the same way"
                )

    def _gate(self, x, out):
        a, b = out[..., : self.filters], out[..., self.filters :]
        return x + a * ops.sigmoid(b)

    def call(self, inputs, aux=None, condition=None, training=None):
        self._check(aux, condition)
        u = self.conv_in(concat_elu(inputs))
        if aux is not None:
            u = u + self.conv_aux(concat_elu(ops.cast(aux, u.dtype)))
        h = self.dropout_layer(concat_elu(u), training=training)
        return self._gate(inputs, self.conv_out(h, condition=condition))

    # Position-wise form, for incremental (cached) sampling.

    def call_hidden(self, window, aux=None):
        """``h`` at one position ``(B, 2 F)`` from the window of ``x``
        (``MaskedConv2D.causal_window()`` of the first convolution) and
        ``aux`` ``(B, F_a)`` there; in inference (no dropout)."""
        u = self.conv_in.call_window(concat_elu(window))
        if aux is not None:
            aux = ops.cast(aux, u.dtype)
            u = u + self.conv_aux.call_window(concat_elu(aux)[:, None, None, :])
        return concat_elu(u)

    def call_output(self, window, x, condition=None):
        """The output at one position ``(B, F)`` from the window of ``h``
        (:meth:`call_hidden`) and ``x`` ``(B, F)`` there."""
        return self._gate(ops.cast(x, window.dtype), self.conv_out.call_window(window, condition))

    def incremental_steps(self, inputs, outputs) -> list[Step]:
        """Two position steps: :meth:`call_hidden` (into a buffer of the
        layer's own), then :meth:`call_output` (see
        :mod:`pixel_models.layers.incremental`)."""
        x, aux, condition = inputs["inputs"], inputs.get("aux"), inputs.get("condition")
        if x.rate is Rate.CONSTANT or (aux is not None and aux.rate is Rate.CONSTANT):
            raise NotIncremental("convolves conditioning inputs")
        if condition is not None and condition.rate is not Rate.CONSTANT:
            raise NotIncremental("has a condition that depends on the image")
        hidden = Slot(2 * self.filters, f"{self.name}/hidden")
        hidden_reads = {"window": Window(x, *self.conv_in.causal_window())}
        if aux is not None:
            hidden_reads["aux"] = Here(aux)
        output_reads = {"window": Window(hidden, *self.conv_out.causal_window()), "x": Here(x)}
        if condition is not None:
            output_reads["condition"] = Whole(condition)

        def hidden_step(where, window, aux=None):
            return [self.call_hidden(window, aux)]

        def output_step(where, window, x, condition=None):
            return [self.call_output(window, x, condition)]

        return [
            Step(Rate.POSITION, hidden_reads, [hidden], hidden_step),
            Step(Rate.POSITION, output_reads, outputs, output_step),
        ]

    def compute_output_shape(self, inputs_shape, aux_shape=None, condition_shape=None):
        return tuple(inputs_shape)

    def get_config(self):
        return {**super().get_config(), **constructor_config(self)}
