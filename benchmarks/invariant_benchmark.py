"""Invariant classifiers against the plain CNN: test accuracy with equal budgets.

Trains ``invariant_cnn`` with ``group`` none (a plain CNN), C4 and D4 (about
the same number of parameters, see ``group_width``) for the same number of
steps on the same data, one after the other in one run, and reports for each
the parameter count, training images per second, and the test cross-entropy
and accuracy (inference mode). Prints the results and writes them as JSON.

    TFDS_DATA_DIR=../shared/tensorflow_datasets python benchmarks/invariant_benchmark.py \\
        --data=rotated_mnist --steps=1500 --output=benchmarks/results/rotated_mnist_invariant.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import publish, require_above, require_at_least, settings  # noqa: E402

import pixel_models  # noqa: E402
from pixel_models import data, training  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="rotated_mnist", choices=list(data.DATASETS))
    p.add_argument("--data_dir", default=None)
    p.add_argument("--groups", default="none,C4,D4", help="comma-separated groups to compare")
    p.add_argument("--base_width", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--test_examples", type=int, default=0, help="0: the whole test split")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--output", default="benchmarks/results/invariant_benchmark.json")
    args = p.parse_args(argv)
    args.groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    if not args.groups or any(g not in ("none", "C4", "D4") for g in args.groups):
        p.error("--groups must list some of none, C4, D4")
    if args.steps < 1 or args.batch_size < 1 or args.test_examples < 0:
        p.error("--steps and --batch_size must be >= 1, --test_examples >= 0")
    require_at_least(p, args, 1, ("base_width",))
    require_above(p, args, 0, ("learning_rate",))
    return args


def run_group(args, group: str, info, data_dir) -> dict:
    keras.utils.set_random_seed(args.seed)
    model = pixel_models.build_model(
        "invariant_cnn",
        image_shape=info.image_shape,
        num_classes=info.num_classes,
        group=group,
        base_width=args.base_width,
        levels=info.levels,
    )
    trainer = training.Trainer(model, training.make_optimizer("adam", args.learning_rate))
    load = dict(data_dir=data_dir, seed=args.seed, with_labels=True)
    train = data.load(args.data, "train", **load)
    test = data.load(args.data, "test", num_examples=args.test_examples or None, **load)
    batches = iter(data.pipeline(train, args.batch_size, training=True, seed=args.seed))
    trainer.train_step(next(batches))  # compile
    tic = time.perf_counter()
    for _ in range(args.steps - 1):
        trainer.train_step(next(batches))
    seconds = time.perf_counter() - tic
    result = trainer.evaluate(data.pipeline(test, 500, training=False))
    return {
        "group": group,
        "parameters": int(model.count_params()),
        "trainable_parameters": int(sum(int(tf.size(w)) for w in model.trainable_weights)),
        "steps": trainer.step,
        "train_seconds": round(seconds, 1),
        "train_images_per_second": round((args.steps - 1) * args.batch_size / seconds, 1),
        "test_cross_entropy": round(result["nll"], 4),
        "test_accuracy": round(result["accuracy"], 4),
        "test_error_percent": round(100.0 * (1.0 - result["accuracy"]), 2),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    data_dir = data.resolve_data_dir(args.data_dir)
    info = data.info(args.data)
    if info.num_classes is None:
        raise SystemExit(f"--data={args.data} has no labels")
    runs = [run_group(args, group, info, data_dir) for group in args.groups]
    for run in runs:
        print(
            f"{run['group']:>4}: {run['parameters']} parameters, "
            f"{run['train_images_per_second']} images/s, "
            f"test accuracy {run['test_accuracy']:.4f} ({run['test_error_percent']} % error)"
        )
    report = {
        "data": args.data,
        "config": settings(args, ("output", "data_dir")),
        "runs": runs,
    }
    return publish(report, args.output)


if __name__ == "__main__":
    main()
