"""Training, evaluation and checkpoints, written once for every model.

The loop is a compiled ``tf.distribute`` step: each replica computes the sum
of its examples' negative log-likelihoods divided by the *global* batch size,
the gradients are summed over replicas (giving the gradient of the mean NLL
of the global batch), clipped, and applied. It runs unchanged under the
default strategy, ``OneDeviceStrategy``, ``MirroredStrategy``,
``MultiWorkerMirroredStrategy`` or ``TPUStrategy``.

Mixed precision (:func:`set_precision`) computes the network in bfloat16 or
float16 while the variables, the logits and the loss stay float32; under
float16 the optimizer is a ``keras.optimizers.LossScaleOptimizer`` and the
step scales the loss and hands it the scaled gradients, which it unscales,
skipping the update (and halving the scale) when they overflow. With
``jit_compile`` each replica's forward pass, loss and gradients (and the
evaluation step) are compiled with XLA; the cross-replica sum, the clipping
and the update run outside the compiled function, so that it works under
every strategy.

Checkpoints (model, optimizer and step) go through
``tf.train.CheckpointManager``, which writes new files and then updates its
index, so an interrupted save never replaces the last good checkpoint; the
same command run again restores the newest intact one and continues (see
:func:`pixel_models.runs.restore_checkpoint`). Beside each checkpoint
``ckpt-N`` the model is also saved as ``ckpt-N.keras`` (written to a
temporary file and renamed, and removed with its checkpoint), which
``keras.saving.load_model`` opens in any process that imports the package.
While it trains, :func:`fit` holds the run folder's lock
(:class:`pixel_models.runs.RunLock`), and it never saves a non-finite state:
a non-finite loss or gradient, weight or optimizer slot stops it with a
:class:`TrainingError`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from pixel_models import images as image_utils
from pixel_models import runs
from pixel_models.distributions import bits_per_dim
from pixel_models.errors import first_line
from pixel_models.files import write_atomic_path
from pixel_models.kinds import kind_of
from pixel_models.progress import progress
from pixel_models.sampling import image_shape

OPTIMIZERS = ("rmsprop", "adam")


def _examples(batch) -> tf.Tensor:
    """The number of examples in a batch (images, or a tuple led by them)."""
    return tf.shape(tf.nest.flatten(batch)[0])[0]


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to do."""


@dataclasses.dataclass
class TrainConfig:
    """How long to train and where to write.

    Attributes:
      max_steps: total optimisation steps (counted across resumes).
      test_step: evaluate on the test set every ``test_step`` steps.
      save_step: checkpoint and write a sample grid every ``save_step`` steps.
      checkpoint_dir: where checkpoints go (None: none are written).
      log_dir: where TensorBoard events go (None: none are written).
      sample_dir: where sample grids go as PNG (None: none are written).
      num_samples: images in each sample grid (0: no grids).
      seed: seed of the sample grids.
      temperature: temperature of the sample grids (1: exact samples; see
        :func:`pixel_models.sample`).
      display: print each sample grid to the terminal.
      verbose: show a progress bar.
      max_to_keep: checkpoints kept.
      max_seconds: also stop (after a checkpoint) once training has run this
        long in this process (None: no time limit).
      run_record: written as ``run_config.json`` beside the checkpoints once
        training starts, when that file is not there yet (None: nothing).
      keras_files: also save the model as ``ckpt-N.keras`` beside each
        checkpoint ``ckpt-N`` (loaded by ``keras.saving.load_model`` after
        ``import pixel_models``), kept as long as the checkpoint is.
      skip_trained_batches: a run resumed at step ``N`` skips the first ``N``
        batches of the training data, so that it reads the batches an
        uninterrupted run reads next, rather than the first ones again (a
        float16 step skipped for overflow also read a batch, so after one the
        batches are one apart).
    """

    max_steps: int
    test_step: int = 100
    save_step: int = 1000
    checkpoint_dir: str | None = None
    log_dir: str | None = None
    sample_dir: str | None = None
    num_samples: int = 100
    seed: int = 123
    temperature: float = 1.0
    display: bool = False
    verbose: bool = True
    max_to_keep: int = 3
    max_seconds: float | None = None
    run_record: dict | None = None
    keras_files: bool = True
    skip_trained_batches: bool = True


