"""Per-pixel output distributions of the autoregressive models.

Every model ends in a :class:`PixelHead` layer. The head says how to read the
model's logits: ``Bernoulli`` (binary images, logits of shape ``(B, H, W, C)``)
or ``Categorical`` (``levels``-way softmax per channel, logits of shape
``(B, H, W, C, levels)``, e.g. 256 levels for 8-bit images). The trainer, the
metrics and the sampler read the head through :func:`head_of` and never need
to know which model produced the logits.

Log-likelihoods are per image, in nats: ``log p(x) = sum_{i,j,c} log
p(x_ijc | x_<ijc)``. Bits per dimension are ``-log p(x) / (H * W * C * ln 2)``.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from pixel_models.layers.incremental import Here, NotIncremental, Rate, Step

HEAD_KINDS = ("bernoulli", "categorical")
# One counter-based generator everywhere, so that a compiled (XLA) and a plain
# graph draw the same numbers from the same seed.
RNG_ALG = "philox"


class Distribution:
    """Reads logits of a :class:`PixelHead`: log-probabilities and sampling.

    Args:
      channels: colour channels ``C`` of the images.
      levels: values a channel takes (2 for binary, 256 for 8-bit).
    """

    kind = ""

    def __init__(self, channels: int, levels: int):
        self.channels = int(channels)
        self.levels = int(levels)

    def log_prob_per_dim(self, logits: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
        """``log p(x_ijc | past)`` for every dimension: shape ``(B, H, W, C)``."""
        raise NotImplementedError

    def sample(self, logits: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Draws values for the positions in ``logits``.

        Args:
          logits: logits of any leading shape ``S`` (``S`` for Bernoulli,
            ``S + (levels,)`` for categorical).
          seed: shape ``(2,)`` int32 seed of the stateless random ops; the
            same seed gives the same values.

        Returns:
          int32 tensor of shape ``S`` with values in ``[0, levels)``.
        """
        raise NotImplementedError

    def log_prob(self, logits: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
        """Log-likelihood of each image in nats, shape ``(B,)``."""
        return tf.reduce_sum(self.log_prob_per_dim(logits, images), axis=[1, 2, 3])

    def nll(self, logits: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
        """Negative log-likelihood of each image in nats, shape ``(B,)``."""
        return -self.log_prob(logits, images)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channels={self.channels}, levels={self.levels})"


class Bernoulli(Distribution):
    """Independent Bernoulli per dimension given the past; logits ``(B, H, W, C)``.

    ``p(x_ijc = 1 | past) = sigmoid(logits[..., i, j, c])``.

    Args:
      channels: colour channels ``C``.
      levels: must be 2.

    Example:

    >>> import numpy as np
    >>> bernoulli = Bernoulli(channels=1)
    >>> logits = np.zeros((2, 4, 4, 1), "float32")  # p = 1/2 for every pixel
    >>> images = np.ones((2, 4, 4, 1), "uint8")
    >>> tuple(bernoulli.log_prob_per_dim(logits, images).shape)
    (2, 4, 4, 1)
    >>> nll = bernoulli.nll(logits, images)  # 16 pixels, ln 2 nats each
    >>> [round(float(v), 4) for v in nll], round(16 * math.log(2), 4)
    ([11.0904, 11.0904], 11.0904)
    >>> p1 = np.exp(bernoulli.log_prob_per_dim(logits + 2.0, images))
    >>> p0 = np.exp(bernoulli.log_prob_per_dim(logits + 2.0, 0 * images))
    >>> bool(np.allclose(p0 + p1, 1.0))
    True
    >>> draws = bernoulli.sample(logits, seed=[1, 2])
    >>> tuple(draws.shape), draws.dtype.name, set(np.unique(draws)) <= {0, 1}
    ((2, 4, 4, 1), 'int32', True)
    """

    kind = "bernoulli"

    def __init__(self, channels: int, levels: int = 2):
        if levels != 2:
            raise ValueError(f"a Bernoulli head has 2 levels, got levels={levels}")
        super().__init__(channels, 2)

    def log_prob_per_dim(self, logits, images):
        logits = tf.convert_to_tensor(logits, tf.float32)
        x = tf.cast(images, logits.dtype)
        # log sigmoid(l) if x == 1, log sigmoid(-l) if x == 0.
        return -tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits)

    def sample(self, logits, seed):
        logits = tf.convert_to_tensor(logits, tf.float32)
        u = tf.random.stateless_uniform(tf.shape(logits), seed=seed, alg=RNG_ALG)
        return tf.cast(u < tf.sigmoid(logits), tf.int32)


