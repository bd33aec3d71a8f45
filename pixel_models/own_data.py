"""The user's own images as datasets of the zoo.

Three sources, each inspected once (shape, channels, value range, labels)
and refused in one line naming the file when it does not fit:

- ``tfds:NAME`` (also ``tfds:NAME/CONFIG``, ``tfds:NAME:VERSION``): any
  tensorflow-datasets image dataset, read from the prepared data folder
  (downloaded there when possible). Its ``image`` feature (or its only image
  feature), its ``label`` feature (or its only class-label feature) when it
  has one; its ``train`` split, and its ``test`` split (else ``validation``,
  else the last tenth of ``train`` held out).
- A folder of PNG and JPEG files, searched recursively. When every image lies
  in a subfolder, the subfolder directly below the folder is its class (the
  classes numbered in the sorted order of their names). A fixed tenth of the
  images (the same in every run) is held out as the test split.
- A ``.npy`` file of images, or a ``.npz`` file with an ``images`` (or ``x``)
  array, or only one array, and optional integer ``labels`` (or ``y``). The
  images have shape ``(N, H, W)`` or ``(N, H, W, C)`` with ``C`` 1 (grey) or
  3 (RGB), and are integers in ``[0, 255]`` or floats in ``[0, 1]`` or
  ``[0, 255]``. A tenth is held out as for a folder.

The pixels are then brought to one form, in this order:

1. **Size.** With ``image_size``, every image is cropped to its central
   square and resized (bilinear, antialiased) to ``image_size`` x
   ``image_size``; without it, all images must have one size, kept as is.
2. **Values.** Images whose values are all 0 or 1 (and folders of 1-bit
   images) are binary data already: their levels are 2. Otherwise a pixel
   value :math:`v \\in [0, 255]` becomes :math:`\\mathrm{round}(v (L - 1) / 255)`
   for ``color_levels`` :math:`L` (256: unchanged).
3. **Binarization** (``binarize``, levels 2): ``threshold`` sets a value to 1
   when :math:`v \\ge 128`; ``stochastic`` sets it to 1 with probability
   :math:`v / 255`, with fresh draws on every pass through the training
   split (reproducibly from the seed) and one fixed draw for the test split.

Decoded images of folders and array files are held in memory (counted by
:func:`pixel_models.data.in_memory_bytes`); so are those of a tfds dataset
when they take less than 4 GiB at the run's size.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from pixel_models import data
from pixel_models.data import DataError, DatasetInfo
from pixel_models.errors import first_line

__all__ = ["BINARIZE", "IMAGE_SUFFIXES", "TEST_FRACTION", "TFDS_PREFIX", "info", "kind_of", "load"]

TFDS_PREFIX = "tfds:"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_ARRAY_SUFFIXES = (".npy", ".npz")
# The most classes labels may name: labels are class numbers 0..K-1.
MAX_CLASSES = 100_000
BINARIZE = ("none", "threshold", "stochastic")
# The share of a dataset's images held out as its test split, when it has none.
TEST_FRACTION = 0.1
_SPLITS = ("train", "test")
# Fixed keys: the held-out images and the test split's stochastic
# binarization are the same in every run, whatever seed the run uses.
_HOLDOUT_KEY = 27_644
_TEST_BINARIZATION_KEY = 43_758
# Examples of a tfds dataset read to find its value range.
_TFDS_PROBE = 256
# A tfds dataset whose decoded images take more is read from its files each pass.
_TFDS_CACHE_LIMIT = 4 * 2**30
_GREY_MODES = frozenset({"1", "L", "LA"})
_COLOUR_MODES = frozenset({"RGB", "RGBA", "CMYK", "YCbCr"})
_PALETTE_MODES = frozenset({"P", "PA"})
_NPZ_IMAGE_KEYS = ("images", "x")
_NPZ_LABEL_KEYS = ("labels", "y")


@dataclasses.dataclass(frozen=True)
class _Source:
    """What one inspection found: where the images are, their form, labels."""

    kind: str  # "tfds", "folder" or "array"
    where: str  # the tfds name, the folder, or the array file
    image_shape: tuple[int, int, int]  # after resizing
    binary: bool  # values all 0 or 1 (read as 0 and 255)
    num_classes: int | None
    memory_bytes: int
    # Folders: the image files, and their labels (empty when unlabelled).
    files: tuple[str, ...] = ()
    labels: tuple[int, ...] = ()
    # Arrays: the npz keys of images and labels ("" for a .npy / no labels).
    image_key: str = ""
    label_key: str = ""
    # tfds: the image and label features ("" for none), the tfds split of each
    # of our splits, whether decoded images are cached.
    image_feature: str = ""
    label_feature: str = ""
    tfds_splits: tuple[tuple[str, str], ...] = ()
    cached: bool = True
    # Side to resize to (0: keep the images' own size).
    resize_to: int = 0
    # Folders and arrays: the modification time and size of their files, so
    # that files written again are decoded again.
    stamp: tuple = ()


def kind_of(spec: str) -> str:
    """Which source ``spec`` names: ``tfds``, ``folder`` or ``array``.

    Raises:
        DataError: If it names none of them.

    Example:

    >>> kind_of("tfds:fashion_mnist"), kind_of(".")
    ('tfds', 'folder')
    """
    if spec.startswith(TFDS_PREFIX):
        if not spec[len(TFDS_PREFIX) :]:
            raise DataError("tfds: needs a tensorflow-datasets name, e.g. tfds:fashion_mnist")
        return "tfds"
    if os.path.isdir(spec):
        return "folder"
    if os.path.isfile(spec) and spec.lower().endswith(IMAGE_SUFFIXES):
        raise DataError(f"{spec} is one image: give the folder that holds the images (at least 2)")
    if spec.lower().endswith(_ARRAY_SUFFIXES):
        if not os.path.isfile(spec):
            raise DataError(f"cannot read {spec}: no such file")
        return "array"
    raise DataError(
        f"unknown dataset {spec!r}: choose one of {', '.join(data.DATASETS)}, tfds:NAME (a "
        "tensorflow-datasets image dataset), a folder of PNG/JPEG images or a .npy/.npz file"
    )


def info(
    spec: str,
    image_size: int | None,
    color_levels: int,
    *,
    data_dir: str | None,
    binarize: str,
) -> DatasetInfo:
    """The ``DatasetInfo`` of the user's own images (see the module's text).

    Raises:
        DataError: If the images cannot be used; the message names the file.
    """
    source = _inspect(spec, image_size, data_dir)
    levels = _levels(source, color_levels, binarize)
    return DatasetInfo(
        name=spec,
        image_shape=source.image_shape,
        levels=levels,
        num_classes=source.num_classes,
        splits=_SPLITS,
        needs_download=source.kind == "tfds",
        memory_bytes=source.memory_bytes,
    )


def load(
    spec: str,
    split: str,
    meta: DatasetInfo,
    *,
    data_dir: str | None,
    image_size: int | None,
    seed: int,
    with_labels: bool,
    num_examples: int | None,
    binarize: str,
) -> tf.data.Dataset:
    """One split of the user's own images, as :func:`pixel_models.data.load`
    returns it (``meta`` from :func:`info`, split and options checked)."""
    source = _inspect(spec, image_size, data_dir)
    if source.kind == "tfds":
        pairs = _tfds_pairs(source, split, data_dir, num_examples)
    else:
        images, labels = _held_split(source, split)
        if num_examples is not None:
            images, labels = images[:num_examples], labels[:num_examples]
        pairs = tf.data.Dataset.from_tensor_slices((images, labels))
    return _finish(pairs, meta.levels, binarize, split, seed, with_labels)


# --- inspection ---------------------------------------------------------------------------------


def _inspect(spec: str, image_size: int | None, data_dir: str | None) -> _Source:
    """Inspects a source once per process (again when its files change)."""
    if image_size is not None:
        data._check_image_size(image_size)
        image_size = int(image_size)
    kind = kind_of(spec)
    if kind == "tfds":
        return _inspect_tfds(spec[len(TFDS_PREFIX) :], data_dir, image_size)
    if kind == "folder":
        files = _image_files(spec)
        stamp = tuple((f, *_stamp(f)) for f in files)
        return _inspect_folder(os.path.abspath(spec), spec, stamp, image_size)
    return _inspect_array(os.path.abspath(spec), spec, _stamp(spec), image_size)


def _stamp(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


def _levels(source: _Source, color_levels: int, binarize: str) -> int:
    if binarize not in BINARIZE:
        raise DataError(f"binarize must be one of {', '.join(BINARIZE)}, got {binarize!r}")
    levels = data._check_color_levels(color_levels)
    if binarize != "none" or source.binary:
        return 2
    return levels


def _target(shape: tuple[int, int], image_size: int | None) -> tuple[int, int]:
    return shape if image_size is None else (image_size, image_size)


def _held_out(count: int, where: str) -> int:
    """How many of ``count`` images are held out as the test split."""
    if count < 2:
        raise DataError(
            f"{where} holds {count} image{'s' if count != 1 else ''}: at least 2 are needed, "
            f"a tenth of them (at least one) held out as the test split"
        )
    return min(count - 1, max(1, round(TEST_FRACTION * count)))


def _image_files(folder: str) -> list[str]:
    """The PNG and JPEG files below ``folder``, in sorted order."""
    found = []
    seen = set()  # real paths of the folders walked: a link back up is walked once
    for root, dirs, names in os.walk(folder, followlinks=True):
        seen.add(os.path.realpath(root))
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and os.path.realpath(os.path.join(root, d)) not in seen
        )
        found += [
            os.path.join(root, n)
            for n in sorted(names)
            if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith(".")
        ]
    if not found:
        raise DataError(
            f"folder {folder} holds no PNG or JPEG images (.png, .jpg, .jpeg, searched in its "
            "subfolders too)"
        )
    return found


def _is_grey(image: Image.Image, file: str) -> bool:
    """Whether an image file holds grey (True) or colour (False) pixels, by its mode."""
    if image.mode in _GREY_MODES:
        return True
    if image.mode in _COLOUR_MODES:
        return False
    if image.mode in _PALETTE_MODES:
        palette = np.asarray(image.getpalette() or [], np.int64).reshape(-1, 3)
        return bool((palette == palette[:, :1]).all())
    raise DataError(
        f"{file}: pixel mode {image.mode} (16-bit or float) is not read; save it as 8-bit "
        "grey or RGB"
    )


@functools.lru_cache(maxsize=4)
def _inspect_folder(folder: str, shown: str, stamp: tuple, image_size: int | None) -> _Source:
    files = [entry[0] for entry in stamp]
    sizes, kinds = {}, {}
    binary = True  # until an image holds a value other than 0 and 1 (1-bit images: 0 and 255)
    for file in files:
        try:
            with Image.open(file) as image:
                size, grey = image.size, _is_grey(image, file)
                if binary and image.mode != "1":
                    binary = _highest(image.convert("L" if grey else "RGB")) <= 1
        except DataError:
            raise
        except Exception as exc:
            reason = first_line(exc, with_type=True)
            raise DataError(f"cannot read image {file}: {reason}") from None
        sizes.setdefault(size, file)
        kinds.setdefault(grey, file)
    if len(kinds) == 2:
        raise DataError(
            f"folder {shown} mixes greyscale and colour images ({kinds[True]} is greyscale, "
            f"{kinds[False]} is colour): convert them all to one of the two"
        )
    if image_size is None and len(sizes) > 1:
        (a, file_a), (b, file_b) = list(sizes.items())[:2]
        raise DataError(
            f"folder {shown} holds images of different sizes ({a[0]}x{a[1]} in {file_a}, "
            f"{b[0]}x{b[1]} in {file_b}): set --image_size to resize them all to one size"
        )
    _held_out(len(files), f"folder {shown}")
    relative = [os.path.relpath(f, folder).split(os.sep) for f in files]
    labels, num_classes = (), None
    if all(len(parts) > 1 for parts in relative):
        classes = sorted({parts[0] for parts in relative})
        index = {name: k for k, name in enumerate(classes)}
        labels = tuple(index[parts[0]] for parts in relative)
        num_classes = len(classes)
    (width, height) = next(iter(sizes))
    shape = (*_target((height, width), image_size), 1 if True in kinds else 3)
    return _Source(
        kind="folder",
        where=shown,
        image_shape=shape,
        binary=binary,
        num_classes=num_classes,
        memory_bytes=_held_bytes(len(files), shape),
        files=tuple(files),
        labels=labels,
        resize_to=image_size or 0,
        stamp=stamp,
    )


def _highest(image: Image.Image) -> int:
    """The largest value of any channel of a decoded grey or RGB image."""
    extrema = image.getextrema()
    return max(high for _, high in extrema) if isinstance(extrema[0], tuple) else extrema[1]


def _open_array_file(path: str, shown: str):
    """The images and labels arrays (labels None) of a .npy / .npz file, and their keys."""
    try:
        # By what the file holds, whatever its name ends in.
        with open(path, "rb") as f:
            start = f.read(6)
        if start == b"\x93NUMPY":
            return np.load(path, mmap_mode="r", allow_pickle=False), None, "", ""
        if not start.startswith(b"PK"):
            raise DataError(
                f"cannot read {shown}: it is neither a .npy array nor a .npz archive of arrays"
            )
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            image_key = next((k for k in _NPZ_IMAGE_KEYS if k in keys), None)
            if image_key is None and len(keys) == 1:
                image_key = keys[0]
            if image_key is None:
                raise DataError(
                    f"{shown} holds no image array (its arrays: {', '.join(keys) or 'none'}): "
                    "name the images 'images' or 'x' (and the labels 'labels' or 'y')"
                )
            label_key = next((k for k in _NPZ_LABEL_KEYS if k in keys and k != image_key), "")
            labels = archive[label_key] if label_key else None
            return archive[image_key], labels, image_key, label_key
    except DataError:
        raise
    except Exception as exc:
        if "pickled" in str(exc) or "Python objects" in str(exc):  # never unpickled
            raise DataError(
                f"{shown} holds Python objects (pickled), which are not read: save numeric "
                "arrays (np.save / np.savez)"
            ) from None
        raise DataError(f"cannot read {shown}: {first_line(exc, with_type=True)}") from None


# Arrays are converted a block of images at a time, so that no full-size
# float or boolean copy of a large file is ever made; the memory check counts
# one block's float32 copy beside the file and the uint8 images.
_BLOCK_BYTES = 16 * 2**20


def _held_bytes(count: int, shape: tuple) -> int:
    """Peak memory of holding ``count`` uint8 images of ``shape`` (and their
    labels) for a run: the decoded array, the dataset's tensor of it and the
    copies TensorFlow makes of that tensor when the dataset is first iterated,
    about four images' worth in all (measured by benchmarks/own_data_memory.py)."""
    return 4 * count * (math.prod(shape) + 4)


