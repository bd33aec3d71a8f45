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
