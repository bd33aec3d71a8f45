"""Datasets in the form the models read: uint8 images of shape (H, W, C).

Binary datasets (``levels == 2``) hold pixel values in {0, 1}; 8-bit datasets
(``levels == 256``) hold values in 0..255; the coloured datasets hold values in
``0..color_levels - 1``. Real datasets come from ``tensorflow_datasets``;
``shapes`` and ``colored_shapes`` are drawn procedurally with numpy and need no
download, so they serve for tests and quick runs without network access.

Besides the names of ``DATASETS``, :func:`info` and :func:`load` take the
user's own images (see :mod:`pixel_models.own_data`): ``tfds:NAME`` for any
tensorflow-datasets image dataset, a folder of PNG/JPEG files, or a ``.npy`` /
``.npz`` array file.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from pixel_models.errors import first_line

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetInfo",
    "in_memory_bytes",
    "info",
    "load",
    "make_colored_shapes",
    "make_shapes",
    "pipeline",
    "resolve_data_dir",
    "rotate_images",
]

DATASETS: tuple[str, ...] = (
    "mnist",
    "binarized_mnist",
    "cifar10",
    "imagenet32",
    "imagenet64",
    "shapes",
    "colored_shapes",
    "colored_mnist",
    "rotated_mnist",
)
# The named datasets whose values per channel are ``color_levels``; the others
# have levels of their own.
COLOR_LEVEL_DATASETS: tuple[str, ...] = ("colored_shapes", "colored_mnist")
# tensorflow-datasets names, where they differ from ours, and the tfds split
# that serves as our "test" split.
_TFDS_NAMES = {
    "imagenet32": "downsampled_imagenet/32x32",
    "imagenet64": "downsampled_imagenet/64x64",
    "colored_mnist": "mnist",
}
# rotated_mnist, like MNIST-rot: 12000 training and 50000 test digits, each
# rotated by its own random angle. Train: the first 12000 MNIST training
# digits; test: the next 40000 training digits and the 10000 test digits.
_ROTATED_MNIST_TRAIN = 12_000
_ROTATED_MNIST_TEST_FROM_TRAIN = 40_000
_ROTATED_MNIST_KEY = 16_180
_TFDS_TEST_SPLITS = {"imagenet32": "validation", "imagenet64": "validation"}
# Datasets too large to keep decoded in memory.
_UNCACHED = frozenset({"imagenet32", "imagenet64"})
# Fixed keys of the colours of colored_mnist, so that the dataset is the same
# in every run whatever seed the run uses.
_COLORED_MNIST_KEYS = {"train": 31_415, "test": 27_182}
_DEFAULT_COLOR_LEVELS = 256

# Number of procedural images per split of the ``shapes`` dataset.
_SHAPES_SPLIT_SIZES = {"train": 20000, "test": 2000}
# Fixed seed for the one-off binarization of the MNIST test split, so that test
# likelihoods are comparable between runs whatever seed a run uses.
_MNIST_TEST_SEED = 20240601
_SHUFFLE_BUFFER = 10000
_MIN_IMAGE_SIZE = 4
_DEFAULT_PROCEDURAL_SIZE = 28
_MAX_SHAPES_PER_IMAGE = 3
# Images drawn at once by make_shapes; bounds the memory of the coordinate grids.
_SHAPES_CHUNK = 4096


# How long the one request that checks a download server may wait; without
# it, tensorflow-datasets retries an unreachable server for minutes.
_PROBE_SECONDS = 10.0

_TFDS_HINT = (
    "point --data_dir or TFDS_DATA_DIR at a folder of prepared tensorflow-datasets "
    "data, or use --data=shapes, which needs no download"
)


class DataError(ValueError):
    """A dataset cannot be loaded; the message is one line saying what to do."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset.

    Attributes:
        name: Dataset name, one of ``DATASETS``.
        image_shape: Image shape as (height, width, channels).
        levels: Number of distinct pixel values: 2 for binary, 256 for 8-bit.
        num_classes: Number of label classes, or None when there are no labels.
        splits: Names of the splits that ``load`` accepts.
        needs_download: Whether the data comes from tensorflow_datasets (False for
            procedural data, image folders and array files).
        memory_bytes: About how many bytes the user's own data takes in memory
            while a run holds it (see ``in_memory_bytes``); 0 for the named datasets.
    """

    name: str
    image_shape: tuple[int, int, int]
    levels: int
    num_classes: int | None
    splits: tuple[str, ...]
    needs_download: bool
    memory_bytes: int = 0


def info(
    name: str,
    image_size: int | None = None,
    color_levels: int = _DEFAULT_COLOR_LEVELS,
    *,
    data_dir: str | None = None,
    binarize: str = "none",
) -> DatasetInfo:
    """Describes a dataset without loading it.

    Args:
        name: Dataset name, one of ``DATASETS``, or the user's own images:
            ``tfds:NAME``, a folder of PNG/JPEG files or a ``.npy`` / ``.npz``
            file (see :mod:`pixel_models.own_data`; these are inspected once).
        image_size: Side length of procedural images (``shapes``,
            ``colored_shapes``; None: 28), at least 4; the user's own images are
            resized to it (None: they keep their own size).
        color_levels: Values per channel of the coloured datasets
            (``colored_shapes``, ``colored_mnist``) and of the user's own
            images, from 2 to 256.
        data_dir: Folder of prepared tensorflow_datasets data, for ``tfds:NAME``.
        binarize: For the user's own images: ``none``, ``threshold`` or
            ``stochastic`` (then ``levels`` is 2).

    Returns:
        The dataset's ``DatasetInfo``.

    Raises:
        DataError: If the name is unknown, an option is invalid, or the user's
            own images cannot be used (the message names the file and why).

    Example:

    >>> meta = info("shapes", image_size=8)
    >>> meta.image_shape, meta.levels, meta.num_classes, meta.splits, meta.needs_download
    ((8, 8, 1), 2, 3, ('train', 'test'), False)
    >>> info("cifar10").image_shape, info("colored_shapes", 8, color_levels=4).levels
    ((32, 32, 3), 4)
    """
    if name not in DATASETS:
        from pixel_models import own_data

        return own_data.info(
            name, image_size, color_levels, data_dir=resolve_data_dir(data_dir), binarize=binarize
        )
    if binarize != "none":
        raise DataError(
            f"binarize={binarize!r} applies to the user's own images (tfds:NAME, a folder, a "
            f".npy/.npz file), not to dataset {name!r}; e.g. use tfds:mnist with it"
        )
    meta = _named_info(name, image_size, color_levels)
    if name not in ("shapes", "colored_shapes") and image_size not in (None, meta.image_shape[0]):
        side = meta.image_shape[0]
        raise DataError(
            f"image_size={image_size} applies to shapes, colored_shapes and the user's own "
            f"images; {name} images are {side}x{side} (tfds:NAME reads a tensorflow-datasets "
            "dataset at any size)"
        )
    return meta


def _named_info(name: str, image_size: int | None, color_levels: int) -> DatasetInfo:
    """:func:`info` of a name of ``DATASETS``."""
    if name == "mnist":
        return DatasetInfo("mnist", (28, 28, 1), 2, 10, ("train", "test"), True)
    if name == "binarized_mnist":
        return DatasetInfo(
            "binarized_mnist", (28, 28, 1), 2, None, ("train", "validation", "test"), True
        )
    if name == "cifar10":
        return DatasetInfo("cifar10", (32, 32, 3), 256, 10, ("train", "test"), True)
    if name in ("imagenet32", "imagenet64"):
        size = int(name[len("imagenet") :])
        return DatasetInfo(name, (size, size, 3), 256, None, ("train", "test"), True)
    if name in ("shapes", "colored_shapes"):
        size = _procedural_size(image_size)
        if name == "shapes":
            # Labelled by the number of shapes drawn: 1, 2 or 3 (classes 0, 1, 2).
            return DatasetInfo("shapes", (size, size, 1), 2, 3, ("train", "test"), False)
        levels = _check_color_levels(color_levels)
        return DatasetInfo(name, (size, size, 3), levels, None, ("train", "test"), False)
    if name == "colored_mnist":
        levels = _check_color_levels(color_levels)
        return DatasetInfo(name, (28, 28, 3), levels, 10, ("train", "test"), True)
    if name == "rotated_mnist":
        return DatasetInfo(name, (28, 28, 1), 256, 10, ("train", "test"), True)
    raise AssertionError(name)  # every name of DATASETS is described above


def in_memory_bytes(meta: DatasetInfo) -> int:
    """About how many bytes the train and test splits of a dataset take in
    memory while a run holds them: procedural data while it is drawn and held,
    the user's own images decoded (``meta.memory_bytes``); 0 for the named
    tfds datasets, whose decoded images are small or read from their files.

    Example:

    >>> in_memory_bytes(info("shapes", image_size=8)) > 22000 * 64
    True
    >>> in_memory_bytes(info("mnist"))
    0
    """
    if meta.name not in ("shapes", "colored_shapes"):
        return meta.memory_bytes
    images = sum(_SHAPES_SPLIT_SIZES.values())
    # The uint8 images and the dataset's copy of them, and the float64
    # masks of one chunk while shapes are drawn.
    dims = int(np.prod(meta.image_shape))
    return 2 * images * dims + 4 * 8 * min(images, _SHAPES_CHUNK) * dims


def resolve_data_dir(data_dir: str | None) -> str | None:
    """Chooses the tensorflow_datasets data folder.

    Args:
        data_dir: An explicit folder; None or empty to fall back on the environment.

    Returns:
        ``data_dir`` when given, else the ``TFDS_DATA_DIR`` environment variable when
        set and non-empty, else None (the tensorflow_datasets default folder).

    Example:

    >>> from unittest import mock
    >>> resolve_data_dir("/data/tfds")
    '/data/tfds'
    >>> with mock.patch.dict(os.environ, {"TFDS_DATA_DIR": "/env/tfds"}):
    ...     resolve_data_dir(None), resolve_data_dir("")
    ('/env/tfds', '/env/tfds')
    >>> with mock.patch.dict(os.environ, {"TFDS_DATA_DIR": ""}):
    ...     print(resolve_data_dir(None))
    None
    """
    if data_dir:
        return data_dir
    env = os.environ.get("TFDS_DATA_DIR")
    return env or None


def load(
    name: str,
    split: str = "train",
    *,
    data_dir: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    with_labels: bool = False,
    num_examples: int | None = None,
    color_levels: int = _DEFAULT_COLOR_LEVELS,
    binarize: str = "none",
) -> tf.data.Dataset:
    """Loads one split of a dataset as a finite, unbatched ``tf.data.Dataset``.

    MNIST is binarized stochastically (a pixel becomes 1 with probability
    pixel / 255): the train split draws fresh noise on every pass through the data,
    reproducibly from ``seed``; the test split is binarized once with a fixed seed.
    ``colored_mnist`` paints each digit in a random colour on a random background
    colour (fixed per image, the same in every run) and quantizes the result to
    ``color_levels`` values per channel. ``colored_shapes`` draws two layers of
    ``shapes``, each in one random colour, over a random background colour. The
    downsampled ImageNet datasets use tfds's ``validation`` split as ``test``.
    ``rotated_mnist`` (8-bit, like MNIST-rot) rotates each MNIST digit about the
    image centre by its own angle, uniform in [0, 360) degrees, with bilinear
    interpolation; the angles are fixed (the same in every run). Its 12000
    training digits are the first 12000 of MNIST's train split; its 50000 test
    digits are the next 40000 of the train split and the 10000 of the test split.
    The user's own images (``tfds:NAME``, a folder, a ``.npy`` / ``.npz`` file)
    are read as :mod:`pixel_models.own_data` says.

    Args:
        name: Dataset name, one of ``DATASETS``, ``tfds:NAME``, a folder of
            PNG/JPEG files or a ``.npy`` / ``.npz`` file.
        split: Split name, one of ``info(name).splits``.
        data_dir: Folder of prepared tensorflow_datasets data; see ``resolve_data_dir``.
        image_size: Side length of procedural images (``shapes``, ``colored_shapes``;
            None: 28); the user's own images are resized to it (None: own size).
        seed: Seed for procedural data and for the MNIST train binarization (and
            the stochastic binarization of the user's own training images).
        with_labels: Whether to yield (image, label) pairs with int32 labels.
        num_examples: If given, keep only the first ``num_examples`` examples.
        color_levels: Values per channel of ``colored_shapes``, ``colored_mnist``
            and the user's own images.
        binarize: For the user's own images: ``none``, ``threshold`` or ``stochastic``.

    Returns:
        A dataset of uint8 images of shape (H, W, C), or of (image, label) tuples.

    Raises:
        DataError: If the dataset, split or options are invalid, or the data cannot
            be loaded.

    Example:

    The procedural ``shapes`` dataset needs no download:

    >>> ds = load("shapes", "test", image_size=8, num_examples=2, with_labels=True)
    >>> [(tuple(image.shape), image.dtype.name, int(label) in (0, 1, 2)) for image, label in ds]
    [((8, 8, 1), 'uint8', True), ((8, 8, 1), 'uint8', True)]
    >>> image = next(iter(load("shapes", "test", image_size=8, num_examples=1)))
    >>> sorted(np.unique(image).tolist())
    [0, 1]
    """
    meta = info(name, image_size, color_levels, data_dir=data_dir, binarize=binarize)
    if split not in meta.splits:
        raise DataError(
            f"unknown split {split!r} for dataset {name!r}: choose one of {', '.join(meta.splits)}"
        )
    if with_labels and meta.num_classes is None:
        raise DataError(f"dataset {name!r} has no labels: load it with with_labels=False")
    if num_examples is not None and num_examples < 0:
        raise DataError(f"num_examples must be >= 0 or None, got {num_examples}")

    if name not in DATASETS:
        from pixel_models import own_data

        return own_data.load(
            name,
            split,
            meta,
            data_dir=resolve_data_dir(data_dir),
            image_size=image_size,
            seed=seed,
            with_labels=with_labels,
            num_examples=num_examples,
            binarize=binarize,
        )
    if name in ("shapes", "colored_shapes"):
        count = _SHAPES_SPLIT_SIZES[split]
        if num_examples is not None:
            count = min(count, num_examples)
        split_seed = seed * 2 + (0 if split == "train" else 1)
        size = meta.image_shape[0]
        if name == "shapes":
            images, counts = make_shapes(
                _SHAPES_SPLIT_SIZES[split], size, split_seed, return_counts=True
            )
            if with_labels:  # the class is the number of shapes drawn, minus one
                return tf.data.Dataset.from_tensor_slices((images[:count], counts[:count] - 1))
        else:
            images = make_colored_shapes(_SHAPES_SPLIT_SIZES[split], size, split_seed, meta.levels)
        return tf.data.Dataset.from_tensor_slices(images[:count])

    if name == "rotated_mnist":
        # Rotated once, then kept in memory: later passes skip the rotations.
        return _rotated_mnist(split, data_dir, with_labels, num_examples).cache()
    tfds_split = _TFDS_TEST_SPLITS.get(name, "test") if split == "test" else split
    raw = _tfds_dataset(_TFDS_NAMES.get(name, name), tfds_split, data_dir)
    if num_examples is not None:
        raw = raw.take(num_examples)

    if name == "mnist":  # caches the decoded digits itself, before the per-pass binarization
        return _binarize_mnist(raw, split, seed, with_labels)
    if name == "colored_mnist":
        return _color_mnist(raw, split, meta.levels, with_labels).cache()
    if with_labels:
        ds = raw.map(_image_and_label, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = raw.map(_image_only, num_parallel_calls=tf.data.AUTOTUNE)
    # Decoded images stay in memory after the first pass, except for the
    # downsampled ImageNets (4 and 15 GB decoded), read from disk every pass.
    return ds if name in _UNCACHED else ds.cache()


def make_shapes(
    num: int, size: int, seed: int, return_counts: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Draws binary images of random filled shapes.

    Each image holds 1 to 3 shapes, each an axis-aligned rectangle, an ellipse or a
    triangle of random size and position, drawn by testing pixel centres against the
    shape on a coordinate grid.

    Args:
        num: Number of images.
        size: Image side length in pixels; at least 4.
        seed: Seed for ``np.random.default_rng``; equal seeds give equal images.
        return_counts: Also return how many shapes each image holds (shapes
            may overlap, so this is the number drawn, not always the number
            one can see). The images do not depend on this argument.

    Returns:
        A uint8 array of shape (num, size, size, 1) with values in {0, 1};
        with ``return_counts``, also an int32 array (num,) of counts in {1, 2, 3}.

    Example:

    >>> images, counts = make_shapes(4, 8, seed=0, return_counts=True)
    >>> images.shape, sorted(set(counts.tolist()) - {1, 2, 3})
    ((4, 8, 8, 1), [])

    Raises:
        DataError: If ``size`` is below 4 or ``num`` is negative.
    """
    _check_image_size(size)
    if num < 0:
        raise DataError(f"num must be >= 0, got {num}")
    rng = np.random.default_rng(seed)
    slots = (num, _MAX_SHAPES_PER_IMAGE)
    lo = max(2.0, 0.15 * size)
    hi = min(float(size), max(lo + 1.0, 0.6 * size))
    count = rng.integers(1, _MAX_SHAPES_PER_IMAGE + 1, size=num)
    kind = rng.integers(0, 3, size=slots)
    width = rng.uniform(lo, hi, size=slots)
    height = rng.uniform(lo, hi, size=slots)
    left = rng.uniform(0.0, 1.0, size=slots) * (size - width)
    top = rng.uniform(0.0, 1.0, size=slots) * (size - height)
    apex = rng.uniform(0.0, 1.0, size=slots)
    orientation = rng.integers(0, 4, size=slots)

    coords = np.arange(size, dtype=np.float32) + 0.5
    ys = coords[:, None]
    xs = coords[None, :]
    out = np.zeros((num, size, size), dtype=bool)
    for start in range(0, num, _SHAPES_CHUNK):
        stop = min(start + _SHAPES_CHUNK, num)
        for slot in range(_MAX_SHAPES_PER_IMAGE):
            for k, draw in enumerate((_rectangle_masks, _ellipse_masks, _triangle_masks)):
                idx = (
                    start
                    + np.nonzero((count[start:stop] > slot) & (kind[start:stop, slot] == k))[0]
                )
                if idx.size == 0:
                    continue
                args = [_Boxes(*(a[idx, slot] for a in (left, top, width, height)))]
                if draw is _triangle_masks:
                    args += [apex[idx, slot], orientation[idx, slot]]
                out[idx] |= draw(ys, xs, *args)
    images = out.astype(np.uint8)[..., None]
    return (images, count.astype(np.int32)) if return_counts else images


def make_colored_shapes(num: int, size: int, seed: int, levels: int = 256) -> np.ndarray:
    """Draws RGB images of coloured shapes on coloured backgrounds.

    Each image has a random background colour and two layers of
    :func:`make_shapes` shapes drawn over it, each layer in one random colour
    (the second covers the first where they overlap). Colours are uniform over
    the ``levels ** 3`` possible ones.

    Args:
        num: Number of images.
        size: Image side length in pixels; at least 4.
        seed: Seed; equal seeds give equal images.
        levels: Values per channel, from 2 to 256.

    Returns:
        A uint8 array of shape (num, size, size, 3) with values in ``[0, levels)``.

    Example:

    >>> images = make_colored_shapes(2, 8, seed=0, levels=4)
    >>> images.shape, int(images.max()) < 4
    ((2, 8, 8, 3), True)
    """
    levels = _check_color_levels(levels)
    rng = np.random.default_rng(seed)
    layer_seeds = rng.integers(0, 2**31, size=2)
    colors = rng.integers(0, levels, size=(3, num, 1, 1, 3), dtype=np.uint8)
    images = np.broadcast_to(colors[0], (num, size, size, 3))
    for layer, layer_seed in enumerate(layer_seeds):
        mask = make_shapes(num, size, int(layer_seed)).astype(bool)
        images = np.where(mask, colors[layer + 1], images)
    return np.ascontiguousarray(images, dtype=np.uint8)


def pipeline(
    ds: tf.data.Dataset,
    batch_size: int,
    *,
    training: bool,
    seed: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches a dataset for training or evaluation.

    Args:
        ds: An unbatched dataset, e.g. from ``load``.
        batch_size: Examples per batch.
        training: If True, shuffle (reshuffling on every pass) and repeat forever;
            if False, make a single pass in order.
        seed: Shuffle seed (training only); None for an unseeded shuffle.
        drop_remainder: Whether to drop a last, smaller batch.

    Returns:
        The batched, prefetched dataset.

    Example:

    >>> images = load("shapes", "test", image_size=8, num_examples=5)
    >>> [len(batch) for batch in pipeline(images, 2, training=False)]
    [2, 2, 1]
    >>> train = pipeline(images, 2, training=True, seed=0, drop_remainder=True)
    >>> [tuple(batch.shape) for batch in train.take(4)]  # repeats forever
    [(2, 8, 8, 1), (2, 8, 8, 1), (2, 8, 8, 1), (2, 8, 8, 1)]
    """
    if training:
        ds = ds.shuffle(_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


def _check_color_levels(levels: int) -> int:
    """Returns ``levels`` as an int, or raises DataError unless it is in [2, 256]."""
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)):
        raise DataError(f"color_levels must be an integer from 2 to 256, got {levels!r}")
    if not 2 <= levels <= 256:
        raise DataError(f"color_levels must be from 2 to 256, got {levels}")
    return int(levels)


def _procedural_size(image_size: int | None) -> int:
    """The side of procedural images: ``image_size``, or 28 when None."""
    if image_size is None:
        return _DEFAULT_PROCEDURAL_SIZE
    _check_image_size(image_size)
    return int(image_size)


def _check_image_size(image_size: int) -> None:
    """Raises DataError unless ``image_size`` is an integer of at least 4."""
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise DataError(f"image_size must be an integer >= {_MIN_IMAGE_SIZE}, got {image_size!r}")
    if image_size < _MIN_IMAGE_SIZE:
        raise DataError(f"image_size must be >= {_MIN_IMAGE_SIZE}, got {image_size}")


class _Boxes(NamedTuple):
    """``n`` bounding boxes, each field an array ``(n,)`` (or ``(n, 1, 1)``)."""

    left: np.ndarray
    top: np.ndarray
    width: np.ndarray
    height: np.ndarray

    def per_mask(self) -> _Boxes:
        """The boxes with fields ``(n, 1, 1)``, to broadcast against the pixel grid."""
        return _Boxes(*(v[:, None, None] for v in self))


def _rectangle_masks(ys: np.ndarray, xs: np.ndarray, boxes: _Boxes) -> np.ndarray:
    """Masks (n, H, W) of rectangles; ``ys`` (H, 1) and ``xs`` (1, W) are pixel centres."""
    left, top, width, height = boxes.per_mask()
    return (xs >= left) & (xs < left + width) & (ys >= top) & (ys < top + height)


def _ellipse_masks(ys: np.ndarray, xs: np.ndarray, boxes: _Boxes) -> np.ndarray:
    """Masks (n, H, W) of the ellipses inscribed in the given bounding boxes."""
    left, top, width, height = boxes.per_mask()
    rx = width / 2
    ry = height / 2
    return ((xs - (left + rx)) / rx) ** 2 + ((ys - (top + ry)) / ry) ** 2 <= 1.0


def _triangle_masks(
    ys: np.ndarray, xs: np.ndarray, boxes: _Boxes, apex: np.ndarray, orientation: np.ndarray
) -> np.ndarray:
    """Masks (n, H, W) of triangles filling the given bounding boxes.

    One side of each triangle is a whole side of its box; the opposite vertex lies on
    the opposite side at fraction ``apex`` along it. ``orientation`` 0..3 puts that
    vertex on the top, bottom, left or right side.
    """
    left, top, width, height = boxes
    right = left + width
    bottom = top + height
    ax = left + apex * width
    ay = top + apex * height
    # Vertices per orientation: apex first, then the two ends of the full side.
    vertices = [
        ((ax, top), (left, bottom), (right, bottom)),
        ((ax, bottom), (left, top), (right, top)),
        ((left, ay), (right, top), (right, bottom)),
        ((right, ay), (left, top), (left, bottom)),
    ]
    px = np.zeros((3, orientation.size))
    py = np.zeros((3, orientation.size))
    for o, corners in enumerate(vertices):
        sel = orientation == o
        for i, (vx, vy) in enumerate(corners):
            px[i, sel] = vx[sel]
            py[i, sel] = vy[sel]
    px = px[:, :, None, None]
    py = py[:, :, None, None]
    edges = [
        (px[j] - px[i]) * (ys - py[i]) - (py[j] - py[i]) * (xs - px[i])
        for i, j in ((0, 1), (1, 2), (2, 0))
    ]
    nonneg = (edges[0] >= 0) & (edges[1] >= 0) & (edges[2] >= 0)
    nonpos = (edges[0] <= 0) & (edges[1] <= 0) & (edges[2] <= 0)
    return nonneg | nonpos


def _tfds_builder(name: str, data_dir: str | None):
    """Opens a tensorflow_datasets builder, preparing (downloading) its data when
    it is not prepared yet."""
    root = resolve_data_dir(data_dir)
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(name, data_dir=root)
    except Exception as exc:
        raise DataError(
            f"cannot load dataset {name!r}: tensorflow-datasets could not open it "
            f"({first_line(exc, with_type=True)}); {_TFDS_HINT}"
        ) from exc
    if not builder.is_prepared():
        where = root if root is not None else str(builder.data_dir)
        unreachable = _unreachable(_download_urls(builder))
        if unreachable is not None:
            raise DataError(
                f"cannot load dataset {name!r}: it is not prepared in {where} and its "
                f"download server {unreachable}; {_TFDS_HINT}"
            )
        try:
            builder.download_and_prepare()
        except Exception as exc:
            raise DataError(
                f"cannot load dataset {name!r}: it is not prepared in {where} and could not "
                f"be downloaded ({first_line(exc, with_type=True)}); {_TFDS_HINT}"
            ) from exc
    return builder


def _download_urls(builder) -> list[str]:
    """The files a tensorflow_datasets builder downloads, as its checksums list
    them (empty when it lists none)."""
    try:
        return sorted(builder.url_infos or {})
    except Exception:  # a builder without a checksums file
        return []


def _unreachable(urls: list[str]) -> str | None:
    """``"<host> cannot be reached (<error>)"`` when one request, without
    retries, to the first of ``urls`` gets no answer at all; else None (any
    answer, even an HTTP error, leaves the download to say more)."""
    if not urls:
        return None
    try:
        import requests
    except ImportError:
        return None
    url = urls[0]
    try:
        requests.head(url, timeout=_PROBE_SECONDS, allow_redirects=False).close()
    except requests.RequestException as exc:
        host = urllib.parse.urlsplit(url).netloc or url
        return f"{host} cannot be reached ({type(exc).__name__})"
    return None


def _tfds_dataset(name: str, split: str, data_dir: str | None, builder=None) -> tf.data.Dataset:
    """Reads a prepared tensorflow_datasets split, downloading it when possible."""
    if builder is None:
        builder = _tfds_builder(name, data_dir)
    try:
        return builder.as_dataset(split=split, shuffle_files=False)
    except Exception as exc:
        raise DataError(
            f"cannot load dataset {name!r}: reading split {split!r} failed "
            f"({first_line(exc, with_type=True)}); {_TFDS_HINT}"
        ) from exc


def _image_only(example: dict[str, tf.Tensor]) -> tf.Tensor:
    """Picks the uint8 image out of a tensorflow_datasets example."""
    return tf.cast(example["image"], tf.uint8)


def _image_and_label(example: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """Picks the uint8 image and the int32 label out of a tensorflow_datasets example."""
    return tf.cast(example["image"], tf.uint8), tf.cast(example["label"], tf.int32)


def _bernoulli(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Sets each pixel to 1 with probability pixel / 255, using a stateless seed."""
    prob = tf.cast(image, tf.float32) / 255.0
    noise = tf.random.stateless_uniform(tf.shape(image), seed=seed, dtype=tf.float32)
    return tf.cast(noise < prob, tf.uint8)


def rotate_images(images, angles) -> tf.Tensor:
    """Rotates ``(N, H, W, C)`` images counter-clockwise by ``angles`` radians.

    About the image centre, with bilinear interpolation and zeros where the
    rotated image leaves the frame. A quarter turn moves pixels exactly as
    ``np.rot90`` does.

    Example:

    >>> import numpy as np
    >>> image = np.zeros((1, 4, 4, 1), np.float32)
    >>> image[0, 0, 1, 0] = 1.0
    >>> turned = rotate_images(image, np.array([np.pi / 2], np.float32))
    >>> np.argwhere(turned.numpy()[0, ..., 0] > 0.5).tolist()
    [[2, 0]]
    """
    images = tf.convert_to_tensor(images, tf.float32)
    angles = tf.convert_to_tensor(angles, tf.float32)
    height, width = images.shape[1], images.shape[2]
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    cos, sin = tf.cos(angles), tf.sin(angles)
    # Output pixel (x, y) reads the input at
    # (cos (x - cx) - sin (y - cy) + cx, sin (x - cx) + cos (y - cy) + cy).
    zeros = tf.zeros_like(angles)
    transforms = tf.stack(
        [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zeros, zeros],
        axis=1,
    )
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=[height, width],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def _rotated_mnist(
    split: str, data_dir: str | None, with_labels: bool, num_examples: int | None
) -> tf.data.Dataset:
    """The rotated MNIST splits (see ``load``)."""
    train = _tfds_dataset("mnist", "train", data_dir)
    if split == "train":
        raw = train.take(_ROTATED_MNIST_TRAIN)
    else:
        rest = train.skip(_ROTATED_MNIST_TRAIN).take(_ROTATED_MNIST_TEST_FROM_TRAIN)
        raw = rest.concatenate(_tfds_dataset("mnist", "test", data_dir))
    if num_examples is not None:
        raw = raw.take(num_examples)
    offset = 0 if split == "train" else _ROTATED_MNIST_TRAIN

    def turn(index, example):
        image, label = _image_and_label(example)
        seed = tf.stack([tf.constant(_ROTATED_MNIST_KEY, tf.int64), index + offset])
        angle = tf.random.stateless_uniform([1], seed=seed, maxval=2.0 * np.pi)
        rotated = rotate_images(tf.cast(image, tf.float32)[None], angle)[0]
        rotated = tf.cast(tf.clip_by_value(tf.round(rotated), 0.0, 255.0), tf.uint8)
        return (rotated, label) if with_labels else rotated

    return raw.enumerate().map(turn, num_parallel_calls=tf.data.AUTOTUNE)


def _color_mnist(
    raw: tf.data.Dataset, split: str, levels: int, with_labels: bool
) -> tf.data.Dataset:
    """Paints MNIST digits in a random colour over a random background colour.

    The colours of image ``k`` come from a stateless draw keyed by ``k`` and the
    split, so the dataset is identical in every run. The foreground differs from
    the background by at least a quarter of the range in every channel
    (cyclically), so that every digit stays visible.
    """
    key = _COLORED_MNIST_KEYS[split]

    def paint(index, example):
        image, label = _image_and_label(example)
        seed = tf.stack([tf.constant(key, tf.int64), index])
        draws = tf.random.stateless_uniform([2, 3], seed=seed, dtype=tf.float32)
        background = draws[0]
        foreground = tf.math.floormod(background + 0.25 + 0.5 * draws[1], 1.0)
        alpha = tf.cast(image, tf.float32) / 255.0  # (28, 28, 1)
        value = background * (1.0 - alpha) + foreground * alpha  # (28, 28, 3)
        colored = tf.cast(tf.round(value * (levels - 1)), tf.uint8)
        return (colored, label) if with_labels else colored

    return raw.enumerate().map(paint, num_parallel_calls=tf.data.AUTOTUNE)


def _binarize_mnist(
    raw: tf.data.Dataset, split: str, seed: int, with_labels: bool
) -> tf.data.Dataset:
    """Binarizes MNIST stochastically: fresh draws per pass for train, fixed for test."""
    pairs = raw.map(_image_and_label, num_parallel_calls=tf.data.AUTOTUNE)

    def finish(image: tf.Tensor, label: tf.Tensor, key: tf.Tensor):
        binary = _bernoulli(image, key)
        return (binary, label) if with_labels else binary

    if split == "train":
        # Cache the raw images, then draw the noise after the cache: the random
        # dataset yields a new, seed-determined sequence on every iteration, so a
        # repeated dataset sees new binarizations each epoch.
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        keyed = tf.data.Dataset.zip(pairs.cache(), draws)

        def train_map(pair, draw):
            key = tf.stack([draw, tf.constant(0, tf.int64)])
            return finish(pair[0], pair[1], key)

        return keyed.map(train_map, num_parallel_calls=tf.data.AUTOTUNE)

    def test_map(index, pair):
        key = tf.stack([tf.constant(_MNIST_TEST_SEED, tf.int64), index])
        return finish(pair[0], pair[1], key)

    return pairs.enumerate().map(test_map, num_parallel_calls=tf.data.AUTOTUNE)
