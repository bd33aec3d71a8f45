"""Reproduction of published results: each configuration is a flagfile of configs/.

Lists the configurations with their published numbers, trains each through
the library (the flagfile parsed as ``main.py`` parses it, then
``experiment.train_and_evaluate``) for a budget of minutes or for the
flagfile's own ``max_steps``, and writes each one's NLL curve (step, seconds
of training, train and test NLL in nats and bits/dim) to
``benchmarks/results/reproduce_<name>.json``.

    python benchmarks/reproduce.py --list
    TFDS_DATA_DIR=../shared/tensorflow_datasets python benchmarks/reproduce.py \\
        --only binarized_mnist_pixel_cnn --minutes 2
    python benchmarks/reproduce.py --full --jit_compile --mixed_precision   # on a GPU

The runs live in ``--work_dir`` (checkpoints, TensorBoard events, sample
grids, one folder per run as ``main.py`` names it); the same command again
resumes each run from its last checkpoint. ``--minutes`` is the budget of
training of a configuration over all its invocations: a run that has had
its minutes is only re-evaluated from its events, and a larger
``--minutes`` trains it on. A configuration whose dataset is not prepared is
skipped with one line saying how to prepare it (``--download`` lets
tensorflow-datasets download it instead).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import math
import os
import platform
import shlex
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tensorflow as tf  # noqa: E402
from absl import flags as absl_flags  # noqa: E402

import flags as project_flags  # noqa: E402  (defines main.py's flags)
from pixel_models import data, experiment  # noqa: E402
from pixel_models.config import RunConfig, UsageError  # noqa: E402
from pixel_models.distributions import bits_per_dim  # noqa: E402
from pixel_models.files import write_atomic  # noqa: E402
from pixel_models.progress import _duration  # noqa: E402
from pixel_models.runs import RunError  # noqa: E402
from pixel_models.training import TrainingError  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results")


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """One published configuration: its flagfile and the number to compare with.

    ``published`` is in ``unit`` (``nats`` per image or ``bits/dim``), None
    where the source reports none for this dataset; ``source`` names it.
    """

    name: str
    flagfile: str
    published: float | None
    unit: str
    source: str


_PIXEL_RNN = 'van den Oord et al. (2016), "Pixel Recurrent Neural Networks"'
_DECODERS = 'van den Oord et al. (2016), "Conditional Image Generation with PixelCNN Decoders"'
CONFIGURATIONS: tuple[Reproduction, ...] = (
    Reproduction(
        "binarized_mnist_pixel_cnn",
        "configs/binarized_mnist_pixel_cnn.cfg",
        81.30,
        "nats",
        _PIXEL_RNN,
    ),
    Reproduction(
        "binarized_mnist_row_lstm",
        "configs/binarized_mnist_row_lstm.cfg",
        80.54,
        "nats",
        _PIXEL_RNN,
    ),
    Reproduction(
        "binarized_mnist_diagonal_bilstm",
        "configs/binarized_mnist_diagonal_bilstm.cfg",
        79.20,
        "nats",
        _PIXEL_RNN,
    ),
    Reproduction(
        "binarized_mnist_gated_pixel_cnn",
        "configs/binarized_mnist_gated_pixel_cnn.cfg",
        None,
        "nats",
        f"{_DECODERS} reports no MNIST number",
    ),
    Reproduction(
        "binarized_mnist_pixel_snail",
        "configs/binarized_mnist_pixel_snail.cfg",
        78.61,
        "nats",
        "pytorch-generative's PixelSNAIL (MNIST binarized afresh every epoch)",
    ),
    Reproduction(
        "cifar10_gated_pixel_cnn",
        "configs/cifar10_gated_pixel_cnn.cfg",
        3.03,
        "bits/dim",
        _DECODERS,
    ),
    Reproduction(
        "cifar10_pixel_cnn_pp",
        "configs/cifar10_pixel_cnn_pp.cfg",
        2.92,
        "bits/dim",
        'Salimans et al. (2017), "PixelCNN++"',
    ),
    Reproduction(
        "cifar10_pixel_snail",
        "configs/cifar10_pixel_snail.cfg",
        2.85,
        "bits/dim",
        'Chen et al. (2018), "PixelSNAIL"',
    ),
)
# Procedural datasets need no preparation; the others are tensorflow-datasets ones.
_PROCEDURAL = ("shapes", "colored_shapes")


class ReproduceError(Exception):
    """A bad argument; reported in one line, exit status 1."""


def parse_flagfile(flagfile: str, *overrides: str) -> RunConfig:
    """The :class:`RunConfig` of ``main.py --flagfile=<flagfile> <overrides>``."""
    path = flagfile if os.path.isabs(flagfile) else os.path.join(ROOT, flagfile)
    if not os.path.exists(path):
        raise ReproduceError(f"flagfile {flagfile} does not exist")
    absl_flags.FLAGS.unparse_flags()
    try:
        absl_flags.FLAGS(["reproduce.py", f"--flagfile={path}", *overrides])
        return project_flags.run_config(list(overrides))
    except absl_flags.Error as err:
        raise ReproduceError(f"{flagfile}: {err}") from None
    finally:
        absl_flags.FLAGS.unparse_flags()


def missing_data(config: RunConfig) -> str | None:
    """None when the run's dataset can be read here, else one line saying how
    to prepare it."""
    if config.data in _PROCEDURAL or config.data not in data.DATASETS:
        return None
    import tensorflow_datasets as tfds

    root = data.resolve_data_dir(config.data_dir)
    name = data._TFDS_NAMES.get(config.data, config.data)
    builder = tfds.builder(name, data_dir=root)
    if builder.is_prepared():
        return None
    where = root or str(tfds.core.constants.DATA_DIR)
    return (
        f"dataset {config.data} is not prepared in {where}: prepare it on a machine with "
        f'network access with `python -c "import tensorflow_datasets as tfds; '
        f"tfds.builder('{name}', data_dir='{where}').download_and_prepare()\"` (then set "
        "TFDS_DATA_DIR to that folder), or pass --download"
    )


def _scalar(value) -> float:
    if value.HasField("tensor"):
        return float(tf.make_ndarray(value.tensor))
    return float(value.simple_value)


def read_curve(log_dir: str, dims: int) -> list[dict]:
    """The NLL curve of a run from its TensorBoard events.

    One point at every test evaluation and at about every hundredth of the
    steps: ``step``, ``seconds`` (training time up to that step, summed
    over the run's sessions), ``train_nll`` (the mean training-batch NLL
    since the previous point, nats), ``train_bits_per_dim``, and
    ``test_nll`` and ``test_bits_per_dim`` where the test set was evaluated.
    A session that restarted at step ``s`` replaces what earlier files say
    of steps ``s`` and later (the part of a stopped run after its last
    checkpoint).
    """
    train: dict[int, tuple[float, float]] = {}  # step -> (nll, seconds)
    test: dict[int, dict[str, float]] = {}  # step -> {"nll": ..., "bits_per_dim": ...}
    offset, session_start = 0.0, None
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            if event.session_log.status == tf.compat.v1.SessionLog.START:
                for steps in (train, test):
                    for step in [s for s in steps if s >= event.step]:
                        del steps[step]
                offset = train[max(train)][1] if train else 0.0
                session_start = event.wall_time
                continue
            if session_start is None:
                session_start = event.wall_time
            for value in event.summary.value:
                if value.tag == "train/nll":
                    train[event.step] = (_scalar(value), offset + event.wall_time - session_start)
                elif value.tag in ("test/nll", "test/bits_per_dim"):
                    test.setdefault(event.step, {})[value.tag[5:]] = _scalar(value)
    if not train:
        return []
    last = max(train)
    every = max(1, math.ceil(last / 100))
    points, window = [], []
    for step in sorted(train):
        window.append(train[step][0])
        if step % every and step not in test and step != last:
            continue
        mean = sum(window) / len(window)
        point = {
            "step": step,
            "seconds": round(train[step][1], 2),
            "train_nll": round(mean, 4),
            "train_bits_per_dim": round(float(bits_per_dim(mean, dims)), 5),
        }
        if "nll" in test.get(step, {}):
            nll = test[step]["nll"]
            point["test_nll"] = round(nll, 4)
            bpd = test[step].get("bits_per_dim", float(bits_per_dim(nll, dims)))
            point["test_bits_per_dim"] = round(bpd, 5)
        points.append(point)
        window = []
    return points


def _machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
    }


def _run_config(entry: Reproduction, work_dir: str, overrides: tuple[str, ...] = ()) -> RunConfig:
    """The configuration's flagfile with its run's folders in ``work_dir``."""
    dirs = [
        f"--checkpoint_dir={os.path.join(work_dir, 'checkpoints')}",
        f"--log_dir={os.path.join(work_dir, 'logs')}",
        f"--sample_dir={os.path.join(work_dir, 'samples')}",
    ]
    return parse_flagfile(entry.flagfile, *dirs, *overrides)


def _curve_of(config: RunConfig) -> tuple[str, list[dict]]:
    """The run's name (the folder ``main.py`` gives it) and its curve so far."""
    run = experiment._open(config)
    name = run.paths.name
    return name, read_curve(os.path.join(config.log_dir, name), math.prod(run.info.image_shape))


