"""Planning a model's incremental evaluation: the walk over its graph, and the plan.

:class:`Plan` walks a functional model's layer calls (:func:`~.graph.model_nodes`)
from its inputs to its head and asks each layer for its steps
(:func:`pixel_models.layers.incremental.incremental_steps`). It knows no
layer kind: it files each step under its rate, sizes a zero-padded buffer
for every slot read through a window, and keeps aside the calls that can be
computed once per batch, before the loop:

- calls that read only constant slots (the conditioning inputs: labels,
  latent codes, and what the model computes from them), run by Keras;
- calls of layers that read given pixels only
  (:class:`~pixel_models.layers.incremental.ReadsGivenPixels`) on the image or
  on a pointwise function of it (steps that read only :class:`Here` values),
  and every call after them that reads nothing else, provided the pixels
  they read are given (:attr:`Plan.given`).

:mod:`.evaluate` runs the plan's steps at a row and at a position.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from pixel_models.distributions import PixelHead
from pixel_models.layers.incremental import (
    Here,
    NotIncremental,
    Rate,
    ReadsGivenPixels,
    Slot,
    Step,
    Whole,
    Window,
    incremental_steps,
)
from pixel_models.sampling.graph import NodeRecord, NotFunctional, model_nodes


class Unsupported(Exception):
    """Raised while planning: the model has no incremental form."""


class Plan:
    """How to evaluate a functional model one position (or one row) at a time.

    Attributes:
      row_steps, position_steps: the steps of every layer, in graph order.
      pixel_steps: the position steps whose outputs at a position depend on
        the pixel there (:meth:`_pixel_steps`): the only ones that must run
        again at a position once one of its values is drawn.
      pads: slot index -> ``[top, left, right, features]`` of its buffer
        ``(B, top + H_s, left + W_s + right, features)``, for slots read
        through a :class:`Window` and for every slot of scale ``s > 1``
        (``H_s = ceil(H / s)``, ``W_s = ceil(W / s)``: the slot's own size).
      scales: slot index -> the scale of the step that writes it.
      carried: indices of the row-rate slots that position steps read
        :class:`Here` (kept from the row's step to its positions).
      constant_records: the calls run once per batch before the loop, and
        ``image_records`` the pointwise calls on the image before them (run
        when ``given`` is not None).
      given: ``(H, W)`` pixels that must be given for the constants to be
        known before the loop (None: no layer reads the image before the loop).
      head: index of the head's slot (its logits ``(B, C)`` or ``(B, C, L)``).
      reason: why the model has no incremental form ("" if it has one).
    """

    def __init__(self, model: keras.Model):
        self.row_steps: list[Step] = []
        self.position_steps: list[Step] = []
        self.pixel_steps: list[Step] = []
        self.pads: dict[int, list[int]] = {}
        self.scales: dict[int, int] = {}
        self.carried: set[int] = set()
        self.constant_records: list[NodeRecord] = []
        self.image_records: list[NodeRecord] = []
        self.given: np.ndarray | None = None
        self.head: int | None = None
        self.reason = ""
        self._slots: dict[int, Slot] = {}  # id(symbolic tensor) -> its slot
        self._index: dict[Slot, int] = {}  # slot -> its key in buffers and values
        self._graph: set[int] = set()  # indices of the slots of symbolic tensors
        self._image: set[int] = set()  # ids of the image and its pointwise functions
        try:
            records = model_nodes(model)
        except NotFunctional:
            self.reason = "not a functional model"
            return
        self.height, self.width = (int(v) for v in model.inputs[0].shape[1:3])
        self._image_tensor, self._condition_tensors = model.inputs[0], list(model.inputs[1:])
        self.input = self.key(self._tensor_slot(self._image_tensor, Rate.POSITION))
        self._image.add(id(self._image_tensor))
        for tensor in self._condition_tensors:
            self._tensor_slot(tensor, Rate.CONSTANT)
        try:
            for record in records:
                self._add(record)
            if self.head is None:
                raise Unsupported("no PixelHead")
            self.pixel_steps = self._pixel_steps()
        except Unsupported as error:
            self.reason = str(error)

    def key(self, slot: Slot) -> int:
        """The key of ``slot`` in buffers and values (a small int)."""
        if slot not in self._index:
            self._index[slot] = len(self._index)
        return self._index[slot]

    def is_graph(self, key: int) -> bool:
        """Whether the slot of ``key`` is a feature map of the model (else a layer's own)."""
        return key in self._graph

    def _tensor_slot(self, tensor, rate: Rate | None = None) -> Slot:
        features = tensor.shape[-1] if len(tensor.shape) > 1 else None
        slot = Slot(None if features is None else int(features), tensor.name, rate)
        self._slots[id(tensor)] = slot
        self._graph.add(self.key(slot))
        return slot

    def _add(self, record: NodeRecord) -> None:
        layer = record.layer
        what = f"layer {layer.name!r} ({type(layer).__name__})"
        inputs = record.inputs
        outputs = [self._tensor_slot(t) for t in record.outputs]
        on_image = all(id(t) in self._image for t in inputs)
        if inputs and all(self._slots[id(t)].rate is Rate.CONSTANT for t in inputs):
            self._constant(record, outputs)
            return
        if isinstance(layer, ReadsGivenPixels) and on_image:
            # It reads given pixels only (a small image that is known in
            # full): a constant, on the condition that those pixels are given.
            read = np.asarray(layer.pixels_read(self.height, self.width), bool)
            self.given = read if self.given is None else self.given | read
            self._constant(record, outputs)
            return

        def slot_of(x):
            return self._slots[id(x)] if isinstance(x, keras.KerasTensor) else x

        arguments = {
            name: keras.tree.map_structure(slot_of, value)
            for name, value in record.arguments.items()
        }
        try:
            steps = incremental_steps(layer, arguments, outputs)
        except NotIncremental as error:
            raise Unsupported(f"{what} {error}") from None
        for step in steps:
            self._file(step, what)
        if on_image and all(isinstance(r, Here) for s in steps for r in s.reads.values()):
            # A pointwise function of the image, computed before the loop too
            # when a layer that reads given pixels reads it.
            self.image_records.append(record)
            self._image.update(id(t) for t in record.outputs)
        if isinstance(layer, PixelHead):
            self.head = self.key(outputs[0])

    def _constant(self, record: NodeRecord, outputs: list[Slot]) -> None:
        self.constant_records.append(record)
        for slot in outputs:
            slot.rate = Rate.CONSTANT

    def _scale(self, step: Step, what: str) -> int:
        """The scale a step runs at: its own, or that of the image-dependent slots it reads."""
        if step.scale is not None:
            return int(step.scale)
        scales = {r.slot.scale for r in step.reads.values() if r.slot.rate is not Rate.CONSTANT}
        if len(scales) > 1:
            raise Unsupported(f"{what} mixes feature maps of scales {sorted(scales)}")
        return scales.pop() if scales else 1

    def _file(self, step: Step, what: str) -> None:
        """Checks a step's reads, sizes the buffers it reads and files it under its rate."""
        step = dataclasses.replace(step, scale=self._scale(step, what))
        for read in step.reads.values():
            slot = read.slot
            if slot.rate is None:
                raise Unsupported(f"{what} reads {slot.name!r} before a step computes it")
            if isinstance(read, Whole):
                if slot.rate is not Rate.CONSTANT:
                    raise Unsupported(f"{what} reads {slot.name!r} whole, but it is not constant")
            elif slot.rate is Rate.CONSTANT:
                raise Unsupported(f"{what} mixes conditioning inputs into image features")
            elif isinstance(read, Window):
                if step.rate is Rate.ROW and slot.rate is Rate.POSITION and read.bottom < 1:
                    raise Unsupported(f"{what} reads the current row of {slot.name!r} per row")
                self._need(slot, read)
            elif step.rate is Rate.ROW and slot.rate is Rate.POSITION:
                raise Unsupported(f"{what} reads position-wise {slot.name!r} per row")
            elif slot.scale > 1:
                pass  # read from its buffer (see below)
            elif step.rate is Rate.POSITION and slot.rate is Rate.ROW:
                self.carried.add(self.key(slot))
        for slot in step.writes:
            if slot.rate not in (None, step.rate):
                raise Unsupported(f"{what} writes {slot.name!r} at two rates")
            if slot.rate is not None and slot.scale != step.scale:
                raise Unsupported(f"{what} writes {slot.name!r} at two scales")
            slot.rate, slot.scale = step.rate, step.scale
            self.scales[self.key(slot)] = step.scale
            if step.scale > 1:  # kept for the positions at which its step does not run
                self._need(slot, Window(slot, 0, 0, 0))
        (self.row_steps if step.rate is Rate.ROW else self.position_steps).append(step)

    def _pixel_steps(self) -> list[Step]:
        """The position steps that read, at the current position, the image
        or a slot that such a step writes (through a :class:`Here`, or a
        :class:`Window` that covers the position, see
        :meth:`~pixel_models.layers.incremental.Window.covers_current`).

        The others give the same outputs for every value of the current
        pixel: the value ``x_ij`` enters a causal model's features at
        ``(i, j)`` only in the layers that let it through (a centre tap of
        mask B, a residual connection), never in those whose input is the
        image strictly before ``(i, j)`` (mask A of one colour group, the
        shifted convolutions of PixelCNN++, attention to earlier positions).
        """
        depends = {self.input}
        chosen: set[int] = set()
        while True:  # to a fixed point: a step may read a slot written after it
            before = len(chosen)
            for step in self.position_steps:
                if id(step) in chosen:
                    continue
                for read in step.reads.values():
                    here = isinstance(read, Here) or (
                        isinstance(read, Window) and read.covers_current()
                    )
                    if here and self.key(read.slot) in depends:
                        chosen.add(id(step))
                        depends.update(self.key(slot) for slot in step.writes)
                        break
            if len(chosen) == before:
                return [step for step in self.position_steps if id(step) in chosen]

    def _need(self, slot: Slot, window: Window) -> None:
        """Keeps ``slot`` in a buffer with at least the padding ``window`` reads."""
        if slot.features is None:
            raise Unsupported(f"{slot.name!r} is read through a window but has no feature count")
        pad = self.pads.setdefault(self.key(slot), [0, 0, 0, int(slot.features)])
        pad[:3] = max(pad[0], window.top), max(pad[1], window.left), max(pad[2], window.right)

    def constants(self, conditions, images) -> dict[int, tf.Tensor]:
        """The constant slots of a batch from its conditioning inputs (and
        from its given pixels, see ``given``), by key."""
        values = {id(t): v for t, v in zip(self._condition_tensors, conditions, strict=True)}
        records = self.constant_records
        if self.given is not None:
            values[id(self._image_tensor)] = images
            records = self.image_records + records
        for record in records:
            outputs = record.call(values)
            values.update(zip((id(t) for t in record.outputs), outputs, strict=True))
        return {
            self.key(slot): values[tensor_id]
            for tensor_id, slot in self._slots.items()
            if slot.rate is Rate.CONSTANT and tensor_id in values
        }

    def init_buffers(self, batch) -> dict[int, tf.Tensor]:
        """Zero buffers for a batch, by key."""
        buffers = {}
        for key, (top, left, right, features) in self.pads.items():
            height, width = self.size(key)
            buffers[key] = tf.zeros([batch, height + top, width + left + right, features])
        return buffers

    def size(self, key: int) -> tuple[int, int]:
        """``(H_s, W_s)``: the size of the feature map of slot ``key`` at its scale."""
        scale = self.scales.get(key, 1)
        return -(-self.height // scale), -(-self.width // scale)
