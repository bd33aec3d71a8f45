"""Scale-out benchmark: training speed on 1 and 2 devices, with and without XLA and
mixed precision.

Measures training images per second of one model on procedural ``shapes`` data
(the package's Trainer) in eight configurations: 1 or 2 logical CPU devices
(2: ``MirroredStrategy`` over two logical CPUs of the same processor) x
``jit_compile`` off or on x float32 or mixed precision (``mixed_bfloat16`` on
a CPU). Logical devices must be configured before TensorFlow starts, so each
device count runs in its own process; a process builds the four models of its
device count and times them in turn, round after round, and the processes of
the two device counts alternate, so that every configuration shares the
machine's load alike (a round of a configuration runs for at least
``--seconds``). Each configuration's speed is the median over its
rounds, and its ratio is taken against the 1-device float32 run without XLA
of the same benchmark run.

Prints the results and writes them as JSON. Example (a few minutes on 2 CPU
cores):

    python benchmarks/distribute_benchmark.py --image_size=16 --batch_size=64 \\
        --output=benchmarks/results/distribute.json

Two logical CPUs share the same cores (and TensorFlow's thread pools), so on
one processor the second device measures the cost of the replication (the
split batch, the all-reduce), not a speed-up; on several GPUs or machines the
same code divides the batch between real devices.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets up the package's import path)
import train_benchmark  # noqa: E402

from pixel_models.devices import set_precision  # noqa: E402
from pixel_models.runs import write_json_atomic  # noqa: E402

VARIANTS = [(jit, precision) for jit in (False, True) for precision in ("float32", "mixed")]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    train_benchmark.add_model_arguments(p)
    p.set_defaults(image_size=16, batch_size=64)
    p.add_argument("--steps", type=int, default=3, help="least timed training steps per round")
    p.add_argument("--seconds", type=float, default=2.5, help="least timed seconds per round")
    p.add_argument("--rounds", type=int, default=4, help="rounds of every variant per process")
    p.add_argument("--repeats", type=int, default=2, help="processes per device count")
    p.add_argument("--devices", type=int, default=0, help=argparse.SUPPRESS)  # worker mode
    p.add_argument("--output", default="benchmarks/results/distribute.json")
    args = p.parse_args(argv)
    if min(args.steps, args.rounds, args.repeats, args.batch_size) < 1 or args.batch_size % 2:
        p.error("--steps, --rounds, --repeats must be >= 1 and --batch_size even and >= 2")
    common.require_above(p, args, 0, ("seconds",))
    if args.data not in ("shapes", "colored_shapes"):
        p.error("--data must be procedural (shapes or colored_shapes): no download")
    return args


def _name(devices: int, jit: bool, precision: str) -> str:
    return f"{devices}dev-{'xla' if jit else 'noxla'}-{precision}"


def worker(args: argparse.Namespace) -> dict[str, list[float]]:
    """Times the four variants of ``args.devices`` devices in turn; returns
    ``{configuration: [images per second of each round]}``."""
    import keras
    import tensorflow as tf

    from pixel_models import data, training

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices
    )
    tf.config.set_visible_devices([], "GPU")
    strategy = (
        tf.distribute.MirroredStrategy([f"/cpu:{k}" for k in range(args.devices)])
        if args.devices > 1
        else tf.distribute.get_strategy()
    )
    info = data.info(args.data, image_size=args.image_size)
    train = data.load(
        args.data,
        "train",
        data_dir=data.resolve_data_dir(args.data_dir),
        image_size=args.image_size,
        seed=args.seed,
    )
    batches = data.pipeline(train, args.batch_size, training=True, seed=args.seed)
    runs = {}
    for jit, precision in VARIANTS:
        policy = set_precision(precision == "mixed")
        keras.utils.set_random_seed(args.seed)
        with strategy.scope():
            model = train_benchmark.build_model(args, info)
            optimizer = training.make_optimizer(args.optimizer, args.learning_rate)
            trainer = training.Trainer(
                model, optimizer, strategy, grad_clip=args.grad_clip, jit_compile=jit
            )
        iterator = iter(strategy.experimental_distribute_dataset(batches))
        for _ in range(2):  # compile, then one more step untimed
            trainer.train_step(next(iterator))
        runs[_name(args.devices, jit, precision)] = (trainer, iterator, policy)
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (trainer, iterator, policy) in runs.items():
            keras.config.set_dtype_policy(policy)
            speeds[name].append(
                train_benchmark.train_images_per_second(
                    trainer, iterator, args.batch_size, args.steps, args.seconds
                )
            )
    keras.config.set_dtype_policy("float32")
    return speeds


def _worker_command(argv: list[str], devices: int) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), *argv, f"--devices={devices}"]


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.devices:
        print(json.dumps(worker(args)))
        return {}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    speeds: dict[str, list[float]] = {}
    for repeat in range(args.repeats):
        # Alternate which device count goes first.
        for devices in (1, 2) if repeat % 2 == 0 else (2, 1):
            result = subprocess.run(
                _worker_command(argv, devices), capture_output=True, text=True, env=env
            )
            if result.returncode != 0:
                sys.exit(f"the {devices}-device run failed:\n{result.stderr[-3000:]}")
            for name, values in json.loads(result.stdout.strip().splitlines()[-1]).items():
                speeds.setdefault(name, []).extend(values)
            print(f"repeat {repeat + 1}/{args.repeats}, {devices} device(s) done", flush=True)
    base = statistics.median(speeds[_name(1, False, "float32")])
    configurations = {}
    for devices in (1, 2):
        for jit, precision in VARIANTS:
            name = _name(devices, jit, precision)
            median = statistics.median(speeds[name])
            configurations[name] = {
                "devices": devices,
                "jit_compile": jit,
                "precision": "mixed_bfloat16" if precision == "mixed" else "float32",
                "train_images_per_second": round(median, 1),
                "ratio_to_1dev_float32_noxla": round(median / base, 3),
                "rounds": [round(v, 1) for v in speeds[name]],
            }
    report = {
        "model": args.model,
        "data": args.data,
        "config": common.settings(args, ("output", "devices")),
        "command": "python benchmarks/distribute_benchmark.py " + " ".join(argv),
        "configurations": configurations,
        "machine": common.machine(),
    }
    print(json.dumps(report, indent=2))
    print(f"{'configuration':28s} {'images/s':>10s} {'ratio':>7s}")
    for name, row in configurations.items():
        print(
            f"{name:28s} {row['train_images_per_second']:10.1f} "
            f"{row['ratio_to_1dev_float32_noxla']:7.3f}"
        )
    if args.output:
        write_json_atomic(args.output, report)
    return report


if __name__ == "__main__":
    main()
