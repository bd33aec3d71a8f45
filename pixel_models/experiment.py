"""A run of the zoo from one :class:`~pixel_models.config.RunConfig`: one function per mode.

``main.py`` parses its flags into a ``RunConfig`` and calls :func:`run`,
which picks the mode; each mode is also a function of its own, for tests,
notebooks and users:

- :func:`train_and_evaluate`: trains (resuming the run's latest checkpoint),
  evaluates on the test split, writes TensorBoard events and grids;
- :func:`generate`: a grid from the run's latest checkpoint: samples,
  completions of test images (``complete``), or what the model's kind shows
  instead (an autoencoder's reconstructions);
- :func:`evaluate`: the test metrics of the latest checkpoint (a classifier's
  cross-entropy and accuracy);
- :func:`score`: the NLL of the user's images (``score``) under it;
- :func:`load_run`: a trained run's model and its ``RunConfig``, for the
  library (``pm.sample``, ``pm.complete``, scoring, ``model.fit``).

Every mode reads its data through :func:`run_dataset`, with the same shape,
levels and labels, and opens the same run folders (:mod:`pixel_models.runs`).
What differs between models is read from their kind (:mod:`pixel_models.kinds`).
"""

from __future__ import annotations

import dataclasses
import json
import logging as python_logging
import math
import os
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from pixel_models import data, devices, images, runs, sampling, training
from pixel_models.config import (
    RunConfig,
    UsageError,
    model_config,
    reads_labels,
    recorded_config,
)
from pixel_models.distributions import bits_per_dim, distribution_of
from pixel_models.errors import first_line
from pixel_models.kinds import kind_for_builder
from pixel_models.models import MODELS


@dataclasses.dataclass(frozen=True)
class _Run:
    """What every mode of a run needs: its config, data description, identity,
    folders and strategy."""

    config: RunConfig
    info: data.DatasetInfo
    identity: dict
    paths: runs.RunPaths
    strategy: tf.distribute.Strategy

    @property
    def model_config(self) -> dict:
        return self.identity["config"]


def _data_identity(spec: str) -> str:
    """The data of a run as its identity holds it: a folder or file path in
    normal form (``own/``, ``./own`` and ``own`` are one run; a relative path
    stays relative), a dataset name or ``tfds:NAME`` as given. A folder that
    reads like a dataset name (``./shapes``) is written ``./shapes``, so that
    its runs are never the dataset's."""
    if spec in data.DATASETS or spec.startswith("tfds:"):
        return spec
    path = os.path.normpath(spec)
    return f".{os.sep}{path}" if path in data.DATASETS or path.startswith("tfds:") else path


def _open(config: RunConfig) -> _Run:
    if config.model not in MODELS:
        raise UsageError(f"--model={config.model!r}: choose one of {', '.join(sorted(MODELS))}")
    try:
        info = run_info(config)
    except data.DataError as err:
        raise UsageError(str(err)) from None
    if config.color_levels != RunConfig.color_levels and info.levels != config.color_levels:
        # Binary data (0/1 images, 1-bit files, --binarize) keeps its 2 levels.
        raise UsageError(
            f"--color_levels={config.color_levels}: --data={config.data} has {info.levels} "
            "levels of its own (binary images, or --binarize)"
        )
    identity = {
        "data": _data_identity(config.data),
        "model": config.model,
        "config": model_config(config, info),
    }
    if config.binarize != "none":  # the two binarizations give other data at the same levels
        identity["binarize"] = config.binarize
    paths = runs.run_paths(identity, config.checkpoint_dir, config.log_dir, config.sample_dir)
    return _Run(
        config,
        info,
        identity,
        paths,
        devices.make_strategy(config.strategy, config.tpu, config.worker_wait_seconds),
    )


class _TensorFlowInfoFilter(python_logging.Filter):
    """Drops the INFO lines that TensorFlow's own modules log through absl
    (e.g. each checkpoint's sharding time): they are for debugging it."""

    _folder = os.path.dirname(tf.__file__) + os.sep

    def filter(self, record: python_logging.LogRecord) -> bool:
        return record.levelno >= python_logging.WARNING or not record.pathname.startswith(
            self._folder
        )


