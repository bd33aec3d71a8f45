"""Model builders: each returns a ``keras.Model`` from images to logits."""

from pixel_models.models.pixel_cnn import model_input, pixel_cnn

MODELS = {"pixel_cnn": pixel_cnn}

__all__ = ["MODELS", "model_input", "pixel_cnn"]
