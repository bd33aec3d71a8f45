"""Checks that every autoregressive model of the zoo must pass.

Shared by the test suite and usable by anyone adding a model:

- :func:`dependencies`: which input dimensions each output dimension depends
  on, from gradients at initialisation.
- :func:`raster_allowed`: which dependencies raster order allows.
- :func:`assert_causal`: no output depends on its own or a later dimension.
- :func:`total_probability`: the sum of ``p(x)`` over every image of a tiny
  shape, which is 1 exactly for a correctly normalised causal model (from
  :func:`log_prob_of_every_image`).
- :func:`sharpen`: weights far from the near-uniform initial model, so that
  normalisation and sampling checks are real ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from pixel_models.distributions import distribution_of


def dependencies(
    fn: Callable[[tf.Tensor], tf.Tensor],
    image_shape: tuple[int, int, int],
    num_inputs: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """Which input dimensions each output dimension of ``fn`` depends on.

    ``fn`` maps ``(B, H, W, C_in)`` float32 to ``(B, H, W, C_out, ...)``; the
    trailing axes (e.g. the levels of categorical logits) are summed with
    random weights, so that a dependency cannot hide by raising one level's
    logit as much as it lowers another's (as it would in a plain sum). The
    gradients are taken at ``num_inputs`` random inputs and a dependency is
    any non-zero gradient at any of them (one input can hide a dependency
    behind an inactive ReLU).

    Args:
      fn: the function, e.g. a model or a layer.
      image_shape: ``(H, W, C_in)``.
      num_inputs: random inputs, uniform in ``[-1, 1]``, to take gradients at.
      seed: seed of the random inputs.

    Returns:
      bool array ``(H, W, C_out, H, W, C_in)``: ``[i, j, c, k, l, d]`` is True
      when output ``(i, j, c)`` changes with input ``(k, l, d)``.

    Example:

    >>> from pixel_models.layers import MaskedConv2D
    >>> found = dependencies(MaskedConv2D(1, 3, mask_type="A"), (3, 3, 1))
    >>> found.shape
    (3, 3, 1, 3, 3, 1)
    >>> found[1, 1, 0, :, :, 0].astype(int).tolist()  # what output (1, 1) sees
    [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    """
    rng = np.random.default_rng(seed)
    inputs = [
        tf.constant(rng.uniform(-1.0, 1.0, (1, *image_shape)), tf.float32)
        for _ in range(num_inputs)
    ]
    # Builds the layers' weights outside the compiled jacobian.
    shape = tuple(fn(inputs[0]).shape)
    if len(shape) < 4 or shape[1:3] != tuple(image_shape[:2]):
        raise ValueError(
            f"dependencies needs outputs (B, H, W, C_out, ...) of images {tuple(image_shape)}, "
            f"got outputs of shape {shape} (a classifier has no per-pixel outputs)"
        )
    weights = tf.constant(
        rng.normal(size=(1, *shape[1:4], int(np.prod(shape[4:], dtype=int)))), tf.float32
    )

    @tf.function
    def jacobian(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cast(fn(x), tf.float32)
            y = tf.reshape(y, [1, *y.shape[1:4], -1])
            y = tf.reduce_sum(y * weights, axis=-1)[0]
        # A while loop of gradients, not pfor: the vectorised jacobian of the
        # recurrent layers' while loops crashes TensorFlow with oneDNN on some
        # CPUs (those with AVX512_BF16), and this function must never take
        # the interpreter down.
        return tape.jacobian(y, x, experimental_use_pfor=False)

    found = None
    for x in inputs:
        nonzero = np.abs(jacobian(x).numpy()[:, :, :, 0]) > 0
        found = nonzero if found is None else found | nonzero
    return found


def raster_allowed(
    image_shape: tuple[int, int, int],
    out_channels: int | None = None,
    strict: bool = True,
    joint_channels: bool = False,
) -> np.ndarray:
    """Dependencies that raster order allows, in the layout of :func:`dependencies`.

    Output ``(i, j, c)`` may see input ``(k, l, d)`` when pixel ``(k, l)``
    comes before ``(i, j)`` in raster order, or when it is the same pixel and
    the input's colour group comes before (``strict``, mask A) or is not after
    (not ``strict``, mask B) the output's. Groups are the contiguous blocks of
    :func:`pixel_models.layers.channel_groups` over ``C = image_shape[-1]``
    colour channels.

    Args:
      image_shape: ``(H, W, C)``.
      out_channels: output channels (default ``C``), split into ``C`` groups.
      strict: mask A (True) or mask B (False) rule for the same pixel.
      joint_channels: no output sees any channel of its own pixel (the
        outputs of a head that models a pixel's channels together, see
        :attr:`pixel_models.distributions.Distribution.joint_channels`).

    Returns:
      bool array ``(H, W, out_channels, H, W, C)``.

    Example:

    >>> raster_allowed((2, 2, 1))[1, 0, 0, :, :, 0].astype(int).tolist()
    [[1, 1], [0, 0]]
    >>> # One RGB pixel: R sees nothing of it, G sees R, B sees R and G.
    >>> raster_allowed((1, 1, 3))[0, 0, :, 0, 0, :].astype(int).tolist()
    [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    >>> raster_allowed((1, 1, 3), strict=False)[0, 0, :, 0, 0, :].astype(int).tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    >>> int(raster_allowed((1, 1, 3), joint_channels=True).sum())
    0
    """
    from pixel_models.layers.masked_conv import channel_groups

    height, width, colours = image_shape
    out_channels = colours if out_channels is None else out_channels
    pos = np.arange(height * width).reshape(height, width)
    before = pos[:, :, None, None] > pos[None, None, :, :]
    same = pos[:, :, None, None] == pos[None, None, :, :]
    if joint_channels:
        return np.broadcast_to(
            before[:, :, None, :, :, None], (height, width, out_channels, height, width, colours)
        ).copy()
    in_group = channel_groups(colours, colours)
    out_group = channel_groups(out_channels, colours)
    if strict:
        group_ok = out_group[:, None] > in_group[None, :]
    else:
        group_ok = out_group[:, None] >= in_group[None, :]
    return before[:, :, None, :, :, None] | (
        same[:, :, None, :, :, None] & group_ok[None, None, :, None, None, :]
    )


def assert_causal(
    fn: Callable[[tf.Tensor], tf.Tensor],
    image_shape: tuple[int, int, int],
    out_channels: int | None = None,
    strict: bool = True,
    joint_channels: bool = False,
    reaches: float = 0.0,
) -> np.ndarray:
    """Asserts that ``fn`` only depends on what raster order allows, and on
    at least a share ``reaches`` of it (a function of nothing is causal too).

    Returns the dependencies (see :func:`dependencies`) so that callers can
    also check what must be seen (e.g. no blind spot).

    Args:
      fn: the function, as in :func:`dependencies`.
      image_shape: ``(H, W, C)`` of its input.
      out_channels: as in :func:`raster_allowed` (default: ``fn``'s).
      strict, joint_channels: as in :func:`raster_allowed`.
      reaches: the share of the allowed dependencies that must be found, in
        ``[0, 1]``.

    Raises:
      AssertionError: naming the number of forbidden dependencies and one of
        them, or how few of the allowed ones were found.

    Example:

    >>> from pixel_models.layers import MaskedConv2D
    >>> found = assert_causal(MaskedConv2D(1, 3, mask_type="A"), (3, 3, 1))
    >>> int(found.sum())  # a 3x3 window reaches 20 of the 36 pairs raster order allows
    20
    >>> mask_b = MaskedConv2D(1, 3, mask_type="B")  # sees its own pixel
    >>> _ = assert_causal(mask_b, (3, 3, 1), strict=False)
    >>> assert_causal(mask_b, (3, 3, 1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    AssertionError: 9 forbidden dependencies, e.g. output (row 0, col 0, channel 0) ...
    >>> _ = assert_causal(MaskedConv2D(1, 3, mask_type="A"), (3, 3, 1), reaches=0.6)
    Traceback (most recent call last):
      ...
    AssertionError: 20 of the 36 allowed dependencies found, fewer than the share 0.6 asked for
    """
    found = dependencies(fn, image_shape)
    allowed = raster_allowed(image_shape, out_channels or found.shape[2], strict, joint_channels)
    leaks = np.argwhere(found & ~allowed)
    if len(leaks):
        i, j, c, k, col, d = leaks[0]
        raise AssertionError(
            f"{len(leaks)} forbidden dependencies, e.g. output (row {i}, col {j}, "
            f"channel {c}) depends on input (row {k}, col {col}, channel {d})"
        )
    if found.sum() < reaches * allowed.sum():
        raise AssertionError(
            f"{int(found.sum())} of the {int(allowed.sum())} allowed dependencies found, "
            f"fewer than the share {reaches} asked for"
        )
    return found


def all_images(image_shape: tuple[int, int, int], levels: int) -> np.ndarray:
    """Every image of ``image_shape`` with values in ``[0, levels)``.

    Returns:
      float32 array ``(levels ** (H * W * C), H, W, C)``, in the order of
      ``itertools.product`` (the last dimension changes fastest).

    Example:

    >>> all_images((1, 2, 1), levels=2).reshape(4, 2).astype(int).tolist()
    [[0, 0], [0, 1], [1, 0], [1, 1]]
    >>> all_images((2, 2, 1), levels=3).shape
    (81, 2, 2, 1)
    """
    dims = int(np.prod(image_shape))
    if levels**dims > 2**16:
        raise ValueError(f"{levels}**{dims} images are too many to enumerate")
    values = np.array(list(itertools.product(range(levels), repeat=dims)), np.float32)
    return values.reshape(-1, *image_shape)


def random_images(model: keras.Model, num: int, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """``num`` images of the shape a model reads, each value drawn uniformly
    from its head's ``[0, levels)``.

    Example:

    >>> from pixel_models.models import pixel_cnn
    >>> model = pixel_cnn((3, 4, 1), levels=4, hidden_dims=2, recurrent_length=1)
    >>> x = random_images(model, 2, seed=1)
    >>> x.shape, x.dtype.name, sorted(set(x.ravel().tolist())) == [0.0, 1.0, 2.0, 3.0]
    ((2, 3, 4, 1), 'float32', True)
    """
    from pixel_models.sampling import image_shape

    levels = distribution_of(model).levels
    values = np.random.default_rng(seed).integers(0, levels, (num, *image_shape(model)))
    return values.astype(dtype)


def log_prob_of_every_image(
    model: keras.Model, batch_size: int = 1024, condition=None
) -> np.ndarray:
    """``log p(x)`` (or ``log p(x | condition)``) of each image of
    :func:`all_images` for a model's (tiny) input shape, in that order, in
    inference mode; the arguments are those of :func:`total_probability`.

    Example:

    >>> from pixel_models.models import pixel_cnn
    >>> model = pixel_cnn((2, 2, 1), hidden_dims=2, recurrent_length=1, out_recurrent_length=0)
    >>> log_p = log_prob_of_every_image(model)
    >>> log_p.shape, bool(abs(np.exp(log_p.astype(np.float64)).sum() - 1.0) < 1e-5)
    ((16,), True)
    """
    from pixel_models.sampling import image_shape

    distribution = distribution_of(model)
    images = all_images(image_shape(model), distribution.levels)
    conditions = [] if condition is None else list(_as_tuple(condition))
    log_p = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        extra = [np.repeat(np.asarray(c)[None], len(x), axis=0) for c in conditions]
        logits = model([x, *extra] if extra else x, training=False)
        log_p.append(np.asarray(distribution.log_prob(logits, x)))
    return np.concatenate(log_p)


def round_trips(model: keras.Model, inputs, directory) -> tuple[keras.Model, keras.Model]:
    """Rebuilds a model both ways Keras offers and checks each gives the same
    outputs, to the bit, on ``inputs`` (in inference mode):

    - ``type(model).from_config(model.get_config())`` with the weights copied
      over, which must have the same config and the same layer names;
    - a ``.keras`` file written under ``directory`` and loaded back, which
      must be of the same class and have the same head (kind, channels,
      levels) where the model has one;
    - a TensorFlow checkpoint of the model alone (what a run restores to
      sample and score) read into another build of it whose every weight was
      moved first, which must get every weight back.

    Returns:
      ``(clone, loaded)``, for the caller's checks of what is special to its
      model.

    Example:

    >>> import tempfile
    >>> from pixel_models.models import pixel_cnn
    >>> model = pixel_cnn((3, 3, 1), hidden_dims=2, recurrent_length=1, out_recurrent_length=0)
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     clone, loaded = round_trips(model, random_images(model, 2), directory)
    >>> loaded.get_layer("conv_a").mask_type
    'A'
    """
    import copy
    import json
    import os

    from pixel_models.distributions import head_of

    expected = np.asarray(model(inputs, training=False))
    config = model.get_config()
    clone = type(model).from_config(copy.deepcopy(config))  # Keras may consume the dict
    # Compared as JSON, which is what a .keras file keeps (lists and tuples alike).
    same = json.dumps(clone.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    assert same, "from_config changed the config"
    names, again = [x.name for x in model.layers], [x.name for x in clone.layers]
    assert again == names, (
        f"from_config gave layers {again}, not {names}: name the model's layers "
        "(Keras numbers unnamed ones anew in every build)"
    )
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(inputs, training=False)), expected)
    path = os.path.join(os.fspath(directory), f"{model.name}.keras")
    keras.saving.save_model(model, path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model), f"loaded a {type(loaded).__name__}"
    np.testing.assert_array_equal(np.asarray(loaded(inputs, training=False)), expected)
    other = type(model).from_config(copy.deepcopy(config))
    _checkpoint_round_trips(model, other, inputs, directory)
    try:
        head = head_of(model)
    except ValueError:  # a classifier: no pixel head
        return clone, loaded
    again = head_of(loaded)
    assert (again.kind, again.channels, again.levels) == (head.kind, head.channels, head.levels)
    return clone, loaded


def _checkpoint_round_trips(model: keras.Model, other: keras.Model, inputs, directory) -> None:
    """Writes ``model``'s checkpoint and reads it into ``other`` (the same
    architecture), each of whose weights is first moved off the model's, so
    that a weight the checkpoint does not follow is caught."""
    import os

    other(inputs, training=False)  # build it
    for mine, theirs in zip(model.weights, other.weights, strict=True):
        theirs.assign((np.asarray(mine) + 1).astype(theirs.dtype))
    prefix = tf.train.Checkpoint(model=model).write(os.path.join(os.fspath(directory), "model"))
    tf.train.Checkpoint(model=other).read(prefix).assert_existing_objects_matched()
    missed = [
        mine.path
        for mine, theirs in zip(model.weights, other.weights, strict=True)
        if not np.array_equal(np.asarray(mine), np.asarray(theirs))
    ]
    assert not missed, f"a checkpoint of the model does not restore {missed}"


def total_probability(model: keras.Model, batch_size: int = 1024, condition=None) -> float:
    """Sum of ``p(x)`` over all images of the model's (tiny) input shape.

    For a conditional model, ``condition`` is the one condition (a label, a
    latent code, or a tuple of them in the model's input order) under which
    ``p(x | condition)`` is summed.

    Args:
      model: a model built by :func:`pixel_models.build_model` whose
        ``levels ** (H * W * C)`` images can be enumerated (at most 65536).
      batch_size: images scored at once.
      condition: see above; None for an unconditional model.

    Example:

    >>> from pixel_models.models import pixel_cnn
    >>> model = pixel_cnn((3, 3, 1), hidden_dims=2, recurrent_length=1, out_recurrent_length=0)
    >>> total = total_probability(sharpen(model))  # 2**9 images
    >>> abs(total - 1.0) < 1e-4
    True
    """
    log_p = log_prob_of_every_image(model, batch_size, condition)
    return float(np.sum(np.exp(log_p.astype(np.float64))))


def _as_tuple(condition) -> tuple:
    return tuple(condition) if isinstance(condition, tuple) else (condition,)


def sharpen(
    model: keras.Model,
    seed: int = 0,
    scale: float = 2.0,
    condition_scale: float | None = None,
    bias_scale: float = 0.5,
) -> keras.Model:
    """Moves a model's weights far from its near-uniform initial distribution.

    At initialisation an autoregressive model is close to uniform, and a
    uniform model sums to 1 whatever its masks; after this, normalisation and
    sampling checks are real ones. In every ``MaskedConv2D`` and
    ``GatedBlock`` (also inside nested models, e.g. an autoencoder's decoder),
    kernels are multiplied by ``scale``, biases drawn from ``N(0,
    bias_scale)`` and conditioning kernels drawn from ``N(0,
    condition_scale)`` (or scaled like the kernels when it is None); every
    ``BatchNormalization`` gets random scales, offsets and moving statistics.
    Masks do not depend on weights, so causality is unchanged.

    Args:
      model: the model.
      seed: seed of the random biases, conditioning kernels and statistics.
      scale: factor of the kernels.
      condition_scale: standard deviation of the conditioning kernels, or
        None to scale them by ``scale``.
      bias_scale: standard deviation of the biases.

    Returns:
      The model, changed in place.

    Example:

    >>> import numpy as np
    >>> from pixel_models.layers import MaskedConv2D
    >>> from pixel_models.models import pixel_cnn
    >>> model = pixel_cnn((3, 3, 1), hidden_dims=2, recurrent_length=1, out_recurrent_length=0)
    >>> first = next(layer for layer in model.layers if isinstance(layer, MaskedConv2D))
    >>> kernel = first.kernel.numpy()
    >>> sharpen(model, seed=0) is model
    True
    >>> bool(np.allclose(first.kernel.numpy(), 2.0 * kernel))
    True
    >>> _ = assert_causal(model, (3, 3, 1))  # still causal
    """
    from pixel_models.layers import GatedBlock, MaskedConv2D

    rng = np.random.default_rng(seed)

    def normal(std, shape):
        return rng.normal(0.0, std, shape).astype(np.float32)

    def uniform(shape):
        return rng.uniform(0.5, 2.0, shape).astype(np.float32)

    def visit(layers):
        for layer in layers:
            if isinstance(layer, keras.Model):
                visit(layer.layers)
            elif isinstance(layer, GatedBlock | MaskedConv2D):
                values = []
                for weight, value in zip(layer.weights, layer.get_weights(), strict=True):
                    if weight.name.endswith("bias"):
                        values.append(normal(bias_scale, value.shape))
                    elif weight.name.startswith("condition") and condition_scale is not None:
                        values.append(normal(condition_scale, value.shape))
                    else:
                        values.append(value * scale)
                layer.set_weights(values)
            elif isinstance(layer, keras.layers.BatchNormalization):
                gamma, beta, mean, var = layer.get_weights()
                layer.set_weights(
                    [uniform(gamma.shape), normal(0.5, beta.shape), normal(0.5, mean.shape)]
                    + [uniform(var.shape)]
                )

    visit(model.layers)
    return model


def sharpen_every_weight(model: keras.Model, seed: int = 0, scale: float = 2.0) -> keras.Model:
    """Like :func:`sharpen`, for models with layers that :func:`sharpen` skips.

    Every weight named ``bias`` is drawn from ``N(0, 0.5)`` and every other
    weight of the model (LSTM state kernels, learned initial states, plain
    convolutions, ...) is multiplied by ``scale``, in the order of
    ``model.weights``. Masks are constants, not weights, so causality is
    unchanged.

    Returns:
      The model, changed in place.

    Example:

    >>> import numpy as np
    >>> from pixel_models.models import pixel_rnn
    >>> model = pixel_rnn((3, 3, 1), hidden_dims=2, recurrent_length=1, out_recurrent_length=0,
    ...                   rnn_type="row_lstm")
    >>> lstm = model.get_layer("lstm0")
    >>> before = lstm.state_kernel.numpy()
    >>> sharpen_every_weight(model, seed=0) is model
    True
    >>> bool(np.allclose(lstm.state_kernel.numpy(), 2.0 * before))
    True
    """
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = weight.numpy()
        if weight.name == "bias":
            weight.assign(rng.normal(0.0, 0.5, value.shape).astype(np.float32))
        else:
            weight.assign(value * scale)
    return model
