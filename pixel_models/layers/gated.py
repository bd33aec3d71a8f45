"""Gated PixelCNN blocks: a vertical and a horizontal stack with gated units.

A plain PixelCNN stacks masked ``k x k`` convolutions, whose receptive field
misses a growing wedge of pixels above and to the right of the current one
(the *blind spot*). The Gated PixelCNN splits every layer into two stacks:

- the **vertical stack** sees whole rows above the current pixel (as wide as
  the receptive field allows, to the left *and* to the right);
- the **horizontal stack** sees the current row up to the current pixel, plus
  the vertical stack's features through a ``1 x 1`` link.

Together they see every pixel before the current one in raster order once
the stack is deep enough. Both stacks use the gated unit
``tanh(W_f * x + V_f h) * sigmoid(W_g * x + V_g h)``, where ``h`` is an
optional conditioning input (a class one-hot, a latent code, or a spatial map).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from pixel_models.layers.checks import check_mask_type, odd_positive_int, positive_int
from pixel_models.layers.incremental import Here, NotIncremental, Rate, Slot, Step, Whole, Window
from pixel_models.layers.masked_conv import channel_groups, make_mask
from pixel_models.layers.serialization import constructor_config


def shift_down(x, rows: int = 1):
    """Shifts a ``(B, H, W, F)`` feature map down by ``rows``, zeros entering at the top.

    Row ``i`` of the result is row ``i - rows`` of ``x``; the last ``rows``
    rows of ``x`` are dropped. After the shift, a convolution that covers the
    rows above *and the current row* only reads rows strictly above.

    Args:
      x: tensor or array of shape ``(B, H, W, F)``.
      rows: non-negative number of rows.

    Returns:
      A tensor of the shape of ``x``.

    Example:

    >>> import numpy as np
    >>> x = np.arange(1, 7, dtype="float32").reshape(1, 3, 2, 1)
    >>> np.asarray(shift_down(x))[0, :, :, 0].tolist()
    [[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]]
    """
    rows = int(rows)
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    x = ops.convert_to_tensor(x)
    if rows == 0:
        return x
    padded = ops.pad(x, [[0, 0], [rows, 0], [0, 0], [0, 0]])
    return padded[:, :-rows]


def horizontal_mask(
    kernel_size: int,
    in_channels: int,
    filters: int,
    mask_type: str,
    color_channels: int = 1,
) -> np.ndarray:
    """Mask of the horizontal stack's ``1 x (k//2 + 1)`` convolution.

    The kernel covers the ``k // 2`` pixels left of the current one and the
    current pixel itself (its last column). The left columns are visible;
    at the current pixel, output colour group ``g`` sees input group ``h``
    when ``h < g`` (type A) or ``h <= g`` (type B), exactly as the centre of
    :func:`~pixel_models.layers.masked_conv.make_mask`. The ``2 * filters``
    outputs are the gate's two halves (``tanh`` then ``sigmoid``), each laid
    out in the colour groups of ``channel_groups(filters, color_channels)``,
    so both halves get the same mask. For ``k = 5`` and one colour channel::

        type A     type B
        1 1 0      1 1 1

    Args:
      kernel_size: odd int ``k``.
      in_channels: input features.
      filters: features of each gate half.
      mask_type: ``"A"`` or ``"B"``.
      color_channels: number of colour channel groups ``C``.

    Returns:
      float32 array of shape ``(1, k // 2 + 1, in_channels, 2 * filters)``.

    Example:

    >>> horizontal_mask(5, 1, 1, "A")[0, :, 0].astype(int).tolist()
    [[1, 1], [1, 1], [0, 0]]
    """
    kernel_size = odd_positive_int("kernel_size", kernel_size)
    half = make_mask((1, kernel_size), in_channels, filters, mask_type, color_channels)
    half = half[:, : kernel_size // 2 + 1]
    return np.concatenate([half, half], axis=-1)


def _gate(x, filters: int):
    return ops.tanh(x[..., :filters]) * ops.sigmoid(x[..., filters:])


@keras.saving.register_keras_serializable(package="pixel_models")
class GatedBlock(keras.layers.Layer):
    """One layer of the Gated PixelCNN: vertical and horizontal stacks, gated.

    Called on a pair ``(v, h)`` of vertical and horizontal stack inputs of
    shape ``(B, H, W, *)`` (both are the image in the first block), it returns
    ``(v_out, h_out, skip)``, each ``(B, H, W, filters)``::

        v' = shift_down(v) if mask_type == "A" else v
        a_v = conv_{(k//2+1) x k}(v') + V_v c          (rows i - k//2 .. i of v')
        a_h = conv_{1 x (k//2+1)}(h, masked) + link_{1x1}(a_v) + V_h c
        v_out = tanh(a_v[:F]) * sigmoid(a_v[F:])
        g     = tanh(a_h[:F]) * sigmoid(a_h[F:])
        skip  = conv_{1x1}(g, mask B)
        h_out = skip + h if mask_type == "B" else skip

    where ``c`` is the optional conditioning (``V c`` is a learned per-image
    bias for a vector ``condition``, a ``1 x 1`` convolution for a
    ``spatial_condition``).

    **Receptive fields.** Every block keeps the invariant *the vertical stack
    at row i has seen only image rows < i*: the first block shifts its
    vertical input down one row, so its ``(k//2+1) x k`` convolution over
    "the rows above and the current row" reads only image rows above; later
    blocks read vertical features that already end one row up, so they need
    no further shift. The horizontal stack reads the current row up to the
    current pixel (type A: the pixel itself is hidden, type B: visible,
    colour groups permitting) and the vertical features at the same
    position. For ``k = 3``, output ``o`` of one first block sees::

        vertical            horizontal          together
        . V V V .           . . . . .           . V V V .
        . V V V .           . . . . .           . V V V .
        . . o . .           . H o . .           . H o . .

    Each further block widens the vertical field by ``k // 2`` columns on
    both sides and ``k // 2`` rows up, and the horizontal field by ``k // 2``
    columns to the left, so the union covers every earlier pixel: there is no
    blind spot (compare :class:`~pixel_models.layers.MaskedConv2D`, whose stack
    never reaches ``(i - 1, j + 2)`` with ``3 x 3`` kernels).

    **Colour.** With ``color_channels = C`` the ``filters`` features of each
    stack are split into ``C`` contiguous groups (as ``MaskedConv2D`` does) and
    the ``2 * filters`` pre-activations are two such halves, the ``tanh`` half
    then the ``sigmoid`` half, so feature ``f`` of the gate combines two
    pre-activations of the same group. At the current pixel, horizontal group
    ``g`` sees input groups ``< g`` (type A) or ``<= g`` (type B); the ``1x1``
    output convolution is type B. The vertical stack never reads
    the current row, so it needs no colour mask.

    The masks are constants built once in ``build()`` and applied as
    ``kernel * mask`` in ``call()``.

    **Incremental evaluation.** For cached sampling the block also computes
    its outputs piece by piece, with the same weights: :meth:`call_vertical_row`
    gives a whole row ``i`` of the vertical stack (and of its link to the
    horizontal stack) from the vertical input rows that
    :meth:`vertical_window` names, all above image row ``i``, and
    :meth:`call_horizontal_window` gives the horizontal and skip outputs at
    one position from the ``k // 2 + 1`` horizontal inputs that end there and
    the row's link. ``call()`` stays the reference they are tested against.

    Args:
      filters: features ``F`` of every output (``>= color_channels``).
      kernel_size: odd ``k``: the vertical kernel is ``(k//2+1) x k``, the
        horizontal one ``1 x (k//2+1)``.
      mask_type: ``"A"`` for the first block (input is the image: shifts the
        vertical stack, hides the current pixel, no residual) or ``"B"`` for
        later blocks (the horizontal input must have ``filters`` features, for
        the residual connection).
      color_channels: number of colour channel groups (1 for grey or binary
        images, 3 for RGB).
      kernel_initializer, bias_initializer: Keras initializers.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Call arguments:
      inputs: pair ``(v, h)`` of ``(B, H, W, *)`` tensors.
      condition: optional ``(B, D)`` conditioning vector (a class one-hot or a
        latent code), the same for every position.
      spatial_condition: optional ``(B, H, W, D')`` conditioning map.

    A block called with a condition must always be called with one (the
    weights that read it are created on the first call).

    Example:

    >>> import numpy as np
    >>> x = np.zeros((2, 8, 8, 1), "float32")
    >>> v, h, skip = GatedBlock(4, 3, mask_type="A")((x, x))
    >>> v, h, skip = GatedBlock(4, 3, mask_type="B")((v, h), condition=np.eye(2, dtype="float32"))
    >>> tuple(h.shape), tuple(skip.shape)
    ((2, 8, 8, 4), (2, 8, 8, 4))

    References:
      van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu.
      Conditional Image Generation with PixelCNN Decoders. NeurIPS 2016.
      https://arxiv.org/abs/1606.05328 (Section 2.2, Figure 2; Equations 4-5
      for the conditioning).

    Deviations from the paper: the vertical stack is shifted down once, at
    the input of the first block, instead of on the vertical-to-horizontal
    link of every block (as in openai/pixel-cnn); both give the same receptive
    fields. The first block has no residual connection (its horizontal input
    is the image, of another width, and adding it would show the current
    pixel to its own prediction). The skip output is the block's contribution
    to the residual stream (the ``1 x 1`` convolution before the residual
    addition), not a separately weighted WaveNet skip: the horizontal output
    of the last block of a stack is then the sum of every block's skip, and a
    model that reads it leaves no weight without gradient. A
    ``spatial_condition`` must already have the image's height and width (the
    paper maps a coarser representation up with a deconvolutional network
    first; that network belongs to the model, not to this layer).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        mask_type: str = "B",
        color_channels: int = 1,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = positive_int("filters", filters)
        self.kernel_size = odd_positive_int("kernel_size", kernel_size)
        self.mask_type = check_mask_type(mask_type)
        self.color_channels = int(color_channels)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        # Fail at construction, not at build, on impossible colour groups.
        channel_groups(self.filters, self.color_channels)
        self.condition_dims = None
        self.spatial_condition_dims = None

    def build(self, inputs_shape, condition_shape=None, spatial_condition_shape=None):
        if not isinstance(inputs_shape, list | tuple) or len(inputs_shape) != 2:
            raise ValueError(
                f"GatedBlock takes a pair (vertical, horizontal) of inputs, got {inputs_shape}"
            )
        v_shape, h_shape = inputs_shape
        if len(v_shape) != 4 or len(h_shape) != 4:
            raise ValueError(f"inputs must be (B, H, W, F) tensors, got {v_shape} and {h_shape}")
        v_in, h_in = int(v_shape[-1]), int(h_shape[-1])
        if self.mask_type == "B" and h_in != self.filters:
            raise ValueError(
                f"a type-B GatedBlock adds its horizontal input to its output: the input has "
                f"{h_in} features, filters is {self.filters}"
            )
        channel_groups(h_in, self.color_channels)
        k, f2 = self.kernel_size, 2 * self.filters
        mask = horizontal_mask(k, h_in, self.filters, self.mask_type, self.color_channels)
        # Type A on one colour group (no residual) does not read the current pixel.
        self._reads_centre = self.mask_type == "B" or bool(mask[0, -1].any())
        # Numpy constants (see MaskedConv2D.build).
        self.horizontal_kernel_mask = mask
        self.output_kernel_mask = make_mask(
            1, self.filters, self.filters, "B", self.color_channels
        )[0, 0]

        def weight(name, shape, bias=False):
            initializer = self.bias_initializer if bias else self.kernel_initializer
            return self.add_weight(name=name, shape=shape, initializer=initializer)

        self.vertical_kernel = weight("vertical_kernel", (k // 2 + 1, k, v_in, f2))
        self.vertical_bias = weight("vertical_bias", (f2,), bias=True)
        self.horizontal_kernel = weight("horizontal_kernel", (1, k // 2 + 1, h_in, f2))
        self.horizontal_bias = weight("horizontal_bias", (f2,), bias=True)
        self.link_kernel = weight("link_kernel", (f2, f2))
        self.output_kernel = weight("output_kernel", (self.filters, self.filters))
        self.output_bias = weight("output_bias", (self.filters,), bias=True)
        if condition_shape is not None:
            if len(condition_shape) != 2:
                raise ValueError(f"condition must be (B, D), got shape {condition_shape}")
            self.condition_dims = int(condition_shape[-1])
            shape = (self.condition_dims, f2)
            self.condition_vertical = weight("condition_vertical", shape)
            self.condition_horizontal = weight("condition_horizontal", shape)
        if spatial_condition_shape is not None:
            if len(spatial_condition_shape) != 4:
                raise ValueError(
                    f"spatial_condition must be (B, H, W, D), got shape {spatial_condition_shape}"
                )
            self.spatial_condition_dims = int(spatial_condition_shape[-1])
            shape = (self.spatial_condition_dims, f2)
            self.spatial_vertical = weight("spatial_vertical", shape)
            self.spatial_horizontal = weight("spatial_horizontal", shape)

    def call(self, inputs, condition=None, spatial_condition=None):
        for given, dims, arg in (
            (condition, self.condition_dims, "condition"),
            (spatial_condition, self.spatial_condition_dims, "spatial_condition"),
        ):
            if (given is None) != (dims is None):
                raise ValueError(
                    f"GatedBlock {self.name!r} was built "
                    f"{'without' if dims is None else 'with'} a {arg}: call it the same way"
                )
        v, h = inputs
        pad = self.kernel_size // 2
        if self.mask_type == "A":
            v = shift_down(v)
        v = ops.pad(v, [[0, 0], [pad, 0], [pad, pad], [0, 0]])
        a_v = ops.conv(v, self.vertical_kernel, strides=1, padding="valid") + self.vertical_bias
        h_padded = ops.pad(h, [[0, 0], [0, 0], [pad, 0], [0, 0]])
        a_h = ops.conv(h_padded, self._horizontal_kernel(), strides=1, padding="valid")
        a_h = a_h + self.horizontal_bias
        # The vertical features at (i, j) have seen only rows < i: no mask needed.
        a_h = a_h + ops.matmul(a_v, self.link_kernel)
        if condition is not None:
            condition = ops.cast(condition, a_v.dtype)
            a_v = a_v + ops.matmul(condition, self.condition_vertical)[:, None, None, :]
            a_h = a_h + ops.matmul(condition, self.condition_horizontal)[:, None, None, :]
        if spatial_condition is not None:
            spatial_condition = ops.cast(spatial_condition, a_v.dtype)
            a_v = a_v + ops.matmul(spatial_condition, self.spatial_vertical)
            a_h = a_h + ops.matmul(spatial_condition, self.spatial_horizontal)
        skip = self._skip(a_h)
        h_out = skip + h if self.mask_type == "B" else skip
        return _gate(a_v, self.filters), h_out, skip

    def _horizontal_kernel(self):
        kernel = self.horizontal_kernel
        return kernel * ops.cast(self.horizontal_kernel_mask, kernel.dtype)

    def _skip(self, a_h):
        gated = _gate(a_h, self.filters)
        output_kernel = self.output_kernel * ops.cast(self.output_kernel_mask, gated.dtype)
        return ops.matmul(gated, output_kernel) + self.output_bias

    # Position-wise form, for incremental (cached) sampling. The vertical stack
    # at row i reads only rows above the current image row, so a whole row of it
    # is computed before the row's first pixel; the horizontal stack is then
    # computed one position at a time, reading the row's vertical link.

    def vertical_window(self) -> tuple[int, int, int, int]:
        """Vertical input that one output row reads: ``(top, bottom, left, right)``.

        Output row ``i`` of the vertical stack (and of its link to the
        horizontal stack) reads vertical input rows ``i - top .. i - bottom``,
        and the output at column ``j`` reads input columns
        ``j - left .. j + right``. ``bottom`` is 1 for type A (the input is
        the image, shifted down) and 0 for type B (the input is a vertical
        stack, which at row ``i`` has seen only image rows ``< i``).
        """
        pad = self.kernel_size // 2
        shift = 1 if self.mask_type == "A" else 0
        return pad + shift, shift, pad, pad

    def call_vertical_row(self, window, condition=None):
        """One row of the vertical stack and of its link, from the rows above.

        Args:
          window: ``(B, top - bottom + 1, W + left + right, F_v)`` vertical
            input rows ``i - top .. i - bottom`` (see :meth:`vertical_window`),
            with zeros where they leave the image, as the padding of ``call()``.
          condition: the ``(B, D)`` conditioning vector if the block has one.

        Returns:
          ``(v_out, link)``: the vertical output row ``(B, W, filters)``, as
          ``call()`` gives it, and the link's ``(B, W, 2 * filters)``
          contribution to the horizontal pre-activations of the row, to pass
          to :meth:`call_horizontal_window`.
        """
        a_v = ops.conv(window, self.vertical_kernel, strides=1, padding="valid")[:, 0]
        a_v = a_v + self.vertical_bias
        link = ops.matmul(a_v, self.link_kernel)
        if condition is not None:
            condition = ops.cast(condition, a_v.dtype)
            a_v = a_v + ops.matmul(condition, self.condition_vertical)[:, None, :]
        return _gate(a_v, self.filters), link

    def horizontal_window(self) -> tuple[int, int, int]:
        """Horizontal input that one output position reads, as
        ``MaskedConv2D.causal_window()``: ``(rows_above, cols_left, cols_right)``,
        here ``(0, k // 2, 0)``: the current row, from ``k // 2`` pixels left
        of the position up to the position itself."""
        return 0, self.kernel_size // 2, 0

    def call_horizontal_window(self, window, link, condition=None):
        """The horizontal and skip outputs at one position.

        Args:
          window: ``(B, 1, k // 2 + 1, F_h)`` horizontal input at columns
            ``j - k // 2 .. j`` of the current row (zeros left of the image).
          link: ``(B, 2 * filters)``: column ``j`` of the ``link`` that
            :meth:`call_vertical_row` gave for the current row.
          condition: the ``(B, D)`` conditioning vector if the block has one.

        Returns:
          ``(h_out, skip)``, each ``(B, filters)``: exactly what ``call()``
          gives at that position.
        """
        a_h = ops.einsum("brkc,rkco->bo", window, self._horizontal_kernel())
        a_h = a_h + self.horizontal_bias + link
        if condition is not None:
            condition = ops.cast(condition, a_h.dtype)
            a_h = a_h + ops.matmul(condition, self.condition_horizontal)
        skip = self._skip(a_h)
        h_out = skip + window[:, -1, -1] if self.mask_type == "B" else skip
        return h_out, skip

    def incremental_steps(self, inputs, outputs) -> list[Step]:
        """A row step for the vertical stack (:meth:`call_vertical_row`, which
        also gives the row's link to the horizontal stack) and a position step
        for the horizontal stack (:meth:`call_horizontal_window`), each with
        the condition if the block has one (known before the loop; see
        :mod:`pixel_models.layers.incremental`)."""
        vertical, horizontal = inputs["inputs"]
        condition = inputs.get("condition")
        if inputs.get("spatial_condition") is not None:
            raise NotIncremental("has no position-wise form with a spatial_condition")
        if condition is not None and condition.rate is not Rate.CONSTANT:
            raise NotIncremental("has a condition that depends on the image")
        top, bottom, left, right = self.vertical_window()
        rates = (vertical.rate, horizontal.rate)
        if Rate.CONSTANT in rates or (vertical.rate is Rate.POSITION and bottom < 1):
            # A position-wise vertical input is complete only up to the row above.
            raise NotIncremental("reads the current row of position-wise vertical features")
        link = Slot(2 * self.filters, f"{self.name}/link")
        given = {} if condition is None else {"condition": Whole(condition)}

        def vertical_row(where, window, condition=None):
            return self.call_vertical_row(window, condition)

        def horizontal_position(where, window, link, condition=None):
            return self.call_horizontal_window(window, link, condition)

        v_reads = {"window": Window(vertical, top, left, right, bottom=bottom), **given}
        h_window = Window(horizontal, *self.horizontal_window(), reads_current=self._reads_centre)
        h_reads = {"window": h_window, "link": Here(link)}
        return [
            Step(Rate.ROW, v_reads, [outputs[0], link], vertical_row),
            Step(Rate.POSITION, {**h_reads, **given}, outputs[1:], horizontal_position),
        ]

    def get_config(self):
        return {**super().get_config(), **constructor_config(self)}
