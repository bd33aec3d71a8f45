"""Keras-native training: PixelNLL, the metrics, fit with callbacks, load_run, .keras files."""

from __future__ import annotations

import glob
import inspect
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import pixel_models as pm
from pixel_models import data, experiment, runs, training
from pixel_models import images as images_module
from pixel_models.config import RunConfig, model_config
from pixel_models.kinds import kind_for_builder, kind_of
from pixel_models.models import MODELS

ROOT = Path(__file__).resolve().parents[1]
SIZE = 4
# Tiny sizes, set only where a builder takes them.
TINY = {
    "hidden_dims": 2,
    "recurrent_length": 1,
    "out_hidden_dims": 2,
    "out_recurrent_length": 0,
    "encoder_dims": 2,
    "upsample_length": 1,
    "num_resnet": 1,
    "num_resolutions": 2,
    "num_mixtures": 2,
    "num_blocks": 1,
    "residual_blocks": 1,
    "key_dims": 2,
    "value_dims": 2,
}
DENSITY_MODELS = sorted(name for name in MODELS if kind_for_builder(name).draws_images)


def build(name: str, seed: int = 0, **extra) -> keras.Model:
    parameters = inspect.signature(MODELS[name]).parameters
    sizes = {k: v for k, v in TINY.items() if k in parameters}
    if name == "autoencoder":
        sizes["latent_dims"] = 2
    keras.utils.set_random_seed(seed)
    return pm.build_model(name, image_shape=(SIZE, SIZE, 1), levels=2, **sizes, **extra)


def shapes(num: int = 16, with_labels: bool = False, batch_size: int = 8) -> tf.data.Dataset:
    """Batches of binary 4x4 shapes, in a fixed order."""
    ds = data.load("shapes", "train", image_size=SIZE, num_examples=num, with_labels=with_labels)
    return data.pipeline(ds, batch_size, training=False)


def compiled(model: keras.Model, learning_rate: float = 1e-2) -> keras.Model:
    model.compile(
        keras.optimizers.Adam(learning_rate, clipvalue=1.0),
        loss=pm.PixelNLL.for_model(model),
        metrics=[pm.NLL.for_model(model), pm.BitsPerDim.for_model(model)],
        jit_compile=False,
    )
    return model


def test_pixel_nll_reads_bernoulli_and_categorical_heads():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 4, (3, 2, 2, 3)).astype("float32")
    logits = rng.normal(size=(3, 2, 2, 3, 4)).astype("float32")
    expected = pm.Categorical(3, 4).nll(logits, images).numpy()
    assert np.allclose(pm.PixelNLL()(images, logits), expected.mean(), rtol=1e-6)
    assert np.allclose(pm.PixelNLL("categorical")(images, logits), expected.mean(), rtol=1e-6)
    bits = pm.BitsPerDim()
    bits.update_state(images, logits)
    assert np.isclose(float(bits.result()), expected.mean() / (12 * math.log(2)), rtol=1e-6)
    binary = (images > 1).astype("float32")
    bernoulli = rng.normal(size=binary.shape).astype("float32")
    per_image = pm.Bernoulli(3).nll(bernoulli, binary).numpy()
    none = pm.PixelNLL(reduction=None)(binary, bernoulli)
    assert np.allclose(none, per_image, rtol=1e-6)
    with pytest.raises(ValueError, match="not bernoulli logits"):
        pm.PixelNLL("bernoulli")(images, logits)
    with pytest.raises(ValueError, match="must end in a PixelHead"):
        pm.PixelNLL()(images, logits[..., 0, 0])
    with pytest.raises(ValueError, match="kind must be one of"):
        pm.PixelNLL("gaussian")


def test_fit_refuses_targets_outside_the_heads_support():
    # 8-bit images given to a binary model: a Bernoulli "likelihood" of 255
    # is above 1 and its loss falls without bound, so the step fails instead.
    model = compiled(build("pixel_cnn"))
    images = np.full((4, SIZE, SIZE, 1), 255.0, np.float32)
    allowed = "images must hold integers in \\[0, 1\\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=allowed):
        model.fit(images, images, epochs=1, verbose=0)


