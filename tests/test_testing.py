"""The checks of ``pixel_models.testing`` catch what they are for."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import pixel_models as pm
from pixel_models.testing import assert_causal, total_probability


def _centred_leak(image_shape) -> keras.Model:
    """Logits ``[-s, s]`` of an unmasked convolution ``s``: each level's logit
    sees the pixel itself and later ones, though their sum sees nothing."""
    images = keras.Input(image_shape)
    s = keras.layers.Conv2D(1, 3, padding="same")(images)
    logits = keras.layers.Concatenate()([keras.layers.Lambda(lambda t: -t)(s), s])
    return keras.Model(images, pm.PixelHead("categorical", 1, 2)(logits))


def test_a_leak_that_cancels_over_the_levels_is_caught():
    with pytest.raises(AssertionError, match="forbidden dependencies"):
        assert_causal(_centred_leak((3, 3, 1)), (3, 3, 1))


def test_a_model_without_per_pixel_outputs_is_refused_by_name():
    classifier = pm.build_model(
        "invariant_cnn", image_shape=(4, 4, 1), num_classes=3, base_width=2, stages=(1,)
    )
    with pytest.raises(ValueError, match="needs outputs \\(B, H, W, C_out, ...\\) of images"):
        assert_causal(classifier, (4, 4, 1))
    with pytest.raises(ValueError, match="has no PixelHead layer: a density model of this"):
        pm.head_of(classifier)


class _Subclassed(keras.Model):
    """A user's subclassed model: one masked convolution and a head."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = pm.MaskedConv2D(1, 3, mask_type="A")
        self.head = pm.PixelHead("bernoulli", 1, 2)

    def call(self, x):
        return self.head(self.conv(x))


class _WithShape(_Subclassed):
    @property
    def input_shape(self):
        return (None, 3, 3, 1)


def test_a_subclassed_model_is_sampled_once_it_says_its_input_shape():
    plain, shaped = _Subclassed(name="sub"), _WithShape(name="shaped")
    for model in (plain, shaped):
        model(np.zeros((1, 3, 3, 1), "float32"))
    with pytest.raises(ValueError, match="model 'sub' has no input shape: build it as"):
        pm.sample(plain, 2)
    assert pm.sample(shaped, 2, seed=0).shape == (2, 3, 3, 1)
    assert total_probability(shaped) == pytest.approx(1.0, abs=1e-5)
