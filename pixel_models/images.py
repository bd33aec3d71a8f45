"""Sample grids: tiling, PNG files and a text rendering for terminals."""

from __future__ import annotations

import math
import os
import tempfile  # noqa: F401  (the examples use it)

import numpy as np
from PIL import Image

from pixel_models.files import write_atomic

_SHADES = " .:-=+*#%@"


def make_grid(
    images: np.ndarray, levels: int, columns: int | None = None, padding: int = 1
) -> np.ndarray:
    """Tiles images ``(N, H, W, C)`` with values in ``[0, levels)`` into one image.

    Args:
      images: integer images.
      levels: number of values per channel; values are scaled to 0..255.
      columns: images per row (default: ``ceil(sqrt(N))``, a square grid).
      padding: pixels of grey between tiles.

    Returns:
      uint8 array ``(rows * (H + padding) + padding, columns * (W + padding) +
      padding, C)``.

    Example:

    >>> make_grid(np.ones((4, 2, 2, 1), "uint8"), levels=2).shape
    (7, 7, 1)
    """
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must have shape (N, H, W, C) with N > 0, got {images.shape}")
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    scaled = (images.astype(np.float64) * (255.0 / (levels - 1))).round().clip(0, 255)
    grid = np.full(
        (rows * (h + padding) + padding, columns * (w + padding) + padding, c), 128, np.uint8
    )
    for k in range(n):
        r, q = divmod(k, columns)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[top : top + h, left : left + w] = scaled[k].astype(np.uint8)
    return grid


def save_png(path: str, grid: np.ndarray) -> None:
    """Writes a uint8 ``(H, W, 1|3)`` image as PNG, atomically (temp file, rename).

    Missing parent folders are created. One channel gives a grey PNG, three an
    RGB one.

    Example:

    >>> from PIL import Image
    >>> grid = make_grid(np.ones((4, 2, 2, 1), "uint8"), levels=2)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "samples", "grid.png")
    ...     save_png(path, grid)
    ...     with Image.open(path) as image:
    ...         print(image.size, image.mode, sorted(os.listdir(os.path.dirname(path))))
    (7, 7) L ['grid.png']
    """
    grid = np.asarray(grid, np.uint8)
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    write_atomic(path, lambda f: image.save(f, format="PNG"), binary=True)


def to_text(grid: np.ndarray) -> str:
    """Renders a uint8 image as characters, darkest ``' '`` to brightest ``'@'``.

    Example:

    >>> to_text(np.array([[[0], [255]]], "uint8"))
    ' @'
    """
    grey = np.asarray(grid, np.float64).mean(axis=-1)
    index = (grey / 255.0 * (len(_SHADES) - 1)).round().astype(int)
    return "\n".join("".join(_SHADES[v] for v in row) for row in index)


def split_grid(grid: np.ndarray, tile_shape: tuple[int, int], padding: int = 1) -> np.ndarray:
    """The tiles of a grid written by :func:`make_grid`, row by row.

    Trailing cells that are all background grey (the empty end of the last
    row) are left out.

    Args:
      grid: ``(rows * (h + padding) + padding, columns * (w + padding) + padding, C)``.
      tile_shape: ``(h, w)`` of a tile.
      padding: pixels between tiles.

    Returns:
      ``(N, h, w, C)`` tiles.

    Raises:
      ValueError: when the grid's size is not that of a grid of such tiles.

    Example:

    >>> tiles = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(3, 2, 4, 1)
    >>> grid = make_grid(tiles, levels=256, columns=2)
    >>> grid.shape
    (7, 11, 1)
    >>> bool((split_grid(grid, (2, 4)) == tiles).all())  # the fourth cell is empty
    True
    """
    h, w = tile_shape
    height, width = grid.shape[:2]
    rows, rest_r = divmod(height - padding, h + padding)
    columns, rest_c = divmod(width - padding, w + padding)
    if rows < 1 or columns < 1 or rest_r or rest_c:
        raise ValueError(
            f"a {width}x{height} image is not a grid of {w}x{h} tiles with {padding}-pixel gaps"
        )
    tiles = [
        grid[padding + r * (h + padding) :, padding + q * (w + padding) :][:h, :w]
        for r in range(rows)
        for q in range(columns)
    ]
    while len(tiles) > 1 and (tiles[-1] == 128).all():
        tiles.pop()
    return np.stack(tiles)


