"""PixelRNN of van den Oord et al. (2016): Row LSTM and Diagonal BiLSTM models."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from pixel_models.models.common import (
    RNN_TYPES,
    builder_start,
    check_sizes,
    masked_conv_factory,
    output_stack,
    recurrent_layer,
    recurrent_stack,
)

__all__ = ["RNN_TYPES", "pixel_rnn"]


def pixel_rnn(
    image_shape: Sequence[int] = (28, 28, 1),
    levels: int = 2,
    hidden_dims: int = 16,
    recurrent_length: int = 7,
    out_hidden_dims: int = 32,
    out_recurrent_length: int = 2,
    use_residual: bool = False,
    rnn_type: str = "diagonal_bilstm",
    first_kernel_size: int = 7,
    row_kernel_size: int = 3,
    name: str = "pixel_rnn",
) -> keras.Model:
    """PixelRNN: a masked convolution, a stack of 2-D LSTMs and a per-pixel head.

    Layers, as in Table 1 of the paper::

        images -> rescale to [-1, 1]
          -> MaskedConv2D 7x7, type A, hidden_dims                      "conv_a"
          -> recurrent_length x [RowLSTM (1x3 / width-3 convs)          "lstm{i}"
                                 or DiagonalBiLSTM, hidden_dims units, type B]
             with use_residual: x + MaskedConv2D 1x1 type B (lstm(x))   "proj{i}", "residual{i}"
          -> out_recurrent_length x [MaskedConv2D 1x1, type B, out_hidden_dims, ReLU]
          -> MaskedConv2D 1x1, type B, to the head's logits -> PixelHead

    Every input-to-state and output convolution splits its features into
    ``C`` colour groups, so channel ``c`` of a pixel is predicted from the
    pixels before it and from channels ``< c`` of the same pixel; the LSTM
    state-to-state convolutions read only earlier pixels. Binary data
    (``levels == 2``) gets a Bernoulli head, anything else a
    ``levels``-way categorical head.

    Receptive field: with ``"diagonal_bilstm"`` every LSTM layer sees every
    earlier position of its input, so there is no blind spot (the last pixel
    sees every other pixel) except one gap that the paper's architecture
    has on images wider than ``first_kernel_size // 2 + 1`` columns: the
    type-A layer puts pixel ``(i - 1, W - 1)``, the end of the previous row,
    only into features at ``(i, j)`` with ``j >= W - 1 - first_kernel_size // 2``
    and later, so outputs ``(i, j)`` left of that column do not see that one
    pixel. With ``"row_lstm"`` the context is a triangle above the pixel
    (see :class:`~pixel_models.layers.recurrent.RowLSTM`), not the whole past.

    Deviations from the paper:

    - Residual connections: the paper's LSTM layers read a ``2h``-feature
      map, produce ``h`` features, and a 1x1 convolution brings them back to
      ``2h`` before the addition. Here the map between layers has
      ``hidden_dims`` features, each LSTM has ``hidden_dims`` units and the
      1x1 type-B projection maps ``hidden_dims`` to ``hidden_dims`` before
      the addition, so plain and residual models have the same widths.
    - Output layers: the paper applies "ReLU followed by 1x1 conv" twice, the
      second conv giving the logits. Here, as in :func:`pixel_cnn`, there are
      ``out_recurrent_length`` 1x1 ReLU layers and then the logits layer.
    - The 7x7 type-A convolution is linear (the paper lists no
      nonlinearity), and the LSTM candidate uses ``tanh``.
    - The forget gates' biases start at 1 (a common LSTM practice).

    Args:
      image_shape: ``(H, W, C)``.
      levels: values per channel (2 for binary, 256 for 8-bit).
      hidden_dims: features of the 7x7 layer and units of each LSTM
        (``>= C``).
      recurrent_length: number of LSTM layers (0 gives the 7x7 layer and the
        output layers only).
      out_hidden_dims: features of the 1x1 output layers.
      out_recurrent_length: number of 1x1 ReLU layers before the logits.
      use_residual: add each LSTM layer's projected output to its input.
      rnn_type: ``"diagonal_bilstm"`` or ``"row_lstm"``.
      first_kernel_size: kernel of the type-A layer (odd).
      row_kernel_size: width ``k`` of the Row LSTM convolutions (odd; 3 in
        the paper); unused by the Diagonal BiLSTM.
      name: model name.

    Returns:
      A ``keras.Model`` from float32 images ``(B, H, W, C)`` to logits
      (``(B, H, W, C)`` Bernoulli, ``(B, H, W, C, levels)`` categorical).

    Example:

    >>> model = pixel_rnn((4, 4, 1), hidden_dims=4, recurrent_length=1,
    ...                   out_hidden_dims=4, out_recurrent_length=1)
    >>> model.output_shape
    (None, 4, 4, 1)

    References:
      van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural
      Networks. ICML 2016. https://arxiv.org/abs/1601.06759 (Sections 3.1 to
      3.4, Table 1).
    """
    if rnn_type not in RNN_TYPES:
        raise ValueError(f"rnn_type must be one of {', '.join(RNN_TYPES)}, got {rnn_type!r}")
    check_sizes(
        hidden_dims=(hidden_dims, 1),
        recurrent_length=(recurrent_length, 0),
        out_hidden_dims=(out_hidden_dims, 1),
        out_recurrent_length=(out_recurrent_length, 0),
    )
    start = builder_start(image_shape, levels)
    conv = masked_conv_factory(
        start.channels,
        hidden_dims=hidden_dims,
        out_hidden_dims=out_hidden_dims if out_recurrent_length else None,
    )

    def lstm(layer_name):
        return recurrent_layer(rnn_type, hidden_dims, start.channels, row_kernel_size, layer_name)

    x = conv(hidden_dims, first_kernel_size, "A", None, "conv_a")(start.x)
    x = recurrent_stack(x, lstm, conv, recurrent_length, use_residual)
    return start.model(
        output_stack(x, conv, out_hidden_dims, out_recurrent_length, start.head), name
    )
