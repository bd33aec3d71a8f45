"""Per-pixel output distributions of the autoregressive models.

Every model ends in a :class:`PixelHead` layer. The head says how to read the
model's logits: ``Bernoulli`` (binary images, logits of shape ``(B, H, W, C)``),
``Categorical`` (``levels``-way softmax per channel, logits of shape
``(B, H, W, C, levels)``, e.g. 256 levels for 8-bit images) or
``LogisticMixture`` (the discretized logistic mixture of PixelCNN++, one
vector of mixture parameters per pixel, logits of shape ``(B, H, W, P)``).
The trainer, the metrics and the sampler read the head through
:func:`head_of` and never need to know which model produced the logits.

How a sampler draws a pixel is declared by the distribution:
:attr:`Distribution.joint_channels` is False when each channel has logits of
its own (computed by a network that sees the earlier channels of the pixel),
True when the logits of a pixel describe all its channels together (and so
must not depend on any channel of the pixel). Either way the sampler draws
channel ``c`` with :meth:`Distribution.sample_channel`, from the pixel's
logits and the channels of the pixel drawn (or given) before it.

Log-likelihoods are per image, in nats: ``log p(x) = sum_{i,j,c} log
p(x_ijc | x_<ijc)``. Bits per dimension are ``-log p(x) / (H * W * C * ln 2)``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from pixel_models.layers.incremental import Here, NotIncremental, Rate, Step

HEAD_KINDS = ("bernoulli", "categorical", "logistic_mixture")
# One counter-based generator everywhere, so that a compiled (XLA) and a plain
# graph draw the same numbers from the same seed.
RNG_ALG = "philox"


def check_values(images, levels: int, name: str = "images") -> tf.Tensor:
    """``images`` as a tensor, unless a value is not an integer in ``[0, levels)``.

    A log-likelihood of values outside the support is meaningless (a
    Bernoulli "probability" of 255 is above 1), so every log-probability
    checks them: eagerly with a one-line ValueError, in a graph with an
    assertion that fails the step (XLA drops assertions, so a compiled step
    does not check).

    Example:

    >>> check_values([[0.0, 3.0]], levels=4).shape
    TensorShape([1, 2])
    """
    x = tf.convert_to_tensor(images)
    if not (x.dtype.is_floating or x.dtype.is_integer):
        raise TypeError(f"{name} must be numbers, got dtype {x.dtype.name}")
    ok = (x >= 0) & (x <= levels - 1)
    if x.dtype.is_floating:
        ok &= tf.equal(x, tf.round(x))  # NaN fails here and above
    allowed = f"{name} must hold integers in [0, {levels - 1}] (the data form of {levels} levels)"
    if tf.executing_eagerly():
        good = ok.numpy()
        if not good.all():
            bad = x.numpy()[~good]
            raise ValueError(f"{allowed}, got {bad.size} other values, e.g. {bad.flat[0].item()!r}")
        return x
    with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(ok), [allowed])]):
        return tf.identity(x)


def check_temperature(value) -> float:
    """``value`` as a float, unless it is not a finite number ``> 0``."""
    try:
        number = float(value) if not isinstance(value, bool | str) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {value!r}")
    return number


class Distribution:
    """Reads logits of a :class:`PixelHead`: log-probabilities and sampling.

    Args:
      channels: colour channels ``C`` of the images.
      levels: values a channel takes (2 for binary, 256 for 8-bit).
    """

    kind = ""
    # True when the logits of a pixel describe all its channels together (see
    # the module docstring): the sampler then evaluates the network once per
    # pixel, and the logits must not depend on any channel of the pixel.
    joint_channels = False

    def __init__(self, channels: int, levels: int):
        self.channels = int(channels)
        self.levels = int(levels)

    @property
    def logit_shape(self) -> tuple[int, ...]:
        """Shape of the logits of one pixel: ``(C,)`` (Bernoulli), ``(C, levels)``
        (categorical), ``(P,)`` (a mixture's parameters)."""
        return (self.channels, self.levels)

    @property
    def features(self) -> int:
        """Number of logits of one pixel (the features a head reads)."""
        return math.prod(self.logit_shape)

    def sample_channel(self, logits: tf.Tensor, pixel: tf.Tensor, c: int, seed) -> tf.Tensor:
        """Draws channel ``c`` of a pixel given its logits and earlier channels.

        Args:
          logits: ``(B, *logit_shape)``: the logits of the pixel.
          pixel: ``(B, C)`` float values of the pixel; channels ``< c`` hold
            the values drawn or given, the others are ignored.
          c: the channel (a Python int).
          seed: shape ``(2,)`` int32 seed of the stateless random ops.

        Returns:
          int32 ``(B,)`` values in ``[0, levels)``.
        """
        del pixel  # channel c's own logits already saw the earlier channels
        return self.sample(logits[:, c], seed)

    def with_temperature(self, temperature: float) -> Distribution:
        """The same distribution sampled at ``temperature`` (1: exact samples)."""
        if check_temperature(temperature) == 1.0:
            return self
        raise ValueError(
            f"temperature applies to categorical and logistic mixture heads, not {self.kind}"
        )

    def log_prob_per_dim(self, logits: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
        """``log p(x_ijc | past)`` for every dimension: shape ``(B, H, W, C)``.

        ``images`` must hold integers in ``[0, levels)`` (see :func:`check_values`).
        """
        return self._log_prob_per_dim(logits, check_values(images, self.levels))

    def _log_prob_per_dim(self, logits: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
        """:meth:`log_prob_per_dim` of images already checked."""
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
        """Log-likelihood of each image in nats, shape ``(B,)``.

        ``images`` must hold integers in ``[0, levels)`` (see :func:`check_values`).
        """
        return self._log_prob(logits, check_values(images, self.levels))

    def _log_prob(self, logits: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
        """:meth:`log_prob` of images already checked."""
        return tf.reduce_sum(self._log_prob_per_dim(logits, images), axis=[1, 2, 3])

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

    @property
    def logit_shape(self) -> tuple[int, ...]:
        return (self.channels,)

    def _log_prob_per_dim(self, logits, images):
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
        temperature = check_temperature(temperature)
        super().__init__(channels, levels)
        self.temperature = float(temperature)

    def with_temperature(self, temperature: float) -> Categorical:
        return Categorical(self.channels, self.levels, temperature)

    def _log_prob_per_dim(self, logits, images):
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


class LogisticMixture(Distribution):
    r"""Discretized mixture of logistics per pixel (PixelCNN++); logits ``(B, H, W, P)``.

    Each pixel has ``K`` mixture components shared by its ``C`` channels.
    Values ``x in {0, .., L - 1}`` are scaled to ``y = 2 x / (L - 1) - 1`` in
    ``[-1, 1]``, so each value owns the bin ``[y - d, y + d]``, ``d = 1 / (L -
    1)``, and the first and last bins reach out to ``-inf`` and ``+inf``::

        p(x) = sum_k pi_k prod_c P_k(x_c | x_<c)
        P_k(x_c | x_<c) = sigmoid((y_c + d - m_ck) / s_ck) - sigmoid((y_c - d - m_ck) / s_ck)
                          (the first term is 1 at x_c = L - 1, the second 0 at x_c = 0)
        m_ck = mu_ck + sum_{c' < c} tanh(alpha_cc'k) y_c'

    so the means of G and B depend linearly on the R (and G) value of the
    same pixel, with coefficients in ``(-1, 1)``. The ``P = K (1 + 2 C + C (C
    - 1) / 2)`` logits of a pixel are laid out as ``K`` mixture logits, then
    the means ``mu`` (``C`` blocks of ``K``), the log-scales ``log s`` (``C``
    blocks of ``K``) and the coefficients ``alpha`` (``C (C - 1) / 2`` blocks
    of ``K``, in the order ``(1, 0), (2, 0), (2, 1), ..``); for RGB and ``K =
    10``, 100 logits, as in the paper.

    ``log_prob_per_dim`` gives the chain-rule terms ``log p(x_c | x_<c)`` of
    the mixture (the component posterior given the earlier channels weighs
    each channel), which sum over a pixel's channels to ``log p(x)``
    exactly. Log-probabilities are computed in log space: ``log sigmoid`` and
    ``log(1 - sigmoid)`` at the edges, the cancellation-free
    ``log(sigmoid(a) - sigmoid(b)) = a - softplus(a) - softplus(b) +
    log(-expm1(b - a))`` inside, and a log-sum-exp over the components. The
    paper's code takes the density at the bin's mid-point (times the bin's
    width) where the difference of the two CDFs is below ``1e-5`` in float32;
    the form above has no cancellation, so the mid-point value is kept only
    as the fallback where the bin is so narrow against the scale that ``b -
    a`` rounds to zero. Log-scales are clipped below at ``-7``, as in the
    paper's code.

    The component is shared by the channels, so a pixel's channels are drawn
    together (:attr:`joint_channels`): channel ``c`` is drawn from the mixture
    given the channels before it (the component drawn from its posterior
    given them, then a logistic value, rounded to its bin), which for a whole
    pixel is the ancestral draw of the paper. At ``temperature`` ``T`` the
    mixture logits are divided by ``T`` and the scales multiplied by it.

    Args:
      channels: colour channels ``C``.
      levels: values per channel ``L`` (2 to 256 and beyond; 2 is a mixture
        of Bernoullis).
      num_mixtures: components ``K``.
      temperature: sampling temperature (log-probabilities ignore it).

    Example:

    >>> import numpy as np
    >>> mixture = LogisticMixture(channels=3, levels=4, num_mixtures=2)
    >>> mixture.logit_shape  # 2 * (1 + 3 + 3 + 3)
    (20,)
    >>> logits = np.random.default_rng(0).normal(size=(1, 1, 1, 20)).astype("float32")
    >>> pixels = np.array(np.meshgrid(*[range(4)] * 3, indexing="ij")).reshape(3, -1).T
    >>> images = pixels.reshape(64, 1, 1, 3)
    >>> p = np.exp(mixture.log_prob(np.repeat(logits, 64, axis=0), images))
    >>> round(float(p.sum()), 5)  # the 64 pixels' probabilities sum to 1
    1.0
    >>> draws = mixture.sample(np.repeat(logits, 5, axis=0), seed=[1, 2])
    >>> tuple(draws.shape), draws.dtype.name  # whole pixels
    ((5, 1, 1, 3), 'int32')

    References:
      Salimans, Karpathy, Chen, Kingma. PixelCNN++: Improving the PixelCNN
      with Discretized Logistic Mixture Likelihood and Other Modifications.
      ICLR 2017. https://arxiv.org/abs/1701.05517 (Section 2.1, 2.2).
    """

    kind = "logistic_mixture"
    joint_channels = True
    MIN_LOG_SCALE = -7.0

    def __init__(
        self, channels: int, levels: int = 256, num_mixtures: int = 10, temperature: float = 1.0
    ):
        if levels < 2:
            raise ValueError(f"a logistic mixture head needs levels >= 2, got {levels}")
        if isinstance(num_mixtures, bool) or int(num_mixtures) != num_mixtures or num_mixtures < 1:
            raise ValueError(f"num_mixtures must be a positive int, got {num_mixtures!r}")
        temperature = check_temperature(temperature)
        super().__init__(channels, levels)
        self.num_mixtures = int(num_mixtures)
        self.temperature = float(temperature)
        c = self.channels
        self.num_coefficients = c * (c - 1) // 2
        # index[c, c'] of the coefficient of y_c' in the mean of channel c, or
        # num_coefficients (a zero) for c' >= c.
        index = np.full((c, c), self.num_coefficients, np.int32)
        for row in range(c):
            for col in range(row):
                index[row, col] = row * (row - 1) // 2 + col
        self._coefficient_index = index.reshape(-1)

    @property
    def logit_shape(self) -> tuple[int, ...]:
        return (self.num_mixtures * (1 + 2 * self.channels + self.num_coefficients),)

    def with_temperature(self, temperature: float) -> LogisticMixture:
        return LogisticMixture(self.channels, self.levels, self.num_mixtures, temperature)

    def __repr__(self) -> str:
        return (
            f"LogisticMixture(channels={self.channels}, levels={self.levels}, "
            f"num_mixtures={self.num_mixtures})"
        )

    def _parameters(self, logits, y):
        """Mixture log-weights ``(..., K)``, the means given the earlier
        channels ``y`` ``(..., C, K)`` and the clipped log-scales ``(..., C, K)``."""
        k, c = self.num_mixtures, self.channels
        lead = tf.shape(logits)[:-1]
        log_pi = tf.nn.log_softmax(logits[..., :k], axis=-1)
        rest = tf.reshape(logits[..., k:], tf.concat([lead, [2 * c + self.num_coefficients, k]], 0))
        means, log_scales = rest[..., :c, :], rest[..., c : 2 * c, :]
        log_scales = tf.maximum(log_scales, self.MIN_LOG_SCALE)
        coefficients = tf.concat(
            [tf.tanh(rest[..., 2 * c :, :]), tf.zeros_like(rest[..., :1, :])], axis=-2
        )
        matrix = tf.gather(coefficients, self._coefficient_index, axis=-2)
        matrix = tf.reshape(matrix, tf.concat([lead, [c, c, k]], 0))
        means = means + tf.reduce_sum(matrix * y[..., None, :, None], axis=-2)
        return log_pi, means, log_scales

    def _scaled(self, values):
        return 2.0 * tf.cast(values, tf.float32) / (self.levels - 1) - 1.0

    def _log_bins(self, values, means, log_scales):
        """``log P_k(x_c | x_<c)`` ``(..., C, K)`` of the values ``(..., C)``."""
        x = tf.cast(values, tf.float32)[..., None]
        centred = self._scaled(x) - means
        inverse = tf.exp(-log_scales)
        half = 1.0 / (self.levels - 1)
        upper = (centred + half) * inverse  # a
        lower = (centred - half) * inverse  # b
        width = upper - lower
        tiny = 1e-30
        inside = (
            upper
            - tf.nn.softplus(upper)
            - tf.nn.softplus(lower)
            + tf.math.log(-tf.math.expm1(-tf.maximum(width, tiny)))
        )
        middle = centred * inverse
        mid_point = middle - log_scales - 2.0 * tf.nn.softplus(middle) + math.log(2.0 * half)
        inside = tf.where(width > tiny, inside, mid_point)
        first = -tf.nn.softplus(-upper)  # log sigmoid(a): the bin reaches -inf
        last = -tf.nn.softplus(lower)  # log(1 - sigmoid(b)): the bin reaches +inf
        out = tf.where(x < 0.5, first, inside)
        return tf.where(x > self.levels - 1.5, last, out)

    def _log_prob_per_dim(self, logits, images):
        logits = tf.convert_to_tensor(logits, tf.float32)
        values = tf.cast(images, tf.float32)
        log_pi, means, log_scales = self._parameters(logits, self._scaled(values))
        joint = log_pi[..., None, :] + tf.cumsum(self._log_bins(values, means, log_scales), -2)
        marginal = tf.reduce_logsumexp(joint, axis=-1)  # log p(x_0 .. x_c) (..., C)
        before = tf.concat([tf.zeros_like(marginal[..., :1]), marginal[..., :-1]], axis=-1)
        return marginal - before

    # A long chain of elementwise ops on (B, H, W, C, K) tensors: compiled
    # with XLA, which fuses them into a few loops over the elements.
    @tf.function(jit_compile=True, reduce_retracing=True)
    def _log_prob(self, logits, images):
        """``log p(x)`` per image ``(B,)``: one log-sum-exp over the components
        per pixel, ``log sum_k pi_k prod_c P_k(x_c | x_<c)`` (the sum of
        :meth:`log_prob_per_dim` over the channels, which telescopes to it,
        without the log-sum-exps of the partial products)."""
        logits = tf.convert_to_tensor(logits, tf.float32)
        values = tf.cast(images, tf.float32)
        log_pi, means, log_scales = self._parameters(logits, self._scaled(values))
        joint = log_pi + tf.reduce_sum(self._log_bins(values, means, log_scales), axis=-2)
        return tf.reduce_sum(tf.reduce_logsumexp(joint, axis=-1), axis=[1, 2])

    def sample_channel(self, logits, pixel, c, seed):
        logits = tf.convert_to_tensor(logits, tf.float32)
        pixel = tf.cast(pixel, tf.float32)
        k = self.num_mixtures
        tempered = tf.concat([logits[..., :k] / self.temperature, logits[..., k:]], axis=-1)
        log_pi, means, log_scales = self._parameters(tempered, self._scaled(pixel))
        log_scales = log_scales + math.log(self.temperature)
        posterior = log_pi
        if c > 0:
            log_bins = self._log_bins(pixel, means, log_scales)[..., :c, :]
            posterior = posterior + tf.reduce_sum(log_bins, axis=-2)
        seeds = tf.random.experimental.stateless_split(seed, 2, alg=RNG_ALG)
        shape = tf.shape(posterior)
        gumbel_u = tf.random.stateless_uniform(
            shape, seed=seeds[0], minval=1e-20, maxval=1.0, alg=RNG_ALG
        )
        component = tf.argmax(
            posterior - tf.math.log(-tf.math.log(gumbel_u)), axis=-1, output_type=tf.int32
        )
        mean = tf.gather(means[..., c, :], component, batch_dims=len(posterior.shape) - 1)
        log_scale = tf.gather(log_scales[..., c, :], component, batch_dims=len(posterior.shape) - 1)
        u = tf.random.stateless_uniform(
            shape[:-1], seed=seeds[1], minval=1e-7, maxval=1.0 - 1e-7, alg=RNG_ALG
        )
        value = mean + tf.exp(log_scale) * (tf.math.log(u) - tf.math.log1p(-u))
        level = tf.round((value + 1.0) * (self.levels - 1) / 2.0)
        return tf.cast(tf.clip_by_value(level, 0.0, self.levels - 1.0), tf.int32)

    def sample(self, logits, seed):
        """Draws whole pixels: logits ``S + (P,)`` give int32 values ``S + (C,)``
        (channel ``c`` with the seed ``fold_in(seed, c)``)."""
        logits = tf.convert_to_tensor(logits, tf.float32)
        seed = tf.convert_to_tensor(seed, tf.int32)
        pixel = tf.zeros(tf.concat([tf.shape(logits)[:-1], [self.channels]], 0))
        for c in range(self.channels):
            seed_c = tf.random.experimental.stateless_fold_in(seed, c, alg=RNG_ALG)
            value = tf.cast(self.sample_channel(logits, pixel, c, seed_c), tf.float32)
            pixel = tf.concat([pixel[..., :c], value[..., None], pixel[..., c + 1 :]], axis=-1)
        return tf.cast(pixel, tf.int32)


def make_distribution(
    kind: str, channels: int, levels: int, num_mixtures: int | None = None
) -> Distribution:
    """The distribution for a head description.

    Args:
      kind: one of ``HEAD_KINDS``: ``"bernoulli"``, ``"categorical"`` or
        ``"logistic_mixture"``.
      channels: colour channels ``C``.
      levels: values per channel (2 for a Bernoulli head).
      num_mixtures: components of a logistic mixture head (its kind only).

    Example:

    >>> make_distribution("categorical", channels=3, levels=256)
    Categorical(channels=3, levels=256)
    >>> make_distribution("bernoulli", channels=1, levels=2)
    Bernoulli(channels=1, levels=2)
    >>> make_distribution("logistic_mixture", channels=3, levels=256, num_mixtures=10)
    LogisticMixture(channels=3, levels=256, num_mixtures=10)
    """
    if kind == "logistic_mixture":
        if num_mixtures is None:
            raise ValueError("a logistic_mixture head needs num_mixtures")
        return LogisticMixture(channels, levels, num_mixtures)
    if num_mixtures is not None:
        raise ValueError(f"num_mixtures applies to logistic_mixture heads only, not {kind!r}")
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

    The head reads ``distribution.features`` input features per pixel and
    shapes them to ``(B, H, W, *distribution.logit_shape)``: for a Bernoulli
    head the input ``(B, H, W, C)`` passes unchanged; for a categorical head
    the input ``(B, H, W, C * levels)``, whose features come in ``C``
    contiguous blocks (block ``c`` for channel ``c``, as the colour groups of
    :class:`~pixel_models.layers.MaskedConv2D` lay them out), is reshaped to
    ``(B, H, W, C, levels)``; for a logistic mixture head the ``(B, H, W, P)``
    mixture parameters pass unchanged (see :class:`LogisticMixture`). Logits
    are cast to float32 so that the loss is computed in full precision under
    mixed precision.

    Args:
      kind: one of ``HEAD_KINDS``.
      channels: colour channels ``C``.
      levels: values per channel.
      num_mixtures: mixture components of a ``"logistic_mixture"`` head
        (None for the other kinds).
      **kwargs: forwarded to ``keras.layers.Layer``.

    Example:

    >>> import numpy as np
    >>> head = PixelHead("categorical", channels=3, levels=4)
    >>> tuple(head(np.zeros((1, 2, 2, 12), "float32")).shape)
    (1, 2, 2, 3, 4)
    >>> mixture = PixelHead("logistic_mixture", channels=3, levels=256, num_mixtures=5)
    >>> mixture.features, tuple(mixture(np.zeros((1, 2, 2, 50), "float32")).shape)
    (50, (1, 2, 2, 50))
    """

    def __init__(
        self, kind: str, channels: int, levels: int, num_mixtures: int | None = None, **kwargs
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.distribution = make_distribution(kind, channels, levels, num_mixtures)
        self.kind = kind
        self.channels = int(channels)
        self.levels = int(levels)
        self.num_mixtures = None if num_mixtures is None else int(num_mixtures)

    @property
    def features(self) -> int:
        """Number of input features the head expects."""
        return self.distribution.features

    def call(self, inputs):
        inputs = ops.cast(inputs, "float32")
        shape = ops.shape(inputs)
        return ops.reshape(inputs, (shape[0], shape[1], shape[2], *self.distribution.logit_shape))

    def incremental_steps(self, inputs, outputs) -> list[Step]:
        """One position step: the float32 logits of the pixel at the position,
        ``(B, *distribution.logit_shape)`` (see :mod:`pixel_models.layers.incremental`)."""
        x = inputs["inputs"]
        if x.rate is Rate.CONSTANT:
            raise NotIncremental("mixes conditioning inputs into image features")

        def call(where, x):
            logits = tf.cast(x, tf.float32)
            return [tf.reshape(logits, [-1, *self.distribution.logit_shape])]

        return [Step(Rate.POSITION, {"x": Here(x)}, outputs, call)]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], *self.distribution.logit_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"kind": self.kind, "channels": self.channels, "levels": self.levels})
        if self.num_mixtures is not None:
            config["num_mixtures"] = self.num_mixtures
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
        f"model {model.name!r} has no PixelHead layer: a density model of this package "
        "ends in one (pixel_models.PixelHead), a classifier has none"
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
