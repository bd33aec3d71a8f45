"""Tests of PixelRCNN: causality with dependent and independent colour channels,
exact normalisation, serialization, cached sampling and learning."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import pixel_models as pm
from pixel_models.models import pixel_rcnn
from pixel_models.testing import assert_causal, random_images, round_trips, total_probability
from pixel_models.testing import sharpen as _sharpen


def _small(image_shape, levels=2, color_dependence="dependent", seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    config = dict(
        hidden_dims=6,
        recurrent_length=2,
        out_hidden_dims=6,
        out_recurrent_length=1,
        first_kernel_size=3,
        color_dependence=color_dependence,
    )
    config.update(kwargs)
    return pixel_rcnn(image_shape, levels=levels, **config)


def _same_pixel(found):
    """``[i, j, c, c']``: output channel c of pixel (i, j) depends on its channel c'."""
    height, width = found.shape[:2]
    return np.stack(
        [np.stack([found[i, j, :, i, j, :] for j in range(width)]) for i in range(height)]
    )


# ---------------------------------------------------------------------------
# Causality: dependent and independent colour channels
# ---------------------------------------------------------------------------


def test_dependent_channels_see_the_earlier_channels_of_their_pixel():
    model = _sharpen(_small((4, 4, 3), 4, hidden_dims=12, first_kernel_size=5), seed=1)
    found = assert_causal(lambda x: model(x, training=False), (4, 4, 3))
    same = _same_pixel(found)
    # Exactly the channels before: G sees R, B sees R and G, R sees none
    # (assert_causal rules out the others; a ReLU may hide one at a pixel).
    expected = np.tril(np.ones((3, 3), bool), k=-1)
    np.testing.assert_array_equal(same.any(axis=(0, 1)), expected)
    assert same[..., 2, 0].mean() > 0.5 and same[..., 1, 0].mean() > 0.5
    assert found[-1, -1].any(axis=(0, 3)).reshape(-1)[:-1].all()


def test_independent_channels_see_past_pixels_only():
    model = _small((4, 4, 3), 4, "independent", hidden_dims=12, first_kernel_size=5)
    model = _sharpen(model, seed=1)
    found = assert_causal(lambda x: model(x, training=False), (4, 4, 3))
    assert not _same_pixel(found).any()
    assert found[-1, -1].any(axis=(0, 3)).reshape(-1)[:-1].all()
    # Every output channel of a pixel reads the same past.
    np.testing.assert_array_equal(found[-1, -1, 0], found[-1, -1, 2])


@pytest.mark.parametrize("color_dependence", ["dependent", "independent"])
@pytest.mark.parametrize(
    "image_shape, levels", [((3, 3, 1), 2), ((2, 2, 3), 2)], ids=["binary3x3", "rgb2x2"]
)
def test_total_probability_is_one(image_shape, levels, color_dependence):
    model = _sharpen(_small(image_shape, levels, color_dependence), seed=2)
    assert total_probability(model) == pytest.approx(1.0, abs=1e-4)


def test_training_mode_batch_statistics_mix_positions():
    # Documented: in training mode a batch norm's statistics come from the
    # whole batch, later pixels included; inference mode is exactly causal.
    model = _small((3, 3, 1))
    with pytest.raises(AssertionError, match="forbidden dependencies"):
        assert_causal(lambda x: model(x, training=True), (3, 3, 1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(color_dependence="mixed"), "color_dependence must be one of"),
        (dict(hidden_dims=7), "hidden_dims must be even"),
        (dict(recurrent_length=-1), "recurrent_length must be an int >= 0"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _small((4, 4, 1), **kwargs)


def test_too_few_features_for_the_colour_groups_are_named():
    message = "hidden_dims must be at least 6: the blocks halve it, and each half needs a feature"
    with pytest.raises(ValueError, match=message):
        _small((4, 4, 3), hidden_dims=4)
    _small((4, 4, 3), hidden_dims=4, color_dependence="independent")  # one group: enough


# ---------------------------------------------------------------------------
# Serialization and sampling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("color_dependence", ["dependent", "independent"])
def test_round_trips_give_identical_outputs(tmp_path, color_dependence):
    model = _sharpen(_small((4, 4, 3), 256, color_dependence), seed=3)
    clone, _ = round_trips(model, random_images(model, 3), tmp_path)
    groups = 3 if color_dependence == "dependent" else 1
    assert clone.get_layer("conv_a").color_channels == groups


@pytest.mark.parametrize("color_dependence", ["dependent", "independent"])
def test_cached_sampling_matches_the_full_network_and_the_reference(color_dependence):
    model = _sharpen(_small((3, 4, 3), 4, color_dependence), seed=4)
    assert pm.sampling.supports_cached(model)
    x = random_images(model, 3, seed=5)
    np.testing.assert_allclose(
        pm.sampling.cached_logits(model, x), model(x, training=False).numpy(), atol=1e-4
    )
    for seed in (0, 1):
        cached = pm.sample(model, 4, seed=seed)
        np.testing.assert_array_equal(cached, pm.sample(model, 4, seed=seed, method="reference"))
    assert len({image.tobytes() for image in cached}) > 1


# ---------------------------------------------------------------------------
# Learning
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_pixel_rcnn_learns_colored_shapes():
    from shapes_learning import train_on_colored_shapes

    def build():
        return pixel_rcnn(
            (8, 8, 3), levels=4, hidden_dims=24, recurrent_length=2, out_hidden_dims=24
        )

    _, after = train_on_colored_shapes(build, 300, "pixel_rcnn")
    assert after < 0.6 * 2.0
