"""The incremental form of a layer: how it is evaluated one position (or one row) at a time.

The cached sampler (:mod:`pixel_models.sampling`) does not know any layer
kind. It walks a model's graph and asks each layer for its *steps*, through
one method::

    layer.incremental_steps(inputs, outputs) -> list[Step]

``inputs`` maps the names of the layer's ``call()`` arguments to
:class:`Slot` objects (a list of slots for a list argument, None for an
argument left out), ``outputs`` lists one slot per output of the call. A slot
stands for a tensor of the sampler's state; it knows its feature count and
the :class:`Rate` at which it is computed. A :class:`Step` says:

- ``rate``: :attr:`Rate.ROW` (once per image row, before the row's first
  position, from rows above) or :attr:`Rate.POSITION` (at the current
  position);
- ``reads``: its arguments by name, each a :class:`Window` (a block of a
  buffered slot around the current position or row; the sampler keeps such
  slots in zero-padded buffers as large as the windows read), a :class:`Here`
  (a slot's value at the current position or row) or a :class:`Whole` (a
  slot known before the loop, such as a class embedding, as it is);
- ``writes``: the slots its outputs go to: the layer's outputs, or slots of
  its own (:class:`Slot` objects it creates: recurrent states, the link from
  a row step to a position step);
- ``call(where, **reads)``: the outputs, one per slot of ``writes``;
- ``scale``: the resolution it runs at (see below).

**Resolutions.** A slot may hold a feature map at a lower resolution: its
``scale`` ``s`` says that its position ``(p, q)`` stands for image position
``(s p, s q)`` (a map of ``ceil(H / s) x ceil(W / s)`` positions). A step
runs at the scale of the slots it reads unless it says otherwise (a strided
convolution runs at its input's scale times its stride, a transposed one at
its input's scale divided by its stride), and its outputs have its scale. A
step of scale ``s`` runs when the image row (and column) is a multiple of
``s`` (elsewhere its outputs are discarded), with ``where`` in its own
coordinates ``(i // s, j // s)``; windows of a slot are read in the slot's
coordinates at the current image position, ``(i // s', j // s')``. Slots of
scale ``> 1`` are kept in buffers at their own size, so that steps of other
positions read what their last run stored (Ramachandran et al. 2017, the
caches of each resolution).

A layer that cannot be evaluated so for these inputs raises
:class:`NotIncremental` with the reason (the sampler then refuses the model,
and ``method="auto"`` runs the reference loop). Layers of this package
implement :class:`Incremental` in their own files; Keras layers that are
pointwise (``Rescaling``, ``Add``, ``Activation``, ``ReLU``,
``BatchNormalization`` in inference mode) get theirs from an adapter
registered by class with :func:`register_incremental`. A new layer kind is
one method in its own file: nothing changes in the sampler.

Example:

A layer that doubles its input, one position at a time:

>>> import keras
>>> class Double(keras.layers.Layer):
...     def call(self, inputs):
...         return 2 * inputs
...     def incremental_steps(self, inputs, outputs):
...         x = inputs["inputs"]
...         if x.rate is Rate.CONSTANT:
...             raise NotIncremental("doubles conditioning inputs")
...         return [Step(Rate.POSITION, {"x": Here(x)}, outputs, lambda where, x: [2 * x])]
>>> x, y = Slot(4, "x", Rate.POSITION), Slot(4, "y")
>>> [step] = Double().incremental_steps({"inputs": x}, [y])
>>> step.rate.name, tuple(step(Where(0, 0), x=keras.ops.ones((1, 4)))[0].shape)
('POSITION', (1, 4))
>>> isinstance(Double(), Incremental)
True
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import keras


class Rate(enum.Enum):
    """How often a slot is computed while sampling."""

    CONSTANT = "once per batch, before the loop"
    ROW = "once per image row, before the row's first position"
    POSITION = "at every position"


class NotIncremental(Exception):
    """A layer has no incremental form for the inputs it is given.

    The message completes ``"layer 'name' (Class) ..."``, e.g.
    ``"has a condition that depends on the image"``.
    """


@dataclasses.dataclass(eq=False)
class Slot:
    """A tensor of the sampler's state: a feature map of the model, or a
    layer's own state.

    Args:
      features: size of its last axis.
      name: for messages.
      rate: the rate at which it is computed: None until the sampler has
        planned the step that writes it, unless a step reads it (its rows
        above) before that step, as recurrent states are.
      scale: its resolution (1: the image's; ``s``: one position per ``s x
        s`` image positions), set by the sampler from the step that writes it.
    """

    features: int | None = None
    name: str = ""
    rate: Rate | None = None
    scale: int = 1


@dataclasses.dataclass(frozen=True)
class Window:
    """A block of a buffered slot around the current position (or row).

    For a position step at ``(i, j)``: rows ``i - top .. i - bottom`` and
    columns ``j - left .. j + right``, ``(B, top - bottom + 1, left + 1 +
    right, F)``. For a row step at row ``i``: the same rows, and columns
    ``-left .. W - 1 + right`` of the image, ``(B, top - bottom + 1, left +
    W + right, F)``. Zeros outside the image, as ``SAME`` padding; values not
    computed yet (later positions of row ``i``) are zeros too, so a position
    step must not depend on them.

    ``reads_current=False`` says that the step ignores the value at the
    current position although the window covers it (a masked centre tap, or
    attention that no position pays to itself). The sampler then knows that
    the step's output does not change when the current pixel is drawn, and
    does not run it again for the pixel's next pass.
    """

    slot: Slot
    top: int
    left: int
    right: int
    bottom: int = 0
    reads_current: bool = True

    def covers_current(self) -> bool:
        """Whether the step reads the slot's value at the current position."""
        rows = self.bottom <= 0 <= self.top
        return self.reads_current and rows and self.left >= 0 and self.right >= 0


