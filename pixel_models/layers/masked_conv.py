"""Masked 2-D convolutions for autoregressive image models.

A masked convolution only lets an output pixel see the input pixels that come
before it in raster order (rows top to bottom, pixels left to right). With
colour images the channels of one pixel are ordered too (R, then G, then B):
features are split into as many groups as there are colour channels, and at
the centre position output group ``g`` sees input groups ``< g`` (mask type A)
or ``<= g`` (mask type B).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from pixel_models.layers.checks import check_mask_type
from pixel_models.layers.convolution import Convolution
from pixel_models.layers.incremental import NotIncremental, Rate, Step, Whole, Window
from pixel_models.layers.serialization import constructor_config


def channel_groups(num_features: int, color_channels: int) -> np.ndarray:
    """Colour group of each feature: contiguous, near-equal blocks.

    Feature ``f`` of ``num_features`` belongs to group
    ``f * color_channels // num_features``. With ``num_features ==
    color_channels`` each feature is its own group (raw RGB input); with
    ``num_features == color_channels * k`` the groups are blocks of ``k``
    consecutive features (so logits reshaped to ``(..., color_channels, k)``
    keep channel ``c`` in block ``c``).

    Args:
      num_features: number of features (input or output channels).
      color_channels: number of colour channels ``C``.

    Returns:
      int array of shape ``(num_features,)`` with values in ``[0, C)``.

    Example:

    >>> channel_groups(6, 3).tolist()
    [0, 0, 1, 1, 2, 2]
    """
    if color_channels < 1:
        raise ValueError(f"color_channels must be >= 1, got {color_channels}")
    if num_features < color_channels:
        raise ValueError(
            f"{num_features} features cannot be split into {color_channels} colour "
            "groups: use at least one feature per colour channel"
        )
    return (np.arange(num_features) * color_channels) // num_features


def make_mask(
    kernel_size: int | Sequence[int],
    in_channels: int,
    out_channels: int,
    mask_type: str,
    color_channels: int = 1,
) -> np.ndarray:
    """Builds the causal mask of a masked convolution kernel.

    The mask has the kernel's shape ``(kh, kw, in_channels, out_channels)``.
    Positions above the centre row and left of the centre in the centre row
    are visible (1); positions after the centre are hidden (0). At the centre
    itself, output colour group ``g`` sees input group ``h`` when ``h < g``
    (type A) or ``h <= g`` (type B). With one colour channel, type A hides the
    centre and type B shows it. For a 5x5 kernel and one colour channel::

        type A        type B
        1 1 1 1 1     1 1 1 1 1
        1 1 1 1 1     1 1 1 1 1
        1 1 0 0 0     1 1 1 0 0
        0 0 0 0 0     0 0 0 0 0
        0 0 0 0 0     0 0 0 0 0

    Args:
      kernel_size: odd int or pair of odd ints ``(kh, kw)``.
      in_channels: input features.
      out_channels: output features.
      mask_type: ``"A"`` (first layer: the pixel does not see itself) or
        ``"B"`` (later layers).
      color_channels: number of colour channel groups ``C``.

    Returns:
      float32 numpy array of shape ``(kh, kw, in_channels, out_channels)``.

    Example:

    >>> make_mask(3, 1, 1, "A")[..., 0, 0].astype(int).tolist()
    [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    """
    kh, kw = _pair(kernel_size, "kernel_size")
    check_mask_type(mask_type)
    mask = np.zeros((kh, kw, in_channels, out_channels), dtype=np.float32)
    ch, cw = kh // 2, kw // 2
    mask[:ch] = 1.0
    mask[ch, :cw] = 1.0
    in_groups = channel_groups(in_channels, color_channels)[:, None]
    out_groups = channel_groups(out_channels, color_channels)[None, :]
    if mask_type == "A":
        mask[ch, cw] = (in_groups < out_groups).astype(np.float32)
    else:
        mask[ch, cw] = (in_groups <= out_groups).astype(np.float32)
    return mask


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or any(int(v) < 1 or int(v) % 2 == 0 for v in pair):
        raise ValueError(f"{name} must be an odd positive int or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


@keras.saving.register_keras_serializable(package="pixel_models")
class MaskedConv2D(Convolution):
    """2-D convolution whose kernel is masked to respect raster order.

    Computes ``conv2d(x, kernel * mask) + bias`` with stride 1 and ``SAME``
    padding, where ``mask`` comes from :func:`make_mask`: the output at pixel
    ``(i, j)`` depends only on input pixels before ``(i, j)`` in raster order,
    plus, for type B, on ``(i, j)`` itself (and, with colour groups, only on
    the groups allowed at the centre). Masks for a 3x3 kernel::

        type A     type B
        1 1 1      1 1 1
        1 0 0      1 1 0
        0 0 0      0 0 0

    The mask is a constant built once in ``build()`` and applied in ``call()``
    as ``kernel * mask``; the hidden kernel entries stay at their initial
    values and never receive gradient.

    Conditioning: called as ``layer(x, condition=y)`` with a ``(B, D)``
    vector ``y`` (a class one-hot, a latent code), the layer adds the learned
    per-image bias ``y V`` (``V`` of shape ``(D, filters)``) to every
    position before the activation, as the class-conditional PixelCNN of
    van den Oord et al. (2016b, Equation 4) does. The bias does not depend on
    the image, so causality is unchanged. A layer built with a condition must
    always be called with one.

    Args:
      filters: number of output features. With ``color_channels > 1`` it is
        split into ``color_channels`` contiguous groups.
      kernel_size: odd int or pair of odd ints.
      mask_type: ``"A"`` or ``"B"``.
      color_channels: number of colour channel groups (1 for grey or binary
        images, 3 for RGB).
      activation: Keras activation applied to the output.
      use_bias: whether to add a bias.
      kernel_initializer, bias_initializer: Keras initializers.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Example:

    >>> import numpy as np
    >>> layer = MaskedConv2D(4, 3, mask_type="A")
    >>> tuple(layer(np.zeros((2, 8, 8, 1), "float32")).shape)
    (2, 8, 8, 4)
    >>> conditional = MaskedConv2D(4, 3, mask_type="A")
    >>> x = conditional(np.zeros((2, 8, 8, 1), "float32"), condition=np.eye(2, 3, dtype="float32"))
    >>> conditional.condition_dims
    3

    References:
      van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural
      Networks. ICML 2016. https://arxiv.org/abs/1601.06759 (Section 3.4,
      Figure 2 for the colour masks).
      van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu.
      Conditional Image Generation with PixelCNN Decoders. NeurIPS 2016.
      https://arxiv.org/abs/1606.05328 (the conditioning).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        mask_type: str = "B",
        color_channels: int = 1,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(filters, use_bias, kernel_initializer, bias_initializer, **kwargs)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.mask_type = check_mask_type(mask_type)
        self.color_channels = int(color_channels)
        self.activation = keras.activations.get(activation)
        # Fail at construction, not at build, on impossible colour groups.
        channel_groups(self.filters, self.color_channels)
        self.condition_dims = None

    def build(self, inputs_shape, condition_shape=None):
        in_channels = int(inputs_shape[-1])
        mask = make_mask(
            self.kernel_size, in_channels, self.filters, self.mask_type, self.color_channels
        )
        kh, kw = self.kernel_size
        # Mask A on one colour group hides the whole centre tap: the output
        # at (i, j) does not read the input at (i, j).
        self._reads_centre = bool(mask[kh // 2, kw // 2].any())
        # A numpy constant, not a tensor: a tensor made here would belong to
        # the graph build() runs in (a first call inside a tf.function or fit).
        self.mask = mask
        self.add_kernel_and_bias((*self.kernel_size, in_channels, self.filters))
        if condition_shape is not None:
            if len(condition_shape) != 2:
                raise ValueError(f"condition must be (B, D), got shape {condition_shape}")
            self.condition_dims = int(condition_shape[-1])
            self.condition_kernel = self.add_weight(
                name="condition_kernel",
                shape=(self.condition_dims, self.filters),
                initializer=self.kernel_initializer,
            )

    def _check_condition(self, condition) -> None:
        if (condition is None) != (self.condition_dims is None):
            raise ValueError(
                f"MaskedConv2D {self.name!r} was built "
                f"{'without' if self.condition_dims is None else 'with'} a condition: "
                "call it the same way"
            )

    def _finish(self, outputs, condition):
        """Bias, conditioning bias and activation of ``(B, ..., filters)`` outputs."""
        if self.use_bias:
            outputs = outputs + self.bias
        if condition is not None:
            bias = ops.matmul(ops.cast(condition, outputs.dtype), self.condition_kernel)
            outputs = outputs + ops.reshape(
                bias, (-1,) + (1,) * (len(outputs.shape) - 2) + (self.filters,)
            )
        return self.activation(outputs)

    def call(self, inputs, condition=None):
        self._check_condition(condition)
        kernel = self.kernel  # in the compute dtype under mixed precision
        kernel = kernel * ops.cast(self.mask, kernel.dtype)
        outputs = ops.conv(inputs, kernel, strides=1, padding="same")
        return self._finish(outputs, condition)

    def causal_window(self) -> tuple[int, int, int]:
        """Past context an output position reads: ``(rows_above, cols_left, cols_right)``.

        The output at ``(i, j)`` reads input rows ``i - rows_above .. i`` and
        columns ``j - cols_left .. j + cols_right`` (the mask hides the rows
        below and the later positions of row ``i``). Incremental samplers use
        it to size their caches.
        """
        kh, kw = self.kernel_size
        return kh // 2, kw // 2, kw // 2

    def call_window(self, window, condition=None):
        """The output at one position from its input window.

        Args:
          window: ``(B, rows_above + 1, cols_left + 1 + cols_right, in_channels)``
            input values around the position, the position itself at the
            bottom row's centre (zeros where the window leaves the image,
            as the ``SAME`` padding of ``call()``).
          condition: the ``(B, D)`` conditioning vector, when the layer has one.

        Returns:
          ``(B, filters)``: exactly what ``call()`` gives at that position.
        """
        rows = self.kernel_size[0] // 2 + 1
        kernel = self.kernel[:rows]
        kernel = kernel * ops.cast(self.mask[:rows], kernel.dtype)
        outputs = ops.einsum("brkc,rkco->bo", window, kernel)
        return self._finish(outputs, condition)

    def incremental_steps(self, inputs, outputs) -> list[Step]:
        """One position step: :meth:`call_window` on the :meth:`causal_window`
        of the input, with the condition (known before the loop) if there is
        one (see :mod:`pixel_models.layers.incremental`)."""
        x, condition = inputs["inputs"], inputs.get("condition")
        if x.rate is Rate.CONSTANT:
            raise NotIncremental("convolves conditioning inputs")
        reads = {"window": Window(x, *self.causal_window(), reads_current=self._reads_centre)}
        if condition is not None:
            if condition.rate is not Rate.CONSTANT:
                raise NotIncremental("has a condition that depends on the image")
            reads["condition"] = Whole(condition)

        def call(where, window, condition=None):
            return [self.call_window(window, condition)]

        return [Step(Rate.POSITION, reads, outputs, call)]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), **constructor_config(self)}
