"""Compiled autoregressive sampling for every model of the zoo.

Pixels are drawn one dimension at a time in raster order (row by row, left to
right, and R, G, B within a pixel). The whole loop is one ``tf.function`` with
a ``tf.while_loop`` over positions, so no Python code runs per pixel. Each
step runs the full network on the partial image and draws the next value from
the model's head with a stateless random op keyed by ``(seed, position)``:
the same seed gives the same images.

Models whose layers can be evaluated one position at a time (masked
convolutions, pointwise layers) also get a *cached* sampler (Ramachandran et
al. 2017, Fast Generation for Convolutional Autoregressive Models): every
intermediate feature map is kept in a buffer, and each step computes only the
outputs at the current position from the buffered windows of the layer
below, so a step costs about 1/(H*W) of a full forward pass. It uses the same
random draws as the reference loop, so both give the same images up to
float32 rounding of the logits, and it is compiled with XLA so that the
buffer updates happen in place.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from pixel_models.distributions import (
    RNG_ALG,
    Categorical,
    Distribution,
    PixelHead,
    distribution_of,
)

_CACHE_ATTR = "_pixel_models_sampling_loops"


def _image_shape(model: keras.Model) -> tuple[int, int, int]:
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3 or any(v is None for v in shape):
        raise ValueError(f"sampling needs a model with a fixed (H, W, C) input, got {shape}")
    return tuple(int(v) for v in shape)


def _model_cache(model: keras.Model) -> dict:
    """Compiled loops of a model, kept on the model itself (a global table keyed
    by the model would be kept alive by the loops): freed with the model."""
    cache = model.__dict__.get(_CACHE_ATTR)
    if cache is None:
        cache = {}
        object.__setattr__(model, _CACHE_ATTR, cache)
    return cache


def _loop(model: keras.Model, distribution: Distribution):
    """One compiled sampling loop per (model, distribution)."""
    cache = _model_cache(model)
    key = (distribution.kind, distribution.levels, getattr(distribution, "temperature", 1.0))
    if key in cache:
        return cache[key]
    height, width, channels = _image_shape(model)
    steps = height * width * channels

    # Compiled with XLA like the cached loop, so that both draw the same numbers.
    @tf.function(jit_compile=True, reduce_retracing=True)
    def run(images, known, seed):
        batch = tf.shape(images)[0]
        rows = tf.range(batch)

        def body(t, x):
            pos, c = t // channels, t % channels
            i, j = pos // width, pos % width
            logits = model(x, training=False)
            values = distribution.sample(
                logits[:, i, j, c], tf.random.experimental.stateless_fold_in(seed, t, alg=RNG_ALG)
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


class _Plan:
    """How to evaluate a functional model at one position at a time.

    Walks the model's graph from input to head. Supported operations are the
    input, pointwise layers (``Rescaling``, ``Add``, ``Activation``), layers
    with ``causal_window()`` / ``call_window()`` (masked convolutions) and the
    ``PixelHead``. ``reason`` says why a model is not supported.
    """

    POINTWISE = ("Rescaling", "Add", "Activation", "ReLU")

    def __init__(self, model: keras.Model):
        self.steps: list[tuple[str, object, list[int], int]] = []
        self.pads: dict[int, list[int]] = {}  # tensor id -> [top, left, right, features]
        self.reason = ""
        nodes_by_depth = getattr(model, "_nodes_by_depth", None)
        if nodes_by_depth is None or len(model.inputs) != 1:
            self.reason = "not a single-input functional model"
            return
        self.input_id = id(model.inputs[0])
        self.head_input = None
        for depth in sorted(nodes_by_depth, reverse=True):
            for node in nodes_by_depth[depth]:
                layer = node.operation
                kind = type(layer).__name__
                ins = [id(t) for t in node.input_tensors]
                out = id(node.output_tensors[0])
                if isinstance(layer, keras.layers.InputLayer):
                    continue
                if isinstance(layer, PixelHead):
                    self.head_input = ins[0]
                    self.head = layer
                elif hasattr(layer, "causal_window") and len(ins) == 1:
                    top, left, right = layer.causal_window()
                    shape = node.input_tensors[0].shape
                    pad = self.pads.setdefault(ins[0], [0, 0, 0, int(shape[-1])])
                    pad[:3] = max(pad[0], top), max(pad[1], left), max(pad[2], right)
                    self.steps.append(("window", layer, ins, out))
                elif kind in self.POINTWISE:
                    self.steps.append(("pointwise", layer, ins, out))
                else:
                    self.reason = f"layer {layer.name!r} ({kind}) has no position-wise form"
                    return
        if self.head_input is None:
            self.reason = "no PixelHead"

    def init_buffers(self, batch, height, width):
        return {
            key: tf.zeros([batch, height + top, width + left + right, features])
            for key, (top, left, right, features) in self.pads.items()
        }

    def evaluate(self, pixel, i, j, buffers):
        """Head logits at ``(i, j)`` (``(B, C)`` or ``(B, C, L)``); updates buffers."""
        values = {self.input_id: pixel}
        buffers = dict(buffers)

        def store(key, value):
            values[key] = value
            if key in buffers:
                top, left = self.pads[key][:2]
                buffers[key] = ops.slice_update(
                    buffers[key], [0, i + top, j + left, 0], value[:, None, None, :]
                )

        store(self.input_id, pixel)
        for kind, layer, ins, out in self.steps:
            if kind == "pointwise":
                args = [values[k] for k in ins]
                store(out, layer(args if len(args) > 1 else args[0]))
                continue
            top, left, right = layer.causal_window()
            buf_top, buf_left = self.pads[ins[0]][:2]
            buffer = buffers[ins[0]]
            window = ops.slice(
                buffer,
                [0, i + buf_top - top, j + buf_left - left, 0],
                [tf.shape(buffer)[0], top + 1, left + 1 + right, buffer.shape[-1]],
            )
            store(out, layer.call_window(window))
        logits = tf.cast(values[self.head_input], tf.float32)
        if self.head.kind == "categorical":
            logits = tf.reshape(logits, [-1, self.head.channels, self.head.levels])
        return logits, buffers


def _plan(model: keras.Model) -> _Plan:
    cache = _model_cache(model)
    if "plan" not in cache:
        cache["plan"] = _Plan(model)
    return cache["plan"]


def supports_cached(model: keras.Model) -> bool:
    """Whether :func:`sample` can use the cached sampler for ``model``."""
    return not _plan(model).reason


def _cached_loop(model: keras.Model, distribution: Distribution, collect_logits: bool):
    """The compiled cached sampling loop (or teacher-forced logits when collecting)."""
    cache = _model_cache(model)
    key = (
        "cached",
        collect_logits,
        distribution.kind,
        distribution.levels,
        getattr(distribution, "temperature", 1.0),
    )
    if key in cache:
        return cache[key]
    plan = _plan(model)
    if plan.reason:
        raise ValueError(f"model {model.name!r} has no cached sampler: {plan.reason}")
    height, width, channels = _image_shape(model)
    logit_tail = [] if distribution.kind == "bernoulli" else [distribution.levels]

    @tf.function(jit_compile=True, reduce_retracing=True)
    def run(images, known, seed):
        batch = tf.shape(images)[0]
        buffers = plan.init_buffers(batch, height, width)
        logits_out = tf.zeros([batch, height, width, channels, *logit_tail])

        def body(p, x, buffers, logits_out):
            i, j = p // width, p % width
            pixel = x[:, i, j, :]
            known_here = known[:, i, j, :]
            for c in range(channels + 1):
                logits, buffers = plan.evaluate(pixel, i, j, buffers)
                if c == channels:
                    break  # the last pass only stores the finished pixel's features
                if collect_logits:
                    logits_out = ops.slice_update(
                        logits_out,
                        [0, i, j, c] + [0] * len(logit_tail),
                        logits[:, c][:, None, None, None],
                    )
                seed_t = tf.random.experimental.stateless_fold_in(
                    seed, p * channels + c, alg=RNG_ALG
                )
                drawn = tf.cast(distribution.sample(logits[:, c], seed_t), x.dtype)
                value = tf.where(known_here[:, c], pixel[:, c], drawn)
                pixel = tf.concat([pixel[:, :c], value[:, None], pixel[:, c + 1 :]], axis=1)
            x = ops.slice_update(x, [0, i, j, 0], pixel[:, None, None, :])
            return p + 1, x, buffers, logits_out

        _, x, _, logits_out = tf.while_loop(
            lambda p, *_: p < height * width,
            body,
            [tf.constant(0), images, buffers, logits_out],
        )
        return x, logits_out

    cache[key] = run
    return run


def cached_logits(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The model's logits computed position by position with the cached path.

    Feeds ``images`` (teacher forcing) through the cached sampler's loop and
    returns the logits it computes at every step; for a correct cache they
    equal ``model(images)`` up to float32 rounding.
    """
    images = np.asarray(images, np.float32)
    run = _cached_loop(model, distribution_of(model), collect_logits=True)
    _, logits = run(tf.constant(images), tf.ones(images.shape, tf.bool), _check_seed(0))
    return logits.numpy()


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


