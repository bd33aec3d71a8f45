"""The learning checks of a model's own tests: a few hundred steps on 8x8
binary ``shapes`` (or 4-level ``colored_shapes``) lower the test NLL well
below the uniform baseline."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from pixel_models import data, training
from pixel_models.data import make_shapes, pipeline

BASELINE = 64 * math.log(2.0)  # nats per 8x8 binary image under the uniform model


def _before_and_after(build: Callable[[], keras.Model], make_data: Callable, steps: int):
    """Builds ``build()`` from seed 0, reads ``(train batches, test batches)``
    from ``make_data()``, and trains ``steps`` Adam steps (3e-3); returns the
    test metrics before and after, and the seconds since training began."""
    keras.utils.set_random_seed(0)
    trainer = training.Trainer(build(), training.make_optimizer("adam", 3e-3))
    train_batches, test_batches = make_data()
    before = trainer.evaluate(test_batches)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(train_batches))
    after = trainer.evaluate(test_batches)
    return before, after, time.perf_counter() - start


def train_on_shapes(
    build: Callable[[], keras.Model], steps: int, label: str, test_images: int = 512
) -> tuple[dict, dict]:
    """Builds ``build()`` from seed 0, trains it ``steps`` Adam steps (3e-3,
    batch 32) on 2048 training shapes, and returns the test metrics on
    ``test_images`` other shapes before and after, printing both."""
    train = make_shapes(2048, 8, seed=0).astype(np.float32)
    test = make_shapes(test_images, 8, seed=1).astype(np.float32)

    def make_data():
        return (
            iter(pipeline(tf.data.Dataset.from_tensor_slices(train), 32, training=True, seed=0)),
            pipeline(tf.data.Dataset.from_tensor_slices(test), 256, training=False),
        )

    before, after, seconds = _before_and_after(build, make_data, steps)
    print(
        f"{label} shapes 8x8: test NLL {before['nll']:.2f} -> {after['nll']:.2f} nats after "
        f"{steps} steps ({seconds:.1f} s); uniform baseline "
        f"{BASELINE:.2f} nats, {after['bits_per_dim']:.3f} bits/dim"
    )
    return before, after


def train_on_colored_shapes(build: Callable[[], keras.Model], steps: int, label: str) -> tuple:
    """Builds ``build()`` from seed 0, trains it ``steps`` Adam steps (3e-3,
    batch 32) on 8x8 ``colored_shapes`` of 4 levels, and returns the test
    bits/dim on 500 test images before and after (2 for the uniform model),
    printing both."""

    def make_data():
        load = dict(image_size=8, color_levels=4, seed=0)
        test = data.load("colored_shapes", "test", num_examples=500, **load)
        return (
            iter(pipeline(data.load("colored_shapes", "train", **load), 32, training=True)),
            pipeline(test, 250, training=False),
        )

    before, after, _ = _before_and_after(build, make_data, steps)
    before, after = before["bits_per_dim"], after["bits_per_dim"]
    print(f"{label} on colored_shapes: {before:.3f} -> {after:.3f} bits/dim (uniform 2)")
    return before, after
