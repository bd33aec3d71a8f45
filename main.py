"""Train, evaluate and sample the models of pixel_models.

    python main.py --data=shapes --model=pixel_cnn --max_steps=300
    python main.py --data=shapes --model=pixel_cnn --is_train=False

Parses the flags, picks a tf.distribute strategy and calls train() or
generate(); everything else lives in the pixel_models package.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys

import numpy as np
from absl import app, logging

import flags as _flags

FLAGS = _flags.FLAGS


# Flags that set a builder parameter of these models only. Other builders may
# take a parameter of the same name (pixel_cnn and gated_pixel_cnn accept
# latent_dims for a code given from outside), which main.py leaves unset.
FLAG_MODELS = {"latent_dims": {"autoencoder"}}


class UsageError(Exception):
    """A bad command line or state; reported in one line, exit status 1."""


def model_config(info) -> dict:
    """The builder keywords of the chosen model: the data's shape and levels,
    and every flag named like one of the builder's parameters."""
    import inspect

    from pixel_models.models import CLASSIFIERS, MODELS

    config = {"image_shape": list(info.image_shape), "levels": info.levels}
    parameters = inspect.signature(MODELS[FLAGS.model]).parameters
    for name in parameters:
        if name in FLAG_MODELS and FLAGS.model not in FLAG_MODELS[name]:
            continue
        if name not in config and name in FLAGS:
            config[name] = FLAGS[name].value
    if "encoder" in parameters and FLAGS.encoder == "invariant" and FLAGS.group == "none":
        raise UsageError("--encoder=invariant needs --group=C4 or --group=D4")
    if FLAGS.model in CLASSIFIERS:
        if info.num_classes is None:
            raise UsageError(f"--model={FLAGS.model} classifies: --data={FLAGS.data} has no labels")
        config["num_classes"] = info.num_classes
    if FLAGS.conditional:
        takes_labels = sorted(n for n, b in MODELS.items() if "num_classes" in _params(b))
        if "num_classes" not in parameters:
            raise UsageError(
                f"--conditional: --model={FLAGS.model} takes no class labels; "
                f"use one of {', '.join(takes_labels)}"
            )
        if info.num_classes is None:
            raise UsageError(f"--conditional: --data={FLAGS.data} has no class labels")
        config["num_classes"] = info.num_classes
    return config


def _params(builder) -> set:
    import inspect

    return set(inspect.signature(builder).parameters)


def run_config(info) -> dict:
    """What identifies a run: the data, the model and its configuration."""
    return {"data": FLAGS.data, "model": FLAGS.model, "config": model_config(info)}


def run_name(config: dict) -> str:
    """Folder name of a run: readable, and different for different models."""
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    return f"{config['data']}-{config['model']}-{digest}"


def make_strategy(name: str, tpu: str = ""):
    import tensorflow as tf

    if name == "tpu":
        return tpu_strategy(tpu)
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise UsageError(
                "--strategy=multi_worker needs the TF_CONFIG environment variable describing "
                "the cluster and this task"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def check_grpc_address(address: str, timeout: float = 10.0) -> None:
    """Raises UsageError unless something accepts connections at a ``grpc://host:port``
    address (TensorFlow would wait for it for ever); other addresses pass."""
    import socket

    if not address.startswith("grpc://"):
        return
    host, _, port = address[len("grpc://") :].rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--tpu={address!r}: a grpc address is grpc://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UsageError(
            f"--strategy=tpu: cannot reach --tpu={address!r} (nothing answers at "
            f"{host}:{port}: {reason})"
        ) from None


def tpu_strategy(address: str):
    """TPUStrategy on the TPU at ``address``; an unreachable one is a UsageError."""
    import tensorflow as tf

    check_grpc_address(address)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as err:  # noqa: BLE001  (the resolver raises many kinds)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"--strategy=tpu: cannot reach --tpu={address!r} ({first})") from None
    return tf.distribute.TPUStrategy(resolver)


