"""PixelCNN of van den Oord et al. (2016), Pixel Recurrent Neural Networks."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from pixel_models.distributions import PixelHead, default_kind
from pixel_models.layers.masked_conv import MaskedConv2D


def model_input(image_shape: Sequence[int], levels: int, name: str = "images"):
    """The input of every model and its scaling to ``[-1, 1]``.

    Models take images in their data form (integers ``0..levels-1`` as
    float32, so that gradients with respect to the input exist for the
    causality tests) and rescale them to ``[-1, 1]``.

    Returns:
      ``(inputs, scaled)``: the ``keras.Input`` and the rescaled tensor.
    """
    height, width, channels = (int(v) for v in image_shape)
    if min(height, width, channels) < 1:
        raise ValueError(f"image_shape must be three positive ints (H, W, C), got {image_shape}")
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    inputs = keras.Input(shape=(height, width, channels), dtype="float32", name=name)
    scaled = keras.layers.Rescaling(2.0 / (levels - 1), offset=-1.0, name="rescale")(inputs)
    return inputs, scaled


def check_sizes(**sizes: tuple[int, int]) -> None:
    """Raises ValueError naming the argument unless every ``name=(value, low)``
    has an int ``value >= low``."""
    for arg, (value, low) in sizes.items():
        if isinstance(value, bool) or int(value) != value or int(value) < low:
            raise ValueError(f"{arg} must be an int >= {low}, got {value!r}")


def masked_conv_factory(channels: int):
    """``conv(filters, kernel, mask_type, activation, name)``: masked convolutions
    with the colour groups of ``channels`` colour channels."""

    def conv(filters, kernel, mask_type, activation, layer_name):
        return MaskedConv2D(
            filters,
            kernel,
            mask_type=mask_type,
            color_channels=channels,
            activation=activation,
            name=layer_name,
        )

    return conv


def output_stack(x, conv, out_hidden_dims: int, out_recurrent_length: int, head: PixelHead):
    """The 1x1 type-B ReLU layers, the logits layer and the head, shared by the
    masked-convolution and recurrent models."""
    for i in range(out_recurrent_length):
        x = conv(out_hidden_dims, 1, "B", "relu", f"out{i}")(x)
    return head(conv(head.features, 1, "B", None, "logits")(x))


def pixel_cnn(
    image_shape: Sequence[int] = (28, 28, 1),
    levels: int = 2,
    hidden_dims: int = 16,
    recurrent_length: int = 7,
    out_hidden_dims: int = 32,
    out_recurrent_length: int = 2,
    use_residual: bool = False,
    first_kernel_size: int = 7,
    hidden_kernel_size: int = 3,
    name: str = "pixel_cnn",
) -> keras.Model:
    """PixelCNN: a stack of masked convolutions ending in a per-pixel head.

    Layers, as in Section 3.4 of the PixelRNN paper::

        images -> rescale to [-1, 1]
          -> MaskedConv2D 7x7, type A, hidden_dims, ReLU
          -> recurrent_length x [MaskedConv2D 3x3, type B, hidden_dims, ReLU]
             (each added to its input when use_residual)
          -> out_recurrent_length x [MaskedConv2D 1x1, type B, out_hidden_dims, ReLU]
          -> MaskedConv2D 1x1, type B, to the head's logits -> PixelHead

    Every masked convolution splits its features into ``C`` colour groups,
    so channel ``c`` of a pixel is predicted from the pixels before it and
    from channels ``< c`` of the same pixel. Binary data (``levels == 2``)
    gets a Bernoulli head, anything else a ``levels``-way categorical head.

    Deviations from the paper: the residual connection here adds each 3x3
    layer's output to its input (as carpedm20/pixel-rnn-tensorflow does),
    rather than the paper's 1x1 -> 3x3 -> 1x1 bottleneck block.

    Args:
      image_shape: ``(H, W, C)``.
      levels: values per channel (2 for binary, 256 for 8-bit).
      hidden_dims: features of the 7x7 and 3x3 layers (``>= C``).
      recurrent_length: number of 3x3 type-B layers.
      out_hidden_dims: features of the 1x1 output layers.
      out_recurrent_length: number of 1x1 ReLU layers before the logits.
      use_residual: add each 3x3 layer's output to its input.
      first_kernel_size: kernel of the type-A layer (odd).
      hidden_kernel_size: kernel of the type-B layers (odd).
      name: model name.

    Returns:
      A ``keras.Model`` from float32 images ``(B, H, W, C)`` to logits
      (``(B, H, W, C)`` Bernoulli, ``(B, H, W, C, levels)`` categorical).

    Example:

    >>> model = pixel_cnn((8, 8, 1), hidden_dims=4, recurrent_length=1,
    ...                   out_hidden_dims=4, out_recurrent_length=1)
    >>> model.output_shape
    (None, 8, 8, 1)

    References:
      van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural
      Networks. ICML 2016. https://arxiv.org/abs/1601.06759
    """
    check_sizes(
        hidden_dims=(hidden_dims, 1),
        recurrent_length=(recurrent_length, 0),
        out_hidden_dims=(out_hidden_dims, 1),
        out_recurrent_length=(out_recurrent_length, 0),
    )
    channels = int(image_shape[-1])
    inputs, x = model_input(image_shape, levels)
    head = PixelHead(default_kind(levels), channels, levels, name="head")
    conv = masked_conv_factory(channels)

    x = conv(hidden_dims, first_kernel_size, "A", "relu", "conv_a")(x)
    for i in range(recurrent_length):
        y = conv(hidden_dims, hidden_kernel_size, "B", "relu", f"conv_b{i}")(x)
        x = keras.layers.Add(name=f"residual{i}")([x, y]) if use_residual else y
    logits = output_stack(x, conv, out_hidden_dims, out_recurrent_length, head)
    return keras.Model(inputs, logits, name=name)