METHODS = ("auto", "cached", "reference")


def _run_batches(model, images, known, seed, batch_size, temperature, method, verbose):
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    distribution = _distribution(model, temperature)
    if method == "cached" or (method == "auto" and supports_cached(model)):
        cached = _cached_loop(model, distribution, collect_logits=False)

        def run(x, k, s):
            return cached(x, k, s)[0]
    else:
        run = _loop(model, distribution)
    base = _check_seed(seed)
    outputs = []
    progbar = keras.utils.Progbar(len(images), unit_name="image") if verbose else None
    for start in range(0, len(images), batch_size):
        batch_seed = tf.random.experimental.stateless_fold_in(
            base, start // batch_size, alg=RNG_ALG
        )
        out = run(
            tf.constant(images[start : start + batch_size], tf.float32),
            tf.constant(known[start : start + batch_size]),
            batch_seed,
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
) -> np.ndarray:
    """Draws ``num_samples`` images from an autoregressive model.

    Args:
      model: a model built by :func:`pixel_models.build_model`.
      num_samples: number of images (> 0).
      seed: the same seed gives the same images.
      batch_size: images generated at once.
      temperature: divides categorical logits (None or 1.0: exact samples).
      method: ``"cached"`` (one position per step from cached feature maps),
        ``"reference"`` (the full network per step) or ``"auto"`` (cached
        when the model supports it, see :func:`supports_cached`).
      verbose: show a progress bar over the batches.

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
    return _run_batches(
        model, blank, np.zeros(shape, bool), seed, int(batch_size), temperature, method, verbose
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
      method, verbose: as in :func:`sample`.

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
    return _run_batches(
        model, images.astype(np.float32), known, seed, int(batch_size), temperature, method, verbose
    )
