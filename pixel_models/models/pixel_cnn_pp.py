"""PixelCNN++ of Salimans et al. (2017): two shifted streams over several
resolutions, with a discretized logistic mixture head."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from pixel_models.layers.checks import dropout_rate
from pixel_models.layers.gated_resnet import GatedResnet
from pixel_models.layers.shifted_conv import ShiftedConv2D
from pixel_models.layers.shifted_conv_transpose import ShiftedConv2DTranspose
from pixel_models.models.common import builder_start, check_sizes


def pixel_cnn_pp(
    image_shape: Sequence[int] = (32, 32, 3),
    levels: int = 256,
    hidden_dims: int = 160,
    num_resnet: int = 5,
    num_resolutions: int = 3,
    num_mixtures: int = 10,
    dropout: float = 0.5,
    num_classes: int | None = None,
    latent_dims: int | None = None,
    name: str = "pixel_cnn_pp",
) -> keras.Model:
    """PixelCNN++: a U-Net of gated residual blocks on two shifted streams.

    Layers (``F = hidden_dims``, ``N = num_resnet``, ``R = num_resolutions``)::

        images -> rescale to [-1, 1]
        u  = down_shift(conv_down 2x3 (x))                         rows above
        ul = down_shift(conv_down 1x3 (x)) + right_shift(conv_down_right 2x1 (x))
                                                          rows above and pixels left
        upward pass, at each of R resolutions (halved by strided 2x3 / 2x2
        shifted convolutions between them):
            N x [u = GatedResnet_down(u);  ul = GatedResnet_down_right(ul, aux=[u])]
            (every u and ul kept for the short-cuts)
        downward pass, from the lowest resolution up (doubled by transposed
        2x3 / 2x2 shifted convolutions between them):
            N (N + 1 above the lowest) x
                [u = GatedResnet_down(u, aux=[u_kept]);
                 ul = GatedResnet_down_right(ul, aux=[u, ul_kept])]
            (the kept maps taken last first: the U-Net short-cuts)
        logits = conv 1x1 (elu(ul)) -> PixelHead("logistic_mixture")

    The ``u`` stream at row ``i`` has seen the image rows above ``i``; the
    ``ul`` stream at ``(i, j)`` has seen those and the pixels left of ``j``
    in row ``i``: every pixel before ``(i, j)`` in raster order, with no
    blind spot and no mask. Downsampling and upsampling keep this (see
    :class:`~pixel_models.layers.shifted_conv_transpose.ShiftedConv2DTranspose`).
    The logits of a pixel do not depend on the pixel itself: its channels
    are modelled together by the mixture head
    (:class:`~pixel_models.distributions.LogisticMixture`), in which the
    means of G and B depend linearly on R (and G). Sizes that are not
    multiples of ``2 ** (R - 1)`` are rounded up when downsampling and
    cropped back when upsampling.

    Binary images (``levels == 2``) use the same head: a discretized
    logistic with two values is a Bernoulli, and a mixture of them is a
    Bernoulli too, so the model is a valid binary model with one code path.

    Conditioning: with ``num_classes`` the model takes ``[images, labels]``
    (int labels ``(B,)``, one-hot encoded inside the model), with
    ``latent_dims`` ``[images, latents]``, and with both
    ``[images, labels, latents]``; every gated block adds a learned linear
    function of that vector to its gate's pre-activations (the paper's
    class-conditional model).

    Deviations from the paper: no weight normalization (plain convolutions,
    trained with the zoo's optimizers) and no constant channel of ones added
    to the input to mark the zero padding.

    Args:
      image_shape: ``(H, W, C)``.
      levels: values per channel (2 to 256).
      hidden_dims: features ``F`` of both streams (the paper: 160).
      num_resnet: gated residual blocks per resolution ``N`` (the paper: 5).
      num_resolutions: resolutions ``R`` (the paper: 3, 32, 16 and 8 for CIFAR-10).
      num_mixtures: logistic mixture components ``K`` (the paper: 10).
      dropout: dropout rate in every gated block while training (the paper: 0.5).
      num_classes: number of classes of a class-conditional model (None: no labels).
      latent_dims: size of the latent code of a latent-conditional model.
      name: model name.

    Returns:
      A ``keras.Model`` from float32 images ``(B, H, W, C)`` (plus labels
      and/or latents when conditional) to mixture parameters ``(B, H, W, K (1
      + 2 C + C (C - 1) / 2))``.

    Example:

    >>> model = pixel_cnn_pp((8, 8, 3), levels=256, hidden_dims=8, num_resnet=1,
    ...                      num_resolutions=2, num_mixtures=5)
    >>> model.output_shape
    (None, 8, 8, 50)

    References:
      Salimans, Karpathy, Chen, Kingma. PixelCNN++: Improving the PixelCNN
      with Discretized Logistic Mixture Likelihood and Other Modifications.
      ICLR 2017. https://arxiv.org/abs/1701.05517
    """
    check_sizes(
        hidden_dims=(hidden_dims, 1),
        num_resnet=(num_resnet, 1),
        num_resolutions=(num_resolutions, 1),
        num_mixtures=(num_mixtures, 1),
    )
    dropout_rate(dropout)
    start = builder_start(
        image_shape, levels, num_classes, latent_dims, "logistic_mixture", num_mixtures
    )
    x, condition = start.x, start.condition
    f = int(hidden_dims)

    def block(direction, label):
        return GatedResnet(direction, dropout=float(dropout), name=label)

    def resnet(layer, stream, aux=None):
        kwargs = {} if condition is None else {"condition": condition}
        return layer(stream, aux=aux, **kwargs) if aux else layer(stream, **kwargs)

    u = ShiftedConv2D(f, (2, 3), "down", shift=True, name="u_in")(x)
    ul = keras.layers.Add(name="ul_in")(
        [
            ShiftedConv2D(f, (1, 3), "down", shift=True, name="ul_in_above")(x),
            ShiftedConv2D(f, (2, 1), "down_right", shift=True, name="ul_in_left")(x),
        ]
    )
    kept_u, kept_ul, sizes = [u], [ul], []
    for r in range(num_resolutions):
        if r > 0:
            u = ShiftedConv2D(f, (2, 3), "down", strides=2, name=f"u_down{r}")(u)
            ul = ShiftedConv2D(f, (2, 2), "down_right", strides=2, name=f"ul_down{r}")(ul)
            kept_u.append(u)
            kept_ul.append(ul)
        sizes.append(tuple(int(d) for d in u.shape[1:3]))
        for n in range(num_resnet):
            u = resnet(block("down", f"up{r}_u{n}"), u)
            ul = resnet(block("down_right", f"up{r}_ul{n}"), ul, [u])
            kept_u.append(u)
            kept_ul.append(ul)
    u, ul = kept_u.pop(), kept_ul.pop()
    for r in reversed(range(num_resolutions)):
        for n in range(num_resnet + (r < num_resolutions - 1)):
            u = resnet(block("down", f"down{r}_u{n}"), u, [kept_u.pop()])
            ul = resnet(block("down_right", f"down{r}_ul{n}"), ul, [u, kept_ul.pop()])
        if r > 0:
            size = sizes[r - 1]
            u = ShiftedConv2DTranspose(f, (2, 3), "down", 2, size, name=f"u_up{r}")(u)
            ul = ShiftedConv2DTranspose(f, (2, 2), "down_right", 2, size, name=f"ul_up{r}")(ul)
    assert not kept_u and not kept_ul
    y = keras.layers.Activation("elu", name="elu")(ul)
    y = ShiftedConv2D(start.head.features, 1, "down_right", name="logits")(y)
    return start.model(start.head(y), name)


def _activation_elements(config: dict) -> int:
    """About how many numbers one image's forward pass keeps for the backward
    pass: two streams of gated resnet blocks (about six tensors of
    ``hidden_dims`` features each) on the way down and up, at every
    resolution, a quarter of the pixels at each lower one."""
    height, width, _ = config["image_shape"]
    hidden = config.get("hidden_dims", 160)
    per_block = 2 * 6 * hidden
    blocks = 2 * config.get("num_resnet", 5) + 2
    pixels = sum(
        -(-height // 2**r) * -(-width // 2**r) for r in range(config.get("num_resolutions", 3))
    )
    logits = height * width * 10 * config.get("num_mixtures", 10)
    return pixels * blocks * per_block + logits


pixel_cnn_pp.activation_elements = _activation_elements
