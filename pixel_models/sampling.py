"""Compiled autoregressive sampling for every model of the zoo.

Pixels are drawn one dimension at a time in raster order (row by row, left to
right, and R, G, B within a pixel). The whole loop is one ``tf.function`` with
a ``tf.while_loop`` over positions, so no Python code runs per pixel. Each
step runs the full network on the partial image and draws the next value from
the model's head with a stateless random op keyed by ``(seed, position)``:
the same seed gives the same images.

Models whose layers can be evaluated one position at a time also get a
*cached* sampler (Ramachandran et al. 2017, Fast Generation for Convolutional
Autoregressive Models): every intermediate feature map is kept in a buffer,
and each step computes only the outputs at the current position from the
buffered windows of the layer below, so a step costs about 1/(H*W) of a full
forward pass. It uses the same random draws as the reference loop, so both
give the same images up to float32 rounding of the logits, and it is compiled
with XLA so that the buffer updates happen in place. The cached path supports
functional models built from:

- ``MaskedConv2D`` (through ``causal_window()`` / ``call_window()``), one
  position at a time, with or without a constant ``condition``;
- ``GatedBlock`` without a ``spatial_condition``: its vertical stack has seen
  only image rows above the current one, so it is computed a whole row at a
  time before the row's first pixel (``vertical_window()`` /
  ``call_vertical_row()``), and its horizontal stack one position at a time
  (``horizontal_window()`` / ``call_horizontal_window()``);
- the recurrent layers ``RowLSTM``, ``DiagonalLSTM`` and ``DiagonalBiLSTM``,
  without a ``condition`` or with one known before the loop (through
  ``step_states()``, ``step_windows()``,
  ``call_step_row()`` and ``call_step()``): they carry their LSTM states in
  buffers instead of running their loops again. Before each row, a Row LSTM
  computes the state-to-state part of the whole row from the row above, and
  a Diagonal BiLSTM its right-to-left stream (shifted down one row, it needs
  only the row above); then each position takes one LSTM step: the Row
  LSTM's from its ``1 x k`` input window and the row's part, the Diagonal
  LSTM's from its input and its upper and left neighbours' states;
- the pointwise layers ``Rescaling``, ``Add``, ``Activation``, ``ReLU`` and
  ``BatchNormalization`` (in inference mode);
- any layers that read only the conditioning inputs (``CategoryEncoding``,
  ``Concatenate``, ...), run once per batch before the loop;
- layers with ``pixels_read()`` (``GridSubsample``) on the rescaled image,
  and every layer after them that reads nothing else: they read given
  pixels only, so they too run once per batch before the loop, provided
  every image has all of those pixels known (else ``method="auto"`` runs
  the reference loop and ``method="cached"`` refuses);
- the ``PixelHead``.

So PixelCNN, Gated PixelCNN (unconditional, class- or latent-conditional,
and so the decoder of the autoencoder), PixelRNN and both stages of the
Multi-Scale PixelRNN (the second one biases its LSTM layers with a map of
the small image, given by then) sample with it; :func:`supports_cached`
tells, and ``method="auto"`` uses it whenever it can. Conditional models take their
labels or codes through the ``condition`` argument of :func:`sample` and
:func:`complete`, in both loops.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from pixel_models.distributions import (
    RNG_ALG,
    Categorical,
    Distribution,
    PixelHead,
    distribution_of,
)

_CACHE_ATTR = "_pixel_models_sampling_loops"


def image_shape(model: keras.Model) -> tuple[int, int, int]:
    """``(H, W, C)`` of the images a model reads (its first input).

    Example:

    >>> import pixel_models as pm
    >>> digits = pm.build_model("gated_pixel_cnn", image_shape=(4, 6, 1), hidden_dims=2,
    ...                         recurrent_length=1, num_classes=10)
    >>> [tuple(x.shape) for x in digits.inputs], image_shape(digits)
    ([(None, 4, 6, 1), (None,)], (4, 6, 1))
    """
    inputs = _model_inputs(model)
    # The images are the first input (a conditional model takes more inputs after them).
    shape = tuple(inputs[0].shape[1:]) if len(inputs) > 1 else tuple(model.input_shape[1:])
    if len(shape) != 3 or any(v is None for v in shape):
        raise ValueError(f"sampling needs a model with a fixed (H, W, C) input, got {shape}")
    return tuple(int(v) for v in shape)


def _model_inputs(model: keras.Model) -> list:
    """The symbolic inputs of a functional model (none for a subclassed one)."""
    try:
        return list(model.inputs or [])
    except AttributeError:
        return []


def _model_cache(model: keras.Model) -> dict:
    """Compiled loops of a model, kept on the model itself (a global table keyed
    by the model would be kept alive by the loops): freed with the model."""
    cache = model.__dict__.get(_CACHE_ATTR)
    if cache is None:
        cache = {}
        object.__setattr__(model, _CACHE_ATTR, cache)
    return cache


def _loop(model: keras.Model, distribution: Distribution):
    """One compiled sampling loop per (model, distribution)."""
    cache = _model_cache(model)
    key = (distribution.kind, distribution.levels, getattr(distribution, "temperature", 1.0))
    if key in cache:
        return cache[key]
    height, width, channels = image_shape(model)
    steps = height * width * channels

    # Compiled with XLA like the cached loop, so that both draw the same numbers.
    @tf.function(jit_compile=True, reduce_retracing=True)
    def run(images, known, seed, conditions):
        batch = tf.shape(images)[0]
        rows = tf.range(batch)

        def body(t, x):
            pos, c = t // channels, t % channels
            i, j = pos // width, pos % width
            logits = model([x, *conditions] if conditions else x, training=False)
            values = distribution.sample(
                logits[:, i, j, c], tf.random.experimental.stateless_fold_in(seed, t, alg=RNG_ALG)
            )
            index = tf.stack(
                [rows, tf.fill([batch], i), tf.fill([batch], j), tf.fill([batch], c)], axis=1
            )
            keep = tf.gather_nd(known, index)
            new = tf.where(keep, tf.gather_nd(x, index), tf.cast(values, x.dtype))
            return t + 1, tf.tensor_scatter_nd_update(x, index, new)

        _, out = tf.while_loop(lambda t, _: t < steps, body, [tf.constant(0), images])
        return out

    cache[key] = run
    return run


class _Unsupported(Exception):
    """Raised while planning: the model has no position-wise form."""


class _Plan:
    """How to evaluate a functional model one position at a time.

    Walks the model's graph from its inputs to the head and files every
    tensor under one of three rates:

    - *constant*: depends on the conditioning inputs only (labels, latent
      codes), or on pixels that are given (``given``: what the layers with
      ``pixels_read()`` read): computed once per batch, before the loop, by
      the model's own layers (``CategoryEncoding``, ``Concatenate``,
      ``Conv2D``, any layer at all);
    - *row*: a ``GatedBlock``'s vertical stack, which at image row ``i`` has
      seen only image rows above: computed a whole row at a time, before the
      row's first position;
    - *position*: everything else, computed at the current position only.

    Supported layers on image features: pointwise layers (``Rescaling``,
    ``Add``, ``Activation``, ``ReLU``), layers with ``causal_window()`` /
    ``call_window()`` (``MaskedConv2D``), layers with ``vertical_window()`` /
    ``call_vertical_row()`` and ``horizontal_window()`` /
    ``call_horizontal_window()`` (``GatedBlock``, with or without a constant
    ``condition``), recurrent layers with ``step_states()`` /
    ``step_windows()`` / ``call_step_row()`` / ``call_step()`` (``RowLSTM``,
    ``DiagonalLSTM``, ``DiagonalBiLSTM``, with or without a constant
    ``condition``: their
    per-row part is a row step, their per-pixel part a position step, and
    each of their states has a buffer of its own, keyed by a negative int)
    and the ``PixelHead``. Every tensor that a later step reads
    through a window lives in a zero-padded buffer ``(B, top + H, left + W +
    right, F)``, written once per position (or per row) and read by slices.
    ``reason`` says why a model is not supported.
    """

    # BatchNormalization is pointwise in inference mode, the mode samplers run in.
    POINTWISE = ("Rescaling", "Add", "Activation", "ReLU", "BatchNormalization")

    def __init__(self, model: keras.Model):
        self.constant_nodes: list = []  # graph nodes that read conditioning inputs only
        self.row_steps: list[tuple[str, object, list, list]] = []
        self.position_steps: list[tuple[str, object, list, list]] = []
        self.pads: dict[int, list[int]] = {}  # tensor id -> [top, left, right, features]
        # Recurrent layers' states: node id -> {name: buffer key (a negative int)}.
        self.states: dict[int, dict[str, int]] = {}
        self.rates: dict[int, str] = {}  # tensor id -> "constant", "row" or "position"
        # Pointwise functions of the whole image (its rescaling), computed
        # before the loop for the layers that read given pixels only.
        self.image_nodes: list = []
        self.image_ids: set[int] = set()
        # (H, W) pixels that must be given for the constants to be known
        # before the loop (None: no layer reads the image before the loop).
        self.given: np.ndarray | None = None
        self.head = self.head_input = None
        self.reason = ""
        nodes_by_depth = getattr(model, "_nodes_by_depth", None)
        if nodes_by_depth is None or not model.inputs:
            self.reason = "not a functional model"
            return
        self.height, self.width = (int(v) for v in model.inputs[0].shape[1:3])
        self.input_id = id(model.inputs[0])
        self.image_ids.add(self.input_id)
        self.condition_ids = [id(t) for t in model.inputs[1:]]
        self.rates[self.input_id] = "position"
        self.rates.update(dict.fromkeys(self.condition_ids, "constant"))
        try:
            for depth in sorted(nodes_by_depth, reverse=True):
                for node in nodes_by_depth[depth]:
                    if not isinstance(node.operation, keras.layers.InputLayer):
                        self._add(node)
            if self.head is None:
                raise _Unsupported("no PixelHead")
        except _Unsupported as error:
            self.reason = str(error)

    def _need(self, tensor, top: int, left: int, right: int) -> None:
        """Keeps ``tensor`` in a buffer with at least this much padding."""
        pad = self.pads.setdefault(id(tensor), [0, 0, 0, int(tensor.shape[-1])])
        pad[:3] = max(pad[0], top), max(pad[1], left), max(pad[2], right)

    def _add(self, node) -> None:
        layer = node.operation
        what = f"layer {layer.name!r} ({type(layer).__name__})"
        ins = [id(t) for t in node.input_tensors]
        outs = [id(t) for t in node.output_tensors]
        rates = [self.rates[k] for k in ins]
        if rates and all(rate == "constant" for rate in rates):
            self.constant_nodes.append(node)
            self.rates.update(dict.fromkeys(outs, "constant"))
            return
        if hasattr(layer, "pixels_read") and all(k in self.image_ids for k in ins):
            # It reads given pixels only (a small image that is known in
            # full): a constant, on the condition that those pixels are given.
            read = np.asarray(layer.pixels_read(self.height, self.width), bool)
            self.given = read if self.given is None else self.given | read
            self.constant_nodes.append(node)
            self.rates.update(dict.fromkeys(outs, "constant"))
            return
        takes_condition = any(
            hasattr(layer, m) for m in ("call_vertical_row", "causal_window", "call_step")
        )
        if "constant" in rates and not takes_condition:
            raise _Unsupported(f"{what} mixes conditioning inputs into image features")
        if isinstance(layer, PixelHead):
            if rates[0] == "row":
                self._need(node.input_tensors[0], 0, 0, 0)
            self.head_input, self.head = ins[0], layer
        elif hasattr(layer, "call_vertical_row"):
            self._add_gated(node, what)
        elif hasattr(layer, "call_step"):
            self._add_recurrent(node, what)
        elif hasattr(layer, "causal_window"):
            self._add_window(node, what)
        elif type(layer).__name__ in self.POINTWISE:
            if all(k in self.image_ids for k in ins):
                self.image_nodes.append(node)
                self.image_ids.update(outs)
            if all(rate == "row" for rate in rates):
                self.row_steps.append(("pointwise", layer, ins, outs))
                self.rates[outs[0]] = "row"
                return
            for tensor, rate in zip(node.input_tensors, rates, strict=True):
                if rate == "row":  # read at the current position
                    self._need(tensor, 0, 0, 0)
            self.position_steps.append(("pointwise", layer, ins, outs))
            self.rates[outs[0]] = "position"
        else:
            raise _Unsupported(f"{what} has no position-wise form")

    def _add_window(self, node, what: str) -> None:
        """A masked convolution, evaluated at the current position from its
        window of the layer below (plus its constant condition, if any)."""
        layer = node.operation
        bound = dict(zip(("inputs", "condition"), node.arguments.args, strict=False))
        bound.update(node.arguments.kwargs)
        inputs, condition = bound["inputs"], bound.get("condition")
        if self.rates[id(inputs)] == "constant":
            raise _Unsupported(f"{what} convolves conditioning inputs")
        if condition is not None and self.rates[id(condition)] != "constant":
            raise _Unsupported(f"{what} has a condition that depends on the image")
        self._need(inputs, *layer.causal_window())
        condition_id = None if condition is None else id(condition)
        outs = [id(t) for t in node.output_tensors]
        self.position_steps.append(("window", layer, [id(inputs), condition_id], outs))
        self.rates[outs[0]] = "position"

    def _add_gated(self, node, what: str) -> None:
        """A gated block: its vertical stack joins the row steps, its horizontal
        stack the position steps; the vertical-to-horizontal link of the row
        goes from one to the other."""
        layer = node.operation
        names = ("inputs", "condition", "spatial_condition")
        bound = dict(zip(names, node.arguments.args, strict=False))
        bound.update(node.arguments.kwargs)
        vertical, horizontal = bound["inputs"]
        condition = bound.get("condition")
        if bound.get("spatial_condition") is not None:
            raise _Unsupported(f"{what} has no position-wise form with a spatial_condition")
        if condition is not None and self.rates[id(condition)] != "constant":
            raise _Unsupported(f"{what} has a condition that depends on the image")
        top, bottom, left, right = layer.vertical_window()
        v_rate, h_rate = self.rates[id(vertical)], self.rates[id(horizontal)]
        if "constant" in (v_rate, h_rate) or (v_rate == "position" and bottom < 1):
            # A position-wise vertical input is complete only up to the row above.
            raise _Unsupported(f"{what} reads the current row of position-wise vertical features")
        self._need(vertical, top, left, right)
        self._need(horizontal, *layer.horizontal_window())
        condition_id = None if condition is None else id(condition)
        link_id = id(node)
        outs = [id(t) for t in node.output_tensors]
        self.row_steps.append(("vertical", layer, [id(vertical), condition_id], [outs[0], link_id]))
        self.position_steps.append(
            ("horizontal", layer, [id(horizontal), link_id, condition_id], outs[1:])
        )
        self.rates[outs[0]] = "row"
        self.rates.update(dict.fromkeys(outs[1:], "position"))

    def _add_recurrent(self, node, what: str) -> None:
        """A recurrent layer (``RowLSTM``, ``DiagonalLSTM``, ``DiagonalBiLSTM``):
        its per-row part joins the row steps, its per-pixel part the position
        steps, and each of its states gets a buffer of its own."""
        layer = node.operation
        bound = dict(zip(("inputs", "condition"), node.arguments.args, strict=False))
        bound.update(node.arguments.kwargs)
        condition = bound.get("condition")
        if condition is not None and self.rates[id(condition)] != "constant":
            raise _Unsupported(
                f"{what} has no position-wise form with a condition that depends on the "
                "pixels being drawn"
            )
        condition_id = None if condition is None else id(condition)
        inputs = bound["inputs"]
        if self.rates[id(inputs)] != "position":
            raise _Unsupported(f"{what} reads features that are not computed per position")
        windows = layer.step_windows()
        self._need(inputs, 1, 0, 0)  # the row step reads the row above
        self._need(inputs, *windows["inputs"])
        states = {}
        for name, (features, _) in layer.step_states().items():
            key = -1 - sum(key < 0 for key in self.pads)  # a new buffer
            top, left, right = windows.get(name, (0, 0, 0))
            # The row step reads every state's row above.
            self.pads[key] = [max(1, top), left, right, int(features)]
            states[name] = key
        self.states[id(node)] = states
        outs = [id(t) for t in node.output_tensors]
        self.row_steps.append(("recurrent", layer, [id(inputs), condition_id], [id(node)]))
        self.position_steps.append(("recurrent", layer, [id(inputs), id(node), condition_id], outs))
        self.rates[outs[0]] = "position"

    def constants(self, conditions, images) -> dict:
        """The constant tensors of a batch from its conditioning inputs (and
        from its given pixels, see ``given``)."""
        values = dict(zip(self.condition_ids, conditions, strict=True))
        nodes = self.constant_nodes
        if self.given is not None:
            values[self.input_id] = images
            nodes = self.image_nodes + nodes
        for node in nodes:
            args, kwargs = node.arguments.fill_in(values)
            outputs = tf.nest.flatten(node.operation(*args, **kwargs))
            values.update(zip((id(t) for t in node.output_tensors), outputs, strict=True))
        return values

    def init_buffers(self, batch):
        return {
            key: tf.zeros([batch, self.height + top, self.width + left + right, features])
            for key, (top, left, right, features) in self.pads.items()
        }

    def _window(self, buffers, key, row, rows: int, col, cols: int):
        """Rows ``row ..`` and columns ``col ..`` (image coordinates, zeros
        outside the image) of the buffered tensor ``key``."""
        top, left = self.pads[key][:2]
        buffer = buffers[key]
        return ops.slice(
            buffer,
            [0, row + top, col + left, 0],
            [tf.shape(buffer)[0], rows, cols, buffer.shape[-1]],
        )

    def evaluate_row(self, i, buffers, constants):
        """Computes the row-rate tensors at row ``i`` (from rows above, and the
        row-rate tensors of row ``i`` computed before them).

        Returns the updated buffers and the row's vertical-to-horizontal links.
        """
        values, links = {}, {}
        buffers = dict(buffers)

        def row_above(key):
            return self._window(buffers, key, i - 1, 1, 0, self.width)[:, 0]

        for kind, layer, ins, outs in self.row_steps:
            if kind == "recurrent":
                states = self.states[outs[0]]
                condition = constants.get(ins[1])
                if condition is not None:  # its row above (any row at i = 0, unused)
                    condition = condition[:, tf.maximum(i - 1, 0)]
                link, written = layer.call_step_row(
                    i,
                    row_above(ins[0]),
                    {name: row_above(key) for name, key in states.items()},
                    condition,
                )
                if link is not None:
                    links[outs[0]] = link
                for name, value in written.items():
                    top, left = self.pads[states[name]][:2]
                    buffers[states[name]] = ops.slice_update(
                        buffers[states[name]], [0, i + top, left, 0], value[:, None]
                    )
                continue
            if kind == "vertical":
                top, bottom, left, right = layer.vertical_window()
                window = self._window(
                    buffers, ins[0], i - top, top - bottom + 1, -left, self.width + left + right
                )
                value, links[outs[1]] = layer.call_vertical_row(window, constants.get(ins[1]))
            else:
                args = [values[k] for k in ins]
                value = _call_pointwise(layer, args)
            value = tf.cast(value, tf.float32)
            values[outs[0]] = value
            if outs[0] in buffers:
                top, left = self.pads[outs[0]][:2]
                buffers[outs[0]] = ops.slice_update(
                    buffers[outs[0]], [0, i + top, left, 0], value[:, None]
                )
        return buffers, links

    def evaluate(self, pixel, i, j, buffers, links, constants):
        """Head logits at ``(i, j)`` (``(B, C)`` or ``(B, C, L)``); updates buffers.

        ``links`` and the row-rate buffers must hold row ``i``
        (:meth:`evaluate_row`).
        """
        values = {}
        buffers = dict(buffers)

        def store(key, value):
            # Buffers are float32; under a mixed precision policy the layers
            # called through Keras return their compute dtype.
            value = tf.cast(value, tf.float32)
            values[key] = value
            if key in buffers:
                top, left = self.pads[key][:2]
                buffers[key] = ops.slice_update(
                    buffers[key], [0, i + top, j + left, 0], value[:, None, None, :]
                )

        def value_at(key):  # position-rate: computed above; row-rate: from its buffer
            if key in values:
                return values[key]
            return self._window(buffers, key, i, 1, j, 1)[:, 0, 0]

        def window(key, top, left, right):
            return self._window(buffers, key, i - top, top + 1, j - left, left + 1 + right)

        store(self.input_id, pixel)
        for kind, layer, ins, outs in self.position_steps:
            if kind == "pointwise":
                args = [value_at(k) for k in ins]
                store(outs[0], _call_pointwise(layer, args))
            elif kind == "window":
                value = layer.call_window(
                    window(ins[0], *layer.causal_window()), constants.get(ins[1])
                )
                store(outs[0], value)
            elif kind == "recurrent":
                states = self.states[ins[1]]
                windows = {
                    name: window(ins[0] if name == "inputs" else states[name], *size)
                    for name, size in layer.step_windows().items()
                }
                link = links.get(ins[1])
                condition = constants.get(ins[2])
                output, written = layer.call_step(
                    windows,
                    None if link is None else link[:, j],
                    None if condition is None else condition[:, i, j],
                )
                store(outs[0], output)
                for name, value in written.items():
                    store(states[name], value)
            else:  # the horizontal stack of a gated block
                h_out, skip = layer.call_horizontal_window(
                    window(ins[0], *layer.horizontal_window()),
                    links[ins[1]][:, j],
                    constants.get(ins[2]),
                )
                store(outs[0], h_out)
                store(outs[1], skip)
        logits = tf.cast(value_at(self.head_input), tf.float32)
        if self.head.kind == "categorical":
            logits = tf.reshape(logits, [-1, self.head.channels, self.head.levels])
        return logits, buffers


def _call_pointwise(layer, args):
    """A pointwise layer on the features of one position ``(B, F)`` or one row
    ``(B, W, F)``; a batch norm, which insists on ``(B, H, W, F)`` inputs, is
    given them with unit axes (in inference mode)."""
    if isinstance(layer, keras.layers.BatchNormalization):
        x = args[0]
        rank = len(x.shape)
        for _ in range(4 - rank):
            x = x[:, None]
        y = layer(x, training=False)
        for _ in range(4 - rank):
            y = y[:, 0]
        return y
    return layer(args if len(args) > 1 else args[0])


def _plan(model: keras.Model) -> _Plan:
    cache = _model_cache(model)
    if "plan" not in cache:
        cache["plan"] = _Plan(model)
    return cache["plan"]


def supports_cached(model: keras.Model) -> bool:
    """Whether :func:`sample` can use the cached sampler for ``model``.

    The cached sampler needs every layer to have a position-wise (or
    row-wise) form it knows; models built by this package have one, except
    where conditioning inputs are convolved or mixed into image features.

    Example:

    >>> import keras
    >>> import pixel_models as pm
    >>> model = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                        recurrent_length=1, out_recurrent_length=0)
    >>> supports_cached(model)
    True
    >>> supports_cached(keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 3)]))
    False
    """
    return not _plan(model).reason


def _cached_loop(model: keras.Model, distribution: Distribution, collect_logits: bool):
    """The compiled cached sampling loop (or teacher-forced logits when collecting).

    An outer loop over rows computes each row's row-rate tensors (the vertical
    stacks), then an inner loop over the row's positions computes everything
    else, one colour channel at a time.
    """
    cache = _model_cache(model)
    key = (
        "cached",
        collect_logits,
        distribution.kind,
        distribution.levels,
        getattr(distribution, "temperature", 1.0),
    )
    if key in cache:
        return cache[key]
    plan = _plan(model)
    if plan.reason:
        raise ValueError(f"model {model.name!r} has no cached sampler: {plan.reason}")
    height, width, channels = image_shape(model)
    logit_tail = [] if distribution.kind == "bernoulli" else [distribution.levels]

    @tf.function(jit_compile=True, reduce_retracing=True)
    def run(images, known, seed, conditions):
        batch = tf.shape(images)[0]
        constants = plan.constants(conditions, images)
        buffers = plan.init_buffers(batch)
        logits_out = tf.zeros([batch, height, width, channels, *logit_tail])

        def row_body(i, x, buffers, logits_out):
            buffers, links = plan.evaluate_row(i, buffers, constants)

            def body(j, x, buffers, logits_out):
                p = i * width + j
                pixel = x[:, i, j, :]
                known_here = known[:, i, j, :]
                for c in range(channels + 1):
                    logits, buffers = plan.evaluate(pixel, i, j, buffers, links, constants)
                    if c == channels:
                        break  # the last pass only stores the finished pixel's features
                    if collect_logits:
                        logits_out = ops.slice_update(
                            logits_out,
                            [0, i, j, c] + [0] * len(logit_tail),
                            logits[:, c][:, None, None, None],
                        )
                    seed_t = tf.random.experimental.stateless_fold_in(
                        seed, p * channels + c, alg=RNG_ALG
                    )
                    drawn = tf.cast(distribution.sample(logits[:, c], seed_t), x.dtype)
                    value = tf.where(known_here[:, c], pixel[:, c], drawn)
                    pixel = tf.concat([pixel[:, :c], value[:, None], pixel[:, c + 1 :]], axis=1)
                x = ops.slice_update(x, [0, i, j, 0], pixel[:, None, None, :])
                return j + 1, x, buffers, logits_out

            _, x, buffers, logits_out = tf.while_loop(
                lambda j, *_: j < width, body, [tf.constant(0), x, buffers, logits_out]
            )
            return i + 1, x, buffers, logits_out

        _, x, _, logits_out = tf.while_loop(
            lambda i, *_: i < height,
            row_body,
            [tf.constant(0), images, buffers, logits_out],
        )
        return x, logits_out

    cache[key] = run
    return run


def cached_logits(model: keras.Model, images: np.ndarray, condition=None) -> np.ndarray:
    """The model's logits computed position by position with the cached path.

    Feeds ``images`` (teacher forcing) through the cached sampler's loop and
    returns the logits it computes at every step; for a correct cache they
    equal ``model(images)`` (``model([images, condition])`` for a conditional
    model) up to float32 rounding.

    Example:

    >>> import pixel_models as pm
    >>> model = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                        recurrent_length=1, out_recurrent_length=0)
    >>> x = np.random.default_rng(0).integers(0, 2, (2, 4, 4, 1)).astype("float32")
    >>> logits = cached_logits(model, x)
    >>> logits.shape, bool(np.allclose(logits, model(x), atol=1e-5))
    ((2, 4, 4, 1), True)
    """
    images = np.asarray(images, np.float32)
    conditions = _conditions(model, condition, len(images))
    run = _cached_loop(model, distribution_of(model), collect_logits=True)
    _, logits = run(
        tf.constant(images),
        tf.ones(images.shape, tf.bool),
        _check_seed(0),
        tuple(tf.constant(c) for c in conditions),
    )
    return logits.numpy()


def _check_seed(seed: int) -> tf.Tensor:
    if not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return tf.constant([int(seed) % (2**31), 0], tf.int32)


def _distribution(model: keras.Model, temperature: float | None) -> Distribution:
    distribution = distribution_of(model)
    if temperature is None or temperature == 1.0:
        return distribution
    if not isinstance(distribution, Categorical):
        raise ValueError("temperature applies to categorical heads only")
    return Categorical(distribution.channels, distribution.levels, temperature)


def _label_count(model: keras.Model, tensor) -> int | None:
    """Number of classes of an int input that a ``CategoryEncoding`` reads."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.CategoryEncoding):
            for node in layer._inbound_nodes:
                if any(t is tensor for t in node.input_tensors):
                    return int(layer.num_tokens)
    return None


