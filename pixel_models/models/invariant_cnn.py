"""Image classifiers whose logits are invariant to rotations and mirror flips."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras

from pixel_models.kinds import CLASSIFIER
from pixel_models.layers.invariant import (
    GroupBatchNormalization,
    GroupConv2D,
    GroupPooling,
    group_table,
    windows_are_symmetric,
)
from pixel_models.models.common import check_image_shape, model_input

MODEL_GROUPS = ("none", "C4", "D4")


def group_width(base_width: int, group: str) -> int:
    """Features per layer for ``group`` that keep the parameter count of ``base_width``.

    A group-to-group layer with ``F`` features holds ``K * K * |G| * F * F``
    weights against ``K * K * W * W`` for a plain layer of width ``W``, so
    ``F = round(W / sqrt(|G|))`` gives about the same count (and
    ``|G|`` times more activations, ``F * |G| = W * sqrt(|G|)`` channels).

    Example:

    >>> [group_width(32, g) for g in ("none", "C4", "D4")]
    [32, 16, 11]
    """
    if group not in MODEL_GROUPS:
        raise ValueError(f"group must be one of {MODEL_GROUPS}, got {group!r}")
    order = 1 if group == "none" else group_table(group).order
    return max(1, round(int(base_width) / math.sqrt(order)))


def _downsample(size: int, layer_name: str) -> tuple[keras.layers.Layer, int]:
    """A 2x max pooling whose windows are mirror symmetric on ``size``."""
    if size % 2 == 0:
        pool, padding = 2, "valid"
    else:
        pool, padding = 3, "same"
    assert windows_are_symmetric(size, pool, 2, padding)
    layer = keras.layers.MaxPooling2D(pool, strides=2, padding=padding, name=layer_name)
    return layer, -(-size // 2)


def invariant_cnn(
    image_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    group: str = "D4",
    base_width: int = 32,
    stages: Sequence[int] = (2, 2, 2),
    kernel_size: int = 3,
    levels: int = 256,
    orientation_pooling: str = "max",
    name: str = "invariant_cnn",
) -> keras.Model:
    """A classifier whose logits do not change when the image is turned or mirrored.

    Layers::

        images -> rescale to [-1, 1]
          -> stage 1: stages[0] x [conv KxK (first one lifting), batch norm, ReLU]
          -> 2x max pooling -> stage 2 -> ... -> last stage
          -> pooling over orientations (once, at the end)
          -> global average pooling -> dense -> class logits

    With ``group="C4"`` or ``"D4"`` the convolutions are
    :class:`~pixel_models.layers.invariant.GroupConv2D` (the first lifts the
    image, the others are group-to-group) and the batch norms
    :class:`~pixel_models.layers.invariant.GroupBatchNormalization`; every
    layer up to the orientation pooling is equivariant, and the logits are
    invariant under the 4 (C4) or 8 (D4) transforms of the image, in training
    and in inference, up to float rounding. Each downsampling is a 2x2 max
    pooling on even sizes and a 3x3 stride-2 ``"same"`` max pooling on odd
    sizes, so that the pooling windows stay mirror symmetric (28 -> 14 -> 7,
    then 7 -> 4 with a fourth stage). Strided convolutions are not used: with
    ``"same"`` padding they break the symmetry on even sizes.
    ``group="none"`` gives the plain CNN baseline with ``Conv2D`` and
    ``BatchNormalization``, which is not invariant.

    Width rule: every layer has ``group_width(base_width, group)`` features,
    ``round(base_width / sqrt(|G|))``, so that the parameter counts are close
    (the group layers' counts are those of a plain layer of width
    ``F * sqrt(|G|)``). With the defaults (28x28x1, 10 classes, width 32,
    stages (2, 2, 2); all parameters, and the trainable ones, which leave out
    the batch norms' moving statistics)::

        group   features   channels   parameters   trainable
        none    32         32         47,466       47,082
        C4      16         64         46,778       46,586
        D4      11         88         44,043       43,911

    Args:
      image_shape: ``(H, W, C)``; square for C4 and D4.
      num_classes: number of logits.
      group: ``"none"``, ``"C4"`` or ``"D4"``.
      base_width: width of the plain baseline.
      stages: convolutions per stage; a 2x downsampling between stages.
      kernel_size: odd kernel side.
      levels: input values per channel (``0 .. levels - 1``), rescaled to
        ``[-1, 1]``.
      orientation_pooling: ``"max"`` or ``"mean"``.
      name: model name.

    Returns:
      A ``keras.Model`` from float32 images ``(B, H, W, C)`` to logits
      ``(B, num_classes)``.

    Example:

    >>> model = invariant_cnn((8, 8, 1), num_classes=3, group="C4", base_width=4,
    ...                       stages=(1, 1))
    >>> model.output_shape
    (None, 3)

    References:
      Cohen, Welling. Group Equivariant Convolutional Networks. ICML 2016.
      https://arxiv.org/abs/1602.07576 (the same width rule for p4 and p4m).
      Gao, Ji. Efficient and Invariant Convolutional Neural Networks for
      Dense Prediction. ICDM 2017. https://arxiv.org/abs/1711.09064
    """
    if group not in MODEL_GROUPS:
        raise ValueError(f"group must be one of {MODEL_GROUPS}, got {group!r}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if int(base_width) < 1:
        raise ValueError(f"base_width must be >= 1, got {base_width}")
    stages = tuple(int(s) for s in stages)
    if not stages or stages[0] < 1 or min(stages) < 0:
        raise ValueError(f"stages must start with a positive count, got {stages}")
    if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
        raise ValueError(f"kernel_size must be odd (symmetric 'same' padding), got {kernel_size}")
    height, width, _ = check_image_shape(image_shape)
    if group != "none" and height != width:
        raise ValueError(f"{group} needs square images, got {height}x{width}")

    features = group_width(base_width, group)
    inputs, x = model_input(image_shape, levels)
    size = height
    first = True
    for s, count in enumerate(stages):
        if s > 0:
            pool, size = _downsample(size, f"pool{s}")
            x = pool(x)
        for i in range(count):
            layer_name = f"conv{s}_{i}"
            if group == "none":
                x = keras.layers.Conv2D(
                    features, kernel_size, padding="same", use_bias=False, name=layer_name
                )(x)
                x = keras.layers.BatchNormalization(name=f"bn{s}_{i}")(x)
            else:
                x = GroupConv2D(
                    features,
                    kernel_size,
                    group=group,
                    input_kind="image" if first else "group",
                    use_bias=False,
                    name=layer_name,
                )(x)
                x = GroupBatchNormalization(group, name=f"bn{s}_{i}")(x)
            x = keras.layers.Activation("relu", name=f"relu{s}_{i}")(x)
            first = False
    if group != "none":
        x = GroupPooling(group, orientation_pooling, name="orientation_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name=name)


invariant_cnn.model_kind = CLASSIFIER
