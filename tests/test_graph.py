"""Tests for the sampler's access to Keras's graph and for the incremental protocol.

``model_nodes`` is the one function that reads Keras's private graph
attributes. If a Keras upgrade changes them, the first tests here fail with a
message that says what changed, before any sampler test does.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import pixel_models as pm
from pixel_models.layers import GatedBlock, MaskedConv2D
from pixel_models.layers.incremental import (
    Here,
    Incremental,
    NotIncremental,
    Rate,
    Slot,
    Step,
    Where,
    Whole,
    Window,
    incremental_steps,
)
from pixel_models.sampling import model_nodes
from pixel_models.sampling.graph import NotFunctional
from pixel_models.testing import sharpen_every_weight


def _small_model():
    """Images and labels -> conditional MaskedConv2D -> GatedBlock -> head."""
    images = keras.Input((4, 4, 1), name="images")
    labels = keras.Input((), dtype="int32", name="labels")
    onehot = keras.layers.CategoryEncoding(3, output_mode="one_hot", name="onehot")(labels)
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="rescale")(images)
    x = MaskedConv2D(4, 3, mask_type="A", name="conv")(x, condition=onehot)
    v, h, skip = GatedBlock(4, 3, mask_type="B", name="gated")([x, x], onehot)
    x = keras.layers.Add(name="add")([h, skip])
    logits = MaskedConv2D(1, 1, name="logits")(x)
    return keras.Model([images, labels], pm.PixelHead("bernoulli", 1, 2, name="head")(logits))


def _shapes(value):
    return keras.tree.map_structure(
        lambda t: tuple(t.shape) if isinstance(t, keras.KerasTensor) else t, value
    )


def test_model_nodes_lists_every_call_with_its_arguments_by_name():
    records = model_nodes(_small_model())
    found = [(r.layer.name, type(r.layer).__name__) for r in records]
    expected = [
        ("onehot", "CategoryEncoding"),
        ("rescale", "Rescaling"),
        ("conv", "MaskedConv2D"),
        ("gated", "GatedBlock"),
        ("add", "Add"),
        ("logits", "MaskedConv2D"),
        ("head", "PixelHead"),
    ]
    assert sorted(found) == sorted(expected), (
        f"model_nodes lists other layer calls than the model's ({found}): has Keras changed "
        "Functional._nodes_by_depth or Node.operation?"
    )
    names = [name for name, _ in found]
    for before, after in [("onehot", "conv"), ("rescale", "conv"), ("conv", "gated")]:
        assert names.index(before) < names.index(after), (
            f"model_nodes is not in topological order ({names}): has Keras changed the "
            "meaning of Functional._nodes_by_depth (deepest first)?"
        )
    by_name = {r.layer.name: r for r in records}
    arguments = {name: _shapes(dict(r.arguments)) for name, r in by_name.items()}
    expected_arguments = {
        "onehot": {"inputs": (None,)},
        "rescale": {"inputs": (None, 4, 4, 1)},
        "conv": {"inputs": (None, 4, 4, 1), "condition": (None, 3)},
        "gated": {"inputs": [(None, 4, 4, 4), (None, 4, 4, 4)], "condition": (None, 3)},
        "add": {"inputs": [(None, 4, 4, 4), (None, 4, 4, 4)]},
        "logits": {"inputs": (None, 4, 4, 4)},
        "head": {"inputs": (None, 4, 4, 1)},
    }
    assert arguments == expected_arguments, (
        f"model_nodes binds other call arguments ({arguments}): has Keras changed "
        "Node.arguments.args / Node.arguments.kwargs?"
    )
    outputs = {name: [tuple(t.shape) for t in r.outputs] for name, r in by_name.items()}
    assert outputs["gated"] == [(None, 4, 4, 4)] * 3 and outputs["head"] == [(None, 4, 4, 1)], (
        f"model_nodes gives other output tensors ({outputs}): has Keras changed "
        "Node.output_tensors?"
    )
    # The records' tensors are the model's own: the conv reads the rescaling's output.
    assert by_name["conv"].arguments["inputs"] is by_name["rescale"].outputs[0]
    read = [id(t) for t in by_name["conv"].inputs]
    assert read == [id(by_name["rescale"].outputs[0]), id(by_name["onehot"].outputs[0])]


def test_a_record_calls_its_layer_on_concrete_values():
    model = _small_model()
    records = {r.layer.name: r for r in model_nodes(model)}
    labels = np.array([0, 2], "int32")
    conv, onehot = records["conv"], records["onehot"]
    values = {id(model.inputs[1]): labels}
    (encoded,) = onehot.call(values)
    np.testing.assert_array_equal(encoded, np.eye(3)[labels])
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 1)).astype("float32")
    values = {id(conv.inputs[0]): x, id(conv.inputs[1]): encoded}
    (out,) = conv.call(values)
    np.testing.assert_allclose(out, conv.layer(x, condition=encoded), atol=1e-6)


def test_model_nodes_refuses_a_subclassed_model():
    class Doubler(keras.Model):
        def call(self, x):
            return 2 * x

    with pytest.raises(NotFunctional, match="not a functional model"):
        model_nodes(Doubler())


# The protocol: a new layer kind says how it is evaluated incrementally in its
# own code, and the cached sampler takes it without a change.


@keras.saving.register_keras_serializable(package="pixel_models_tests")
class ShiftedSum(keras.layers.Layer):
    """``y[i, j] = x[i, j] + x[i, j - 1]``, the left neighbour zero at the edge,
    plus a learned vector of the condition: causal in raster order when ``x`` is."""

    def build(self, inputs_shape, condition_shape=None):
        features = int(inputs_shape[-1])
        self.scale = self.add_weight(shape=(3, features), initializer="random_normal")

    def call(self, inputs, condition):
        left = keras.ops.pad(inputs[:, :, :-1], [[0, 0], [0, 0], [1, 0], [0, 0]])
        bias = keras.ops.matmul(condition, self.scale)[:, None, None, :]
        return inputs + left + bias

    def incremental_steps(self, inputs, outputs):
        x, condition = inputs["inputs"], inputs["condition"]
        if x.rate is Rate.CONSTANT or condition.rate is not Rate.CONSTANT:
            raise NotIncremental("needs image features and a constant condition")

        def call(where, window, condition):
            return [window[:, 0, 0] + window[:, 0, 1] + keras.ops.matmul(condition, self.scale)]

        reads = {"window": Window(x, 0, 1, 0), "condition": Whole(condition)}
        return [Step(Rate.POSITION, reads, outputs, call)]


def test_a_new_layer_kind_is_sampled_by_the_cached_loop():
    images = keras.Input((3, 4, 1))
    labels = keras.Input((), dtype="int32")
    onehot = keras.layers.CategoryEncoding(3, output_mode="one_hot")(labels)
    x = MaskedConv2D(4, 3, mask_type="A")(images)
    x = ShiftedSum()(x, onehot)
    model = keras.Model([images, labels], pm.PixelHead("bernoulli", 1, 2)(MaskedConv2D(1, 1)(x)))
    sharpen_every_weight(model, 0)
    assert isinstance(model.layers[-3], Incremental)
    assert pm.sampling.supports_cached(model)
    x = np.random.default_rng(1).integers(0, 2, (3, 3, 4, 1)).astype("float32")
    condition = np.array([0, 1, 2])
    np.testing.assert_allclose(
        pm.sampling.cached_logits(model, x, condition=condition),
        model([x, condition]).numpy(),
        atol=1e-5,
    )
    np.testing.assert_array_equal(
        pm.sample(model, 3, seed=2, method="cached", condition=condition),
        pm.sample(model, 3, seed=2, method="reference", condition=condition),
    )


def test_keras_pointwise_layers_get_a_registered_adapter():
    x, y = Slot(4, "x", Rate.ROW), Slot(4, "y")
    [step] = incremental_steps(keras.layers.ReLU(), {"inputs": x}, [y])
    assert step.rate is Rate.ROW and step.reads == {"x0": Here(x)}
    out = step(Where(0), x0=keras.ops.convert_to_tensor([[[-1.0, 2.0, -3.0, 4.0]]]))
    np.testing.assert_array_equal(out[0], [[[0.0, 2.0, 0.0, 4.0]]])
    given = Slot(4, "labels", Rate.CONSTANT)
    with pytest.raises(NotIncremental, match="mixes conditioning inputs"):
        incremental_steps(keras.layers.Add(), {"inputs": [x, given]}, [y])
    with pytest.raises(NotIncremental, match="has no position-wise form"):
        incremental_steps(keras.layers.Conv2D(1, 1), {"inputs": x}, [y])


def test_a_step_runs_per_row_or_per_position():
    with pytest.raises(ValueError, match="per row or per position"):
        Step(Rate.CONSTANT, {}, [], lambda where: [])
