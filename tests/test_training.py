"""The trainer: steps, evaluation, checkpoints, resume, TensorBoard, guards."""

from __future__ import annotations

import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import pixel_models
from pixel_models import data, devices, runs, sampling, training
from pixel_models.kinds import kind_of
from pixel_models.testing import assert_causal

SHAPE = (6, 6, 1)


def tiny_model(hidden_dims: int = 4):
    return pixel_models.build_model(
        "pixel_cnn",
        image_shape=SHAPE,
        hidden_dims=hidden_dims,
        recurrent_length=1,
        out_hidden_dims=4,
        out_recurrent_length=1,
    )


def trainer_for(model=None, lr=1e-2, grad_clip=1.0):
    model = model or tiny_model()
    return training.Trainer(model, training.make_optimizer("adam", lr), grad_clip=grad_clip)


def datasets(batch_size=8):
    images = data.make_shapes(64, SHAPE[0], seed=1)
    train = tf.data.Dataset.from_tensor_slices(images[:48])
    test = tf.data.Dataset.from_tensor_slices(images[48:])
    return (
        data.pipeline(train, batch_size, training=True, seed=0),
        data.pipeline(test, batch_size, training=False),
        images[48:],
    )


def config(tmp_path, **overrides):
    values = dict(
        max_steps=6,
        test_step=3,
        save_step=3,
        checkpoint_dir=str(tmp_path / "ckpt"),
        log_dir=str(tmp_path / "logs"),
        sample_dir=str(tmp_path / "samples"),
        num_samples=4,
        verbose=False,
    )
    values.update(overrides)
    return training.TrainConfig(**values)


def summaries(log_dir) -> dict[str, list[tuple[int, float]]]:
    """Tag -> [(step, value)] of an event folder; NaN for non-scalars (images)."""
    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                number = float(array) if array.ndim == 0 else float("nan")
                found.setdefault(value.tag, []).append((event.step, number))
    return found


def test_evaluate_matches_direct_computation():
    trainer = trainer_for()
    _, test, test_images = datasets()
    result = trainer.evaluate(test)
    model = trainer.model
    logits = model(test_images.astype("float32"))
    expected = float(np.mean(pixel_models.distribution_of(model).nll(logits, test_images)))
    assert result["nll"] == pytest.approx(expected, rel=1e-5)
    assert result["bits_per_dim"] == pytest.approx(expected / (36 * np.log(2)), rel=1e-5)


def test_train_step_lowers_the_loss():
    trainer = trainer_for(lr=3e-2)
    train, test, _ = datasets()
    before = trainer.evaluate(test)["nll"]
    iterator = iter(train)
    for _ in range(40):
        trainer.train_step(next(iterator))
    assert trainer.step == 40
    assert trainer.evaluate(test)["nll"] < before - 1.0


