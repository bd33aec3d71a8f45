"""The configuration of a run: one frozen object from the command line to the library.

``main.py`` parses its flags into a :class:`RunConfig` and hands it to
:mod:`pixel_models.experiment`; nothing below ``main.py`` and ``flags.py``
reads the global flags, so tests, notebooks and users build the same object::

    config = RunConfig(data="shapes", image_size=16, max_steps=300)
    pixel_models.experiment.run(config)

Every field has the default of the flag of the same name.
"""

from __future__ import annotations

import dataclasses
import inspect

from pixel_models.data import DatasetInfo


class UsageError(Exception):
    """A bad command line or state; reported in one line, exit status 1."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What a run does, with the defaults of ``main.py``'s flags (``--help`` says more).

    The network fields (``hidden_dims``, ``rnn_type``, ...) are passed to the
    chosen model's builder when it takes a parameter of that name (see
    :func:`model_config`); the others say what to train on, how long, and
    where to write.

    Example:

    >>> config = RunConfig(data="shapes", image_size=8)
    >>> config.model, config.optimizer, config.max_steps
    ('pixel_cnn', 'rmsprop', 0)
    >>> dataclasses.replace(config, max_steps=10).max_steps
    10
    """

    # Network.
    model: str = "pixel_cnn"
    hidden_dims: int = 16
    recurrent_length: int = 7
    out_hidden_dims: int = 32
    out_recurrent_length: int = 2
    use_residual: bool = False
    rnn_type: str = "diagonal_bilstm"
    group: str = "D4"
    conditional: bool = False
    color_dependence: str = "dependent"
    latent_dims: int = 10
    encoder: str = "conv"
    encoder_dims: int = 32
    small_image_size: int = 0
    num_blocks: int = 2
    residual_blocks: int = 2
    attention_heads: int = 1
    key_dims: int = 16
    value_dims: int = 16
    dropout: float = 0.0
    num_resnet: int = 5
    num_resolutions: int = 3
    num_mixtures: int = 10
    # Data.
    data: str = "mnist"
    data_dir: str | None = None
    image_size: int | None = None  # None: 28 for procedural data, else the images' own size
    color_levels: int = 256
    binarize: str = "none"
    # Training.
    batch_size: int = 100
    max_epoch: int = 100000
    max_steps: int = 0
    max_minutes: float = 0.0  # 0: no time limit
    test_step: int = 100
    save_step: int = 1000
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    grad_clip: float = 1.0
    optimizer: str = "rmsprop"
    # What to do.
    is_train: bool = True
    complete: str = "none"
    score: str = ""
    score_grid: bool = False
    num_samples: int = 100
    temperature: float = 1.0
    # Outputs.
    checkpoint_dir: str = "checkpoints"
    log_dir: str = "logs"
    sample_dir: str = "samples"
    display: bool = False
    log_level: str = "INFO"
    # Devices.
    use_gpu: bool = True
    strategy: str = "auto"
    tpu: str = ""
    worker_wait_seconds: float = 600.0
    mixed_precision: bool = False
    jit_compile: bool = False
    random_seed: int = 123
    deterministic: bool = False


# Fields that set a builder parameter of these models only. Other builders may
# take a parameter of the same name (pixel_cnn and gated_pixel_cnn accept
# latent_dims for a code given from outside), which a run leaves unset.
FIELD_MODELS = {"latent_dims": {"autoencoder"}}
# Fields that describe the run, not the network, although a builder may take
# a parameter of the same name.
_FIELDS = [f.name for f in dataclasses.fields(RunConfig)]
_NOT_NETWORK = frozenset(_FIELDS[_FIELDS.index("data") :])


def _reads(model: str, name: str) -> bool:
    """Whether the network field ``name`` sets a parameter of ``model``'s builder."""
    from pixel_models.models import MODELS

    if name in FIELD_MODELS and model not in FIELD_MODELS[name]:
        return False
    return name in inspect.signature(MODELS[model]).parameters


