"""Devices of a run: the ``tf.distribute`` strategy, the TPU, and precision.

Everything here acts on the process (visible devices, the global Keras dtype
policy, seeds), so a run calls it once, before building its model.
"""

from __future__ import annotations

import os
import socket

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


def make_strategy(name: str, tpu: str = "") -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy ``name`` (one of ``STRATEGIES``).

    ``auto`` mirrors over all GPUs when there are more than one, else it is
    the default strategy; ``tpu`` connects to the TPU ``tpu``.

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
        if "TF_CONFIG" not in os.environ:
            raise DeviceError(
                "--strategy=multi_worker needs the TF_CONFIG environment variable describing "
                "the cluster and this task"
            )
        # Before anything lists logical devices: that starts TensorFlow's
        # context, after which collective ops can no longer be configured.
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


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
