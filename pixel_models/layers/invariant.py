"""Rotation and flip equivariant convolutions over the groups C4 and D4.

A group convolution applies every rotated (and, for D4, mirrored) copy of
each kernel and keeps one output per copy: the output has an orientation
axis, and rotating or mirroring the input rotates or mirrors the output
spatially and permutes its orientations in a known way (equivariance).
Pooling over the orientation axis then gives features that only move with
the input, and global spatial pooling gives numbers that do not change at all
(invariance).

Groups (``np.rot90`` turns counter-clockwise, row 0 at the top)::

    C4: e, r, r2, r3                      rotations by 0, 90, 180, 270 degrees
    D4: e, r, r2, r3, m, rm, r2m, r3m     the same, each after a left-right mirror m

Only these exact operations of the pixel grid are used. Two look-alikes are
avoided on purpose: shifting the outer ring of a 3x3 kernel by one step ("45
degrees") moves edge pixels onto corners, which is no rotation of the grid;
and a maximum over ``{identity, left-right flip, up-down flip}`` is not flip
invariant because those three operations are not closed under composition
(the two flips make the 180 degree rotation, which is missing).

Tensor layout: group feature maps fold the orientations into the channels,
``(B, H, W, features * |G|)`` with channel ``f * |G| + g`` holding feature
``f`` at orientation ``g`` (``ops.reshape`` to ``(B, H, W, features, |G|)``
separates them). Plain Keras layers that act on each value alone
(activations) keep the equivariance, and so does spatial pooling whose
windows are mirror symmetric (:func:`windows_are_symmetric`).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import keras
import numpy as np
from keras import ops

from pixel_models.layers.checks import positive_int
from pixel_models.layers.convolution import Convolution
from pixel_models.layers.serialization import constructor_config

GROUPS = ("C4", "D4")
INPUT_KINDS = ("image", "group")
PADDINGS = ("same", "valid")
REDUCTIONS = ("max", "mean")

# Every element of D4 moves this pattern to a different array, so an array
# identifies the element that produced it.
_PATTERN = np.arange(16).reshape(4, 4)


def _grid_operation(array: np.ndarray, quarter_turns: int, mirrored: bool, axes) -> np.ndarray:
    """Mirror left-right (if ``mirrored``), then turn ``quarter_turns`` times."""
    if mirrored:
        array = np.flip(array, axis=axes[1])
    return np.rot90(array, k=quarter_turns, axes=axes)


@dataclasses.dataclass(frozen=True, eq=False)
class GroupTable:
    """A finite group of grid symmetries: elements, products, inverses, action.

    Attributes:
      name: ``"C4"`` or ``"D4"``.
      elements: ``(quarter_turns, mirrored)`` per element; the element maps an
        image by a left-right mirror when ``mirrored``, then ``quarter_turns``
        counter-clockwise quarter turns (``np.rot90``). Element 0 is the
        identity.
      names: short names, ``"e"``, ``"r"``, ``"r2"``, ``"r3"``, ``"m"``,
        ``"rm"``, ...
      cayley: ``int`` array ``(n, n)``; ``cayley[g, h]`` is the index of the
        product ``g h`` (apply ``h``, then ``g``).
      inverse: ``int`` array ``(n,)``; ``inverse[g]`` is the index of ``g``'s
        inverse.

    Example:

    >>> table = group_table("D4")
    >>> table.order, table.names[1], table.names[4], table.names[table.cayley[1, 4]]
    (8, 'r', 'm', 'rm')
    >>> table.act(np.arange(4).reshape(2, 2), 1).tolist()  # r: a quarter turn, as np.rot90
    [[1, 3], [0, 2]]
    >>> group_table("C4").orientation_permutation(1).tolist()  # new g comes from old r^-1 g
    [3, 0, 1, 2]
    """

    name: str
    elements: tuple[tuple[int, int], ...]
    names: tuple[str, ...]
    cayley: np.ndarray
    inverse: np.ndarray

    @property
    def order(self) -> int:
        """The number of elements ``|G|``."""
        return len(self.elements)

    def orientation_permutation(self, element: int) -> np.ndarray:
        """Where each orientation of a transformed group feature map comes from.

        Acting with ``t`` sends orientation ``h`` to ``t h``, so the
        transformed map's orientation ``g`` is the original's ``t^-1 g``.

        Returns:
          ``int`` array ``(n,)``: ``perm[g] = index of t^-1 g``.
        """
        return self.cayley[self.inverse[element]].copy()

    def act(
        self,
        array: np.ndarray,
        element: int,
        axes: tuple[int, int] = (0, 1),
        orientation_axis: int | None = None,
    ) -> np.ndarray:
        """The action of one element on an image, a kernel or a group feature map.

        The spatial axes ``axes`` (rows, columns) are mirrored and turned.
        With ``orientation_axis`` (of length ``|G|``), the array is a function
        on the group as well and its orientations are permuted:
        ``new[..., g, ...] = old[..., t^-1 g, ...]``. The same action serves
        images ``(H, W, C)``, lifting kernels ``(K, K, C_in, F)``, group kernels
        ``(K, K, C_in, |G|, F)`` with ``orientation_axis=3`` and group feature
        maps.

        Args:
          array: numpy array.
          element: index into ``elements``.
          axes: the (row, column) axes.
          orientation_axis: the orientation axis, or ``None``.

        Returns:
          The transformed array (a new numpy array).
        """
        quarter_turns, mirrored = self.elements[element]
        out = _grid_operation(np.asarray(array), quarter_turns, mirrored, axes)
        if orientation_axis is not None:
            if out.shape[orientation_axis] != self.order:
                raise ValueError(
                    f"orientation axis {orientation_axis} has length "
                    f"{out.shape[orientation_axis]}, expected {self.order}"
                )
            out = np.take(out, self.orientation_permutation(element), axis=orientation_axis)
        return np.ascontiguousarray(out)


def _element_name(quarter_turns: int, mirrored: bool) -> str:
    turn = {0: "", 1: "r"}.get(quarter_turns, f"r{quarter_turns}")
    name = turn + ("m" if mirrored else "")
    return name or "e"


@functools.cache
def group_table(name: str) -> GroupTable:
    """The table of ``"C4"`` or ``"D4"``, computed from the image operations.

    Every product is found by applying the two operations to a test pattern
    and looking up which element gives the same array; nothing is typed by
    hand. Raises if the elements are not closed under composition.

    Args:
      name: ``"C4"`` (4 rotations) or ``"D4"`` (4 rotations and 4 mirrors).

    Returns:
      A :class:`GroupTable` (cached: the same object for the same name).

    Example:

    >>> table = group_table("C4")
    >>> table.names
    ('e', 'r', 'r2', 'r3')
    >>> table.cayley.tolist()
    [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]]
    >>> group_table("D4").inverse.tolist()
    [0, 3, 2, 1, 4, 5, 6, 7]
    """
    if name not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {name!r}")
    mirrors = (False, True) if name == "D4" else (False,)
    elements = tuple((k, int(m)) for m in mirrors for k in range(4))
    images = [_grid_operation(_PATTERN, k, m, (0, 1)) for k, m in elements]

    def index_of(image: np.ndarray) -> int:
        found = [i for i, ref in enumerate(images) if np.array_equal(ref, image)]
        if len(found) != 1:
            raise ValueError(f"{name} is not closed under composition")
        return found[0]

    identity = index_of(_PATTERN)
    cayley = np.array(
        [
            [index_of(_grid_operation(images[h], *elements[g], (0, 1))) for h in range(len(images))]
            for g in range(len(images))
        ],
        dtype=np.int64,
    )
    inverse = np.argmax(cayley == identity, axis=1)
    return GroupTable(
        name=name,
        elements=elements,
        names=tuple(_element_name(k, m) for k, m in elements),
        cayley=cayley,
        inverse=inverse,
    )


def transform_images(images, element: int, group: str):
    """Mirrors and turns a batch of images ``(B, H, W, C)`` by one group element.

    Works on numpy arrays and tensors (returns a tensor). Turning a non-square
    image swaps ``H`` and ``W``.

    Example:

    >>> import numpy as np
    >>> x = np.arange(4.0).reshape(1, 2, 2, 1)
    >>> np.asarray(transform_images(x, 1, "C4"))[0, :, :, 0].tolist()
    [[1.0, 3.0], [0.0, 2.0]]
    """
    quarter_turns, mirrored = group_table(group).elements[element]
    x = ops.convert_to_tensor(images)
    if mirrored:
        x = ops.flip(x, axis=2)
    # Turns spelled out with flips and transposes, as np.rot90 does them
    # (keras.ops.rot90 with k=2 mixes up non-square images in Keras 3.15).
    if quarter_turns == 1:
        x = ops.swapaxes(ops.flip(x, axis=2), 1, 2)
    elif quarter_turns == 2:
        x = ops.flip(ops.flip(x, axis=1), axis=2)
    elif quarter_turns == 3:
        x = ops.flip(ops.swapaxes(x, 1, 2), axis=2)
    return x


def transform_group_features(features, element: int, group: str):
    """The action of one element on group feature maps ``(B, H, W, F * |G|)``.

    The positions are mirrored and turned as by :func:`transform_images` and
    the orientations of every feature permuted (``new[g] = old[t^-1 g]``), so
    that a group convolution ``conv`` satisfies
    ``conv(transform(x, t)) == transform(conv(x), t)``.

    Example:

    >>> features = np.arange(4.0).reshape(1, 1, 1, 4)  # one feature, 4 orientations
    >>> np.asarray(transform_group_features(features, 1, "C4")).ravel().tolist()
    [3.0, 0.0, 1.0, 2.0]
    >>> conv = GroupConv2D(2, 3, group="C4")
    >>> x = np.random.default_rng(0).normal(size=(1, 5, 5, 1)).astype("float32")
    >>> turned_first = conv(transform_images(x, 1, "C4"))
    >>> turned_after = transform_group_features(conv(x), 1, "C4")
    >>> bool(np.allclose(turned_first, turned_after, atol=1e-5))
    True
    """
    table = group_table(group)
    x = transform_images(features, element, group)
    channels = int(x.shape[-1])
    if channels % table.order:
        raise ValueError(f"{channels} channels are not a multiple of |{group}| = {table.order}")
    channel = np.arange(channels)
    within = table.orientation_permutation(element)[channel % table.order]
    source = channel // table.order * table.order + within
    return ops.take(x, source.astype(np.int32), axis=-1)


def windows_are_symmetric(size: int, window: int, stride: int, padding: str) -> bool:
    """Whether a convolution or pooling grid on one axis of ``size`` is mirror symmetric.

    The windows (with TensorFlow's ``"same"`` padding, which puts the odd
    extra pixel after) must map onto each other when the axis is reversed;
    then mirrors and quarter turns of a square input commute with the layer.
    Otherwise equivariance holds only up to a shift (or not at all with
    strides). Examples: stride 1 with ``"same"`` needs an odd window; stride 2
    with ``"same"`` and a 3x3 window needs an odd size; ``"valid"`` needs
    ``(size - window) % stride == 0``.

    Example:

    >>> windows_are_symmetric(8, 3, 2, "same"), windows_are_symmetric(7, 3, 2, "same")
    (False, True)
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if padding == "valid":
        if size < window:
            return False
        outputs = (size - window) // stride + 1
    else:
        outputs = -(-size // stride)
    span = stride * (outputs - 1) + window - size  # padding a symmetric grid needs
    if padding == "valid":
        return span == 0
    return span >= 0 and span % 2 == 0


def conv_output_size(size: int | None, window: int, stride: int, padding: str) -> int | None:
    """Output length on one axis of a convolution (``None`` for unknown).

    Example:

    >>> conv_output_size(8, 3, 2, "same"), conv_output_size(8, 3, 2, "valid")
    (4, 3)
    >>> print(conv_output_size(None, 3, 1, "same"))
    None
    """
    if size is None:
        return None
    if padding == "same":
        return -(-size // stride)
    return max((size - window) // stride + 1, 0)


def kernel_bank_indices(kernel_shape, group: str, input_kind: str) -> np.ndarray:
    """Gather indices that turn one kernel into the bank of its transformed copies.

    The kernel is ``(K, K, C_in, F)`` for ``input_kind="image"`` or
    ``(K, K, C_in, |G|, F)`` for ``"group"``. The copy for output orientation
    ``g`` is ``act(kernel, g)`` (turned and mirrored; for ``"group"`` also its
    input orientations permuted). The indices are found by applying that
    action to the array of flat positions ``0 .. size-1``, so
    ``flat_kernel[indices]`` is the bank.

    Returns:
      ``int32`` array ``(K, K, C_in, F * |G|)`` or ``(K, K, C_in * |G|, F * |G|)``
      with output channel ``f * |G| + g``, input channel ``c * |G| + h``.

    Example:

    >>> kernel_bank_indices((2, 2, 1, 1), "C4", "image")[..., 0, :].tolist()
    [[[0, 1, 3, 2], [1, 3, 2, 0]], [[2, 0, 1, 3], [3, 2, 0, 1]]]
    """
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")
    table = group_table(group)
    kernel_shape = tuple(int(v) for v in kernel_shape)
    positions = np.arange(math.prod(kernel_shape)).reshape(kernel_shape)
    orientation_axis = 3 if input_kind == "group" else None
    bank = np.stack(
        [table.act(positions, g, orientation_axis=orientation_axis) for g in range(table.order)],
        axis=-1,
    )
    kh, kw = kernel_shape[:2]
    filters = kernel_shape[-1]
    return bank.reshape(kh, kw, -1, filters * table.order).astype(np.int32)


def pool_orientations(inputs, order: int, reduction: str):
    """Max or mean over the orientations of ``(..., F * order)`` -> ``(..., F)``.

    Channel ``f * order + g`` holds feature ``f`` at orientation ``g``.

    Example:

    >>> x = np.arange(8.0).reshape(1, 8)  # 2 features, 4 orientations each
    >>> np.asarray(pool_orientations(x, 4, "max")).tolist()
    [[3.0, 7.0]]
    >>> np.asarray(pool_orientations(x, 4, "mean")).tolist()
    [[1.5, 5.5]]
    """
    shape = ops.shape(inputs)
    channels = int(inputs.shape[-1])
    grouped = ops.reshape(inputs, (*shape[:-1], channels // order, order))
    if reduction == "max":
        return ops.max(grouped, axis=-1)
    return ops.mean(grouped, axis=-1)


def _check_group(group: str) -> str:
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    return group


def _square_kernel(kernel_size) -> int:
    if isinstance(kernel_size, int | np.integer):
        size = int(kernel_size)
    else:
        pair = tuple(int(v) for v in kernel_size)
        if len(pair) != 2 or pair[0] != pair[1]:
            raise ValueError(f"kernel_size must be square (turns swap sides), got {kernel_size!r}")
        size = pair[0]
    if size < 1:
        raise ValueError(f"kernel_size must be a positive int, got {kernel_size!r}")
    return size


@keras.saving.register_keras_serializable(package="pixel_models")
class GroupConv2D(Convolution):
    """Group convolution over C4 or D4: one output per kernel orientation.

    Holds one kernel per (input, output) feature and convolves the input with
    all ``|G|`` transformed copies at once: the copies are gathered from the
    kernel with indices computed once in ``build()``
    (:func:`kernel_bank_indices`), then a single ``conv2d`` runs. The copies
    of a 3x3 kernel under D4 (columns: output orientations)::

        e      r      r2     r3     m      rm     r2m    r3m
        a b c  c f i  i h g  g d a  c b a  a d g  g h i  i f c
        d e f  b e h  f e d  h e b  f e d  b e h  d e f  h e b
        g h i  a d g  c b a  i f c  i h g  c f i  a b c  g d a

    Two input kinds:

    - ``"image"`` (lifting convolution): input ``(B, H, W, C)``, kernel
      ``(K, K, C, filters)``; orientation ``g`` of the output is the input
      correlated with the kernel acted on by ``g``.
    - ``"group"`` (group-to-group convolution): input is the output of a
      previous group convolution, ``(B, H, W, C * |G|)``; kernel
      ``(K, K, C, |G|, filters)``, and the copy for orientation ``g`` also has
      its input orientations permuted (``h`` reads the kernel's ``g^-1 h``).

    Output: ``(B, H', W', filters * |G|)``, channel ``f * |G| + g``. For
    every group element ``t``::

        layer(transform(x, t)) == transform_group_features(layer(x), t)

    (with ``transform`` = :func:`transform_images` for ``"image"`` input and
    :func:`transform_group_features` for ``"group"`` input), exactly up to
    float rounding, whenever the window grid is mirror symmetric on both axes
    (:func:`windows_are_symmetric`): for instance stride 1 with an odd kernel
    and ``"same"`` padding on any size, stride 2 with ``"same"`` padding and a
    3x3 kernel on odd sizes, ``"valid"`` with ``(size - K) % stride == 0``
    (even kernels included). Stride 2 with ``"same"`` padding on even sizes,
    and even kernels with ``"same"`` padding, break it (the grid is shifted
    by a pixel). Rotations need a square image to give the same shape back.

    Args:
      filters: number of output features (each has ``|G|`` orientations).
      kernel_size: int (or pair of equal ints): square kernel side.
      group: ``"C4"`` or ``"D4"``.
      input_kind: ``"image"`` or ``"group"``.
      strides: int, the same on both axes.
      padding: ``"same"`` or ``"valid"``.
      activation: Keras activation (pointwise, so equivariance is kept).
      use_bias: add one bias per output feature, shared by its orientations.
      kernel_initializer, bias_initializer: Keras initializers. The default
        ``he_normal`` is scaled by the kernel's fan-in, ``K * K * C`` or
        ``K * K * C * |G|``.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Example:

    >>> import numpy as np
    >>> layer = GroupConv2D(4, 3, group="D4")
    >>> tuple(layer(np.zeros((2, 8, 8, 1), "float32")).shape)
    (2, 8, 8, 32)
    >>> layer.count_params()  # 3 * 3 * 1 * 4 weights + 4 biases
    40

    References:
      Cohen, Welling. Group Equivariant Convolutional Networks. ICML 2016.
      https://arxiv.org/abs/1602.07576 (the groups p4 and p4m there are C4
      and D4 with translations). The paper's filter transformation is done
      here with one precomputed index table: the kernel is stored once and
      its copies gathered in every call.
    """

    def __init__(
        self,
        filters: int,
        kernel_size,
        group: str = "D4",
        input_kind: str = "image",
        strides: int = 1,
        padding: str = "same",
        activation=None,
        use_bias: bool = True,
        kernel_initializer="he_normal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(filters, use_bias, kernel_initializer, bias_initializer, **kwargs)
        if input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.strides = positive_int("strides", strides)
        self.kernel_size = _square_kernel(kernel_size)
        self.group = _check_group(group)
        self.input_kind = input_kind
        self.padding = padding
        self.activation = keras.activations.get(activation)
        self.order = group_table(self.group).order

    def _kernel_shape(self, in_channels: int) -> tuple[int, ...]:
        k = self.kernel_size
        if self.input_kind == "image":
            return (k, k, in_channels, self.filters)
        if in_channels % self.order:
            raise ValueError(
                f"a group input needs channels = features * {self.order}, got {in_channels}"
            )
        return (k, k, in_channels // self.order, self.order, self.filters)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError("the channel axis of the input must be known")
        kernel_shape = self._kernel_shape(int(in_channels))
        # A numpy constant (see MaskedConv2D.build).
        self.bank_indices = kernel_bank_indices(kernel_shape, self.group, self.input_kind)
        self.add_kernel_and_bias(kernel_shape)

    def kernel_bank(self):
        """The transformed copies of the kernel, as ``conv2d`` reads them."""
        return ops.take(ops.reshape(self.kernel, (-1,)), self.bank_indices)

    def _convolve(self, inputs):
        outputs = ops.conv(inputs, self.kernel_bank(), strides=self.strides, padding=self.padding)
        if self.use_bias:
            outputs = outputs + ops.repeat(self.bias, self.order)
        return outputs

    def call(self, inputs):
        return self.activation(self._convolve(inputs))

    def compute_output_shape(self, input_shape):
        height, width = (
            conv_output_size(size, self.kernel_size, self.strides, self.padding)
            for size in input_shape[1:3]
        )
        return (input_shape[0], height, width, self.filters * self.order)

    def get_config(self):
        return {**super().get_config(), **constructor_config(self, GroupConv2D)}


@keras.saving.register_keras_serializable(package="pixel_models")
class GroupPooling(keras.layers.Layer):
    """Max or mean over the orientations of group feature maps.

    Maps ``(B, H, W, F * |G|)`` (channel ``f * |G| + g``) to ``(B, H, W, F)``.
    The result no longer has orientations: transforming the input of the
    group convolutions by ``t`` only moves these features (``transform_images``),
    since ``t`` permutes the orientations that are pooled.

    Args:
      group: ``"C4"`` or ``"D4"``.
      reduction: ``"max"`` or ``"mean"``.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Example:

    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(1, 1, 1, 8)  # 2 features x 4 orientations
    >>> np.asarray(GroupPooling("C4")(x)).ravel().tolist()
    [3.0, 7.0]

    References:
      Cohen, Welling. Group Equivariant Convolutional Networks. ICML 2016.
      https://arxiv.org/abs/1602.07576 (pooling over orientations).
    """

    def __init__(self, group: str = "D4", reduction: str = "max", **kwargs):
        super().__init__(**kwargs)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.group = _check_group(group)
        self.reduction = reduction
        self.order = group_table(self.group).order

    def build(self, input_shape):
        if input_shape[-1] is None or int(input_shape[-1]) % self.order:
            raise ValueError(
                f"GroupPooling needs channels = features * {self.order}, got {input_shape[-1]}"
            )

    def call(self, inputs):
        return pool_orientations(inputs, self.order, self.reduction)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], int(input_shape[-1]) // self.order)

    def get_config(self):
        return {**super().get_config(), **constructor_config(self)}


@keras.saving.register_keras_serializable(package="pixel_models")
class InvariantConv2D(GroupConv2D):
    """Convolution with every rotated (and mirrored) kernel copy, pooled over copies.

    Computes ``activation(reduce_g(conv2d(x, act(kernel, g)) + bias))``: a
    lifting :class:`GroupConv2D` followed by :class:`GroupPooling`, in one
    layer. The output ``(B, H', W', filters)`` has no orientation axis, and
    for every element ``t`` of the group::

        layer(transform_images(x, t)) == transform_images(layer(x), t)

    (under the window conditions of :class:`GroupConv2D`), so a global
    spatial pooling after it is invariant. The activation comes after the
    pooling (for ``"max"`` and a monotone activation the order does not
    matter).

    Args:
      filters, kernel_size, group, strides, padding, activation, use_bias,
        kernel_initializer, bias_initializer: as :class:`GroupConv2D`
        (the input is always an image).
      reduction: ``"max"`` (as in the reference) or ``"mean"``.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Example:

    >>> import numpy as np
    >>> layer = InvariantConv2D(4, 3, group="C4")
    >>> tuple(layer(np.zeros((2, 8, 8, 3), "float32")).shape)
    (2, 8, 8, 4)

    References:
      Gao, Ji. Efficient and Invariant Convolutional Neural Networks for
      Dense Prediction. ICDM 2017. https://arxiv.org/abs/1711.09064
      Deviation: the copies are the exact grid symmetries C4 or D4, not
      45 degree ring shifts of 3x3 kernels or a set of flips that is not a
      group, so the invariance is exact.
    """

    def __init__(self, filters: int, kernel_size, group: str = "D4", reduction="max", **kwargs):
        if kwargs.pop("input_kind", "image") != "image":
            raise ValueError("InvariantConv2D takes images: its input_kind is always 'image'")
        super().__init__(filters, kernel_size, group=group, input_kind="image", **kwargs)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def call(self, inputs):
        pooled = pool_orientations(self._convolve(inputs), self.order, self.reduction)
        return self.activation(pooled)

    def compute_output_shape(self, input_shape):
        return (*super().compute_output_shape(input_shape)[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.pop("input_kind")
        config["reduction"] = self.reduction
        return config


@keras.saving.register_keras_serializable(package="pixel_models")
class GroupBatchNormalization(keras.layers.Layer):
    """Batch normalisation of group feature maps, one set of statistics per feature.

    The mean and variance of feature ``f`` are taken over the batch, the
    positions and all ``|G|`` orientations, and one scale and offset per
    feature is shared by its orientations; per-channel statistics would
    differ between orientations and break equivariance. Works on
    ``(B, H, W, F * |G|)`` by normalising the view ``(B * H * W, F, |G|)``
    with ``keras.layers.BatchNormalization(axis=-2)``. Transforming a whole batch
    leaves the statistics unchanged, so the layer is equivariant in training
    and in inference.

    Args:
      group: ``"C4"`` or ``"D4"``.
      momentum, epsilon, center, scale: as ``keras.layers.BatchNormalization``.
      **kwargs: forwarded to ``keras.layers.Layer``.

    Example:

    >>> import numpy as np
    >>> layer = GroupBatchNormalization("C4")
    >>> tuple(layer(np.ones((2, 4, 4, 12), "float32")).shape), layer.count_params()
    ((2, 4, 4, 12), 12)

    References:
      Cohen, Welling. Group Equivariant Convolutional Networks. ICML 2016.
      https://arxiv.org/abs/1602.07576 (one scale and offset per feature,
      shared by its orientations).
    """

    def __init__(
        self,
        group: str = "D4",
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.group = _check_group(group)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.order = group_table(self.group).order
        self.batch_norm = keras.layers.BatchNormalization(
            axis=-2,
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            dtype=self.dtype_policy,
            name="batch_norm",
        )

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or int(channels) % self.order:
            raise ValueError(
                f"GroupBatchNormalization needs channels = features * {self.order}, got {channels}"
            )
        self.batch_norm.build((None, int(channels) // self.order, self.order))

    def call(self, inputs, training=None):
        channels = int(inputs.shape[-1])
        grouped = ops.reshape(inputs, (-1, channels // self.order, self.order))
        normalised = self.batch_norm(grouped, training=training)
        return ops.reshape(normalised, ops.shape(inputs))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), **constructor_config(self)}
