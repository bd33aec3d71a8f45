"""PixelSNAIL against the zoo's Gated PixelCNN of about as many parameters, on binarized MNIST.

Builds a PixelSNAIL (``--hidden_dims``, ``--num_blocks``,
``--residual_blocks``, one attention head with ``--key_dims`` and
``--value_dims``) and a Gated PixelCNN of ``--gated_blocks`` blocks whose
``hidden_dims`` is chosen so that its parameter count is the nearest to
PixelSNAIL's, then measures in the same process and run:

- training images/s: one optimisation step of each (Adam 1e-3, the zoo's
  trainer) on the same batch of ``--batch_size`` images, the two taken in
  turn, round after round, so that a changing load on a shared machine
  falls on both alike; the median of ``--rounds`` rounds;
- cached sampling images/s: ``pixel_models.sample(method="cached")`` of
  ``--sample_images`` images, again in turns after one untimed call each
  (so compilation is not counted);
- test NLL at equal minutes: both trained on ``binarized_mnist`` for
  ``--minutes`` of training time each, always stepping the model with the
  least training time so far, then evaluated on the first
  ``--test_images`` test images (all 10000 by default).

    TFDS_DATA_DIR=../shared/tensorflow_datasets python benchmarks/pixel_snail_benchmark.py

Prints a table and writes JSON (``--output``; by default
``benchmarks/results/pixel_snail_vs_gated_binarized_mnist.json``).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import (  # noqa: E402
    machine,
    require_at_least,
    time_in_turns,
    train_in_turns,
    write_report,
)

import pixel_models  # noqa: E402
from pixel_models import data, training  # noqa: E402

IMAGE_SHAPE = (28, 28, 1)
LEARNING_RATE = 1e-3


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden_dims", type=int, default=32, help="features of PixelSNAIL")
    p.add_argument("--num_blocks", type=int, default=2, help="PixelSNAIL blocks")
    p.add_argument("--residual_blocks", type=int, default=2, help="residual blocks per block")
    p.add_argument("--key_dims", type=int, default=8, help="size of the attention's keys")
    p.add_argument("--value_dims", type=int, default=32, help="size of the attention's values")
    p.add_argument("--gated_blocks", type=int, default=7, help="Gated PixelCNN's blocks")
    p.add_argument("--batch_size", type=int, default=32, help="training batch")
    p.add_argument("--rounds", type=int, default=10, help="timed training steps of each model")
    p.add_argument("--sample_images", type=int, default=8, help="images per sampler call")
    p.add_argument("--sample_rounds", type=int, default=2, help="timed calls of each sampler")
    p.add_argument(
        "--minutes", type=float, default=5.0, help="training time of each model (0: no NLL)"
    )
    p.add_argument("--test_images", type=int, default=10000, help="test images evaluated")
    p.add_argument("--data_dir", default=None, help="tensorflow-datasets folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--output",
        default=os.path.join(
            os.path.dirname(os.path.abspath(__file__)),
            "results",
            "pixel_snail_vs_gated_binarized_mnist.json",
        ),
        help="JSON report",
    )
    args = p.parse_args(argv)
    require_at_least(p, args, 1, "hidden_dims num_blocks key_dims value_dims gated_blocks".split())
    require_at_least(
        p, args, 1, "batch_size rounds sample_images sample_rounds test_images".split()
    )
    if args.residual_blocks < 0 or args.minutes < 0:
        p.error("--residual_blocks and --minutes must not be negative")
    return args


def build_snail(args) -> keras.Model:
    keras.utils.set_random_seed(args.seed)
    return pixel_models.build_model(
        "pixel_snail",
        image_shape=IMAGE_SHAPE,
        levels=2,
        hidden_dims=args.hidden_dims,
        num_blocks=args.num_blocks,
        residual_blocks=args.residual_blocks,
        attention_heads=1,
        key_dims=args.key_dims,
        value_dims=args.value_dims,
    )


def build_gated(args, hidden_dims: int) -> keras.Model:
    keras.utils.set_random_seed(args.seed)
    return pixel_models.build_model(
        "gated_pixel_cnn",
        image_shape=IMAGE_SHAPE,
        levels=2,
        hidden_dims=hidden_dims,
        recurrent_length=args.gated_blocks,
        out_hidden_dims=32,
        out_recurrent_length=2,
    )


def matching_gated(args, parameters: int) -> tuple[keras.Model, int]:
    """The Gated PixelCNN whose parameter count is the nearest to ``parameters``
    (a bisection over its ``hidden_dims``, with which the count grows), and
    that ``hidden_dims``."""

    @functools.cache
    def count(hidden):
        return int(build_gated(args, hidden).count_params())

    low, high = 1, 2
    while count(high) < parameters:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if count(middle) < parameters else (low, middle)
    best = min((low, high), key=lambda h: abs(count(h) - parameters))
    return build_gated(args, best), best


def trainers_of(models: dict) -> dict:
    return {
        name: training.Trainer(model, training.make_optimizer("adam", LEARNING_RATE))
        for name, model in models.items()
    }


def measure_training(args, models: dict) -> dict:
    rng = np.random.default_rng(args.seed)
    images = rng.integers(0, 2, (args.batch_size, *IMAGE_SHAPE)).astype(np.uint8)
    trainers = trainers_of(models)
    for trainer in trainers.values():
        trainer.train_step(images)  # trace, not counted
    times = time_in_turns(
        {name: (lambda t=t: t.train_step(images)) for name, t in trainers.items()}, args.rounds
    )
    return {
        name: {
            "seconds_per_step": round(float(np.median(s)), 4),
            "images_per_second": round(args.batch_size / float(np.median(s)), 1),
            "rounds_seconds": [round(x, 4) for x in s],
        }
        for name, s in times.items()
    }


def measure_sampling(args, models: dict) -> dict:
    n = args.sample_images

    def sampler(model):
        return lambda: np.asarray(
            pixel_models.sample(model, n, seed=args.seed, batch_size=n, method="cached")
        )

    calls = {name: sampler(model) for name, model in models.items()}
    first = {}
    for name, fn in calls.items():
        tic = time.perf_counter()
        images = fn()
        first[name] = round(time.perf_counter() - tic, 2)
        if not set(np.unique(images)) <= {0, 1}:
            raise AssertionError(f"{name} drew values other than 0 and 1")
    times = time_in_turns(calls, args.sample_rounds)
    return {
        name: {
            "images": n,
            "seconds_per_call": round(float(np.median(s)), 3),
            "images_per_second": round(n / float(np.median(s)), 3),
            "first_call_seconds": first[name],
            "rounds_seconds": [round(x, 3) for x in s],
        }
        for name, s in times.items()
    }


def load_splits(args) -> tuple:
    """The train and test splits of binarized MNIST (``--test_images`` of it)."""
    train = data.load("binarized_mnist", "train", data_dir=args.data_dir, seed=args.seed)
    test = data.load(
        "binarized_mnist", "test", data_dir=args.data_dir, num_examples=args.test_images
    )
    return train, test


def measure_nll(args, models: dict, train, test) -> dict:
    """Test NLL after the same training time for each model."""
    batches = iter(data.pipeline(train.repeat(), args.batch_size, training=True, seed=args.seed))
    test_batches = data.pipeline(test, 100, training=False)
    trainers = trainers_of(models)
    first = next(batches)
    for trainer in trainers.values():
        trainer.train_step(first)  # trace, not counted (one step more)
    spent, steps, curve = train_in_turns(
        {name: t.train_step for name, t in trainers.items()}, batches, args.minutes * 60.0
    )
    result = {}
    for name, trainer in trainers.items():
        evaluation = trainer.evaluate(test_batches)
        result[name] = {
            "steps": steps[name] + 1,
            "train_seconds": round(spent[name], 1),
            "test_nll_nats": round(evaluation["nll"], 3),
            "test_bits_per_dim": round(evaluation["bits_per_dim"], 4),
            # Every 10th timed step: step (after the first, untimed one),
            # seconds of training, the batch's train NLL.
            "train_curve": curve[name][::10],
        }
    return result


def print_table(report: dict) -> None:
    names = list(report["parameters"])
    print(f"\nbinarized MNIST 28x28, {' vs '.join(names)}")
    print(f"{'':26}" + "".join(f"{n:>18}" for n in names))
    print(f"{'parameters':26}" + "".join(f"{report['parameters'][n]:>18}" for n in names))
    rows = [
        ("training images/s", report["training"], "images_per_second"),
        ("cached sampling images/s", report["sampling"], "images_per_second"),
    ]
    if "nll" in report:
        label = f"test NLL after {report['config']['minutes']} min"
        rows.append((label, report["nll"], "test_nll_nats"))
        rows.append(("  training steps", report["nll"], "steps"))
    for label, part, key in rows:
        print(f"{label:26}" + "".join(f"{part[n][key]:>18}" for n in names))


def main(argv=None) -> dict:
    args = parse_args(argv)
    splits = None
    if args.minutes > 0:
        # Opened before any work, so that missing data fails at once, in one line.
        try:
            splits = load_splits(args)
        except data.DataError as err:
            raise SystemExit(str(err)) from None
    start = time.perf_counter()
    snail = build_snail(args)
    gated, gated_hidden = matching_gated(args, int(snail.count_params()))
    models = {"pixel_snail": snail, "gated_pixel_cnn": gated}
    report = {
        "image_shape": list(IMAGE_SHAPE),
        "config": {k: v for k, v in vars(args).items() if k != "output"},
        "gated_hidden_dims": gated_hidden,
        "parameters": {name: int(m.count_params()) for name, m in models.items()},
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print("training, in turns ...", flush=True)
    report["training"] = measure_training(args, models)
    print("cached sampling, in turns ...", flush=True)
    report["sampling"] = measure_sampling(args, models)
    if args.minutes > 0:
        print(f"binarized_mnist, {args.minutes} min of training each ...", flush=True)
        report["nll"] = measure_nll(args, models, *splits)
    report["machine"] = {**machine(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    print_table(report)
    write_report(report, args.output)
    return report


if __name__ == "__main__":
    tf.get_logger().setLevel("ERROR")
    main()
