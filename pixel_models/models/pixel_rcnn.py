"""PixelRCNN: a PixelCNN of masked residual blocks with batch normalisation,
with dependent or independent colour channels."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from pixel_models.models.common import (
    builder_start,
    check_sizes,
    masked_conv_factory,
    output_stack,
)

COLOR_DEPENDENCE = ("dependent", "independent")


def pixel_rcnn(
    image_shape: Sequence[int] = (32, 32, 3),
    levels: int = 256,
    hidden_dims: int = 128,
    recurrent_length: int = 8,
    out_hidden_dims: int = 32,
    out_recurrent_length: int = 2,
    color_dependence: str = "dependent",
    first_kernel_size: int = 7,
    hidden_kernel_size: int = 3,
    name: str = "pixel_rcnn",
) -> keras.Model:
    """PixelRCNN: masked residual blocks with batch normalisation.

    Layers::

        images -> rescale to [-1, 1]
          -> MaskedConv2D first_kernel_size, type A, hidden_dims
          -> recurrent_length x residual block:
               x -> BN -> ReLU -> 1x1 type B, hidden_dims / 2
                 -> BN -> ReLU -> kxk type B, hidden_dims / 2
                 -> BN -> ReLU -> 1x1 type B, hidden_dims  -> + x
          -> BN -> ReLU
          -> out_recurrent_length x [MaskedConv2D 1x1, type B, out_hidden_dims, ReLU]
          -> MaskedConv2D 1x1, type B, to the head's logits -> PixelHead

    (the residual block of the PixelRNN paper, Figure 5, with a batch
    normalisation before each ReLU).

    Colour channels:

    - ``"dependent"``: every masked convolution splits its features into
      ``C`` colour groups (:class:`~pixel_models.layers.MaskedConv2D`), so
      channel ``c`` of a pixel is predicted from the pixels before it and
      from channels ``< c`` of the same pixel: ``p(x) = prod_i p(R_i | x_<i)
      p(G_i | x_<i, R_i) p(B_i | x_<i, R_i, G_i)``.
    - ``"independent"``: no colour groups; the first convolution hides the
      whole current pixel, so all channels of a pixel are predicted from the
      pixels before it only, independently of each other: ``p(x) = prod_i
      prod_c p(x_ic | x_<i)``. A weaker model (it cannot say that a pixel's
      channels go together), kept as the baseline the dependent one is
      measured against.

    Batch normalisation and causality: in inference mode (evaluation,
    sampling, and the causality and normalisation tests) each BN is a fixed
    per-feature affine map, so the model is exactly causal. In training mode
    BN normalises with the mean and variance of the batch over all positions,
    so a pixel's features move slightly with the statistics of the whole
    batch, later pixels included (one number per feature, over ``B * H * W``
    values); the reported test NLL is computed in inference mode, where
    nothing of the kind happens.

    Args:
      image_shape: ``(H, W, C)``.
      levels: values per channel (2 for binary, 256 for 8-bit).
      hidden_dims: features of the blocks' input and output (even; with
        colour groups, ``hidden_dims / 2`` must split into ``C`` groups).
      recurrent_length: number of residual blocks.
      out_hidden_dims: features of the 1x1 output layers.
      out_recurrent_length: number of 1x1 ReLU layers before the logits.
      color_dependence: ``"dependent"`` or ``"independent"``.
      first_kernel_size: odd kernel of the type-A layer.
      hidden_kernel_size: odd kernel of the blocks' middle layer.
      name: model name.

    Returns:
      A ``keras.Model`` from float32 images ``(B, H, W, C)`` to logits
      (``(B, H, W, C)`` Bernoulli, ``(B, H, W, C, levels)`` categorical).

    Example:

    >>> model = pixel_rcnn((8, 8, 3), levels=4, hidden_dims=6, recurrent_length=1,
    ...                    out_hidden_dims=6, out_recurrent_length=1)
    >>> model.output_shape
    (None, 8, 8, 3, 4)

    References:
      van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural
      Networks. ICML 2016. https://arxiv.org/abs/1601.06759 (Section 3.4
      and Figure 5 for the residual block, Section 3.1 for the colour
      channels).
      Ioffe, Szegedy. Batch Normalization. ICML 2015.
      https://arxiv.org/abs/1502.03167
    """
    check_sizes(
        hidden_dims=(hidden_dims, 2),
        recurrent_length=(recurrent_length, 0),
        out_hidden_dims=(out_hidden_dims, 1),
        out_recurrent_length=(out_recurrent_length, 0),
    )
    if color_dependence not in COLOR_DEPENDENCE:
        raise ValueError(
            f"color_dependence must be one of {', '.join(COLOR_DEPENDENCE)}, "
            f"got {color_dependence!r}"
        )
    if hidden_dims % 2:
        raise ValueError(f"hidden_dims must be even (the blocks halve it), got {hidden_dims}")
    start = builder_start(image_shape, levels)
    # Independent channels: one colour group, so the type-A layer hides the
    # whole current pixel and no layer tells the channels apart.
    groups = start.channels if color_dependence == "dependent" else 1
    conv = masked_conv_factory(
        groups,
        hidden_dims=hidden_dims,
        out_hidden_dims=out_hidden_dims if out_recurrent_length else None,
    )
    if hidden_dims // 2 < groups:
        raise ValueError(
            f"hidden_dims must be at least {2 * groups}: the blocks halve it, and each half "
            f"needs a feature per colour channel ({groups}), got {hidden_dims}"
        )

    def norm_relu(y, layer_name):
        y = keras.layers.BatchNormalization(name=f"{layer_name}_bn")(y)
        return keras.layers.ReLU(name=f"{layer_name}_relu")(y)

    half = hidden_dims // 2
    x = conv(hidden_dims, first_kernel_size, "A", None, "conv_a")(start.x)
    for i in range(recurrent_length):
        y = conv(half, 1, "B", None, f"block{i}_in")(norm_relu(x, f"block{i}_pre"))
        y = conv(half, hidden_kernel_size, "B", None, f"block{i}_mid")(norm_relu(y, f"block{i}_in"))
        y = conv(hidden_dims, 1, "B", None, f"block{i}_out")(norm_relu(y, f"block{i}_mid"))
        x = keras.layers.Add(name=f"residual{i}")([x, y])
    x = norm_relu(x, "final")
    return start.model(
        output_stack(x, conv, out_hidden_dims, out_recurrent_length, start.head), name
    )
