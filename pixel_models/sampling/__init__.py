"""Compiled autoregressive sampling for every model of the zoo.

Pixels are drawn one dimension at a time in raster order (row by row, left to
right, and R, G, B within a pixel). The whole loop is one ``tf.function`` with
a ``tf.while_loop`` over positions, so no Python code runs per pixel. Each
step draws the next value from the model's head with a stateless random op
keyed by ``(seed, position)``: the same seed gives the same images.

The *reference* loop runs the full network on the partial image at every
step. The *cached* loop (Ramachandran et al. 2017, Fast Generation for
Convolutional Autoregressive Models) keeps every feature map it needs in a
buffer and computes, at each step, only the outputs at the current position
(and, before each row, what the row's positions share), so a step costs
about 1/(H*W) of a full forward pass. It uses the same random draws as the
reference loop, so both give the same images up to float32 rounding of the
logits, and it is compiled with XLA so that the buffer updates happen in
place.

The cached loop knows no layer kind. Each layer says, in its own file, how it
is evaluated incrementally, through the protocol of
:mod:`pixel_models.layers.incremental`: ``incremental_steps(inputs,
outputs)`` returns its steps, each with a rate (per row or per position), the
windows of the buffered slots it reads, and a function that computes its
outputs. ``MaskedConv2D`` has one position step; ``GatedBlock`` a row step
(its vertical stack, which at row ``i`` has seen only rows above) and a
position step (its horizontal stack); ``RowLSTM``, ``DiagonalLSTM`` and
``DiagonalBiLSTM`` carry their LSTM states in slots of their own, with a row
step for what a row shares (the Row LSTM's state-to-state part, the Diagonal
BiLSTM's right-to-left stream) and one LSTM step per position; the
``PixelHead`` gives the logits. Keras's pointwise layers (``Rescaling``,
``Add``, ``Activation``, ``ReLU``, ``BatchNormalization`` in inference mode)
get theirs from an adapter registered by class. Calls that read only the
conditioning inputs (``CategoryEncoding``, ``Concatenate``, any layer), and
layers that read given pixels only (``GridSubsample``, with
``pixels_read()``) with every layer after them that reads nothing else, run
once per batch before the loop (the latter when every image has all of those
pixels known; else ``method="auto"`` runs the reference loop and
``method="cached"`` refuses).

Layers that change the resolution run at their own rate (Ramachandran et
al. 2017): a step and the slots it writes carry a *scale* ``s`` (one
position per ``s x s`` image positions, kept in buffers of their own size),
the strided ``ShiftedConv2D`` running at its input's scale times its stride
and ``ShiftedConv2DTranspose`` at its input's scale divided by it; a step of
scale ``s`` runs at image rows (and columns) that are multiples of ``s``.
A head that draws a pixel's channels together (the logistic mixture of
PixelCNN++, ``Distribution.joint_channels``) gets one network pass per
pixel instead of one per channel.

So PixelCNN, Gated PixelCNN (unconditional, class- or latent-conditional,
and so the decoder of the autoencoder), PixelRNN, both stages of the
Multi-Scale PixelRNN and PixelCNN++ (at every resolution) sample with it;
:func:`supports_cached` tells, and ``method="auto"`` uses it whenever it can.
Conditional models take their labels or codes through the ``condition``
argument of :func:`sample` and :func:`complete`, in both loops.

The package, by responsibility:

- :mod:`.graph`: the one access to Keras's functional graph (:func:`model_nodes`);
- :mod:`.plan`: the walk over a model's layers, and the plan of its steps;
- :mod:`.evaluate`: running a plan's steps at a row and at a position;
- :mod:`.loops`: the compiled reference and cached loops;
- :mod:`.api`: :func:`sample`, :func:`complete`, :func:`reconstruct`,
  :func:`supports_cached`, :func:`cached_logits`, :func:`class_rows`.
"""

from pixel_models.sampling.api import (
    METHODS,
    cached_logits,
    class_rows,
    complete,
    reconstruct,
    sample,
    supports_cached,
)
from pixel_models.sampling.graph import NodeRecord, image_shape, model_inputs, model_nodes
from pixel_models.sampling.plan import Plan

__all__ = [
    "METHODS",
    "NodeRecord",
    "Plan",
    "cached_logits",
    "class_rows",
    "complete",
    "image_shape",
    "model_inputs",
    "model_nodes",
    "reconstruct",
    "sample",
    "supports_cached",
]
