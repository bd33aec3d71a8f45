"""Training and sampling benchmark: speed and test NLL of one model on one dataset.

Trains a model for a number of steps or minutes with the package's trainer,
then measures on the same machine, in the same run:

- training images per second (steady state, after the first compiled step),
- the test NLL in nats per image and in bits per dimension,
- sampling images per second with the compiled sampler.

Prints the results and writes them as JSON. Example (a minute on a CPU):

    python benchmarks/train_benchmark.py --data=shapes --image_size=16 --minutes=1

The binarized MNIST number of the README:

    TFDS_DATA_DIR=../shared/tensorflow_datasets python benchmarks/train_benchmark.py \
        --data=binarized_mnist --minutes=45 --optimizer=adam --output=benchmarks/results/bmnist.json
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import publish  # noqa: E402

import pixel_models  # noqa: E402
from pixel_models import data, sampling, training  # noqa: E402


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the model, the data and the optimizer (shared by the benchmarks)."""
    p.add_argument("--model", default="pixel_cnn", choices=sorted(pixel_models.MODELS))
    p.add_argument("--data", default="shapes", choices=list(data.DATASETS))
    p.add_argument("--data_dir", default=None)
    p.add_argument(
        "--image_size", type=int, default=None, help="side of procedural data (default 28)"
    )
    p.add_argument("--batch_size", type=int, default=100)
    p.add_argument("--hidden_dims", type=int, default=16)
    p.add_argument("--recurrent_length", type=int, default=7)
    p.add_argument("--out_hidden_dims", type=int, default=32)
    p.add_argument("--out_recurrent_length", type=int, default=2)
    p.add_argument("--use_residual", action="store_true")
    p.add_argument("--rnn_type", default="diagonal_bilstm", help="pixel_rnn: recurrent layer")
    p.add_argument(
        "--color_dependence", default="dependent", help="pixel_rcnn: dependent or independent"
    )
    p.add_argument("--color_levels", type=int, default=256, help="values per channel (coloured)")
    p.add_argument("--optimizer", default="rmsprop", choices=list(training.OPTIMIZERS))
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--grad_clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=123)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(p)
    p.add_argument("--steps", type=int, default=0, help="training steps (0: use --minutes)")
    p.add_argument("--minutes", type=float, default=1.0, help="training time budget")
    p.add_argument("--test_step", type=int, default=1000)
    p.add_argument("--num_samples", type=int, default=100, help="images for the sampling speed")
    p.add_argument("--checkpoint_dir", default=None, help="keep checkpoints here (resumable)")
    p.add_argument("--output", default="benchmarks/results/train_benchmark.json")
    args = p.parse_args(argv)
    if args.steps < 0 or args.minutes <= 0 or args.batch_size < 1 or args.num_samples < 1:
        p.error("--steps must be >= 0, --minutes > 0, --batch_size and --num_samples >= 1")
    if args.test_step < 1:
        p.error(f"--test_step must be an integer >= 1, got {args.test_step}")
    return args


def build_model(args: argparse.Namespace, info) -> keras.Model:
    """The model of ``args`` for the data of ``info``: every option named like one
    of the builder's parameters configures it."""
    parameters = inspect.signature(pixel_models.MODELS[args.model]).parameters
    options = {k: v for k, v in vars(args).items() if k in parameters}
    return pixel_models.build_model(
        args.model, image_shape=info.image_shape, levels=info.levels, **options
    )


def train_images_per_second(
    trainer, iterator, batch_size: int, steps: int, min_seconds: float = 0.0
) -> float:
    """Training speed over at least ``steps`` steps and ``min_seconds`` seconds
    (compile first with one untimed step)."""
    done, tic = 0, time.perf_counter()
    while done < steps or time.perf_counter() - tic < min_seconds:
        trainer.train_step(next(iterator))
        done += 1
    return done * batch_size / (time.perf_counter() - tic)


def main(argv=None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    data_dir = data.resolve_data_dir(args.data_dir)
    sizes = dict(image_size=args.image_size, color_levels=args.color_levels)
    info = data.info(args.data, **sizes)
    train_ds = data.load(args.data, "train", data_dir=data_dir, seed=args.seed, **sizes)
    test_ds = data.load(args.data, "test", data_dir=data_dir, seed=args.seed, **sizes)
    model = build_model(args, info)
    parameters = inspect.signature(pixel_models.MODELS[args.model]).parameters
    optimizer = training.make_optimizer(args.optimizer, args.learning_rate)
    trainer = training.Trainer(model, optimizer, grad_clip=args.grad_clip)
    train_batches = data.pipeline(train_ds, args.batch_size, training=True, seed=args.seed)
    test_batches = data.pipeline(test_ds, args.batch_size, training=False)

    # Speed: compile with one step, then time a fixed number of steps.
    iterator = iter(train_batches)
    trainer.train_step(next(iterator))
    train_ips = train_images_per_second(trainer, iterator, args.batch_size, steps=20)

    budget = args.steps or 10**9
    config = training.TrainConfig(
        max_steps=budget,
        test_step=args.test_step,
        save_step=max(args.test_step, 1000),
        checkpoint_dir=args.checkpoint_dir,
        num_samples=0,
        seed=args.seed,
        verbose=False,
        max_seconds=None if args.steps else args.minutes * 60.0,
    )
    tic = time.perf_counter()
    training.fit(trainer, train_batches, None, config)
    train_seconds = time.perf_counter() - tic
    result = trainer.evaluate(test_batches)

    # Compile for the timed batch size first: the timing is of sampling alone.
    sampling.sample(model, args.num_samples, seed=args.seed, batch_size=args.num_samples)
    tic = time.perf_counter()
    sampling.sample(model, args.num_samples, seed=args.seed, batch_size=args.num_samples)
    sample_ips = args.num_samples / (time.perf_counter() - tic)

    report = {
        "model": args.model,
        "data": args.data,
        "image_shape": list(info.image_shape),
        "config": {
            k: v
            for k, v in vars(args).items()
            if k not in ("output", "data_dir")
            and (k not in ("rnn_type", "color_dependence") or k in parameters)
        },
        "parameters": int(model.count_params()),
        "steps": trainer.step,
        "train_seconds": round(train_seconds, 1),
        "train_images_per_second": round(train_ips, 1),
        "test_nll_nats": round(result["nll"], 3),
        "test_bits_per_dim": round(result["bits_per_dim"], 4),
        "uniform_nll_nats": round(float(np.prod(info.image_shape)) * np.log(info.levels), 3),
        "sample_images_per_second": round(sample_ips, 3),
    }
    return publish(report, args.output)


if __name__ == "__main__":
    try:
        main()
    except (data.DataError, ValueError) as err:  # bad data or model options: one line
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
