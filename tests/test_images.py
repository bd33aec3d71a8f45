"""Sample grids, PNG files, text rendering and reading images to score."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixel_models import images


def test_make_grid_places_tiles_with_grey_padding():
    tiles = np.arange(5 * 2 * 3).reshape(5, 2, 3, 1) % 2
    grid = images.make_grid(tiles.astype(np.uint8), levels=2)
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1, 1)  # 5 tiles -> 2 rows of 3
    np.testing.assert_array_equal(grid[1:3, 1:4, 0], tiles[0, :, :, 0] * 255)
    np.testing.assert_array_equal(grid[4:6, 5:8, 0], tiles[4, :, :, 0] * 255)
    assert grid[0].max() == grid[0].min() == 128
    assert (grid[4:6, 9:12] == 128).all()  # the empty sixth slot
    rgb = images.make_grid(np.full((1, 2, 2, 3), 3, np.uint8), levels=4, padding=0)
    assert rgb.shape == (2, 2, 3) and (rgb == 255).all()
    with pytest.raises(ValueError, match="shape"):
        images.make_grid(np.zeros((0, 2, 2, 1)), levels=2)


def test_save_png_round_trip_and_no_temporary_left(tmp_path):
    grid = (np.arange(12).reshape(3, 4, 1) * 20).astype(np.uint8)
    path = tmp_path / "sub" / "grid.png"
    images.save_png(str(path), grid)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), grid[..., 0])
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]


def test_to_text():
    grid = np.array([[[0], [255]], [[128], [0]]], np.uint8)
    assert images.to_text(grid) == " @\n+ "  # 128/255 of 9 shades rounds to shade 5


def test_load_images_png_folder_and_npy(tmp_path):
    a = np.zeros((4, 4), np.uint8)
    a[1:3, 1:3] = 200
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(255 - a).save(tmp_path / "b.png")
    names, loaded = images.load_images(str(tmp_path), (4, 4, 1), levels=2)
    assert [n.split("/")[-1] for n in names] == ["a.png", "b.png"]
    np.testing.assert_array_equal(loaded[0, :, :, 0], (a >= 128).astype(np.uint8))
    np.testing.assert_array_equal(loaded[1, :, :, 0], (a < 128).astype(np.uint8))
    _, grey = images.load_images(str(tmp_path / "a.png"), (4, 4, 1), levels=256)
    np.testing.assert_array_equal(grey[0, :, :, 0], a)
    np.save(tmp_path / "x.npy", np.ones((2, 4, 4, 1), np.int64))
    names, array = images.load_images(str(tmp_path / "x.npy"), (4, 4, 1), levels=2)
    assert len(names) == 2 and array.dtype == np.uint8 and array.shape == (2, 4, 4, 1)
    # (N, H, W) grey images, as --data takes them; (H, W, C) is one image.
    np.save(tmp_path / "x.npy", np.ones((3, 4, 4), np.int64))
    assert images.load_images(str(tmp_path / "x.npy"), (4, 4, 1), levels=2)[1].shape[0] == 3
    np.save(tmp_path / "x.npy", np.ones((4, 4, 1), np.int64))
    assert images.load_images(str(tmp_path / "x.npy"), (4, 4, 1), levels=2)[1].shape[0] == 1


def test_png_images_of_zeros_and_ones_are_read_as_binary_as_training_reads_them(tmp_path):
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (3, 4, 4)).astype(np.uint8)
    for k, b in enumerate(bits):
        Image.fromarray(b, "L").save(tmp_path / f"b{k}.png")
    _, loaded = images.load_images(str(tmp_path), (4, 4, 1), levels=2)
    np.testing.assert_array_equal(loaded[..., 0], bits)
    from pixel_models import data

    info = data.info(str(tmp_path))
    assert info.levels == 2  # the loader's reading of the same folder


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: Image.fromarray(np.zeros((5, 4), np.uint8)).save(d / "a.png"), "takes 4x4"),
        (lambda d: np.save(d / "a.npy", np.full((1, 4, 4, 1), 2)), r"integers in \[0, 1\]"),
        (
            lambda d: np.save(d / "a.npy", np.zeros((1, 3, 4, 1), np.int64)),
            r"an array of shape \(1, 3, 4, 1\); .* \(N, 4, 4, 1\) or \(N, 4, 4\)",
        ),
        (lambda d: (d / "a.txt").write_text("x"), "not a .png file"),
    ],
)
def test_load_images_rejects_bad_input(tmp_path, setup, message):
    setup(tmp_path)
    path = next(tmp_path.iterdir())
    with pytest.raises(ValueError, match=message):
        images.load_images(str(path), (4, 4, 1), levels=2)
