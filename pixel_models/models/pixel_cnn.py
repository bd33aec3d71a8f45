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


def check_optional_dims(name: str, value) -> None:
    """Raises ValueError naming the argument unless ``value`` is None or an int >= 1."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be None or a positive int, got {value!r}")


def condition_inputs(num_classes: int | None, latent_dims: int | None):
    """The conditioning inputs of a conditional model and the vector they give.

    With ``num_classes``: an int ``labels`` input ``(B,)``, one-hot encoded by
    ``keras.layers.CategoryEncoding`` (which maps a label outside ``[0,
    num_classes)`` to an all-zero code without an error); with
    ``latent_dims``: a float ``latents`` input ``(B, latent_dims)``; with both,
    the two concatenated (labels first).

    Returns:
      ``(inputs, condition)``: the list of ``keras.Input`` (empty when both
      are None) and the ``(B, D)`` conditioning tensor (None when empty).
    """
    check_optional_dims("num_classes", num_classes)
    check_optional_dims("latent_dims", latent_dims)
    inputs, parts = [], []
    if num_classes is not None:
        labels = keras.Input(shape=(), dtype="int32", name="labels")
        inputs.append(labels)
        parts.append(
            keras.layers.CategoryEncoding(num_classes, output_mode="one_hot", name="one_hot")(
                labels
            )
        )
    if latent_dims is not None:
        latents = keras.Input(shape=(latent_dims,), dtype="float32", name="latents")
        inputs.append(latents)
        parts.append(latents)
    if len(parts) > 1:
        return inputs, keras.layers.Concatenate(name="condition")(parts)
    return inputs, (parts[0] if parts else None)


def apply(layer, x, condition=None):
    """``layer(x)``, or ``layer(x, condition=condition)`` when there is a condition."""
    return layer(x) if condition is None else layer(x, condition=condition)


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


def output_stack(
    x, conv, out_hidden_dims: int, out_recurrent_length: int, head: PixelHead, condition=None
):
    """The 1x1 type-B ReLU layers, the logits layer and the head, shared by the
    masked-convolution and recurrent models (each layer adds the conditioning
    bias when there is a ``condition``)."""
    for i in range(out_recurrent_length):
        x = apply(conv(out_hidden_dims, 1, "B", "relu", f"out{i}"), x, condition)
    return head(apply(conv(head.features, 1, "B", None, "logits"), x, condition))


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
    num_classes: int | None = None,
    latent_dims: int | None = None,
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

    Conditioning (the class-conditional PixelCNN): with ``num_classes`` the
    model takes ``[images, labels]`` (int labels ``(B,)``), with
    ``latent_dims`` ``[images, latents]`` (float ``(B, latent_dims)``), with
    both ``[images, labels, latents]`` (see :func:`condition_inputs`); every
    masked convolution, the output layers included, adds the learned bias
    ``V y`` of the conditioning vector ``y`` before its activation (see
    :class:`~pixel_models.layers.MaskedConv2D`). Sample it with
    ``pixel_models.sample(model, n, condition=labels)``; from ``main.py``,
    ``--model=pixel_cnn --conditional`` on a labelled dataset.

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
      num_classes: number of classes of a class-conditional model (None:
        no labels).
      latent_dims: size of the code of a latent-conditional model (None: no
        code).
      name: model name.

    Returns:
      A ``keras.Model`` from float32 images ``(B, H, W, C)`` (plus labels
      and/or latents when conditional) to logits (``(B, H, W, C)``
      Bernoulli, ``(B, H, W, C, levels)`` categorical).

    Example:

    >>> model = pixel_cnn((8, 8, 1), hidden_dims=4, recurrent_length=1,
    ...                   out_hidden_dims=4, out_recurrent_length=1)
    >>> model.output_shape
    (None, 8, 8, 1)
    >>> conditional = pixel_cnn((8, 8, 1), hidden_dims=4, recurrent_length=1, num_classes=10)
    >>> [tuple(x.shape) for x in conditional.inputs]
    [(None, 8, 8, 1), (None,)]

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
    images, x = model_input(image_shape, levels)
    extra_inputs, condition = condition_inputs(num_classes, latent_dims)
    head = PixelHead(default_kind(levels), channels, levels, name="head")
    conv = masked_conv_factory(channels)

    x = apply(conv(hidden_dims, first_kernel_size, "A", "relu", "conv_a"), x, condition)
    for i in range(recurrent_length):
        y = apply(conv(hidden_dims, hidden_kernel_size, "B", "relu", f"conv_b{i}"), x, condition)
        x = keras.layers.Add(name=f"residual{i}")([x, y]) if use_residual else y
    logits = output_stack(x, conv, out_hidden_dims, out_recurrent_length, head, condition)
    return keras.Model([images, *extra_inputs] if extra_inputs else images, logits, name=name)
