"""The compiled sampling loops: the reference loop and the cached loop.

Both are one XLA-compiled ``tf.function`` with ``tf.while_loop``s, so no
Python code runs per pixel, and both draw each value with a stateless random
op keyed by ``(seed, position)``, so they give the same images. The loops of a
model are kept on the model itself (:func:`model_cache`).
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf
from keras import ops

from pixel_models.distributions import RNG_ALG, Distribution
from pixel_models.sampling.evaluate import evaluate, evaluate_row
from pixel_models.sampling.graph import image_shape
from pixel_models.sampling.plan import Plan

_CACHE_ATTR = "_pixel_models_sampling_loops"

# XLA's CPU backend copies a loop-carried buffer at every iteration when the
# loop body reads a slice of it and also updates it without a data
# dependency between the two (a window read for one layer, a write for
# another), unless copy insertion uses its region analysis, which proves the
# slice is read first. The cached loop is made of such reads and writes: with
# the analysis it does not copy its buffers, about 2x faster on a CPU. The
# flag is read when XLA first compiles; it is set only for the TensorFlow
# versions it was checked with (an unknown flag stops XLA) and only where
# ``XLA_FLAGS`` does not name it already.
REGION_ANALYSIS_FLAG = "--xla_cpu_copy_insertion_use_region_analysis"
_REGION_ANALYSIS_VERSIONS = ("2.21.",)


def prefer_in_place_buffers(environ=os.environ, version: str = tf.__version__) -> bool:
    """Adds the region analysis flag to ``XLA_FLAGS`` (see above); whether
    the flag is now set."""
    flags = environ.get("XLA_FLAGS", "")
    if REGION_ANALYSIS_FLAG in flags:
        return f"{REGION_ANALYSIS_FLAG}=false" not in flags
    if not version.startswith(_REGION_ANALYSIS_VERSIONS):
        return False
    environ["XLA_FLAGS"] = f"{flags} {REGION_ANALYSIS_FLAG}=true".strip()
    return True


IN_PLACE_BUFFERS = prefer_in_place_buffers()


def model_cache(model: keras.Model) -> dict:
    """Compiled loops of a model, kept on the model itself (a global table keyed
    by the model would be kept alive by the loops): freed with the model."""
    cache = model.__dict__.get(_CACHE_ATTR)
    if cache is None:
        cache = {}
        object.__setattr__(model, _CACHE_ATTR, cache)
    return cache


def plan_of(model: keras.Model) -> Plan:
    """The model's :class:`~.plan.Plan`, made once."""
    cache = model_cache(model)
    if "plan" not in cache:
        cache["plan"] = Plan(model)
    return cache["plan"]


def _key(distribution: Distribution) -> tuple:
    return distribution.kind, distribution.levels, getattr(distribution, "temperature", 1.0)


def _draw(distribution: Distribution, logits, pixel, known_here, seed, p, channels, draws):
    """Draws the channels ``draws`` of the pixel at position ``p`` in turn (each
    with the seed ``fold_in(seed, p * C + c)``), keeping the known ones."""
    for c in draws:
        seed_c = tf.random.experimental.stateless_fold_in(seed, p * channels + c, alg=RNG_ALG)
        drawn = tf.cast(distribution.sample_channel(logits, pixel, c, seed_c), pixel.dtype)
        value = tf.where(known_here[:, c], pixel[:, c], drawn)
        here = tf.equal(tf.range(channels), c)[None, :]  # c may be a tensor
        pixel = tf.where(here, value[:, None], pixel)
    return pixel


