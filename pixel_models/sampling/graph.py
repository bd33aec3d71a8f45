"""What the sampler reads of a Keras model: its inputs, and its functional graph.

Every read of Keras's graph goes through :func:`model_nodes`, which returns
plain :class:`NodeRecord` objects; it is the only code of the package that
touches private Keras attributes, and ``tests/test_graph.py`` checks what it
returns on a small model, so that a Keras upgrade that changes them fails
there, loudly, rather than in the sampler.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

import keras


class NotFunctional(ValueError):
    """The model has no functional graph (a subclassed model)."""


@dataclasses.dataclass(frozen=True)
class NodeRecord:
    """One call of a layer in a functional model.

    Args:
      layer: the layer (or other Keras operation) called.
      arguments: its call's arguments bound by parameter name, in the order of
        the signature of ``layer.call``; symbolic tensors (possibly in lists)
        and plain values.
      outputs: the symbolic tensors the call returned.
    """

    layer: Any
    arguments: Mapping[str, Any]
    outputs: tuple

    @property
    def inputs(self) -> list:
        """The symbolic tensors among the arguments, in order."""
        flat = [x for value in self.arguments.values() for x in keras.tree.flatten(value)]
        return [x for x in flat if _is_symbolic(x)]

    def call(self, values: Mapping[int, Any]) -> list:
        """Calls the layer on concrete values.

        Args:
          values: ``id(symbolic tensor) -> value`` for every input of the call.

        Returns:
          The values of :attr:`outputs`, in order.
        """

        def concrete(x):
            return values[id(x)] if _is_symbolic(x) else x

        arguments = {
            name: keras.tree.map_structure(concrete, value)
            for name, value in self.arguments.items()
        }
        args, kwargs = _split(_signature(self.layer), arguments)
        return keras.tree.flatten(self.layer(*args, **kwargs))


def _is_symbolic(x) -> bool:
    return isinstance(x, keras.KerasTensor)


def _signature(layer) -> inspect.Signature:
    return inspect.signature(layer.call)


def _split(signature: inspect.Signature, arguments: Mapping[str, Any]) -> tuple[list, dict]:
    """Positional and keyword arguments of a call from arguments bound by name."""
    args, kwargs = [], {}
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    expected = [p.name for p in signature.parameters.values() if p.kind in positional]
    for name, value in arguments.items():
        kind = signature.parameters[name].kind if name in signature.parameters else None
        if kind is inspect.Parameter.VAR_POSITIONAL:
            args.extend(value)
        elif kind in positional and not kwargs and name in expected[len(args) : len(args) + 1]:
            args.append(value)
        else:
            kwargs[name] = value
    return args, kwargs


def _bind(signature: inspect.Signature, args, kwargs) -> dict:
    """A call's arguments by parameter name (those gathered by ``**kwargs`` by their own)."""
    bound = signature.bind(*args, **kwargs).arguments
    arguments = {}
    for name, value in bound.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        else:
            arguments[name] = value
    return arguments


def model_inputs(model: keras.Model) -> list:
    """The symbolic inputs of a functional model (none for a subclassed one)."""
    try:
        return list(model.inputs or [])
    except AttributeError:
        return []


def image_shape(model: keras.Model) -> tuple[int, int, int]:
    """``(H, W, C)`` of the images a model reads (its first input).

    Example:

    >>> import pixel_models as pm
    >>> digits = pm.build_model("gated_pixel_cnn", image_shape=(4, 6, 1), hidden_dims=2,
    ...                         recurrent_length=1, num_classes=10)
    >>> [tuple(x.shape) for x in digits.inputs], image_shape(digits)
    ([(None, 4, 6, 1), (None,)], (4, 6, 1))
    """
    inputs = model_inputs(model)
    # The images are the first input (a conditional model takes more inputs after them).
    if len(inputs) > 1:
        shape = tuple(inputs[0].shape[1:])
    else:
        try:
            shape = tuple(model.input_shape[1:])
        except AttributeError:  # a subclassed model records no input
            raise ValueError(
                f"model {model.name!r} has no input shape: build it as a functional model "
                "(keras.Input), or give it an input_shape property (B, H, W, C)"
            ) from None
    if len(shape) != 3 or any(v is None for v in shape):
        raise ValueError(f"sampling needs a model with a fixed (H, W, C) input, got {shape}")
    return tuple(int(v) for v in shape)


def model_nodes(model: keras.Model) -> list[NodeRecord]:
    """The layer calls of a functional model, inputs first (topological order).

    Input layers are left out. This is the one function of the package that
    reads Keras's private graph attributes (``_nodes_by_depth``, and a node's
    ``operation``, ``arguments.args``, ``arguments.kwargs`` and
    ``output_tensors``).

    Raises:
      NotFunctional: ``model`` has no functional graph.

    Example:

    >>> import keras
    >>> from pixel_models.layers import MaskedConv2D
    >>> x = keras.Input((4, 4, 1))
    >>> model = keras.Model(x, keras.layers.ReLU()(MaskedConv2D(2, 3, mask_type="A")(x)))
    >>> [(type(r.layer).__name__, list(r.arguments)) for r in model_nodes(model)]
    [('MaskedConv2D', ['inputs']), ('ReLU', ['inputs'])]
    """
    by_depth = getattr(model, "_nodes_by_depth", None)
    if by_depth is None or not model_inputs(model):
        raise NotFunctional(f"model {model.name!r} is not a functional model")
    records = []
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            layer = node.operation
            if isinstance(layer, keras.layers.InputLayer):
                continue
            arguments = _bind(_signature(layer), node.arguments.args, node.arguments.kwargs)
            records.append(NodeRecord(layer, arguments, tuple(node.output_tensors)))
    return records
