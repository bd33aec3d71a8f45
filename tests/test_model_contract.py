"""The contract every model of ``MODELS`` passes, run for each entry.

Each density model is built at tiny sizes from the builder's own defaults
(only the sizes below are set, where the builder takes them), its weights
moved far from initialisation, and checked for its output shapes and head,
causality, exact normalisation, cached == reference sampling, and save/load. A model's own
test file holds only what is special to it; a new entry of ``MODELS`` is
checked here without any edit.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest

import pixel_models as pm
from pixel_models.distributions import distribution_of
from pixel_models.kinds import kind_for_builder, kind_of
from pixel_models.models import MODELS
from pixel_models.testing import (
    assert_causal,
    random_images,
    round_trips,
    sharpen_every_weight,
    total_probability,
)

# Sizes small enough to enumerate every image; set only where a builder takes them.
TINY = {
    "hidden_dims": 6,  # split into colour groups of 3 channels
    "recurrent_length": 1,
    "out_hidden_dims": 6,
    "out_recurrent_length": 1,
    "encoder_dims": 2,
    "latent_dims": 2,
    "upsample_length": 1,
    "num_resnet": 1,
    "num_resolutions": 2,  # still one strided and one transposed convolution
    "num_mixtures": 2,
    "num_blocks": 1,
    "residual_blocks": 1,
    "key_dims": 4,
    "value_dims": 4,
}
DENSITY_MODELS = sorted(name for name in MODELS if kind_for_builder(name).draws_images)
SHAPES = [((3, 3, 1), 2), ((2, 2, 3), 2)]  # (image shape, levels): binary, and colour
SHAPE_IDS = ["3x3_binary", "2x2_rgb_binary"]


def build(name: str, image_shape, levels: int, seed: int = 0) -> keras.Model:
    parameters = inspect.signature(MODELS[name]).parameters
    sizes = {k: v for k, v in TINY.items() if k in parameters}
    keras.utils.set_random_seed(seed)
    model = pm.build_model(name, image_shape=image_shape, levels=levels, **sizes)
    return sharpen_every_weight(model, seed=seed)


def conditions(model: keras.Model, num: int, seed: int = 0) -> list[np.ndarray]:
    """Random values for the model's inputs after the images (labels, codes)."""
    rng = np.random.default_rng(seed)
    values = []
    for tensor in model.inputs[1:]:
        shape = (num, *(int(d) for d in tensor.shape[1:]))
        if "int" in str(tensor.dtype):
            values.append(rng.integers(0, 2, shape).astype("int32"))
        else:
            values.append(rng.normal(size=shape).astype("float32"))
    return values


def density_network(model: keras.Model) -> keras.Model:
    """The network whose ``p(x | conditions)`` sums to 1 over images: the model,
    or an autoencoder's decoder (``p(x | z)`` for a code ``z`` given from outside)."""
    return model.decoder if kind_of(model).name == "autoencoder" else model


def raster_network(model: keras.Model) -> keras.Model:
    """The network that is autoregressive in raster order: the density network,
    or the first stage of a model drawn in stages (its later stage sees the
    whole first-stage image, and is checked by its own tests)."""
    stages = kind_of(model).stages(model)
    return density_network(model) if stages is None else stages[0]


def condition_of(network: keras.Model, num: int):
    """``condition=`` for :func:`pixel_models.sample` / ``total_probability``."""
    extra = conditions(network, num)
    if not extra:
        return None
    return extra[0] if len(extra) == 1 else tuple(extra)


HEAD_SHAPES = [((4, 4, 1), 2), ((3, 4, 3), 2), ((4, 4, 1), 256), ((3, 2, 3), 256)]
HEAD_IDS = ["4x4_binary", "3x4_rgb_binary", "4x4_256", "3x2_rgb_256"]


@pytest.mark.parametrize("shape, levels", HEAD_SHAPES, ids=HEAD_IDS)
@pytest.mark.parametrize("name", DENSITY_MODELS)
def test_output_shapes_and_heads(name, shape, levels):
    """Images ``(B, H, W, C)`` in, a head of ``C`` channels and ``levels`` values
    out: Bernoulli for binary data and categorical otherwise, unless the model
    has a mixture head."""
    model = build(name, shape, levels)
    assert model.name == name
    assert tuple(model.inputs[0].shape) == (None, *shape)
    dist = distribution_of(model)
    assert dist.kind in ("logistic_mixture", "bernoulli" if levels == 2 else "categorical")
    assert (dist.channels, dist.levels) == (shape[-1], levels)
    assert pm.head_of(model).name == "head"
    # One logit per channel, one per channel and level, or a mixture's
    # parameters (their count is checked by the mixture's own tests).
    per_pixel = {"bernoulli": shape[-1:], "categorical": (shape[-1], levels)}
    logit_shape = per_pixel.get(dist.kind, dist.logit_shape)
    assert model.output_shape == (None, *shape[:2], *logit_shape)
    x = random_images(model, 2)
    logits = model([x, *conditions(model, 2)] if len(model.inputs) > 1 else x)
    assert tuple(logits.shape) == (2, *shape[:2], *logit_shape)
    assert logits.dtype == "float32"
    assert tuple(dist.log_prob(logits, x).shape) == (2,)