def _conditions(model: keras.Model, condition, num: int) -> list[np.ndarray]:
    """The conditioning inputs of ``num`` images, checked, one per model input
    after the images.

    A model with one conditioning input (labels or latent codes) takes one
    array; a model with several takes a sequence of arrays in the order of its
    inputs. Each array is broadcast to ``(num, *input shape)``, so one label or
    one code serves every image.
    """
    extra = _model_inputs(model)[1:]
    if not extra:
        if condition is not None:
            raise ValueError(f"model {model.name!r} is unconditional: it takes no condition")
        return []
    names = ", ".join(t.name for t in extra)
    if condition is None:
        raise ValueError(
            f"model {model.name!r} is conditional: pass condition= ({names}) for its inputs"
        )
    if len(extra) == 1:
        given = [condition]
    elif isinstance(condition, list | tuple) and len(condition) == len(extra):
        given = list(condition)
    else:
        raise ValueError(
            f"model {model.name!r} takes {len(extra)} conditions: pass condition=({names})"
        )
    arrays = []
    for tensor, value in zip(extra, given, strict=True):
        shape = (num, *(int(d) for d in tensor.shape[1:]))
        dtype = np.dtype(tensor.dtype)
        value = np.asarray(value)
        if value.dtype == object or not np.issubdtype(value.dtype, np.number):
            raise ValueError(f"condition {tensor.name!r} must be numeric, got {value.dtype}")
        try:
            value = np.broadcast_to(value, shape)
        except ValueError:
            raise ValueError(
                f"condition {tensor.name!r} must have shape {shape} (or broadcast to it), "
                f"got {value.shape}"
            ) from None
        if np.issubdtype(dtype, np.integer):
            if value.size and np.any(value != np.round(value)):
                raise ValueError(f"condition {tensor.name!r} takes integers")
            count = _label_count(model, tensor)
            if count is not None and value.size and (value.min() < 0 or value.max() >= count):
                raise ValueError(f"condition {tensor.name!r} must lie in [0, {count - 1}]")
        arrays.append(np.ascontiguousarray(value.astype(dtype)))
    return arrays