@keras.saving.register_keras_serializable(package="pixel_models")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate that rises linearly to ``learning_rate`` over the first
    ``warmup_steps`` steps, then stays there::

        lr(step) = learning_rate * min(1, (step + 1) / warmup_steps)

    (``step`` counts from 0, so the first update already moves.) Large
    attention models overshoot in their first Adam steps at the full rate;
    a warmup of a few hundred steps is the usual remedy (Vaswani et al.,
    2017, Section 5.3). The optimizer's step counter is checkpointed, so a
    resumed run continues the warmup where it stopped.

    Example:

    >>> schedule = LinearWarmup(1e-3, warmup_steps=4)
    >>> [round(float(schedule(step)), 6) for step in range(6)]
    [0.00025, 0.0005, 0.00075, 0.001, 0.001, 0.001]
    """

    def __init__(self, learning_rate: float, warmup_steps: int):
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        if int(warmup_steps) != warmup_steps or warmup_steps < 1:
            raise ValueError(f"warmup_steps must be an integer >= 1, got {warmup_steps}")
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        progress = (keras.ops.cast(step, "float32") + 1.0) / float(self.warmup_steps)
        return self.learning_rate * keras.ops.minimum(1.0, progress)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps}


def make_optimizer(
    name: str,
    learning_rate: float,
    loss_scale: bool | None = None,
    clipvalue: float | None = None,
    warmup_steps: int = 0,
) -> keras.optimizers.Optimizer:
    """RMSProp (as in carpedm20/pixel-rnn-tensorflow) or Adam.

    Args:
      name: one of ``OPTIMIZERS``.
      learning_rate: the learning rate, > 0.
      loss_scale: wrap the optimizer in a dynamic
        ``keras.optimizers.LossScaleOptimizer`` (needed with float16
        activations, whose small gradients would underflow). None: when the
        global dtype policy is ``mixed_float16``.
      clipvalue: the optimizer clips each gradient to ``[-clipvalue,
        clipvalue]`` (for ``model.fit``: :class:`Trainer` clips by itself,
        with its ``grad_clip``, the same way); None or 0: no clipping.
      warmup_steps: with a positive number, the learning rate is a
        :class:`LinearWarmup` to ``learning_rate`` over that many steps; 0:
        constant.

    Example:

    >>> optimizer = make_optimizer("adam", 1e-3)
    >>> type(optimizer).__name__, round(float(optimizer.learning_rate.numpy()), 6)
    ('Adam', 0.001)
    >>> type(make_optimizer("rmsprop", 1e-3, loss_scale=True)).__name__
    'LossScaleOptimizer'
    >>> round(float(make_optimizer("adam", 1e-3, warmup_steps=10).learning_rate), 6)
    0.0001
    """
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if int(warmup_steps) != warmup_steps or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps}")
    if warmup_steps:
        learning_rate = LinearWarmup(learning_rate, warmup_steps)
    clip = {"clipvalue": float(clipvalue)} if clipvalue else {}
    if name == "rmsprop":
        optimizer = keras.optimizers.RMSprop(learning_rate, **clip)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(learning_rate, **clip)
    else:
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    if loss_scale is None:
        loss_scale = keras.config.dtype_policy().name == "mixed_float16"
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scale else optimizer


def _inner_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer that holds the slots (the inner one of a loss scale optimizer)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def split_batch(batch):
    """``(images, condition)`` of a batch of images or of ``(images, labels)`` pairs
    (condition None for plain images).

    Example:

    >>> images, labels = np.zeros((2, 4, 4, 1)), np.array([3, 7])
    >>> split_batch(images)[1] is None, split_batch((images, labels))[1].tolist()
    (True, [3, 7])
    """
    if isinstance(batch, tuple | list):
        if len(batch) != 2:
            raise TrainingError(f"a batch is images or (images, labels), got {len(batch)} parts")
        return batch[0], batch[1]
    return batch, None


class Trainer:
    """Trains and evaluates one model under one distribution strategy.

    Build the model and the optimizer inside ``strategy.scope()`` before
    creating the trainer.

    Args:
      model: a model built by :func:`pixel_models.build_model`.
      optimizer: a Keras optimizer.
      strategy: the ``tf.distribute`` strategy (default: the current one).
      grad_clip: gradients are clipped to ``[-grad_clip, grad_clip]`` (0: off).
      jit_compile: compile each replica's forward pass, loss and gradients,
        and the evaluation step, with XLA.

    Example:

    >>> from pixel_models.models import pixel_cnn
    >>> model = pixel_cnn((4, 4, 1), hidden_dims=2, recurrent_length=1, out_recurrent_length=0)
    >>> trainer = Trainer(model, make_optimizer("adam", 1e-3))
    >>> batch = np.random.default_rng(0).integers(0, 2, (8, 4, 4, 1)).astype("uint8")
    >>> nll = trainer.train_step(batch)  # mean NLL of the batch in nats
    >>> type(nll).__name__, trainer.step, 0 < nll < 100
    ('float', 1, True)
    >>> test = tf.data.Dataset.from_tensor_slices(batch).batch(4)
    >>> sorted(trainer.evaluate(test))
    ['bits_per_dim', 'nll']
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        strategy: tf.distribute.Strategy | None = None,
        grad_clip: float = 1.0,
        jit_compile: bool = False,
    ):
        self.model = model
        self.jit_compile = bool(jit_compile)
        self.loss_scale = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        self.optimizer = optimizer
        self.strategy = strategy or tf.distribute.get_strategy()
        self.grad_clip = float(grad_clip)
        self.kind = kind_of(model)
        self.num_dims = int(np.prod(image_shape(model)))
        with self.strategy.scope():
            optimizer.build(model.trainable_variables)
        self._train_step = None
        self._eval_step = None
        self.gradients_finite = True

    @property
    def step(self) -> int:
        """Optimisation steps taken so far (restored with the checkpoint)."""
        return int(self.optimizer.iterations.numpy())

    def _nll_sum(self, batch, training):
        """The batch's summed loss, its size, and the sums of the model kind's
        per-example terms (see :meth:`pixel_models.kinds.ModelKind.per_example`).
        A batch of ``(images, labels)`` feeds a conditional model ``[images, labels]``."""
        images, condition = split_batch(batch)
        loss, terms = self.kind.per_example(self.model, images, condition, training)
        sums = {name: tf.reduce_sum(value) for name, value in terms.items()}
        return tf.reduce_sum(loss), tf.cast(tf.shape(loss)[0], tf.float32), sums

    def _compiled(self, fn):
        """``fn`` compiled with XLA when the trainer has ``jit_compile``.

        Call it in each replica's function: a compiled function captures the
        variables of the replica that traces it, so every replica needs its own.
        """
        return tf.function(fn, jit_compile=True) if self.jit_compile else fn

    def _make_train_step(self):
        model, optimizer, clip = self.model, self.optimizer, self.grad_clip
        replicas = self.strategy.num_replicas_in_sync

        def forward_backward(images, global_batch):
            variables = model.trainable_variables
            with tf.GradientTape() as tape:
                total, count, _ = self._nll_sum(images, training=True)
                loss = total / global_batch
                if self.loss_scale:
                    loss = optimizer.scale_loss(loss)
            # A variable the loss does not reach (e.g. the unused vertical
            # conditioning of a last gated block) gets a zero gradient.
            grads = tape.gradient(loss, variables)
            grads = [
                tf.zeros(v.shape, v.dtype) if g is None else g
                for g, v in zip(grads, variables, strict=True)
            ]
            return total, count, grads

        def replica_step(images, global_batch):
            variables = model.trainable_variables
            total, count, grads = self._compiled(forward_backward)(images, global_batch)
            context = tf.distribute.get_replica_context()
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            if self.loss_scale:
                # Scaled gradients that overflow are the loss scale's business:
                # it skips the step and lowers the scale.
                finite = tf.constant(True)
            else:
                finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
            if clip > 0 and self.loss_scale:
                # The gradients are scaled: clip at the scaled bound, and keep
                # an overflow (inf, nan) for the optimizer to see and skip.
                bound = clip * tf.cast(optimizer.dynamic_scale, tf.float32)
                grads = [
                    tf.where(tf.math.is_finite(g), tf.clip_by_value(g, -bound, bound), g)
                    for g in grads
                ]
            elif clip > 0:
                grads = [tf.clip_by_value(g, -clip, clip) for g in grads]
            # The optimizer sums gradients over replicas again: pre-divide.
            grads = [g / replicas for g in grads]
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            return total, count, 1.0 - tf.cast(finite, tf.float32)

        @tf.function
        def train_step(batch):
            global_batch = self.strategy.reduce(
                tf.distribute.ReduceOp.SUM,
                self.strategy.run(lambda x: tf.cast(_examples(x), tf.float32), (batch,)),
                axis=None,
            )
            total, count, bad = self.strategy.run(replica_step, args=(batch, global_batch))
            total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, total, axis=None)
            count = self.strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None)
            bad = self.strategy.reduce(tf.distribute.ReduceOp.SUM, bad, axis=None)
            return total / count, tf.equal(bad, 0.0)

        return train_step

    def _make_eval_step(self):
        def replica_sums(batch):
            sums = self._compiled(lambda x: self._nll_sum(x, training=False))
            if self.strategy.num_replicas_in_sync == 1:
                return sums(batch)

            # The last batch of a test set can leave a replica no image, and a
            # convolution of an empty batch fails: such a replica counts zero,
            # from one image of zeros (a value every head accepts).
            def nothing():
                one = tf.nest.map_structure(
                    lambda x: tf.zeros(tf.concat([[1], tf.shape(x)[1:]], 0), x.dtype), batch
                )
                return tf.nest.map_structure(lambda v: v * 0.0, sums(one))

            return tf.cond(_examples(batch) > 0, lambda: sums(batch), nothing)

        @tf.function
        def eval_step(batch):
            sums = self.strategy.run(replica_sums, args=(batch,))
            return tf.nest.map_structure(
                lambda v: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None), sums
            )

        return eval_step

    def check_dataset(self, dataset: tf.data.Dataset) -> None:
        """Raises TrainingError when a model that needs labels (a classifier) is
        given a dataset without them."""
        if self.kind.needs_labels and not isinstance(dataset.element_spec, tuple):
            raise TrainingError(
                f"model {self.model.name!r} ({self.kind.name}) trains and evaluates on "
                "(images, labels) batches (load the data with with_labels=True)"
            )

    def train_step(self, batch) -> float:
        """One optimisation step on a (distributed) batch; returns its mean NLL.

        Afterwards :attr:`gradients_finite` says whether the step's gradients
        were all finite (always True under loss scaling, which skips the steps
        whose gradients overflow).
        """
        if self._train_step is None:
            self._train_step = self._make_train_step()
        nll, finite = self._train_step(batch)
        self.gradients_finite = bool(finite)
        return float(nll)

    def evaluate(self, dataset: tf.data.Dataset) -> dict[str, float]:
        """Mean NLL per image (nats) and bits per dimension over a finite dataset.

        Also the mean of each per-example term of the model's kind under its
        name (a multi-stage model's ``nll_small``, ``nll_full_given_small``).
        For a classifier (batches of ``(images, labels)``): ``nll``, the mean
        cross-entropy of the labels, and ``accuracy``, without bits per dimension.
        """
        self.check_dataset(dataset)
        if self._eval_step is None:
            self._eval_step = self._make_eval_step()
        total, count, terms = 0.0, 0.0, {}
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            t, c, sums = self._eval_step(batch)
            total += float(t)
            count += float(c)
            for name, value in sums.items():
                terms[name] = terms.get(name, 0.0) + float(value)
        if count == 0:
            raise TrainingError("the test dataset is empty")
        result = {"nll": total / count}
        if self.kind.reports_bits_per_dim:
            result["bits_per_dim"] = bits_per_dim(result["nll"], self.num_dims)
        result.update({name: value / count for name, value in terms.items()})
        return result

    def checkpoint(self) -> tf.train.Checkpoint:
        """The model and the optimizer's state.

        Under loss scaling it holds the inner optimizer, not the loss scale,
        so a checkpoint of any precision restores into a run of any other
        (the variables are float32 under every policy); the dynamic loss
        scale starts again from its initial value when a run resumes.
        """
        return tf.train.Checkpoint(model=self.model, optimizer=_inner_optimizer(self.optimizer))


