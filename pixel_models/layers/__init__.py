"""Keras layers of the zoo, one family per module."""

from pixel_models.layers.causal_attention import (
    CausalAttention,
    coordinate_background,
    masked_attention,
    strict_causal_mask,
)
from pixel_models.layers.gated import GatedBlock, horizontal_mask, shift_down
from pixel_models.layers.gated_residual import GatedResidual
from pixel_models.layers.gated_resnet import GatedResnet, concat_elu
from pixel_models.layers.grid_subsample import GridSubsample, grid_mask
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
from pixel_models.layers.shifted_conv import ShiftedConv2D, down_shift, right_shift
from pixel_models.layers.shifted_conv_transpose import ShiftedConv2DTranspose

__all__ = [
    "CausalAttention",
    "GatedResidual",
    "GridSubsample",
    "grid_mask",
    "coordinate_background",
    "masked_attention",
    "strict_causal_mask",
    "DiagonalBiLSTM",
    "DiagonalLSTM",
    "GatedBlock",
    "GatedResnet",
    "ShiftedConv2D",
    "ShiftedConv2DTranspose",
    "concat_elu",
    "down_shift",
    "right_shift",
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
