"""The public sampling functions: sample, complete, reconstruct, and what they share.

:func:`sample`, :func:`complete` and :func:`reconstruct` check their
arguments, lay the conditioning inputs out (:func:`class_rows`), choose the
loop (:func:`supports_cached`: the cached one whenever it can) and run it
batch by batch. :func:`cached_logits` gives the logits the cached loop
computes, to test it against the full network.

The last section of this file holds what depends on the kind of model (an
autoencoder is not sampled but reconstructed; a multi-scale model is drawn in
stages), kept together.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from pixel_models.distributions import (
    RNG_ALG,
    Distribution,
    check_temperature,
    check_values,
    distribution_of,
)
from pixel_models.kinds import kind_of
from pixel_models.layers.checks import positive_int
from pixel_models.progress import progress
from pixel_models.sampling.graph import image_shape, model_inputs, model_nodes
from pixel_models.sampling.loops import cached_loop, plan_of, reference_loop

METHODS = ("auto", "cached", "reference")


def supports_cached(model: keras.Model) -> bool:
    """Whether :func:`sample` can use the cached sampler for ``model``.

    The cached sampler needs every layer to have a position-wise (or
    row-wise) form it knows; models built by this package have one, except
    where conditioning inputs are convolved or mixed into image features.

    Example:

    >>> import keras
    >>> import pixel_models as pm
    >>> model = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                        recurrent_length=1, out_recurrent_length=0)
    >>> supports_cached(model)
    True
    >>> supports_cached(keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 3)]))
    False
    """
    return not plan_of(model).reason


def cached_logits(model: keras.Model, images: np.ndarray, condition=None) -> np.ndarray:
    """The model's logits computed position by position with the cached path.

    Feeds ``images`` (teacher forcing) through the cached sampler's loop and
    returns the logits it computes at every step; for a correct cache they
    equal ``model(images)`` (``model([images, condition])`` for a conditional
    model) up to float32 rounding.

    Example:

    >>> import pixel_models as pm
    >>> model = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                        recurrent_length=1, out_recurrent_length=0)
    >>> x = np.random.default_rng(0).integers(0, 2, (2, 4, 4, 1)).astype("float32")
    >>> logits = cached_logits(model, x)
    >>> logits.shape, bool(np.allclose(logits, model(x), atol=1e-5))
    ((2, 4, 4, 1), True)
    """
    images = _checked_images(_checked_model(model), images).astype(np.float32)
    conditions = _conditions(model, condition, len(images))
    run = cached_loop(model, distribution_of(model), collect_logits=True)
    _, logits = run(
        tf.constant(images),
        tf.ones(images.shape, tf.bool),
        _check_seed(0),
        tuple(tf.constant(c) for c in conditions),
    )
    return logits.numpy()


def _check_seed(seed: int) -> tf.Tensor:
    """The stateless random ops' seed of ``seed``: one of two int32 halves per
    31 bits, so that distinct seeds give distinct images (and seeds below
    2**31 the ones they always gave)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not 0 <= int(seed) < 2**62:
        raise ValueError(f"seed must be an int in [0, 2**62), got {seed}")
    return tf.constant([int(seed) % 2**31, int(seed) // 2**31], tf.int32)


def _distribution(model: keras.Model, temperature: float | None) -> Distribution:
    distribution = distribution_of(model)
    if temperature is None or check_temperature(temperature) == 1.0:
        return distribution
    return distribution.with_temperature(temperature)


def _label_count(model: keras.Model, tensor) -> int | None:
    """Number of classes of an int input that a ``CategoryEncoding`` reads."""
    for record in model_nodes(model):
        if isinstance(record.layer, keras.layers.CategoryEncoding):
            if any(t is tensor for t in record.inputs):
                return int(record.layer.num_tokens)
    return None


def _known(known, shape: tuple[int, ...]) -> np.ndarray:
    """``known`` as booleans of ``shape``, unless it is not booleans (or 0 and
    1) that broadcast to it."""
    given = np.asarray(known)
    if given.dtype != bool and not (
        np.issubdtype(given.dtype, np.integer) and np.isin(given, (0, 1)).all()
    ):
        raise ValueError(
            f"known must hold booleans (True where a value is given), got {given.dtype}"
        )
    try:
        return np.broadcast_to(given.astype(bool), shape)
    except ValueError:
        raise ValueError(
            f"known must have the images' shape {shape} (or broadcast to it), got {given.shape}"
        ) from None


def _one_per_input(condition, count: int) -> bool:
    """Whether ``condition`` gives each of ``count`` conditioning inputs its
    own value: a tuple of ``count`` values, or a list of ``count`` arrays. A
    list of numbers (``[0, 1]``) is one array of labels, not a label and a
    code."""
    if isinstance(condition, tuple):
        return len(condition) == count
    return (
        isinstance(condition, list)
        and len(condition) == count
        and all(np.ndim(value) > 0 for value in condition)
    )


def _conditions(model: keras.Model, condition, num: int) -> list[np.ndarray]:
    """The conditioning inputs of ``num`` images, checked, one per model input
    after the images.

    A model with one conditioning input (labels or latent codes) takes one
    array; a model with several takes a tuple of arrays in the order of its
    inputs (or a list of arrays, see :func:`_one_per_input`). Each array is
    broadcast to ``(num, *input shape)``, so one label or one code serves
    every image.
    """
    extra = model_inputs(model)[1:]
    if not extra:
        if condition is not None:
            raise ValueError(f"model {model.name!r} is unconditional: it takes no condition")
        return []
    names = ", ".join(t.name for t in extra)
    if condition is None:
        raise ValueError(
            f"model {model.name!r} is conditional: pass condition= ({names}) for its inputs"
        )
    if len(extra) == 1:
        given = [condition]
    elif _one_per_input(condition, len(extra)):
        given = list(condition)
    else:
        raise ValueError(
            f"model {model.name!r} takes {len(extra)} conditions: pass the tuple "
            f"condition=({names})"
        )
    arrays = []
    for tensor, value in zip(extra, given, strict=True):
        shape = (num, *(int(d) for d in tensor.shape[1:]))
        dtype = np.dtype(tensor.dtype)
        value = np.asarray(value)
        if not _numeric(value.dtype):
            raise ValueError(f"condition {tensor.name!r} must be numeric, got {value.dtype}")
        try:
            value = np.broadcast_to(value, shape)
        except ValueError:
            raise ValueError(
                f"condition {tensor.name!r} must have shape {shape} (or broadcast to it), "
                f"got {value.shape}"
            ) from None
        if np.issubdtype(dtype, np.floating) and not np.isfinite(value.astype(np.float32)).all():
            raise ValueError(f"condition {tensor.name!r} must be finite, got NaN or infinity")
        if np.issubdtype(dtype, np.integer):
            if value.size and np.any(value != np.round(value)):
                raise ValueError(f"condition {tensor.name!r} takes integers")
            count = _label_count(model, tensor)
            if count is not None and value.size and (value.min() < 0 or value.max() >= count):
                raise ValueError(f"condition {tensor.name!r} must lie in [0, {count - 1}]")
        arrays.append(np.ascontiguousarray(value.astype(dtype)))
    return arrays


def _numeric(dtype: np.dtype) -> bool:
    """Integers and floats, the low-precision floats of mixed precision
    (``bfloat16``, which numpy does not count as a number) included."""
    if dtype.kind == "O":
        return False
    if np.issubdtype(dtype, np.number):
        return True
    try:
        tf_dtype = tf.as_dtype(dtype)
    except TypeError:
        return False
    return tf_dtype.is_floating or tf_dtype.is_integer


def class_rows(model: keras.Model, num_samples: int) -> tuple[np.ndarray, int] | None:
    """Labels that lay samples of a class-conditional model out one row per class.

    Returns ``(labels, per_class)``: ``per_class = ceil(num_samples / classes)``
    samples of each class in turn (so at least one of each), to be drawn with
    ``sample(model, len(labels), condition=labels)`` and shown with
    ``make_grid(..., columns=per_class)``; None for a model that does not take
    class labels as its only condition.

    Example:

    >>> import pixel_models as pm
    >>> model = pm.build_model("gated_pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                        recurrent_length=1, num_classes=3)
    >>> labels, per_class = class_rows(model, 5)
    >>> labels.tolist(), per_class  # draw with pm.sample(model, 6, condition=labels)
    ([0, 0, 1, 1, 2, 2], 2)
    >>> unconditional = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2)
    >>> print(class_rows(unconditional, 5))
    None
    """
    num_samples = positive_int("num_samples", num_samples)
    extra = model_inputs(_checked_model(model))[1:]
    if len(extra) != 1:
        return None
    classes = _label_count(model, extra[0])
    if classes is None:
        return None
    per_class = max(1, -(-int(num_samples) // classes))
    return np.repeat(np.arange(classes), per_class), per_class


@dataclasses.dataclass(frozen=True)
class _Options:
    """How :func:`_run_batches` runs: as the keyword arguments of :func:`sample`."""

    batch_size: int = 100
    temperature: float | None = None
    method: str = "auto"
    verbose: bool = False


def _check_method(method: str) -> None:
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def _choose_loop(model, distribution: Distribution, known: np.ndarray, method: str):
    """``run(images, known, seed, conditions) -> images``: the cached loop when
    ``method`` asks for it (or is "auto" and the model supports it), else the
    reference loop."""
    _check_method(method)
    cached = method == "cached" or (method == "auto" and supports_cached(model))
    plan = plan_of(model)
    if cached and not plan.reason and plan.given is not None and not known[:, plan.given].all():
        # Layers that read the given pixels before the loop (the small image of
        # a multi-scale model) need all of them.
        if method == "cached":
            raise ValueError(
                f"model {model.name!r} samples with the cached sampler only when the "
                f"{int(plan.given.sum())} pixels it reads before the loop (its small image) "
                "are known in every image; use method='reference'"
            )
        cached = False
    if not cached:
        return reference_loop(model, distribution)
    loop = cached_loop(model, distribution, collect_logits=False)

    def run(x, k, s, c):
        return loop(x, k, s, c)[0]

    return run


def _run_batches(model, images, known, *, seed, conditions=(), options: _Options) -> np.ndarray:
    """Completes ``images`` (float32) where ``known`` is False, batch by batch."""
    run = _choose_loop(model, _distribution(model, options.temperature), known, options.method)
    base = _check_seed(seed)
    outputs = []
    batch_size = int(options.batch_size)
    progbar = progress(len(images), unit_name="image") if options.verbose else None
    for start in range(0, len(images), batch_size):
        batch_seed = tf.random.experimental.stateless_fold_in(
            base, start // batch_size, alg=RNG_ALG
        )
        out = run(
            tf.constant(images[start : start + batch_size], tf.float32),
            tf.constant(known[start : start + batch_size]),
            batch_seed,
            tuple(tf.constant(c[start : start + batch_size]) for c in conditions),
        )
        outputs.append(out.numpy())
        if progbar is not None:
            progbar.add(len(outputs[-1]))
    if not outputs:  # nothing to complete
        return np.asarray(images).round().astype(np.uint8)
    return np.concatenate(outputs).round().astype(np.uint8)


def sample(
    model: keras.Model,
    num_samples: int,
    seed: int = 0,
    *,
    batch_size: int = 100,
    temperature: float | None = None,
    method: str = "auto",
    verbose: bool = False,
    condition=None,
) -> np.ndarray:
    """Draws ``num_samples`` images from an autoregressive model.

    Args:
      model: a model built by :func:`pixel_models.build_model`.
      num_samples: number of images (> 0).
      seed: an int in ``[0, 2**62)``; the same seed and ``batch_size`` give
        the same images (each batch draws its own numbers).
      batch_size: images generated at once.
      temperature: sampling temperature of categorical and logistic mixture
        heads (None or 1.0: exact samples).
      method: ``"cached"`` (one position per step from cached feature maps),
        ``"reference"`` (the full network per step) or ``"auto"`` (cached
        when the model supports it, see :func:`supports_cached`).
      verbose: show a progress bar over the batches.
      condition: what a conditional model is conditioned on, and nothing for
        an unconditional one: int labels ``(num_samples,)`` for a
        class-conditional model, latent codes ``(num_samples, latent_dims)``
        for a latent-conditional one, a pair ``(labels, codes)`` for a model
        that takes both; broadcast to ``num_samples`` (one label or one code
        for all images).

    Returns:
      uint8 array ``(num_samples, H, W, C)`` with values in ``[0, levels)``.

    Example:

    >>> import pixel_models as pm
    >>> model = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                        recurrent_length=1, out_recurrent_length=0)
    >>> pm.sample(model, 3, seed=1).shape
    (3, 4, 4, 1)
    >>> digits = pm.build_model("gated_pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                         recurrent_length=1, num_classes=10)
    >>> pm.sample(digits, 2, seed=1, condition=[3, 7]).shape
    (2, 4, 4, 1)
    """
    _check_samples(model)
    num_samples = positive_int("num_samples", num_samples)
    batch_size = positive_int("batch_size", batch_size)
    shape = (num_samples, *image_shape(model))
    conditions = _conditions(model, condition, shape[0])
    blank = np.zeros(shape, np.float32)
    if _stages(model) is not None:  # generated in stages: complete a blank image
        options = dict(temperature=temperature, method=method, verbose=verbose)
        return complete(model, blank, False, seed, batch_size=batch_size, **options)
    options = _Options(int(batch_size), temperature, method, verbose)
    return _run_batches(
        model, blank, np.zeros(shape, bool), seed=seed, conditions=conditions, options=options
    )


def complete(
    model: keras.Model,
    images: np.ndarray,
    known: np.ndarray,
    seed: int = 0,
    *,
    batch_size: int = 100,
    temperature: float | None = None,
    method: str = "auto",
    verbose: bool = False,
    condition=None,
) -> np.ndarray:
    """Samples the unknown dimensions of ``images`` given the known ones.

    Dimensions are visited in raster order; a known dimension keeps its value
    and an unknown one is drawn from the model given everything before it.
    (Known pixels after an unknown one do not influence it: the models are
    causal.) A multi-scale model completes its small image first, then the
    other pixels given it (see ``_stages``).

    Args:
      model: a model built by :func:`pixel_models.build_model`.
      images: ``(N, H, W, C)`` integer images in the model's data form.
      known: boolean array broadcastable to ``images``; True where a value is
        given.
      seed: as in :func:`sample`: the same seed and ``batch_size`` give the
        same completions.
      batch_size: images completed at once.
      temperature: as in :func:`sample`.
      method, verbose: as in :func:`sample`.
      condition: as in :func:`sample`, one per image.

    Returns:
      uint8 array like ``images``.

    Example:

    Keep the top half of two images and sample the bottom half:

    >>> import pixel_models as pm
    >>> model = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                        recurrent_length=1, out_recurrent_length=0)
    >>> images = np.ones((2, 4, 4, 1), "uint8")
    >>> known = np.zeros(images.shape, bool)
    >>> known[:, :2] = True
    >>> completed = pm.complete(model, images, known, seed=0)
    >>> completed.shape, completed.dtype.name
    ((2, 4, 4, 1), 'uint8')
    >>> bool((completed[:, :2] == 1).all()), set(np.unique(completed[:, 2:])) <= {0, 1}
    (True, True)
    >>> bool((pm.complete(model, images, known, seed=0) == completed).all())  # same seed
    True
    """
    _check_samples(model)
    images = _checked_images(model, images)
    known = _known(known, images.shape)
    batch_size = positive_int("batch_size", batch_size)
    conditions = _conditions(model, condition, len(images))
    stages = _stages(model)
    if stages is not None:
        options = dict(batch_size=batch_size, temperature=temperature, method=method)
        return _complete_in_stages(stages, images, known, seed, verbose=verbose, **options)
    options = _Options(int(batch_size), temperature, method, verbose)
    return _run_batches(
        model, images.astype(np.float32), known, seed=seed, conditions=conditions, options=options
    )


# ---------------------------------------------------------------------------
# What depends on the kind of model, asked of the model's kind
# (pixel_models.kinds): whether it is sampled at all, how it is reconstructed
# from codes, and the stages it is drawn in.
# ---------------------------------------------------------------------------


def _checked_model(model) -> keras.Model:
    """``model``, or a TypeError when it is not a Keras model."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"model must be a keras.Model built by pixel_models.build_model, got {model!r}"
        )
    return model


def _checked_images(model: keras.Model, images) -> np.ndarray:
    """``images`` as an array, or a ValueError when their shape is not
    ``(N, H, W, C)`` of the model or their values not of its levels."""
    height, width, channels = image_shape(model)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (height, width, channels):
        raise ValueError(
            f"images must have shape (N, {height}, {width}, {channels}), got {images.shape}"
        )
    check_values(images, distribution_of(model).levels)
    return images


def _check_samples(model) -> None:
    """Raises TypeError when ``model`` is not a Keras model and ValueError
    when its kind draws no samples (see
    :meth:`pixel_models.kinds.ModelKind.refusal`)."""
    reason = kind_of(_checked_model(model)).refusal("sample")
    if reason is not None:
        raise ValueError(f"model {model.name!r} {reason}")


def reconstruct(
    model: keras.Model,
    images: np.ndarray,
    seed: int = 0,
    *,
    batch_size: int = 100,
    temperature: float | None = None,
    method: str = "auto",
    verbose: bool = False,
) -> np.ndarray:
    """Samples an autoencoder's decoder given the codes of ``images``.

    Each image is encoded (inference mode), and a new image is drawn from
    ``p(x | z)`` with the image's code ``z``, pixel by pixel as in
    :func:`sample` (cached when the decoder supports it). The result shows
    what the code keeps of the image: the decoder fills in the rest.

    Args:
      model: a :class:`~pixel_models.models.PixelAutoencoder`.
      images: ``(N, H, W, C)`` integer images in the model's data form.
      seed, batch_size, temperature, method, verbose: as in :func:`sample`.

    Returns:
      uint8 array like ``images`` (no images give no images).

    Example:

    >>> import numpy as np
    >>> import pixel_models as pm
    >>> model = pm.build_model("autoencoder", image_shape=(4, 4, 1), latent_dims=2,
    ...                        encoder_dims=2, hidden_dims=2, recurrent_length=1)
    >>> pm.reconstruct(model, np.ones((3, 4, 4, 1)), seed=0).shape
    (3, 4, 4, 1)
    """
    kind = kind_of(_checked_model(model))
    if not kind.reconstructs:
        raise ValueError(f"model {model.name!r} is not an autoencoder (it has no encode())")
    images = _checked_images(model, images)
    batch_size = positive_int("batch_size", batch_size)
    if len(images) == 0:  # nothing to reconstruct, as complete() of no images
        _check_seed(seed)  # the checks that drawing would make
        _distribution(model, temperature)
        _check_method(method)
        return images.round().astype(np.uint8)
    decoder, codes = kind.decoder_and_codes(model, images, batch_size=int(batch_size))
    return sample(
        decoder,
        len(images),
        seed,
        batch_size=batch_size,
        temperature=temperature,
        method=method,
        verbose=verbose,
        condition=codes,
    )


def _stages(model: keras.Model):
    """``(small_model, full_model, (sh, sw))`` of a model generated in two stages
    (see :meth:`pixel_models.kinds.ModelKind.stages`), else None.

    The small image is ``x[:, ::sh, ::sw]``; ``full_model`` is causal in the
    other pixels and sees all of the small image.
    """
    return kind_of(model).stages(model)


def _complete_in_stages(stages, images, known, seed, **options) -> np.ndarray:
    """Completes the small image (its known pixels kept), writes it into the
    grid, then completes the rest of the full image given it, with a seed of its own."""
    small_model, full_model, (sh, sw) = stages
    images, known = images.astype(np.float32), known.copy()
    small = complete(small_model, images[:, ::sh, ::sw], known[:, ::sh, ::sw], seed, **options)
    images[:, ::sh, ::sw] = small
    known[:, ::sh, ::sw] = True
    _check_seed(seed)
    # From every bit of the seed (seeds below 2**31 keep the draws they always gave).
    second = int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0] >> 1)
    return complete(full_model, images, known, second, **options)
