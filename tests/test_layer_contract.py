"""The contract every layer of ``pixel_models.layers`` passes: its config is its
constructor's arguments, and ``from_config`` rebuilds an equal layer that
computes the same outputs with the same weights.

Each layer is built with arguments away from its defaults, so that a
constructor argument the config forgot comes back as the default and fails
the comparison. A new layer class exported by the package must get an entry
in ``CASES``.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest

import pixel_models.layers as layers
from pixel_models.layers.serialization import constructor_config

# name: (layer, its input shape), every argument set away from its default.
CASES = {
    "CausalAttention": (
        lambda: layers.CausalAttention(
            heads=2, key_dims=4, value_dims=6, kernel_initializer="he_normal", recompute=False
        ),
        None,
    ),
    "GatedBlock": (
        lambda: layers.GatedBlock(
            6, kernel_size=5, mask_type="A", color_channels=3, bias_initializer="ones"
        ),
        None,
    ),
    "GatedResidual": (
        lambda: layers.GatedResidual(4, kernel_size=1, dropout=0.25, bias_initializer="ones"),
        (1, 4, 4, 4),
    ),
    "GatedResnet": (
        lambda: layers.GatedResnet(direction="down_right", kernel_size=(2, 2), dropout=0.1),
        (1, 4, 4, 4),
    ),
    "GroupConv2D": (
        lambda: layers.GroupConv2D(
            4,
            3,
            group="C4",
            input_kind="group",
            strides=2,
            padding="valid",
            activation="relu",
            use_bias=False,
            bias_initializer="ones",
        ),
        (1, 7, 7, 8),
    ),
    "GroupPooling": (lambda: layers.GroupPooling(group="C4", reduction="mean"), (1, 3, 3, 8)),
    "InvariantConv2D": (
        lambda: layers.InvariantConv2D(4, 3, group="C4", reduction="mean", activation="elu"),
        (1, 5, 5, 1),
    ),
    "GroupBatchNormalization": (
        lambda: layers.GroupBatchNormalization(
            group="C4", momentum=0.9, epsilon=1e-4, center=False, scale=False
        ),
        (1, 3, 3, 8),
    ),
    "MaskedConv2D": (
        lambda: layers.MaskedConv2D(
            6,
            5,
            mask_type="A",
            color_channels=3,
            activation="relu",
            use_bias=False,
            kernel_initializer=keras.initializers.HeNormal(seed=3),
        ),
        (1, 5, 5, 3),
    ),
    "RowLSTM": (
        lambda: layers.RowLSTM(
            6,
            kernel_size=5,
            mask_type="A",
            color_channels=3,
            unit_forget_bias=False,
            recurrent_initializer="glorot_uniform",
            learn_initial_state=True,
        ),
        (1, 4, 4, 3),
    ),
    "DiagonalLSTM": (
        lambda: layers.DiagonalLSTM(
            6, mask_type="A", color_channels=3, bias_initializer="ones", unit_forget_bias=False
        ),
        (1, 4, 4, 3),
    ),
    "DiagonalBiLSTM": (
        lambda: layers.DiagonalBiLSTM(
            4,
            mask_type="A",
            color_channels=2,
            unit_forget_bias=False,
            recurrent_initializer="glorot_uniform",
        ),
        (1, 3, 4, 2),
    ),
    "ShiftedConv2D": (
        lambda: layers.ShiftedConv2D(
            4, (2, 2), direction="down_right", strides=1, shift=True, use_bias=False
        ),
        (1, 4, 4, 2),
    ),
    "ShiftedConv2DTranspose": (
        lambda: layers.ShiftedConv2DTranspose(
            4, (2, 2), direction="down_right", strides=2, target_size=(7, 7), use_bias=False
        ),
        (1, 4, 4, 2),
    ),
    "GridSubsample": (lambda: layers.GridSubsample((2, 3)), (1, 4, 6, 2)),
}

EXPORTED = sorted(
    name
    for name in layers.__all__
    if inspect.isclass(getattr(layers, name))
    and issubclass(getattr(layers, name), keras.layers.Layer)
)


def test_every_exported_layer_has_a_case():
    assert set(EXPORTED) <= set(CASES), sorted(set(EXPORTED) - set(CASES))


def _arguments(layer) -> dict[str, inspect.Parameter]:
    """The named arguments of the layer's constructor (not ``*args``, ``**kwargs``)."""
    skipped = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    parameters = inspect.signature(type(layer).__init__).parameters
    return {n: p for n, p in parameters.items() if n != "self" and p.kind not in skipped}


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_is_the_constructor_arguments(name):
    layer = CASES[name][0]()
    config = layer.get_config()
    arguments = _arguments(layer)
    assert set(arguments) <= set(config), sorted(set(arguments) - set(config))
    rebuilt = type(layer).from_config(config)
    assert rebuilt.get_config() == config
    # The case sets every argument away from its default, so that an argument
    # the config forgot would come back as the default and differ above.
    same = [
        n
        for n, p in arguments.items()
        if p.default is not inspect.Parameter.empty and config[n] == p.default
    ]
    assert not same, f"{name}'s case leaves {same} at the default"


@pytest.mark.parametrize("name", sorted(n for n, (_, shape) in CASES.items() if shape))
def test_rebuilt_layer_computes_the_same(name):
    make, shape = CASES[name]
    layer = make()
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    expected = keras.ops.convert_to_numpy(layer(x))
    rebuilt = type(layer).from_config(layer.get_config())
    rebuilt.build(shape)
    rebuilt.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rebuilt(x)), expected, atol=1e-6)


# How to call the cases that take several inputs (the others take one tensor).
CALLS = {
    "CausalAttention": ((1, 3, 3, 4), lambda layer, x: layer([x, x])),
    "GatedBlock": ((1, 4, 4, 3), lambda layer, x: layer((x, x))[1]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_layer_first_called_in_a_graph_works_eagerly_after(name):
    """Built by its first call inside a ``tf.function`` (as ``fit`` builds the
    layers of a model with no ``Input``), a layer keeps nothing of that graph:
    it still runs there, and eagerly after, with the same outputs."""
    import tensorflow as tf

    make, shape = CASES[name]
    shape, call = CALLS.get(name, (shape, lambda layer, x: layer(x)))
    layer = make()
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    in_graph = keras.ops.convert_to_numpy(tf.function(lambda x: call(layer, x))(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(call(layer, x)), in_graph, atol=1e-6)


def test_a_constructor_argument_without_its_attribute_is_named():
    class Forgetful(keras.layers.Layer):
        def __init__(self, width: int = 2, **kwargs):
            super().__init__(**kwargs)
            self.size = width

    with pytest.raises(AttributeError, match="Forgetful stores no attribute 'width'"):
        constructor_config(Forgetful())
