"""The trainer under tf.distribute: two replicas train like one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import saved_steps

ROOT = Path(__file__).resolve().parents[1]

# Logical devices must be configured before TensorFlow starts, so the runs
# have a process of their own. Each trains the same model from the same
# initial weights on the same batches and records the loss of every step.
SCRIPT = """
import json, sys
import keras, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import pixel_models
from pixel_models import data, training

results = {}
for run in sys.argv[1:]:
    mode, _, jit = run.partition("+")
    strategy = (
        tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]) if mode == "mirrored"
        else tf.distribute.get_strategy()
    )
    keras.utils.set_random_seed(7)
    with strategy.scope():
        model = pixel_models.build_model(
            "pixel_cnn", image_shape=(6, 6, 1), hidden_dims=4, recurrent_length=1,
            out_hidden_dims=4, out_recurrent_length=1,
        )
        trainer = training.Trainer(
            model, training.make_optimizer("rmsprop", 1e-2), strategy, jit_compile=jit == "jit"
        )
    images = data.make_shapes(64, 6, seed=3)
    batches = tf.data.Dataset.from_tensor_slices(images).batch(16).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(batches))
    losses = [trainer.train_step(next(iterator)) for _ in range(8)]
    test = tf.data.Dataset.from_tensor_slices(images[:32]).batch(16)
    # 33 images: the last batch of one leaves the second replica none.
    ragged = tf.data.Dataset.from_tensor_slices(images[:33]).batch(16)
    results[run] = {"replicas": strategy.num_replicas_in_sync, "losses": losses,
                    "test": trainer.evaluate(test)["nll"],
                    "ragged": trainer.evaluate(ragged)["nll"]}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def runs() -> dict:
    """One device, two mirrored replicas, and two with XLA-compiled steps, in
    one process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, "default", "mirrored", "mirrored+jit"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_two_replicas_match_one_device(runs):
    one, two = runs["default"], runs["mirrored"]
    assert one["replicas"] == 1 and two["replicas"] == 2
    # Same global batch, loss averaged over it, gradients summed over replicas:
    # the trajectories agree up to float32 reduction order.
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-4)
    assert two["test"] == pytest.approx(one["test"], rel=1e-4)
    assert two["ragged"] == pytest.approx(one["ragged"], rel=1e-4)
    assert two["ragged"] != pytest.approx(two["test"], rel=1e-6)  # the 33rd image counts
    # And the model did train (the comparison is not between two constants).
    assert one["losses"][-1] < one["losses"][0] - 1.0


@pytest.mark.slow
def test_mirrored_xla_compiled_steps_match_one_device(runs):
    one, two = runs["default"], runs["mirrored+jit"]
    assert two["replicas"] == 2
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-4)
    assert two["test"] == pytest.approx(one["test"], rel=1e-4)
    assert two["ragged"] == pytest.approx(one["ragged"], rel=1e-4)


# main.py on two logical CPUs.
_TWO_CPUS = """
import runpy, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
del sys.argv[0]  # "-c": main.py and its flags remain
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_a_global_batch_smaller_than_the_replicas_is_refused(tmp_path):
    from test_cli import TINY, dirs, run_main

    result = run_main(
        *TINY,
        *dirs(tmp_path),
        "--strategy=mirrored",
        "--batch_size=1",
        "--max_steps=2",
        python_args=("-c", _TWO_CPUS),
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --batch_size=1 is the global batch and smaller than the 2 replicas of "
        "--strategy=mirrored: give each replica at least one image (--batch_size >= 2)"
    )
    assert not list(tmp_path.glob("ckpt/*/ckpt-*"))


