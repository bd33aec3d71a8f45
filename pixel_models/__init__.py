"""pixel_models: autoregressive image models for TensorFlow 2 / Keras 3.

The public API::

    import pixel_models as pm
    model = pm.build_model("pixel_cnn", image_shape=(28, 28, 1), levels=2)
    images = pm.sample(model, num_samples=16, seed=0)
"""

from __future__ import annotations

import inspect

import keras

from pixel_models import data
from pixel_models.distributions import (
    Bernoulli,
    Categorical,
    LogisticMixture,
    PixelHead,
    bits_per_dim,
    distribution_of,
    head_of,
)
from pixel_models.experiment import LoadedRun, load_run
from pixel_models.layers import GatedBlock, MaskedConv2D, make_mask
from pixel_models.losses import NLL, BitsPerDim, PixelNLL, fit_data
from pixel_models.models import MODELS
from pixel_models.runs import RunError
from pixel_models.sampling import complete, reconstruct, sample

__version__ = "0.1.0"


def build_model(name: str, **config) -> keras.Model:
    """Builds the model ``name`` (a key of ``MODELS``) with keyword ``config``.

    Example:

    >>> model = build_model("pixel_cnn", image_shape=(8, 8, 1), hidden_dims=4)
    >>> model.name
    'pixel_cnn'
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}")
    parameters = inspect.signature(MODELS[name]).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(config) - set(parameters))
        if unknown:
            raise TypeError(
                f"{name} takes no argument {', '.join(map(repr, unknown))}: its arguments "
                f"are {', '.join(parameters)}"
            )
    return MODELS[name](**config)


__all__ = [
    "MODELS",
    "NLL",
    "Bernoulli",
    "BitsPerDim",
    "Categorical",
    "GatedBlock",
    "LoadedRun",
    "LogisticMixture",
    "MaskedConv2D",
    "PixelHead",
    "PixelNLL",
    "RunError",
    "bits_per_dim",
    "build_model",
    "complete",
    "data",
    "distribution_of",
    "fit_data",
    "head_of",
    "load_run",
    "make_mask",
    "reconstruct",
    "sample",
]