def class_rows(model: keras.Model, num_samples: int) -> tuple[np.ndarray, int] | None:
    """Labels that lay samples of a class-conditional model out one row per class.

    Returns ``(labels, per_class)``: ``per_class = ceil(num_samples / classes)``
    samples of each class in turn (so at least one of each), to be drawn with
    ``sample(model, len(labels), condition=labels)`` and shown with
    ``make_grid(..., columns=per_class)``; None for a model that does not take
    class labels as its only condition.

    Example:

    >>> import pixel_models as pm
    >>> model = pm.build_model("gated_pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                        recurrent_length=1, num_classes=3)
    >>> labels, per_class = class_rows(model, 5)
    >>> labels.tolist(), per_class  # draw with pm.sample(model, 6, condition=labels)
    ([0, 0, 1, 1, 2, 2], 2)
    >>> unconditional = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2)
    >>> print(class_rows(unconditional, 5))
    None
    """
    extra = _model_inputs(model)[1:]
    if len(extra) != 1:
        return None
    classes = _label_count(model, extra[0])
    if classes is None:
        return None
    per_class = max(1, -(-int(num_samples) // classes))
    return np.repeat(np.arange(classes), per_class), per_class


METHODS = ("auto", "cached", "reference")


def _run_batches(
    model, images, known, seed, batch_size, temperature, method, verbose, conditions=()
):
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    distribution = _distribution(model, temperature)
    cached = method == "cached" or (method == "auto" and supports_cached(model))
    plan = _plan(model)
    if cached and not plan.reason and plan.given is not None and not known[:, plan.given].all():
        # Layers that read the given pixels before the loop (the small image of
        # a multi-scale model) need all of them.
        if method == "cached":
            raise ValueError(
                f"model {model.name!r} samples with the cached sampler only when the "
                f"{int(plan.given.sum())} pixels it reads before the loop (its small image) "
                "are known in every image; use method='reference'"
            )
        cached = False
    if cached:
        loop = _cached_loop(model, distribution, collect_logits=False)

        def run(x, k, s, c):
            return loop(x, k, s, c)[0]
    else:
        run = _loop(model, distribution)
    base = _check_seed(seed)
    outputs = []
    progbar = keras.utils.Progbar(len(images), unit_name="image") if verbose else None
    for start in range(0, len(images), batch_size):
        batch_seed = tf.random.experimental.stateless_fold_in(
            base, start // batch_size, alg=RNG_ALG
        )
        out = run(
            tf.constant(images[start : start + batch_size], tf.float32),
            tf.constant(known[start : start + batch_size]),
            batch_seed,
            tuple(tf.constant(c[start : start + batch_size]) for c in conditions),
        )
        outputs.append(out.numpy())
        if progbar is not None:
            progbar.add(len(outputs[-1]))
    if not outputs:  # nothing to complete
        return np.asarray(images).round().astype(np.uint8)
    return np.concatenate(outputs).round().astype(np.uint8)


def sample(
    model: keras.Model,
    num_samples: int,
    seed: int = 0,
    *,
    batch_size: int = 100,
    temperature: float | None = None,
    method: str = "auto",
    verbose: bool = False,
    condition=None,
) -> np.ndarray:
    """Draws ``num_samples`` images from an autoregressive model.

    Args:
      model: a model built by :func:`pixel_models.build_model`.
      num_samples: number of images (> 0).
      seed: the same seed gives the same images.
      batch_size: images generated at once.
      temperature: divides categorical logits (None or 1.0: exact samples).
      method: ``"cached"`` (one position per step from cached feature maps),
        ``"reference"`` (the full network per step) or ``"auto"`` (cached
        when the model supports it, see :func:`supports_cached`).
      verbose: show a progress bar over the batches.
      condition: what a conditional model is conditioned on, and nothing for
        an unconditional one: int labels ``(num_samples,)`` for a
        class-conditional model, latent codes ``(num_samples, latent_dims)``
        for a latent-conditional one, a pair ``(labels, codes)`` for a model
        that takes both; broadcast to ``num_samples`` (one label or one code
        for all images).

    Returns:
      uint8 array ``(num_samples, H, W, C)`` with values in ``[0, levels)``.

    Example:

    >>> import pixel_models as pm
    >>> model = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                        recurrent_length=1, out_recurrent_length=0)
    >>> pm.sample(model, 3, seed=1).shape
    (3, 4, 4, 1)
    >>> digits = pm.build_model("gated_pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                         recurrent_length=1, num_classes=10)
    >>> pm.sample(digits, 2, seed=1, condition=[3, 7]).shape
    (2, 4, 4, 1)
    """
    _check_not_autoencoder(model)
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size}")
    shape = (int(num_samples), *image_shape(model))
    conditions = _conditions(model, condition, shape[0])
    blank = np.zeros(shape, np.float32)
    if _stages(model) is not None:  # generated in stages: complete a blank image
        options = dict(temperature=temperature, method=method, verbose=verbose)
        return complete(model, blank, False, seed, batch_size=batch_size, **options)
    return _run_batches(
        model,
        blank,
        np.zeros(shape, bool),
        seed,
        int(batch_size),
        temperature,
        method,
        verbose,
        conditions,
    )


def complete(
    model: keras.Model,
    images: np.ndarray,
    known: np.ndarray,
    seed: int = 0,
    *,
    batch_size: int = 100,
    temperature: float | None = None,
    method: str = "auto",
    verbose: bool = False,
    condition=None,
) -> np.ndarray:
    """Samples the unknown dimensions of ``images`` given the known ones.

    Dimensions are visited in raster order; a known dimension keeps its value
    and an unknown one is drawn from the model given everything before it.
    (Known pixels after an unknown one do not influence it: the models are
    causal.) A multi-scale model completes its small image first, then the
    other pixels given it (see ``_stages``).

    Args:
      model: a model built by :func:`pixel_models.build_model`.
      images: ``(N, H, W, C)`` integer images in the model's data form.
      known: boolean array broadcastable to ``images``; True where a value is
        given.
      seed: the same seed gives the same completions.
      batch_size: images completed at once.
      temperature: as in :func:`sample`.
      method, verbose: as in :func:`sample`.
      condition: as in :func:`sample`, one per image.

    Returns:
      uint8 array like ``images``.

    Example:

    Keep the top half of two images and sample the bottom half:

    >>> import pixel_models as pm
    >>> model = pm.build_model("pixel_cnn", image_shape=(4, 4, 1), hidden_dims=2,
    ...                        recurrent_length=1, out_recurrent_length=0)
    >>> images = np.ones((2, 4, 4, 1), "uint8")
    >>> known = np.zeros(images.shape, bool)
    >>> known[:, :2] = True
    >>> completed = pm.complete(model, images, known, seed=0)
    >>> completed.shape, completed.dtype.name
    ((2, 4, 4, 1), 'uint8')
    >>> bool((completed[:, :2] == 1).all()), set(np.unique(completed[:, 2:])) <= {0, 1}
    (True, True)
    >>> bool((pm.complete(model, images, known, seed=0) == completed).all())  # same seed
    True
    """
    _check_not_autoencoder(model)
    height, width, channels = image_shape(model)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (height, width, channels):
        raise ValueError(
            f"images must have shape (N, {height}, {width}, {channels}), got {images.shape}"
        )
    levels = distribution_of(model).levels
    if images.size and (images.min() < 0 or images.max() >= levels):
        raise ValueError(f"image values must lie in [0, {levels - 1}]")
    known = np.broadcast_to(np.asarray(known, bool), images.shape)
    conditions = _conditions(model, condition, len(images))
    stages = _stages(model)
    if stages is not None:
        options = dict(batch_size=batch_size, temperature=temperature, method=method)
        return _complete_in_stages(stages, images, known, seed, verbose=verbose, **options)
    return _run_batches(
        model,
        images.astype(np.float32),
        known,
        seed,
        int(batch_size),
        temperature,
        method,
        verbose,
        conditions,
    )


def _check_not_autoencoder(model) -> None:
    from pixel_models.models.autoencoder import is_autoencoder

    if is_autoencoder(model):
        raise ValueError(
            f"model {model.name!r} is an autoencoder: it has no distribution over codes to "
            "sample from; reconstruct images with pixel_models.reconstruct(model, images), or "
            "decode codes with pixel_models.sample(model.decoder, n, condition=codes)"
        )


def reconstruct(
    model: keras.Model,
    images: np.ndarray,
    seed: int = 0,
    *,
    batch_size: int = 100,
    temperature: float | None = None,
    method: str = "auto",
    verbose: bool = False,
) -> np.ndarray:
    """Samples an autoencoder's decoder given the codes of ``images``.

    Each image is encoded (inference mode), and a new image is drawn from
    ``p(x | z)`` with the image's code ``z``, pixel by pixel as in
    :func:`sample` (cached when the decoder supports it). The result shows
    what the code keeps of the image: the decoder fills in the rest.

    Args:
      model: a :class:`~pixel_models.models.PixelAutoencoder`.
      images: ``(N, H, W, C)`` integer images in the model's data form.
      seed, batch_size, temperature, method, verbose: as in :func:`sample`.

    Returns:
      uint8 array like ``images``.

    Example:

    >>> import numpy as np
    >>> import pixel_models as pm
    >>> model = pm.build_model("autoencoder", image_shape=(4, 4, 1), latent_dims=2,
    ...                        encoder_dims=2, hidden_dims=2, recurrent_length=1)
    >>> pm.reconstruct(model, np.ones((3, 4, 4, 1)), seed=0).shape
    (3, 4, 4, 1)
    """
    from pixel_models.models.autoencoder import encode_batches, is_autoencoder

    if not is_autoencoder(model):
        raise ValueError(f"model {model.name!r} is not an autoencoder (it has no encode())")
    height, width, channels = image_shape(model)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (height, width, channels):
        raise ValueError(
            f"images must have shape (N, {height}, {width}, {channels}), got {images.shape}"
        )
    if len(images) == 0:
        raise ValueError("images must hold at least one image")
    levels = distribution_of(model).levels
    if images.min() < 0 or images.max() >= levels:
        raise ValueError(f"image values must lie in [0, {levels - 1}]")
    codes = encode_batches(model, images, batch_size=int(batch_size))
    return sample(
        model.decoder,
        len(images),
        seed,
        batch_size=batch_size,
        temperature=temperature,
        method=method,
        verbose=verbose,
        condition=codes,
    )


def _stages(model: keras.Model):
    """``(small_model, full_model, (sh, sw))`` of a model generated in two stages
    (one with a ``multiscale_stages()`` method: the Multi-Scale PixelRNN), else None.

    The small image is ``x[:, ::sh, ::sw]``; ``full_model`` is causal in the
    other pixels and sees all of the small image.
    """
    stages = getattr(model, "multiscale_stages", None)
    return stages() if callable(stages) else None


def _complete_in_stages(stages, images, known, seed, **options) -> np.ndarray:
    """Completes the small image (its known pixels kept), writes it into the
    grid, then completes the rest of the full image given it, with a seed of its own."""
    small_model, full_model, (sh, sw) = stages
    images, known = images.astype(np.float32), known.copy()
    small = complete(small_model, images[:, ::sh, ::sw], known[:, ::sh, ::sw], seed, **options)
    images[:, ::sh, ::sw] = small
    known[:, ::sh, ::sw] = True
    _check_seed(seed)
    second = int(np.random.SeedSequence([int(seed) % (2**31), 1]).generate_state(1)[0] >> 1)
    return complete(full_model, images, known, second, **options)
