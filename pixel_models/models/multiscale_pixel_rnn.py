"""Multi-Scale PixelRNN of van den Oord et al. (2016): a small image first, then the rest."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import ops

from pixel_models.distributions import PixelHead, default_kind
from pixel_models.kinds import MULTI_STAGE
from pixel_models.layers.grid_subsample import GridSubsample, grid_mask
from pixel_models.models.common import (
    RNN_TYPES,
    FunctionalShapes,
    builder_signature,
    builder_start,
    check_image_shape,
    check_levels,
    masked_conv_factory,
    output_stack,
    recurrent_layer,
    recurrent_stack,
)
from pixel_models.models.pixel_rnn import pixel_rnn


def small_image_strides(image_shape: Sequence[int], small_image_size: int) -> tuple[int, int]:
    """The subsampling strides ``(H // s, W // s)`` of an ``s x s`` small image.

    ``small_image_size`` 0 stands for half the smaller side of the image (the
    paper's 32 x 32 for 64 x 64 images).

    Raises:
      ValueError: ``small_image_size`` does not divide the image height and width.

    Example:

    >>> small_image_strides((8, 12, 1), 4)
    (2, 3)
    >>> small_image_strides((28, 28, 1), 0)
    (2, 2)
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    size = int(small_image_size)
    half = min(height, width) // 2
    if size == 0:
        size = half
    common = math.gcd(height, width)
    allowed = [d for d in range(1, common + 1) if common % d == 0]
    if size < 1 or height % size or width % size:
        default = "" if half in allowed else f" ({half}, half the image size, does not divide it)"
        zero = ", or 0 for half the image size" if half in allowed else ""
        raise ValueError(
            f"small_image_size must divide the image height and width ({height}, {width}): "
            f"one of {', '.join(map(str, allowed))}{zero}; got {small_image_size}{default}"
        )
    return height // size, width // size


def _conditional_pixel_rnn(
    image_shape: Sequence[int],
    levels: int,
    strides: tuple[int, int],
    hidden_dims: int,
    recurrent_length: int,
    out_hidden_dims: int,
    out_recurrent_length: int,
    use_residual: bool,
    rnn_type: str,
    first_kernel_size: int,
    row_kernel_size: int,
    upsample_length: int,
    name: str,
) -> keras.Model:
    """The full-size PixelRNN whose LSTM layers are biased by the upsampled small image.

    Its only input is the full image; the small image is taken from it by
    :class:`GridSubsample`, so the sampler can run it like any other model.
    """
    start = builder_start(image_shape, levels)
    channels, x = start.channels, start.x

    # Upsampling network: reads only the small image, which is known, so it
    # needs no mask.
    up = GridSubsample(strides, name="small_image")(x)
    for k in range(upsample_length):
        up = keras.layers.Conv2D(
            hidden_dims, 3, padding="same", activation="relu", name=f"small_conv{k}"
        )(up)
    up = keras.layers.Conv2DTranspose(
        hidden_dims, strides, strides=strides, activation="relu", name="upsample"
    )(up)

    masked = masked_conv_factory(channels)

    def lstm(layer_name):
        return recurrent_layer(rnn_type, hidden_dims, channels, row_kernel_size, layer_name)

    def condition(i):
        # Biasing: a 1x1 unmasked convolution of the upsampled map, added to
        # the LSTM's input-to-state pre-activations.
        return keras.layers.Conv2D(4 * hidden_dims, 1, name=f"condition{i}")(up)

    x = masked(hidden_dims, first_kernel_size, "A", None, "conv_a")(x)
    x = recurrent_stack(x, lstm, masked, recurrent_length, use_residual, condition)
    return start.model(
        output_stack(x, masked, out_hidden_dims, out_recurrent_length, start.head), name
    )


# The constructor arguments of MultiScalePixelRNN (besides Keras's own), in order.
_ARGUMENTS = (
    "image_shape",
    "levels",
    "hidden_dims",
    "recurrent_length",
    "out_hidden_dims",
    "out_recurrent_length",
    "use_residual",
    "rnn_type",
    "small_image_size",
    "upsample_length",
    "first_kernel_size",
    "row_kernel_size",
)


@keras.saving.register_keras_serializable(package="pixel_models")
class MultiScalePixelRNN(FunctionalShapes, keras.Model):
    """A small-image PixelRNN and a full-image PixelRNN conditioned on it.

    Built by :func:`multiscale_pixel_rnn`, whose docstring describes the
    model; the constructor takes the same arguments.

    Attributes:
      small_model: the unconditional PixelRNN of the ``s x s`` small image.
      conditional_model: the PixelRNN of the full image; its input is the
        full image, from which it takes the small image itself.
      strides: ``(H // s, W // s)``: the small image is ``x[:, ::sh, ::sw]``.
      head: the :class:`PixelHead` of the combined logits.

    Methods used by the trainer and the sampler:

    - ``call(images)``: logits of every dimension, the small model's at the
      grid pixels and the conditional model's elsewhere, so that
      ``distribution_of(model).log_prob(model(x), x)`` is ``log p(x)``.
    - ``nll_terms(images)``: the two per-image terms ``nll_small`` and
      ``nll_full_given_small`` whose sum is ``-log p(x)``.
    - ``multiscale_stages()``: ``(small_model, conditional_model, strides)``,
      with which :func:`pixel_models.sample` and :func:`pixel_models.complete`
      generate in two stages.

    With ``model.compile(optimizer, loss=pm.PixelNLL())``, ``model.fit``
    minimises ``-log p(x)`` and also logs the mean of each term (``nll_small``,
    ``nll_full_given_small``, and ``val_...``), read from the logits it
    already computed (:meth:`nll_terms_of_logits`).

    Example:

    >>> import numpy as np
    >>> model = MultiScalePixelRNN((4, 4, 1), hidden_dims=2, recurrent_length=1,
    ...                            out_recurrent_length=0, small_image_size=2)
    >>> model.strides, model.small_model.input_shape
    ((2, 2), (None, 2, 2, 1))
    >>> x = np.random.default_rng(0).integers(0, 2, (3, 4, 4, 1)).astype("float32")
    >>> terms = model.nll_terms(x)
    >>> sorted(terms), tuple(terms["nll_small"].shape)
    (['nll_full_given_small', 'nll_small'], (3,))
    >>> nll = model.head.distribution.nll(model(x), x)  # -log p(x), the sum of the terms
    >>> bool(np.allclose(nll, terms["nll_small"] + terms["nll_full_given_small"], atol=1e-4))
    True
    """

    model_kind = MULTI_STAGE
    nll_term_names = ("nll_small", "nll_full_given_small")

    def __init__(
        self,
        image_shape: Sequence[int] = (28, 28, 1),
        levels: int = 2,
        hidden_dims: int = 16,
        recurrent_length: int = 7,
        out_hidden_dims: int = 32,
        out_recurrent_length: int = 2,
        use_residual: bool = False,
        rnn_type: str = "diagonal_bilstm",
        small_image_size: int = 0,
        upsample_length: int = 2,
        first_kernel_size: int = 7,
        row_kernel_size: int = 3,
        **kwargs,
    ):
        arguments = {name: value for name, value in locals().items() if name in _ARGUMENTS}
        kwargs.setdefault("name", "multiscale_pixel_rnn")
        super().__init__(**kwargs)
        if rnn_type not in RNN_TYPES:
            raise ValueError(f"rnn_type must be one of {', '.join(RNN_TYPES)}, got {rnn_type!r}")
        for arg, value, low in (
            ("hidden_dims", hidden_dims, 1),
            ("recurrent_length", recurrent_length, 1),
            ("out_hidden_dims", out_hidden_dims, 1),
            ("out_recurrent_length", out_recurrent_length, 0),
            ("upsample_length", upsample_length, 0),
        ):
            if int(value) < low:
                raise ValueError(
                    f"{arg} must be >= {low}, got {value}"
                    + (
                        " (the small image enters the full-size model through its LSTM layers)"
                        if arg == "recurrent_length"
                        else ""
                    )
                )
        self.image_shape = check_image_shape(image_shape)
        arguments["levels"] = check_levels(levels)
        # An attribute for every constructor argument, as get_config returns them.
        for name, value in arguments.items():
            if name != "image_shape":
                setattr(self, name, value if isinstance(value, bool | str) else int(value))
        self.strides = small_image_strides(self.image_shape, self.small_image_size)

        height, width, channels = self.image_shape
        small_shape = (height // self.strides[0], width // self.strides[1], channels)
        # The arguments of both PixelRNNs (all but the image shapes and the upsampling).
        common = {
            name: getattr(self, name)
            for name in _ARGUMENTS
            if name not in ("image_shape", "small_image_size", "upsample_length")
        }
        self.small_model = pixel_rnn(small_shape, name="small", **common)
        self.conditional_model = _conditional_pixel_rnn(
            self.image_shape,
            strides=self.strides,
            upsample_length=self.upsample_length,
            name="conditional",
            **common,
        )
        self.subsample = GridSubsample(self.strides, name="small_image")
        self.head = PixelHead(default_kind(self.levels), channels, self.levels, name="head")
        # Constants: where the grid pixels are, shaped to broadcast over logits.
        grid = grid_mask(self.image_shape, self.strides)
        self._grid = grid[None, :, :, None]  # (1, H, W, 1)
        # The means of the NLL terms that model.fit logs beside its loss.
        self.nll_small_mean = keras.metrics.Mean(name="nll_small")
        self.nll_full_given_small_mean = keras.metrics.Mean(name="nll_full_given_small")
        self.built = True

    @property
    def _input_model(self) -> keras.Model:
        return self.conditional_model

    _logits_model = _input_model

    def multiscale_stages(self) -> tuple[keras.Model, keras.Model, tuple[int, int]]:
        """``(small_model, conditional_model, strides)``: how to generate in two stages."""
        return self.small_model, self.conditional_model, self.strides

    def call(self, inputs, training=None):
        images = ops.cast(inputs, "float32")
        small_logits = self.small_model(self.subsample(images), training=training)
        full_logits = self.conditional_model(images, training=training)
        # Each grid pixel takes the logits of its small-image pixel.
        spread = ops.repeat(ops.repeat(small_logits, self.strides[0], axis=1), self.strides[1], 2)
        grid = self._grid.reshape(self._grid.shape + (1,) * (len(full_logits.shape) - 4))
        logits = ops.where(grid, spread, full_logits)
        if self.head.kind == "categorical":
            height, width, channels = self.image_shape
            logits = ops.reshape(logits, (-1, height, width, channels * self.levels))
        return self.head(logits)

    def nll_terms(self, images, training=None) -> dict[str, tf.Tensor]:
        """Per-image negative log-likelihoods in nats, ``(B,)`` each.

        Returns:
          ``{"nll_small": -log p(x_s), "nll_full_given_small": -log p(x | x_s)}``,
          where the second sums over the dimensions off the grid only (the
          grid pixels are ``x_s``). Their sum is ``-log p(x)``.
        """
        images = ops.cast(images, "float32")
        distribution = self.head.distribution
        small = self.subsample(images)
        nll_small = distribution.nll(self.small_model(small, training=training), small)
        per_dim = distribution.log_prob_per_dim(
            self.conditional_model(images, training=training), images
        )
        off_grid = ops.where(self._grid, ops.zeros_like(per_dim), per_dim)
        return {
            "nll_small": nll_small,
            "nll_full_given_small": -ops.sum(off_grid, axis=(1, 2, 3)),
        }

    def nll_terms_of_logits(self, logits, images) -> dict[str, tf.Tensor]:
        """:meth:`nll_terms` from the logits ``self(images)`` already computed:
        the sum of ``-log p(x_ijc | past)`` over the grid pixels (the small
        image's NLL, their logits being the small model's) and over the others."""
        per_dim = self.head.distribution.log_prob_per_dim(logits, images)
        on_grid = ops.where(self._grid, per_dim, ops.zeros_like(per_dim))
        return {
            "nll_small": -ops.sum(on_grid, axis=(1, 2, 3)),
            "nll_full_given_small": -ops.sum(per_dim - on_grid, axis=(1, 2, 3)),
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras's loss of ``fit`` and ``evaluate``, and the means of the NLL terms
        of the batch (``y`` the images, ``y_pred`` their logits)."""
        loss = super().compute_loss(x, y, y_pred, sample_weight, training)
        if y is not None and y_pred is not None:
            terms = self.nll_terms_of_logits(y_pred, y)
            for metric in (self.nll_small_mean, self.nll_full_given_small_mean):
                metric.update_state(terms[metric.name], sample_weight)
        return loss

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.conditional_model.output_shape[1:])

    def get_config(self):
        config = super().get_config()
        config.update({name: getattr(self, name) for name in _ARGUMENTS})
        config["image_shape"] = list(self.image_shape)
        return config


def multiscale_pixel_rnn(*args, name: str = "multiscale_pixel_rnn", **kwargs) -> MultiScalePixelRNN:
    """Multi-Scale PixelRNN: an ``s x s`` subsampled image, then the full image given it.

    Two PixelRNNs (:func:`~pixel_models.models.pixel_rnn.pixel_rnn`) with the
    same layer sizes. The *small model*, an unconditional PixelRNN, models
    the small image ``x_s = x[:, ::sh, ::sw]`` (``sh = H // s``,
    ``sw = W // s``: one pixel of every ``sh x sw`` block, its top-left one).
    The *conditional model* models the other pixels of the full image in
    raster order, each of its LSTM layers biased by an upsampled map of the
    small image::

        full image x ----------------------------------------------------+
          |                                                              |
          +-> x_s = x[::sh, ::sw] -> small model (PixelRNN on s x s)     |
          |                          -> logits of the grid pixels        |
          +-> x_s -> upsample_length x [Conv2D 3x3, hidden_dims, ReLU]   |
          |       -> Conv2DTranspose (sh, sw), stride (sh, sw), ReLU     |
          |          = c, an H x W map                                   |
          |       -> per LSTM layer i: Conv2D 1x1 -> 4 * hidden_dims     |
          |          "condition{i}", added to lstm{i}'s input-to-state   |
          v                                                              v
        conditional model: conv_a (7x7 type A) -> lstm{i}(x, condition=...)
          -> 1x1 output layers -> logits of the pixels off the grid

    ``x_s`` keeps the data form (binary stays binary, 8-bit stays 8-bit), so
    both models have the same head. With ``G`` the grid pixels::

        log p(x) = log p_small(x_s)
                   + sum over dimensions (i, j, c) with (i, j) not in G
                     of log p_cond(x_ijc | earlier dimensions of x, x_s)

    The grid dimensions are not modelled again by the conditional model (they
    are ``x_s``), so ``p`` is exactly normalised over full images. The
    conditional model sees all of ``x_s`` (its conditioning) and is causal in
    the other pixels: its output at ``(i, j, c)`` depends on the grid pixels
    and on the dimensions before ``(i, j, c)`` in raster order only.

    The returned model is a :class:`MultiScalePixelRNN`: ``model(x)`` gives the
    logits of every dimension (the small model's at the grid pixels, the
    conditional model's elsewhere), so that the head's log-probability of
    ``x`` is ``log p(x)``; ``model.nll_terms(x)`` gives ``nll_small`` and
    ``nll_full_given_small`` (reported separately by the trainer);
    :func:`pixel_models.sample` and :func:`pixel_models.complete` generate in
    two stages, the small image with the small model, then the other pixels
    with the conditional model, the small image written into the grid and
    kept.

    Deviations from the paper:

    - In the paper the conditional network generates the whole full image;
      here the grid pixels of the full image are the small image and only the
      other pixels are generated, which makes ``p(x)`` a normalised
      distribution over full images and its NLL exact.
    - The paper's upsampling network is "a convolutional network with
      deconvolutional layers" of unspecified size; here it is
      ``upsample_length`` 3x3 ReLU convolutions at ``s x s`` and one
      transposed convolution whose kernel and stride are ``(sh, sw)``, each
      with ``hidden_dims`` features.
    - Both PixelRNNs have the same sizes, and the deviations listed in
      :func:`~pixel_models.models.pixel_rnn.pixel_rnn` apply to both.
    - The conditional model also computes logits at the grid pixels, which
      are not used. Both stages sample with the cached sampler: the second
      computes its upsampled map of the small image once, before the loop.

    Args:
      image_shape: ``(H, W, C)`` of the full image.
      levels: values per channel (2 for binary, 256 for 8-bit).
      hidden_dims: features of the 7x7 layers, units of each LSTM and
        features of the upsampling network (``>= C``).
      recurrent_length: LSTM layers of each model (``>= 1``: the small image
        enters the conditional model through them).
      out_hidden_dims: features of the 1x1 output layers.
      out_recurrent_length: number of 1x1 ReLU layers before the logits.
      use_residual: residual connections around the LSTM layers.
      rnn_type: ``"diagonal_bilstm"`` or ``"row_lstm"``.
      small_image_size: side ``s`` of the small image; must divide ``H`` and
        ``W``. 0: half the smaller side (the paper's 32 for 64 x 64 images).
      upsample_length: 3x3 convolutions of the upsampling network at
        ``s x s``.
      first_kernel_size: kernel of the type-A layers (odd).
      row_kernel_size: width of the Row LSTM convolutions (odd).
      name: model name.

    Returns:
      A :class:`MultiScalePixelRNN` from float32 images ``(B, H, W, C)`` to
      logits (``(B, H, W, C)`` Bernoulli, ``(B, H, W, C, levels)``
      categorical).

    Raises:
      ValueError: ``small_image_size`` does not divide the image size, or
        another argument is out of range.

    Example:

    >>> import numpy as np
    >>> model = multiscale_pixel_rnn((4, 4, 1), hidden_dims=4, recurrent_length=1,
    ...                              out_hidden_dims=4, out_recurrent_length=1,
    ...                              rnn_type="row_lstm", small_image_size=2)
    >>> model.small_model.input_shape, model.strides
    ((None, 2, 2, 1), (2, 2))
    >>> x = np.ones((3, 4, 4, 1), "float32")
    >>> tuple(model(x).shape)
    (3, 4, 4, 1)
    >>> sorted(model.nll_terms(x))
    ['nll_full_given_small', 'nll_small']

    References:
      van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural
      Networks. ICML 2016. https://arxiv.org/abs/1601.06759 (Section 3.5,
      Multi-Scale PixelRNN).
    """
    return MultiScalePixelRNN(*args, name=name, **kwargs)


multiscale_pixel_rnn.__signature__ = builder_signature(MultiScalePixelRNN, "multiscale_pixel_rnn")


multiscale_pixel_rnn.model_kind = MULTI_STAGE
