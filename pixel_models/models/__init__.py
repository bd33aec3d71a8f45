"""Model builders: each returns a ``keras.Model`` from images to logits (per-pixel logits
of the image distribution, or class logits for a classifier).

One file per model; the pieces they share are in :mod:`pixel_models.models.common`.
A builder whose models are not plain density models declares their kind
(``builder.model_kind``, see :mod:`pixel_models.kinds`). A new model is a file
here and an entry of ``MODELS``."""

from pixel_models.models.autoencoder import PixelAutoencoder, autoencoder
from pixel_models.models.common import model_input
from pixel_models.models.gated_pixel_cnn import gated_pixel_cnn
from pixel_models.models.invariant_cnn import invariant_cnn
from pixel_models.models.multiscale_pixel_rnn import MultiScalePixelRNN, multiscale_pixel_rnn
from pixel_models.models.pixel_cnn import pixel_cnn
from pixel_models.models.pixel_cnn_pp import pixel_cnn_pp
from pixel_models.models.pixel_rcnn import pixel_rcnn
from pixel_models.models.pixel_rnn import pixel_rnn
from pixel_models.models.pixel_snail import pixel_snail

MODELS = {
    "pixel_cnn": pixel_cnn,
    "pixel_rnn": pixel_rnn,
    "gated_pixel_cnn": gated_pixel_cnn,
    "autoencoder": autoencoder,
    "pixel_rcnn": pixel_rcnn,
    "multiscale_pixel_rnn": multiscale_pixel_rnn,
    "invariant_cnn": invariant_cnn,
    "pixel_snail": pixel_snail,
    "pixel_cnn_pp": pixel_cnn_pp,
}

__all__ = [
    "MODELS",
    "MultiScalePixelRNN",
    "PixelAutoencoder",
    "autoencoder",
    "gated_pixel_cnn",
    "invariant_cnn",
    "model_input",
    "multiscale_pixel_rnn",
    "pixel_cnn",
    "pixel_cnn_pp",
    "pixel_rcnn",
    "pixel_rnn",
    "pixel_snail",
]
