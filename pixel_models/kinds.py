"""What the trainer, the sampler and ``main.py`` ask of a model, in one place.

Models of the zoo differ in a few ways that shared code must know about, and
each model declares them through its *kind* instead of shared code asking
"which model is this?":

=================  ===============================  ==============================
kind               loss terms (per image, nats)     what a run draws
=================  ===============================  ==============================
``DENSITY``        ``nll = -log p(x | condition)``  samples (one row per class when
                                                    class-conditional), completions
``MULTI_STAGE``    the model's own ``nll_terms``    samples and completions, drawn
                   (e.g. small image + the rest)    in two stages
``AUTOENCODER``    ``nll = -log p(x | z(x))``       reconstructions of test images
``CLASSIFIER``     cross-entropy of the labels      nothing: it reports accuracy
=================  ===============================  ==============================

A model declares its kind with a ``model_kind`` attribute (the subclassed
composite models: :class:`~pixel_models.models.MultiScalePixelRNN`,
:class:`~pixel_models.models.PixelAutoencoder`); a functional model with a
:class:`~pixel_models.distributions.PixelHead` is a ``DENSITY`` model, and
one whose output is ``(B, classes)`` is a ``CLASSIFIER``. A model builder of
the ``MODELS`` table declares the kind of the models it builds the same way
(``builder.model_kind``), so a run knows it before building the model.
:func:`kind_of` and :func:`kind_for_builder` read these declarations; nothing
else does.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pixel_models.distributions import distribution_of, head_of


class ModelKind:
    """A density model ``p(x)`` (or ``p(x | condition)``) with one pixel head.

    The base class is the ``DENSITY`` kind; the others override what differs.

    Attributes:
      name: the kind's name.
      needs_labels: the model trains on ``(image, label)`` pairs whatever
        else is asked (a classifier).
      draws_images: :func:`pixel_models.sample`, completion and scoring apply.
      reports_bits_per_dim: evaluation reports bits per dimension.
      preview_needs_images: :meth:`preview` shows test images (it needs them).
      preview_tag: the TensorBoard tag of :meth:`preview` grids.
      preview_stem: the file stem of the grids written while training.
      generated_stem: the file stem of the grids written from a checkpoint.
      reconstructs: :meth:`decoder_and_codes` applies (an autoencoder).
    """

    name = "density"
    needs_labels = False
    draws_images = True
    reports_bits_per_dim = True
    preview_needs_images = False
    preview_tag = "samples"
    preview_stem = "sample"
    generated_stem = "generated"
    reconstructs = False

    def refusal(self, what: str) -> str | None:
        """Why the model cannot do ``what`` (``"sample"``, ``"complete"``,
        ``"score"``), or None when it can: a phrase that follows the model's
        name (``"is a classifier; ..."``)."""
        return None

    def per_example(self, model: keras.Model, images, condition, training):
        """``(loss, terms)``: each example's loss ``(B,)`` in nats, and named
        per-example terms ``{name: (B,)}`` reported beside it."""
        inputs = tf.cast(images, tf.float32)
        if condition is not None:
            inputs = [inputs, condition]
        logits = model(inputs, training=training)
        return distribution_of(model).nll(logits, images), {}

    def decoder_and_codes(self, model: keras.Model, images, batch_size: int = 100):
        """``(decoder, codes)``: the network that redraws ``images`` and the
        condition it redraws them under (only where ``reconstructs``)."""
        raise ValueError(f"model {model.name!r} has no encoder: it cannot reconstruct images")

    def stages(self, model: keras.Model):
        """``(first_model, second_model, (sh, sw))`` of a model drawn in two
        stages, or None (drawn in one pass)."""
        return None

    def preview(self, model: keras.Model, images, *, num: int, seed: int, **options):
        """A grid that shows what the model has learnt, or None.

        Args:
          model: the model.
          images: test images (used only when ``preview_needs_images``).
          num: how many images to show.
          seed: seed of the draws.
          **options: ``batch_size``, ``temperature``, ``verbose`` of
            :func:`pixel_models.sample`.

        Returns:
          uint8 grid ``(H', W', C)`` (see :func:`pixel_models.images.make_grid`).
        """
        from pixel_models import images as image_utils
        from pixel_models import sampling

        rows = sampling.class_rows(model, num)
        if rows is None:
            drawn, columns = sampling.sample(model, num, seed=seed, **options), None
        else:  # a class-conditional model: one row per class
            labels, columns = rows
            drawn = sampling.sample(model, len(labels), seed=seed, condition=labels, **options)
        return image_utils.make_grid(drawn, distribution_of(model).levels, columns=columns)


class _MultiStage(ModelKind):
    """A density model that splits its NLL into terms (``model.nll_terms``)
    and is drawn in stages (``model.multiscale_stages()``)."""

    name = "multi_stage"

    def per_example(self, model, images, condition, training):
        terms = model.nll_terms(images, training=training)
        return tf.add_n(list(terms.values())), terms

    def stages(self, model):
        return model.multiscale_stages()


class _Autoencoder(ModelKind):
    """``p(x | z(x))``: a decoder conditioned on an encoder's code of the image
    (``model.encode``, ``model.decoder``); there is no prior over codes."""

    name = "autoencoder"
    preview_needs_images = True
    reconstructs = True
    preview_tag = "reconstructions"
    preview_stem = "reconstruction"
    generated_stem = "reconstructed"

    def refusal(self, what):
        if what == "sample":
            return (
                "is an autoencoder: it has no distribution over codes to sample from; "
                "reconstruct images with pixel_models.reconstruct(model, images), or decode "
                "codes with pixel_models.sample(model.decoder, n, condition=codes)"
            )
        return (
            "models p(x | code of x), whose code has seen the whole image; with "
            "--is_train=False it writes reconstructions"
        )

    def decoder_and_codes(self, model, images, batch_size=100):
        from pixel_models.models.autoencoder import encode_batches

        return model.decoder, encode_batches(model, images, batch_size=batch_size)

    def preview(self, model, images, *, num, seed, **options):
        from pixel_models import images as image_utils
        from pixel_models import sampling

        originals = np.asarray(images)[:num]
        reconstructions = sampling.reconstruct(model, originals, seed=seed, **options)
        return image_utils.reconstruction_grid(
            originals, reconstructions, distribution_of(model).levels
        )


class _Classifier(ModelKind):
    """Class logits ``(B, classes)`` from images; its loss is the labels'
    cross-entropy and it also reports ``accuracy``."""

    name = "classifier"
    needs_labels = True
    draws_images = False
    reports_bits_per_dim = False

    def refusal(self, what):
        return "is a classifier; it draws no images"

    def per_example(self, model, images, condition, training):
        if condition is None:
            raise ValueError("a classifier trains on (images, labels) batches")
        labels = tf.cast(condition, tf.int32)
        logits = tf.cast(model(tf.cast(images, tf.float32), training=training), tf.float32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        correct = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels)
        return nll, {"accuracy": tf.cast(correct, nll.dtype)}

    def preview(self, model, images, **options):
        return None


DENSITY = ModelKind()
MULTI_STAGE = _MultiStage()
AUTOENCODER = _Autoencoder()
CLASSIFIER = _Classifier()


def kind_of(model: keras.Model) -> ModelKind:
    """The kind of a built model (see the module docstring).

    Example:

    >>> import pixel_models as pm
    >>> model = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2)
    >>> kind_of(model).name
    'density'
    >>> classifier = keras.Sequential(
    ...     [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    ... )
    >>> kind_of(classifier).name
    'classifier'
    """
    declared = getattr(model, "model_kind", None)
    if isinstance(declared, ModelKind):
        return declared
    try:
        head_of(model)
        return DENSITY
    except ValueError:
        shape = getattr(model, "output_shape", None)
        if isinstance(shape, tuple) and len(shape) == 2:
            return CLASSIFIER
        raise ValueError(
            f"model {model.name!r} has no PixelHead and no (batch, classes) output: it is "
            "neither a density model nor a classifier"
        ) from None


def kind_for_builder(name: str) -> ModelKind:
    """The kind of the models that ``MODELS[name]`` builds.

    Example:

    >>> kind_for_builder("invariant_cnn").name, kind_for_builder("pixel_cnn").name
    ('classifier', 'density')
    """
    from pixel_models.models import MODELS

    return getattr(MODELS[name], "model_kind", DENSITY)
