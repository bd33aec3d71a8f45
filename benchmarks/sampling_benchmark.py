"""Sampling speed: naive loop vs compiled reference vs cached sampler, in one run.

For each model (PixelCNN and Gated PixelCNN by default, of the same width and
depth; ``pixel_rnn`` and ``multiscale_pixel_rnn`` with each of
``--rnn_types``) and image shape, builds one model and draws one batch of
images with up to three methods (``--methods``), timing each after a warm-up
call (so compilation is not counted):

- naive: a Python loop that runs the whole network once per dimension and
  draws the value with NumPy, as most public PixelCNN implementations do;
- reference: ``pixel_models.sample(method="reference")``, the same work in one
  compiled ``tf.while_loop``;
- cached: ``pixel_models.sample(method="cached")``, one position per step from
  cached feature maps.

Checks that reference and cached give the same images for the same seed, and
prints and writes JSON with images/second and the ratios between the methods.

    python benchmarks/sampling_benchmark.py --output=benchmarks/results/sampling.json

The PixelRNN's reference loop runs its LSTM layers over the whole image at
every step, so it is measured without the naive loop and with a smaller
network (the Multi-Scale PixelRNN the same way, both of its stages with the
method named):

    python benchmarks/sampling_benchmark.py --models=pixel_rnn --methods=reference,cached \
        --recurrent_length=2 --output=benchmarks/results/sampling_pixel_rnn.json

PixelSNAIL's reference loop runs its attention over the whole image at every
step; its cached sampler keeps the keys and values of past positions:

    python benchmarks/sampling_benchmark.py --models=pixel_snail --cases=12x12x1 \
        --methods=reference,cached --hidden_dims=16 --num_blocks=2 --residual_blocks=1 \
        --output=benchmarks/results/sampling_pixel_snail.json

With ``--merge``, rows of an existing ``--output`` file for the models and
shapes not measured in this run are kept (each row records its own machine
and time), so one model can be measured again on its own:

    python benchmarks/sampling_benchmark.py --models=gated_pixel_cnn --merge
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402
import numpy as np  # noqa: E402

import pixel_models  # noqa: E402

CASES = {
    "28x28x1": {"image_shape": (28, 28, 1), "levels": 2},
    "32x32x3": {"image_shape": (32, 32, 3), "levels": 256},
    "12x12x1": {"image_shape": (12, 12, 1), "levels": 2},
}
DEFAULT_CASES = "28x28x1,32x32x3"
# Network sizes set from the command line, where a builder takes them.
SIZES = ("hidden_dims", "recurrent_length", "out_hidden_dims", "num_blocks", "residual_blocks")


def naive_sample(model, num_samples: int, seed: int) -> np.ndarray:
    """One full forward pass per dimension, driven from Python."""
    rng = np.random.default_rng(seed)
    height, width, channels = model.input_shape[1:]
    distribution = pixel_models.distribution_of(model)
    x = np.zeros((num_samples, height, width, channels), np.float32)
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                logits = model.predict_on_batch(x)[:, i, j, c]
                if distribution.kind == "bernoulli":
                    x[:, i, j, c] = rng.uniform(size=num_samples) < 1 / (1 + np.exp(-logits))
                else:
                    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
                    p /= p.sum(axis=-1, keepdims=True)
                    u = rng.uniform(size=(num_samples, 1))
                    x[:, i, j, c] = (p.cumsum(axis=-1) < u).sum(axis=-1).clip(0, p.shape[-1] - 1)
    return x.astype(np.uint8)


def timed(fn, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - tic)
    return best


METHODS = ("naive", "reference", "cached")
# Models measured once per --rnn_types value.
RECURRENT = ("pixel_rnn", "multiscale_pixel_rnn")


def measure(name: str, case: str, args: argparse.Namespace, rnn_type: str | None = None) -> dict:
    """Times the chosen methods on one model and shape."""
    extra = {} if rnn_type is None else {"rnn_type": rnn_type}
    # The sizes given, where the builder takes them (pixel_snail has blocks,
    # not a recurrent_length).
    sizes = {
        size: getattr(args, size)
        for size in SIZES
        if size in inspect.signature(pixel_models.MODELS[name]).parameters
    }
    model = pixel_models.build_model(name, **CASES[case], **sizes, **extra)
    n = args.batch_size
    methods = args.methods.split(",")

    def run(method):
        return pixel_models.sample(model, n, seed=args.seed, batch_size=n, method=method)

    seconds, images = {}, {}
    for method in ("reference", "cached"):
        if method in methods:
            images[method] = run(method)  # warm-up (compiles)
    if "reference" in methods:
        seconds["reference"] = timed(lambda: run("reference"))
    if "cached" in methods:
        seconds["cached"] = timed(lambda: run("cached"), repeats=3)
    if "naive" in methods:
        naive_n = max(1, int(round(n * args.naive_batches)))
        naive_sample(model, 1, args.seed)  # warm-up
        seconds["naive"] = timed(lambda: naive_sample(model, naive_n, args.seed)) * n / naive_n
    row = {
        "model": name,
        **extra,
        "case": case,
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
        "batch_size": n,
        **sizes,
        "parameters": int(model.count_params()),
        "images_per_second": {m: round(n / t, 3) for m, t in seconds.items()},
        "seconds_per_batch": {m: round(t, 3) for m, t in seconds.items()},
    }
    for fast, slow, digits in (
        ("cached", "naive", 1),
        ("reference", "naive", 2),
        ("cached", "reference", 1),
    ):
        if fast in seconds and slow in seconds:
            row[f"speedup_{fast}_vs_{slow}"] = round(seconds[slow] / seconds[fast], digits)
    if len(images) == 2:
        row["reference_equals_cached"] = bool(np.array_equal(images["reference"], images["cached"]))
    return row


def _row_key(row: dict) -> tuple:
    return row["model"], row.get("rnn_type"), row["case"]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--models", default="pixel_cnn,gated_pixel_cnn", help="comma-separated model names"
    )
    p.add_argument("--cases", default=DEFAULT_CASES, help=f"among {', '.join(CASES)}")
    p.add_argument(
        "--rnn_types",
        default="row_lstm,diagonal_bilstm",
        help="comma-separated rnn_type values of the PixelRNN models, each measured on its own",
    )
    p.add_argument("--methods", default=",".join(METHODS), help=f"among {', '.join(METHODS)}")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--naive_batches", type=float, default=1.0, help="naive runs this share")
    p.add_argument("--hidden_dims", type=int, default=16)
    p.add_argument("--recurrent_length", type=int, default=7)
    p.add_argument("--out_hidden_dims", type=int, default=32)
    p.add_argument("--num_blocks", type=int, default=2, help="blocks of pixel_snail")
    p.add_argument(
        "--residual_blocks", type=int, default=2, help="residual blocks per block of pixel_snail"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="benchmarks/results/sampling.json")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of an existing --output for the models and cases not run now",
    )
    args = p.parse_args(argv)
    cases = args.cases.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown or args.batch_size < 1:
        p.error(f"--cases must be among {', '.join(CASES)}; --batch_size >= 1")
    if not set(args.methods.split(",")) <= set(METHODS):
        p.error(f"--methods must be among {', '.join(METHODS)}")
    if not set(args.models.split(",")) <= set(pixel_models.MODELS):
        p.error(f"--models must be among {', '.join(sorted(pixel_models.MODELS))}")
    common.require_at_least(p, args, 1, ("hidden_dims", "out_hidden_dims", "num_blocks"))
    common.require_at_least(p, args, 0, ("recurrent_length", "residual_blocks"))
    common.require_above(p, args, 0, ("naive_batches",))

    machine = common.machine()
    runs = [
        (name, rnn_type, case)
        for name in args.models.split(",")
        for rnn_type in (args.rnn_types.split(",") if name in RECURRENT else [None])
        for case in cases
    ]
    kept = []
    if args.merge and args.output and os.path.exists(args.output):
        with open(args.output) as f:
            old = json.load(f)
        for row in old.get("rows", []):
            if _row_key(row) not in runs:
                row.setdefault("machine", old.get("machine"))
                kept.append(row)
    rows = []
    for name, rnn_type, case in runs:
        row = measure(name, case, args, rnn_type)
        row["machine"] = machine
        print(json.dumps(row), flush=True)
        rows.append(row)
    report = {"rows": kept + rows, "machine": machine}
    common.write_report(report, args.output)
    return report


if __name__ == "__main__":
    main()
