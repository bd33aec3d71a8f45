"""PixelSNAIL of Chen et al. (2018): causal convolutions and causal self-attention."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from pixel_models.layers.causal_attention import CausalAttention
from pixel_models.layers.checks import dropout_rate, odd_positive_int
from pixel_models.layers.gated_residual import GatedResidual
from pixel_models.layers.masked_conv import MaskedConv2D
from pixel_models.models.common import builder_start, check_sizes


def pixel_snail(
    image_shape: Sequence[int] = (28, 28, 1),
    levels: int = 2,
    hidden_dims: int = 32,
    num_blocks: int = 2,
    residual_blocks: int = 2,
    attention_heads: int = 1,
    key_dims: int = 16,
    value_dims: int = 16,
    out_hidden_dims: int = 32,
    dropout: float = 0.0,
    kernel_size: int = 3,
    num_classes: int | None = None,
    latent_dims: int | None = None,
    name: str = "pixel_snail",
) -> keras.Model:
    """PixelSNAIL: residual blocks of gated causal convolutions interleaved
    with causal multi-head self-attention.

    Layers (``F = hidden_dims``)::

        images -> rescale to [-1, 1]                                     (x)
          -> MaskedConv2D kernel_size, type A, F                         (s)
          -> num_blocks x block:
               residual_blocks x [s = GatedResidual kernel_size (s)]
               k = GatedResidual 1x1 (s),  q = GatedResidual 1x1 (s)
               a = CausalAttention([k, x], queries=q)
               s = GatedResidual 1x1 (s, aux=a)
          -> ELU -> output layers -> PixelHead

    The stream ``s`` never sees the current pixel: the first layer hides it
    (type A, one colour group: for ``kernel_size = 3`` it reads the three
    pixels of the row above and the pixel to the left, the field of the
    paper's down-shifted ``2 x 3`` and down-right-shifted ``2 x 1``
    convolutions), every later convolution keeps that (see
    :class:`~pixel_models.layers.GatedResidual`), and the attention
    (:class:`~pixel_models.layers.CausalAttention`) reads, at position ``p``,
    keys and values of the stream *and of the image* at the positions
    strictly before ``p``, with the positional background. The convolutions
    see a window up and to the left that grows with depth; the attention
    sees every earlier pixel, so the model has no blind spot after its first
    block.

    Output layers: for one channel, a ``1 x 1`` convolution of ``ELU(s)`` to
    the logits, as in the paper. For ``C > 1`` channels, channel ``c`` of a
    pixel is also predicted from its channels ``< c``:
    ``logits = conv_B(ELU(conv(ELU(s)) + conv_A(x)))``, ``1 x 1``
    convolutions of ``out_hidden_dims`` features in ``C`` colour groups, with
    ``conv_A`` (type A) reading the channels before the group's channel of
    the current pixel. Binary data (``levels == 2``) gets a Bernoulli head,
    anything else a ``levels``-way categorical head.

    Conditioning: with ``num_classes`` the model takes ``[images, labels]``
    (int labels ``(B,)``, one-hot encoded inside the model); with
    ``latent_dims`` it takes ``[images, latents]``; with both
    ``[images, labels, latents]``. Every gated residual block adds a learned
    linear function of the conditioning vector to its gates'
    pre-activations, as PixelCNN++ does; it does not depend on the image, so
    causality is unchanged. Every form samples with the cached sampler:
    the attention keeps the keys and values of past positions in a buffer.

    Deviations from the paper: the convolutions of the residual blocks are
    ``3 x 3`` masked convolutions of type B (see
    :class:`~pixel_models.layers.GatedResidual`); the ``1 x 1`` residual
    blocks before the keys and queries read the stream only (the image and
    the background enter the attention's projections); several attention
    heads may be used; no weight normalisation, no channel of ones appended
    to the image; a Bernoulli or categorical head (the paper uses a
    discretized logistic mixture) with the colour-group output layers above.

    Args:
      image_shape: ``(H, W, C)``.
      levels: values per channel (2 for binary, 256 for 8-bit).
      hidden_dims: features ``F`` of the stream.
      num_blocks: number of blocks (each: residual blocks, then attention).
      residual_blocks: gated residual blocks of ``kernel_size`` per block.
      attention_heads: heads of each attention layer.
      key_dims: size of each head's keys and queries.
      value_dims: size of each head's values.
      out_hidden_dims: features of the colour output layer (``C > 1``; at
        least ``C``).
      dropout: dropout rate inside the gated residual blocks, in training.
      kernel_size: odd kernel size of the first layer and the residual blocks.
      num_classes: number of classes of a class-conditional model (None: no
        labels).
      latent_dims: size of the latent code of a latent-conditional model
        (None: no latent code).
      name: model name.

    Returns:
      A ``keras.Model`` from float32 images ``(B, H, W, C)`` (plus labels
      and/or latents when conditional) to logits (``(B, H, W, C)``
      Bernoulli, ``(B, H, W, C, levels)`` categorical).

    Example:

    >>> model = pixel_snail((8, 8, 1), hidden_dims=4, num_blocks=1, residual_blocks=1,
    ...                     key_dims=2, value_dims=2)
    >>> model.output_shape
    (None, 8, 8, 1)
    >>> colour = pixel_snail((4, 4, 3), levels=4, hidden_dims=4, num_blocks=1,
    ...                      residual_blocks=1, num_classes=10)
    >>> colour.output_shape, [tuple(x.shape) for x in colour.inputs]
    ((None, 4, 4, 3, 4), [(None, 4, 4, 3), (None,)])

    References:
      Chen, Mishra, Rohaninejad, Abbeel. PixelSNAIL: An Improved
      Autoregressive Generative Model. ICML 2018.
      https://arxiv.org/abs/1712.09763
    """
    check_sizes(
        hidden_dims=(hidden_dims, 1),
        num_blocks=(num_blocks, 1),
        residual_blocks=(residual_blocks, 0),
        attention_heads=(attention_heads, 1),
        key_dims=(key_dims, 1),
        value_dims=(value_dims, 1),
        out_hidden_dims=(out_hidden_dims, 1),
    )
    odd_positive_int("kernel_size", kernel_size)
    dropout_rate(dropout)
    channels = int(image_shape[-1])
    if channels > 1 and out_hidden_dims < channels:
        raise ValueError(
            f"out_hidden_dims must be at least the {channels} colour channels, "
            f"got {out_hidden_dims}"
        )
    start = builder_start(image_shape, levels, num_classes, latent_dims)
    x, condition, head = start.x, start.condition, start.head

    def residual(size, layer_name):
        return GatedResidual(hidden_dims, size, dropout=dropout, name=layer_name)

    def with_condition(layer, s, **kwargs):
        return layer(s, **kwargs) if condition is None else layer(s, condition=condition, **kwargs)

    s = MaskedConv2D(hidden_dims, kernel_size, mask_type="A", name="causal_in")(x)
    for b in range(num_blocks):
        for r in range(residual_blocks):
            s = with_condition(residual(kernel_size, f"block{b}_residual{r}"), s)
        keys = with_condition(residual(1, f"block{b}_keys"), s)
        queries = with_condition(residual(1, f"block{b}_queries"), s)
        attention = CausalAttention(
            attention_heads, key_dims, value_dims, name=f"block{b}_attention"
        )([keys, x], queries=queries)
        s = with_condition(residual(1, f"block{b}_mix"), s, aux=attention)
    y = keras.layers.Activation("elu", name="elu")(s)
    if channels == 1:
        logits = MaskedConv2D(head.features, 1, mask_type="B", name="logits")(y)
    else:
        trunk = MaskedConv2D(out_hidden_dims, 1, mask_type="B", name="out_trunk")(y)
        pixel = MaskedConv2D(
            out_hidden_dims, 1, mask_type="A", color_channels=channels, name="out_channels"
        )(x)
        y = keras.layers.Add(name="out_add")([trunk, pixel])
        y = keras.layers.Activation("elu", name="out_elu")(y)
        logits = MaskedConv2D(
            head.features, 1, mask_type="B", color_channels=channels, name="logits"
        )(y)
    return start.model(head(logits), name)


def _activation_elements(config: dict) -> int:
    """About how many numbers one image's forward pass keeps for the backward
    pass: the features of every block at every position, and the
    ``heads x (H W) x (H W)`` scores and weights of one attention layer, which
    grow with the square of the number of pixels (each layer computes its own
    again in the backward pass, one layer at a time: ``CausalAttention``'s
    ``recompute``)."""
    height, width, channels = config["image_shape"]
    pixels = height * width
    hidden = config.get("hidden_dims", 32)
    blocks = config.get("num_blocks", 2)
    residual = config.get("residual_blocks", 2)
    heads = config.get("attention_heads", 1)
    per_pixel = hidden * blocks * (6 * residual + 12) + 4 * config.get("out_hidden_dims", 32)
    logits = channels * (1 if config["levels"] == 2 else config["levels"])
    return pixels * (per_pixel + logits) + 4 * heads * pixels * pixels


pixel_snail.activation_elements = _activation_elements
