"""The zoo's PixelCNN++ against ``tfp.distributions.PixelCNN``: training and sampling speed.

Builds both with the same configuration (``--num_resnet`` gated resnet
blocks per resolution, ``--num_resolutions`` resolutions, called
hierarchies by TFP, ``--hidden_dims`` filters, ``--num_mixtures`` logistic
components, no dropout, no weight normalisation: the zoo has none, and
TFP's works only eagerly), then measures in the same process and run:

- training images/s: one optimisation step of each (Adam 1e-3, gradients
  clipped to [-1, 1] for both, as the zoo's trainer does) on the same random
  batch, the two taken in turn, round after round, so that a changing load
  on a shared machine falls on both alike; the median of the rounds;
- sampling images/s: TFP's ``sample()`` (in a ``tf.function``, so its
  ``tf.while_loop`` runs as a graph: one full network pass per pixel), the
  zoo's cached sampler (``pixel_models.sample(method="cached")``) and its
  compiled reference loop (``method="reference"``, one full network pass per
  pixel and channel), again in turns after one untimed call each (so
  compilation is not counted).

TFP's PixelCNN is a ``tf_keras`` (Keras 2) model: under Keras 3 TFP imports
``tf_keras`` itself, so no ``TF_USE_LEGACY_KERAS`` is needed and the zoo's
Keras 3 models run in the same process.

The default is a tiny 16x16x3 model; on two CPU cores most of its minutes go
to compiling the zoo's two samplers and to TFP's sampler:

    python benchmarks/pixel_cnn_pp_benchmark.py

At 32x32x3 TFP's sampler costs a full network pass per pixel, 1024 of them
per image: it draws ``--tfp_sample_images`` images (2 by default at that
size), the zoo's samplers ``--sample_images``:

    python benchmarks/pixel_cnn_pp_benchmark.py --image_size=32

With ``--quality_minutes=M``, the zoo's PixelCNN++, the zoo's Gated PixelCNN
and TFP's PixelCNN are also trained on ``colored_shapes`` (``--levels``
values per channel; TFP is given ``high=levels - 1``) for ``M`` minutes of
training time each, their steps again taken in turns, and their test
bits/dim are compared.

Needs ``pip install -e '.[benchmarks]'`` (tensorflow-probability, tf-keras).
Prints a table and writes JSON (``--output``; by default
``benchmarks/results/pixel_cnn_pp_tfp_<H>x<W>x3.json``).
"""

from __future__ import annotations

import argparse
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
from pixel_models.distributions import bits_per_dim  # noqa: E402

INSTALL_HINT = "pip install -e '.[benchmarks]'"
SAMPLERS = ("tfp", "cached", "reference")
LEARNING_RATE = 1e-3
GRAD_CLIP = 1.0


