"""PixelRNN training speed: the layers against image size, the models against PixelCNN.

1. Times one compiled forward and backward pass (gradients of a scalar loss
   with respect to the input and every weight) of a Row LSTM and of a Diagonal
   BiLSTM layer on square images of several sizes, and reports seconds per
   pass, microseconds per pixel and the growth against the smallest size.
2. Times training steps (the package's Trainer, Adam) of PixelCNN, PixelRNN
   Row LSTM and PixelRNN Diagonal BiLSTM with the same flags (carpedm20's
   defaults: 16 hidden units, 7 layers) on 28x28 binary images, taking the
   models in turn round after round so that they share the machine's load
   alike, and reports images per second and the ratio to PixelCNN.

Prints the results and writes them as JSON. Example (a few minutes on 2 CPU
cores):

    python benchmarks/recurrent_benchmark.py --sizes 8 16 32 64 \\
        --output=benchmarks/results/recurrent_scaling.json

Both layers loop sequentially inside the compiled graph: the Row LSTM over the
``H`` rows, the Diagonal BiLSTM over the ``H + W - 1`` diagonals; each step
works on a whole row or diagonal at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import publish, settings  # noqa: E402
from speed_benchmark import build_trainers, time_training  # noqa: E402

from pixel_models.layers.recurrent import DiagonalBiLSTM, RowLSTM  # noqa: E402

LAYERS = {"row_lstm": RowLSTM, "diagonal_bilstm": DiagonalBiLSTM}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--units", type=int, default=16, help="hidden units (and input features)")
    p.add_argument("--repeats", type=int, default=5, help="timed passes per measurement")
    p.add_argument("--model_batch_size", type=int, default=100, help="batch of the model steps")
    p.add_argument("--rounds", type=int, default=5, help="timed steps per model (0: skip)")
    p.add_argument("--output", default="benchmarks/results/recurrent_scaling.json")
    args = p.parse_args(argv)
    if min(args.sizes) < 2 or min(args.batch_size, args.units, args.repeats) < 1:
        p.error("--sizes must be >= 2, --batch_size, --units and --repeats >= 1")
    if args.model_batch_size < 1 or args.rounds < 0:
        p.error("--model_batch_size must be >= 1 and --rounds >= 0")
    return args


def time_pass(layer: keras.layers.Layer, size: int, batch: int, units: int, repeats: int) -> float:
    """Seconds of one compiled forward + backward pass (best of ``repeats``)."""
    x = tf.constant(np.random.default_rng(0).normal(size=(batch, size, size, units)), tf.float32)
    layer(x)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))
        return tape.gradient(loss, [x, *layer.trainable_variables])

    step(x)  # trace and compile
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), step(x))
        best = min(best, time.perf_counter() - tic)
    return best


MODEL_VARIANTS = [
    ("pixel_cnn", "pixel_cnn", {}),
    ("row_lstm", "pixel_rnn", {"rnn_type": "row_lstm"}),
    ("diagonal_bilstm", "pixel_rnn", {"rnn_type": "diagonal_bilstm"}),
]


def time_models(batch: int, rounds: int) -> list[dict]:
    """Median seconds per training step of each model on 28x28 binary images,
    timed in turns (see ``speed_benchmark.time_training``)."""
    trainers = build_trainers(MODEL_VARIANTS, (28, 28, 1), 2)
    rows = time_training(MODEL_VARIANTS, trainers, (28, 28, 1), 2, batch, rounds)
    for row in rows:  # the keys of the earlier reports
        del row["builder"], row["options"]
    return rows


def main(argv=None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(0)
    rows = []
    for name, cls in LAYERS.items():
        base = None
        for size in sorted(args.sizes):
            seconds = time_pass(cls(args.units), size, args.batch_size, args.units, args.repeats)
            base = base or seconds
            row = {
                "layer": name,
                "size": size,
                "seconds_per_pass": round(seconds, 5),
                "microseconds_per_pixel": round(1e6 * seconds / (args.batch_size * size**2), 3),
                "time_vs_smallest": round(seconds / base, 2),
                "pixels_vs_smallest": (size / min(args.sizes)) ** 2,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    models = []
    if args.rounds:
        models = time_models(args.model_batch_size, args.rounds)
        for row in models:
            print(json.dumps(row), flush=True)
    report = {
        "config": settings(args),
        "results": rows,
        "models": models,
    }
    return publish(report, args.output, show=False)


if __name__ == "__main__":
    main()
