"""Builder pieces shared by the models of the zoo.

Every model starts with :func:`model_input` (images in their data form,
rescaled to ``[-1, 1]``) and, when conditional, :func:`condition_inputs`;
the functional ones take both, with their head, from :func:`builder_start`
and end with its :meth:`BuilderStart.model`; sizes are checked by
:func:`check_sizes` (and by the checks of :mod:`pixel_models.layers.checks`); a
subclassed model's builder function takes its constructor's arguments
(:func:`builder_signature`);
the masked-convolution and recurrent models end with :func:`output_stack`;
the recurrent ones choose their LSTM layer with :func:`recurrent_layer` and
stack them with :func:`recurrent_stack`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import keras

from pixel_models.distributions import PixelHead, default_kind
from pixel_models.layers.checks import is_whole, odd_positive_int
from pixel_models.layers.masked_conv import MaskedConv2D
from pixel_models.layers.recurrent import DiagonalBiLSTM, RowLSTM

RNN_TYPES = ("diagonal_bilstm", "row_lstm")


def model_input(image_shape: Sequence[int], levels: int, name: str = "images"):
    """The input of every model and its scaling to ``[-1, 1]``.

    Models take images in their data form (integers ``0..levels-1`` as
    float32, so that gradients with respect to the input exist for the
    causality tests) and rescale them to ``[-1, 1]``.

    Returns:
      ``(inputs, scaled)``: the ``keras.Input`` and the rescaled tensor.
    """
    height, width, channels = check_image_shape(image_shape)
    levels = check_levels(levels)
    inputs = keras.Input(shape=(height, width, channels), dtype="float32", name=name)
    scaled = keras.layers.Rescaling(2.0 / (levels - 1), offset=-1.0, name="rescale")(inputs)
    return inputs, scaled


MAX_LEVELS = 256  # images are uint8 in their data form


def check_image_shape(image_shape) -> tuple[int, int, int]:
    """``image_shape`` as ``(H, W, C)`` ints, unless it is not three positive
    whole numbers (ValueError naming ``image_shape``)."""
    try:
        values = tuple(image_shape)
    except TypeError:
        values = ()
    if len(values) != 3 or not all(is_whole(v) and int(v) >= 1 for v in values):
        raise ValueError(f"image_shape must be three positive ints (H, W, C), got {image_shape!r}")
    return tuple(int(v) for v in values)


def check_levels(levels) -> int:
    """``levels`` as an int, unless it is not a whole number in ``[2, 256]``:
    the models take and draw uint8 images."""
    if not is_whole(levels) or not 2 <= int(levels) <= MAX_LEVELS:
        raise ValueError(f"levels must be an int in [2, {MAX_LEVELS}], got {levels!r}")
    return int(levels)


def check_sizes(**sizes: tuple[int, int]) -> None:
    """Raises ValueError naming the argument unless every ``name=(value, low)``
    has an int ``value >= low``."""
    for arg, (value, low) in sizes.items():
        if isinstance(value, bool) or int(value) != value or int(value) < low:
            raise ValueError(f"{arg} must be an int >= {low}, got {value!r}")


def check_optional_dims(name: str, value) -> None:
    """Raises ValueError naming the argument unless ``value`` is None or an int >= 1."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be None or a positive int, got {value!r}")


def condition_inputs(num_classes: int | None, latent_dims: int | None):
    """The conditioning inputs of a conditional model and the vector they give.

    With ``num_classes``: an int ``labels`` input ``(B,)``, one-hot encoded by
    ``keras.layers.CategoryEncoding`` (which maps a label outside ``[0,
    num_classes)`` to an all-zero code without an error); with
    ``latent_dims``: a float ``latents`` input ``(B, latent_dims)``; with both,
    the two concatenated (labels first).

    Returns:
      ``(inputs, condition)``: the list of ``keras.Input`` (empty when both
      are None) and the ``(B, D)`` conditioning tensor (None when empty).
    """
    check_optional_dims("num_classes", num_classes)
    check_optional_dims("latent_dims", latent_dims)
    inputs, parts = [], []
    if num_classes is not None:
        labels = keras.Input(shape=(), dtype="int32", name="labels")
        inputs.append(labels)
        parts.append(
            keras.layers.CategoryEncoding(num_classes, output_mode="one_hot", name="one_hot")(
                labels
            )
        )
    if latent_dims is not None:
        latents = keras.Input(shape=(latent_dims,), dtype="float32", name="latents")
        inputs.append(latents)
        parts.append(latents)
    if len(parts) > 1:
        return inputs, keras.layers.Concatenate(name="condition")(parts)
    return inputs, (parts[0] if parts else None)


class BuilderStart(NamedTuple):
    """What a functional builder starts from (see :func:`builder_start`)."""

    images: Any  # the image input
    x: Any  # the images rescaled to [-1, 1]
    extra_inputs: list  # the conditioning inputs (empty: unconditional)
    condition: Any  # the (B, D) conditioning vector, or None
    head: PixelHead
    channels: int

    def model(self, outputs, name: str) -> keras.Model:
        """The ``keras.Model`` from the image input (and the conditioning
        inputs, when there are any) to ``outputs``."""
        inputs = [self.images, *self.extra_inputs] if self.extra_inputs else self.images
        return keras.Model(inputs, outputs, name=name)


