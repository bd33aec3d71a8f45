"""The one ``get_config`` mechanism of the package's layers: a layer's config
is its constructor's arguments.

Every layer stores each constructor argument under an attribute of the same
name (after checking it), so its config can be read back from the
constructor's signature instead of being written out by hand in every layer::

    def get_config(self):
        return {**super().get_config(), **constructor_config(self)}

``keras.layers.Layer.from_config`` then rebuilds the layer from that dict.
Initializers and activations are stored as objects and written back in
their Keras-serialized form, which the constructors accept.
"""

from __future__ import annotations

import inspect

import keras

_SKIPPED = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def constructor_config(layer, cls: type | None = None) -> dict:
    """The arguments of ``cls.__init__`` (default ``type(layer)``), but ``self``,
    ``*args`` and ``**kwargs``, each read from ``layer``'s attribute of the same
    name.

    ``cls`` names the class whose arguments a base class writes when a
    subclass's constructor takes other ones (the subclass then adjusts the
    dict in its own ``get_config``).

    Example:

    >>> from pixel_models.layers import MaskedConv2D
    >>> config = constructor_config(MaskedConv2D(4, 3, mask_type="A", activation="relu"))
    >>> config["kernel_size"], config["mask_type"], config["activation"]
    ((3, 3), 'A', 'relu')

    Raises:
      AttributeError: naming the argument a layer does not store.
    """
    cls = type(layer) if cls is None else cls
    config = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or parameter.kind in _SKIPPED:
            continue
        if not hasattr(layer, name):
            raise AttributeError(
                f"{cls.__name__} stores no attribute {name!r} for its constructor argument"
            )
        config[name] = _serialized(getattr(layer, name))
    return config


def _serialized(value):
    if isinstance(value, keras.initializers.Initializer):
        return keras.initializers.serialize(value)
    if callable(value):
        return keras.activations.serialize(value)
    return value