@pytest.mark.parametrize("shape, levels", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", DENSITY_MODELS)
def test_causal(name, shape, levels):
    network = raster_network(build(name, shape, levels))
    extra = [keras.ops.convert_to_tensor(c) for c in conditions(network, 1)]
    own_shape = tuple(int(d) for d in network.inputs[0].shape[1:])
    # A head that models a pixel's channels together needs logits that see none of them.
    joint = distribution_of(network).joint_channels
    found = assert_causal(
        lambda x: network([x, *extra] if extra else x, training=False),
        own_shape,
        joint_channels=joint,
    )
    if np.prod(own_shape) > 1:  # (a 1x1 binary first stage has nothing to see)
        assert found.any(), f"{name}: no output sees any earlier dimension"


@pytest.mark.parametrize("shape, levels", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", DENSITY_MODELS)
def test_exactly_normalised(name, shape, levels):
    network = density_network(build(name, shape, levels))
    condition = condition_of(network, 1)
    if condition is not None:  # one condition for every image
        condition = tuple(c[0] for c in condition) if isinstance(condition, tuple) else condition[0]
    assert total_probability(network, condition=condition) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("name", DENSITY_MODELS)
def test_cached_sampling_equals_the_reference_loop(name):
    model = density_network(build(name, (3, 3, 1), 2, seed=1))
    condition = condition_of(model, 6)
    drawn = {
        method: pm.sample(model, 6, seed=3, method=method, condition=condition)
        for method in ("cached", "reference")
    }
    np.testing.assert_array_equal(drawn["cached"], drawn["reference"])
    assert len(np.unique(drawn["cached"].reshape(6, -1), axis=0)) > 1  # not all one image


@pytest.mark.parametrize("name", sorted(MODELS))
def test_config_and_saved_file_give_the_same_outputs(name, tmp_path):
    shape = (8, 8, 1) if not kind_for_builder(name).draws_images else (3, 3, 1)
    parameters = inspect.signature(MODELS[name]).parameters
    sizes = {k: v for k, v in TINY.items() if k in parameters}
    if "num_classes" in parameters and kind_for_builder(name).needs_labels:
        sizes["num_classes"] = 3
    model = pm.build_model(name, image_shape=shape, levels=2, **sizes)
    x = np.random.default_rng(0).integers(0, 2, (2, *shape)).astype("float32")
    inputs = [x, *conditions(model, 2)] if len(model.inputs) > 1 else x
    round_trips(model, inputs, tmp_path)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(levels=300), "levels must be an int in \\[2, 256\\], got 300"),
        (dict(levels=2.5), "levels must be an int in \\[2, 256\\], got 2.5"),
        (dict(levels="2"), "levels must be an int in \\[2, 256\\], got '2'"),
        (dict(levels=1), "levels must be an int in \\[2, 256\\], got 1"),
        (dict(image_shape=(4, 4)), "image_shape must be three positive ints"),
        (dict(image_shape=(4.5, 4, 1)), "image_shape must be three positive ints"),
        (dict(image_shape=(4, 0, 1)), "image_shape must be three positive ints"),
    ],
    ids=["levels_300", "levels_float", "levels_str", "levels_1", "rank_2", "float_side", "zero"],
)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_images_the_models_cannot_take_are_refused_by_name(name, arguments, message):
    """Images are uint8 in their data form: more than 256 levels would wrap
    around when drawn, so every builder refuses them before building."""
    parameters = inspect.signature(MODELS[name]).parameters
    sizes = {k: v for k, v in TINY.items() if k in parameters}
    if "num_classes" in parameters and kind_for_builder(name).needs_labels:
        sizes["num_classes"] = 3
    settings = {"image_shape": (4, 4, 1), "levels": 2, **sizes, **arguments}
    with pytest.raises(ValueError, match=message):
        pm.build_model(name, **settings)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_an_argument_the_builder_does_not_take_is_named_with_those_it_does(name):
    with pytest.raises(TypeError, match=f"{name} takes no argument 'hidden_dim': its arguments "):
        pm.build_model(name, image_shape=(4, 4, 1), hidden_dim=3)


COLOUR_GROUPED = ["gated_pixel_cnn", "multiscale_pixel_rnn", "pixel_cnn", "pixel_rcnn", "pixel_rnn"]


@pytest.mark.parametrize("argument", ["hidden_dims", "out_hidden_dims"])
@pytest.mark.parametrize("name", COLOUR_GROUPED)
def test_too_few_features_for_the_colour_groups_are_refused_by_name(name, argument):
    parameters = inspect.signature(MODELS[name]).parameters
    sizes = {k: v for k, v in TINY.items() if k in parameters}
    sizes[argument] = 2
    with pytest.raises(ValueError, match=f"^{argument} must be at least the 3 colour channels"):
        pm.build_model(name, image_shape=(4, 4, 3), levels=4, **sizes)