def _blocks(images: np.ndarray):
    """Consecutive blocks of ``images`` (``N`` first), about ``_BLOCK_BYTES``
    of float32 each."""
    step = max(1, _BLOCK_BYTES // max(1, 4 * math.prod(images.shape[1:])))
    for start in range(0, len(images), step):
        yield images[start : start + step]


def _to_uint8(
    raw: np.ndarray, scale: float, size: int = 0, position: np.ndarray | None = None
) -> np.ndarray:
    """``raw * scale`` rounded into 0..255, as uint8, block by block; with
    ``size``, each block is then resized (:func:`_resize`), so that no
    full-size uint8 copy is made either. Image ``i`` lands at ``position[i]``
    of the result (default: at ``i``)."""
    height, width, channels = raw.shape[1:]
    if size:
        height = width = size
    out = np.empty((len(raw), height, width, channels), np.uint8)
    start = 0
    for block in _blocks(raw):
        values = np.multiply(block, scale, dtype=np.float32)  # the block's only copy
        np.clip(np.round(values, out=values), 0, 255, out=values)
        converted = values.astype(np.uint8)
        if size:
            converted = _fit(converted, size)
        rows = slice(start, start + len(block))
        out[rows if position is None else position[rows]] = converted
        start += len(block)
    return out


def _value_scale(images: np.ndarray, shown: str) -> tuple[float, bool]:
    """The factor to 0..255 values of an image array, and whether it is binary."""
    if images.dtype == bool:
        return 255.0, True
    kind = images.dtype.kind
    if kind not in "uif":
        raise DataError(f"{shown} holds {images.dtype} values: images must be integers or floats")
    low, high = images.min(), images.max()
    if kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
        raise DataError(f"{shown} holds NaN or infinite values: images must be finite")
    binary = low >= 0 and high <= 1 and all(((b == 0) | (b == 1)).all() for b in _blocks(images))
    if binary:
        return 255.0, True
    if kind in "ui":
        if low < 0 or high > 255:
            raise DataError(
                f"{shown} holds integers from {low} to {high}: integer images must be in [0, 255]"
            )
        return 1.0, False
    if low < 0 or high > 255:
        raise DataError(
            f"{shown} holds floats from {low:g} to {high:g}: float images must be in [0, 1] or "
            "[0, 255]"
        )
    return (255.0 if high <= 1 else 1.0), False


@functools.lru_cache(maxsize=4)
def _inspect_array(path: str, shown: str, stamp: tuple, image_size: int | None) -> _Source:
    images, labels, image_key, label_key = _open_array_file(path, shown)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(
            f"{shown} holds an array of shape {images.shape}: images must have shape (N, H, W) "
            "or (N, H, W, C) with C 1 (grey) or 3 (RGB)"
        )
    if 0 in images.shape[1:]:
        raise DataError(f"{shown} holds images of shape {images.shape[1:]}: no side may be 0")
    count = len(images)
    _held_out(count, shown)
    _, binary = _value_scale(images, shown)
    num_classes = None
    if labels is not None:
        num_classes = _check_labels(labels, count, f"{shown} ({label_key!r})")
    shape = (*_target(images.shape[1:3], image_size), images.shape[-1])
    # While the file is converted: its array, a block of it as float32 (and
    # the resize's float32 copies of a block, measured at about 3 blocks) and
    # the uint8 images; then what holding the images takes.
    block = min(_BLOCK_BYTES, 4 * images.size) * (4 if image_size else 1)
    converting = images.nbytes + block + count * math.prod(shape)
    memory = max(converting, _held_bytes(count, shape))
    return _Source(
        kind="array",
        where=shown,
        image_shape=shape,
        binary=binary,
        num_classes=num_classes,
        memory_bytes=memory,
        image_key=image_key,
        label_key=label_key,
        resize_to=image_size or 0,
        stamp=stamp,
    )


def _check_labels(labels: np.ndarray, count: int, shown: str) -> int:
    """The number of classes of integer labels 0..K-1, one per image."""
    if labels.shape != (count,):
        raise DataError(
            f"{shown} holds labels of shape {labels.shape}: give one per image, shape ({count},)"
        )
    if labels.dtype.kind not in "uib" or (count and labels.min() < 0):
        raise DataError(f"{shown} must hold integer class labels >= 0")
    classes = int(labels.max()) + 1 if count else 0
    if classes > MAX_CLASSES:  # a class-conditional model holds a weight row per class
        raise DataError(
            f"{shown} holds labels up to {classes - 1}: class labels must be 0..K-1 with "
            f"K <= {MAX_CLASSES} (number the classes from 0)"
        )
    return classes


@functools.lru_cache(maxsize=4)
def _inspect_tfds(name: str, data_dir: str | None, image_size: int | None) -> _Source:
    import tensorflow_datasets as tfds

    shown = f"{TFDS_PREFIX}{name}"
    builder = data._tfds_builder(name, data_dir)
    features = builder.info.features
    top = dict(features.items()) if hasattr(features, "items") else {}
    images = [k for k, f in top.items() if isinstance(f, tfds.features.Image)]
    image_feature = "image" if "image" in images else (images[0] if len(images) == 1 else "")
    if not image_feature:
        raise DataError(
            f"{shown} has no single image feature (its features: {', '.join(top) or 'none'}): "
            "choose a tensorflow-datasets image dataset"
        )
    feature = top[image_feature]
    height, width, channels = feature.shape
    if feature.np_dtype != np.uint8:
        raise DataError(f"{shown}: its images are {feature.np_dtype.__name__}, not 8-bit (uint8)")
    if channels not in (1, 3):
        raise DataError(
            f"{shown}: its images have {channels} channels; only 1 (grey) or 3 (RGB) are read"
        )
    if image_size is None and (height is None or width is None):
        raise DataError(
            f"{shown} has images of different sizes: set --image_size to resize them all to "
            "one size"
        )
    classes = [k for k, f in top.items() if isinstance(f, tfds.features.ClassLabel)]
    label_feature = "label" if "label" in classes else (classes[0] if len(classes) == 1 else "")
    num_classes = top[label_feature].num_classes if label_feature else None

    sizes = {split: info.num_examples for split, info in builder.info.splits.items()}
    if "train" in sizes:
        train = "train"
    elif len(sizes) == 1:
        train = next(iter(sizes))
    else:
        raise DataError(f"{shown} has no train split (its splits: {', '.join(sizes)})")
    test = next((s for s in ("test", "validation") if s in sizes), "")
    if test:
        splits = {"train": train, "test": test}
        total = sizes[train] + sizes[test]
    else:
        held = _held_out(sizes[train], shown)
        keep = sizes[train] - held
        splits = {"train": f"{train}[:{keep}]", "test": f"{train}[{keep}:]"}
        total = sizes[train]
    shape = (*_target((height, width), image_size), channels)
    decoded = total * math.prod(shape)
    cached = decoded <= _TFDS_CACHE_LIMIT

    probe = data._tfds_dataset(name, splits["train"], data_dir, builder).take(_TFDS_PROBE)
    high = probe.reduce(
        tf.constant(0, tf.uint8),
        lambda most, example: tf.maximum(most, tf.reduce_max(example[image_feature])),
    )
    return _Source(
        kind="tfds",
        where=name,
        image_shape=shape,
        binary=int(high) <= 1,
        num_classes=num_classes,
        memory_bytes=decoded if cached else 0,
        image_feature=image_feature,
        label_feature=label_feature,
        tfds_splits=tuple(splits.items()),
        cached=cached,
        resize_to=image_size or 0,
    )


# --- reading ------------------------------------------------------------------------------------


def _resize(images: tf.Tensor, size: int) -> tf.Tensor:
    """Crops uint8 images ``(..., H, W, C)`` to their central square and resizes
    them to ``size`` x ``size`` (bilinear, antialiased)."""
    shape = tf.shape(images)
    height, width = shape[-3], shape[-2]
    side = tf.minimum(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = images[..., top : top + side, left : left + side, :]
    resized = tf.image.resize(tf.cast(square, tf.float32), [size, size], antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def _fit(images: np.ndarray, size: int) -> np.ndarray:
    """``_resize`` of a uint8 array of images."""
    if images.shape[1] == images.shape[2] == size:
        return images
    return _resize(images, size).numpy()


def _split_order(count: int, where: str) -> tuple[np.ndarray, int]:
    """The order in which the images of an in-memory source are held: the
    train split's (in file order), then the test split's, a fixed tenth of
    them (the same in every run); and the number of training images."""
    order = np.random.default_rng(_HOLDOUT_KEY).permutation(count)
    held = _held_out(count, where)
    return np.concatenate([np.sort(order[held:]), np.sort(order[:held])]), count - held


@functools.lru_cache(maxsize=1)
def _decoded(source: _Source) -> tuple[np.ndarray, np.ndarray, int]:
    """All images of a folder or array file as uint8 0..255 ``(N, H, W, C)``,
    at the run's size, and int32 labels (zeros when there are none), in the
    order of :func:`_split_order`, so that each split is a view, not a copy;
    and the number of training images."""
    if source.kind == "folder":
        order, train = _split_order(len(source.files), source.where)
        mode = "L" if source.image_shape[-1] == 1 else "RGB"
        images = np.empty((len(order), *source.image_shape), np.uint8)
        for position, index in enumerate(order):
            file = source.files[index]
            try:
                with Image.open(file) as image:
                    array = np.asarray(image.convert(mode))
            except Exception as exc:
                raise DataError(
                    f"cannot read image {file}: {first_line(exc, with_type=True)}"
                ) from None
            array = array.reshape(*array.shape[:2], source.image_shape[-1])
            if source.binary:  # 0 and 1 (or a 1-bit image's 0 and 255) read as 0 and 255
                array = np.where(array > 0, 255, 0).astype(np.uint8)
            if source.resize_to:
                array = _fit(array[None], source.resize_to)[0]
            images[position] = array
        labels = np.asarray(source.labels or [0] * len(order), np.int32)
        return images, labels[order], train
    raw, labels, _, _ = _open_array_file(source.where, source.where)
    if raw.ndim == 3:
        raw = raw[..., None]
    order, train = _split_order(len(raw), source.where)
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    scale, _ = _value_scale(raw, source.where)
    images = _to_uint8(raw, scale, source.resize_to, position)
    labels = np.zeros(len(images), np.int32) if labels is None else np.asarray(labels, np.int32)
    return images, labels[order], train


def _held_split(source: _Source, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of a split of an in-memory source: a fixed tenth
    of the images (the same in every run) for ``test``, the rest for ``train``,
    each in file order."""
    images, labels, train = _decoded(source)
    part = slice(train, None) if split == "test" else slice(0, train)
    return images[part], labels[part]


def _tfds_pairs(
    source: _Source, split: str, data_dir: str | None, num_examples: int | None
) -> tf.data.Dataset:
    """(uint8 0..255 image at the run's size, int32 label) pairs of a tfds split."""
    tfds_split = dict(source.tfds_splits)[split]
    raw = data._tfds_dataset(source.where, tfds_split, data_dir)
    if num_examples is not None:
        raw = raw.take(num_examples)
    scale = 255 if source.binary else 1

    def pick(example):
        image = tf.cast(example[source.image_feature], tf.uint8) * scale
        if source.resize_to:
            image = _resize(image, source.resize_to)
        image = tf.ensure_shape(image, source.image_shape)
        if source.label_feature:
            label = tf.cast(example[source.label_feature], tf.int32)
        else:
            label = tf.constant(0, tf.int32)
        return image, label

    pairs = raw.map(pick, num_parallel_calls=tf.data.AUTOTUNE)
    return pairs.cache() if source.cached else pairs


def _finish(
    pairs: tf.data.Dataset, levels: int, binarize: str, split: str, seed: int, with_labels: bool
) -> tf.data.Dataset:
    """Quantizes or binarizes (image, label) pairs of 0..255 images."""

    def out(image, label):
        return (image, label) if with_labels else image

    if binarize == "stochastic":
        if split == "train":
            # Fresh, seed-determined draws on every pass (as for MNIST).
            draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

            def train_map(pair, draw):
                key = tf.stack([draw, tf.constant(0, tf.int64)])
                return out(data._bernoulli(pair[0], key), pair[1])

            keyed = tf.data.Dataset.zip(pairs, draws)
            return keyed.map(train_map, num_parallel_calls=tf.data.AUTOTUNE)

        def test_map(index, pair):
            key = tf.stack([tf.constant(_TEST_BINARIZATION_KEY, tf.int64), index])
            return out(data._bernoulli(pair[0], key), pair[1])

        return pairs.enumerate().map(test_map, num_parallel_calls=tf.data.AUTOTUNE)

    def values(image, label):
        if binarize == "threshold":
            return out(tf.cast(image >= 128, tf.uint8), label)
        if levels == 256:
            return out(image, label)
        scaled = tf.round(tf.cast(image, tf.float32) * ((levels - 1) / 255.0))
        return out(tf.cast(scaled, tf.uint8), label)

    return pairs.map(values, num_parallel_calls=tf.data.AUTOTUNE)
