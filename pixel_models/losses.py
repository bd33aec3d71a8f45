"""Keras-native training: a loss and metrics that read a model's pixel head.

Every density model of the zoo maps images (and, when it is conditional,
labels) to the logits of its :class:`~pixel_models.distributions.PixelHead`,
and its loss is the negative log-likelihood of the images it was given,

.. math::

    \\mathrm{NLL}(x) = -\\log p(x) = -\\sum_{i,j,c} \\log p(x_{ijc} \\mid x_{<ijc})

in nats per image, the loss :class:`pixel_models.training.Trainer` minimises
for ``main.py``. So the target of an image is the image itself: with
:func:`fit_data` a dataset of images (or of ``(images, labels)``) becomes
one of ``(inputs, images)`` for ``model.fit``::

    model.compile(
        keras.optimizers.RMSprop(1e-3, clipvalue=1.0),
        loss=pm.PixelNLL(),
        metrics=[pm.BitsPerDim()],
    )
    model.fit(pm.fit_data(train), validation_data=pm.fit_data(test), epochs=10)

:class:`PixelNLL` reads the head from the logits: logits of the shape of
the images are a Bernoulli head's (binary images); logits with one more
axis, of ``levels`` values, a categorical head's. Build the loss with
:meth:`PixelNLL.for_model` to read the model's head instead: any head, the
logistic mixture of PixelCNN++ included.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from pixel_models.distributions import HEAD_KINDS, Distribution, head_of, make_distribution


def _distribution(
    kind: str | None, y_true, y_pred, levels: int | None = None, num_mixtures: int | None = None
) -> Distribution:
    """The head distribution of logits ``y_pred`` for images ``y_true``."""
    image_rank, logits_rank = len(y_true.shape), len(y_pred.shape)
    if image_rank != 4:
        raise ValueError(
            f"the target of a pixel loss is a batch of images (B, H, W, C), got shape "
            f"{tuple(y_true.shape)}; train on pixel_models.fit_data(dataset)"
        )
    channels = y_true.shape[-1] or 1
    if kind == "logistic_mixture":
        if levels is None or num_mixtures is None:
            raise ValueError(
                "a logistic mixture head needs levels= and num_mixtures=: build the loss or "
                "metric with .for_model(model)"
            )
        return make_distribution(kind, channels, levels, num_mixtures)
    inferred = {image_rank: "bernoulli", image_rank + 1: "categorical"}.get(logits_rank)
    if inferred == "bernoulli" and y_pred.shape[-1] != y_true.shape[-1]:
        inferred = None  # e.g. a mixture head's parameters
    if inferred is None or (kind is not None and kind != inferred):
        want = kind or "a Bernoulli or categorical head's"
        raise ValueError(
            f"logits of shape {tuple(y_pred.shape)} are not {want} logits of images of shape "
            f"{tuple(y_true.shape)}: the model must end in a PixelHead (for any head, build "
            "the loss with PixelNLL.for_model(model))"
        )
    levels = 2 if inferred == "bernoulli" else (y_pred.shape[-1] or 2)
    return make_distribution(inferred, channels, levels)


def per_image_nll(
    y_true,
    y_pred,
    kind: str | None = None,
    levels: int | None = None,
    num_mixtures: int | None = None,
) -> tf.Tensor:
    """``-log p(x)`` of each image in nats, ``(B,)``, from a head's logits.

    Args:
      y_true: images ``(B, H, W, C)`` of integer values in ``[0, levels)``.
      y_pred: logits of a :class:`~pixel_models.distributions.PixelHead`.
      kind: a head kind (``"bernoulli"``, ``"categorical"`` or
        ``"logistic_mixture"``) to check, or None (read from the shapes: a
        Bernoulli or categorical head).
      levels: values per channel; needed (with ``num_mixtures``) for a
        logistic mixture head only.
      num_mixtures: components of a logistic mixture head.

    Example:

    >>> import numpy as np
    >>> images = np.ones((2, 2, 2, 1), "float32")
    >>> [round(float(v), 4) for v in per_image_nll(images, np.zeros_like(images))]
    [2.7726, 2.7726]
    """
    y_pred = tf.convert_to_tensor(y_pred, tf.float32)
    y_true = tf.convert_to_tensor(y_true)
    return _distribution(kind, y_true, y_pred, levels, num_mixtures).nll(y_pred, y_true)


class _HeadReader:
    """What the loss and the metrics know of the head whose logits they read:
    its ``kind`` (None: read from the shapes), ``levels`` and ``num_mixtures``
    (for a logistic mixture), kept as attributes and in ``get_config``."""

    def _set_head(self, kind: str | None, levels: int | None, num_mixtures: int | None) -> None:
        if kind is not None and kind not in HEAD_KINDS:
            raise ValueError(f"kind must be one of {', '.join(HEAD_KINDS)} or None, got {kind!r}")
        self.kind = kind
        self.levels = levels
        self.num_mixtures = num_mixtures

    @classmethod
    def for_model(cls, model: keras.Model, **kwargs):
        """The loss or metric of ``model``'s :class:`~pixel_models.distributions.PixelHead`
        (any head kind, the logistic mixture included)."""
        head = head_of(model)
        return cls(kind=head.kind, levels=head.levels, num_mixtures=head.num_mixtures, **kwargs)

    def _nll(self, y_true, y_pred):
        return per_image_nll(y_true, y_pred, self.kind, self.levels, self.num_mixtures)

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, levels=self.levels, num_mixtures=self.num_mixtures)
        return config


@keras.saving.register_keras_serializable(package="pixel_models")
class PixelNLL(_HeadReader, keras.losses.Loss):
    """Negative log-likelihood of images under a pixel head, in nats per image.

    ``call(images, logits)`` returns ``-log p(x)`` of each image (the sum
    over its dimensions of ``-log p(x_ijc | past)``), and the default
    ``sum_over_batch_size`` reduction their mean over the batch, the loss
    that ``main.py``'s trainer minimises. It works for every density model
    of ``MODELS``: the multi-scale PixelRNN's logits are the small model's at
    the grid pixels and the full model's elsewhere, and an autoencoder's are
    the decoder's given the images' codes (``-log p(x | z(x))``).

    Args:
      kind: ``"bernoulli"``, ``"categorical"`` or ``"logistic_mixture"``: the
        head the logits must come from; None reads a Bernoulli or categorical
        head from the shapes of the logits and images. :meth:`for_model`
        reads all three from a model's head.
      reduction: Keras's reduction of the per-image values.
      name: the loss's name.
      levels: values per channel; needed (with ``num_mixtures``) for a
        logistic mixture head only.
      num_mixtures: components of a logistic mixture head.
      **kwargs: forwarded to ``keras.losses.Loss``.

    Example:

    >>> import numpy as np
    >>> import pixel_models as pm
    >>> model = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                        recurrent_length=1, out_recurrent_length=0)
    >>> loss = PixelNLL.for_model(model)
    >>> loss.kind
    'bernoulli'
    >>> x = np.random.default_rng(0).integers(0, 2, (3, 4, 4, 1)).astype("float32")
    >>> expected = float(np.mean(pm.distribution_of(model).nll(model(x), x)))
    >>> bool(np.isclose(float(loss(x, model(x))), expected))
    True
    """

    def __init__(
        self,
        kind: str | None = None,
        reduction: str = "sum_over_batch_size",
        name: str = "pixel_nll",
        levels: int | None = None,
        num_mixtures: int | None = None,
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        self._set_head(kind, levels, num_mixtures)

    def call(self, y_true, y_pred):
        return self._nll(y_true, y_pred)


@keras.saving.register_keras_serializable(package="pixel_models")
class NLL(_HeadReader, keras.metrics.Mean):
    """Mean negative log-likelihood per image in nats (``nll`` in the logs).

    The same number as :class:`PixelNLL`'s loss; a metric of its own so that
    the logs name it ``nll`` and ``val_nll`` beside ``bits_per_dim``,
    whatever else the loss holds.

    Args:
      kind, levels, num_mixtures: as for :class:`PixelNLL`.
      name: the metric's name.
      **kwargs: forwarded to ``keras.metrics.Mean``.
    """

    def __init__(
        self,
        kind: str | None = None,
        name: str = "nll",
        levels: int | None = None,
        num_mixtures: int | None = None,
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self._set_head(kind, levels, num_mixtures)
        # Lower is better: what EarlyStopping and ModelCheckpoint read to
        # monitor it without mode="min".
        self._direction = "down"

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(self._values(y_true, y_pred), sample_weight=sample_weight)

    def _values(self, y_true, y_pred):
        return self._nll(y_true, y_pred)


@keras.saving.register_keras_serializable(package="pixel_models")
class BitsPerDim(NLL):
    """Mean negative log-likelihood in bits per dimension (``bits_per_dim``).

    Each image's ``-log p(x)`` divided by ``H * W * C * ln 2``, as
    :func:`pixel_models.bits_per_dim` converts it.

    Args:
      kind: as for :class:`PixelNLL`.
      name: the metric's name.
      **kwargs: forwarded to ``keras.metrics.Mean``.

    Example:

    >>> import numpy as np
    >>> metric = BitsPerDim()
    >>> images = np.ones((2, 4, 4, 1), "float32")
    >>> metric.update_state(images, np.zeros_like(images))  # p = 1/2: one bit a pixel
    >>> round(float(metric.result()), 6)
    1.0
    """

    def __init__(self, kind: str | None = None, name: str = "bits_per_dim", **kwargs):
        super().__init__(kind=kind, name=name, **kwargs)

    def _values(self, y_true, y_pred):
        # From the batch itself: its height and width may be known only then.
        dims = tf.cast(tf.reduce_prod(tf.shape(y_true)[1:]), tf.float32)
        return super()._values(y_true, y_pred) / (dims * math.log(2.0))


def fit_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``(inputs, targets)`` batches for ``model.fit`` of a dataset of images.

    A batch of images ``x`` becomes ``(x, x)``; a batch of ``(images,
    labels)`` becomes ``((images, labels), images)``, the inputs of a
    class-conditional model. The inputs are float32, as the models take
    them, and the targets keep their integer values.

    Example:

    >>> import numpy as np
    >>> images = np.zeros((4, 2, 2, 1), "uint8")
    >>> inputs, targets = next(iter(fit_data(tf.data.Dataset.from_tensors(images))))
    >>> inputs.dtype.name, targets.dtype.name, tuple(targets.shape)
    ('float32', 'uint8', (4, 2, 2, 1))
    >>> pairs = tf.data.Dataset.from_tensors((images, np.arange(4)))
    >>> (x, labels), targets = next(iter(fit_data(pairs)))
    >>> labels.numpy().tolist()
    [0, 1, 2, 3]
    """
    spec = dataset.element_spec
    wanted = "fit_data takes a dataset of images or of (images, labels)"
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise ValueError(f"{wanted}, got {len(spec)} parts")
        return dataset.map(lambda x, y: ((tf.cast(x, tf.float32), y), x))
    if not isinstance(spec, tf.TensorSpec):
        keys = f" with keys {', '.join(map(str, spec))}" if isinstance(spec, dict) else ""
        raise ValueError(
            f"{wanted}, got elements of type {type(spec).__name__}{keys}; for a tfds dataset "
            "map it first, e.g. ds.map(lambda e: (e['image'], e['label']))"
        )
    return dataset.map(lambda x: (tf.cast(x, tf.float32), x))
