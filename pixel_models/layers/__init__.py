"""Keras layers of the zoo, one family per module."""

from pixel_models.layers.masked_conv import MaskedConv2D, channel_groups, make_mask

__all__ = ["MaskedConv2D", "channel_groups", "make_mask"]