def builder_start(
    image_shape: Sequence[int],
    levels: int,
    num_classes: int | None = None,
    latent_dims: int | None = None,
    kind: str | None = None,
    num_mixtures: int | None = None,
) -> BuilderStart:
    """The inputs, the rescaled images, the conditioning vector and the head
    ``"head"`` (of ``kind``, by default the one for ``levels``) of a model.

    Example:

    >>> start = builder_start((4, 4, 1), 2, num_classes=3)
    >>> start.head.kind, start.channels, [tuple(t.shape) for t in start.extra_inputs]
    ('bernoulli', 1, [(None,)])
    """
    channels = int(image_shape[-1])
    images, x = model_input(image_shape, levels)
    extra_inputs, condition = condition_inputs(num_classes, latent_dims)
    kind = default_kind(levels) if kind is None else kind
    head = PixelHead(kind, channels, levels, num_mixtures, name="head")
    return BuilderStart(images, x, extra_inputs, condition, head, channels)


class FunctionalShapes:
    """``inputs``, ``input_shape`` and ``output_shape`` as a functional model
    has them, for a subclassed model with an ``image_shape`` whose image
    input is that of its model ``self._input_model`` and whose logits are
    those of its model ``self._logits_model``."""

    @property
    def inputs(self) -> list:
        """The symbolic image input, as for the functional models."""
        return self._input_model.inputs

    @property
    def input_shape(self) -> tuple:
        """``(None, H, W, C)``, as for the functional models."""
        return (None, *self.image_shape)

    @property
    def output_shape(self) -> tuple:
        """Shape of the logits, as for the functional models."""
        return (None, *self._logits_model.output_shape[1:])


def builder_signature(model_class: type, name: str) -> inspect.Signature:
    """The signature of the builder function of a subclassed model: the
    named arguments of ``model_class.__init__`` and a keyword ``name``
    (default ``name``), returning a ``model_class``."""
    parameters = [
        p
        for p in inspect.signature(model_class.__init__).parameters.values()
        if p.name != "self" and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    keyword = inspect.Parameter(
        "name", inspect.Parameter.KEYWORD_ONLY, default=name, annotation=str
    )
    return inspect.Signature([*parameters, keyword], return_annotation=model_class)


def apply(layer, x, condition=None):
    """``layer(x)``, or ``layer(x, condition=condition)`` when there is a condition."""
    return layer(x) if condition is None else layer(x, condition=condition)


def check_colour_features(channels: int, **features: int | None) -> None:
    """Raises ValueError naming the argument unless each of ``features`` (a
    builder's argument and its value; None: unused) gives every one of the
    ``channels`` colour groups a feature."""
    for name, value in features.items():
        if value is not None and int(value) < channels:
            raise ValueError(
                f"{name} must be at least the {channels} colour channels (a feature per "
                f"colour group), got {value}"
            )


def masked_conv_factory(channels: int, **features: int | None):
    """``conv(filters, kernel, mask_type, activation, name)``: masked convolutions
    with the colour groups of ``channels`` colour channels, once ``features``
    are checked (:func:`check_colour_features`)."""
    check_colour_features(channels, **features)

    def conv(filters, kernel, mask_type, activation, layer_name):
        return MaskedConv2D(
            filters,
            kernel,
            mask_type=mask_type,
            color_channels=channels,
            activation=activation,
            name=layer_name,
        )

    return conv


def output_stack(
    x, conv, out_hidden_dims: int, out_recurrent_length: int, head: PixelHead, condition=None
):
    """The 1x1 type-B ReLU layers, the logits layer and the head, shared by the
    masked-convolution and recurrent models (each layer adds the conditioning
    bias when there is a ``condition``)."""
    for i in range(out_recurrent_length):
        x = apply(conv(out_hidden_dims, 1, "B", "relu", f"out{i}"), x, condition)
    return head(apply(conv(head.features, 1, "B", None, "logits"), x, condition))


def recurrent_layer(
    rnn_type: str, units: int, channels: int, row_kernel_size: int, name: str
) -> keras.layers.Layer:
    """The mask-B LSTM layer ``rnn_type`` (one of ``RNN_TYPES``) of a PixelRNN.

    Example:

    >>> type(recurrent_layer("row_lstm", 4, channels=1, row_kernel_size=3, name="lstm0")).__name__
    'RowLSTM'
    """
    if rnn_type not in RNN_TYPES:
        raise ValueError(f"rnn_type must be one of {', '.join(RNN_TYPES)}, got {rnn_type!r}")
    odd_positive_int("row_kernel_size", row_kernel_size)  # checked for either type
    if rnn_type == "row_lstm":
        return RowLSTM(
            units, kernel_size=row_kernel_size, mask_type="B", color_channels=channels, name=name
        )
    return DiagonalBiLSTM(units, mask_type="B", color_channels=channels, name=name)


def recurrent_stack(
    x,
    lstm: Callable[[str], keras.layers.Layer],
    conv,
    length: int,
    use_residual: bool,
    condition: Callable[[int], object] | None = None,
):
    """``length`` LSTM layers ``lstm0, lstm1, ...`` on ``x``; with
    ``use_residual``, each layer's output goes through a 1x1 mask-B
    convolution ``proj<i>`` and is added to its input (``residual<i>``).

    Args:
      x: the features after the first (mask A) layer.
      lstm: makes the LSTM layer of a name (see :func:`recurrent_layer`).
      conv: the model's masked convolution factory (:func:`masked_conv_factory`).
      length: number of LSTM layers.
      use_residual: add the residual connections.
      condition: ``condition(i)``: the map that biases LSTM layer ``i``
        (made before the layer), or None.
    """
    for i in range(length):
        bias = None if condition is None else condition(i)
        layer = lstm(f"lstm{i}")
        y = layer(x) if bias is None else layer(x, condition=bias)
        if use_residual:
            y = conv(x.shape[-1], 1, "B", None, f"proj{i}")(y)
            y = keras.layers.Add(name=f"residual{i}")([x, y])
        x = y
    return x
