"""Tests for pixel_models.data: dataset metadata, procedural shapes, loading, batching."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pixel_models import data

SHARED_TFDS = Path(__file__).resolve().parents[2] / "shared" / "tensorflow_datasets"


def _real_data_dir() -> str:
    """Returns a folder with prepared mnist and binarized_mnist, or skips the test."""
    candidates = [os.environ.get("TFDS_DATA_DIR"), str(SHARED_TFDS)]
    for folder in candidates:
        if (
            folder
            and (Path(folder) / "mnist").is_dir()
            and (Path(folder) / "binarized_mnist").is_dir()
        ):
            return folder
    pytest.skip("no prepared tensorflow-datasets folder with mnist and binarized_mnist")


def _images(ds: tf.data.Dataset) -> np.ndarray:
    """Stacks the (unbatched) images of a finite dataset into one array."""
    return np.stack([np.asarray(x) for x in ds.as_numpy_iterator()])


# --- info ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "levels", "classes", "splits", "download"),
    [
        ("mnist", (28, 28, 1), 2, 10, ("train", "test"), True),
        ("binarized_mnist", (28, 28, 1), 2, None, ("train", "validation", "test"), True),
        ("cifar10", (32, 32, 3), 256, 10, ("train", "test"), True),
        ("shapes", (28, 28, 1), 2, 3, ("train", "test"), False),
        ("colored_shapes", (28, 28, 3), 256, None, ("train", "test"), False),
        ("colored_mnist", (28, 28, 3), 256, 10, ("train", "test"), True),
        ("imagenet32", (32, 32, 3), 256, None, ("train", "test"), True),
        ("imagenet64", (64, 64, 3), 256, None, ("train", "test"), True),
        ("rotated_mnist", (28, 28, 1), 256, 10, ("train", "test"), True),
    ],
)
def test_info_describes_each_dataset(name, shape, levels, classes, splits, download):
    meta = data.info(name)
    assert meta == data.DatasetInfo(name, shape, levels, classes, splits, download)
    assert name in data.DATASETS


def test_info_shapes_follows_image_size():
    assert data.info("shapes", image_size=16).image_shape == (16, 16, 1)
    assert data.info("shapes", image_size=4).image_shape == (4, 4, 1)
    # The named tfds datasets have one size: any other is refused, not ignored.
    assert data.info("mnist", image_size=28).image_shape == (28, 28, 1)
    for name, side in (("mnist", 28), ("cifar10", 32), ("imagenet64", 64)):
        with pytest.raises(data.DataError, match=f"image_size=16 applies to .*{side}x{side}"):
            data.info(name, image_size=16)


def test_color_levels_set_the_levels_of_the_coloured_datasets():
    assert data.info("colored_shapes", image_size=8, color_levels=4).levels == 4
    assert data.info("colored_shapes", image_size=8, color_levels=4).image_shape == (8, 8, 3)
    assert data.info("colored_mnist", color_levels=2).levels == 2
    assert data.info("cifar10", color_levels=4).levels == 256  # only the coloured ones
    for bad in (1, 257, 0, 3.5, True):
        with pytest.raises(data.DataError, match="color_levels must be"):
            data.info("colored_shapes", color_levels=bad)


def test_make_colored_shapes_form_and_content():
    images = data.make_colored_shapes(50, 12, seed=1, levels=4)
    assert images.shape == (50, 12, 12, 3) and images.dtype == np.uint8
    assert images.min() >= 0 and images.max() <= 3
    np.testing.assert_array_equal(images, data.make_colored_shapes(50, 12, seed=1, levels=4))
    assert not np.array_equal(images, data.make_colored_shapes(50, 12, seed=2, levels=4))
    colours = [len(np.unique(image.reshape(-1, 3), axis=0)) for image in images]
    # A background and one or two shape colours: never more than three colours.
    assert max(colours) <= 3 and np.mean(np.array(colours) >= 2) > 0.8
    # The background colour is the one of the corner that no shape covers most often.
    assert len(np.unique(images[:, 0, 0].reshape(-1, 3), axis=0)) > 10
    full = data.make_colored_shapes(200, 8, seed=3)
    assert full.max() > 200 and len(np.unique(full)) > 100


def test_load_colored_shapes():
    ds = data.load("colored_shapes", "test", image_size=8, color_levels=4, num_examples=20)
    assert ds.element_spec == tf.TensorSpec((8, 8, 3), tf.uint8)
    images = _images(ds)
    np.testing.assert_array_equal(images, data.make_colored_shapes(2000, 8, seed=1, levels=4)[:20])


def test_info_unknown_name():
    with pytest.raises(data.DataError) as err:
        data.info("foo")
    assert str(err.value) == (
        "unknown dataset 'foo': choose one of mnist, binarized_mnist, cifar10, imagenet32, "
        "imagenet64, shapes, colored_shapes, colored_mnist, rotated_mnist, tfds:NAME (a "
        "tensorflow-datasets image dataset), a folder of PNG/JPEG images or a .npy/.npz file"
    )


@pytest.mark.parametrize("size", [3, 0, -5, 2.5])
def test_info_bad_image_size(size):
    with pytest.raises(data.DataError, match="image_size"):
        data.info("shapes", image_size=size)


def test_data_error_is_value_error():
    assert issubclass(data.DataError, ValueError)


# --- make_shapes --------------------------------------------------------------------------------


def test_make_shapes_form_and_content():
    images = data.make_shapes(500, 28, seed=3)
    assert images.dtype == np.uint8
    assert images.shape == (500, 28, 28, 1)
    assert set(np.unique(images)) <= {0, 1}
    assert 0.05 < images.mean() < 0.7
    # Every image holds at least one visible shape.
    assert images.reshape(500, -1).sum(axis=1).min() > 0


def test_make_shapes_deterministic_per_seed():
    a = data.make_shapes(50, 20, seed=7)
    b = data.make_shapes(50, 20, seed=7)
    c = data.make_shapes(50, 20, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("size", [4, 5, 64])
def test_make_shapes_other_sizes(size):
    images = data.make_shapes(40, size, seed=0)
    assert images.shape == (40, size, size, 1)
    assert set(np.unique(images)) <= {0, 1}
    assert images.reshape(40, -1).sum(axis=1).min() > 0


def test_make_shapes_rejects_small_size():
    with pytest.raises(data.DataError, match="image_size"):
        data.make_shapes(2, 3, seed=0)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = np.arange(size, dtype=np.float32) + 0.5
    return coords[:, None], coords[None, :]


def _box(*values: float) -> data._Boxes:
    return data._Boxes(*(np.array([v]) for v in values))


def test_rectangle_helper():
    ys, xs = _grid(10)
    mask = data._rectangle_masks(ys, xs, _box(2, 3, 4, 5))[0]
    expected = np.zeros((10, 10), dtype=bool)
    expected[3:8, 2:6] = True
    np.testing.assert_array_equal(mask, expected)


def test_ellipse_helper():
    size = 64
    ys, xs = _grid(size)
    mask = data._ellipse_masks(ys, xs, _box(0, 0, size, size / 2))[0]
    # Inscribed in the top half: area about pi/4 of the box, round, centred.
    assert abs(mask.sum() / (size * size / 2) - np.pi / 4) < 0.02
    assert not mask[size // 2 :].any()
    assert mask[size // 4, size // 2] and not mask[0, 0] and not mask[size // 2 - 1, 0]
    np.testing.assert_array_equal(mask, mask[:, ::-1])


@pytest.mark.parametrize("orientation", [0, 1, 2, 3])
def test_triangle_helper(orientation):
    size = 64
    ys, xs = _grid(size)
    args = [_box(0, 0, size, size), np.array([0.5]), np.array([orientation])]
    mask = data._triangle_masks(ys, xs, *args)[0]
    # Half the box, symmetric about the apex's axis, apex on one side, full base opposite.
    assert abs(mask.mean() - 0.5) < 0.03
    oriented = np.rot90(mask, k={0: 0, 1: 2, 2: 3, 3: 1}[orientation])
    assert oriented[-1].all()  # full base at the bottom
    assert oriented[0].sum() <= 2  # apex at the top
    np.testing.assert_array_equal(oriented, oriented[:, ::-1])


def test_triangle_helper_off_centre_apex():
    ys, xs = _grid(20)
    args = [_box(0, 0, 20, 20), np.array([0.0]), np.array([0])]
    mask = data._triangle_masks(ys, xs, *args)[0]
    # Apex at the top-left corner: a right triangle below the diagonal.
    np.testing.assert_array_equal(mask, np.tril(np.ones((20, 20), dtype=bool)))


# --- load("shapes") -----------------------------------------------------------------------------


def test_load_shapes_form():
    ds = data.load("shapes", "train", num_examples=8)
    assert ds.element_spec == tf.TensorSpec((28, 28, 1), tf.uint8)
    images = _images(ds)
    assert images.shape == (8, 28, 28, 1)
    assert set(np.unique(images)) <= {0, 1}
    assert data.load("shapes", "train").cardinality().numpy() == 20000
    assert data.load("shapes", "test").cardinality().numpy() == 2000


def test_load_shapes_image_size():
    ds = data.load("shapes", "test", image_size=12, num_examples=3)
    assert _images(ds).shape == (3, 12, 12, 1)


def test_load_shapes_splits_and_seeds():
    train = _images(data.load("shapes", "train", seed=1, num_examples=20))
    test = _images(data.load("shapes", "test", seed=1, num_examples=20))
    again = _images(data.load("shapes", "train", seed=1, num_examples=20))
    other = _images(data.load("shapes", "train", seed=2, num_examples=20))
    assert not np.array_equal(train, test)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)
    # The first n examples do not depend on n.
    np.testing.assert_array_equal(train[:5], _images(data.load("shapes", seed=1, num_examples=5)))


def test_shapes_are_labelled_by_their_number_of_shapes():
    assert data.info("shapes", image_size=8).num_classes == 3
    pairs = list(data.load("shapes", "test", image_size=8, seed=2, with_labels=True).take(50))
    images = np.stack([image.numpy() for image, _ in pairs])
    labels = np.array([label.numpy() for _, label in pairs])
    assert labels.dtype == np.int32 and set(labels.tolist()) == {0, 1, 2}
    # The same images as without labels, and the labels are the numbers drawn.
    np.testing.assert_array_equal(
        images, _images(data.load("shapes", "test", image_size=8, seed=2, num_examples=50))
    )
    _, counts = data.make_shapes(2000, 8, seed=2 * 2 + 1, return_counts=True)
    np.testing.assert_array_equal(labels, counts[:50] - 1)
    # More shapes drawn, more ink on average.
    ink = images.reshape(len(images), -1).mean(axis=1)
    assert ink[labels == 0].mean() < ink[labels == 2].mean()


def test_colored_shapes_have_no_labels():
    with pytest.raises(data.DataError, match="no labels"):
        data.load("colored_shapes", image_size=8, with_labels=True)


def test_load_unknown_split():
    with pytest.raises(data.DataError) as err:
        data.load("shapes", "validation")
    assert "'validation'" in str(err.value) and "train, test" in str(err.value)
    with pytest.raises(data.DataError, match="train, validation, test"):
        data.load("binarized_mnist", "dev")


def test_load_unknown_dataset():
    with pytest.raises(data.DataError, match="unknown dataset 'foo'"):
        data.load("foo")


def test_load_labels_rejected_before_reading():
    # binarized_mnist has no labels: refused without touching any data folder.
    with pytest.raises(data.DataError, match="no labels"):
        data.load("binarized_mnist", with_labels=True, data_dir="/nonexistent")


# --- pipeline -----------------------------------------------------------------------------------


def _small_dataset(n: int = 10) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(np.arange(n * 4, dtype=np.uint8).reshape(n, 2, 2, 1))


def test_pipeline_eval_is_one_pass():
    batches = list(data.pipeline(_small_dataset(), 4, training=False).as_numpy_iterator())
    assert [b.shape for b in batches] == [(4, 2, 2, 1), (4, 2, 2, 1), (2, 2, 2, 1)]
    np.testing.assert_array_equal(np.concatenate(batches), _images(_small_dataset()))
    dropped = list(data.pipeline(_small_dataset(), 4, training=False, drop_remainder=True))
    assert len(dropped) == 2


def test_pipeline_training_repeats_and_shuffles():
    ds = data.pipeline(_small_dataset(), 4, training=True, seed=0, drop_remainder=True)
    assert ds.element_spec.shape.as_list() == [4, 2, 2, 1]
    batches = list(ds.take(10).as_numpy_iterator())  # 40 examples from 10
    assert len(batches) == 10
    firsts = np.concatenate(batches)[:, 0, 0, 0]
    # Each pass holds every example once.
    for epoch in range(4):
        assert sorted(firsts[epoch * 10 : (epoch + 1) * 10]) == list(range(0, 40, 4))
    assert not np.array_equal(firsts[:10], np.arange(0, 40, 4))  # shuffled
    assert not np.array_equal(firsts[:10], firsts[10:20])  # reshuffled each pass
    again = data.pipeline(_small_dataset(), 4, training=True, seed=0, drop_remainder=True)
    np.testing.assert_array_equal(
        np.concatenate(list(again.take(10).as_numpy_iterator())), np.concatenate(batches)
    )


# --- resolve_data_dir ---------------------------------------------------------------------------


def test_resolve_data_dir(monkeypatch):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    assert data.resolve_data_dir(None) is None
    assert data.resolve_data_dir("") is None
    assert data.resolve_data_dir("/explicit") == "/explicit"
    monkeypatch.setenv("TFDS_DATA_DIR", "/from/env")
    assert data.resolve_data_dir(None) == "/from/env"
    assert data.resolve_data_dir("") == "/from/env"
    assert data.resolve_data_dir("/explicit") == "/explicit"
    monkeypatch.setenv("TFDS_DATA_DIR", "")
    assert data.resolve_data_dir(None) is None


# --- tensorflow-datasets ------------------------------------------------------------------------


def test_unprepared_dataset_without_network(monkeypatch, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")

    def no_network(self, *args, **kwargs):
        raise ConnectionError("network is unreachable\nsecond line")

    monkeypatch.setattr(data, "_unreachable", lambda urls: None)  # the server answers
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)
    with pytest.raises(data.DataError) as err:
        data.load("mnist", "train", data_dir=str(tmp_path))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("cannot load dataset 'mnist': it is not prepared in ")
    assert str(tmp_path) in message
    assert "ConnectionError: network is unreachable" in message
    assert "second line" not in message
    assert "TFDS_DATA_DIR" in message and "--data=shapes" in message


def test_unprepared_dataset_uses_env_dir(monkeypatch, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")

    def no_network(self, *args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(data, "_unreachable", lambda urls: None)  # the server answers
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DataError, match="OSError: offline") as err:
        data.load("cifar10", "test")
    assert str(tmp_path) in str(err.value)


def _closed_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/data.tar.gz"  # nothing listens there now


def test_a_download_server_that_does_not_answer_is_named_at_once(monkeypatch, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    url = _closed_url()

    def must_not_download(self, *args, **kwargs):
        raise AssertionError("download_and_prepare called")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", must_not_download)
    monkeypatch.setattr(data, "_download_urls", lambda builder: [url])
    with pytest.raises(data.DataError) as err:
        data.load("cifar10", "test", data_dir=str(tmp_path))
    host = url.split("/")[2]
    message = str(err.value)
    assert message.startswith(
        f"cannot load dataset 'cifar10': it is not prepared in {tmp_path} and its download "
        f"server {host} cannot be reached (ConnectionError); point --data_dir or TFDS_DATA_DIR"
    )


def test_a_download_server_that_answers_is_left_to_the_download():
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert data._unreachable([f"http://127.0.0.1:{server.server_port}/x.gz"]) is None
    finally:
        server.shutdown()
    assert data._unreachable([]) is None
    assert data._unreachable([_closed_url()]).endswith("cannot be reached (ConnectionError)")


def test_every_named_dataset_lists_its_download_urls():
    tfds = pytest.importorskip("tensorflow_datasets")
    for name in ("mnist", "binarized_mnist", "cifar10", "downsampled_imagenet/32x32"):
        urls = data._download_urls(tfds.builder(name))
        assert urls and all(url.startswith(("http://", "https://")) for url in urls), name


def test_mnist_real(monkeypatch):
    folder = _real_data_dir()
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    for split in ("train", "test"):
        ds = data.load("mnist", split, data_dir=folder, num_examples=500)
        assert ds.element_spec == tf.TensorSpec((28, 28, 1), tf.uint8)
        images = _images(ds)
        assert images.shape == (500, 28, 28, 1)
        assert set(np.unique(images)) <= {0, 1}
        assert 0.08 < images.mean() < 0.2
    labelled = data.load("mnist", "test", data_dir=folder, with_labels=True, num_examples=200)
    assert labelled.element_spec[1] == tf.TensorSpec((), tf.int32)
    labels = np.array([label for _, label in labelled.as_numpy_iterator()])
    assert labels.min() >= 0 and labels.max() <= 9 and len(set(labels)) > 5


def test_mnist_real_via_env(monkeypatch):
    folder = _real_data_dir()
    monkeypatch.setenv("TFDS_DATA_DIR", folder)
    assert _images(data.load("mnist", "test", num_examples=2)).shape == (2, 28, 28, 1)


def test_mnist_test_binarization_is_fixed():
    folder = _real_data_dir()
    a = _images(data.load("mnist", "test", data_dir=folder, seed=0, num_examples=100))
    b = _images(data.load("mnist", "test", data_dir=folder, seed=5, num_examples=100))
    np.testing.assert_array_equal(a, b)
    repeated = _images(data.load("mnist", "test", data_dir=folder, num_examples=100).repeat(2))
    np.testing.assert_array_equal(repeated[:100], repeated[100:])


def test_mnist_train_binarization_is_fresh_each_pass():
    folder = _real_data_dir()
    n = 100
    first = _images(data.load("mnist", "train", data_dir=folder, seed=3, num_examples=n).repeat(2))
    second = _images(data.load("mnist", "train", data_dir=folder, seed=3, num_examples=n).repeat(2))
    other = _images(data.load("mnist", "train", data_dir=folder, seed=4, num_examples=n))
    # New draws on the second pass, same underlying digits.
    assert not np.array_equal(first[:n], first[n:])
    assert np.mean(first[:n] == first[n:]) > 0.9
    # Reproducible for a seed, different across seeds.
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first[:n], other)


def test_mnist_train_pipeline_reproducible():
    folder = _real_data_dir()

    def run() -> np.ndarray:
        ds = data.load("mnist", "train", data_dir=folder, seed=1, num_examples=64)
        ds = data.pipeline(ds, 32, training=True, seed=1)
        return np.concatenate(list(ds.take(4).as_numpy_iterator()))

    np.testing.assert_array_equal(run(), run())


def test_binarized_mnist_real():
    folder = _real_data_dir()
    ds = data.load("binarized_mnist", "test", data_dir=folder)
    assert ds.element_spec == tf.TensorSpec((28, 28, 1), tf.uint8)
    assert ds.cardinality().numpy() == 10000
    (batch,) = list(ds.batch(10000).as_numpy_iterator())
    assert batch.shape == (10000, 28, 28, 1)
    assert set(np.unique(batch)) == {0, 1}
    assert 0.08 < batch.mean() < 0.2
    validation = data.load("binarized_mnist", "validation", data_dir=folder, num_examples=3)
    assert _images(validation).shape == (3, 28, 28, 1)


def test_colored_mnist_real(monkeypatch):
    folder = _real_data_dir()
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    ds = data.load("colored_mnist", "test", data_dir=folder, num_examples=64, with_labels=True)
    assert ds.element_spec == (
        tf.TensorSpec((28, 28, 3), tf.uint8),
        tf.TensorSpec((), tf.int32),
    )
    pairs = list(ds.as_numpy_iterator())
    images = np.stack([image for image, _ in pairs])
    labels = np.array([label for _, label in pairs])
    again = _images(data.load("colored_mnist", "test", data_dir=folder, num_examples=64))
    np.testing.assert_array_equal(images, again)  # the same colours in every run
    plain = data.load("mnist", "test", data_dir=folder, with_labels=True, num_examples=64)
    np.testing.assert_array_equal(labels, [label for _, label in plain.as_numpy_iterator()])
    # The corner is background: its colour differs between images.
    assert len(np.unique(images[:, 0, 0], axis=0)) > 50
    # Digit strokes differ from the background by at least a quarter of the range.
    corner = images[:, :1, :1].astype(int)
    stroke = np.abs(images.astype(int) - corner).max(axis=-1)
    assert (stroke.reshape(64, -1).max(axis=1) >= 60).all()
    few = _images(
        data.load("colored_mnist", "train", data_dir=folder, color_levels=4, num_examples=32)
    )
    assert few.max() <= 3 and len(np.unique(few)) == 4


def test_rotate_images_quarter_turns_are_exact_and_angle_zero_is_identity():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(3, 7, 7, 2)).astype(np.float32)
    for k in range(4):
        angles = np.full(3, k * np.pi / 2, np.float32)
        turned = data.rotate_images(images, angles).numpy()
        np.testing.assert_allclose(turned, np.rot90(images, k, axes=(1, 2)), atol=1e-3)
    # Each image gets its own angle; a non-square image keeps its shape.
    mixed = data.rotate_images(images, np.array([0, np.pi, np.pi / 2], np.float32)).numpy()
    np.testing.assert_allclose(mixed[0], images[0], atol=1e-3)
    np.testing.assert_allclose(mixed[1], images[1, ::-1, ::-1], atol=1e-3)
    wide = data.rotate_images(images[:, :4], np.zeros(3, np.float32)).numpy()
    np.testing.assert_allclose(wide, images[:, :4], atol=1e-4)
    # A 45 degree turn moves mass off a corner pixel and keeps the centre.
    corner = np.zeros((1, 7, 7, 1), np.float32)
    corner[0, 3, 3] = corner[0, 0, 0] = 1.0
    half = data.rotate_images(corner, np.array([np.pi / 4], np.float32)).numpy()[0, ..., 0]
    assert half[3, 3] == pytest.approx(1.0) and half[0, 0] == 0.0


def test_rotated_mnist_real(monkeypatch):
    folder = _real_data_dir()
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    assert int(data.load("rotated_mnist", "train", data_dir=folder).cardinality()) == 12000
    assert int(data.load("rotated_mnist", "test", data_dir=folder).cardinality()) == 50000
    ds = data.load("rotated_mnist", "train", data_dir=folder, with_labels=True, num_examples=32)
    assert ds.element_spec == (tf.TensorSpec((28, 28, 1), tf.uint8), tf.TensorSpec((), tf.int32))
    pairs = list(ds.as_numpy_iterator())
    rotated = np.stack([image for image, _ in pairs]).astype(np.float32)
    originals = [
        (image, label)
        for image, label in data._tfds_dataset("mnist", "train", folder)
        .take(32)
        .map(data._image_and_label)
        .as_numpy_iterator()
    ]
    assert [label for _, label in pairs] == [label for _, label in originals]
    digits = np.stack([image for image, _ in originals]).astype(np.float32)
    # The same digits, turned: about the same ink, not in the same places.
    ink = rotated.sum(axis=(1, 2, 3)) / digits.sum(axis=(1, 2, 3))
    assert np.all((ink > 0.8) & (ink < 1.2))
    moved = np.abs(rotated - digits).sum(axis=(1, 2, 3)) / digits.sum(axis=(1, 2, 3))
    assert np.mean(moved > 0.5) > 0.75
    again = _images(data.load("rotated_mnist", "train", data_dir=folder, num_examples=32))
    np.testing.assert_array_equal(again, rotated.astype(np.uint8))  # fixed angles
    test = _images(data.load("rotated_mnist", "test", data_dir=folder, num_examples=4))
    assert test.shape == (4, 28, 28, 1) and test.max() > 100