def setup(config: RunConfig) -> None:
    """Applies the settings of ``config`` that act on the whole process
    (logging, visible GPUs, precision, seeds, determinism); call it once,
    before any model is built."""
    logging.set_verbosity(config.log_level.lower())
    # TensorFlow's own Python INFO lines (e.g. checkpoint sharding timings)
    # are for debugging it: shown with --log_level=DEBUG only.
    tf.get_logger().setLevel("DEBUG" if config.log_level == "DEBUG" else "WARNING")
    absl_logger = logging.get_absl_logger()
    for old in [f for f in absl_logger.filters if isinstance(f, _TensorFlowInfoFilter)]:
        absl_logger.removeFilter(old)
    if config.log_level != "DEBUG":
        absl_logger.addFilter(_TensorFlowInfoFilter())
    devices.setup(config.use_gpu, config.mixed_precision, config.random_seed, config.deterministic)


def run_info(config: RunConfig) -> data.DatasetInfo:
    """The shape, levels and classes of the run's data, as :func:`run_dataset`
    reads it (raises :class:`pixel_models.data.DataError` on data that cannot be read).

    Example:

    >>> info = run_info(RunConfig(data="shapes", image_size=8))
    >>> info.image_shape, info.levels
    ((8, 8, 1), 2)
    """
    return data.info(
        config.data,
        image_size=config.image_size,
        color_levels=config.color_levels,
        data_dir=config.data_dir,
        binarize=config.binarize,
    )


def run_dataset(config: RunConfig, split: str, num_examples: int | None = None) -> tf.data.Dataset:
    """The ``split`` of the run's data, as every mode reads it: at the run's
    image size, levels and binarization, with labels when the run reads them
    (see :func:`pixel_models.config.reads_labels`). ``config.data`` is a name
    of ``data.DATASETS`` or the user's own images (``tfds:NAME``, a folder of
    PNG/JPEG files, a ``.npy`` / ``.npz`` file).

    Example:

    >>> config = RunConfig(data="shapes", image_size=8, color_levels=4)
    >>> image = next(iter(run_dataset(config, "test", num_examples=1)))
    >>> tuple(image.shape)
    (8, 8, 1)
    """
    return data.load(
        config.data,
        split,
        data_dir=data.resolve_data_dir(config.data_dir),
        image_size=config.image_size,
        color_levels=config.color_levels,
        binarize=config.binarize,
        seed=config.random_seed,
        with_labels=reads_labels(config),
        num_examples=num_examples,
    )


