"""Causal multi-head self-attention over the positions of an image, in raster order.

Every output position attends to *all* the positions before it in raster
order, however far: the layer that gives PixelSNAIL its unbounded receptive
field, where a stack of masked convolutions sees only a window that grows
with depth.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from pixel_models.layers.checks import positive_int
from pixel_models.layers.incremental import Here, NotIncremental, Rate, Slot, Step, Window
from pixel_models.layers.serialization import constructor_config


def strict_causal_mask(height: int, width: int) -> np.ndarray:
    """Which position each position may attend to: the strictly earlier ones.

    Positions are numbered in raster order, ``p = i * W + j``; position ``p``
    attends to ``p'`` when ``p' < p``. For a 2x2 image (positions 0..3)::

        key p'    0 1 2 3
        query 0   . . . .      (attends to nothing)
        query 1   1 . . .
        query 2   1 1 . .
        query 3   1 1 1 .

    Args:
      height, width: image size ``H x W``.

    Returns:
      bool array ``(H * W, H * W)``, ``[p, p']`` True when ``p`` attends to ``p'``.

    Example:

    >>> strict_causal_mask(1, 3).astype(int).tolist()
    [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    """
    positions = np.arange(int(height) * int(width))
    return positions[None, :] < positions[:, None]


def coordinate_background(height: int, width: int) -> np.ndarray:
    """The positional background: two coordinate channels per position.

    Channel 0 of position ``(i, j)`` is ``(i - H / 2) / H`` and channel 1 is
    ``(j - W / 2) / W``, both in ``[-1/2, 1/2)``.

    Returns:
      float32 array ``(H, W, 2)``.

    Example:

    >>> coordinate_background(2, 4)[1].tolist()
    [[0.0, -0.5], [0.0, -0.25], [0.0, 0.0], [0.0, 0.25]]
    """
    rows = (np.arange(height, dtype=np.float32) - height / 2) / height
    cols = (np.arange(width, dtype=np.float32) - width / 2) / width
    grid = np.stack(np.broadcast_arrays(rows[:, None], cols[None, :]), axis=-1)
    return grid.astype(np.float32)


def masked_attention(scores, mask, values):
    """Softmax attention restricted to ``mask``, zero where nothing is allowed.

    Args:
      scores: ``(B, heads, Q, K)`` attention logits.
      mask: bool, broadcastable to ``scores``: the keys each query may read.
      values: ``(B, K, heads, value_dims)``.

    Returns:
      ``(B, Q, heads, value_dims)``: ``sum_k softmax_k(scores) values_k`` over
      the allowed keys; exactly zero for a query that may read no key. The
      softmax is computed in float32, and masked entries never produce an
      infinity, so the gradients stay finite.

    Example:

    >>> import numpy as np
    >>> scores = np.zeros((1, 1, 2, 2), "float32")
    >>> mask = np.array([[False, False], [True, True]])
    >>> values = np.array([[[[1.0]], [[3.0]]]], "float32")  # (1, 2 keys, 1 head, 1)
    >>> np.asarray(masked_attention(scores, mask, values))[0, :, 0, 0].tolist()
    [0.0, 2.0]
    """
    dtype = values.dtype
    scores = ops.cast(scores, "float32")
    mask = ops.broadcast_to(ops.convert_to_tensor(mask), ops.shape(scores))
    # Subtracting the largest allowed score keeps exp() finite; it does not
    # change the softmax, so it carries no gradient.
    largest = ops.max(ops.where(mask, scores, ops.full_like(scores, -1e30)), axis=-1, keepdims=True)
    largest = ops.stop_gradient(ops.where(largest > -1e29, largest, ops.zeros_like(largest)))
    safe = ops.where(mask, scores, largest)
    weights = ops.where(mask, ops.exp(safe - largest), ops.zeros_like(scores))
    total = ops.sum(weights, axis=-1, keepdims=True)
    weights = weights / ops.where(total > 0, total, ops.ones_like(total))
    return ops.einsum("bhqk,bkhd->bqhd", ops.cast(weights, dtype), values)


@keras.saving.register_keras_serializable(package="pixel_models")
class CausalAttention(keras.layers.Layer):
    """Multi-head self-attention in which each position reads the earlier ones.

    Called on feature maps ``inputs`` (one ``(B, H, W, F)`` tensor or a list
    of them, concatenated) and optional ``queries`` ``(B, H, W, F_q)``
    (default: ``inputs``), the layer appends the positional background ``b``
    (:func:`coordinate_background`) to both and computes, for every head
    ``n`` and position ``p`` (raster order, ``p = i * W + j``)::

        k_p = [x_p, b_p] W_k^n + c_k^n          (key_dims)
        v_p = [x_p, b_p] W_v^n + c_v^n          (value_dims)
        q_p = [y_p, b_p] W_q^n + c_q^n          (key_dims)
        s_pp' = q_p . k_p' / sqrt(key_dims)
        out_p^n = sum_{p' < p} softmax_{p' < p}(s_pp') v_p'

    and returns the heads concatenated, ``(B, H, W, heads * value_dims)``.
    The mask is strict (:func:`strict_causal_mask`): no position attends to
    itself or to a later one, so the output at ``p`` depends on the inputs at
    positions before ``p`` only (and on the queries at ``p``). For a 3x3
    image, the keys that position ``o`` reads::

        k k k
        k o .
        . . .

    The first position, ``(0, 0)``, has no earlier position to read: its
    output is defined as zeros (as in the paper's code, where its
    normalising sum is empty).

    **Causality in a model.** If ``inputs`` at ``p'`` depend only on pixels
    up to ``p'`` (the image itself may be among them) and ``queries`` at
    ``p`` only on pixels before ``p``, the output at ``p`` depends only on
    pixels before ``p``.

    **Incremental evaluation.** For cached sampling the layer keeps the keys
    and values of the positions computed so far in a buffer, as language
    models keep theirs: at each position one step computes the position's
    key and value from its inputs and writes them to the buffer, and a second
    step attends from the position's query to the keys and values of the
    whole image in the buffer, masked to the positions before it. The cost
    of a position is ``O(H W)``, not the ``O((H W)^2)`` of ``call()``, which
    stays the reference both are tested against.

    Args:
      heads: number of attention heads.
      key_dims: size of each head's keys and queries.
      value_dims: size of each head's values.
      kernel_initializer, bias_initializer: Keras initializers of the
        projections.
      recompute: keep only the layer's output for the backward pass and
        compute the ``heads x (H W) x (H W)`` attention weights again there
        (``tf.recompute_grad``): the same values and gradients, with the
        memory of one layer's weights at a time instead of every layer's
        (on 28x28 images, 8 layers, about 40% less memory for a training
        step, about 5% more time). False keeps them.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Call arguments:
      inputs: ``(B, H, W, F)`` tensor, or a list of them (same ``H, W``):
        what keys and values are computed from.
      queries: optional ``(B, H, W, F_q)`` tensor the queries are computed
        from (default: ``inputs``).

    Example:

    >>> import numpy as np
    >>> layer = CausalAttention(heads=2, key_dims=4, value_dims=3)
    >>> x = np.random.default_rng(0).normal(size=(1, 3, 3, 5)).astype("float32")
    >>> y = np.asarray(layer(x))
    >>> y.shape
    (1, 3, 3, 6)
    >>> bool(np.all(y[0, 0, 0] == 0))  # the first position reads nothing
    True

    References:
      Chen, Mishra, Rohaninejad, Abbeel. PixelSNAIL: An Improved
      Autoregressive Generative Model. ICML 2018.
      https://arxiv.org/abs/1712.09763 (Section 3, Figure 4).
      Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser, Polosukhin.
      Attention Is All You Need. NeurIPS 2017. https://arxiv.org/abs/1706.03762

    Deviations from the paper: several heads (the paper uses one per block,
    ``heads=1``); the heads' outputs are concatenated without an output
    projection (the model's next layer, a ``1 x 1`` convolution of them,
    plays that part).
    """

    def __init__(
        self,
        heads: int = 1,
        key_dims: int = 16,
        value_dims: int = 128,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        recompute: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.recompute = bool(recompute)
        self.heads = positive_int("heads", heads)
        self.key_dims = positive_int("key_dims", key_dims)
        self.value_dims = positive_int("value_dims", value_dims)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, inputs_shape, queries_shape=None):
        shapes = _shape_list(inputs_shape)
        for shape in shapes:
            if len(shape) != 4 or shape[1] is None or shape[2] is None:
                raise ValueError(
                    f"CausalAttention needs (B, H, W, F) inputs of a fixed size, got {shape}"
                )
        self.height, self.width = int(shapes[0][1]), int(shapes[0][2])
        if any((int(s[1]), int(s[2])) != (self.height, self.width) for s in shapes):
            raise ValueError(f"CausalAttention inputs must have one height and width, got {shapes}")
        content = sum(int(s[-1]) for s in shapes) + 2
        query = (content - 2 if queries_shape is None else int(queries_shape[-1])) + 2
        # Numpy constants (see MaskedConv2D.build).
        self.mask = strict_causal_mask(self.height, self.width)
        self.background = coordinate_background(self.height, self.width)
        hk, hv = self.heads * self.key_dims, self.heads * self.value_dims

        def weight(name, shape, bias=False):
            initializer = self.bias_initializer if bias else self.kernel_initializer
            return self.add_weight(name=name, shape=shape, initializer=initializer)

        self.content_kernel = weight("content_kernel", (content, hk + hv))
        self.content_bias = weight("content_bias", (hk + hv,), bias=True)
        self.query_kernel = weight("query_kernel", (query, hk))
        self.query_bias = weight("query_bias", (hk,), bias=True)

    def _keys_values(self, content):
        """Keys and values ``(..., heads * key_dims)``, ``(..., heads * value_dims)``
        of content features ``[x, b]``."""
        kernel = ops.cast(self.content_kernel, content.dtype)
        kv = ops.matmul(content, kernel) + ops.cast(self.content_bias, content.dtype)
        hk = self.heads * self.key_dims
        return kv[..., :hk], kv[..., hk:]

    def _queries(self, features):
        kernel = ops.cast(self.query_kernel, features.dtype)
        return ops.matmul(features, kernel) + ops.cast(self.query_bias, features.dtype)

    def _attend(self, queries, keys, values, mask):
        """``(B, Q, heads * value_dims)`` from ``(B, Q, hk)`` queries and
        ``(B, K, hk)``, ``(B, K, hv)`` keys and values."""
        batch = ops.shape(queries)[0]
        q = ops.reshape(queries, (batch, -1, self.heads, self.key_dims))
        k = ops.reshape(keys, (batch, -1, self.heads, self.key_dims))
        v = ops.reshape(values, (batch, -1, self.heads, self.value_dims))
        scores = ops.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(self.key_dims)
        out = masked_attention(scores, mask, v)
        return ops.reshape(out, (batch, -1, self.heads * self.value_dims))

    def call(self, inputs, queries=None):
        sources = _tensor_list(inputs)
        batch = ops.shape(sources[0])[0]
        dtype = sources[0].dtype
        height, width = self.height, self.width
        background = ops.broadcast_to(
            ops.cast(self.background, dtype)[None], (batch, height, width, 2)
        )
        query_source = ops.concatenate(sources, axis=-1) if queries is None else queries
        keys, values = self._keys_values(ops.concatenate([*sources, background], axis=-1))
        q = self._queries(ops.concatenate([query_source, background], axis=-1))
        n = height * width

        def attend(q, keys, values):
            return self._attend(q, keys, values, self.mask[None, None])

        if self.recompute:
            attend = tf.recompute_grad(attend)
        out = attend(
            ops.reshape(q, (batch, n, -1)),
            ops.reshape(keys, (batch, n, -1)),
            ops.reshape(values, (batch, n, -1)),
        )
        return ops.reshape(out, (batch, height, width, self.heads * self.value_dims))

    # Position-wise form, for incremental (cached) sampling.

    def position_background(self, i, j):
        """The background ``(1, 2)`` at position ``(i, j)`` (scalar tensors)."""
        i = ops.cast(i, "float32")
        j = ops.cast(j, "float32")
        row = (i - self.height / 2) / self.height
        col = (j - self.width / 2) / self.width
        return ops.reshape(ops.stack([row, col]), (1, 2))

    def call_keys_values(self, sources, i, j):
        """Keys and values of position ``(i, j)``, concatenated ``(B, hk + hv)``.

        Args:
          sources: the ``(B, F)`` features of ``inputs`` at the position, one
            per input tensor.
          i, j: the position (scalar tensors).
        """
        dtype = self.content_kernel.dtype
        sources = [ops.cast(s, dtype) for s in sources]
        batch = ops.shape(sources[0])[0]
        background = ops.broadcast_to(self.position_background(i, j), (batch, 2))
        keys, values = self._keys_values(ops.concatenate([*sources, background], axis=-1))
        return ops.concatenate([keys, values], axis=-1)

    def call_position(self, window, queries, i, j):
        """The output at ``(i, j)`` from the buffered keys and values.

        Args:
          window: ``(B, H, 2 W - 1, hk + hv)``: the keys and values
            (:meth:`call_keys_values`) of image rows ``i - H + 1 .. i`` and
            columns ``j - W + 1 .. j + W - 1``, zeros outside the image and
            at positions not computed yet.
          queries: ``(B, F_q)`` query features at the position.
          i, j: the position (scalar tensors).

        Returns:
          ``(B, heads * value_dims)``: exactly what ``call()`` gives there.
        """
        height, width = self.height, self.width
        dtype = self.query_kernel.dtype
        window = ops.cast(window, dtype)
        batch = ops.shape(window)[0]
        # Columns 0 .. W - 1 of the image: rows i - H + 1 .. i, all H * W of them.
        start = ops.cast(width - 1 - j, "int32")
        zero = ops.zeros((), "int32")
        block = ops.slice(
            window, ops.stack([zero, zero, start, zero]), (batch, height, width, window.shape[-1])
        )
        block = ops.reshape(block, (batch, height * width, window.shape[-1]))
        hk = self.heads * self.key_dims
        rows = ops.cast(i, "int32") - (height - 1) + ops.arange(height, dtype="int32")[:, None]
        cols = ops.arange(width, dtype="int32")[None, :]
        here = ops.cast(i, "int32") * width + ops.cast(j, "int32")
        allowed = ops.logical_and(rows >= 0, rows * width + cols < here)
        background = ops.broadcast_to(self.position_background(i, j), (batch, 2))
        q = self._queries(ops.concatenate([ops.cast(queries, dtype), background], axis=-1))
        out = self._attend(
            q[:, None], block[..., :hk], block[..., hk:], ops.reshape(allowed, (1, 1, 1, -1))
        )
        return out[:, 0]

    def incremental_steps(self, inputs, outputs) -> list[Step]:
        """Two position steps: the position's keys and values, written to a
        buffer of the layer's own (:meth:`call_keys_values`), then its output
        from the buffer (:meth:`call_position`; see
        :mod:`pixel_models.layers.incremental`)."""
        sources = inputs["inputs"]
        sources = list(sources) if isinstance(sources, list | tuple) else [sources]
        queries = inputs.get("queries")
        slots = [*sources, *([] if queries is None else [queries])]
        if any(slot.rate is Rate.CONSTANT for slot in slots):
            raise NotIncremental("attends over conditioning inputs")
        hk, hv = self.heads * self.key_dims, self.heads * self.value_dims
        cache = Slot(hk + hv, f"{self.name}/keys_values")
        source_reads = {f"x{k}": Here(slot) for k, slot in enumerate(sources)}

        def keys_values(where, **values):
            return [self.call_keys_values([values[f"x{k}"] for k in range(len(sources))], *where)]

        def position(where, window, **values):
            if queries is None:
                features = [values[f"x{k}"] for k in range(len(sources))]
                query = ops.concatenate([ops.cast(f, "float32") for f in features], axis=-1)
            else:
                query = values["queries"]
            return [self.call_position(window, query, *where)]

        # The whole cache, of which the strict mask reads positions before (i, j) only.
        window = Window(
            cache,
            top=self.height - 1,
            left=self.width - 1,
            right=self.width - 1,
            reads_current=False,
        )
        query_reads = source_reads if queries is None else {"queries": Here(queries)}
        return [
            Step(Rate.POSITION, source_reads, [cache], keys_values),
            Step(Rate.POSITION, {"window": window, **query_reads}, outputs, position),
        ]

    def compute_output_shape(self, inputs_shape, queries_shape=None):
        shape = _shape_list(inputs_shape)[0]
        return (*shape[:3], self.heads * self.value_dims)

    def get_config(self):
        return {**super().get_config(), **constructor_config(self)}


def _is_shape(value) -> bool:
    return isinstance(value, list | tuple) and all(v is None or isinstance(v, int) for v in value)


def _shape_list(shapes) -> list:
    """One shape or a list of shapes, as a list."""
    if _is_shape(shapes):
        return [tuple(shapes)]
    return [tuple(s) for s in shapes]


def _tensor_list(inputs) -> list:
    return list(inputs) if isinstance(inputs, list | tuple) else [inputs]