def test_fit_writes_checkpoints_events_and_samples_then_resumes(tmp_path):
    train, test, _ = datasets()
    trainer = trainer_for()
    metrics = training.fit(trainer, train, test, config(tmp_path))
    assert trainer.step == 6
    assert set(metrics) == {"train/nll", "test/nll", "test/bits_per_dim"}
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ckpt-6")
    assert sorted(os.listdir(tmp_path / "samples")) == ["sample_0000003.png", "sample_0000006.png"]
    logged = summaries(str(tmp_path / "logs"))
    assert [s for s, _ in logged["train/nll"]] == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in logged["test/nll"]] == [3, 6]
    assert [s for s, _ in logged["test/bits_per_dim"]] == [3, 6]
    assert [s for s, _ in logged["samples"]] == [3, 6]
    assert logged["test/nll"][-1][1] == pytest.approx(metrics["test/nll"], rel=1e-5)

    # A new trainer on the same folder resumes at step 6 with the same weights
    # and optimizer state, and continues to 9.
    saved = [w.numpy() for w in trainer.model.weights]
    resumed = trainer_for()
    manager, path = training.restore_latest(resumed, str(tmp_path / "ckpt"))
    assert path.endswith("ckpt-6") and resumed.step == 6
    for a, b in zip(saved, resumed.model.weights, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    again = trainer_for()
    training.fit(again, train, test, config(tmp_path, max_steps=9))
    assert again.step == 9
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ckpt-9")


def test_a_resumed_run_reads_the_batches_an_uninterrupted_run_reads(tmp_path):
    results = {}
    for name, stops in [("whole", [8]), ("resumed", [3, 8]), ("repeated", [3, 8])]:
        for max_steps in stops:
            keras.utils.set_random_seed(0)
            train, test, _ = datasets()  # built again, as main.py builds it in each run
            trainer = trainer_for()
            skip = name != "repeated"
            fitted = config(tmp_path / name, max_steps=max_steps, skip_trained_batches=skip)
            results[name] = training.fit(trainer, train, test, fitted)["test/nll"]
    assert results["resumed"] == pytest.approx(results["whole"], rel=1e-5)
    # Training on the first batches again is another run (the check can fail).
    assert results["repeated"] != pytest.approx(results["whole"], rel=1e-5)


def test_fit_stops_at_the_time_budget(tmp_path):
    train, _, _ = datasets()
    trainer = trainer_for()
    training.fit(trainer, train, None, config(tmp_path, max_steps=10**6, max_seconds=0.0))
    # The budget is checked after each step: one step, then a final checkpoint.
    assert trainer.step == 1
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ckpt-1")


def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(tmp_path):
    train, test, _ = datasets()
    trainer = trainer_for()
    training.fit(trainer, train, test, config(tmp_path, max_steps=3))
    ckpt = str(tmp_path / "ckpt")
    files = {p: os.path.getmtime(p) for p in glob.glob(f"{ckpt}/ckpt-3.*")}
    # An absurd learning rate without clipping blows the weights up.
    bad = trainer_for(lr=1e30, grad_clip=0.0)
    with pytest.raises(training.TrainingError, match=r"non-finite at step \d+|became nan") as err:
        training.fit(bad, train, test, config(tmp_path, max_steps=50, save_step=1))
    message = str(err.value)
    assert "last good checkpoint: " in message and "--learning_rate" in message
    named = message.split("last good checkpoint: ")[1].split(")")[0]
    assert named == tf.train.latest_checkpoint(ckpt)
    # The checkpoints of the good run are untouched and the last one is finite.
    assert {p: os.path.getmtime(p) for p in files} == files
    check = trainer_for()
    training.restore_latest(check, ckpt)
    assert all(np.isfinite(w.numpy()).all() for w in check.model.weights)


def test_restoring_another_models_checkpoint_fails_clearly(tmp_path):
    train, test, _ = datasets()
    training.fit(trainer_for(), train, test, config(tmp_path, max_steps=3, num_samples=0))
    other = trainer_for(tiny_model(hidden_dims=6))
    with pytest.raises(training.TrainingError, match="another model or is damaged"):
        training.restore_latest(other, str(tmp_path / "ckpt"))


def test_check_run_config(tmp_path):
    folder = str(tmp_path / "run")
    first = {"model": "pixel_cnn", "config": {"hidden_dims": 4}}
    runs.check_run_config(folder, first)
    with open(os.path.join(folder, "run_config.json")) as f:
        assert json.load(f) == first
    runs.check_run_config(folder, first)  # same settings: fine
    with pytest.raises(runs.RunError, match="config=.*another --checkpoint_dir"):
        runs.check_run_config(folder, {"model": "pixel_cnn", "config": {"hidden_dims": 8}})
    with open(os.path.join(folder, "run_config.json")) as f:
        assert json.load(f) == first


def test_make_optimizer_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown optimizer 'sgdx'"):
        training.make_optimizer("sgdx", 1e-3)
    with pytest.raises(ValueError, match="learning_rate"):
        training.make_optimizer("adam", 0.0)
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match=f"warmup_steps must be an integer >= 0, got {bad}"):
            training.make_optimizer("adam", 1e-3, warmup_steps=bad)


def test_warmup_rises_linearly_then_stays():
    schedule = training.LinearWarmup(2e-3, warmup_steps=4)
    values = [float(schedule(step)) for step in range(7)]
    np.testing.assert_allclose(values, [5e-4, 1e-3, 1.5e-3, 2e-3, 2e-3, 2e-3, 2e-3], rtol=1e-6)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(again, training.LinearWarmup) and again.get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 1, got 0"):
        training.LinearWarmup(1e-3, 0)


