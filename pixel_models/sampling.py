"""Compiled autoregressive sampling for every model of the zoo.

Pixels are drawn one dimension at a time in raster order (row by row, left to
right, and R, G, B within a pixel). The whole loop is one ``tf.function`` with
a ``tf.while_loop`` over positions, so no Python code runs per pixel. Each
step runs the full network on the partial image and draws the next value from
the model's head with a stateless random op keyed by ``(seed, position)``:
the same seed gives the same images.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pixel_models.distributions import Categorical, Distribution, distribution_of

_CACHE_ATTR = "_pixel_models_sampling_loops"


def _image_shape(model: keras.Model) -> tuple[int, int, int]:
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3 or any(v is None for v in shape):
        raise ValueError(f"sampling needs a model with a fixed (H, W, C) input, got {shape}")
    return tuple(int(v) for v in shape)


def _loop(model: keras.Model, distribution: Distribution):
    """One compiled sampling loop per (model, distribution)."""
    # Kept on the model itself (not in a global table keyed by the model, which
    # the compiled function would keep alive): freed together with the model.
    cache = model.__dict__.get(_CACHE_ATTR)
    if cache is None:
        cache = {}
        object.__setattr__(model, _CACHE_ATTR, cache)
    key = (distribution.kind, distribution.levels, getattr(distribution, "temperature", 1.0))
    if key in cache:
        return cache[key]
    height, width, channels = _image_shape(model)
    steps = height * width * channels

    @tf.function(reduce_retracing=True)
    def run(images, known, seed):
        batch = tf.shape(images)[0]
        rows = tf.range(batch)

        def body(t, x):
            pos, c = t // channels, t % channels
            i, j = pos // width, pos % width
            logits = model(x, training=False)
            values = distribution.sample(
                logits[:, i, j, c], tf.random.experimental.stateless_fold_in(seed, t)
            )
            index = tf.stack(
                [rows, tf.fill([batch], i), tf.fill([batch], j), tf.fill([batch], c)], axis=1
            )
            keep = tf.gather_nd(known, index)
            new = tf.where(keep, tf.gather_nd(x, index), tf.cast(values, x.dtype))
            return t + 1, tf.tensor_scatter_nd_update(x, index, new)

        _, out = tf.while_loop(lambda t, _: t < steps, body, [tf.constant(0), images])
        return out

    cache[key] = run
    return run


def _check_seed(seed: int) -> tf.Tensor:
    if not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return tf.constant([int(seed) % (2**31), 0], tf.int32)


def _distribution(model: keras.Model, temperature: float | None) -> Distribution:
    distribution = distribution_of(model)
    if temperature is None or temperature == 1.0:
        return distribution
    if not isinstance(distribution, Categorical):
        raise ValueError("temperature applies to categorical heads only")
    return Categorical(distribution.channels, distribution.levels, temperature)


def _run_batches(model, images, known, seed, batch_size, temperature):
    run = _loop(model, _distribution(model, temperature))
    base = _check_seed(seed)
    outputs = []
    for start in range(0, len(images), batch_size):
        batch_seed = tf.random.experimental.stateless_fold_in(base, start // batch_size)
        out = run(
            tf.constant(images[start : start + batch_size], tf.float32),
            tf.constant(known[start : start + batch_size]),
            batch_seed,
        )
        outputs.append(out.numpy())
    return np.concatenate(outputs).round().astype(np.uint8)


def sample(
    model: keras.Model,
    num_samples: int,
    seed: int = 0,
    *,
    batch_size: int = 100,
    temperature: float | None = None,
) -> np.ndarray:
    """Draws ``num_samples`` images from an autoregressive model.

    Args:
      model: a model built by :func:`pixel_models.build_model`.
      num_samples: number of images (> 0).
      seed: the same seed gives the same images.
      batch_size: images generated at once.
      temperature: divides categorical logits (None or 1.0: exact samples).

    Returns:
      uint8 array ``(num_samples, H, W, C)`` with values in ``[0, levels)``.

    Example:

    >>> import pixel_models as pm
    >>> model = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                        recurrent_length=1, out_recurrent_length=0)
    >>> pm.sample(model, 3, seed=1).shape
    (3, 4, 4, 1)
    """
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size}")
    shape = (int(num_samples), *_image_shape(model))
    blank = np.zeros(shape, np.float32)
    return _run_batches(model, blank, np.zeros(shape, bool), seed, int(batch_size), temperature)


def complete(
    model: keras.Model,
    images: np.ndarray,
    known: np.ndarray,
    seed: int = 0,
    *,
    batch_size: int = 100,
    temperature: float | None = None,
) -> np.ndarray:
    """Samples the unknown dimensions of ``images`` given the known ones.

    Dimensions are visited in raster order; a known dimension keeps its value
    and an unknown one is drawn from the model given everything before it.
    (Known pixels after an unknown one do not influence it: the models are
    causal.)

    Args:
      model: a model built by :func:`pixel_models.build_model`.
      images: ``(N, H, W, C)`` integer images in the model's data form.
      known: boolean array broadcastable to ``images``; True where a value is
        given.
      seed: the same seed gives the same completions.
      batch_size: images completed at once.
      temperature: as in :func:`sample`.

    Returns:
      uint8 array like ``images``.
    """
    height, width, channels = _image_shape(model)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (height, width, channels):
        raise ValueError(
            f"images must have shape (N, {height}, {width}, {channels}), got {images.shape}"
        )
    levels = distribution_of(model).levels
    if images.size and (images.min() < 0 or images.max() >= levels):
        raise ValueError(f"image values must lie in [0, {levels - 1}]")
    known = np.broadcast_to(np.asarray(known, bool), images.shape)
    return _run_batches(model, images.astype(np.float32), known, seed, int(batch_size), temperature)
