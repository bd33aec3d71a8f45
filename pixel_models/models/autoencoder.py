"""PixelCNN autoencoder of van den Oord et al. (2016), Conditional Image
Generation with PixelCNN Decoders, Section 2.4: a convolutional encoder maps
an image to a code, and a Gated PixelCNN decoder models the image given it."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from pixel_models.kinds import AUTOENCODER
from pixel_models.models.common import (
    FunctionalShapes,
    builder_signature,
    check_image_shape,
    check_levels,
    check_sizes,
    model_input,
)
from pixel_models.models.gated_pixel_cnn import gated_pixel_cnn
from pixel_models.models.invariant_cnn import invariant_cnn

ENCODERS = ("conv", "invariant")


def conv_encoder(
    image_shape: Sequence[int],
    levels: int,
    latent_dims: int,
    encoder_dims: int = 32,
    name: str = "encoder",
) -> keras.Model:
    """A plain convolutional encoder from images to ``latent_dims`` codes.

    Layers: rescale to ``[-1, 1]`` -> 3x3 conv, stride 2, ``encoder_dims``,
    ReLU -> 3x3 conv, stride 2, ``2 * encoder_dims``, ReLU -> flatten ->
    dense to ``latent_dims`` (linear). The flattening keeps where things are
    in the image, so the code can describe position and orientation.

    Example:

    >>> conv_encoder((8, 8, 1), 2, latent_dims=3, encoder_dims=4).output_shape
    (None, 3)
    """
    images, x = model_input(image_shape, levels)
    for i, filters in enumerate((encoder_dims, 2 * encoder_dims)):
        x = keras.layers.Conv2D(
            filters, 3, strides=2, padding="same", activation="relu", name=f"encoder_conv{i}"
        )(x)
    x = keras.layers.Flatten(name="encoder_flatten")(x)
    code = keras.layers.Dense(latent_dims, name="code")(x)
    return keras.Model(images, code, name=name)


@keras.saving.register_keras_serializable(package="pixel_models")
class PixelAutoencoder(FunctionalShapes, keras.Model):
    """An encoder to a code and a Gated PixelCNN decoder conditioned on it.

    Built by :func:`autoencoder`, whose docstring describes the model; the
    constructor takes the same arguments.

    Attributes:
      encoder: ``keras.Model`` from images ``(B, H, W, C)`` to codes
        ``(B, latent_dims)``.
      decoder: the latent-conditional Gated PixelCNN, a ``keras.Model`` from
        ``[images, codes]`` to logits; causal in the images for any code.

    Methods:

    - ``call(images)``: the decoder's logits given the images' own codes, so
      that ``distribution_of(model).log_prob(model(x), x)`` is
      ``log p(x | z(x))``, the reconstruction log-likelihood the model is
      trained to maximise. It is not a likelihood of ``x`` (the code has seen
      all of ``x``), so the model as a whole is not causal; the decoder is.
    - ``encode(images)``: the codes.
    - :func:`pixel_models.reconstruct` samples the decoder given the codes of
      some images; :func:`pixel_models.sample` with ``model.decoder`` and
      ``condition=codes`` decodes any codes.

    Example:

    >>> model = PixelAutoencoder((4, 4, 1), latent_dims=2, encoder_dims=2, hidden_dims=2,
    ...                          recurrent_length=1, out_recurrent_length=0)
    >>> x = np.ones((3, 4, 4, 1), "float32")
    >>> tuple(model.encode(x).shape), tuple(model(x).shape)
    ((3, 2), (3, 4, 4, 1))
    >>> [tuple(t.shape) for t in model.decoder.inputs]  # images and codes
    [(None, 4, 4, 1), (None, 2)]
    """

    model_kind = AUTOENCODER

    def __init__(
        self,
        image_shape: Sequence[int] = (28, 28, 1),
        levels: int = 2,
        latent_dims: int = 10,
        encoder: str = "conv",
        encoder_dims: int = 32,
        group: str = "D4",
        hidden_dims: int = 16,
        recurrent_length: int = 7,
        out_hidden_dims: int = 32,
        out_recurrent_length: int = 2,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        **kwargs,
    ):
        kwargs.setdefault("name", "autoencoder")
        super().__init__(**kwargs)
        check_sizes(latent_dims=(latent_dims, 1), encoder_dims=(encoder_dims, 1))
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
        if encoder == "invariant" and group not in ("C4", "D4"):
            raise ValueError(f"an invariant encoder needs group 'C4' or 'D4', got {group!r}")
        self.image_shape = check_image_shape(image_shape)
        self.levels = check_levels(levels)
        self.latent_dims = int(latent_dims)
        self.encoder_kind = encoder
        self.encoder_dims = int(encoder_dims)
        self.group = group
        self.hidden_dims = int(hidden_dims)
        self.recurrent_length = int(recurrent_length)
        self.out_hidden_dims = int(out_hidden_dims)
        self.out_recurrent_length = int(out_recurrent_length)
        self.kernel_size = int(kernel_size)
        self.first_kernel_size = int(first_kernel_size)
        if encoder == "conv":
            self.encoder = conv_encoder(
                self.image_shape, self.levels, self.latent_dims, self.encoder_dims
            )
        else:
            self.encoder = invariant_cnn(
                self.image_shape,
                num_classes=self.latent_dims,
                group=group,
                base_width=self.encoder_dims,
                stages=(1, 1),
                levels=self.levels,
                name="encoder",
            )
        self.decoder = gated_pixel_cnn(
            self.image_shape,
            levels=self.levels,
            hidden_dims=self.hidden_dims,
            recurrent_length=self.recurrent_length,
            out_hidden_dims=self.out_hidden_dims,
            out_recurrent_length=self.out_recurrent_length,
            kernel_size=self.kernel_size,
            first_kernel_size=self.first_kernel_size,
            latent_dims=self.latent_dims,
            name="decoder",
        )
        self.built = True

    @property
    def _input_model(self) -> keras.Model:
        return self.encoder

    @property
    def _logits_model(self) -> keras.Model:
        return self.decoder

    def encode(self, images, training=None):
        """Codes ``(B, latent_dims)`` of images ``(B, H, W, C)``."""
        return self.encoder(ops.cast(images, "float32"), training=training)

    def call(self, inputs, training=None):
        images = ops.cast(inputs, "float32")
        return self.decoder([images, self.encode(images, training=training)], training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.decoder.output_shape[1:])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_shape": list(self.image_shape),
                "levels": self.levels,
                "latent_dims": self.latent_dims,
                "encoder": self.encoder_kind,
                "encoder_dims": self.encoder_dims,
                "group": self.group,
                "hidden_dims": self.hidden_dims,
                "recurrent_length": self.recurrent_length,
                "out_hidden_dims": self.out_hidden_dims,
                "out_recurrent_length": self.out_recurrent_length,
                "kernel_size": self.kernel_size,
                "first_kernel_size": self.first_kernel_size,
            }
        )
        return config


def autoencoder(*args, name: str = "autoencoder", **kwargs) -> PixelAutoencoder:
    """PixelCNN autoencoder: an encoder to a code, a Gated PixelCNN decoder given it.

    Layers::

        images -> encoder -> code z (B, latent_dims)
        [images, z] -> Gated PixelCNN (every block adds V z to both stacks)
                    -> per-pixel logits of p(x | z)

    Trained end to end on ``-log p(x | z(x))``: the decoder models what the
    code leaves out (texture, exact strokes), so the code need not describe
    every pixel, unlike a plain autoencoder's.

    Encoders:

    - ``"conv"``: :func:`conv_encoder`, two stride-2 convolutions, flatten,
      dense.
    - ``"invariant"``: :func:`~pixel_models.models.invariant_cnn` with
      ``group`` (C4: rotations by 90 degrees; D4: also mirror flips) and
      ``latent_dims`` outputs: the code of a turned or mirrored image is the
      code of the image itself (up to float rounding). The decoder then
      cannot tell an image from its turned copies, so a reconstruction
      reproduces the content in an orientation of the decoder's choosing,
      not necessarily the input's; the likelihood ``p(x | z)`` is shared out
      among the orientations the data holds.

    Args:
      image_shape: ``(H, W, C)`` (square for the invariant encoder).
      levels: values per channel (2 for binary, 256 for 8-bit).
      latent_dims: size of the code (the paper: 10 for its MNIST-like
        experiments).
      encoder: ``"conv"`` or ``"invariant"``.
      encoder_dims: width of the encoder (its ``base_width`` when invariant).
      group: ``"C4"`` or ``"D4"``, for the invariant encoder.
      hidden_dims, recurrent_length, out_hidden_dims, out_recurrent_length,
        kernel_size, first_kernel_size: the decoder's, as in
        :func:`~pixel_models.models.gated_pixel_cnn`.
      name: model name.

    Returns:
      A :class:`PixelAutoencoder` from float32 images to the decoder's logits.

    Example:

    >>> model = autoencoder((8, 8, 1), latent_dims=3, encoder_dims=4, hidden_dims=4,
    ...                     recurrent_length=1, out_recurrent_length=0)
    >>> model.encoder.output_shape, model.output_shape
    ((None, 3), (None, 8, 8, 1))

    References:
      van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu.
      Conditional Image Generation with PixelCNN Decoders. NeurIPS 2016.
      https://arxiv.org/abs/1606.05328 (Section 2.4 and 3.4).
    """
    return PixelAutoencoder(*args, name=name, **kwargs)


autoencoder.__signature__ = builder_signature(PixelAutoencoder, "autoencoder")
autoencoder.model_kind = AUTOENCODER


def encode_batches(model, images: np.ndarray, batch_size: int = 100) -> np.ndarray:
    """Codes of ``images`` computed ``batch_size`` at a time (inference mode).

    Returns:
      float32 array ``(N, latent_dims)``.

    Example:

    >>> model = autoencoder((4, 4, 1), latent_dims=2, encoder_dims=2, hidden_dims=2,
    ...                     recurrent_length=1, out_recurrent_length=0)
    >>> x = np.random.default_rng(0).integers(0, 2, (5, 4, 4, 1))
    >>> codes = encode_batches(model, x, batch_size=2)
    >>> codes.shape, bool(np.allclose(codes, model.encode(x.astype("float32")), atol=1e-5))
    ((5, 2), True)
    """
    images = np.asarray(images, np.float32)
    return np.concatenate(
        [
            np.asarray(model.encode(images[start : start + batch_size], training=False))
            for start in range(0, len(images), int(batch_size))
        ]
    )