def _warmup_trainer(warmup_steps=8, lr=1e-2):
    optimizer = training.make_optimizer("adam", lr, warmup_steps=warmup_steps)
    return training.Trainer(tiny_model(), optimizer)


def test_warmup_steps_follow_the_schedule_and_resume_where_they_stopped(tmp_path):
    train, test, _ = datasets()
    trainer = _warmup_trainer()
    # The first update moves the weights by about lr / 8 (Adam's steps are lr-sized).
    before = [w.numpy() for w in trainer.model.trainable_weights]
    trainer.train_step(next(iter(train)))
    moved = max(
        float(np.max(np.abs(w.numpy() - b)))
        for w, b in zip(trainer.model.trainable_weights, before, strict=True)
    )
    assert 0.5e-2 / 8 < moved <= 1.01e-2 / 8
    training.fit(trainer, train, test, config(tmp_path, max_steps=3))
    assert float(trainer.optimizer.learning_rate) == pytest.approx(1e-2 * 4 / 8)
    # A resumed run keeps the schedule (not a constant rate) at the restored step.
    resumed = _warmup_trainer()
    _, path = training.restore_latest(resumed, str(tmp_path / "ckpt"))
    assert path.endswith("ckpt-3") and resumed.step == 3
    assert float(resumed.optimizer.learning_rate) == pytest.approx(1e-2 * 4 / 8)
    training.fit(resumed, train, test, config(tmp_path, max_steps=10))
    assert float(resumed.optimizer.learning_rate) == pytest.approx(1e-2)