def _test_images(config: RunConfig, num: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The first ``num`` test images of the run (and their labels, or None)."""
    test = run_dataset(config, "test", num_examples=num)
    if not reads_labels(config):
        return np.stack([x.numpy() for x in test]), None
    pairs = [(x.numpy(), y.numpy()) for x, y in test]
    return np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs])


def _steps(config: RunConfig, num_train: int) -> int:
    """Total steps: ``max_steps`` (0: none), at most ``max_epoch`` passes."""
    steps_per_epoch = math.ceil(num_train / config.batch_size) if num_train > 0 else None
    max_steps = config.max_steps or (config.max_epoch * (steps_per_epoch or 1))
    if config.max_steps and steps_per_epoch:
        max_steps = min(max_steps, config.max_epoch * steps_per_epoch)
    return max_steps


def _trainer(run: _Run, model=None) -> training.Trainer:
    """A trainer of the run's model (built here unless given), inside the strategy."""
    config = run.config
    with run.strategy.scope():
        if model is None:
            model = MODELS[config.model](**run.model_config)
        optimizer = training.make_optimizer(
            config.optimizer, config.learning_rate, warmup_steps=config.warmup_steps
        )
        return training.Trainer(
            model, optimizer, run.strategy, config.grad_clip, jit_compile=config.jit_compile
        )


def _activation_bytes(config: RunConfig, info: data.DatasetInfo) -> int:
    """About how many bytes one training batch's activations and their
    gradients take, float32, three copies (values, gradients, the optimizer's
    working space). A builder of ``MODELS`` whose models hold more than a few
    features per pixel and layer (attention over all pixels, several
    resolutions) declares ``builder.activation_elements(model_config)``: the
    numbers one image keeps; otherwise every layer's features at every pixel
    are counted."""
    declared = getattr(MODELS[config.model], "activation_elements", None)
    if declared is not None:
        return 3 * 4 * config.batch_size * int(declared(model_config(config, info)))
    height, width, channels = info.image_shape
    logits = channels * (1 if info.levels == 2 else info.levels)
    features = (
        config.hidden_dims * (config.recurrent_length + 2)
        + config.out_hidden_dims * config.out_recurrent_length
        + logits
    )
    return 3 * 4 * config.batch_size * height * width * features


def check_memory(config: RunConfig, info: data.DatasetInfo) -> None:
    """Refuses, in one line, a run whose data and batch this machine cannot hold.

    Raises:
      UsageError: the estimate exceeds the memory available now.
    """
    available = devices.available_memory()
    dataset, batch = data.in_memory_bytes(info), _activation_bytes(config, info)
    if available is None or dataset + batch <= available:
        return
    gib = 2.0**30
    if config.image_size is not None:
        images = f"--image_size={config.image_size}"
    else:
        images = f"--data={config.data} ({'x'.join(map(str, info.image_shape))} images)"
    raise UsageError(
        f"{images} with --batch_size={config.batch_size}: the run "
        f"needs about {(dataset + batch) / gib:.1f} GiB of memory (data {dataset / gib:.1f} "
        f"GiB, one batch {batch / gib:.1f} GiB) and {available / gib:.1f} GiB are "
        "available; lower --image_size, --batch_size or --hidden_dims"
    )


def train_and_evaluate(config: RunConfig) -> dict:
    """Trains the run's model for ``max_steps`` (resuming its latest checkpoint),
    or until ``max_minutes`` of training in this call, whichever comes first
    (the step reached is checkpointed and evaluated; the same call again
    trains on from it). Call :func:`setup` first, as :func:`run` does: the
    seed, the precision and determinism of ``config`` act on the process.

    Returns:
      ``{"run": name, "train/nll": ..., "test/nll": ..., ...}``: the last metrics.
    """
    run = _open(config)
    replicas = run.strategy.num_replicas_in_sync
    if config.batch_size < replicas:
        raise UsageError(
            f"--batch_size={config.batch_size} is the global batch and smaller than the "
            f"{replicas} replicas of --strategy={config.strategy}: give each replica at "
            f"least one image (--batch_size >= {replicas})"
        )
    check_memory(config, run.info)
    # Refused before any work: outputs that cannot be written, a folder of
    # another run or of another optimizer.
    for flag in ("checkpoint_dir", "log_dir", "sample_dir"):
        runs.check_output_folder(flag, getattr(config, flag), run.paths.name)
    checked = {"optimizer": config.optimizer, "warmup_steps": config.warmup_steps}
    runs.check_run_config(run.paths.checkpoint_dir, run.identity, record=False, checked=checked)
    train_ds, test_ds = run_dataset(config, "train"), run_dataset(config, "test")
    max_steps = _steps(config, int(train_ds.cardinality()))
    if max_steps != config.max_steps:
        logging.info(
            "--max_epoch=%d limits training to %d steps (--max_steps=%d)",
            config.max_epoch,
            max_steps,
            config.max_steps,
        )
    fit_config = training.TrainConfig(
        max_steps=max_steps,
        max_seconds=config.max_minutes * 60.0 if config.max_minutes > 0 else None,
        test_step=config.test_step,
        save_step=config.save_step,
        checkpoint_dir=run.paths.checkpoint_dir,
        log_dir=run.paths.log_dir,
        sample_dir=run.paths.sample_dir,
        num_samples=config.num_samples,
        seed=config.random_seed,
        temperature=config.temperature,
        display=config.display,
        run_record={**run.identity, **checked},
    )
    trainer = _trainer(run)
    _check_temperature(config, trainer.model)
    batches = dict(seed=config.random_seed)
    metrics = training.fit(
        trainer,
        data.pipeline(train_ds, config.batch_size, training=True, **batches),
        data.pipeline(test_ds, config.batch_size, training=False),
        fit_config,
    )
    return {"run": run.paths.name, **metrics}


def _check_temperature(config: RunConfig, model: keras.Model) -> None:
    """Refuses a ``--temperature`` that nothing would read (see
    :func:`_refuse_drawing_flags`) or that the model's head cannot take."""
    _refuse_drawing_flags(config)
    if config.temperature in (None, 1.0):
        return
    try:
        distribution_of(model).with_temperature(config.temperature)
    except ValueError as err:
        raise UsageError(f"--temperature={config.temperature}: {err}") from None


def _restored(run: _Run):
    """The run's model with the weights of its latest checkpoint, and that step."""
    runs.check_run_config(run.paths.checkpoint_dir, run.identity, record=False)
    with run.strategy.scope():
        model = MODELS[run.config.model](**run.model_config)
    _check_temperature(run.config, model)  # before the restore
    _, step = training.restore_model(model, run.paths.checkpoint_dir)
    return model, step


class LoadedRun(NamedTuple):
    """What :func:`load_run` returns: ``model, config = load_run(run_dir)``."""

    model: keras.Model
    config: RunConfig


def load_run(run_dir: str) -> LoadedRun:
    """The trained model of a run folder of ``main.py``, and the run's config.

    ``run_dir`` is the folder that holds the run's ``run_config.json`` and
    checkpoints (``<checkpoint_dir>/<run name>``, which ``main.py`` prints as
    ``"run"``). The model is built from the recorded builder keywords and
    given the weights of the newest checkpoint that restores (falling back
    past damaged ones, as a resumed run does), ready for
    :func:`pixel_models.sample`, :func:`pixel_models.complete` and scoring.
    The config is :func:`pixel_models.config.recorded_config` of the record,
    with ``checkpoint_dir`` the folder above ``run_dir``, so that the modes
    of this module (:func:`generate`, :func:`evaluate`) open the same run.

    Raises:
      RunError: ``run_dir`` is not a run folder, its record is damaged or
        names an unknown model, or it has no checkpoint that restores.

    Example (after ``python main.py --data=shapes --image_size=8 --max_steps=100``,
    which prints the run's name)::

        model, config = pm.load_run("checkpoints/shapes-pixel_cnn-1b2c3d4e")
        images = pm.sample(model, num_samples=16, seed=0)
    """
    record_path = os.path.join(run_dir, "run_config.json")
    if not os.path.isdir(run_dir):
        what = "is a file, not a folder" if os.path.exists(run_dir) else "does not exist"
        raise runs.RunError(
            f"run folder {run_dir} {what}: pass the folder of a trained run, "
            "<checkpoint_dir>/<run name> (main.py prints the run's name)"
        )
    if not os.path.exists(record_path):
        raise runs.RunError(
            f"{run_dir} has no run_config.json: it is not the folder of a run of main.py; "
            "pass <checkpoint_dir>/<run name> (main.py prints the run's name)"
        )
    record = runs.read_run_record(run_dir)
    name = record.get("model")
    if name not in MODELS or not isinstance(record.get("config"), dict):
        raise runs.RunError(
            f"{record_path} names no model of this version (model={name!r}); choose a run "
            f"of one of {', '.join(sorted(MODELS))}"
        )
    try:
        model = MODELS[name](**record["config"])
    except (TypeError, ValueError) as err:
        raise runs.RunError(
            f"{record_path}: its settings do not build a {name} model ({first_line(err)})"
        ) from None
    try:
        path, step = training.restore_model(model, run_dir)
    except training.TrainingError as err:
        raise runs.RunError(str(err)) from None
    logging.info("loaded %s (step %d)", path, step)
    parent = os.path.dirname(os.path.abspath(run_dir))
    return LoadedRun(model, recorded_config(record, checkpoint_dir=parent))


def evaluate(config: RunConfig) -> dict:
    """Test metrics of the run's latest checkpoint (for a classifier: its
    cross-entropy ``test/nll`` and ``test/accuracy``)."""
    run = _open(config)
    model, step = _restored(run)
    result = _trainer(run, model).evaluate(
        data.pipeline(run_dataset(config, "test"), config.batch_size, training=False)
    )
    return {"checkpoint_step": step, **{f"test/{name}": value for name, value in result.items()}}


def _refuse(config: RunConfig, what: str, flag: str) -> None:
    reason = kind_for_builder(config.model).refusal(what)
    if reason is not None:
        raise UsageError(f"{flag}: --model={config.model} {reason}")


def generate(config: RunConfig) -> str:
    """Writes a grid from the run's latest checkpoint and returns its path:
    completions of test images with ``complete``, else what the model's kind
    shows (samples, one row per class for a class-conditional model; an
    autoencoder's reconstructions)."""
    run = _open(config)
    runs.check_output_folder("sample_dir", config.sample_dir, run.paths.name)
    model, step = _restored(run)
    options = dict(batch_size=config.batch_size, temperature=config.temperature, verbose=True)
    if config.complete != "none":
        _refuse(config, "complete", "--complete")
        grid = _completion_grid(run, model, options)
        stem = f"completed_{config.complete}_step{step}_seed{config.random_seed}"
    else:
        kind = kind_for_builder(config.model)
        originals = None
        if kind.preview_needs_images:
            originals = _test_images(config, config.num_samples)[0]
        grid = kind.preview(
            model, originals, num=config.num_samples, seed=config.random_seed, **options
        )
        stem = f"{kind.generated_stem}_step{step}_seed{config.random_seed}"
    path = images.unused_path(os.path.join(run.paths.sample_dir, stem))
    images.save_png(path, grid)
    if config.display:
        print(images.to_text(grid), flush=True)
    logging.info("wrote %s", path)
    return path


def _completion_grid(run: _Run, model, options: dict) -> np.ndarray:
    """Test images, their occluded versions and completions, three to a row.
    A class-conditional completion is conditioned on its image's label."""
    originals, labels = _test_images(run.config, run.config.num_samples)
    if len(originals) < run.config.num_samples:
        logging.warning(
            "--num_samples=%d: the test split holds %d images, all of them completed",
            run.config.num_samples,
            len(originals),
        )
    known = images.known_mask(run.config.complete, run.info.image_shape)
    completed = sampling.complete(
        model, originals, known, seed=run.config.random_seed, condition=labels, **options
    )
    return images.completion_grid(originals, known, completed, run.info.levels)


def score(config: RunConfig) -> dict:
    """The NLL of the ``score`` images under the run's latest checkpoint, per
    image and on average, in nats and bits per dimension."""
    _refuse(config, "score", "--score")
    if config.conditional:
        raise UsageError("--score: scoring images under a --conditional model needs their labels")
    run = _open(config)
    try:
        names, arrays = images.load_images(
            config.score, run.info.image_shape, run.info.levels, grid=config.score_grid
        )
    except OSError as err:
        raise UsageError(f"--score: cannot read {config.score}: {err}") from None
    model, step = _restored(run)
    distribution = distribution_of(model)
    batches = np.array_split(arrays, max(1, -(-len(arrays) // config.batch_size)))
    nll = np.concatenate(
        [distribution.nll(model(b.astype(np.float32), training=False), b).numpy() for b in batches]
    )
    dims = int(np.prod(run.info.image_shape))
    per_image = {
        name: {"nll_nats": float(v), "bits_per_dim": float(bits_per_dim(v, dims))}
        for name, v in zip(names, nll, strict=True)
    }
    return {
        "checkpoint_step": step,
        "images": per_image,
        "mean_nll_nats": float(nll.mean()),
        "mean_bits_per_dim": float(bits_per_dim(nll.mean(), dims)),
    }


def _refuse_drawing_flags(config: RunConfig) -> None:
    """Refuses ``--display`` and ``--temperature`` where nothing is drawn: with
    ``--score``, whose likelihoods are of the model itself, and for a
    classifier. (``--num_samples``, which a shared flagfile sets for every
    mode, is left to the modes that draw.)"""
    if config.score:
        where = f"--score={config.score} draws no images"
    elif not kind_for_builder(config.model).draws_images:
        where = f"--model={config.model} draws no images"
    else:
        return
    if config.display:
        raise UsageError(f"--display: {where}")
    if config.temperature not in (None, 1.0):
        raise UsageError(f"--temperature={config.temperature}: {where}")


def run(config: RunConfig) -> str:
    """Sets the process up (:func:`setup`), runs the mode that ``config`` asks
    for, and returns what the command line prints: the path of a grid, or
    the metrics as JSON."""
    setup(config)
    if config.complete != "none":
        _refuse(config, "complete", "--complete")
        if config.score or config.is_train:
            mode = f"--score={config.score}" if config.score else "training (--is_train=True)"
            raise UsageError(
                f"--complete={config.complete} applies to generating with --is_train=False, "
                f"not to {mode}"
            )
    _refuse_drawing_flags(config)
    if config.score:
        return json.dumps(score(config), indent=2)
    if config.is_train:
        return json.dumps(train_and_evaluate(config), sort_keys=True)
    if not kind_for_builder(config.model).draws_images:
        return json.dumps(evaluate(config))
    return generate(config)
