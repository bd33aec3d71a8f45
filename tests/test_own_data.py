"""Tests of the user's own images as data: tfds:NAME, image folders, .npy/.npz files
(offline, tiny images)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixel_models import data, devices, experiment, own_data
from pixel_models.config import RunConfig, UsageError, model_config

ROOT = Path(__file__).resolve().parents[1]
SHARED_TFDS = ROOT.parent / "shared" / "tensorflow_datasets"


def images_of(ds) -> np.ndarray:
    return np.stack([np.asarray(x) for x in ds])


def pairs_of(ds) -> tuple[np.ndarray, np.ndarray]:
    items = [(np.asarray(x), int(y)) for x, y in ds]
    return np.stack([x for x, _ in items]), np.array([y for _, y in items])


def rows(images: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in images}


def save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(path)


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(data.DataError) as err:
        call(*args, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


# --- tfds:NAME ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """Three tensorflow-datasets datasets prepared from generated images with
    tfds's own builder: train/test splits with labels; one split, colour, no
    labels; and images of varying size."""
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    root = tmp_path_factory.mktemp("tfds")
    rng = np.random.default_rng(0)
    grey = tfds.features.Image(shape=(6, 6, 1))
    labelled = tfds.features.FeaturesDict(
        {"image": grey, "label": tfds.features.ClassLabel(num_classes=3)}
    )
    splits = {
        split: {
            "image": rng.integers(0, 256, (n, 6, 6, 1), dtype=np.uint8),
            "label": rng.integers(0, 3, n),
        }
        for split, n in (("train", 10), ("test", 4))
    }
    tfds.dataset_builders.store_as_tfds_dataset(
        name="own_labelled",
        version="1.0.0",
        features=labelled,
        split_datasets={k: tf.data.Dataset.from_tensor_slices(v) for k, v in splits.items()},
        data_dir=root,
    )
    colour = rng.integers(0, 256, (10, 6, 8, 3), dtype=np.uint8)
    tfds.dataset_builders.store_as_tfds_dataset(
        name="own_one_split",
        version="1.0.0",
        features=tfds.features.FeaturesDict({"picture": tfds.features.Image(shape=(6, 8, 3))}),
        split_datasets={"train": tf.data.Dataset.from_tensor_slices({"picture": colour})},
        data_dir=root,
    )
    varying = [rng.integers(0, 256, (h, 5, 3), dtype=np.uint8) for h in (5, 7, 9)]
    tfds.dataset_builders.store_as_tfds_dataset(
        name="own_varying",
        version="1.0.0",
        features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(None, 5, 3))}),
        split_datasets={
            "train": tf.data.Dataset.from_generator(
                lambda: ({"image": v} for v in varying),
                output_signature={"image": tf.TensorSpec((None, 5, 3), tf.uint8)},
            )
        },
        data_dir=root,
    )
    return str(root), splits, colour


def test_tfds_dataset_with_splits_and_labels(tfds_dir):
    root, splits, _ = tfds_dir
    meta = data.info("tfds:own_labelled", data_dir=root)
    assert meta.image_shape == (6, 6, 1) and meta.levels == 256 and meta.num_classes == 3
    assert meta.splits == ("train", "test") and meta.needs_download
    for split in ("train", "test"):
        images, labels = pairs_of(
            data.load("tfds:own_labelled", split, data_dir=root, with_labels=True)
        )
        stored = splits[split]
        assert rows(images) == rows(stored["image"])  # tfds's own split, all of it
        expected = {
            x.tobytes(): int(y) for x, y in zip(stored["image"], stored["label"], strict=True)
        }
        assert [expected[x.tobytes()] for x in images] == labels.tolist()


def test_tfds_dataset_of_one_split_holds_out_a_tenth(tfds_dir):
    root, _, colour = tfds_dir
    meta = data.info("tfds:own_one_split", data_dir=root)
    assert meta.image_shape == (6, 8, 3) and meta.num_classes is None
    train = images_of(data.load("tfds:own_one_split", "train", data_dir=root))
    test = images_of(data.load("tfds:own_one_split", "test", data_dir=root))
    assert len(train) == 9 and len(test) == 1
    assert rows(train) | rows(test) == rows(colour) and not rows(train) & rows(test)
    message = error_of(data.load, "tfds:own_one_split", data_dir=root, with_labels=True)
    assert "has no labels" in message


def test_tfds_images_are_resized_quantized_and_binarized(tfds_dir):
    root, *_ = tfds_dir
    options = dict(data_dir=root, image_size=4, color_levels=4)
    meta = data.info("tfds:own_one_split", **options)
    assert meta.image_shape == (4, 4, 3) and meta.levels == 4
    images = images_of(data.load("tfds:own_one_split", **options))
    assert images.shape == (9, 4, 4, 3) and images.max() <= 3
    binary = images_of(data.load("tfds:own_one_split", data_dir=root, binarize="threshold"))
    assert set(np.unique(binary)) <= {0, 1}
    assert data.info("tfds:own_one_split", data_dir=root, binarize="threshold").levels == 2


def test_tfds_images_of_varying_size_need_image_size(tfds_dir):
    root, *_ = tfds_dir
    message = error_of(data.info, "tfds:own_varying", data_dir=root)
    assert message.startswith("tfds:own_varying has images of different sizes")
    assert "--image_size" in message
    images = images_of(data.load("tfds:own_varying", data_dir=root, image_size=4))
    assert images.shape == (2, 4, 4, 3)


def test_tfds_dataset_without_an_image_feature_is_refused(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    tfds.dataset_builders.store_as_tfds_dataset(
        name="own_no_image",
        version="1.0.0",
        features=tfds.features.FeaturesDict({"value": tf.int64}),
        split_datasets={"train": tf.data.Dataset.from_tensor_slices({"value": np.arange(3)})},
        data_dir=tmp_path,
    )
    message = error_of(data.info, "tfds:own_no_image", data_dir=str(tmp_path))
    assert message.startswith("tfds:own_no_image has no single image feature (its features: value)")


@pytest.mark.skipif(not SHARED_TFDS.is_dir(), reason="no prepared tensorflow-datasets folder")
def test_tfds_binary_data_has_two_levels_and_the_test_split():
    meta = data.info("tfds:binarized_mnist", data_dir=str(SHARED_TFDS))
    assert meta.levels == 2 and meta.image_shape == (28, 28, 1) and meta.num_classes is None
    test = images_of(
        data.load("tfds:binarized_mnist", "test", data_dir=str(SHARED_TFDS), num_examples=3)
    )
    assert test.shape == (3, 28, 28, 1) and set(np.unique(test)) == {0, 1}
    mnist = data.info("tfds:mnist", data_dir=str(SHARED_TFDS))
    assert (mnist.levels, mnist.num_classes) == (256, 10)


# --- folders ------------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    """Two classes of 10x8 colour images; one in a nested folder, one a JPEG."""
    rng = np.random.default_rng(1)
    root = tmp_path / "pictures"
    files = {}
    for label, name in enumerate(("cats", "dogs")):
        for k in range(5):
            image = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
            path = root / name / ("deep" if k == 4 else "") / f"{k}.png"
            save(path, image)
            files[path] = (image, label)
    flat = np.full((8, 10, 3), 200, np.uint8)
    save(root / "dogs" / "flat.jpg", flat)
    files[root / "dogs" / "flat.jpg"] = (flat, 1)
    return root, files


def test_folder_with_class_subfolders(folder):
    root, files = folder
    meta = data.info(str(root))
    assert meta.image_shape == (8, 10, 3) and meta.levels == 256 and meta.num_classes == 2
    assert not meta.needs_download and meta.splits == ("train", "test")
    train, train_labels = pairs_of(data.load(str(root), "train", with_labels=True))
    test, test_labels = pairs_of(data.load(str(root), "test", with_labels=True))
    assert (len(train), len(test)) == (10, 1)
    pngs = {
        image.tobytes(): label for path, (image, label) in files.items() if path.suffix == ".png"
    }
    for image, label in zip([*train, *test], [*train_labels, *test_labels], strict=True):
        if image.tobytes() in pngs:  # PNG pixels come back exactly, with their folder's class
            assert pngs.pop(image.tobytes()) == label
        else:  # the JPEG, lossy
            assert np.abs(image.astype(int) - 200).max() <= 3 and label == 1
    assert not pngs
    # The test image is the same one in every load.
    assert rows(images_of(data.load(str(root), "test"))) == rows(test)


def test_folder_resized_and_quantized(folder):
    root, _ = folder
    meta = data.info(str(root), image_size=4, color_levels=4)
    assert meta.image_shape == (4, 4, 3) and meta.levels == 4
    options = dict(image_size=4, color_levels=4)
    train = images_of(data.load(str(root), "train", **options))
    test = images_of(data.load(str(root), "test", **options))
    assert train.shape == (10, 4, 4, 3) and max(train.max(), test.max()) <= 3
    # The flat JPEG stays flat: about 200 of 255 is level round(200 * 3 / 255) = 2.
    assert sum((image == 2).all() for image in [*train, *test]) == 1


def test_folder_without_subfolders_has_no_labels_and_grey_images_one_channel(tmp_path):
    rng = np.random.default_rng(2)
    for k in range(3):
        save(tmp_path / f"{k}.png", rng.integers(0, 256, (5, 5, 1), dtype=np.uint8))
    meta = data.info(str(tmp_path))
    assert meta.image_shape == (5, 5, 1) and meta.num_classes is None


@pytest.mark.parametrize("mode", ["L", "RGB", "1"])
def test_folder_of_binary_images_keeps_two_levels(tmp_path, mode):
    rng = np.random.default_rng(7)
    channels = 3 if mode == "RGB" else 1
    images = rng.integers(0, 2, (10, 4, 4, channels), dtype=np.uint8)
    for k, image in enumerate(images):
        picture = Image.fromarray(image.squeeze(-1) if channels == 1 else image)
        if mode == "1":  # a 1-bit PNG: read back as 0 and 255
            picture = Image.fromarray(image.squeeze(-1) * 255).convert("1")
        picture.save(tmp_path / f"{k}.png")
    meta = data.info(str(tmp_path))
    assert meta.levels == 2 and meta.image_shape == (4, 4, channels)
    loaded = np.concatenate([images_of(data.load(str(tmp_path), s)) for s in ("train", "test")])
    assert rows(loaded) == rows(images)
    # One image of other values makes the folder 8-bit again.
    save(tmp_path / "z.png", np.full((4, 4, channels), 2, np.uint8))
    assert data.info(str(tmp_path)).levels == 256


def test_files_written_again_are_read_again(tmp_path):
    """The decoded images of a source are kept for the process, until its files change."""
    path = tmp_path / "a.npy"
    folder = tmp_path / "folder"
    for value, time_ns in ((7, 10**18), (200, 2 * 10**18)):
        np.save(path, np.full((10, 4, 4), value, np.uint8))
        for k in range(3):
            save(folder / f"{k}.png", np.full((4, 4, 1), value, np.uint8))
        for file in (path, *folder.iterdir()):
            os.utime(file, ns=(time_ns, time_ns))  # distinct times on any file system
        for source in (str(path), str(folder)):
            assert images_of(data.load(source, "train")).max() == value, source


def test_binarize_threshold_and_stochastic(tmp_path):
    level = np.full((20, 6, 6), 64, np.uint8)
    level[:, 0, 0] = 128
    np.save(tmp_path / "grey.npy", level)
    path = str(tmp_path / "grey.npy")
    assert data.info(path, binarize="stochastic").levels == 2
    threshold = images_of(data.load(path, binarize="threshold"))
    assert (
        threshold[:, 0, 0].min() == 1
        and threshold[:, 1:].max() == 0
        and threshold[:, 0, 1:].max() == 0
    )
    train = data.load(path, binarize="stochastic", seed=5)
    first, second = images_of(train), images_of(train)
    assert not np.array_equal(first, second)  # fresh draws every pass
    assert np.array_equal(first, images_of(data.load(path, binarize="stochastic", seed=5)))
    assert abs(np.concatenate([first, second]).mean() - 64 / 255) < 0.08
    test = data.load(path, "test", binarize="stochastic")
    assert np.array_equal(images_of(test), images_of(test))  # one fixed draw


# --- array files --------------------------------------------------------------------------------


def test_npy_of_grey_uint8_images(tmp_path):
    images = np.random.default_rng(3).integers(0, 256, (20, 5, 7), dtype=np.uint8)
    np.save(tmp_path / "a.npy", images)
    path = str(tmp_path / "a.npy")
    meta = data.info(path)
    assert meta.image_shape == (5, 7, 1) and meta.levels == 256 and meta.num_classes is None
    train, test = images_of(data.load(path)), images_of(data.load(path, "test"))
    assert (len(train), len(test)) == (18, 2)
    assert rows(train) | rows(test) == rows(images[..., None])
    assert data.in_memory_bytes(meta) >= 2 * 20 * 35


def test_npy_of_float_images_in_0_1(tmp_path):
    images = np.random.default_rng(4).random((10, 4, 4, 3)).astype(np.float32)
    np.save(tmp_path / "f.npy", images)
    loaded = images_of(data.load(str(tmp_path / "f.npy"), "train"))
    expected = np.round(images * 255).astype(np.uint8)
    assert rows(loaded) <= rows(expected) and len(loaded) == 9


def test_npy_of_binary_images_keeps_two_levels(tmp_path):
    images = np.random.default_rng(5).integers(0, 2, (10, 4, 4, 1), dtype=np.int64)
    np.save(tmp_path / "b.npy", images)
    meta = data.info(str(tmp_path / "b.npy"))
    assert meta.levels == 2
    loaded = images_of(data.load(str(tmp_path / "b.npy"), "train"))
    assert rows(loaded) <= rows(images.astype(np.uint8))


@pytest.mark.parametrize("keys", [("images", "labels"), ("x", "y")])
def test_npz_with_images_and_labels(tmp_path, keys):
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    labels = np.arange(10) % 4
    np.savez(tmp_path / "d.npz", **{keys[0]: images, keys[1]: labels})
    path = str(tmp_path / "d.npz")
    meta = data.info(path, image_size=8)
    assert meta.image_shape == (8, 8, 3) and meta.num_classes == 4
    raw = data.info(path)
    assert raw.image_shape == (4, 4, 3)
    loaded, got = pairs_of(data.load(path, "train", with_labels=True))
    by_image = {x.tobytes(): int(y) for x, y in zip(images, labels, strict=True)}
    assert [by_image[x.tobytes()] for x in loaded] == got.tolist()


def test_npz_of_one_unnamed_array(tmp_path):
    np.savez(tmp_path / "one.npz", np.zeros((4, 5, 5), np.uint8))
    meta = data.info(str(tmp_path / "one.npz"))
    assert meta.image_shape == (5, 5, 1) and meta.num_classes is None


# --- runs ---------------------------------------------------------------------------------------


def test_a_run_reads_the_folder_at_its_size_and_builds_a_model_of_that_shape(folder):
    root, _ = folder
    config = RunConfig(data=str(root), image_size=8, conditional=True, color_levels=8)
    meta = data.info(config.data, image_size=8, color_levels=8)
    keywords = model_config(config, meta)
    assert keywords["image_shape"] == [8, 8, 3] and keywords["levels"] == 8
    assert keywords["num_classes"] == 2
    image, label = next(iter(experiment.run_dataset(config, "train")))
    assert tuple(image.shape) == (8, 8, 3) and int(label) in (0, 1)


def test_one_folder_spelled_in_other_ways_is_one_run(folder, monkeypatch):
    root, _ = folder
    monkeypatch.chdir(root.parent)

    def run_of(spec: str) -> str:
        return experiment._open(RunConfig(data=spec, image_size=8)).paths.name

    assert len({run_of(s) for s in (str(root), f"{root}/", f"{root}/../{root.name}/.")}) == 1
    # A relative path stays relative (a project moved elsewhere keeps its runs).
    assert len({run_of(s) for s in ("pictures", "./pictures/", "pictures//")}) == 1


def test_a_folder_named_like_a_dataset_is_not_that_dataset(folder, monkeypatch):
    root, _ = folder
    named = root.parent / "shapes"
    root.rename(named)
    monkeypatch.chdir(root.parent)
    own = experiment._open(RunConfig(data="./shapes", image_size=8))
    builtin = experiment._open(RunConfig(data="shapes", image_size=8))
    assert own.identity["data"] == "./shapes" and builtin.identity["data"] == "shapes"
    assert own.paths.name != builtin.paths.name


def test_load_run_of_a_binarized_run_names_that_run(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (20, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "imgs.npy", images)
    folders = {k: str(tmp_path / k) for k in ("checkpoint_dir", "log_dir", "sample_dir")}
    config = RunConfig(
        data=str(tmp_path / "imgs.npy"),
        binarize="threshold",
        max_steps=1,
        hidden_dims=2,
        recurrent_length=1,
        out_hidden_dims=2,
        out_recurrent_length=1,
        batch_size=8,
        num_samples=1,
        **folders,
    )
    run = experiment.train_and_evaluate(config)["run"]
    _, recorded = experiment.load_run(str(tmp_path / "checkpoint_dir" / run))
    assert recorded.binarize == "threshold"
    assert experiment._open(recorded).paths.name == run


def test_the_memory_check_counts_the_images_held_in_memory(folder, monkeypatch):
    root, _ = folder
    config = RunConfig(data=str(root), batch_size=1, hidden_dims=1)
    meta = data.info(config.data)
    assert data.in_memory_bytes(meta) == 4 * 11 * (8 * 10 * 3 + 4)  # images and labels, 4 times
    monkeypatch.setattr(devices, "available_memory", lambda: data.in_memory_bytes(meta) - 1)
    with pytest.raises(UsageError) as err:
        experiment.check_memory(config, meta)
    assert f"--data={root} (8x10x3 images) with --batch_size=1" in str(err.value)


# --- refusals -----------------------------------------------------------------------------------


def test_mixed_sizes_need_image_size(tmp_path):
    save(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    save(tmp_path / "b.png", np.zeros((6, 5, 3), np.uint8))
    message = error_of(data.info, str(tmp_path))
    assert message == (
        f"folder {tmp_path} holds images of different sizes (4x4 in {tmp_path / 'a.png'}, 5x6 in "
        f"{tmp_path / 'b.png'}): set --image_size to resize them all to one size"
    )
    assert data.info(str(tmp_path), image_size=4).image_shape == (4, 4, 3)


def test_greyscale_and_colour_mixed_are_refused(tmp_path):
    save(tmp_path / "grey.png", np.zeros((4, 4, 1), np.uint8))
    save(tmp_path / "colour.png", np.zeros((4, 4, 3), np.uint8))
    message = error_of(data.info, str(tmp_path))
    assert message.startswith(f"folder {tmp_path} mixes greyscale and colour images")
    assert "grey.png is greyscale" in message and "colour.png is colour" in message


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    message = error_of(data.info, str(tmp_path))
    assert message.startswith(f"folder {tmp_path} holds no PNG or JPEG images")


def test_too_few_images_for_a_test_split(tmp_path):
    save(tmp_path / "only" / "one.png", np.zeros((4, 4, 1), np.uint8))
    message = error_of(data.info, str(tmp_path / "only"))
    assert message.startswith(f"folder {tmp_path / 'only'} holds 1 image: at least 2 are needed")
    np.save(tmp_path / "one.npy", np.zeros((1, 4, 4), np.uint8))
    message = error_of(data.info, str(tmp_path / "one.npy"))
    assert message.startswith(f"{tmp_path / 'one.npy'} holds 1 image: at least 2")


def test_unreadable_files_are_named(tmp_path):
    save(tmp_path / "pictures" / "good.png", np.zeros((4, 4, 1), np.uint8))
    (tmp_path / "pictures" / "broken.png").write_bytes(b"not a png")
    message = error_of(data.info, str(tmp_path / "pictures"))
    assert message.startswith(f"cannot read image {tmp_path / 'pictures' / 'broken.png'}: ")
    (tmp_path / "broken.npy").write_bytes(b"not an array")
    message = error_of(data.info, str(tmp_path / "broken.npy"))
    assert message.startswith(f"cannot read {tmp_path / 'broken.npy'}: ")
    message = error_of(data.info, str(tmp_path / "missing.npz"))
    assert message == f"cannot read {tmp_path / 'missing.npz'}: no such file"


def test_linked_subfolders_are_read_once_and_a_link_back_up_ends(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    for k in range(3):
        save(elsewhere / f"{k}.png", np.zeros((4, 4, 1), np.uint8))
    root = tmp_path / "root"
    for k in range(2):
        save(root / "own" / f"{k}.png", np.zeros((4, 4, 1), np.uint8))
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    (root / "own" / "up").symlink_to(root, target_is_directory=True)  # a loop
    files = own_data._image_files(str(root))
    assert [os.path.relpath(f, root) for f in files] == [
        "linked/0.png",
        "linked/1.png",
        "linked/2.png",
        "own/0.png",
        "own/1.png",
    ]


def test_npz_without_an_image_array(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((3, 4, 4)), b=np.zeros(3))
    message = error_of(data.info, str(tmp_path / "two.npz"))
    assert message == (
        f"{tmp_path / 'two.npz'} holds no image array (its arrays: a, b): name the images "
        "'images' or 'x' (and the labels 'labels' or 'y')"
    )


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((3, 4, 4, 4), np.uint8), "holds an array of shape (3, 4, 4, 4): images must"),
        (np.zeros((3, 4), np.uint8), "holds an array of shape (3, 4): images must"),
        (np.full((3, 4, 4), 2.5e3, np.float32), "float images must be in [0, 1] or [0, 255]"),
        (np.full((3, 4, 4), -1, np.int32), "integer images must be in [0, 255]"),
        (np.full((3, 4, 4), np.nan, np.float32), "NaN or infinite"),
        (np.zeros((3, 0, 4), np.uint8), "holds images of shape (0, 4, 1): no side may be 0"),
    ],
)
def test_arrays_that_are_not_images_are_refused(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    assert message in error_of(data.info, str(tmp_path / "bad.npy"))


def test_array_files_are_read_by_what_they_hold_and_objects_are_not_unpickled(tmp_path):
    images = np.zeros((4, 4, 4), np.uint8)
    with open(tmp_path / "archive.npy", "wb") as f:
        np.savez(f, images=images)  # an archive under a .npy name
    with open(tmp_path / "array.npz", "wb") as f:
        np.save(f, images)  # an array under a .npz name
    for name in ("archive.npy", "array.npz"):
        assert data.info(str(tmp_path / name)).image_shape == (4, 4, 1)
    (tmp_path / "junk.npz").write_bytes(b"not numpy")
    message = error_of(data.info, str(tmp_path / "junk.npz"))
    assert message.endswith("junk.npz: it is neither a .npy array nor a .npz archive of arrays")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    message = error_of(data.info, str(tmp_path / "objects.npy"))
    assert "holds Python objects (pickled), which are not read" in message
    assert "allow_pickle" not in message


@pytest.mark.parametrize("binarize", ["none", "threshold"])
def test_color_levels_on_binary_own_data_is_refused(tmp_path, binarize):
    values = (0, 2) if binarize == "none" else (0, 256)  # 0/1 images, or greys to binarize
    np.save(tmp_path / "d.npy", np.random.default_rng(0).integers(*values, (20, 4, 4), np.uint8))
    config = RunConfig(data=str(tmp_path / "d.npy"), color_levels=8, binarize=binarize)
    with pytest.raises(UsageError, match="--color_levels=8: --data=.*d.npy has 2 levels of its"):
        experiment._open(config)


def test_arrays_are_converted_block_by_block_to_the_same_values(monkeypatch):
    monkeypatch.setattr(own_data, "_BLOCK_BYTES", 3 * 4 * 4 * 4)  # 3 images a block
    rng = np.random.default_rng(0)
    floats = rng.random((10, 4, 4, 1)).astype(np.float32)
    assert [len(b) for b in own_data._blocks(floats)] == [3, 3, 3, 1]
    whole = np.clip(np.round(floats * 255.0), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(own_data._to_uint8(floats, 255.0), whole)
    resized = own_data._to_uint8(floats, 255.0, size=2)  # converted and resized per block
    np.testing.assert_array_equal(resized, own_data._resize(whole, 2).numpy())
    bits = rng.integers(0, 2, (10, 4, 4, 1)).astype(np.float32)
    assert own_data._value_scale(bits, "bits") == (255.0, True)
    bits[-1, 0, 0, 0] = 0.5  # in the last block only
    assert own_data._value_scale(bits, "bits") == (255.0, False)


def test_labels_must_be_one_integer_per_image(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 4, 4), np.uint8), labels=np.zeros(3, int))
    message = error_of(data.info, str(tmp_path / "d.npz"))
    assert "holds labels of shape (3,): give one per image, shape (4,)" in message
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 4, 4), np.uint8), labels=np.full(4, 10**9))
    message = error_of(data.info, str(tmp_path / "d.npz"))
    assert "holds labels up to 1000000000: class labels must be 0..K-1 with K <= 100000" in message


def test_unknown_specs_and_options_are_refused(tmp_path):
    assert "tfds:NAME" in error_of(data.info, str(tmp_path / "nothing_here"))
    assert (
        error_of(data.info, "tfds:")
        == "tfds: needs a tensorflow-datasets name, e.g. tfds:fashion_mnist"
    )
    np.save(tmp_path / "a.npy", np.zeros((3, 4, 4), np.uint8))
    message = error_of(data.info, str(tmp_path / "a.npy"), binarize="sometimes")
    assert message == "binarize must be one of none, threshold, stochastic, got 'sometimes'"
    message = error_of(data.info, "shapes", binarize="threshold")
    assert message.startswith("binarize='threshold' applies to the user's own images")


def test_bad_data_flags_are_refused_when_parsed(tmp_path):
    from absl import flags

    sys.path.insert(0, str(ROOT))
    import flags as project_flags  # noqa: F401  (defines the flags)

    for flag, message in (
        (f"--data={tmp_path / 'nowhere'}", "--data must be one of mnist"),
        ("--binarize=sometimes", "--binarize"),
        ("--image_size=3", "--image_size must be an integer >= 4"),
    ):
        try:
            with pytest.raises(flags.Error) as err:
                flags.FLAGS(["main.py", flag])
        finally:
            flags.FLAGS.unparse_flags()
        assert message in str(err.value)


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.slow
def test_main_trains_on_a_folder_and_writes_samples(folder, tmp_path, capfd, monkeypatch):
    from test_cli import run_in_process

    root, _ = folder
    monkeypatch.chdir(tmp_path)  # the default folders: checkpoints/, logs/, samples/
    args = [
        f"--data={root}",
        "--image_size=8",
        "--color_levels=4",
        "--hidden_dims=4",
        "--recurrent_length=1",
        "--out_hidden_dims=4",
        "--out_recurrent_length=1",
        "--batch_size=4",
        "--num_samples=4",
        "--log_level=WARNING",
    ]
    trained = run_in_process(capfd, *args, "--max_steps=3", "--test_step=3", "--save_step=3")
    assert trained.returncode == 0, trained.stderr[-2000:]
    (run,) = os.listdir(tmp_path / "checkpoints")
    assert run.startswith("pictures-pixel_cnn-")
    assert (tmp_path / "samples" / run / "sample_0000003.png").exists()
    generated = run_in_process(capfd, *args, "--is_train=False")
    assert generated.returncode == 0, generated.stderr[-2000:]
    grid = tmp_path / generated.stdout.strip().splitlines()[-1]
    assert grid.exists() and np.asarray(Image.open(grid)).shape == (2 * 9 + 1, 2 * 9 + 1, 3)
    # A tenth of the 11 images is held out: one test image to complete, not 4.
    completed = run_in_process(capfd, *args, "--is_train=False", "--complete=top_half")
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "--num_samples=4: the test split holds 1 images, all of them completed" in (
        completed.stderr
    )

    bad = run_in_process(capfd, f"--data={root / 'dogs' / 'flat.jpg'}", "--max_steps=1")
    assert bad.returncode == 1 and "--data must be one of" not in bad.stderr
    last = bad.stderr.strip().splitlines()[-1]
    one = root / "dogs" / "flat.jpg"
    assert last == f"error: {one} is one image: give the folder that holds the images (at least 2)"