class Categorical(Distribution):
    """``levels``-way softmax per dimension; logits ``(B, H, W, C, levels)``.

    Args:
      channels: colour channels ``C``.
      levels: number of values per channel.
      temperature: sampling temperature (logits are divided by it when
        sampling; log-probabilities ignore it).

    Example:

    >>> import numpy as np
    >>> categorical = Categorical(channels=3, levels=4)
    >>> logits = np.random.default_rng(0).normal(size=(2, 2, 2, 3, 4)).astype("float32")
    >>> images = np.zeros((2, 2, 2, 3), "uint8")
    >>> tuple(categorical.log_prob_per_dim(logits, images).shape)
    (2, 2, 2, 3)
    >>> tuple(categorical.nll(logits, images).shape)  # one NLL per image
    (2,)
    >>> # The probabilities of the 4 values of every dimension sum to 1.
    >>> probs = [np.exp(categorical.log_prob_per_dim(logits, images + v)) for v in range(4)]
    >>> bool(np.allclose(sum(probs), 1.0, atol=1e-6))
    True
    >>> draws = categorical.sample(logits, seed=[1, 2])
    >>> tuple(draws.shape), draws.dtype.name, set(np.unique(draws)) <= {0, 1, 2, 3}
    ((2, 2, 2, 3), 'int32', True)
    """

    kind = "categorical"

    def __init__(self, channels: int, levels: int = 256, temperature: float = 1.0):
        if levels < 2:
            raise ValueError(f"a categorical head needs levels >= 2, got {levels}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        super().__init__(channels, levels)
        self.temperature = float(temperature)

    def log_prob_per_dim(self, logits, images):
        logits = tf.convert_to_tensor(logits, tf.float32)
        labels = tf.cast(images, tf.int32)
        return -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)

    def sample(self, logits, seed):
        logits = tf.convert_to_tensor(logits, tf.float32) / self.temperature
        # Gumbel-max: argmax(logits + Gumbel noise) is a draw from softmax(logits).
        u = tf.random.stateless_uniform(
            tf.shape(logits), seed=seed, minval=1e-20, maxval=1.0, alg=RNG_ALG
        )
        return tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=-1, output_type=tf.int32)


def make_distribution(kind: str, channels: int, levels: int) -> Distribution:
    """The distribution for a head description.

    Args:
      kind: ``"bernoulli"`` or ``"categorical"``.
      channels: colour channels ``C``.
      levels: values per channel (2 for a Bernoulli head).

    Example:

    >>> make_distribution("categorical", channels=3, levels=256)
    Categorical(channels=3, levels=256)
    >>> make_distribution("bernoulli", channels=1, levels=2)
    Bernoulli(channels=1, levels=2)
    """
    if kind == "bernoulli":
        return Bernoulli(channels, levels)
    if kind == "categorical":
        return Categorical(channels, levels)
    raise ValueError(f"head kind must be one of {', '.join(HEAD_KINDS)}, got {kind!r}")


def default_kind(levels: int) -> str:
    """Bernoulli for binary data, categorical otherwise.

    Example:

    >>> default_kind(2), default_kind(256)
    ('bernoulli', 'categorical')
    """
    return "bernoulli" if levels == 2 else "categorical"


