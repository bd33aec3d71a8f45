"""Running a :class:`~.plan.Plan`'s steps: a row's row steps, a position's position steps.

The sampler's state is a dict of float32 buffers, one per slot read through a
:class:`~pixel_models.layers.incremental.Window` (zero-padded: ``(B, top + H,
left + W + right, F)``, written once per row or per position and read by
slices), the row-rate values that position steps read
:class:`~pixel_models.layers.incremental.Here` (``carried`` from the row's
steps to its positions), and the constants of the batch.
"""

from __future__ import annotations

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

    def store(self, key: int, value, active=None) -> None:
        # Buffers are float32; under a mixed precision policy the layers
        # return their compute dtype.
        if key in self.buffers or self.plan.is_graph(key):
            value = tf.cast(value, tf.float32)
        self.values[key] = value
        if key in self.buffers:
            top, left = self.plan.pads[key][:2]
            i, j = self._at(key)
            if j is None:
                start, value = [0, i + top, left, 0], value[:, None]
            else:
                start, value = [0, i + top, j + left, 0], value[:, None, None, :]
            if active is not None:  # keep what is there where the step does not run
                old = ops.slice(self.buffers[key], start, tf.shape(value))
                value = tf.where(active, value, old)
            self.buffers[key] = ops.slice_update(self.buffers[key], start, value)

    def run(self, steps) -> None:
        for step in steps:
            scale = step.scale or 1
            arguments = {name: self.read(read) for name, read in step.reads.items()}
            where = _scaled(self.where, scale)
            active = None
            if scale > 1:
                i, j = self.where
                active = tf.equal(i % scale, 0)
                if j is not None:
                    active = tf.logical_and(active, tf.equal(j % scale, 0))
            for slot, value in zip(step.writes, step(where, **arguments), strict=True):
                self.store(self.plan.key(slot), value, active)


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