def restore_latest(
    trainer: Trainer, checkpoint_dir: str, max_to_keep: int = 3, repair: bool = True
):
    """Restores the newest intact checkpoint in ``checkpoint_dir`` if there is one.

    A missing or damaged ``checkpoint`` file, or a damaged latest checkpoint,
    falls back to the newest checkpoint whose files restore, with a warning,
    and the ``checkpoint`` file is rewritten to name it (see
    :func:`pixel_models.runs.restore_checkpoint`): call it only while holding
    the run's lock, as :func:`fit` does.

    Returns:
      ``(manager, path)``: the checkpoint manager and the restored path, or
      None when there was nothing to restore.
    """
    checkpoint = trainer.checkpoint()
    # The optimizer's state is restored, but the learning rate is the one it
    # was built with (the command line of this run, not of the last). A
    # schedule (a warmup) holds no variable: it follows the restored step.
    scheduled = isinstance(_inner_optimizer(trainer.optimizer).get_config()["learning_rate"], dict)
    learning_rate = float(trainer.optimizer.learning_rate.numpy())
    try:
        path = runs.restore_checkpoint(checkpoint, checkpoint_dir, partial=False, repair=repair)
    except runs.CheckpointError as err:
        raise TrainingError(str(err)) from None
    if not scheduled:
        trainer.optimizer.learning_rate = learning_rate
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=max_to_keep)
    return manager, path