def check_network_fields_read(model: str, given: set[str]) -> None:
    """Refuses the network fields in ``given`` (flags given on the command line)
    that ``model``'s builder does not read: every flag given acts.

    Raises:
      UsageError: naming the first such field and the models that read it.

    Example:

    >>> check_network_fields_read("pixel_cnn", {"hidden_dims", "use_residual"})
    >>> check_network_fields_read("pixel_cnn", {"num_mixtures"})
    Traceback (most recent call last):
    ...
    pixel_models.config.UsageError: --num_mixtures: --model=pixel_cnn does not read it; \
pixel_cnn_pp does
    >>> check_network_fields_read("pixel_snail", {"recurrent_length"})
    Traceback (most recent call last):
    ...
    pixel_models.config.UsageError: --recurrent_length: --model=pixel_snail does not read it; \
autoencoder, gated_pixel_cnn, multiscale_pixel_rnn, pixel_cnn, pixel_rcnn, pixel_rnn do
    """
    from pixel_models.models import MODELS

    network = _FIELDS[: _FIELDS.index("data")]
    for name in network:
        if name in given and name not in ("model", "conditional") and not _reads(model, name):
            readers = sorted(m for m in MODELS if _reads(m, name))
            verb = "does" if len(readers) == 1 else "do"
            raise UsageError(
                f"--{name}: --model={model} does not read it; {', '.join(readers)} {verb}"
            )


# The run fields that only some modes read, and those modes: "train",
# "generate" (--is_train=False of a model that draws images), "evaluate"
# (--is_train=False of a classifier) and "score"; "draw" stands for the modes
# that write images (training and generating a model that draws them). The
# folder flags are taken in every mode: a script may name all three.
MODE_FIELDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        (
            "max_epoch",
            "max_steps",
            "max_minutes",
            "test_step",
            "save_step",
            "learning_rate",
            "warmup_steps",
            "grad_clip",
            "optimizer",
        ),
        ("train",),
    ),
    "jit_compile": ("train", "evaluate"),
    "num_samples": ("draw",),
}


def _modes(config: RunConfig) -> tuple[str, set[str]]:
    """The run's mode, in words, and the modes of :data:`MODE_FIELDS` it is."""
    from pixel_models.kinds import kind_for_builder

    draws = kind_for_builder(config.model).draws_images
    if config.score:
        return f"--score={config.score}", {"score"}
    if config.is_train:
        return "training", {"train", "draw"} if draws else {"train"}
    if draws:
        return "generating (--is_train=False)", {"generate", "draw"}
    return f"evaluating --model={config.model} (--is_train=False)", {"evaluate"}


def check_mode_fields_read(config: RunConfig, given: set[str]) -> None:
    """Refuses the fields in ``given`` (flags given on the command line, not
    in a flagfile, which sets them for every mode) that the run's mode does
    not read: every flag given acts.

    Raises:
      UsageError: naming the first such field and what the run does instead.

    Example:

    >>> check_mode_fields_read(RunConfig(is_train=False), {"num_samples"})
    >>> check_mode_fields_read(RunConfig(is_train=False), {"max_steps"})
    Traceback (most recent call last):
    ...
    pixel_models.config.UsageError: --max_steps: generating (--is_train=False) does not read \
it; it applies to training
    """
    mode, modes = _modes(config)
    if config.score and "is_train" in given and config.is_train:
        raise UsageError(f"--is_train=True: {mode} scores images with a trained run; drop it")
    for name, readers in MODE_FIELDS.items():
        if name not in given or modes & set(readers):
            continue
        if readers == ("draw",):
            drawer = mode if config.score else f"--model={config.model}"
            raise UsageError(f"--{name}: {drawer} draws no images")
        raise UsageError(f"--{name}: {mode} does not read it; it applies to training")