def _check_replaceable(out_path: str, curve: list[dict]) -> None:
    """Raises ReproduceError unless the result file ``out_path`` is missing or
    records the start of ``curve`` (this run, resumed)."""
    try:
        with open(out_path, encoding="utf-8") as f:
            recorded = json.load(f).get("curve", [])
    except FileNotFoundError:
        return
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded is not None and curve[: len(recorded)] == recorded:
        return
    raise ReproduceError(
        f"{out_path} holds the result of another run; pass --overwrite to replace it, or "
        "--results_dir to write elsewhere"
    )


def run_one(
    entry: Reproduction,
    minutes: float | None,
    work_dir: str,
    results_dir: str,
    overrides: tuple[str, ...] = (),
    command: str = "",
    download: bool = False,
    overwrite: bool = False,
) -> dict | None:
    """Trains (or resumes) one configuration and writes its result file.

    ``minutes``: the budget of training over all invocations (None: the
    flagfile's ``max_steps``). Returns the result, or None when the run has
    nothing to do because its dataset is missing (a line says so). A result
    file that another run wrote (one this run does not continue) is replaced
    only with ``overwrite``: the files of ``benchmarks/results`` back the
    README's table.
    """
    os.makedirs(results_dir, exist_ok=True)
    out_path = os.path.join(results_dir, f"reproduce_{entry.name}.json")
    config = _run_config(entry, work_dir, overrides)
    reason = None if download else missing_data(config)
    if reason is not None:
        print(f"skipped {entry.name}: {reason}", flush=True)
        return None
    _, before = _curve_of(config)
    if not overwrite:
        _check_replaceable(out_path, before)
    done = before[-1]["seconds"] if before else 0.0
    if minutes is not None:
        left = minutes * 60.0 - done
        if left <= 0:
            print(f"{entry.name}: had its {minutes:g} minutes; reading its events", flush=True)
        # A tiny positive limit still takes one step; a spent budget takes none.
        config = dataclasses.replace(config, max_minutes=max(left, 1e-9) / 60.0)
    experiment.setup(config)
    if minutes is None or minutes * 60.0 - done > 0:
        experiment.train_and_evaluate(config)
    name, curve = _curve_of(config)
    tested = [p for p in curve if "test_nll" in p]
    ours = None
    if tested:
        ours = tested[-1]["test_nll" if entry.unit == "nats" else "test_bits_per_dim"]
    result = {
        "name": entry.name,
        "flagfile": entry.flagfile,
        "dataset": config.data,
        "model": config.model,
        "published": {"value": entry.published, "unit": entry.unit, "source": entry.source},
        "ours": {
            "value": ours,
            "unit": entry.unit,
            "step": tested[-1]["step"] if tested else None,
            "split": "test",
        },
        "budget": {"minutes": minutes} if minutes is not None else {"max_steps": config.max_steps},
        "steps": curve[-1]["step"] if curve else 0,
        "train_seconds": curve[-1]["seconds"] if curve else 0.0,
        "run": name,
        "command": command,
        "mixed_precision": config.mixed_precision,
        "jit_compile": config.jit_compile,
        "machine": _machine(),
        "curve": curve,
    }
    write_atomic(out_path, lambda f: f.write(json.dumps(result, indent=2) + "\n"))
    shown = f"{ours:.4g} {entry.unit}" if ours is not None else "no test evaluation yet"
    published = f"{entry.published:g}" if entry.published is not None else "none"
    print(
        f"{entry.name}: test {shown} after {result['steps']} steps "
        f"({_duration(result['train_seconds'])} of training; published: {published}) -> {out_path}",
        flush=True,
    )
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--list", action="store_true", help="list the configurations and stop")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these configurations")
    p.add_argument(
        "--minutes",
        type=float,
        default=2.0,
        help="budget of training per configuration, in minutes over all invocations (default 2)",
    )
    p.add_argument("--full", action="store_true", help="train to the flagfile's own max_steps")
    p.add_argument("--work_dir", default="reproduce_runs", help="where the runs' folders go")
    p.add_argument("--results_dir", default=RESULTS, help="where reproduce_<name>.json go")
    p.add_argument("--mixed_precision", action="store_true", help="main.py's --mixed_precision")
    p.add_argument("--jit_compile", action="store_true", help="main.py's --jit_compile (XLA)")
    p.add_argument(
        "--test_step", type=int, help="evaluate every this many steps (default: flagfile's)"
    )
    p.add_argument("--num_samples", type=int, help="images per sample grid (default: flagfile's)")
    p.add_argument("--download", action="store_true", help="let tensorflow-datasets download data")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace result files of other runs (a resumed run always updates its own)",
    )
    return p