def restore_model(model: keras.Model, checkpoint_dir: str) -> tuple[str, int]:
    """Restores only the model's weights from the newest intact checkpoint (for
    sampling and scoring; see :func:`pixel_models.runs.restore_checkpoint`).

    Returns:
      ``(path, step)`` of the restored checkpoint.
    """
    try:
        path = runs.restore_checkpoint(tf.train.Checkpoint(model=model), checkpoint_dir, True)
    except runs.CheckpointError as err:
        raise TrainingError(str(err)) from None
    if not path:
        raise TrainingError(
            f"no checkpoint in {checkpoint_dir}: train first with the same flags and "
            "--is_train=True, or point --checkpoint_dir at a trained run"
        )
    # Checkpoints are numbered by their step (see fit()).
    return path, runs.checkpoint_step(path)


def fit(
    trainer: Trainer,
    train_dataset: tf.data.Dataset,
    test_dataset: tf.data.Dataset | None,
    config: TrainConfig,
) -> dict[str, float]:
    """Trains until ``config.max_steps``, resuming from ``config.checkpoint_dir``.

    ``train_dataset`` is batched and repeats forever (see
    :func:`pixel_models.data.pipeline`); ``test_dataset`` is batched and
    finite. Writes TensorBoard scalars ``train/nll``, ``test/nll`` and
    ``test/bits_per_dim`` (and ``test/<term>`` for each NLL term of a model
    that splits its NLL, see :meth:`Trainer.evaluate`) and images
    ``samples``, PNG sample grids in ``sample_dir``, and checkpoints every
    ``save_step`` steps and at the end. The grids are the model kind's
    preview (:meth:`pixel_models.kinds.ModelKind.preview`): an autoencoder
    gets ``reconstructions`` instead of ``samples`` (the first ``num_samples``
    test images, each next to a sample of the decoder given its code; its
    ``test/nll`` is ``-log p(x | z(x))``), a classifier none.

    Args:
      trainer: the :class:`Trainer` of the model.
      train_dataset: batched, repeating training data.
      test_dataset: batched, finite test data, or None.
      config: a :class:`TrainConfig`.

    Returns:
      The last metrics: ``train/nll``, and ``test/nll``,
      ``test/bits_per_dim`` (and the ``test/<term>``) when there is a test set.

    Example:

    >>> from pixel_models import data
    >>> from pixel_models.models import pixel_cnn
    >>> model = pixel_cnn((4, 4, 1), hidden_dims=2, recurrent_length=1, out_recurrent_length=0)
    >>> trainer = Trainer(model, make_optimizer("adam", 1e-3))
    >>> shapes = data.load("shapes", "train", image_size=4, num_examples=8)
    >>> train = data.pipeline(shapes, 4, training=True, seed=0)
    >>> test = data.pipeline(shapes, 4, training=False)
    >>> folder = tempfile.mkdtemp()
    >>> config = TrainConfig(max_steps=2, checkpoint_dir=folder, num_samples=0, verbose=False)
    >>> sorted(fit(trainer, train, test, config))
    ['test/bits_per_dim', 'test/nll', 'train/nll']
    >>> trainer.step, os.path.basename(tf.train.latest_checkpoint(folder))
    (2, 'ckpt-2')
    >>> shutil.rmtree(folder)
    """
    if config.max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {config.max_steps}")
    for name in ("test_step", "save_step"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    trainer.check_dataset(train_dataset)
    chief = _is_chief(trainer.strategy)
    folder = config.checkpoint_dir
    # Only the chief writes checkpoints, so only it locks the folder: the
    # other workers of a multi-worker run share it without waiting.
    created = bool(folder) and chief and not os.path.exists(folder)
    outputs = (config.log_dir, config.sample_dir) if created else ()
    outputs_created = [path for path in outputs if path and not os.path.exists(path)]
    lock = runs.RunLock(folder) if folder and chief else None
    try:
        if lock is not None:
            lock.acquire()
        try:
            return _fit(trainer, train_dataset, test_dataset, config, chief)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as err:
            lost = _lost_worker(err, trainer.step, folder, _task(trainer.strategy))
            raise TrainingError(lost) from None
        finally:
            if lock is not None:
                lock.release()
    except BaseException:
        if created:
            runs.remove_unstarted(folder)
            # A run that never saved leaves no folder behind: its events and
            # samples neither.
            if not os.path.exists(folder):
                for path in outputs_created:
                    shutil.rmtree(path, ignore_errors=True)
        raise


def _open_checkpoints(trainer, config: TrainConfig, chief: bool):
    """Restores the latest intact checkpoint (cleaning up after an interrupted
    save) and records the run; returns the checkpoint manager, or None."""
    if not config.checkpoint_dir:
        return None
    if chief:
        runs.remove_partial_saves(config.checkpoint_dir)
    manager, restored = restore_latest(
        trainer, config.checkpoint_dir, config.max_to_keep, repair=chief
    )
    if restored:
        logging.info(
            "continuing the run in %s from its checkpoint at step %d (%s); other model flags "
            "or another --checkpoint_dir start a new run",
            config.checkpoint_dir,
            trainer.step,
            restored,
        )
    if chief and config.run_record is not None:
        record = os.path.join(config.checkpoint_dir, "run_config.json")
        if not os.path.exists(record):
            _written(record, manager, runs.write_json_atomic, record, config.run_record)
    return manager


def _evaluate_and_log(trainer, test_dataset, metrics: dict, step: int) -> float:
    """Evaluates on the test set, logs every metric under ``test/``; returns the NLL."""
    result = trainer.evaluate(test_dataset)
    metrics["test/nll"] = result["nll"]
    tf.summary.scalar("test/nll", result["nll"], step=step)
    if "bits_per_dim" in result:
        metrics["test/bits_per_dim"] = result["bits_per_dim"]
        tf.summary.scalar("test/bits_per_dim", result["bits_per_dim"], step=step)
    for name in sorted(set(result) - {"nll", "bits_per_dim"}):
        metrics[f"test/{name}"] = result[name]
        tf.summary.scalar(f"test/{name}", result[name], step=step)
    return result["nll"]


def _fit(trainer, train_dataset, test_dataset, config: TrainConfig, chief: bool) -> dict:
    strategy = trainer.strategy
    manager = _open_checkpoints(trainer, config, chief)
    if config.log_dir and chief:
        writer = tf.summary.create_file_writer(config.log_dir)
        _start_session(writer, trainer.step + 1)
    else:
        writer = tf.summary.create_noop_writer()
    metrics: dict[str, float] = {}
    start = trainer.step
    if start >= config.max_steps:
        logging.info(
            "already trained for %d steps (max_steps=%d): nothing to train; a higher "
            "limit (--max_steps, and --max_epoch when it is the lower one) trains on",
            start,
            config.max_steps,
        )
        return metrics
    progbar = None
    if config.verbose:
        progbar = progress(
            config.max_steps,
            stateful_metrics=["nll", "test_nll"],
            seconds_limit=config.max_seconds,
        )
    if progbar is not None:
        progbar.update(start)
    if start and config.skip_trained_batches:
        logging.info("resuming at step %d: skipping the %d batches trained on", start, start)
        train_dataset = train_dataset.skip(start)
    iterator = iter(strategy.experimental_distribute_dataset(train_dataset))
    originals = None  # the test images of a preview that shows them
    tic = time.time()
    with writer.as_default():
        while trainer.step < config.max_steps:
            before = trainer.step
            nll = trainer.train_step(next(iterator))
            step = trainer.step
            if step == before and math.isfinite(nll):
                # A loss scale optimizer skipped an overflowing step (and
                # lowered its scale): nothing to log, evaluate or save.
                logging.debug("skipped a step whose scaled gradients overflowed")
                continue
            if not math.isfinite(nll) or not trainer.gradients_finite:
                what = (
                    f"the training loss became {nll}"
                    if not math.isfinite(nll)
                    else "the gradients became non-finite"
                )
                raise TrainingError(f"{what} at step {step}; {_diverged(manager)}")
            metrics["train/nll"] = nll
            tf.summary.scalar("train/nll", nll, step=step)
            shown = [("nll", nll)]
            out_of_time = config.max_seconds is not None and time.time() - tic >= config.max_seconds
            last_step = step >= config.max_steps or out_of_time
            if test_dataset is not None and (step % config.test_step == 0 or last_step):
                shown.append(("test_nll", _evaluate_and_log(trainer, test_dataset, metrics, step)))
            if step % config.save_step == 0 or last_step:
                originals = _save_and_preview(
                    trainer, manager, config, chief, test_dataset, originals
                )
                # Events up to the checkpoint survive a crash that follows it.
                writer.flush()
            if progbar is not None:
                progbar.update(step, shown)
            if out_of_time:
                break
    elapsed = time.time() - tic
    logging.info(
        "trained %d steps in %.1f s; %s",
        trainer.step - start,
        elapsed,
        ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())),
    )
    return metrics


