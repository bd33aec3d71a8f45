"""Command-line flags of main.py.

The first block keeps the names and defaults of carpedm20/pixel-rnn-tensorflow's
``main.py`` (but for ``--use_dynamic_rnn``, gone, ``--data=cifar``, here
``cifar10``, and ``--data_dir``, without a default folder), so its commands work
here; the rest is what a run also needs.
Every flag is validated when parsed: a bad value stops the program with one
line naming the flag and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys

from absl import flags

from pixel_models.config import (
    RunConfig,
    UsageError,
    check_mode_fields_read,
    check_network_fields_read,
)
from pixel_models.data import COLOR_LEVEL_DATASETS, DATASETS, info
from pixel_models.devices import STRATEGIES
from pixel_models.images import KNOWN_PARTS
from pixel_models.models import MODELS
from pixel_models.own_data import BINARIZE, TFDS_PREFIX
from pixel_models.training import OPTIMIZERS

FLAGS = flags.FLAGS

# Network (names and defaults of carpedm20/pixel-rnn-tensorflow).
flags.DEFINE_enum("model", "pixel_cnn", sorted(MODELS), "Model to train or sample from.")
flags.DEFINE_integer("batch_size", 100, "Global batch size (split across replicas).")
flags.DEFINE_integer("hidden_dims", 16, "Features of the hidden masked layers.")
flags.DEFINE_integer("recurrent_length", 7, "Number of hidden (3x3 type B / recurrent) layers.")
flags.DEFINE_integer("out_hidden_dims", 32, "Features of the 1x1 output layers.")
flags.DEFINE_integer("out_recurrent_length", 2, "Number of 1x1 output layers.")
flags.DEFINE_boolean("use_residual", False, "Add residual connections between hidden layers.")
flags.DEFINE_enum(
    "rnn_type",
    "diagonal_bilstm",
    ["diagonal_bilstm", "row_lstm"],
    "Recurrent layer of --model=pixel_rnn and multiscale_pixel_rnn.",
)
flags.DEFINE_enum(
    "group",
    "D4",
    ["none", "C4", "D4"],
    "Symmetry group of --model=invariant_cnn (and of --model=autoencoder --encoder=invariant): "
    "none (a plain CNN with about the same number of parameters), C4 (rotations by 90 "
    "degrees) or D4 (rotations and mirror flips).",
)
flags.DEFINE_bool(
    "conditional",
    False,
    "Condition the model on the dataset's class labels (models with a num_classes parameter: "
    "pixel_cnn, gated_pixel_cnn, pixel_cnn_pp, pixel_snail; datasets with labels: mnist, cifar10, "
    "colored_mnist, rotated_mnist, and your own images with labels: class subfolders, npz "
    "labels, tfds:NAME with a label feature). "
    "Sample grids then show one row per class.",
)
flags.DEFINE_enum(
    "color_dependence",
    "dependent",
    ["dependent", "independent"],
    "Colour channels of --model=pixel_rcnn: dependent (channel c of a pixel is predicted "
    "from the pixels before it and from channels < c of the pixel) or independent (from the "
    "pixels before it only).",
)
flags.DEFINE_integer(
    "latent_dims",
    10,
    "Size of the code of --model=autoencoder (its encoder's output, on which the Gated "
    "PixelCNN decoder is conditioned).",
)
flags.DEFINE_enum(
    "encoder",
    "conv",
    ["conv", "invariant"],
    "Encoder of --model=autoencoder: conv (strided convolutions) or invariant (group "
    "convolutions over --group, C4 or D4: turned or mirrored images get the same code).",
)
flags.DEFINE_integer("encoder_dims", 32, "Width of the encoder of --model=autoencoder.")
flags.DEFINE_integer(
    "small_image_size",
    0,
    "Side s of the s x s image that --model=multiscale_pixel_rnn generates first "
    "(must divide the image height and width); 0: half the image size.",
)
flags.DEFINE_integer(
    "num_resnet", 5, "Gated residual blocks per resolution of --model=pixel_cnn_pp."
)
flags.DEFINE_integer(
    "num_resolutions",
    3,
    "Resolutions of --model=pixel_cnn_pp (each half the size of the one before).",
)
flags.DEFINE_integer(
    "num_mixtures", 10, "Logistic mixture components per pixel of --model=pixel_cnn_pp."
)

flags.DEFINE_integer(
    "num_blocks",
    2,
    "Blocks of --model=pixel_snail (each: --residual_blocks gated residual blocks, then "
    "causal self-attention over all earlier pixels).",
)
flags.DEFINE_integer(
    "residual_blocks", 2, "Gated residual blocks of causal convolutions per block of pixel_snail."
)
flags.DEFINE_integer("attention_heads", 1, "Attention heads of each block of pixel_snail.")
flags.DEFINE_integer("key_dims", 16, "Size of the keys and queries of each attention head.")
flags.DEFINE_integer("value_dims", 16, "Size of the values of each attention head.")
flags.DEFINE_float(
    "dropout",
    0.0,
    "Dropout rate inside the gated residual blocks of --model=pixel_cnn_pp and pixel_snail "
    "(in training; the papers' CIFAR-10 flagfiles use 0.5).",
)
flags.register_validator(
    "dropout", lambda v: 0 <= v < 1, message="--dropout must be a number in [0, 1)"
)

# Training.
flags.DEFINE_integer("max_epoch", 100000, "Stop after this many passes over the training set.")
flags.DEFINE_integer("test_step", 100, "Evaluate on the test set every this many steps.")
flags.DEFINE_integer("save_step", 1000, "Checkpoint and write a sample grid every this many steps.")
flags.DEFINE_float("learning_rate", 1e-3, "Learning rate.")
flags.DEFINE_integer(
    "warmup_steps",
    0,
    "Raise the learning rate linearly from learning_rate / warmup_steps to learning_rate "
    "over the first this many steps; 0: no warmup.",
)
flags.DEFINE_float("grad_clip", 1.0, "Clip each gradient entry to [-grad_clip, grad_clip]; 0: off.")
flags.DEFINE_boolean("use_gpu", True, "Use GPUs if there are any; False hides them.")

# Data and outputs.
flags.DEFINE_string(
    "data",
    "mnist",
    f"Dataset: one of {', '.join(DATASETS)}; or your own images: tfds:NAME (any "
    "tensorflow-datasets image dataset, e.g. tfds:fashion_mnist), a folder of PNG/JPEG files "
    "(one subfolder per class gives labels) or a .npy/.npz array file.",
)
flags.register_validator(
    "data",
    lambda v: v in DATASETS or v.startswith(TFDS_PREFIX) or os.path.exists(v),
    message=f"--data must be one of {', '.join(DATASETS)}, tfds:NAME, a folder of PNG/JPEG "
    "images or a .npy/.npz file that exists",
)
flags.DEFINE_enum(
    "binarize",
    "none",
    list(BINARIZE),
    "Binarization of your own images (tfds:NAME, folders, array files): none, threshold "
    "(1 where the value is >= 128) or stochastic (1 with probability value/255, drawn afresh "
    "every pass through the training split).",
)
flags.DEFINE_string(
    "data_dir",
    None,
    "tensorflow-datasets folder. When not given: TFDS_DATA_DIR if set, else "
    "tensorflow-datasets' own default (~/tensorflow_datasets).",
)
flags.DEFINE_string("sample_dir", "samples", "Where sample grids (PNG) are written.")
flags.DEFINE_boolean("is_train", True, "Train (True) or generate samples (False).")
flags.DEFINE_boolean("display", False, "Print each sample grid to the terminal.")
flags.DEFINE_enum(
    "log_level", "INFO", ["DEBUG", "INFO", "WARNING", "ERROR", "FATAL"], "Logging level."
)
flags.DEFINE_integer("random_seed", 123, "Seed of all random number generators.")
flags.DEFINE_boolean(
    "deterministic",
    False,
    "Make TensorFlow ops deterministic (tf.config.experimental.enable_op_determinism): with "
    "the same --random_seed, two runs on the same device give identical losses; slower on GPU.",
)

# Beyond carpedm20.
flags.DEFINE_string("checkpoint_dir", "checkpoints", "Where checkpoints are written.")
# absl.logging already defines --log_dir ("directory to write logfiles into"):
# it is reused for the TensorBoard event files, with its default changed.
FLAGS.set_default("log_dir", "logs")
FLAGS["log_dir"].help = "Where TensorBoard event files are written."
flags.declare_key_flag("log_dir")  # listed by --helpshort with the flags of this module
flags.DEFINE_integer("num_samples", 100, "Images in a sample grid.")
flags.DEFINE_integer(
    "image_size",
    None,
    "Height and width of procedural datasets (shapes, colored_shapes; default 28); your own "
    "images are cropped to their central square and resized to it (default: their own size).",
)
flags.DEFINE_integer(
    "color_levels",
    256,
    "Values per channel of the coloured datasets (colored_shapes, colored_mnist) and of your "
    "own images, 2 to 256.",
)
flags.register_validator(
    "color_levels", lambda v: 2 <= v <= 256, message="--color_levels must be from 2 to 256"
)
flags.DEFINE_integer("max_steps", 0, "Stop after this many steps in all; 0: no limit.")
flags.DEFINE_float(
    "max_minutes",
    0.0,
    "Also stop (after a checkpoint and a test evaluation) once this run of the program has "
    "trained this many minutes; the same command again trains on. 0: no time limit.",
)
flags.register_validator(
    "max_minutes",
    lambda v: v is not None and 0 <= v < float("inf"),
    message="--max_minutes must be a finite number >= 0 (0: no time limit)",
)
flags.DEFINE_enum(
    "complete",
    "none",
    ["none", *KNOWN_PARTS],
    "With --is_train=False: instead of sampling from scratch, take --num_samples test images, "
    "keep the named part and sample the rest; writes originals, occluded inputs and "
    "completions side by side.",
)
flags.DEFINE_float(
    "temperature",
    1.0,
    "Sampling temperature of categorical and logistic mixture heads (1: exact samples), "
    "in generation and in training's sample grids.",
)
flags.DEFINE_string(
    "score",
    "",
    "Instead of training or sampling: the log-likelihood under the trained run of the images "
    "in this PNG file, folder of PNG files or .npy array (N, H, W, C), printed as JSON in nats "
    "per image and bits per dimension.",
)
flags.DEFINE_bool(
    "score_grid",
    False,
    "With --score: read each PNG file as a grid of images with 1-pixel gaps, as the sample "
    "grids a run writes, and score every image of it.",
)
flags.DEFINE_enum("optimizer", "rmsprop", list(OPTIMIZERS), "Optimizer.")
flags.DEFINE_enum(
    "strategy",
    "auto",
    list(STRATEGIES),
    "tf.distribute strategy: auto (mirrored over all GPUs if more than one, else default), "
    "default (no strategy: TensorFlow places ops), one_device (OneDeviceStrategy on the first "
    "GPU, else the CPU), mirrored (all visible GPUs, or CPU), multi_worker "
    "(MultiWorkerMirroredStrategy, cluster from the TF_CONFIG environment variable), tpu "
    "(TPUStrategy on the TPU named by --tpu).",
)
flags.DEFINE_string(
    "tpu",
    "",
    "With --strategy=tpu: the TPU to train on (its name, a grpc:// address, or 'local' on a "
    "TPU VM).",
)
flags.DEFINE_float(
    "worker_wait_seconds",
    600.0,
    "With --strategy=multi_worker: how long to wait for every worker of TF_CONFIG to join "
    "before giving up with an error naming the missing ones.",
)
flags.DEFINE_boolean(
    "mixed_precision",
    False,
    "Compute in mixed precision: mixed_float16 with loss scaling when a GPU is visible, "
    "mixed_bfloat16 otherwise (CPU, TPU); variables, logits and the loss stay float32.",
)
flags.DEFINE_boolean(
    "jit_compile",
    False,
    "Compile the training step (forward pass, loss and gradients) and the evaluation step "
    "with XLA.",
)


@flags.multi_flags_validator(["score", "score_grid"])
def _check_score_grid(values: dict) -> bool:
    if values["score_grid"] and not values["score"]:
        raise flags.ValidationError("--score_grid is only read with --score=<PNG file or folder>")
    return True


@flags.multi_flags_validator(["strategy", "tpu"])
def _check_tpu(values: dict) -> bool:
    if values["strategy"] == "tpu" and not values["tpu"]:
        raise flags.ValidationError(
            "--strategy=tpu needs --tpu: a TPU name, a grpc:// address or 'local' on a TPU VM"
        )
    if values["tpu"] and values["strategy"] != "tpu":
        raise flags.ValidationError(
            f"--tpu is only read with --strategy=tpu, not --strategy={values['strategy']}"
        )
    return True


for _name, _low in (
    ("batch_size", 1),
    ("hidden_dims", 1),
    ("recurrent_length", 0),
    ("out_hidden_dims", 1),
    ("out_recurrent_length", 0),
    ("max_epoch", 1),
    ("test_step", 1),
    ("save_step", 1),
    ("num_samples", 1),
    ("max_steps", 0),
    ("small_image_size", 0),
    ("latent_dims", 1),
    ("encoder_dims", 1),
    ("num_blocks", 1),
    ("residual_blocks", 0),
    ("attention_heads", 1),
    ("key_dims", 1),
    ("value_dims", 1),
    ("num_resnet", 1),
    ("num_resolutions", 1),
    ("num_mixtures", 1),
):
    flags.register_validator(
        _name,
        lambda value, low=_low: value is not None and value >= low,
        message=f"--{_name} must be an integer >= {_low}",
    )
flags.register_validator(
    "image_size",
    lambda value: value is None or value >= 4,
    message="--image_size must be an integer >= 4",
)
flags.register_validator("learning_rate", lambda v: v > 0, message="--learning_rate must be > 0")
flags.register_validator(
    "random_seed",
    lambda v: 0 <= v < 2**32,
    message="--random_seed must be an integer from 0 to 2**32 - 1",
)
flags.register_validator(
    "warmup_steps", lambda v: v >= 0, message="--warmup_steps must be an integer >= 0"
)
flags.register_validator(
    "temperature",
    lambda v: 0 < v < float("inf"),
    message="--temperature must be a finite number > 0",
)
flags.register_validator(
    "worker_wait_seconds",
    lambda v: 0 < v < math.inf,
    message="--worker_wait_seconds must be a finite number > 0",
)
flags.register_validator("grad_clip", lambda v: v >= 0, message="--grad_clip must be >= 0")


def run_config(argv: list[str] | None = None) -> RunConfig:
    """The parsed flags as one frozen :class:`~pixel_models.config.RunConfig`.

    ``--data_dir`` counts only when given on the command line (else
    ``TFDS_DATA_DIR`` or the tensorflow-datasets default is used). Flags typed
    in ``argv`` (default: ``sys.argv[1:]``) that the run's mode does not read
    are refused (:func:`~pixel_models.config.check_mode_fields_read`).
    """
    values = {
        field.name: FLAGS[field.name].value
        for field in dataclasses.fields(RunConfig)
        if field.name != "data_dir"
    }
    data_dir = FLAGS.data_dir if FLAGS["data_dir"].present else None
    _check_color_levels_apply()
    if FLAGS["worker_wait_seconds"].present and FLAGS.strategy != "multi_worker":
        raise UsageError(
            "--worker_wait_seconds is only read with --strategy=multi_worker, not "
            f"--strategy={FLAGS.strategy}"
        )
    given = {name for name in values if FLAGS[name].present}
    check_network_fields_read(FLAGS.model, given)
    config = RunConfig(data_dir=data_dir, **values)
    typed = _typed_names(sys.argv[1:] if argv is None else argv) & given
    check_mode_fields_read(config, typed)
    return config


def _typed_names(argv: list[str]) -> set[str]:
    """The names of the flags in ``argv`` itself, not in a ``--flagfile`` (a
    flagfile sets its values for every mode, so the mode checks skip them)."""
    names = set()
    for arg in argv:
        if arg == "--":
            break
        if not arg.startswith("-"):
            continue
        name = arg.lstrip("-").split("=", 1)[0]
        if name not in FLAGS and name.startswith("no") and name[2:] in FLAGS:
            name = name[2:]  # --noflag
        names.add(name)
    return names


def _check_color_levels_apply() -> None:
    """Refuses a ``--color_levels`` given for a named dataset of fixed levels
    (it would be ignored): every flag given acts."""
    name, levels = FLAGS.data, FLAGS.color_levels
    if not FLAGS["color_levels"].present or name not in DATASETS or name in COLOR_LEVEL_DATASETS:
        return
    own = info(name).levels  # levels of their own do not depend on the size
    if levels != own:
        raise UsageError(
            f"--color_levels={levels}: --data={name} has {own} levels of its own; "
            f"--color_levels sets those of {', '.join(COLOR_LEVEL_DATASETS)} and of your "
            "own images"
        )
