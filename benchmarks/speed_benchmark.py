"""Training speed of several models, timed in turns so that they share the load alike.

Builds each model variant, compiles its training step (the package's Trainer,
Adam), then times one step of each variant in turn, round after round, on the
same random batch, and reports the median seconds per step, images per
second and the speed relative to the first variant. Timing in turns keeps the
comparison fair on a machine whose load changes while the benchmark runs.

Variants are ``label=model[,key=value...]`` with builder keywords, e.g.:

    python benchmarks/speed_benchmark.py --image_shape 16 16 3 --levels 8 --batch_size 32 \\
        --variant independent=pixel_rcnn,color_dependence=independent,hidden_dims=32 \\
        --variant dependent=pixel_rcnn,hidden_dims=32 \\
        --variant gated=gated_pixel_cnn,hidden_dims=32 \\
        --output=benchmarks/results/speed_colored.json

Prints the results and writes them as JSON.
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
from common import publish, require_at_least, settings  # noqa: E402

import pixel_models  # noqa: E402
from pixel_models import training  # noqa: E402


def _value(text: str):
    """An int, float, bool or string from its command-line spelling."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_variant(text: str) -> tuple[str, str, dict]:
    """``label=model,key=value,...`` -> ``(label, model, options)``.

    Example:

    >>> parse_variant("rcnn=pixel_rcnn,hidden_dims=32,color_dependence=independent")
    ('rcnn', 'pixel_rcnn', {'hidden_dims': 32, 'color_dependence': 'independent'})
    """
    label, _, spec = text.partition("=")
    model, *pairs = spec.split(",")
    if not label or model not in pixel_models.MODELS:
        raise ValueError(f"a variant is label=model[,key=value...] with a known model: {text!r}")
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"options are key=value: {pair!r} in {text!r}")
        options[key] = _value(value)
    return label, model, options


def build_trainers(
    variants: list[tuple[str, str, dict]], image_shape: tuple[int, int, int], levels: int
) -> dict:
    """A Trainer (Adam) of each variant's model, built from seed 0, by label."""
    trainers = {}
    for label, model_name, options in variants:
        keras.utils.set_random_seed(0)
        model = pixel_models.build_model(
            model_name, image_shape=image_shape, levels=levels, **options
        )
        trainers[label] = training.Trainer(model, training.make_optimizer("adam", 1e-3))
    return trainers


def time_training(
    variants: list[tuple[str, str, dict]],
    trainers: dict,
    image_shape: tuple[int, int, int],
    levels: int,
    batch: int,
    rounds: int,
) -> list[dict]:
    """Median seconds per training step of each variant, timed in turns."""
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, levels, (batch, *image_shape)).astype(np.float32))
    for trainer in trainers.values():
        trainer.train_step(images)  # trace and compile
    times = {label: [] for label in trainers}
    for _ in range(rounds):
        for label, trainer in trainers.items():
            tic = time.perf_counter()
            trainer.train_step(images)
            times[label].append(time.perf_counter() - tic)
    base = float(np.median(times[variants[0][0]]))
    rows = []
    for (label, model_name, options), trainer in zip(variants, trainers.values(), strict=True):
        seconds = float(np.median(times[label]))
        rows.append(
            {
                "model": label,
                "builder": model_name,
                "options": options,
                "parameters": int(trainer.model.count_params()),
                "seconds_per_step": round(seconds, 4),
                "train_images_per_second": round(batch / seconds, 1),
                f"speed_vs_{variants[0][0]}": round(base / seconds, 3),
            }
        )
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", action="append", required=True, help="label=model[,k=v...]")
    p.add_argument("--image_shape", type=int, nargs=3, default=[28, 28, 1])
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--batch_size", type=int, default=100)
    p.add_argument("--rounds", type=int, default=10, help="timed steps per variant")
    p.add_argument("--output", default="benchmarks/results/speed_benchmark.json")
    args = p.parse_args(argv)
    try:
        variants = [parse_variant(v) for v in args.variant]
    except ValueError as err:
        p.error(str(err))
    require_at_least(p, args, 1, ("rounds", "batch_size"))
    require_at_least(p, args, 2, ("levels",))
    if min(args.image_shape) < 1:
        p.error(f"--image_shape must be three integers >= 1, got {args.image_shape}")
    image_shape = tuple(args.image_shape)
    try:
        trainers = build_trainers(variants, image_shape, args.levels)
    except (TypeError, ValueError) as err:
        p.error(f"--variant: {str(err).splitlines()[0]}")
    rows = time_training(variants, trainers, image_shape, args.levels, args.batch_size, args.rounds)
    for row in rows:
        print(json.dumps(row), flush=True)
    report = {
        "config": settings(args),
        "models": rows,
    }
    return publish(report, args.output, show=False)


if __name__ == "__main__":
    main()