def _save_and_preview(trainer, manager, config: TrainConfig, chief: bool, test_dataset, originals):
    """Saves the checkpoint of the trainer's step (and its ``.keras`` file
    with ``keras_files``) and writes the kind's preview; returns the test
    images a preview shows (read once, on the first call that needs them)."""
    step = trainer.step
    if manager is not None:
        _check_finite_state(trainer, step, manager)
        where = os.path.join(config.checkpoint_dir, f"ckpt-{step}")
        _written(where, manager, _save, manager, step, chief)
        if chief and config.keras_files:
            keras_path = runs.keras_file(where)
            _written(keras_path, manager, _save_keras, trainer.model, keras_path)
    if config.num_samples > 0 and (config.sample_dir or config.log_dir):
        kind = trainer.kind
        if kind.preview_needs_images and originals is None:
            originals = _first_images(test_dataset, config.num_samples)
        if originals is not None or not kind.preview_needs_images:
            target = config.sample_dir or config.log_dir
            _written(target, manager, _write_preview, trainer, originals, config, step, chief)
    return originals


def _lost_worker(err: tf.errors.OpError, step: int, folder: str, own: str | None) -> str:
    """What to say when a collective op failed because a worker of the cluster
    stopped (killed, crashed or cut off): the tasks the error names, other
    than this one (``own``)."""
    named = set(re.findall(r"/job:\w+/replica:\d+/task:\d+", err.message or ""))
    tasks = sorted(named - {own})
    who = ", ".join(tasks) if tasks else "a worker of the cluster"
    last = tf.train.latest_checkpoint(folder) if folder else None
    return (
        f"lost contact with {who} after step {step} ({type(err).__name__}); the checkpoints "
        f"are intact (last: {last or 'none'}): restart every worker of TF_CONFIG with the same "
        "command to resume from it"
    )