def test_restore_model_loads_weights_only(tmp_path):
    train, test, _ = datasets()
    trainer = trainer_for()
    training.fit(trainer, train, test, config(tmp_path, max_steps=3, num_samples=0))
    model = tiny_model()
    path, step = training.restore_model(model, str(tmp_path / "ckpt"))
    assert path.endswith("ckpt-3") and step == 3
    for a, b in zip(trainer.model.weights, model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(training.TrainingError, match="no checkpoint in"):
        training.restore_model(tiny_model(), str(tmp_path / "empty"))
    with pytest.raises(training.TrainingError, match="another model or is damaged"):
        training.restore_model(tiny_model(hidden_dims=6), str(tmp_path / "ckpt"))


def test_damaged_checkpoint_fails_clearly(tmp_path):
    train, test, _ = datasets()
    training.fit(trainer_for(), train, test, config(tmp_path, max_steps=3, num_samples=0))
    (data_file,) = glob.glob(str(tmp_path / "ckpt" / "ckpt-3.data-*"))
    with open(data_file, "r+b") as f:
        f.truncate(16)
    with pytest.raises(training.TrainingError, match="another model or is damaged"):
        training.restore_latest(trainer_for(), str(tmp_path / "ckpt"))


def _labelled_shapes(num: int, seed: int):
    """8x8 shapes labelled 1 when more than a fifth of the pixels are on: a task
    whose answer does not change when the image turns or mirrors."""
    images = data.make_shapes(num, 8, seed=seed)
    labels = (images.reshape(num, -1).mean(axis=1) > 0.2).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((images, labels))


@pytest.mark.slow
def test_a_classifier_trains_and_reports_accuracy(tmp_path):
    keras.utils.set_random_seed(0)
    model = pixel_models.build_model(
        "invariant_cnn",
        image_shape=(8, 8, 1),
        num_classes=2,
        group="C4",
        base_width=8,
        stages=(1, 1),
        levels=2,
    )
    assert kind_of(model).name == "classifier"
    assert kind_of(pixel_models.build_model("pixel_cnn", image_shape=(4, 4, 1))).name == "density"
    trainer = training.Trainer(model, training.make_optimizer("adam", 1e-2))
    train = data.pipeline(_labelled_shapes(512, 0), 32, training=True, seed=0)
    test = data.pipeline(_labelled_shapes(256, 1), 64, training=False)
    config = training.TrainConfig(
        max_steps=400,
        test_step=60,
        save_step=60,
        checkpoint_dir=str(tmp_path / "ckpt"),
        log_dir=str(tmp_path / "logs"),
        sample_dir=str(tmp_path / "samples"),
        num_samples=4,
        verbose=False,
    )
    metrics = training.fit(trainer, train, test, config)
    assert set(metrics) == {"train/nll", "test/nll", "test/accuracy"}
    # Better than always answering the majority class (65% of this test set)
    # and than a coin (ln 2 nats); batch-norm statistics are still settling.
    test_labels = np.concatenate([labels for _, labels in test.as_numpy_iterator()])
    majority = max(test_labels.mean(), 1 - test_labels.mean())
    assert metrics["test/accuracy"] > majority + 0.08, metrics
    assert metrics["test/nll"] < np.log(2), metrics
    assert not os.path.exists(tmp_path / "samples")  # a classifier draws no images
    tags = set()
    for path in glob.glob(str(tmp_path / "logs" / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    assert {"train/nll", "test/nll", "test/accuracy"} <= tags and "samples" not in tags
    with pytest.raises(training.TrainingError, match=r"\(images, labels\)"):
        trainer.evaluate(test.map(lambda images, labels: images))


@pytest.fixture
def float32_afterwards():
    """Restores the global float32 dtype policy after a mixed precision test."""
    yield
    keras.config.set_dtype_policy("float32")


def test_set_precision_picks_the_policy_for_the_devices(float32_afterwards):
    gpus = tf.config.list_logical_devices("GPU")
    assert devices.set_precision(True) == ("mixed_float16" if gpus else "mixed_bfloat16")
    assert keras.config.dtype_policy().name == devices.mixed_precision_policy()
    assert devices.set_precision(False) == "float32"
    assert keras.config.dtype_policy().name == "float32"


def test_mixed_bfloat16_trains_with_a_float32_head_and_samples(float32_afterwards):
    keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(0)
    model = tiny_model()
    hidden = [layer for layer in model.layers if layer.weights and layer is not model.layers[-1]]
    assert {layer.compute_dtype for layer in hidden} == {"bfloat16"}
    assert all(w.dtype == "float32" for w in model.weights)  # variables stay float32
    head = pixel_models.head_of(model)
    assert head.compute_dtype == "float32"
    train, test, test_images = datasets()
    assert model(test_images[:2].astype("float32")).dtype == "float32"
    trainer = trainer_for(model, lr=3e-2)
    assert not isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    before = trainer.evaluate(test)["nll"]
    iterator = iter(train)
    losses = [trainer.train_step(next(iterator)) for _ in range(10)]
    assert all(np.isfinite(losses)) and trainer.step == 10
    assert trainer.evaluate(test)["nll"] < before
    samples = pixel_models.sample(model, 3, seed=1, method="reference")
    assert samples.shape == (3, *SHAPE) and set(np.unique(samples)) <= {0, 1}


@pytest.mark.slow
def test_the_cached_sampler_runs_a_mixed_precision_model(float32_afterwards):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = pixel_models.build_model(
        "gated_pixel_cnn", image_shape=(4, 4, 3), levels=4, hidden_dims=4, recurrent_length=1
    )
    assert sampling.supports_cached(model)
    samples = pixel_models.sample(model, 2, seed=1, method="cached")
    assert samples.shape == (2, 4, 4, 3) and samples.min() >= 0 and samples.max() <= 3


def test_a_mixed_precision_model_is_causal(float32_afterwards):
    keras.config.set_dtype_policy("mixed_bfloat16")
    # Seeded, and wide enough that some ReLU path from the past is open.
    keras.utils.set_random_seed(0)
    model = pixel_models.build_model(
        "pixel_cnn", image_shape=(4, 4, 1), hidden_dims=8, recurrent_length=2, out_hidden_dims=8
    )
    found = assert_causal(model, (4, 4, 1), strict=True)
    assert found[3, 3, 0].sum() > 0  # the last pixel sees some of the ones before it


def test_mixed_float16_scales_the_loss_and_skips_overflowing_steps(float32_afterwards):
    keras.config.set_dtype_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    trainer = trainer_for()
    optimizer = trainer.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer) and trainer.loss_scale
    initial = float(optimizer.dynamic_scale.numpy())
    weights = [w.numpy() for w in trainer.model.weights]
    train, _, _ = datasets()
    iterator = iter(train)
    # At the initial scale (2**15) the float16 gradients of a ~30-nat loss
    # overflow: the step is skipped, the weights stay, the scale halves.
    assert np.isfinite(trainer.train_step(next(iterator)))
    assert trainer.step == 0 and float(optimizer.dynamic_scale.numpy()) == initial / 2
    for a, b in zip(weights, trainer.model.weights, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    for _ in range(40):
        if trainer.step == 3:
            break
        assert np.isfinite(trainer.train_step(next(iterator)))
    assert trainer.step == 3 and float(optimizer.dynamic_scale.numpy()) < initial
    assert all(np.isfinite(w.numpy()).all() for w in trainer.model.weights)


def test_fit_logs_and_saves_only_the_steps_a_float16_run_takes(tmp_path, float32_afterwards):
    keras.config.set_dtype_policy("mixed_float16")
    train, test, _ = datasets()
    trainer = trainer_for()
    overrides = dict(max_steps=2, test_step=1, save_step=1, num_samples=0)
    metrics = training.fit(trainer, train, test, config(tmp_path, **overrides))
    assert trainer.step == 2 and np.isfinite(metrics["test/nll"])
    # The first steps overflow at the initial scale and are skipped unlogged.
    assert float(trainer.optimizer.dynamic_scale.numpy()) < 2.0**15
    assert [s for s, _ in summaries(str(tmp_path / "logs"))["train/nll"]] == [1, 2]
    saved = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "ckpt" / "*.index")))
    assert saved == ["ckpt-1.index", "ckpt-2.index"]