def _overrides(args: argparse.Namespace) -> tuple[str, ...]:
    extra = []
    if args.mixed_precision:
        extra.append("--mixed_precision")
    if args.jit_compile:
        extra.append("--jit_compile")
    for name in ("test_step", "num_samples"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                raise ReproduceError(f"--{name} must be an integer >= 1, got {value}")
            extra.append(f"--{name}={value}")
    return tuple(extra)


def select(names: list[str] | None) -> list[Reproduction]:
    """The configurations named (all when ``names`` is None)."""
    if not names:
        return list(CONFIGURATIONS)
    known = {entry.name: entry for entry in CONFIGURATIONS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ReproduceError(
            f"--only: unknown configuration {unknown[0]!r}; choose from {', '.join(known)}"
        )
    return [known[name] for name in names]


def _print_list(entries: list[Reproduction]) -> None:
    for entry in entries:
        dataset = parse_flagfile(entry.flagfile).data
        published = f"{entry.published:g} {entry.unit}" if entry.published is not None else "none"
        print(f"{entry.name}\t{entry.flagfile}\t{dataset}\t{published}\t{entry.source}")


# What a configuration's run may raise: reported in one line, never a traceback.
_FAILURES = (ReproduceError, UsageError, RunError, TrainingError, ValueError, OSError)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        entries = select(args.only)
        if args.list:
            _print_list(entries)
            return 0
        if not args.full and not (0 < args.minutes < float("inf")):
            raise ReproduceError(f"--minutes must be a finite number > 0, got {args.minutes}")
        overrides = _overrides(args)
        minutes = None if args.full else args.minutes
        command = "python benchmarks/reproduce.py " + shlex.join(
            sys.argv[1:] if argv is None else argv
        )
        runnable, skipped = [], []
        for entry in entries:
            reason = None if args.download else missing_data(parse_flagfile(entry.flagfile))
            if reason is None:
                runnable.append(entry)
            else:
                print(f"skipped {entry.name}: {reason}", flush=True)
                skipped.append(entry.name)
        start = time.time()
        failed = []
        for index, entry in enumerate(runnable):
            later = [_run_config(e, args.work_dir, overrides) for e in runnable[index:]]
            _print_estimate(entry.name, later, minutes, start, index, len(runnable))
            try:
                run_one(
                    entry,
                    minutes,
                    args.work_dir,
                    args.results_dir,
                    overrides,
                    command,
                    args.download,
                    args.overwrite,
                )
            except _FAILURES as err:  # this configuration only: the others still run
                print(f"error: {entry.name}: {err}", file=sys.stderr, flush=True)
                failed.append(entry.name)
    except _FAILURES as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(
            "error: interrupted; each run keeps its last checkpoint, and the same command "
            "resumes it",
            file=sys.stderr,
            flush=True,
        )
        return 130
    if failed:
        print(f"error: {len(failed)} configuration(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if args.only and skipped:  # asked for by name, and not run
        print(f"error: --only: not run (no data): {', '.join(skipped)}", file=sys.stderr)
        return 1
    return 0


def _print_estimate(
    name: str, later: list[RunConfig], minutes: float | None, start: float, index: int, total: int
) -> None:
    """Prints the configuration that starts and about how much training is left
    for it and the ones after it: what is left of their budgets, or with
    ``--full`` their steps left at the rate of their curves so far."""
    seconds, unknown = 0.0, 0
    for config in later:
        curve = _curve_of(config)[1]
        if minutes is not None:
            seconds += max(0.0, minutes * 60.0 - (curve[-1]["seconds"] if curve else 0.0))
        elif len(curve) >= 2 and curve[-1]["step"] > curve[0]["step"]:
            rate = (curve[-1]["seconds"] - curve[0]["seconds"]) / (
                curve[-1]["step"] - curve[0]["step"]
            )
            seconds += max(0, config.max_steps - curve[-1]["step"]) * rate
        else:
            unknown += 1
    left = f"about {_duration(seconds)} of training left"
    if unknown:
        left += f" and {unknown} configuration(s) not started, at a rate not known yet"
    print(
        f"[{index + 1}/{total}] {name}: {left} (plus test evaluations; "
        f"{_duration(time.time() - start)} so far)",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