def _diverged(manager) -> str:
    last = manager.latest_checkpoint if manager is not None else None
    return (
        f"stopped without saving (last good checkpoint: {last or 'none'}); lower "
        "--learning_rate or --grad_clip"
    )


def _check_finite_state(trainer: Trainer, step: int, manager) -> None:
    """Raises TrainingError when a weight or an optimizer slot is not finite,
    so that no non-finite state is ever saved."""
    groups = (
        ("weights", trainer.model.weights),
        ("optimizer state", _inner_optimizer(trainer.optimizer).variables),
    )
    for what, variables in groups:
        for variable in variables:
            value = np.asarray(variable)
            if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
                name = getattr(variable, "path", None) or variable.name
                raise TrainingError(
                    f"the {what} became non-finite at step {step} (e.g. {name}); "
                    f"{_diverged(manager)}"
                )


def _written(target: str, manager, write, *args) -> None:
    """Runs ``write(*args)``; a failure to write ``target`` is a TrainingError that
    names the last good checkpoint, which stays as it was."""
    try:
        write(*args)
    except (OSError, tf.errors.OpError) as err:
        last = manager.latest_checkpoint if manager is not None else None
        raise TrainingError(
            f"cannot write {target} ({first_line(err, with_type=True)}); stopped (last good "
            f"checkpoint: {last or 'none'}): free some space or fix the folder's permissions, "
            "then run the same command again to resume"
        ) from None