@pytest.mark.parametrize("name", DENSITY_MODELS)
def test_pixel_nll_is_the_loss_the_trainer_minimises(name):
    # The composite models need no loss of their own: the multi-scale
    # model's logits are the small model's on the grid and the full model's
    # elsewhere, the autoencoder's are the decoder's given the images' codes.
    model = build(name)
    images = data.make_shapes(3, SIZE, seed=0).astype("float32")
    loss, terms = kind_of(model).per_example(model, images, None, training=False)
    nll = pm.PixelNLL.for_model(model, reduction=None)(images, model(images))
    np.testing.assert_allclose(nll, loss, rtol=1e-5)
    if terms:
        np.testing.assert_allclose(sum(terms.values()), nll, rtol=1e-5)
        from_logits = model.nll_terms_of_logits(model(images), images)
        for name, value in terms.items():
            np.testing.assert_allclose(from_logits[name], value, rtol=1e-5, atol=1e-5)


def test_loss_and_metrics_serialize():
    for obj in (pm.PixelNLL("categorical"), pm.NLL(), pm.BitsPerDim("bernoulli")):
        config = keras.saving.serialize_keras_object(obj)
        assert config["registered_name"].startswith("pixel_models>")
        again = keras.saving.deserialize_keras_object(config)
        assert type(again) is type(obj) and again.kind == obj.kind and again.name == obj.name


def test_metrics_read_images_whose_size_is_known_only_per_batch():
    sizes = dict(hidden_dims=2, recurrent_length=1, out_recurrent_length=0)
    model = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), **sizes)
    model.compile("adam", loss=pm.PixelNLL(), metrics=[pm.NLL(), pm.BitsPerDim()])
    x = np.random.default_rng(0).integers(0, 2, (8, 4, 4, 1)).astype("float32")
    spec = tf.TensorSpec((None, None, None, 1))  # as decode_png or a generator give
    unknown = tf.data.Dataset.from_generator(lambda: iter([(x, x)]), output_signature=(spec, spec))
    got = model.evaluate(unknown, verbose=0, return_dict=True)
    assert got == pytest.approx(model.evaluate(x, x, verbose=0, return_dict=True), rel=1e-6)
    assert got["bits_per_dim"] == pytest.approx(got["nll"] / (16 * math.log(2)), rel=1e-6)


def test_fit_data_targets_are_the_images():
    images = np.arange(2 * 2 * 2).reshape(2, 2, 2, 1).astype("uint8")
    x, y = next(iter(pm.fit_data(tf.data.Dataset.from_tensors(images))))
    assert x.dtype == tf.float32 and np.array_equal(x, images) and np.array_equal(y, images)
    (x, labels), y = next(iter(pm.fit_data(tf.data.Dataset.from_tensors((images, [1, 2])))))
    assert labels.numpy().tolist() == [1, 2] and np.array_equal(y, images)
    with pytest.raises(ValueError, match="3 parts"):
        pm.fit_data(tf.data.Dataset.from_tensors((images, images, images)))
    # A tfds dataset's elements are dicts of features.
    with pytest.raises(ValueError, match="got elements of type dict with keys image, label"):
        pm.fit_data(tf.data.Dataset.from_tensors({"image": images, "label": [1, 2]}))


CASES = [
    pytest.param(name, False, marks=() if name == "pixel_cnn" else pytest.mark.slow, id=name)
    for name in DENSITY_MODELS
] + [pytest.param("pixel_cnn", True, id="pixel_cnn_conditional")]


@pytest.mark.parametrize("name, conditional", CASES)
def test_fit_trains_every_density_model(name, conditional):
    model = compiled(build(name, **({"num_classes": 3} if conditional else {})))
    batches = shapes(with_labels=conditional)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(pm.fit_data(batches), validation_data=pm.fit_data(batches), verbose=0)
    logs = {key: values[-1] for key, values in history.history.items()}
    # A model that splits its NLL into terms logs their means too.
    terms = getattr(model, "nll_term_names", ())
    names = {"loss", "nll", "bits_per_dim", *terms}
    assert set(logs) == names | {f"val_{name}" for name in names}
    if terms:
        assert np.isclose(sum(logs[f"val_{t}"] for t in terms), logs["val_nll"], rtol=1e-5)
    assert np.isclose(logs["loss"], logs["nll"], rtol=1e-5)
    assert np.isclose(logs["val_bits_per_dim"], logs["val_nll"] / (16 * math.log(2)), rtol=1e-5)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    # fit's validation NLL is the one the library's evaluation gives.
    trainer = training.Trainer(model, training.make_optimizer("adam", 1e-3))
    assert np.isclose(logs["val_nll"], trainer.evaluate(batches)["nll"], rtol=1e-5)