@dataclasses.dataclass(frozen=True)
class Here:
    """A slot's value at the current position ``(B, F)`` (or at the current
    row ``(B, W, F)`` for a row step reading a row-rate slot). A position step
    reading a row-rate slot gets its value at the current column."""

    slot: Slot


@dataclasses.dataclass(frozen=True)
class Whole:
    """A constant slot (known before the loop) as it is, e.g. ``(B, D)`` or
    ``(B, H, W, D)``; the step indexes it with :class:`Where` if need be."""

    slot: Slot


Read = Window | Here | Whole


class Where(NamedTuple):
    """Where a step is evaluated: image row ``i`` and column ``j`` (scalar
    tensors; ``j`` is None for a row step)."""

    i: Any
    j: Any = None


@dataclasses.dataclass(frozen=True)
class Step:
    """One incremental computation of a layer.

    Args:
      rate: :attr:`Rate.ROW` or :attr:`Rate.POSITION`.
      reads: argument name -> :class:`Window`, :class:`Here` or :class:`Whole`.
      writes: the slots its outputs go to, in order.
      call: ``call(where, **arguments) -> outputs`` (a sequence, one per slot
        of ``writes``).
      scale: the resolution it runs at, or None for the scale of the slots
        it reads (see the module docstring).
    """

    rate: Rate
    reads: Mapping[str, Read]
    writes: Sequence[Slot]
    call: Callable[..., Sequence[Any]]
    scale: int | None = None

    def __post_init__(self):
        if self.rate not in (Rate.ROW, Rate.POSITION):
            raise ValueError(f"a step runs per row or per position, not {self.rate}")
        if self.scale is not None and (isinstance(self.scale, bool) or int(self.scale) < 1):
            raise ValueError(f"a step's scale is a positive int, got {self.scale!r}")

    def __call__(self, where: Where, **arguments) -> list:
        outputs = list(self.call(where, **arguments))
        if len(outputs) != len(self.writes):
            raise ValueError(f"a step gave {len(outputs)} outputs for {len(self.writes)} slots")
        return outputs


@runtime_checkable
class Incremental(Protocol):
    """A layer that can say how it is evaluated incrementally."""

    def incremental_steps(
        self, inputs: Mapping[str, Any], outputs: Sequence[Slot]
    ) -> Sequence[Step]:
        """The layer's steps for these input slots (raises :class:`NotIncremental`)."""
        ...