def _start_session(writer, step: int) -> None:
    """Marks in the event file that the run (re)starts at ``step``: TensorBoard
    then drops the events of ``step`` and later that earlier files hold (from
    the part of a crashed run after its last checkpoint), so each curve keeps
    one value per step."""
    event = tf.compat.v1.Event(
        wall_time=time.time(),
        step=step,
        session_log=tf.compat.v1.SessionLog(status=tf.compat.v1.SessionLog.START),
    )
    tf.raw_ops.ImportEvent(writer=writer._resource, event=event.SerializeToString())
    writer.flush()


def _task(strategy: tf.distribute.Strategy) -> str | None:
    """This process's task of a cluster, as TensorFlow's errors name it, or None."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return None
    return f"/job:{resolver.task_type}/replica:0/task:{resolver.task_id}"


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


def _save(manager: tf.train.CheckpointManager, step: int, chief: bool) -> None:
    if chief:
        manager.save(checkpoint_number=step)
    else:
        # Every worker takes part in saving a multi-worker checkpoint; the
        # others write to a throwaway folder.
        tmp = tempfile.mkdtemp(prefix="pixel_models_worker_ckpt_")
        try:
            manager.checkpoint.write(os.path.join(tmp, "ckpt"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _save_keras(model: keras.Model, path: str) -> None:
    """Saves ``model`` to the ``.keras`` file ``path`` atomically and removes
    those of the checkpoints the manager has deleted. A model that Keras
    cannot serialise (a user's layer without ``get_config``) is logged and
    skipped: its checkpoints hold its weights."""
    try:
        write_atomic_path(path, lambda tmp: keras.saving.save_model(model, tmp))
    except (OSError, tf.errors.OpError):
        raise
    except (TypeError, ValueError, NotImplementedError) as err:
        logging.warning("cannot save the model as %s (%s); skipped", path, first_line(err))
    runs.remove_stale_keras_files(os.path.dirname(path))


def _first_images(dataset: tf.data.Dataset | None, num: int) -> np.ndarray | None:
    """The first ``num`` images of a batched dataset (labels dropped), or None."""
    if dataset is None:
        return None
    images = []
    for batch in dataset:
        images.append(np.asarray(split_batch(batch)[0]))
        if sum(len(x) for x in images) >= num:
            break
    return np.concatenate(images)[:num] if images else None


def _write_preview(
    trainer: Trainer, originals: np.ndarray | None, config: TrainConfig, step: int, chief: bool
) -> None:
    """The model kind's preview grid (samples, reconstructions), drawn on every
    worker and written by the chief."""
    kind = trainer.kind
    grid = kind.preview(
        trainer.model,
        originals,
        num=config.num_samples,
        seed=config.seed,
        temperature=config.temperature,
    )
    if grid is not None and chief:
        _publish_grid(grid, kind.preview_tag, kind.preview_stem, config, step)


def _publish_grid(grid: np.ndarray, tag: str, stem: str, config: TrainConfig, step: int) -> None:
    """Writes an image grid as ``<stem>_<step>.png`` in ``sample_dir``, as the
    TensorBoard image ``tag``, and to the terminal with ``display``."""
    if config.sample_dir:
        path = os.path.join(config.sample_dir, f"{stem}_{step:07d}.png")
        image_utils.save_png(path, grid)
        logging.info("wrote %s", path)
    tf.summary.image(tag, grid[None], step=step)
    if config.display:
        print(image_utils.to_text(grid), flush=True)
