"""Pieces every benchmark script shares: what the numbers were measured on,
the settings of a run, and writing its JSON report.

Importing this module puts the checkout's root first on the import path, so
a benchmark measures the package of its own checkout, not an installed copy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from pixel_models.runs import write_json_atomic  # noqa: E402


def machine() -> dict:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def settings(args: argparse.Namespace, leave_out: tuple[str, ...] = ("output",)) -> dict:
    """The command-line settings of a run, but those in ``leave_out``."""
    return {k: v for k, v in vars(args).items() if k not in leave_out}


def require_at_least(
    parser: argparse.ArgumentParser, args: argparse.Namespace, low: int, names
) -> None:
    """Exits through ``parser.error`` (status 2, one line naming the option) on
    the first option of ``names`` whose value is below ``low``."""
    for name in names:
        value = getattr(args, name)
        if value < low:
            parser.error(f"--{name} must be an integer >= {low}, got {value}")


def require_above(
    parser: argparse.ArgumentParser, args: argparse.Namespace, low: float, names
) -> None:
    """Like ``require_at_least`` for numbers that must be strictly above ``low``
    (and finite)."""
    for name in names:
        value = getattr(args, name)
        if not low < value < float("inf"):
            parser.error(f"--{name} must be a finite number > {low}, got {value}")


def write_report(report: dict, output: str | None) -> None:
    """Writes a benchmark report as JSON (atomically) when ``output`` is given."""
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        write_json_atomic(output, report)


def publish(report: dict, output: str | None, show: bool = True) -> dict:
    """Adds ``machine`` to ``report``, prints it (``show``), writes it to
    ``output`` when given, and returns it."""
    report["machine"] = machine()
    if show:
        print(json.dumps(report, indent=2))
    write_report(report, output)
    return report


def time_in_turns(fns: dict, rounds: int) -> dict:
    """Seconds of each call of the callables ``fns``, taken in turn, round
    after round, so that a changing load on a shared machine falls on all of
    them alike: ``{name: [seconds of each round]}``."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            tic = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - tic)
    return times


def train_in_turns(steps: dict, batches, seconds: float) -> tuple[dict, dict, dict]:
    """Steps each of the training-step callables ``steps`` (``batch -> loss``)
    for ``seconds`` of its own time, always the one with the least time so far.

    Returns:
      ``(spent, counts, curves)``: per name, the seconds spent, the steps
      taken, and ``[step, seconds so far, loss]`` after each step.
    """
    spent = {name: 0.0 for name in steps}
    counts = {name: 0 for name in steps}
    curves = {name: [] for name in steps}
    while min(spent.values()) < seconds:
        name = min(spent, key=spent.get)
        batch = next(batches)
        tic = time.perf_counter()
        loss = steps[name](batch)
        spent[name] += time.perf_counter() - tic
        counts[name] += 1
        curves[name].append([counts[name], round(spent[name], 1), round(float(loss), 3)])
    return spent, counts, curves