def setup() -> None:
    """Applies the flags that act on the process: devices, logging, seeds."""
    import keras
    import tensorflow as tf

    from pixel_models import training

    logging.set_verbosity(FLAGS.log_level.lower())
    if not FLAGS.use_gpu:
        tf.config.set_visible_devices([], "GPU")
    training.set_precision(FLAGS.mixed_precision)
    keras.utils.set_random_seed(FLAGS.random_seed)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()


def build(info, strategy):
    """The model and optimizer, created inside the strategy's scope."""
    import pixel_models
    from pixel_models import training

    with strategy.scope():
        model = pixel_models.build_model(FLAGS.model, **model_config(info))
        optimizer = training.make_optimizer(FLAGS.optimizer, FLAGS.learning_rate)
        trainer = training.Trainer(
            model, optimizer, strategy, grad_clip=FLAGS.grad_clip, jit_compile=FLAGS.jit_compile
        )
    return trainer


def train(info, strategy, paths: dict) -> dict:
    from pixel_models import data, training

    data_dir = data.resolve_data_dir(FLAGS.data_dir if FLAGS["data_dir"].present else None)
    train_ds = data.load(
        FLAGS.data,
        "train",
        data_dir=data_dir,
        image_size=FLAGS.image_size,
        color_levels=FLAGS.color_levels,
        seed=FLAGS.random_seed,
        with_labels=with_labels(),
    )
    test_ds = data.load(
        FLAGS.data,
        "test",
        data_dir=data_dir,
        image_size=FLAGS.image_size,
        color_levels=FLAGS.color_levels,
        seed=FLAGS.random_seed,
        with_labels=with_labels(),
    )
    num_train = int(train_ds.cardinality())
    steps_per_epoch = math.ceil(num_train / FLAGS.batch_size) if num_train > 0 else None
    max_steps = FLAGS.max_steps or (FLAGS.max_epoch * (steps_per_epoch or 1))
    if FLAGS.max_steps and steps_per_epoch:
        max_steps = min(max_steps, FLAGS.max_epoch * steps_per_epoch)
    training.check_run_config(paths["checkpoint_dir"], run_config(info))
    trainer = build(info, strategy)
    config = training.TrainConfig(
        max_steps=max_steps,
        test_step=FLAGS.test_step,
        save_step=FLAGS.save_step,
        grad_clip=FLAGS.grad_clip,
        checkpoint_dir=paths["checkpoint_dir"],
        log_dir=paths["log_dir"],
        sample_dir=paths["sample_dir"],
        num_samples=FLAGS.num_samples,
        seed=FLAGS.random_seed,
        display=FLAGS.display,
    )
    return training.fit(
        trainer,
        data.pipeline(train_ds, FLAGS.batch_size, training=True, seed=FLAGS.random_seed),
        data.pipeline(test_ds, FLAGS.batch_size, training=False),
        config,
    )


def with_labels() -> bool:
    """Whether the run reads (image, label) pairs: classifiers and --conditional models."""
    from pixel_models.models import CLASSIFIERS

    return FLAGS.conditional or FLAGS.model in CLASSIFIERS


def evaluate_classifier(info, strategy, paths: dict) -> dict:
    """Test cross-entropy and accuracy of the run's latest checkpoint, printed as JSON."""
    from pixel_models import data, training

    model, step = restored_model(info, strategy, paths)
    data_dir = data.resolve_data_dir(FLAGS.data_dir if FLAGS["data_dir"].present else None)
    test = data.load(
        FLAGS.data, "test", data_dir=data_dir, seed=FLAGS.random_seed, with_labels=True
    )
    with strategy.scope():
        optimizer = training.make_optimizer(FLAGS.optimizer, FLAGS.learning_rate)
        trainer = training.Trainer(model, optimizer, strategy, jit_compile=FLAGS.jit_compile)
    result = trainer.evaluate(data.pipeline(test, FLAGS.batch_size, training=False))
    report = {
        "checkpoint_step": step,
        "test/nll": result["nll"],
        "test/accuracy": result["accuracy"],
    }
    print(json.dumps(report))
    return report


