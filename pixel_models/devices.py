"""Devices of a run: the ``tf.distribute`` strategy, the TPU, and precision.

Everything here acts on the process (visible devices, the global Keras dtype
policy, seeds), so a run calls it once, before building its model.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import keras
import tensorflow as tf

from pixel_models.errors import first_line

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")


class DeviceError(RuntimeError):
    """The devices asked for cannot be used; the message says why and what to do."""


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of
    ``/proc/meminfo``), or None where the system does not say.

    Example:

    >>> memory = available_memory()
    >>> memory is None or memory > 0
    True
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def mixed_precision_policy() -> str:
    """The mixed precision policy for the visible devices: ``mixed_float16``
    when there is a GPU, ``mixed_bfloat16`` otherwise (CPU, TPU)."""
    return "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"


def set_precision(mixed: bool) -> str:
    """Sets the global Keras dtype policy; returns its name.

    Call it before building the model: layers take the policy current when
    they are created. Under a mixed policy the variables stay float32 (so
    checkpoints are the same as a float32 run's) and every model's
    :class:`~pixel_models.distributions.PixelHead` (a classifier's logits
    layer) computes in float32, so the loss is always float32.

    Args:
      mixed: True for :func:`mixed_precision_policy`, False for float32.
    """
    policy = mixed_precision_policy() if mixed else "float32"
    keras.config.set_dtype_policy(policy)
    return policy


def setup(
    use_gpu: bool = True, mixed_precision: bool = False, seed: int = 123, deterministic=False
) -> None:
    """Applies the settings that act on the whole process: visible GPUs,
    precision, seeds (Python, NumPy, TensorFlow, Keras) and op determinism."""
    if not use_gpu:
        tf.config.set_visible_devices([], "GPU")
    set_precision(mixed_precision)
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def make_strategy(
    name: str, tpu: str = "", worker_wait_seconds: float = 600.0
) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy ``name`` (one of ``STRATEGIES``).

    ``auto`` mirrors over all GPUs when there are more than one, else it is
    the default strategy; ``tpu`` connects to the TPU ``tpu``; ``multi_worker``
    waits up to ``worker_wait_seconds`` for the other workers of ``TF_CONFIG``
    (:func:`multi_worker_strategy`).

    Raises:
      DeviceError: ``multi_worker`` without ``TF_CONFIG``, or an unreachable TPU.

    Example:

    >>> type(make_strategy("default")).__name__
    '_DefaultDistributionStrategy'
    """
    if name not in STRATEGIES:
        raise DeviceError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "tpu":
        return tpu_strategy(tpu)
    if name == "multi_worker":
        # Before anything lists logical devices: that starts TensorFlow's
        # context, after which collective ops can no longer be configured.
        return multi_worker_strategy(worker_wait_seconds)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def cluster_workers() -> tuple[list[str], int]:
    """The worker addresses of ``TF_CONFIG`` and this task's index among them.

    Raises:
      DeviceError: ``TF_CONFIG`` is missing, is not JSON, or names no worker
        task of its cluster.
    """
    if "TF_CONFIG" not in os.environ:
        raise DeviceError(
            "--strategy=multi_worker needs the TF_CONFIG environment variable describing "
            "the cluster and this task"
        )
    example = '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
    try:
        spec = json.loads(os.environ["TF_CONFIG"])
    except ValueError as err:
        raise DeviceError(
            f"the TF_CONFIG environment variable is not valid JSON ({err}); set it to the "
            f"cluster and this task, e.g. {example}"
        ) from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    workers = cluster.get("worker") if isinstance(cluster, dict) else None
    if not (
        isinstance(workers, list)
        and workers
        and all(isinstance(w, str) and w.rpartition(":")[2].isdigit() for w in workers)
    ):
        raise DeviceError(
            f"TF_CONFIG has no cluster.worker list of host:port addresses: e.g. {example}"
        )
    others = sorted(job for job in cluster if job != "worker")
    if others:
        raise DeviceError(
            f"TF_CONFIG's cluster holds the jobs {', '.join(others)}: --strategy=multi_worker "
            f"takes only a worker list (worker 0 is the chief), e.g. {example}"
        )
    index = task.get("index") if isinstance(task, dict) else None
    if (
        not isinstance(task, dict)
        or task.get("type") != "worker"
        or not isinstance(index, int)
        or isinstance(index, bool)
        or not 0 <= index < len(workers)
    ):
        raise DeviceError(
            f'TF_CONFIG\'s task must be a worker of its cluster, {{"type": "worker", '
            f'"index": 0..{len(workers) - 1}}}, got {task!r}'
        )
    return workers, index


# The watchdog of a multi-worker start, run as a process of its own: TensorFlow
# waits for the cluster inside a C++ call that holds the interpreter, so no
# Python thread of the waiting process could speak or stop it.
_WATCHDOG = """
import os, select, signal, socket, sys, time
parent, wait, index, others = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]
def answers(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
        return True
    except (OSError, ValueError):
        return False
def stop(number, frame):
    # A Ctrl-C or a SIGTERM to the process group: the waiting process cannot
    # act on it, so the watchdog speaks and stops it.
    print("error: --strategy=multi_worker: stopped by %s while worker %s waited for %s of "
          "TF_CONFIG; nothing of the run was written" % (signal.Signals(number).name, index,
          ", ".join(others)), file=sys.stderr, flush=True)
    try:
        os.kill(parent, signal.SIGKILL)
    except ProcessLookupError:
        pass
    sys.exit(0)
for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(number, stop)
start = time.time()
note = start + 30.0
while True:
    ready, _, _ = select.select([sys.stdin], [], [], 1.0)
    if ready:
        sys.exit(0)
    now = time.time()
    if now - start >= wait:
        missing = [a for a in others if not answers(a)] or others
        print("error: --strategy=multi_worker: after %.0f s, %s of TF_CONFIG did not join "
              "worker %s: start every worker of the cluster (--worker_wait_seconds sets how "
              "long to wait)" % (wait, ", ".join(missing), index), file=sys.stderr, flush=True)
        os.kill(parent, signal.SIGKILL)
        sys.exit(0)
    if now >= note:
        missing = [a for a in others if not answers(a)] or others
        print("waiting for the workers %s of TF_CONFIG to join (%.0f s more)"
              % (", ".join(missing), wait - (now - start)), file=sys.stderr, flush=True)
        note = now + 30.0
"""


def multi_worker_strategy(wait_seconds: float = 600.0) -> tf.distribute.Strategy:
    """``MultiWorkerMirroredStrategy`` on the cluster of ``TF_CONFIG``, waiting
    at most ``wait_seconds`` for every worker to join.

    TensorFlow waits for the other workers for ever, silently. Here a line
    names the workers that do not answer yet every 30 seconds, and when they
    have not all joined after ``wait_seconds`` the process is stopped (exit
    status 137) after one ``error:`` line that names them. Nothing of the run
    has been read or written by then. A Ctrl-C or SIGTERM sent to the process
    group while it waits stops it the same way, after one line.
    """
    workers, index = cluster_workers()
    others = [address for k, address in enumerate(workers) if k != index]
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(wait_seconds), str(index)] + others,
        stdin=subprocess.PIPE,
    )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        watchdog.stdin.close()  # the cluster is up (or failed): the watchdog ends
        watchdog.wait()


def check_grpc_address(address: str, timeout: float = 10.0) -> None:
    """Raises DeviceError unless something accepts connections at a ``grpc://host:port``
    address (TensorFlow would wait for it for ever); other addresses pass."""
    if not address.startswith("grpc://"):
        return
    host, _, port = address[len("grpc://") :].rpartition(":")
    if not host or not port.isdigit():
        raise DeviceError(f"--tpu={address!r}: a grpc address is grpc://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise DeviceError(
            f"--strategy=tpu: cannot reach --tpu={address!r} (nothing answers at "
            f"{host}:{port}: {reason})"
        ) from None


def tpu_strategy(address: str) -> tf.distribute.Strategy:
    """TPUStrategy on the TPU at ``address``; an unreachable one is a DeviceError."""
    check_grpc_address(address)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as err:  # noqa: BLE001  (the resolver raises many kinds)
        raise DeviceError(
            f"--strategy=tpu: cannot reach --tpu={address!r} ({first_line(err)})"
        ) from None
    return tf.distribute.TPUStrategy(resolver)