def run_config(tmp_path, **overrides) -> RunConfig:
    values = dict(
        data="shapes",
        image_size=SIZE,
        hidden_dims=2,
        recurrent_length=1,
        out_recurrent_length=0,
        batch_size=8,
        max_steps=6,
        test_step=6,
        save_step=6,
        num_samples=0,
        use_gpu=False,
        checkpoint_dir=str(tmp_path / "ckpt"),
        log_dir=str(tmp_path / "logs"),
        sample_dir=str(tmp_path / "samples"),
    )
    values.update(overrides)
    return RunConfig(**values)


@pytest.mark.slow
def test_the_trainer_and_fit_reach_the_same_weights_and_nll(tmp_path):
    config = run_config(tmp_path)
    trained = json.loads(experiment.run(config))
    # The same seeding, model, optimizer (RMSProp, gradients clipped by value
    # to --grad_clip) and batches, through model.fit.
    experiment.setup(config)
    info = data.info(config.data, image_size=config.image_size, color_levels=config.color_levels)
    model = MODELS[config.model](**model_config(config, info))
    optimizer = training.make_optimizer(
        config.optimizer, config.learning_rate, clipvalue=config.grad_clip
    )
    model.compile(optimizer, loss=pm.PixelNLL(), metrics=[pm.NLL()], jit_compile=False)
    train = data.pipeline(
        experiment.run_dataset(config, "train"),
        config.batch_size,
        training=True,
        seed=config.random_seed,
    )
    test = data.pipeline(experiment.run_dataset(config, "test"), config.batch_size, training=False)
    history = model.fit(
        pm.fit_data(train),
        steps_per_epoch=config.max_steps,
        validation_data=pm.fit_data(test),
        verbose=0,
    )
    cli_model, _ = pm.load_run(os.path.join(config.checkpoint_dir, trained["run"]))
    for a, b in zip(cli_model.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # Equal weights give the trainer's test NLL exactly; Keras's metric sums
    # the batches in float32 where the trainer sums them as Python floats.
    trainer = training.Trainer(model, training.make_optimizer("rmsprop", 1e-3))
    assert trainer.evaluate(test)["nll"] == trained["test/nll"]
    assert np.isclose(history.history["val_nll"][-1], trained["test/nll"], rtol=1e-6, atol=0)


class StopAfter(keras.callbacks.Callback):
    """Interrupts training at the end of an epoch, as a crash would."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"stopped after epoch {epoch}")


def test_model_checkpoint_and_backup_and_restore_resume(tmp_path):
    batches = pm.fit_data(shapes())
    whole = compiled(build("pixel_cnn"))
    saved = str(tmp_path / "epoch{epoch}.keras")
    whole.fit(batches, epochs=3, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint(saved)])
    # The same training, interrupted after its second epoch and run again.
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    interrupted = compiled(build("pixel_cnn"))
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(batches, epochs=3, verbose=0, callbacks=[backup, StopAfter(1)])
    resumed = compiled(build("pixel_cnn", seed=1))
    history = resumed.fit(batches, epochs=3, verbose=0, callbacks=[backup])
    assert len(history.history["loss"]) == 1  # only the third epoch ran again
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # ModelCheckpoint's .keras files hold the compiled model, loss included.
    loaded = keras.saving.load_model(tmp_path / "epoch3.keras")
    assert isinstance(loaded.loss, pm.PixelNLL)
    x = next(iter(batches))[0]
    np.testing.assert_allclose(loaded(x), whole(x), rtol=1e-6, atol=1e-6)
    evaluated = loaded.evaluate(batches, verbose=0, return_dict=True)
    expected = whole.evaluate(batches, verbose=0, return_dict=True)
    assert np.isclose(evaluated["nll"], expected["nll"], rtol=1e-6)


def test_a_warmup_schedule_compiles_fits_and_is_saved_with_its_step(tmp_path):
    model = build("pixel_cnn")
    model.compile(
        training.make_optimizer("adam", 1e-2, warmup_steps=10),
        loss=pm.PixelNLL.for_model(model),
        jit_compile=False,
    )
    model.fit(pm.fit_data(shapes()), epochs=2, verbose=0)  # 2 batches an epoch
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-2 * 5 / 10)
    model.save(tmp_path / "warm.keras")
    loaded = keras.saving.load_model(tmp_path / "warm.keras")
    assert int(loaded.optimizer.iterations) == 4
    assert float(loaded.optimizer.learning_rate) == pytest.approx(1e-2 * 5 / 10)
    config = loaded.optimizer.get_config()["learning_rate"]
    assert config["class_name"] == "LinearWarmup", config


def test_early_stopping_and_tensorboard(tmp_path):
    model = compiled(build("pixel_cnn"))
    batches = pm.fit_data(shapes())
    # No improvement is ever large enough: it stops after `patience` epochs.
    stop = keras.callbacks.EarlyStopping(monitor="val_nll", patience=1, min_delta=1e6)
    board = keras.callbacks.TensorBoard(str(tmp_path / "logs"))
    history = model.fit(
        batches, validation_data=batches, epochs=20, verbose=0, callbacks=[stop, board]
    )
    assert len(history.history["val_nll"]) == 2 and stop.stopped_epoch == 1
    for split in ("train", "validation"):
        assert glob.glob(str(tmp_path / "logs" / split / "events.out.tfevents.*"))


@pytest.mark.slow
def test_load_run_and_keras_files_of_a_trained_run(tmp_path):
    config = run_config(tmp_path, max_steps=4, save_step=1, test_step=4)
    trained = json.loads(experiment.run(config))
    run_dir = os.path.join(config.checkpoint_dir, trained["run"])
    # A .keras file beside each checkpoint the manager keeps (3), the older removed.
    names = sorted(os.listdir(run_dir))
    assert [n for n in names if n.endswith(".keras")] == [
        "ckpt-2.keras",
        "ckpt-3.keras",
        "ckpt-4.keras",
    ]
    assert not [n for n in names if n.startswith(".tmp-")]
    model, recovered = pm.load_run(run_dir)
    assert recovered.model == "pixel_cnn" and recovered.hidden_dims == 2
    info = data.info("shapes", image_size=recovered.image_size)
    assert model_config(recovered, info) == runs.read_run_record(run_dir)["config"]
    # Ready for sampling, completion and scoring.
    images = np.stack(list(experiment.run_dataset(config, "test", num_examples=8)))
    assert pm.sample(model, 2, seed=0).shape == (2, SIZE, SIZE, 1)
    known = images_module.known_mask("top_half", (SIZE, SIZE, 1))
    completed = pm.complete(model, images[:2], known, seed=0)
    np.testing.assert_array_equal(completed[:, :2], images[:2, :2])
    # The recovered config opens the same run: its evaluation is the NLL of
    # the loaded model on the run's test images.
    evaluated = experiment.evaluate(recovered)
    assert evaluated["checkpoint_step"] == 4
    test = data.pipeline(experiment.run_dataset(config, "test"), 8, training=False)
    nll = np.concatenate([pm.distribution_of(model).nll(model(x), x) for x in test])
    assert np.isclose(evaluated["test/nll"], nll.mean(), rtol=1e-6)
    # The newest .keras file loads in a fresh process with safe_mode on.
    np.save(tmp_path / "x.npy", images.astype("float32"))
    script = (
        "import sys, numpy as np, keras, pixel_models\n"
        "model = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
        "np.save(sys.argv[3], np.asarray(model(np.load(sys.argv[2]))))\n"
    )
    keras_path = os.path.join(run_dir, "ckpt-4.keras")
    result = subprocess.run(
        [sys.executable, "-c", script, keras_path, tmp_path / "x.npy", tmp_path / "y.npy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(images), rtol=1e-5, atol=1e-5)


def test_load_run_refuses_what_is_not_a_trained_run(tmp_path):
    assert pm.RunError is runs.RunError  # catchable without importing pixel_models.runs
    with pytest.raises(pm.RunError, match="does not exist"):
        pm.load_run(str(tmp_path / "missing"))
    (tmp_path / "ckpt-3.index").write_bytes(b"")
    with pytest.raises(runs.RunError, match="ckpt-3.index is a file, not a folder"):
        pm.load_run(str(tmp_path / "ckpt-3.index"))
    with pytest.raises(runs.RunError, match="has no run_config.json"):
        pm.load_run(str(tmp_path))
    record = {"data": "shapes", "model": "pixel_cnn", "config": {"image_shape": [4, 4, 1]}}
    runs.write_json_atomic(str(tmp_path / "run_config.json"), {**record, "model": "unet"})
    with pytest.raises(runs.RunError, match="names no model of this version"):
        pm.load_run(str(tmp_path))
    runs.write_json_atomic(str(tmp_path / "run_config.json"), record)
    with pytest.raises(runs.RunError, match="no checkpoint in"):
        pm.load_run(str(tmp_path))
