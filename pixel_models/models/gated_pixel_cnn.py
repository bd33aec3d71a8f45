"""Gated PixelCNN of van den Oord et al. (2016), Conditional Image Generation
with PixelCNN Decoders: unconditional, class-conditional or latent-conditional."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from pixel_models.layers.checks import odd_positive_int
from pixel_models.layers.gated import GatedBlock
from pixel_models.models.common import (
    builder_start,
    check_colour_features,
    check_sizes,
    masked_conv_factory,
    output_stack,
)


def gated_pixel_cnn(
    image_shape: Sequence[int] = (28, 28, 1),
    levels: int = 2,
    hidden_dims: int = 16,
    recurrent_length: int = 7,
    out_hidden_dims: int = 32,
    out_recurrent_length: int = 2,
    kernel_size: int = 3,
    first_kernel_size: int = 7,
    num_classes: int | None = None,
    latent_dims: int | None = None,
    name: str = "gated_pixel_cnn",
) -> keras.Model:
    """Gated PixelCNN: gated vertical/horizontal stacks ending in a per-pixel head.

    Layers::

        images -> rescale to [-1, 1]
          -> GatedBlock first_kernel_size, type A, hidden_dims   (v = h = the image)
          -> recurrent_length x [GatedBlock kernel_size, type B, hidden_dims]
          -> the last horizontal stack output -> ReLU
          -> out_recurrent_length x [MaskedConv2D 1x1, type B, out_hidden_dims, ReLU]
          -> MaskedConv2D 1x1, type B, to the head's logits -> PixelHead

    The vertical stack of each block sees the rows above the current pixel
    and the horizontal stack the current row up to it (see
    :class:`~pixel_models.layers.gated.GatedBlock`); together, with enough
    blocks, every pixel before the current one in raster order, with no
    blind spot. For output ``o`` after three blocks with ``k = 3``::

        V V V V V V V
        V V V V V V V      V: through the vertical stack (and the link)
        V V V V V V V      H: through the horizontal stack
        V V V V V V V
        H H H o . . .

    (``first_kernel_size = 7`` widens the first block's field to 3 columns on
    each side and 4 rows up.) Every layer splits its features into ``C``
    colour groups, so channel ``c`` of a pixel is predicted from the pixels
    before it and from channels ``< c`` of the same pixel. Binary data
    (``levels == 2``) gets a Bernoulli head, anything else a ``levels``-way
    categorical head.

    Conditioning: with ``num_classes`` the model takes ``[images, labels]``
    (int labels ``(B,)``, one-hot encoded inside the model by
    ``keras.layers.CategoryEncoding``, which maps a label outside
    ``[0, num_classes)`` to an all-zero code without an error); with
    ``latent_dims`` it takes ``[images, latents]`` (float ``(B,
    latent_dims)``); with both, ``[images, labels, latents]``, concatenated
    into one conditioning vector. Every block adds a learned linear function
    of that vector to both stacks' pre-activations (Equation 4 of the paper);
    it does not depend on the image, so causality is unchanged. Sample a
    conditional model with ``pixel_models.sample(model, n, condition=labels)``
    (``condition=latents``, or ``condition=(labels, latents)`` with both);
    every form samples with the cached sampler (see
    :mod:`pixel_models.sampling`).

    Deviations from the paper: ``recurrent_length`` counts the type-B blocks
    after the first one (as in :func:`~pixel_models.models.pixel_cnn.pixel_cnn`,
    so both models have ``recurrent_length + 1`` causal layers before the
    output layers). The output layers read the last horizontal stack, which,
    as the first block has no residual connection, is exactly the sum of
    every block's skip output; see :class:`~pixel_models.layers.gated.GatedBlock`
    for the block itself.

    Args:
      image_shape: ``(H, W, C)``.
      levels: values per channel (2 for binary, 256 for 8-bit).
      hidden_dims: features of both stacks (``>= C``).
      recurrent_length: number of type-B gated blocks after the first.
      out_hidden_dims: features of the 1x1 output layers (``>= C``).
      out_recurrent_length: number of 1x1 ReLU layers before the logits.
      kernel_size: odd kernel size ``k`` of the type-B blocks.
      first_kernel_size: odd kernel size of the first (type-A) block.
      num_classes: number of classes of a class-conditional model (None:
        no labels).
      latent_dims: size of the latent code of a latent-conditional model
        (None: no latent code).
      name: model name.

    Returns:
      A ``keras.Model`` from float32 images ``(B, H, W, C)`` (plus labels
      and/or latents when conditional) to logits (``(B, H, W, C)``
      Bernoulli, ``(B, H, W, C, levels)`` categorical).

    Example:

    >>> model = gated_pixel_cnn((8, 8, 1), hidden_dims=4, recurrent_length=1,
    ...                         out_hidden_dims=4, out_recurrent_length=1)
    >>> model.output_shape
    (None, 8, 8, 1)
    >>> conditional = gated_pixel_cnn((8, 8, 1), hidden_dims=4, recurrent_length=1,
    ...                               num_classes=10)
    >>> [tuple(x.shape) for x in conditional.inputs]
    [(None, 8, 8, 1), (None,)]

    References:
      van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu.
      Conditional Image Generation with PixelCNN Decoders. NeurIPS 2016.
      https://arxiv.org/abs/1606.05328
    """
    check_sizes(
        hidden_dims=(hidden_dims, 1),
        recurrent_length=(recurrent_length, 0),
        out_hidden_dims=(out_hidden_dims, 1),
        out_recurrent_length=(out_recurrent_length, 0),
    )
    odd_positive_int("kernel_size", kernel_size)
    odd_positive_int("first_kernel_size", first_kernel_size)
    start = builder_start(image_shape, levels, num_classes, latent_dims)
    check_colour_features(start.channels, hidden_dims=hidden_dims)
    x, condition = start.x, start.condition

    def block(size, mask_type, layer_name):
        return GatedBlock(
            hidden_dims, size, mask_type=mask_type, color_channels=start.channels, name=layer_name
        )

    v, h, _ = block(first_kernel_size, "A", "gated_a")((x, x), condition=condition)
    for i in range(recurrent_length):
        v, h, _ = block(kernel_size, "B", f"gated_b{i}")((v, h), condition=condition)
    y = keras.layers.ReLU(name="relu")(h)
    # The 1x1 output layers read the features only, not the condition.
    conv = masked_conv_factory(
        start.channels, out_hidden_dims=out_hidden_dims if out_recurrent_length else None
    )
    return start.model(
        output_stack(y, conv, out_hidden_dims, out_recurrent_length, start.head), name
    )
