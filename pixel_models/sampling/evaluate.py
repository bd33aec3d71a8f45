"""Running a :class:`~.plan.Plan`'s steps: a row's row steps, a position's position steps.

The sampler's state is a dict of float32 buffers, one per slot read through a
:class:`~pixel_models.layers.incremental.Window` (zero-padded: ``(B, top + H,
left + W + right, F)``, written once per row or per position and read by
slices), the row-rate values that position steps read
:class:`~pixel_models.layers.incremental.Here` (``carried`` from the row's
steps to its positions), and the constants of the batch.
"""

from __future__ import annotations

import itertools

import tensorflow as tf
from keras import ops

from pixel_models.layers.incremental import Here, Rate, Where, Whole, Window
from pixel_models.sampling.plan import Plan


class _Pass:
    """One row's row steps (``j`` None) or one position's position steps."""

    def __init__(self, plan: Plan, buffers, constants, i, j=None, carried=None):
        self.plan, self.constants, self.carried = plan, constants, carried or {}
        self.buffers = dict(buffers)
        self.values: dict = {}
        self.where = Where(i, j)

    def _slice(self, key: int, row, rows: int, col, cols: int):
        """Rows ``row ..`` and columns ``col ..`` (coordinates of the slot's
        scale, zeros outside its map) of the buffered slot ``key``."""
        top, left = self.plan.pads[key][:2]
        buffer = self.buffers[key]
        return ops.slice(
            buffer,
            [0, row + top, col + left, 0],
            [tf.shape(buffer)[0], rows, cols, buffer.shape[-1]],
        )

    def _at(self, key: int) -> Where:
        """The current image position in the coordinates of slot ``key``'s scale."""
        return _scaled(self.where, self.plan.scales.get(key, 1))

    def read(self, read):
        key = self.plan.key(read.slot)
        if isinstance(read, Whole):
            return self.constants[key]
        i, j = self._at(key)
        if isinstance(read, Window):
            rows = read.top - read.bottom + 1
            if j is None:
                cols = self.plan.size(key)[1] + read.left + read.right
                return self._slice(key, i - read.top, rows, -read.left, cols)
            return self._slice(key, i - read.top, rows, j - read.left, read.left + 1 + read.right)
        assert isinstance(read, Here)
        if self.plan.scales.get(key, 1) > 1:  # what its step stored when it last ran
            if j is None or read.slot.rate is Rate.ROW:
                row = self._slice(key, i, 1, 0, self.plan.size(key)[1])[:, 0]
                return row if j is None else row[:, j]
            return self._slice(key, i, 1, j, 1)[:, 0, 0]
        if key in self.values:
            return self.values[key]
        return self.carried[key][:, j]  # a row-rate slot at the current column

    def store(self, key: int, value) -> None:
        # Buffers are float32; under a mixed precision policy the layers
        # return their compute dtype.
        if key in self.buffers or self.plan.is_graph(key):
            value = tf.cast(value, tf.float32)
        self.values[key] = value
        if key in self.buffers:
            value = value[:, None] if self.where.j is None else value[:, None, None, :]
            self.buffers[key] = ops.slice_update(self.buffers[key], self._start(key), value)

    def _start(self, key: int) -> list:
        """Where this pass writes slot ``key`` in its buffer: its row (a row
        pass) or its position."""
        top, left = self.plan.pads[key][:2]
        i, j = self._at(key)
        return [0, i + top, left if j is None else j + left, 0]

    def _stored(self, key: int):
        """What slot ``key``'s buffer holds where this pass would write it, in
        the shape of its step's output."""
        i, j = self._at(key)
        if j is None:
            return self._slice(key, i, 1, 0, self.plan.size(key)[1])[:, 0]
        return self._slice(key, i, 1, j, 1)[:, 0, 0]

    def _step(self, step, scale: int, given=None) -> None:
        given = given or {}
        arguments = {
            name: given[name] if name in given else self.read(read)
            for name, read in step.reads.items()
        }
        outputs = step(_scaled(self.where, scale), **arguments)
        for slot, value in zip(step.writes, outputs, strict=True):
            self.store(self.plan.key(slot), value)

    def _on_grid(self, steps, scale: int) -> None:
        """Consecutive steps at a coarser scale run at the positions of their
        grid only (rows and columns that are multiples of the scale), under
        one condition; elsewhere their buffers keep what they wrote when they
        last ran."""
        keys = [self.plan.key(slot) for step in steps for slot in step.writes]
        # What the steps read of other steps' slots is sliced before the
        # condition, so that only the buffers the steps write enter it.
        given = [
            {
                name: self.read(read)
                for name, read in step.reads.items()
                if self.plan.key(read.slot) not in keys
            }
            for step in steps
        ]

        def run():
            buffers, values = dict(self.buffers), dict(self.values)
            for step, reads in zip(steps, given, strict=True):
                self._step(step, scale, reads)
            outputs = [self.values[key] for key in keys]
            self.buffers, self.values = buffers, values  # stored below, out of the branch
            return outputs

        i, j = self.where
        active = tf.equal(i % scale, 0)
        if j is not None:
            active = tf.logical_and(active, tf.equal(j % scale, 0))
        outputs = tf.cond(active, run, lambda: [self._stored(key) for key in keys])
        for key, value in zip(keys, outputs, strict=True):
            self.store(key, value)

    def run(self, steps) -> None:
        for scale, group in itertools.groupby(steps, key=lambda step: step.scale or 1):
            if scale == 1:
                for step in group:
                    self._step(step, scale)
            else:
                self._on_grid(list(group), scale)


def _scaled(where: Where, scale: int) -> Where:
    if scale == 1:
        return where
    i, j = where
    return Where(i // scale, None if j is None else j // scale)


def evaluate_row(plan: Plan, i, buffers, constants):
    """Runs the row steps at row ``i`` (from rows above, and the row steps of
    row ``i`` before them).

    Returns:
      ``(buffers, carried)``: the updated buffers, and the row's values that
      position steps read :class:`~pixel_models.layers.incremental.Here`.
    """
    state = _Pass(plan, buffers, constants, i)
    state.run(plan.row_steps)
    return state.buffers, {key: state.values[key] for key in sorted(plan.carried)}


def evaluate(plan: Plan, pixel, i, j, buffers, carried, constants, previous=None):
    """Runs the position steps at ``(i, j)`` on the pixel's known values.

    ``carried`` and the row-rate buffers must hold row ``i`` (:func:`evaluate_row`).
    ``previous``: the values of an earlier pass at ``(i, j)``, or None. Given
    them, only the steps that depend on the pixel run
    (:attr:`~.plan.Plan.pixel_steps`): the others' values are the same.

    Returns:
      ``(logits, buffers, values)``: the head logits at ``(i, j)`` (``(B,
      C)`` or ``(B, C, L)``), the updated buffers, and the pass's values
      (for ``previous`` of the next pass).
    """
    state = _Pass(plan, buffers, constants, i, j, carried)
    steps = plan.position_steps
    if previous is not None:
        state.values.update(previous)
        steps = plan.pixel_steps
    state.store(plan.input, pixel)
    state.run(steps)
    return state.values[plan.head], state.buffers, state.values