@keras.saving.register_keras_serializable(package="pixel_models")
class PixelHead(keras.layers.Layer):
    """Last layer of every model: shapes logits and records the distribution.

    For a Bernoulli head the input ``(B, H, W, C)`` passes unchanged; for a
    categorical head the input ``(B, H, W, C * levels)``, whose features come
    in ``C`` contiguous blocks (block ``c`` for channel ``c``, as the colour
    groups of :class:`~pixel_models.layers.MaskedConv2D` lay them out), is
    reshaped to ``(B, H, W, C, levels)``. Logits are cast to float32 so that
    the loss is computed in full precision under mixed precision.

    Args:
      kind: ``"bernoulli"`` or ``"categorical"``.
      channels: colour channels ``C``.
      levels: values per channel.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Example:

    >>> import numpy as np
    >>> head = PixelHead("categorical", channels=3, levels=4)
    >>> tuple(head(np.zeros((1, 2, 2, 12), "float32")).shape)
    (1, 2, 2, 3, 4)
    """

    def __init__(self, kind: str, channels: int, levels: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.distribution = make_distribution(kind, channels, levels)
        self.kind = kind
        self.channels = int(channels)
        self.levels = int(levels)

    @property
    def features(self) -> int:
        """Number of input features the head expects."""
        return self.channels if self.kind == "bernoulli" else self.channels * self.levels

    def call(self, inputs):
        inputs = ops.cast(inputs, "float32")
        if self.kind == "bernoulli":
            return inputs
        shape = ops.shape(inputs)
        return ops.reshape(inputs, (shape[0], shape[1], shape[2], self.channels, self.levels))

    def incremental_steps(self, inputs, outputs) -> list[Step]:
        """One position step: the float32 logits ``(B, C)`` (Bernoulli) or
        ``(B, C, levels)`` (categorical) at the position (see
        :mod:`pixel_models.layers.incremental`)."""
        x = inputs["inputs"]
        if x.rate is Rate.CONSTANT:
            raise NotIncremental("mixes conditioning inputs into image features")

        def call(where, x):
            logits = tf.cast(x, tf.float32)
            if self.kind == "categorical":
                logits = tf.reshape(logits, [-1, self.channels, self.levels])
            return [logits]

        return [Step(Rate.POSITION, {"x": Here(x)}, outputs, call)]

    def compute_output_shape(self, input_shape):
        if self.kind == "bernoulli":
            return tuple(input_shape)
        return (*input_shape[:3], self.channels, self.levels)

    def get_config(self):
        config = super().get_config()
        config.update({"kind": self.kind, "channels": self.channels, "levels": self.levels})
        return config


def head_of(model: keras.Model) -> PixelHead:
    """The :class:`PixelHead` of a model built by this package (searched in its
    layers, last first, and in the layers of the models it holds, e.g. the
    decoder of an autoencoder).

    Example:

    >>> from pixel_models.models import pixel_cnn
    >>> model = pixel_cnn((4, 4, 3), levels=4, hidden_dims=3, recurrent_length=1,
    ...                   out_recurrent_length=0)
    >>> head = head_of(model)
    >>> head.kind, head.channels, head.levels, head.features
    ('categorical', 3, 4, 12)
    """
    for layer in reversed(model.layers):
        if isinstance(layer, PixelHead):
            return layer
    for layer in reversed(model.layers):
        if isinstance(layer, keras.Model):
            try:
                return head_of(layer)
            except ValueError:
                continue
    raise ValueError(
        f"model {model.name!r} has no PixelHead layer: build it with pixel_models.build_model"
    )


def distribution_of(model: keras.Model) -> Distribution:
    """The output distribution of a model built by this package.

    Example:

    >>> import numpy as np
    >>> from pixel_models.models import pixel_cnn
    >>> model = pixel_cnn((4, 4, 1), hidden_dims=2, recurrent_length=1, out_recurrent_length=0)
    >>> distribution = distribution_of(model)
    >>> distribution
    Bernoulli(channels=1, levels=2)
    >>> x = np.zeros((3, 4, 4, 1), "float32")
    >>> tuple(distribution.nll(model(x), x).shape)
    (3,)
    """
    return head_of(model).distribution


def bits_per_dim(nll_nats: tf.Tensor | float, num_dims: int) -> tf.Tensor | float:
    """Converts a per-image NLL in nats to bits per dimension.

    Example:

    A uniform model of binary 28x28 images spends ``784 ln 2`` nats on each
    image, one bit per pixel; 80 nats per image, a good binarized MNIST
    score, is about 0.147 bits per pixel.

    >>> round(bits_per_dim(784 * math.log(2), 28 * 28), 6)
    1.0
    >>> round(bits_per_dim(80.0, 28 * 28), 4)
    0.1472
    """
    return nll_nats / (num_dims * math.log(2.0))