@runtime_checkable
class ReadsGivenPixels(Protocol):
    """A layer whose output depends on a fixed set of pixels of its input only
    (a subsampling of the image): when its input is the image (or a pointwise
    function of it) and all of those pixels are given, the sampler computes
    it, and every layer after it that reads nothing else, once before the loop."""

    def pixels_read(self, height: int, width: int):
        """``(H, W)`` booleans: the pixels of its input that its output depends on."""
        ...


Adapter = Callable[[keras.layers.Layer, Mapping[str, Any], Sequence[Slot]], Sequence[Step]]
_ADAPTERS: list[tuple[type, Adapter]] = []


def register_incremental(cls: type, adapter: Adapter) -> None:
    """Gives the layers of class ``cls`` (and its subclasses) an incremental form.

    For layers whose classes cannot carry an ``incremental_steps()`` method
    (Keras's own): ``adapter(layer, inputs, outputs)`` returns their steps.

    Args:
      cls: a layer class.
      adapter: a function like :meth:`Incremental.incremental_steps`, with
        the layer first.
    """
    _ADAPTERS.append((cls, adapter))


def incremental_steps(layer, inputs: Mapping[str, Any], outputs: Sequence[Slot]) -> list[Step]:
    """The steps of ``layer``: its own, or its registered adapter's.

    Raises:
      NotIncremental: the layer has no incremental form (for these inputs).
    """
    if isinstance(layer, Incremental):
        return list(layer.incremental_steps(inputs, outputs))
    for cls, adapter in reversed(_ADAPTERS):
        if isinstance(layer, cls):
            return list(adapter(layer, inputs, outputs))
    slots = [x for value in inputs.values() for x in keras.tree.flatten(value)]
    if any(isinstance(x, Slot) and x.rate is Rate.CONSTANT for x in slots):
        raise NotIncremental("mixes conditioning inputs into image features")
    raise NotIncremental("has no position-wise form")


def pointwise_steps(layer, inputs: Mapping[str, Any], outputs: Sequence[Slot]) -> list[Step]:
    """The step of a pointwise Keras layer: its output at a position (or a
    row) from its inputs there, at the rate of its inputs (per row when they
    all are, else per position)."""
    slots = keras.tree.flatten(inputs["inputs"])
    if any(slot.rate is Rate.CONSTANT for slot in slots):
        raise NotIncremental("mixes conditioning inputs into image features")
    rate = Rate.ROW if all(slot.rate is Rate.ROW for slot in slots) else Rate.POSITION
    reads = {f"x{k}": Here(slot) for k, slot in enumerate(slots)}

    def call(where, **values):
        args = [values[f"x{k}"] for k in range(len(slots))]
        return [_call_pointwise(layer, args if len(args) > 1 else args[0])]

    return [Step(rate, reads, outputs, call)]


def _call_pointwise(layer, x):
    """A pointwise layer on the features of one position ``(B, F)`` or one row
    ``(B, W, F)``; a batch norm, which insists on ``(B, H, W, F)`` inputs, is
    given them with unit axes (in inference mode)."""
    if isinstance(layer, keras.layers.BatchNormalization):
        rank = len(x.shape)
        for _ in range(4 - rank):
            x = x[:, None]
        y = layer(x, training=False)
        for _ in range(4 - rank):
            y = y[:, 0]
        return y
    return layer(x)


def batch_norm_steps(layer, inputs: Mapping[str, Any], outputs: Sequence[Slot]) -> list[Step]:
    """A batch norm is pointwise in inference mode, the mode samplers run in,
    when it normalises the features (the last axis); along another axis its
    statistics differ from one position to the next."""
    if layer.axis not in (-1, 3):
        raise NotIncremental(f"normalises along axis {layer.axis}, not the features")
    return pointwise_steps(layer, inputs, outputs)


for _cls in (keras.layers.Rescaling, keras.layers.Add, keras.layers.Activation, keras.layers.ReLU):
    register_incremental(_cls, pointwise_steps)
del _cls
register_incremental(keras.layers.BatchNormalization, batch_norm_steps)