def reference_loop(model: keras.Model, distribution: Distribution):
    """One compiled loop per (model, distribution) that runs the full network
    at every step: ``run(images, known, seed, conditions) -> images``.

    A step is one dimension, or one pixel for a distribution that draws a
    pixel's channels together (:attr:`~pixel_models.distributions.Distribution.joint_channels`).
    """
    cache = model_cache(model)
    key = _key(distribution)
    if key in cache:
        return cache[key]
    height, width, channels = image_shape(model)
    joint = distribution.joint_channels
    steps = height * width * (1 if joint else channels)

    # Compiled with XLA like the cached loop, so that both draw the same numbers.
    @tf.function(jit_compile=True, reduce_retracing=True)
    def run(images, known, seed, conditions):
        def body(t, x):
            p, c = (t, 0) if joint else (t // channels, t % channels)
            i, j = p // width, p % width
            logits = model([x, *conditions] if conditions else x, training=False)
            pixel = x[:, i, j, :]
            draws = range(channels) if joint else [c]
            pixel = _draw(
                distribution, logits[:, i, j], pixel, known[:, i, j, :], seed, p, channels, draws
            )
            return t + 1, ops.slice_update(x, [0, i, j, 0], pixel[:, None, None, :])

        _, out = tf.while_loop(lambda t, _: t < steps, body, [tf.constant(0), images])
        return out

    cache[key] = run
    return run


def cached_loop(model: keras.Model, distribution: Distribution, collect_logits: bool):
    """The compiled cached sampling loop (or teacher-forced logits when collecting):
    ``run(images, known, seed, conditions) -> (images, logits)``.

    An outer loop over rows runs each row's row steps, then an inner loop over
    the row's positions runs the position steps, once per colour channel (or
    once for the whole pixel when the distribution draws a pixel's channels
    together), and once more to store the finished pixel's features. Only the
    first pass runs every position step; the later ones run the steps that
    depend on the pixel's value (:attr:`~.plan.Plan.pixel_steps`), which for
    a model that reads the image strictly before each position (PixelCNN++,
    mask A on one channel) is none: the last pass stores the pixel.
    """
    cache = model_cache(model)
    key = ("cached", collect_logits, *_key(distribution))
    if key in cache:
        return cache[key]
    plan = plan_of(model)
    if plan.reason:
        raise ValueError(f"model {model.name!r} has no cached sampler: {plan.reason}")
    height, width, channels = image_shape(model)
    logit_shape = list(distribution.logit_shape)
    joint = distribution.joint_channels
    passes = 1 if joint else channels

    @tf.function(jit_compile=True, reduce_retracing=True)
    def run(images, known, seed, conditions):
        batch = tf.shape(images)[0]
        constants = plan.constants(conditions, images)
        buffers = plan.init_buffers(batch)
        logits_out = tf.zeros([batch, height, width, *logit_shape])

        def row_body(i, x, buffers, logits_out):
            buffers, carried = evaluate_row(plan, i, buffers, constants)

            def body(j, x, buffers, logits_out):
                p = i * width + j
                pixel = x[:, i, j, :]
                known_here = known[:, i, j, :]
                values = None  # pass 0 runs every step, later passes what the pixel changes
                for c in range(passes + 1):
                    logits, buffers, values = evaluate(
                        plan, pixel, i, j, buffers, carried, constants, values
                    )
                    if c == passes:
                        break  # the last pass only stores the finished pixel's features
                    if collect_logits and joint:
                        logits_out = ops.slice_update(
                            logits_out, [0, i, j, 0], logits[:, None, None, :]
                        )
                    elif collect_logits:
                        logits_out = ops.slice_update(
                            logits_out,
                            [0, i, j, c] + [0] * (len(logit_shape) - 1),
                            logits[:, c][:, None, None, None],
                        )
                    draws = range(channels) if joint else [c]
                    pixel = _draw(distribution, logits, pixel, known_here, seed, p, channels, draws)
                x = ops.slice_update(x, [0, i, j, 0], pixel[:, None, None, :])
                return j + 1, x, buffers, logits_out

            _, x, buffers, logits_out = tf.while_loop(
                lambda j, *_: j < width, body, [tf.constant(0), x, buffers, logits_out]
            )
            return i + 1, x, buffers, logits_out

        _, x, _, logits_out = tf.while_loop(
            lambda i, *_: i < height,
            row_body,
            [tf.constant(0), images, buffers, logits_out],
        )
        return x, logits_out

    cache[key] = run
    return run
