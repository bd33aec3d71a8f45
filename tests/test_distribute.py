"""The trainer under tf.distribute: two replicas train like one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Logical devices must be configured before TensorFlow starts, so each run is
# its own process. It trains the same model from the same initial weights on
# the same batches and prints the loss of every step.
SCRIPT = """
import json, sys
import keras, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import pixel_models
from pixel_models import data, training

mode = sys.argv[1]
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
    trainer = training.Trainer(model, training.make_optimizer("rmsprop", 1e-2), strategy)
images = data.make_shapes(64, 6, seed=3)
batches = tf.data.Dataset.from_tensor_slices(images).batch(16).repeat()
iterator = iter(strategy.experimental_distribute_dataset(batches))
losses = [trainer.train_step(next(iterator)) for _ in range(8)]
test = tf.data.Dataset.from_tensor_slices(images[:32]).batch(16)
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "losses": losses,
                  "test": trainer.evaluate(test)["nll"]}))
"""


def run(mode: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_two_replicas_match_one_device():
    one = run("default")
    two = run("mirrored")
    assert one["replicas"] == 1 and two["replicas"] == 2
    # Same global batch, loss averaged over it, gradients summed over replicas:
    # the trajectories agree up to float32 reduction order.
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-4)
    assert two["test"] == pytest.approx(one["test"], rel=1e-4)
    # And the model did train (the comparison is not between two constants).
    assert one["losses"][-1] < one["losses"][0] - 1.0