def _save(trainer, folder) -> None:
    manager = tf.train.CheckpointManager(trainer.checkpoint(), str(folder), max_to_keep=1)
    manager.save(checkpoint_number=trainer.step)


@pytest.mark.parametrize(
    "written, read",
    [("mixed_bfloat16", "float32"), ("float32", "mixed_float16"), ("mixed_float16", "float32")],
)
def test_checkpoints_restore_across_precisions(tmp_path, float32_afterwards, written, read):
    keras.config.set_dtype_policy(written)
    trainer = trainer_for(lr=1e-3)
    train, _, _ = datasets()
    iterator = iter(train)
    while trainer.step < 2:  # a float16 run skips steps until its loss scale fits
        trainer.train_step(next(iterator))
    _save(trainer, tmp_path)
    keras.config.set_dtype_policy(read)
    resumed = trainer_for(lr=1e-3)
    _, path = training.restore_latest(resumed, str(tmp_path))
    assert path.endswith("ckpt-2") and resumed.step == 2
    for a, b in zip(trainer.model.weights, resumed.model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    slots = training._inner_optimizer(resumed.optimizer).variables
    saved = training._inner_optimizer(trainer.optimizer).variables
    for a, b in zip(saved, slots, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def _losses(name: str, jit_compile: bool, steps: int = 4):
    keras.utils.set_random_seed(0)
    model = pixel_models.build_model(
        name,
        image_shape=SHAPE,
        hidden_dims=4,
        recurrent_length=1,
        out_hidden_dims=4,
        out_recurrent_length=1,
    )
    trainer = training.Trainer(
        model, training.make_optimizer("adam", 1e-2), jit_compile=jit_compile
    )
    train, test, _ = datasets()
    iterator = iter(train)
    losses = [trainer.train_step(next(iterator)) for _ in range(steps)]
    return losses, trainer.evaluate(test)["nll"]


@pytest.mark.parametrize(
    "name",
    [
        "pixel_cnn",  # convolutions (the gated blocks add none that XLA treats otherwise)
        pytest.param("pixel_rnn", marks=pytest.mark.slow),  # the recurrent layers' loops
    ],
)
def test_jit_compiled_steps_match_the_plain_ones(name):
    plain, plain_test = _losses(name, jit_compile=False)
    compiled, compiled_test = _losses(name, jit_compile=True)
    assert compiled == pytest.approx(plain, rel=1e-4)
    assert compiled_test == pytest.approx(plain_test, rel=1e-4)
    assert plain[-1] < plain[0]


def test_one_device_strategy_trains():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = tiny_model()
        trainer = training.Trainer(model, training.make_optimizer("adam", 1e-2), strategy)
    train, test, _ = datasets()
    iterator = iter(strategy.experimental_distribute_dataset(train))
    losses = [trainer.train_step(next(iterator)) for _ in range(5)]
    assert all(np.isfinite(losses)) and trainer.step == 5 and losses[-1] < losses[0]
    assert np.isfinite(trainer.evaluate(test)["nll"])
