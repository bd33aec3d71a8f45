"""Train, evaluate and sample the models of pixel_models.

    python main.py --data=shapes --model=pixel_cnn --max_steps=300
    python main.py --data=shapes --model=pixel_cnn --is_train=False

Parses the flags (``flags.py``) into one frozen run config and hands it to
:func:`pixel_models.experiment.run`; everything else lives in the package.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

from absl import app

HELP_FLAGS = ("--help", "-h", "--helpshort", "--helpfull", "-?")


@contextlib.contextmanager
def _quiet_native_logs(argv: list[str]):
    """Holds back what TensorFlow's native code prints to stderr while it is
    imported and looks for GPUs (oneDNN, CUDA and CPU feature notices, before
    any flag is read),
    unless ``--log_level=DEBUG`` is asked for or ``TF_CPP_MIN_LOG_LEVEL`` is
    set. If the import fails, what was held back is printed after all."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "--log_level=DEBUG" in argv:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            os.write(2, held.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


with _quiet_native_logs(sys.argv):
    import tensorflow as tf

    import flags as _flags

    tf.config.list_physical_devices("GPU")  # the CUDA driver's own notices, if any

FLAGS = _flags.FLAGS


def main(argv) -> int:
    from pixel_models import experiment
    from pixel_models.config import UsageError

    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    print(experiment.run(_flags.run_config()), flush=True)
    return 0


def _main_with_errors(argv) -> None:
    import tensorflow as tf

    from pixel_models.config import UsageError
    from pixel_models.data import DataError
    from pixel_models.devices import DeviceError
    from pixel_models.errors import first_line
    from pixel_models.runs import RunError
    from pixel_models.training import TrainingError

    errors = (UsageError, DataError, DeviceError, RunError, TrainingError, ValueError, OSError)
    try:
        sys.exit(main(argv))
    except (*errors, tf.errors.OpError) as err:
        # The one line says it all: TensorFlow's warnings about the objects
        # then deleted (e.g. each value a refused checkpoint did not restore)
        # would bury it.
        tf.get_logger().setLevel("ERROR")
        message = first_line(err, with_type=True) if isinstance(err, tf.errors.OpError) else err
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        tf.get_logger().setLevel("ERROR")
        print(
            "error: interrupted; a run keeps its last checkpoint, and the same command "
            "resumes from it",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(130)


def run() -> None:
    """Entry point of ``python main.py`` and of the ``pixel-models`` console script."""
    # --helpshort lists the key flags of the program named by sys.argv[0],
    # which for the console script is not this module.
    for flag in FLAGS.get_key_flags_for_module(_flags):
        FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    try:
        app.run(_main_with_errors)
    except SystemExit as done:
        # absl ends --help and --helpshort with status 1; asking for help is no error.
        asked = any(arg in HELP_FLAGS for arg in sys.argv[1:])
        sys.exit(0 if asked and done.code == 1 else done.code)


if __name__ == "__main__":
    run()