def load_images(
    path: str, image_shape: tuple[int, int, int], levels: int, grid: bool = False
) -> tuple[list, np.ndarray]:
    """Reads images to score: a PNG file, a folder of PNG files or a ``.npy`` array.

    PNG files are read as grey (one channel) or RGB (three) and must have the
    model's height and width, or with ``grid`` be grids of such tiles as the
    sample grids of a run (:func:`make_grid`, 1-pixel gaps); for binary models
    (``levels == 2``) grey values of 128 and more become 1, unless every value
    read is 0 or 1 (binary images already, as training reads them). A ``.npy`` array
    holds ``(N, H, W, C)`` (or one ``(H, W, C)``) integers in ``[0, levels)``,
    already in the model's form.

    Args:
      path: a ``.png`` file, a folder of them (read in name order) or a
        ``.npy`` file.
      image_shape: ``(H, W, C)`` of the model's images.
      levels: values per channel of the model's data.
      grid: read each PNG file as a grid of images (names ``file[k]``).

    Returns:
      ``(names, images)``: a name per image and uint8 ``(N, H, W, C)``.

    Example:

    >>> grey = np.zeros((4, 4, 1), "uint8")
    >>> grey[0, 0] = 255
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     save_png(os.path.join(folder, "b.png"), grey)
    ...     save_png(os.path.join(folder, "a.png"), 255 - grey)
    ...     names, images = load_images(folder, (4, 4, 1), levels=2)
    >>> [os.path.basename(name) for name in names], images.shape, images.dtype.name
    (['a.png', 'b.png'], (2, 4, 4, 1), 'uint8')
    >>> images[:, :, :, 0].sum(axis=(1, 2)).tolist()  # binarized: 15 white pixels, then 1
    [15, 1]
    """
    height, width, channels = image_shape
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(".png"))
        if not files:
            raise ValueError(f"--score folder {path} holds no .png files")
        paths = [os.path.join(path, f) for f in files]
    elif os.path.isfile(path) and path.lower().endswith(".npy"):
        array = np.load(path, allow_pickle=False)
        if array.shape == (height, width, channels):
            array = array[None]  # one image
        elif array.ndim == 3 and channels == 1 and array.shape[1:] == (height, width):
            array = array[..., None]  # (N, H, W) grey images
        if array.shape[1:] != (height, width, channels):
            raise ValueError(
                f"{path} holds an array of shape {array.shape}; the model takes images "
                f"{(height, width, channels)}: an array (N, {height}, {width}, {channels})"
                + (f" or (N, {height}, {width})" if channels == 1 else "")
            )
        if len(array) == 0:
            raise ValueError(f"{path} holds no images: give it at least one (N >= 1)")
        if not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() >= levels:
            raise ValueError(f"{path} must hold integers in [0, {levels - 1}]")
        return [f"{path}[{k}]" for k in range(len(array))], array.astype(np.uint8)
    elif os.path.isfile(path) and path.lower().endswith(".png"):
        paths = [path]
    else:
        raise ValueError(f"--score {path} is not a .png file, a folder of them or a .npy file")
    images, names = [], []
    for file in paths:
        with Image.open(file) as image:
            colour = np.asarray(image.convert("RGB"))
            array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
        if channels == 1 and not (
            np.array_equal(colour[..., 0], colour[..., 1])
            and np.array_equal(colour[..., 1], colour[..., 2])
        ):
            raise ValueError(
                f"{file} is a colour image and the model's images are grey (one channel): "
                "convert it to greyscale first, or score it with a model of colour data"
            )
        array = array.reshape(*array.shape[:2], channels)
        if grid:
            try:
                tiles = split_grid(array, (height, width))
            except ValueError as err:
                raise ValueError(f"--score_grid: {file}: {err}") from None
            names += [f"{file}[{k}]" for k in range(len(tiles))]
        elif array.shape[:2] != (height, width):
            hint = ""
            try:
                split_grid(array, (height, width))
                hint = " (it is a grid of such images: add --score_grid to score each)"
            except ValueError:
                pass
            raise ValueError(
                f"{file} is {array.shape[1]}x{array.shape[0]} pixels; the model takes "
                f"{width}x{height}{hint}"
            )
        else:
            tiles = array[None]
            names.append(file)
        images.append(tiles)
    tiles = np.concatenate(images)
    if levels == 2:
        # As the data loader reads them: images of 0 and 1 only are binary already.
        return names, (tiles if tiles.max() <= 1 else tiles >= 128).astype(np.uint8)
    if levels != 256:
        tiles = (tiles.astype(np.float64) * (levels - 1) / 255.0).round().astype(np.uint8)
    return names, tiles