def free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_args(tmp_path: Path, *extra: str) -> list[str]:
    """The command of a tiny multi-worker run writing below ``tmp_path``."""
    return [
        sys.executable,
        str(ROOT / "main.py"),
        "--data=shapes",
        "--image_size=8",
        "--hidden_dims=4",
        "--recurrent_length=1",
        "--out_hidden_dims=4",
        "--out_recurrent_length=1",
        "--batch_size=16",
        "--num_samples=4",
        "--test_step=2",
        "--save_step=2",
        "--strategy=multi_worker",
        f"--checkpoint_dir={tmp_path / 'ckpt'}",
        f"--log_dir={tmp_path / 'logs'}",
        f"--sample_dir={tmp_path / 'samples'}",
        *extra,
    ]


def start_workers(
    workers: list[str], args: list[str], logs: Path | None = None
) -> list[subprocess.Popen]:
    """One process per worker of the cluster ``workers``, each running ``args``;
    their output goes to pipes, or to ``logs/worker<k>.txt`` (a long run fills a pipe)."""
    processes = []
    for index in range(len(workers)):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps(tf_config),
            TF_CPP_MIN_LOG_LEVEL="3",
            CUDA_VISIBLE_DEVICES="",
        )
        if logs is None:
            out = err = subprocess.PIPE
        else:
            out = err = open(logs / f"worker{index}.txt", "w")  # noqa: SIM115
        processes.append(
            subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=err, text=True)
        )
        if logs is not None:
            out.close()
    return processes


def test_multi_worker_without_tf_config_fails_clearly(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "--data=shapes",
            "--strategy=multi_worker",
            f"--checkpoint_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "TF_CONFIG" in result.stderr and "--strategy=multi_worker" in result.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_a_multi_worker_run_on_localhost_stops_when_a_worker_dies_and_resumes(tmp_path):
    """Two workers on 127.0.0.1 train one run; killing the second stops the
    chief with one line; both started again finish the run from its last
    checkpoint, with the same losses on both workers and the chief's files."""
    import time

    import tensorflow as tf

    import pixel_models
    from pixel_models import training

    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    args = worker_args(tmp_path, "--max_steps=100000", "--save_step=4", "--test_step=100")
    processes = start_workers(workers, args, logs=tmp_path)
    try:
        deadline = time.time() + 240
        while max(saved_steps(tmp_path / "ckpt"), default=0) < 8 and time.time() < deadline:
            assert all(p.poll() is None for p in processes), [p.returncode for p in processes]
            time.sleep(0.5)
        processes[1].kill()
        processes[0].wait(timeout=240)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    err = (tmp_path / "worker0.txt").read_text()
    assert processes[0].returncode == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "lost contact with /job:worker/replica:0/task:1" in line, line
    assert "restart every worker" in line, line
    (run,) = os.listdir(tmp_path / "ckpt")
    saved = saved_steps(tmp_path / "ckpt")
    assert saved and saved[-1] >= 8
    # Both workers started again with the same command (and a step limit)
    # resume and finish the run together.
    last = saved[-1]
    again = start_workers(workers, [*args[:-3], f"--max_steps={last + 4}", *args[-2:]])
    try:
        outputs = [p.communicate(timeout=300) for p in again]
    finally:
        for process in again:
            if process.poll() is None:
                process.kill()
    for process, (_, err) in zip(again, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    assert f"from its checkpoint at step {last}" in outputs[0][1]
    # Both workers took the same steps on the same model: the same final losses.
    finals = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert finals[0]["train/nll"] == pytest.approx(finals[1]["train/nll"], rel=1e-6)
    # The chief (worker 0) wrote the checkpoints, logs and samples; they restore.
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt" / run)).endswith(f"ckpt-{last + 4}")
    # One events file for each start of the chief; the other worker writes none.
    assert len(os.listdir(tmp_path / "logs" / run)) == 2
    model = pixel_models.build_model(
        "pixel_cnn",
        image_shape=(8, 8, 1),
        hidden_dims=4,
        recurrent_length=1,
        out_hidden_dims=4,
        out_recurrent_length=1,
    )
    _, step = training.restore_model(model, str(tmp_path / "ckpt" / run))
    assert step == last + 4