def generate(info, strategy, paths: dict) -> str:
    from pixel_models import images, sampling
    from pixel_models.models import is_autoencoder

    model, step = restored_model(info, strategy, paths)
    if is_autoencoder(model):
        grid = reconstruction_grid(model, info)
        stem = f"reconstructed_step{step}_seed{FLAGS.random_seed}"
    elif FLAGS.complete == "none":
        rows = sampling.class_rows(model, FLAGS.num_samples)
        labels, columns = rows if rows is not None else (None, None)
        samples = sampling.sample(
            model,
            FLAGS.num_samples if labels is None else len(labels),
            seed=FLAGS.random_seed,
            batch_size=FLAGS.batch_size,
            temperature=FLAGS.temperature,
            verbose=True,
            condition=labels,
        )
        grid = images.make_grid(samples, info.levels, columns=columns)
        stem = f"generated_step{step}_seed{FLAGS.random_seed}"
    else:
        grid = completion_grid(model, info)
        stem = f"completed_{FLAGS.complete}_step{step}_seed{FLAGS.random_seed}"
    path = _unused_path(os.path.join(paths["sample_dir"], stem))
    images.save_png(path, grid)
    if FLAGS.display:
        print(images.to_text(grid), flush=True)
    logging.info("wrote %d samples to %s", FLAGS.num_samples, path)
    print(path)
    return path


def restored_model(info, strategy, paths: dict):
    """The run's model with the weights of its latest checkpoint, and that step."""
    from pixel_models import build_model, training

    training.check_run_config(paths["checkpoint_dir"], run_config(info), record=False)
    with strategy.scope():
        model = build_model(FLAGS.model, **model_config(info))
    _, step = training.restore_model(model, paths["checkpoint_dir"])
    return model, step


