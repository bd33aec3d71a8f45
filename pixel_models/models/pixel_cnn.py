"""PixelCNN of van den Oord et al. (2016), Pixel Recurrent Neural Networks."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from pixel_models.models.common import (
    apply,
    builder_start,
    check_sizes,
    masked_conv_factory,
    output_stack,
)


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
    start = builder_start(image_shape, levels, num_classes, latent_dims)
    x, condition = start.x, start.condition
    conv = masked_conv_factory(
        start.channels,
        hidden_dims=hidden_dims,
        out_hidden_dims=out_hidden_dims if out_recurrent_length else None,
    )

    x = apply(conv(hidden_dims, first_kernel_size, "A", "relu", "conv_a"), x, condition)
    for i in range(recurrent_length):
        y = apply(conv(hidden_dims, hidden_kernel_size, "B", "relu", f"conv_b{i}"), x, condition)
        x = keras.layers.Add(name=f"residual{i}")([x, y]) if use_residual else y
    logits = output_stack(x, conv, out_hidden_dims, out_recurrent_length, start.head, condition)
    return start.model(logits, name)
