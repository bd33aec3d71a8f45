"""Train, evaluate and sample the models of pixel_models.

    python main.py --data=shapes --model=pixel_cnn --max_steps=300
    python main.py --data=shapes --model=pixel_cnn --is_train=False

Parses the flags (``flags.py``) into one frozen run config and hands it to
:func:`pixel_models.experiment.run`; everything else lives in the package.
"""

from __future__ import annotations

import sys

from absl import app

import flags as _flags

FLAGS = _flags.FLAGS


def main(argv) -> int:
    from pixel_models import experiment
    from pixel_models.config import UsageError

    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    print(experiment.run(_flags.run_config()), flush=True)
    return 0


def _main_with_errors(argv) -> None:
    from pixel_models.config import UsageError
    from pixel_models.data import DataError
    from pixel_models.devices import DeviceError
    from pixel_models.runs import RunError
    from pixel_models.training import TrainingError

    errors = (UsageError, DataError, DeviceError, RunError, TrainingError, ValueError, OSError)
    try:
        sys.exit(main(argv))
    except errors as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)


def run() -> None:
    """Entry point of ``python main.py`` and of the ``pixel-models`` console script."""
    # --helpshort lists the key flags of the program named by sys.argv[0],
    # which for the console script is not this module.
    for flag in FLAGS.get_key_flags_for_module(_flags):
        FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(_main_with_errors)


if __name__ == "__main__":
    run()
