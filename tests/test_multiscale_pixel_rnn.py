"""Tests for the Multi-Scale PixelRNN: causality, exact normalisation, the NLL split, two-stage
sampling, serialization, checkpoints and learning."""

from __future__ import annotations

import glob
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import pixel_models
from pixel_models import data, sampling, training
from pixel_models.distributions import Bernoulli, Categorical, distribution_of, head_of
from pixel_models.layers.recurrent import DiagonalBiLSTM, RowLSTM
from pixel_models.models.multiscale_pixel_rnn import (
    MultiScalePixelRNN,
    grid_mask,
    multiscale_pixel_rnn,
    small_image_strides,
)
from pixel_models.models.pixel_rnn import RNN_TYPES
from pixel_models.testing import (
    all_images,
    assert_causal,
    dependencies,
    random_images,
    raster_allowed,
    round_trips,
    total_probability,
)
from pixel_models.testing import (
    sharpen_every_weight as _sharpen,
)


def _model(image_shape, small_image_size, levels=2, rnn_type="row_lstm", seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    config = dict(
        image_shape=image_shape,
        levels=levels,
        hidden_dims=4,
        recurrent_length=1,
        out_hidden_dims=4,
        out_recurrent_length=1,
        rnn_type=rnn_type,
        small_image_size=small_image_size,
        upsample_length=1,
    )
    config.update(kwargs)
    return multiscale_pixel_rnn(**config)


def _allowed(image_shape, strides):
    """[i, j, c, k, l, d]: what output (i, j, c) of the multi-scale model may depend on.

    Grid outputs: the grid dimensions before them (the small model is causal).
    Other outputs: the dimensions before them and every grid dimension.
    """
    raster = raster_allowed(image_shape, strict=True)
    grid = grid_mask(image_shape, strides)
    grid_in = grid[None, None, None, :, :, None]
    grid_out = grid[:, :, None, None, None, None]
    return np.where(grid_out, raster & grid_in, raster | grid_in)


# ---------------------------------------------------------------------------
# Arguments and structure
# ---------------------------------------------------------------------------


def test_small_image_strides_and_grid():
    assert small_image_strides((8, 8, 1), 4) == (2, 2)
    assert small_image_strides((8, 8, 1), 8) == (1, 1)
    assert small_image_strides((6, 9, 3), 3) == (2, 3)
    assert small_image_strides((32, 32, 3), 0) == (2, 2)  # 0: half the image
    np.testing.assert_array_equal(
        grid_mask((3, 4, 1), (3, 2)), [[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    )


@pytest.mark.parametrize(
    "image_shape, size, allowed",
    [((4, 4, 1), 3, "1, 2, 4"), ((6, 9, 1), 2, "1, 3"), ((5, 5, 1), 0, "1, 5")],
)
def test_small_image_size_must_divide_the_image(image_shape, size, allowed):
    with pytest.raises(ValueError, match=rf"small_image_size must divide .* one of {allowed}[,;]"):
        _model(image_shape, size)


def test_the_default_small_image_size_is_offered_only_where_it_divides_the_image():
    with pytest.raises(ValueError) as err:
        _model((5, 5, 1), 0)
    assert "one of 1, 5; got 0 (2, half the image size, does not divide it)" in str(err.value)
    with pytest.raises(ValueError, match="one of 1, 2, 4, or 0 for half the image size; got 3$"):
        _model((4, 4, 1), 3)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(recurrent_length=0),
        dict(hidden_dims=0),
        dict(out_recurrent_length=-1),
        dict(upsample_length=-1),
        dict(rnn_type="gru"),
        dict(levels=1),
        dict(image_shape=(4, 4, 3), hidden_dims=2),
    ],
)
def test_invalid_arguments_raise(kwargs):
    config = dict(image_shape=(4, 4, 1), small_image_size=2)
    config.update(kwargs)
    with pytest.raises(ValueError):
        _model(**config)


@pytest.mark.parametrize(
    "rnn_type, lstm_type", [("diagonal_bilstm", DiagonalBiLSTM), ("row_lstm", RowLSTM)]
)
@pytest.mark.parametrize(
    "levels, head_type, logits_shape",
    [(2, Bernoulli, (8, 4, 3)), (256, Categorical, (8, 4, 3, 256))],
)
def test_structure_shapes_and_heads(rnn_type, lstm_type, levels, head_type, logits_shape):
    model = _model((8, 4, 3), 2, levels, rnn_type, hidden_dims=6, recurrent_length=2)
    assert isinstance(model, MultiScalePixelRNN) and model.name == "multiscale_pixel_rnn"
    assert model.strides == (4, 2)
    assert model.input_shape == (None, 8, 4, 3)
    assert model.output_shape == (None, *logits_shape)
    assert model.small_model.input_shape == (None, 2, 2, 3)
    assert model.conditional_model.input_shape == (None, 8, 4, 3)
    dist = distribution_of(model)
    assert isinstance(dist, head_type) and (dist.channels, dist.levels) == (3, levels)
    assert head_of(model.small_model).kind == head_of(model.conditional_model).kind == dist.kind
    conditional = model.conditional_model
    lstms = [layer for layer in conditional.layers if isinstance(layer, lstm_type)]
    assert [layer.name for layer in lstms] == ["lstm0", "lstm1"]
    biases = [conditional.get_layer(f"condition{i}") for i in range(2)]
    assert all(layer.filters == 4 * 6 and layer.kernel_size == (1, 1) for layer in biases)
    upsample = conditional.get_layer("upsample")
    assert upsample.kernel_size == upsample.strides == (4, 2)
    logits = model(random_images(model, 2))
    assert tuple(logits.shape) == (2, *logits_shape) and logits.dtype == tf.float32


# ---------------------------------------------------------------------------
# Causality
# ---------------------------------------------------------------------------


def _check_causal(image_shape, levels, size, rnn_type):
    model = _model(image_shape, size, levels, rnn_type, hidden_dims=6, out_hidden_dims=6)
    strides = model.strides
    # The small model is causal in the usual sense on the small image.
    assert_causal(model.small_model, tuple(model.small_model.input_shape[1:]), strict=True)
    # The whole model: outputs at the grid pixels (the small model's) depend
    # on earlier grid dimensions only; the other outputs (the conditional
    # model's) on earlier dimensions and on any grid pixel.
    found = dependencies(model, image_shape)
    allowed = _allowed(image_shape, strides)
    leaks = np.argwhere(found & ~allowed)
    assert not len(leaks), f"{len(leaks)} forbidden dependencies, e.g. {leaks[0].tolist()}"
    # Not vacuous: an output off the grid sees the last grid pixel, which
    # comes after it (the conditioning), and an earlier pixel off the grid;
    # a grid output sees an earlier grid pixel.
    last = (
        (image_shape[0] - 1) // strides[0] * strides[0],
        (image_shape[1] - 1) // strides[1] * strides[1],
    )
    assert found[0, 1, 0, last[0], last[1]].any()
    assert not raster_allowed(image_shape)[0, 1, 0, last[0], last[1]].any()
    assert found[1, 1, 0, 0, 1].any()
    assert found[0, 2, 0, 0, 0].any()
    assert found.sum() > 0.8 * allowed.sum()


@pytest.mark.parametrize("rnn_type", RNN_TYPES)
@pytest.mark.parametrize(
    "image_shape, levels",
    [((2, 4, 1), 2), pytest.param((2, 4, 3), 4, marks=pytest.mark.slow)],
    ids=["binary", "rgb4"],
)
def test_multiscale_model_is_causal_off_the_grid_and_sees_the_small_image(
    image_shape, levels, rnn_type
):
    _check_causal(image_shape, levels, 2, rnn_type)  # strides (1, 2)


@pytest.mark.slow
@pytest.mark.parametrize("rnn_type", RNN_TYPES)
def test_multiscale_model_is_causal_on_4x4_with_a_2x2_small_image(rnn_type):
    _check_causal((4, 4, 1), 2, 2, rnn_type)


# ---------------------------------------------------------------------------
# Exact normalisation and the NLL split
# ---------------------------------------------------------------------------


def _sum_of_probabilities(model, include_grid_terms=False):
    """Sum over every image of exp(-(nll_small + nll_full_given_small)).

    With ``include_grid_terms`` the conditional model's terms at the grid
    pixels are added too (the grid pixels counted twice): a wrong model.
    """
    images = all_images(tuple(model.input_shape[1:]), distribution_of(model).levels)
    terms = model.nll_terms(images)
    nll = terms["nll_small"] + terms["nll_full_given_small"]
    if include_grid_terms:
        per_dim = distribution_of(model).log_prob_per_dim(model.conditional_model(images), images)
        grid = grid_mask(images.shape[1:], model.strides)
        nll -= tf.reduce_sum(tf.boolean_mask(tf.transpose(per_dim, [1, 2, 0, 3]), grid), [0, 2])
    return float(np.sum(np.exp(-np.asarray(nll, np.float64))))


NORMALISATION_CASES = [
    ((3, 3, 1), 2, 1),  # a 1x1 small image
    ((2, 4, 1), 2, 2),  # strides (1, 2)
    ((2, 2, 3), 2, 1),  # colour
    ((1, 2, 2), 3, 1),  # colour, three levels
]


@pytest.mark.parametrize("rnn_type", RNN_TYPES)
@pytest.mark.parametrize(
    "image_shape, levels, size",
    NORMALISATION_CASES,
    ids=["binary3x3-s1", "binary2x4-s2", "rgb2x2-s1", "levels3-1x2x2-s1"],
)
def test_total_probability_is_one(image_shape, levels, size, rnn_type):
    model = _sharpen(_model(image_shape, size, levels, rnn_type, hidden_dims=6))
    images = all_images(image_shape, levels)
    log_p = distribution_of(model).log_prob(model(images), images).numpy()
    assert log_p.max() - log_p.min() > 0.5  # far from uniform
    assert total_probability(model) == pytest.approx(1.0, abs=1e-4)
    assert _sum_of_probabilities(model) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("rnn_type", RNN_TYPES)
def test_total_probability_is_one_on_4x4_with_a_2x2_small_image(rnn_type):
    model = _sharpen(_model((4, 4, 1), 2, 2, rnn_type, use_residual=True))
    assert total_probability(model, batch_size=4096) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("rnn_type", RNN_TYPES)
def test_nll_is_the_sum_of_its_two_terms(rnn_type):
    model = _sharpen(_model((4, 4, 3), 2, 4, rnn_type, hidden_dims=6))
    x = random_images(model, 5)
    dist = distribution_of(model)
    terms = model.nll_terms(x)
    assert sorted(terms) == ["nll_full_given_small", "nll_small"]
    nll = dist.nll(model(x), x).numpy()
    np.testing.assert_allclose(
        terms["nll_small"].numpy() + terms["nll_full_given_small"].numpy(), nll, rtol=1e-5
    )
    small = x[:, ::2, ::2]
    np.testing.assert_allclose(
        terms["nll_small"].numpy(), dist.nll(model.small_model(small), small).numpy(), rtol=1e-6
    )
    per_dim = dist.log_prob_per_dim(model.conditional_model(x), x).numpy()
    off_grid = ~grid_mask(x.shape[1:], (2, 2))
    np.testing.assert_allclose(
        terms["nll_full_given_small"].numpy(), -per_dim[:, off_grid].sum(axis=(1, 2)), rtol=1e-5
    )
    assert np.all(terms["nll_small"].numpy() > 0) and np.all(terms["nll_full_given_small"] > 0)


@pytest.mark.parametrize("rnn_type", RNN_TYPES)
def test_negative_control_counting_the_grid_twice_breaks_normalisation(rnn_type):
    model = _sharpen(_model((2, 4, 1), 2, 2, rnn_type, hidden_dims=6))
    assert _sum_of_probabilities(model) == pytest.approx(1.0, abs=1e-4)
    wrong = _sum_of_probabilities(model, include_grid_terms=True)
    print(f"{rnn_type}: with the grid pixels counted twice, the total is {wrong:.4f}")
    assert wrong < 0.9


# ---------------------------------------------------------------------------
# Two-stage sampling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rnn_type, image_shape, levels, size",
    [("row_lstm", (4, 4, 1), 2, 2), ("diagonal_bilstm", (2, 2, 3), 4, 1)],
)
def test_two_stage_sampling(rnn_type, image_shape, levels, size):
    model = _sharpen(_model(image_shape, size, levels, rnn_type))
    sh, sw = model.strides
    images = pixel_models.sample(model, 4, seed=3)
    assert images.shape == (4, *image_shape) and images.dtype == np.uint8
    assert images.min() >= 0 and images.max() < levels
    np.testing.assert_array_equal(pixel_models.sample(model, 4, seed=3), images)
    # The grid pixels are the small image the small model draws with that seed.
    small = pixel_models.sample(model.small_model, 4, seed=3)
    np.testing.assert_array_equal(images[:, ::sh, ::sw], small)
    # Completion keeps the known pixels, wherever they are.
    known = np.zeros(image_shape, bool)
    known[: image_shape[0] // 2] = True
    known[-1, -1, 0] = True
    filled = pixel_models.complete(model, images, known, seed=4)
    np.testing.assert_array_equal(filled[:, known], images[:, known])
    np.testing.assert_array_equal(pixel_models.complete(model, images, True, seed=5), images)


def test_the_second_stage_reads_every_bit_of_the_seed():
    model = _sharpen(_model((4, 4, 1), 2))
    images = np.zeros((8, 4, 4, 1), np.float32)
    known = np.zeros(images.shape, bool)
    known[:, ::2, ::2] = True  # the small image given: only the second stage draws
    drawn = [pixel_models.complete(model, images, known, seed) for seed in (5, 5 + 2**31)]
    assert not np.array_equal(*drawn)


def test_two_stage_samples_follow_the_model_probabilities():
    model = _sharpen(_model((2, 2, 1), 1, 2, "row_lstm", hidden_dims=6), scale=3.0)
    images = all_images((2, 2, 1), 2)
    probs = np.exp(distribution_of(model).log_prob(model(images), images).numpy())
    num = 4000
    drawn = sampling.sample(model, num, seed=0, batch_size=num)
    codes = drawn.reshape(num, 4) @ (2 ** np.arange(3, -1, -1))
    freqs = np.bincount(codes, minlength=16) / num
    print("model:", np.round(probs, 3).tolist(), "samples:", np.round(freqs, 3).tolist())
    assert probs.max() > 0.2  # not uniform
    # Four standard deviations of a frequency of 4000 draws at p <= 0.25.
    np.testing.assert_allclose(freqs, probs, atol=4 * math.sqrt(0.25 / num))


# ---------------------------------------------------------------------------
# Serialization and checkpoints
# ---------------------------------------------------------------------------

SERIAL_CASES = [((4, 4, 1), 2, 2, "diagonal_bilstm", True), ((4, 2, 3), 256, 2, "row_lstm", False)]
SERIAL_IDS = ["binary-diagonal-residual", "rgb256-row"]


@pytest.mark.parametrize(
    "image_shape, levels, size, rnn_type, residual", SERIAL_CASES, ids=SERIAL_IDS
)
def test_round_trips_give_identical_outputs(
    tmp_path, image_shape, levels, size, rnn_type, residual
):
    model = _sharpen(_model(image_shape, size, levels, rnn_type, use_residual=residual))
    x = random_images(model, 3)
    _, loaded = round_trips(model, x, tmp_path)
    assert loaded.strides == model.strides
    for name in ("nll_small", "nll_full_given_small"):
        np.testing.assert_array_equal(
            loaded.nll_terms(x)[name].numpy(), model.nll_terms(x)[name].numpy()
        )


def _events(log_dir) -> set[str]:
    tags = set()
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


@pytest.mark.slow
def test_fit_reports_both_terms_checkpoints_and_resumes(tmp_path):
    images = data.make_shapes(48, 4, seed=0)
    train = data.pipeline(tf.data.Dataset.from_tensor_slices(images[:32]), 8, training=True, seed=0)
    test = data.pipeline(tf.data.Dataset.from_tensor_slices(images[32:]), 8, training=False)

    def run(max_steps):
        model = _model((4, 4, 1), 2, seed=max_steps)  # other initial weights each time
        trainer = training.Trainer(model, training.make_optimizer("adam", 1e-2))
        config = training.TrainConfig(
            max_steps=max_steps,
            test_step=3,
            save_step=3,
            checkpoint_dir=str(tmp_path / "ckpt"),
            log_dir=str(tmp_path / "logs"),
            sample_dir=str(tmp_path / "samples"),
            num_samples=4,
            verbose=False,
        )
        return trainer, training.fit(trainer, train, test, config)

    first, metrics = run(3)
    assert first.step == 3
    assert metrics["test/nll"] == pytest.approx(
        metrics["test/nll_small"] + metrics["test/nll_full_given_small"], rel=1e-5
    )
    assert metrics["test/bits_per_dim"] == pytest.approx(metrics["test/nll"] / (16 * math.log(2)))
    direct = first.evaluate(test)
    assert direct["nll"] == pytest.approx(metrics["test/nll"], rel=1e-6)
    expected = np.mean(
        distribution_of(first.model).nll(first.model(images[32:].astype("float32")), images[32:])
    )
    assert direct["nll"] == pytest.approx(float(expected), rel=1e-5)

    second, _ = run(6)  # restores step 3 (weights and optimizer), then trains to 6
    assert second.step == 6
    assert os.path.exists(tmp_path / "ckpt" / "ckpt-6.index")
    tags = _events(tmp_path / "logs")
    assert {"train/nll", "test/nll", "test/bits_per_dim", "samples"} <= tags
    assert {"test/nll_small", "test/nll_full_given_small"} <= tags
    assert sorted(os.listdir(tmp_path / "samples")) == ["sample_0000003.png", "sample_0000006.png"]

    # restore_model (weights only, as main.py --is_train=False does) finds the last step.
    path, step = training.restore_model(_model((4, 4, 1), 2), str(tmp_path / "ckpt"))
    assert step == 6 and path.endswith("ckpt-6")


@pytest.mark.parametrize("rnn_type", RNN_TYPES)
def test_checkpoint_holds_and_restores_every_weight(tmp_path, rnn_type):
    model = _sharpen(_model((4, 4, 1), 2, rnn_type=rnn_type, seed=1))
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path) if "VARIABLE_VALUE" in name]
    fresh = _model((4, 4, 1), 2, rnn_type=rnn_type, seed=2)
    tf.train.Checkpoint(model=fresh).read(path).assert_existing_objects_matched()
    x = random_images(model, 4)
    np.testing.assert_array_equal(fresh(x).numpy(), model(x).numpy())
    assert len(saved) == len(model.weights)
    for restored, original in zip(fresh.weights, model.weights, strict=True):
        np.testing.assert_array_equal(restored.numpy(), original.numpy(), err_msg=original.path)


# ---------------------------------------------------------------------------
# Learning
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_multiscale_pixel_rnn_learns_procedural_shapes():
    from shapes_learning import BASELINE, train_on_shapes

    def build():
        return _model(
            (8, 8, 1), 4, hidden_dims=16, out_hidden_dims=32, use_residual=True, upsample_length=2
        )

    start, final = train_on_shapes(build, 200, "multi-scale, s=4,", test_images=256)
    print(
        f"small {start['nll_small']:.2f} -> {final['nll_small']:.2f}, full given small "
        f"{start['nll_full_given_small']:.2f} -> {final['nll_full_given_small']:.2f} nats"
    )
    assert start["nll"] > 0.9 * BASELINE
    assert final["nll"] < 0.5 * BASELINE
    assert final["nll_small"] < 0.7 * start["nll_small"]
    assert final["nll_full_given_small"] < 0.5 * start["nll_full_given_small"]
