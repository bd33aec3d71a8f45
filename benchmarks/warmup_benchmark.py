"""A model's first training steps with and without a learning-rate warmup.

Two copies of a flagfile's network, built from the same seed, take the same
training batches in turn: one at the flagfile's constant learning rate, one
rising to it over ``--warmup_steps`` steps (``main.py --warmup_steps``). The
training NLL of every step is printed and written as JSON, with the worst
step and the mean of the last ``--tail`` steps of each. The default is the
PixelSNAIL of ``configs/binarized_mnist_pixel_snail.cfg``, whose first Adam
steps at 1e-3 overshoot:

    TFDS_DATA_DIR=../shared/tensorflow_datasets python benchmarks/warmup_benchmark.py

Nothing is evaluated on the test split: this is about the first steps only.
"""

from __future__ import annotations

import argparse
import sys

import keras
import numpy as np
from common import publish, require_at_least, settings
from reproduce import ReproduceError, missing_data, parse_flagfile

from pixel_models import data, experiment, training
from pixel_models.config import model_config
from pixel_models.models import MODELS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flagfile", default="configs/binarized_mnist_pixel_snail.cfg")
    p.add_argument("--batch_size", type=int, default=32, help="training batch of both runs")
    p.add_argument("--steps", type=int, default=30, help="training steps of each run")
    p.add_argument("--warmup_steps", type=int, default=15, help="warmup of the second run")
    p.add_argument("--tail", type=int, default=10, help="last steps averaged in the summary")
    p.add_argument("--output", default="benchmarks/results/warmup_pixel_snail.json")
    args = p.parse_args(argv)
    require_at_least(p, args, 1, ("batch_size", "steps", "warmup_steps", "tail"))
    if args.tail > args.steps:
        p.error(f"--tail must be at most --steps ({args.steps}), got {args.tail}")
    return args


def first_steps(config, args) -> dict:
    """The training NLL of each step of both runs, stepped in turn."""
    info = experiment.run_info(config)
    train = experiment.run_dataset(config, "train")
    batches = iter(data.pipeline(train, args.batch_size, training=True, seed=config.random_seed))
    trainers = {}
    for name, warmup in (("constant", 0), ("warmup", args.warmup_steps)):
        keras.utils.set_random_seed(config.random_seed)
        model = MODELS[config.model](**model_config(config, info))
        optimizer = training.make_optimizer(
            config.optimizer, config.learning_rate, warmup_steps=warmup
        )
        trainers[name] = training.Trainer(model, optimizer, grad_clip=config.grad_clip)
    curves = {name: [] for name in trainers}
    for step in range(1, args.steps + 1):
        batch = next(batches)
        for name, trainer in trainers.items():
            curves[name].append(round(float(trainer.train_step(batch)), 2))
        print(f"step {step}: " + ", ".join(f"{n} {c[-1]:.2f}" for n, c in curves.items()))
    return curves


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        config = parse_flagfile(args.flagfile)
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    problem = missing_data(config)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    curves = first_steps(config, args)
    summary = {
        name: {
            "worst_train_nll": max(curve),
            "worst_step": int(np.argmax(curve)) + 1,
            f"mean_train_nll_last_{args.tail}": round(float(np.mean(curve[-args.tail :])), 2),
        }
        for name, curve in curves.items()
    }
    report = {
        "benchmark": "warmup",
        "flagfile": args.flagfile,
        "model": config.model,
        "learning_rate": config.learning_rate,
        "settings": settings(args),
        "summary": summary,
        "train_nll_per_step": curves,
    }
    publish(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
