"""Subsampling an image on a regular grid: the small image of a Multi-Scale
PixelRNN (van den Oord et al., 2016, Section 3.4)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np


def grid_mask(image_shape: Sequence[int], strides: Sequence[int]) -> np.ndarray:
    """``(H, W)`` booleans: True at the pixels ``(i, j)`` of the subsample grid.

    The grid holds the pixels with ``i % strides[0] == 0`` and
    ``j % strides[1] == 0``; the small image is ``x[:, ::sh, ::sw]``.

    Example:

    >>> grid_mask((4, 4, 1), (2, 2)).astype(int).tolist()
    [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    rows = np.arange(height) % int(strides[0]) == 0
    cols = np.arange(width) % int(strides[1]) == 0
    return rows[:, None] & cols[None, :]


@keras.saving.register_keras_serializable(package="pixel_models")
class GridSubsample(keras.layers.Layer):
    """Keeps every ``strides[0]``-th row and ``strides[1]``-th column, from the first.

    ``(B, H, W, C) -> (B, H / sh, W / sw, C)``: the pixels of the subsample
    grid, unchanged (binary stays binary, 8-bit stays 8-bit).

    Args:
      strides: ``(sh, sw)``, positive ints dividing ``H`` and ``W``.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Example:

    >>> import numpy as np
    >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    >>> np.asarray(GridSubsample((2, 2))(x))[0, ..., 0].tolist()
    [[0.0, 2.0], [8.0, 10.0]]
    """

    def __init__(self, strides: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        strides = tuple(int(v) for v in strides)
        if len(strides) != 2 or min(strides) < 1:
            raise ValueError(f"strides must be two positive ints, got {strides}")
        self.strides = strides

    def call(self, inputs):
        return inputs[:, :: self.strides[0], :: self.strides[1], :]

    def pixels_read(self, height: int, width: int) -> np.ndarray:
        """``(H, W)`` booleans: the only pixels of its input the output depends on.

        (The :class:`~pixel_models.layers.incremental.ReadsGivenPixels`
        protocol.) The cached sampler computes such a layer once, before the loop, when
        every one of these pixels is given (the second stage of a
        Multi-Scale PixelRNN, whose grid holds the small image).
        """
        return grid_mask((height, width, 1), self.strides)

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        return (
            input_shape[0],
            None if height is None else height // self.strides[0],
            None if width is None else width // self.strides[1],
            input_shape[3],
        )

    def get_config(self):
        config = super().get_config()
        config["strides"] = list(self.strides)
        return config
