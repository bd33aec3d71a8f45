"""Keras layers of the zoo, one family per module."""

from pixel_models.layers.causal_attention import (
    CausalAttention,
    coordinate_background,
    masked_attention,
    strict_causal_mask,
)
from pixel_models.layers.gated import GatedBlock, horizontal_mask, shift_down
from pixel_models.layers.gated_residual import GatedResidual, concat_elu
from pixel_models.layers.invariant import (
    GroupBatchNormalization,
    GroupConv2D,
    GroupPooling,
    InvariantConv2D,
    group_table,
    transform_group_features,
    transform_images,
)
from pixel_models.layers.masked_conv import MaskedConv2D, channel_groups, make_mask
from pixel_models.layers.recurrent import DiagonalBiLSTM, DiagonalLSTM, RowLSTM, skew, unskew

__all__ = [
    "CausalAttention",
    "GatedResidual",
    "concat_elu",
    "coordinate_background",
    "masked_attention",
    "strict_causal_mask",
    "DiagonalBiLSTM",
    "DiagonalLSTM",
    "GatedBlock",
    "MaskedConv2D",
    "channel_groups",
    "horizontal_mask",
    "make_mask",
    "RowLSTM",
    "shift_down",
    "skew",
    "unskew",
    "GroupBatchNormalization",
    "GroupConv2D",
    "GroupPooling",
    "InvariantConv2D",
    "group_table",
    "transform_group_features",
    "transform_images",
]