def reconstruction_grid(originals: np.ndarray, reconstructions: np.ndarray, levels: int):
    """Each original next to its reconstruction, pairs side by side on each row.

    Args:
      originals: integer images ``(N, H, W, C)``.
      reconstructions: integer images like ``originals``.
      levels: values per channel.

    Returns:
      uint8 grid (see :func:`make_grid`) with ``ceil(sqrt(N))`` pairs on each row.

    Example:

    >>> grid = reconstruction_grid(np.zeros((4, 2, 2, 1)), np.ones((4, 2, 2, 1)), levels=2)
    >>> grid.shape  # 2 rows of 2 pairs of 2x2 images, 1 pixel apart
    (7, 13, 1)
    >>> grid[1:3, 1:7, 0].tolist()  # an original (black), its reconstruction (white)
    [[0, 0, 128, 255, 255, 128], [0, 0, 128, 255, 255, 128]]
    """
    pairs = np.stack([originals, reconstructions], axis=1)
    per_row = max(1, int(np.ceil(np.sqrt(len(originals)))))
    return make_grid(
        pairs.reshape(-1, *originals.shape[1:]).astype(np.uint8), levels, columns=2 * per_row
    )


KNOWN_PARTS = ("top_half", "bottom_half", "left_half")


def known_mask(part: str, image_shape: tuple[int, int, int]) -> np.ndarray:
    """Where the pixels are given when completing ``part`` of images: ``(H, W, C)`` booleans.

    Example:

    >>> known_mask("top_half", (3, 2, 1))[:, :, 0].astype(int).tolist()
    [[1, 1], [0, 0], [0, 0]]
    >>> known_mask("left_half", (2, 2, 1))[:, :, 0].astype(int).tolist()
    [[1, 0], [1, 0]]
    """
    if part not in KNOWN_PARTS:
        raise ValueError(f"part must be one of {', '.join(KNOWN_PARTS)}, got {part!r}")
    height, width, channels = image_shape
    known = np.zeros((height, width, channels), bool)
    if part == "top_half":
        known[: height // 2] = True
    elif part == "bottom_half":
        known[height - height // 2 :] = True
    else:
        known[:, : width // 2] = True
    return known


def completion_grid(
    originals: np.ndarray, known: np.ndarray, completed: np.ndarray, levels: int
) -> np.ndarray:
    """Originals, their occluded versions (unknown pixels grey) and completions,
    three to a row, as a 256-level grid.

    Example:

    >>> originals = np.ones((2, 2, 2, 1), "uint8")
    >>> known = known_mask("top_half", (2, 2, 1))
    >>> completion_grid(originals, known, np.zeros_like(originals), levels=2).shape
    (7, 10, 1)
    """
    scale = 255.0 / (levels - 1)
    shown_originals = (np.asarray(originals) * scale).round()
    occluded = np.where(known, shown_originals, 128.0)
    shown_completed = (np.asarray(completed) * scale).round()
    rows = np.stack([shown_originals, occluded, shown_completed], axis=1)
    shape = np.asarray(originals).shape[1:]
    return make_grid(rows.reshape(-1, *shape).astype(np.uint8), 256, columns=3)


def unused_path(stem: str, suffix: str = ".png") -> str:
    """``stem + suffix``, or ``stem_1 + suffix``, ... : the first that does not exist.

    Example:

    >>> with tempfile.TemporaryDirectory() as folder:
    ...     first = unused_path(os.path.join(folder, "grid"))
    ...     save_png(first, np.zeros((2, 2, 1), "uint8"))
    ...     second = unused_path(os.path.join(folder, "grid"))
    >>> os.path.basename(first), os.path.basename(second)
    ('grid.png', 'grid_1.png')
    """
    path, k = f"{stem}{suffix}", 1
    while os.path.exists(path):
        path, k = f"{stem}_{k}{suffix}", k + 1
    return path