def import_tfp():
    """TFP and tf_keras, or exits with one line saying how to install them."""
    try:
        import tensorflow_probability as tfp
        import tf_keras
    except ImportError as err:
        sys.exit(
            f"pixel_cnn_pp_benchmark.py needs tensorflow-probability and tf-keras "
            f"({err.name or err} is missing): {INSTALL_HINT}"
        )
    return tfp, tf_keras


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image_size", type=int, default=16, help="side of the RGB images")
    p.add_argument("--levels", type=int, default=256, help="values per channel (2 to 256)")
    p.add_argument("--hidden_dims", type=int, default=16, help="filters of both models")
    p.add_argument("--num_resnet", type=int, default=1, help="gated resnet blocks per resolution")
    p.add_argument("--num_resolutions", type=int, default=3, help="TFP's num_hierarchies")
    p.add_argument("--num_mixtures", type=int, default=5, help="logistic mixture components")
    p.add_argument("--batch_size", type=int, default=16, help="training batch")
    p.add_argument("--rounds", type=int, default=10, help="timed training steps of each model")
    p.add_argument("--sample_images", type=int, default=16, help="images of the zoo's samplers")
    p.add_argument(
        "--tfp_sample_images",
        type=int,
        default=None,
        help="images of TFP's sample() (default: --sample_images up to 16x16, 2 above)",
    )
    p.add_argument("--sample_rounds", type=int, default=2, help="timed calls of each sampler")
    p.add_argument(
        "--samplers", default=",".join(SAMPLERS), help=f"comma-separated, among {SAMPLERS}"
    )
    p.add_argument(
        "--quality_minutes",
        type=float,
        default=0.0,
        help="also train on colored_shapes this many minutes each and compare bits/dim (0: off)",
    )
    p.add_argument("--quality_batch_size", type=int, default=32)
    p.add_argument(
        "--gated_blocks", type=int, default=4, help="layers of the Gated PixelCNN (quality)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="JSON report (default under benchmarks/results)")
    args = p.parse_args(argv)
    factor = 2 ** max(args.num_resolutions - 1, 0)
    if args.image_size < 4 or args.image_size % factor:
        p.error(
            f"--image_size must be >= 4 and a multiple of 2 ** (num_resolutions - 1) = {factor} "
            f"(TFP's PixelCNN halves and doubles it exactly), got {args.image_size}"
        )
    if not 2 <= args.levels <= 256:
        p.error(f"--levels must be from 2 to 256, got {args.levels}")
    positive = (
        "hidden_dims",
        "num_resnet",
        "num_resolutions",
        "num_mixtures",
        "batch_size",
        "rounds",
        "sample_images",
        "sample_rounds",
        "quality_batch_size",
        "gated_blocks",
    )
    require_at_least(p, args, 1, positive)
    if args.tfp_sample_images is None:
        args.tfp_sample_images = args.sample_images if args.image_size <= 16 else 2
    if args.tfp_sample_images < 1:
        p.error(f"--tfp_sample_images must be >= 1, got {args.tfp_sample_images}")
    samplers = args.samplers.split(",")
    if not samplers or not set(samplers) <= set(SAMPLERS):
        p.error(f"--samplers must be a comma-separated list among {', '.join(SAMPLERS)}")
    args.samplers = [s for s in SAMPLERS if s in samplers]
    if args.quality_minutes < 0:
        p.error(f"--quality_minutes must be >= 0, got {args.quality_minutes}")
    if args.output is None:
        size = args.image_size
        args.output = f"benchmarks/results/pixel_cnn_pp_tfp_{size}x{size}x3.json"
    return args


def build_zoo(args, image_shape) -> keras.Model:
    keras.utils.set_random_seed(args.seed)
    return pixel_models.build_model(
        "pixel_cnn_pp",
        image_shape=image_shape,
        levels=args.levels,
        hidden_dims=args.hidden_dims,
        num_resnet=args.num_resnet,
        num_resolutions=args.num_resolutions,
        num_mixtures=args.num_mixtures,
        dropout=0.0,
    )


def build_tfp(tfp, args, image_shape):
    tf.random.set_seed(args.seed)
    return tfp.distributions.PixelCNN(
        image_shape=image_shape,
        num_resnet=args.num_resnet,
        num_hierarchies=args.num_resolutions,
        num_filters=args.hidden_dims,
        num_logistic_mix=args.num_mixtures,
        dropout_p=0.0,
        use_weight_norm=False,
        high=args.levels - 1,
        low=0,
    )


class TfpTrainer:
    """The same optimisation step as the zoo's trainer, for TFP's PixelCNN:
    mean NLL per image in nats, Adam, gradients clipped to [-GRAD_CLIP, GRAD_CLIP]."""

    def __init__(self, tf_keras, distribution, num_dims: int):
        self.distribution = distribution
        self.num_dims = num_dims
        self.optimizer = tf_keras.optimizers.Adam(LEARNING_RATE)
        self.steps = 0

        @tf.function
        def step(images):
            variables = distribution.trainable_variables
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(distribution.log_prob(images, training=True))
            grads = tape.gradient(loss, variables)
            grads = [tf.clip_by_value(g, -GRAD_CLIP, GRAD_CLIP) for g in grads]
            self.optimizer.apply_gradients(zip(grads, variables, strict=True))
            return loss

        @tf.function
        def nll_sum(images):
            return -tf.reduce_sum(distribution.log_prob(images, training=False))

        self._step, self._nll_sum = step, nll_sum

    def train_step(self, images) -> float:
        self.steps += 1
        return float(self._step(tf.cast(images, tf.float32)))

    def evaluate(self, batches) -> dict:
        total, count = 0.0, 0
        for images in batches:
            total += float(self._nll_sum(tf.cast(images, tf.float32)))
            count += int(images.shape[0])
        nll = total / count
        return {"nll": nll, "bits_per_dim": bits_per_dim(nll, self.num_dims)}


def count_tfp_parameters(distribution, masked: bool = False) -> int:
    """Weights of TFP's PixelCNN; with ``masked``, without the kernel entries
    that its masks (kernel constraints) hold at zero."""
    if not masked:
        return int(sum(np.prod(v.shape) for v in distribution.trainable_variables))
    total = 0
    for layer in distribution.network._network.layers:
        constraint = getattr(layer, "kernel_constraint", None)
        for variable in layer.trainable_weights:
            if constraint is not None and variable is layer.kernel:
                total += int(np.count_nonzero(constraint(np.ones(variable.shape))))
            else:
                total += int(np.prod(variable.shape))
    return total


def measure_training(args, zoo_model, tfp_trainer) -> dict:
    rng = np.random.default_rng(args.seed)
    shape = (args.batch_size, args.image_size, args.image_size, 3)
    images = tf.constant(rng.integers(0, args.levels, shape).astype(np.float32))
    zoo_trainer = training.Trainer(
        zoo_model, training.make_optimizer("adam", LEARNING_RATE), grad_clip=GRAD_CLIP
    )
    zoo_trainer.train_step(images)  # trace and compile
    tfp_trainer.train_step(images)
    times = time_in_turns(
        {
            "zoo": lambda: zoo_trainer.train_step(images),
            "tfp": lambda: tfp_trainer.train_step(images),
        },
        args.rounds,
    )
    result = {}
    for name, seconds in times.items():
        median = float(np.median(seconds))
        result[name] = {
            "seconds_per_step": round(median, 4),
            "images_per_second": round(args.batch_size / median, 1),
            "rounds_seconds": [round(s, 4) for s in seconds],
        }
    result["zoo_vs_tfp"] = round(
        result["zoo"]["images_per_second"] / result["tfp"]["images_per_second"], 3
    )
    return result


def measure_sampling(args, zoo_model, distribution) -> dict:
    n, n_tfp = args.sample_images, args.tfp_sample_images
    tfp_sample = tf.function(lambda: distribution.sample(n_tfp, seed=args.seed))

    def zoo(method):
        return pixel_models.sample(zoo_model, n, seed=args.seed, batch_size=n, method=method)

    calls = {
        "tfp": (tfp_sample, n_tfp),
        "cached": (lambda: zoo("cached"), n),
        "reference": (lambda: zoo("reference"), n),
    }
    calls = {name: calls[name] for name in args.samplers}
    images, compile_seconds = {}, {}
    for name, (fn, _) in calls.items():
        tic = time.perf_counter()
        images[name] = np.asarray(fn())  # warm-up: traces and compiles
        compile_seconds[name] = round(time.perf_counter() - tic, 2)
        print(f"  {name}: first call (with compilation) {compile_seconds[name]} s", flush=True)
    times = time_in_turns({name: fn for name, (fn, _) in calls.items()}, args.sample_rounds)
    result = {}
    for name, seconds in times.items():
        count = calls[name][1]
        median = float(np.median(seconds))
        result[name] = {
            "images": count,
            "seconds_per_call": round(median, 3),
            "images_per_second": round(count / median, 4),
            "first_call_seconds": compile_seconds[name],
            "rounds_seconds": [round(s, 3) for s in seconds],
        }
        low, high = float(images[name].min()), float(images[name].max())
        if not (0 <= low and high <= args.levels - 1):
            raise AssertionError(f"{name} drew values outside [0, {args.levels - 1}]")
    for fast in ("cached", "reference"):
        if fast in result and "tfp" in result:
            ratio = result[fast]["images_per_second"] / result["tfp"]["images_per_second"]
            result[f"{fast}_vs_tfp"] = round(ratio, 2)
    if "cached" in result and "reference" in result:
        ratio = result["cached"]["images_per_second"] / result["reference"]["images_per_second"]
        result["cached_vs_reference"] = round(ratio, 2)
        result["reference_equals_cached"] = bool(
            np.array_equal(images["cached"], images["reference"])
        )
    return result


def measure_quality(args, tfp, tf_keras) -> dict:
    """Test bits/dim on colored_shapes after the same training time for each model."""
    size, levels, seed = args.image_size, args.levels, args.seed
    image_shape = (size, size, 3)
    train = data.load("colored_shapes", "train", image_size=size, seed=seed, color_levels=levels)
    test = data.load("colored_shapes", "test", image_size=size, seed=seed, color_levels=levels)
    batches = iter(data.pipeline(train, args.quality_batch_size, training=True, seed=seed))
    test_batches = data.pipeline(test, 100, training=False)

    zoo_pp = training.Trainer(
        build_zoo(args, image_shape),
        training.make_optimizer("adam", LEARNING_RATE),
        grad_clip=GRAD_CLIP,
    )
    keras.utils.set_random_seed(seed)
    gated_model = pixel_models.build_model(
        "gated_pixel_cnn",
        image_shape=image_shape,
        levels=levels,
        hidden_dims=args.hidden_dims,
        recurrent_length=args.gated_blocks,
        out_hidden_dims=32,
        out_recurrent_length=1,
    )
    gated = training.Trainer(
        gated_model, training.make_optimizer("adam", LEARNING_RATE), grad_clip=GRAD_CLIP
    )
    distribution = build_tfp(tfp, args, image_shape)
    tfp_trainer = TfpTrainer(tf_keras, distribution, int(np.prod(image_shape)))
    trainers = {
        "zoo_pixel_cnn_pp": zoo_pp,
        "zoo_gated_pixel_cnn": gated,
        "tfp_pixel_cnn": tfp_trainer,
    }
    first = next(batches)
    for trainer in trainers.values():
        trainer.train_step(first)  # trace and compile, not counted
    # One step of the model with the least training time so far, until
    # every model has had its minutes: the load falls on all of them alike.
    spent, steps, _ = train_in_turns(
        {name: t.train_step for name, t in trainers.items()}, batches, args.quality_minutes * 60.0
    )
    result = {}
    for name, trainer in trainers.items():
        evaluation = trainer.evaluate(test_batches)
        model = getattr(trainer, "model", None)
        parameters = (
            int(model.count_params()) if model is not None else count_tfp_parameters(distribution)
        )
        result[name] = {
            "parameters": parameters,
            "steps": steps[name] + 1,
            "train_seconds": round(spent[name], 1),
            "test_nll_nats": round(evaluation["nll"], 3),
            "test_bits_per_dim": round(evaluation["bits_per_dim"], 4),
        }
    result["uniform_bits_per_dim"] = round(float(np.log2(levels)), 4)
    return result


def print_table(report: dict) -> None:
    train, sampling = report["training"], report["sampling"]
    shape = "x".join(map(str, report["image_shape"]))
    print(f"\nPixelCNN++ {shape}, {report['config']['levels']} levels")
    print(f"{'':28} {'zoo':>12} {'TFP':>12} {'zoo / TFP':>10}")
    params = report["parameters"]
    print(f"{'parameters':28} {params['zoo']:>12} {params['tfp']:>12}")
    print(f"{'  without masked-out weights':28} {params['zoo']:>12} {params['tfp_unmasked']:>12}")
    print(
        f"{'training images/s':28} {train['zoo']['images_per_second']:>12} "
        f"{train['tfp']['images_per_second']:>12} {train['zoo_vs_tfp']:>10}"
    )
    tfp_ips = sampling.get("tfp", {}).get("images_per_second", "-")
    for method in ("cached", "reference"):
        if method in sampling:
            print(
                f"{'sampling images/s, ' + method:28} {sampling[method]['images_per_second']:>12} "
                f"{tfp_ips:>12} {sampling.get(method + '_vs_tfp', '-'):>10}"
            )
    if "quality" in report:
        quality = report["quality"]
        print(
            f"\ncolored_shapes test bits/dim after {report['config']['quality_minutes']} min each"
        )
        for name, row in quality.items():
            if isinstance(row, dict):
                print(
                    f"  {name:24} {row['test_bits_per_dim']:>8} bits/dim, {row['steps']} steps, "
                    f"{row['parameters']} parameters"
                )


def main(argv=None) -> dict:
    args = parse_args(argv)
    tfp, tf_keras = import_tfp()
    start = time.perf_counter()
    image_shape = (args.image_size, args.image_size, 3)
    zoo_model = build_zoo(args, image_shape)
    distribution = build_tfp(tfp, args, image_shape)
    tfp_trainer = TfpTrainer(tf_keras, distribution, int(np.prod(image_shape)))
    report = {
        "image_shape": list(image_shape),
        "config": {k: v for k, v in vars(args).items() if k != "output"},
        "parameters": {
            "zoo": int(zoo_model.count_params()),
            # TFP's masked kernels keep their masked-out entries as weights.
            "tfp": count_tfp_parameters(distribution),
            "tfp_unmasked": count_tfp_parameters(distribution, masked=True),
        },
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print("training, in turns ...", flush=True)
    report["training"] = measure_training(args, zoo_model, tfp_trainer)
    print("sampling, in turns ...", flush=True)
    report["sampling"] = measure_sampling(args, zoo_model, distribution)
    if args.quality_minutes > 0:
        print(f"colored_shapes, {args.quality_minutes} min each ...", flush=True)
        report["quality"] = measure_quality(args, tfp, tf_keras)
    report["machine"] = {
        **machine(),
        "tensorflow_probability": tfp.__version__,
        "tf_keras": tf_keras.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    print_table(report)
    write_report(report, args.output)
    return report


if __name__ == "__main__":
    main()