def score(info, strategy, paths: dict) -> dict:
    """Prints the NLL of the --score images under the run's latest checkpoint."""
    from pixel_models import bits_per_dim, distribution_of, images

    if FLAGS.conditional:
        raise UsageError("--score: scoring images under a --conditional model needs their labels")
    try:
        names, arrays = images.load_images(FLAGS.score, info.image_shape, info.levels)
    except OSError as err:
        raise UsageError(f"--score: cannot read {FLAGS.score}: {err}") from None
    model, step = restored_model(info, strategy, paths)
    distribution = distribution_of(model)
    nll = np.concatenate(
        [
            distribution.nll(model(batch.astype(np.float32), training=False), batch).numpy()
            for batch in np.array_split(arrays, max(1, -(-len(arrays) // FLAGS.batch_size)))
        ]
    )
    dims = int(np.prod(info.image_shape))
    report = {
        "checkpoint_step": step,
        "images": {
            name: {"nll_nats": float(v), "bits_per_dim": float(bits_per_dim(v, dims))}
            for name, v in zip(names, nll, strict=True)
        },
        "mean_nll_nats": float(nll.mean()),
        "mean_bits_per_dim": float(bits_per_dim(nll.mean(), dims)),
    }
    print(json.dumps(report, indent=2))
    return report


def known_mask(kind: str, image_shape) -> np.ndarray:
    """Where the pixels are given, for a --complete kind: (H, W, C) booleans."""
    height, width, channels = image_shape
    known = np.zeros((height, width, channels), bool)
    if kind == "top_half":
        known[: height // 2] = True
    elif kind == "bottom_half":
        known[height - height // 2 :] = True
    elif kind == "left_half":
        known[:, : width // 2] = True
    return known


def test_images(num: int, with_labels: bool = False):
    """The first ``num`` test images of --data (and their labels, or None)."""
    from pixel_models import data

    data_dir = data.resolve_data_dir(FLAGS.data_dir if FLAGS["data_dir"].present else None)
    test = data.load(
        FLAGS.data,
        "test",
        data_dir=data_dir,
        image_size=FLAGS.image_size,
        color_levels=FLAGS.color_levels,
        seed=FLAGS.random_seed,
        num_examples=num,
        with_labels=with_labels,
    )
    if not with_labels:
        return np.stack([x.numpy() for x in test]), None
    pairs = [(x.numpy(), y.numpy()) for x, y in test]
    return np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs])


def reconstruction_grid(model, info):
    """Test images, each next to a sample of the decoder given the image's code."""
    from pixel_models import sampling, training

    originals, _ = test_images(FLAGS.num_samples)
    reconstructions = sampling.reconstruct(
        model,
        originals,
        seed=FLAGS.random_seed,
        batch_size=FLAGS.batch_size,
        temperature=FLAGS.temperature,
        verbose=True,
    )
    return training.reconstruction_grid(originals, reconstructions, info.levels)


def completion_grid(model, info):
    """Test images, their occluded versions and completions, three to a row."""
    from pixel_models import images, sampling

    # A class-conditional completion is conditioned on its image's label.
    originals, labels = test_images(FLAGS.num_samples, with_labels=FLAGS.conditional)
    known = known_mask(FLAGS.complete, info.image_shape)
    completed = sampling.complete(
        model,
        originals,
        known,
        seed=FLAGS.random_seed,
        batch_size=FLAGS.batch_size,
        temperature=FLAGS.temperature,
        verbose=True,
        condition=labels,
    )
    scale = 255.0 / (info.levels - 1)
    shown_originals = (originals * scale).round()
    occluded = np.where(known, shown_originals, 128.0)
    shown_completed = (completed * scale).round()
    rows = np.stack([shown_originals, occluded, shown_completed], axis=1)
    return images.make_grid(rows.reshape(-1, *info.image_shape).astype(np.uint8), 256, columns=3)


def _unused_path(stem: str) -> str:
    path, k = f"{stem}.png", 1
    while os.path.exists(path):
        path, k = f"{stem}_{k}.png", k + 1
    return path


def main(argv) -> int:
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    from pixel_models import data

    setup()
    try:
        info = data.info(FLAGS.data, image_size=FLAGS.image_size, color_levels=FLAGS.color_levels)
    except data.DataError as err:
        raise UsageError(str(err)) from None
    name = run_name(run_config(info))
    paths = {
        "checkpoint_dir": os.path.join(FLAGS.checkpoint_dir, name),
        "log_dir": os.path.join(FLAGS.log_dir, name),
        "sample_dir": os.path.join(FLAGS.sample_dir, name),
    }
    strategy = make_strategy(FLAGS.strategy, FLAGS.tpu)
    from pixel_models.models import CLASSIFIERS

    classifier = FLAGS.model in CLASSIFIERS
    if classifier and (FLAGS.score or FLAGS.complete != "none"):
        flag = "--score" if FLAGS.score else "--complete"
        raise UsageError(f"{flag}: --model={FLAGS.model} is a classifier; it draws no images")
    if FLAGS.model == "autoencoder" and (FLAGS.score or FLAGS.complete != "none"):
        flag = "--score" if FLAGS.score else "--complete"
        raise UsageError(
            f"{flag}: --model=autoencoder models p(x | code of x), whose code has seen the whole "
            "image; with --is_train=False it writes reconstructions"
        )
    if FLAGS.score:
        score(info, strategy, paths)
    elif FLAGS.is_train:
        metrics = train(info, strategy, paths)
        print(json.dumps({"run": name, **metrics}, sort_keys=True))
    elif classifier:
        evaluate_classifier(info, strategy, paths)
    else:
        generate(info, strategy, paths)
    return 0


def _main_with_errors(argv) -> None:
    from pixel_models.data import DataError
    from pixel_models.training import TrainingError

    try:
        sys.exit(main(argv))
    except (UsageError, DataError, TrainingError, ValueError) as err:
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