def model_config(config: RunConfig, info: DatasetInfo) -> dict:
    """The builder keywords of the run's model: the data's shape and levels, the
    class count where the model needs labels, and every network field named
    like one of the builder's parameters.

    Example:

    >>> from pixel_models import data
    >>> model_config(RunConfig(hidden_dims=4), data.info("shapes", image_size=8))["hidden_dims"]
    4
    """
    from pixel_models.kinds import kind_for_builder
    from pixel_models.models import MODELS

    builder = MODELS[config.model]
    parameters = inspect.signature(builder).parameters
    keywords = {"image_shape": list(info.image_shape), "levels": info.levels}
    for name in parameters:
        network = name not in keywords and name not in _NOT_NETWORK and hasattr(config, name)
        if network and _reads(config.model, name):  # FIELD_MODELS: some fields, some models
            keywords[name] = getattr(config, name)
    if "encoder" in parameters and config.encoder == "invariant" and config.group == "none":
        raise UsageError("--encoder=invariant needs --group=C4 or --group=D4")
    if kind_for_builder(config.model).needs_labels:
        if info.num_classes is None:
            raise UsageError(
                f"--model={config.model} classifies: --data={config.data} has no labels"
            )
        keywords["num_classes"] = info.num_classes
    if config.conditional:
        if kind_for_builder(config.model).needs_labels:
            raise UsageError(
                f"--conditional: --model={config.model} classifies its images, it is not a "
                "conditional density model; drop --conditional"
            )
        if "num_classes" not in parameters:
            takes_labels = sorted(
                n
                for n, b in MODELS.items()
                if "num_classes" in inspect.signature(b).parameters
                and not kind_for_builder(n).needs_labels
            )
            raise UsageError(
                f"--conditional: --model={config.model} takes no class labels; "
                f"use one of {', '.join(takes_labels)}"
            )
        if info.num_classes is None:
            raise UsageError(f"--conditional: --data={config.data} has no class labels")
        keywords["num_classes"] = info.num_classes
    return keywords


def reads_labels(config: RunConfig) -> bool:
    """Whether the run reads ``(image, label)`` pairs: classifiers and
    ``conditional`` models."""
    from pixel_models.kinds import kind_for_builder

    return config.conditional or kind_for_builder(config.model).needs_labels


def recorded_config(record: dict, checkpoint_dir: str = "checkpoints") -> RunConfig:
    """The :class:`RunConfig` of a run from what its ``run_config.json`` records.

    The record holds the run's data (and its binarization), model, builder
    keywords, optimizer and warmup; the returned config has those (the network
    fields, ``image_size`` and
    ``color_levels`` from the image shape and levels, ``conditional`` when a
    density model takes labels) and ``checkpoint_dir`` as given, so that it
    names the same run folder. What the record does not hold (batch size,
    learning rate, output folders) keeps its default.

    Example:

    >>> record = {"data": "shapes", "model": "pixel_cnn", "optimizer": "adam",
    ...           "config": {"image_shape": [8, 8, 1], "levels": 2, "hidden_dims": 4}}
    >>> config = recorded_config(record)
    >>> config.model, config.image_size, config.color_levels, config.hidden_dims
    ('pixel_cnn', 8, 2, 4)
    """
    from pixel_models.kinds import kind_for_builder

    keywords = dict(record.get("config", {}))
    fields = {f.name for f in dataclasses.fields(RunConfig)} - _NOT_NETWORK
    values = {name: keywords[name] for name in keywords if name in fields}
    image_shape = keywords.get("image_shape")
    if image_shape:
        values["image_size"] = int(image_shape[0])
    if "levels" in keywords:
        values["color_levels"] = int(keywords["levels"])
    model = record.get("model", RunConfig.model)
    if "num_classes" in keywords and not kind_for_builder(model).needs_labels:
        values["conditional"] = True
    for name in ("data", "model", "optimizer", "warmup_steps", "binarize"):
        if name in record:
            values[name] = record[name]
    return RunConfig(checkpoint_dir=checkpoint_dir, **values)
