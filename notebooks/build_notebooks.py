"""Writes the tutorial notebooks of this folder from the cell sources below.

The ``.ipynb`` files are generated, stored without outputs, and never edited
by hand: change a cell here and run

    python notebooks/build_notebooks.py          # rewrite the notebooks
    python notebooks/build_notebooks.py --check  # exit 1 if a notebook is stale

Every notebook reads ``PIXEL_MODELS_NOTEBOOK_SMALL``: with ``1`` it uses tiny
settings (8x8 images, a handful of training steps) so that it runs in well
under a minute, as the tests do; without it, tutorial-sized settings. The last
cell of each notebook prints one line ``summary: {...}`` (JSON) that the tests
read.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat import v4

FOLDER = Path(__file__).resolve().parent

# One line: it is put into indented templates, which md() dedents.
SMALL_NOTE = (
    "Set the environment variable `PIXEL_MODELS_NOTEBOOK_SMALL=1` before starting "
    "the kernel for a quick run with tiny settings (this is what the tests do)."
)


def md(source: str) -> tuple[str, str]:
    return "markdown", textwrap.dedent(source).strip("\n")


def code(source: str) -> tuple[str, str]:
    return "code", textwrap.dedent(source).strip("\n")


# ---------------------------------------------------------------------------
# PixelCNN tutorial
# ---------------------------------------------------------------------------

PIXEL_CNN = [
    md(
        f"""
        # PixelCNN: masks, blind spot, training and sampling

        A PixelCNN models an image as a product of conditionals, one per pixel in
        raster order (rows top to bottom, pixels left to right):
        `p(x) = p(x_1) p(x_2 | x_1) ... p(x_n | x_1, ..., x_n-1)`. All conditionals
        come out of one pass of a stack of *masked* convolutions, whose kernels are
        zeroed wherever they would read the current pixel or a later one.

        This notebook draws the masks, measures what one output pixel actually
        sees (and what it misses: the blind spot), trains a small PixelCNN on the
        procedural `shapes` data, and draws samples and completions from it.

        {SMALL_NOTE}
        """
    ),
    code(
        """
        import json
        import math
        import os
        import time

        import keras
        import matplotlib.pyplot as plt
        import numpy as np
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Patch

        import pixel_models as pm
        from pixel_models import data, training
        from pixel_models.images import make_grid
        from pixel_models.testing import dependencies, raster_allowed

        SMALL = os.environ.get("PIXEL_MODELS_NOTEBOOK_SMALL", "0") == "1"
        IMAGE_SIZE = 8 if SMALL else 16
        HIDDEN_DIMS = 8 if SMALL else 16
        HIDDEN_LAYERS = 2 if SMALL else 5
        FIRST_KERNEL, HIDDEN_KERNEL = 7, 3
        TRAIN_STEPS = 20 if SMALL else 800
        CURVE_POINTS = 2 if SMALL else 10
        BATCH_SIZE = 32 if SMALL else 64
        NUM_IMAGES = 4 if SMALL else 16
        keras.utils.set_random_seed(0)
        print(f"small settings: {SMALL}; {IMAGE_SIZE}x{IMAGE_SIZE} images")
        """
    ),
    md(
        """
        ## 1. Masks of type A and B

        `pm.make_mask(kernel_size, in_channels, out_channels, mask_type)` returns
        the kernel mask `(kh, kw, in, out)`. Everything above the centre row and
        left of the centre is visible (1). The centre itself is hidden in a type A
        mask (the first layer: a pixel must not see its own value) and visible in
        a type B mask (later layers: the feature at a position holds only
        information about earlier pixels already).
        """
    ),
    code(
        """
        fig, axes = plt.subplots(1, 2, figsize=(6, 3))
        for ax, mask_type in zip(axes, "AB", strict=True):
            mask = pm.make_mask(5, 1, 1, mask_type)[:, :, 0, 0]
            ax.imshow(mask, cmap="gray", vmin=0, vmax=1)
            for (r, c), value in np.ndenumerate(mask):
                ax.text(c, r, int(value), ha="center", va="center", color="tab:red")
            ax.set_title(f"5x5 mask, type {mask_type}")
            ax.set_xticks([])
            ax.set_yticks([])
        plt.show()
        """
    ),
    md(
        """
        With colour images the channels of one pixel are ordered too: R, then G,
        then B. The features of every layer are split into three groups, and at the
        centre position output group `g` sees input groups before `g` (type A) or up
        to `g` (type B). Below, each small picture is the 5x5 kernel of one output
        colour group; the colour of a position is the set of input channels it may
        read, mixed as light (red + green = yellow, all three = white, none = black).
        Only the centre differs between the output groups.
        """
    ),
    code(
        """
        COLOURS = "RGB"
        fig, axes = plt.subplots(2, 3, figsize=(7, 5))
        for row, mask_type in enumerate("AB"):
            mask = pm.make_mask(5, 3, 3, mask_type, color_channels=3)
            for out in range(3):
                ax = axes[row, out]
                ax.imshow(mask[:, :, :, out])  # the input channels as the picture's RGB
                seen = "".join(c for c, m in zip(COLOURS, mask[2, 2, :, out], strict=True) if m)
                title = f"type {mask_type}, output {COLOURS[out]}"
                ax.set_title(f"{title}\\ncentre sees: {seen or '-'}")
                ax.set_xticks([])
                ax.set_yticks([])
        plt.tight_layout()
        plt.show()
        """
    ),
    md(
        """
        ## 2. Receptive field and blind spot, from gradients

        `pixel_models.testing.dependencies(model, image_shape)` differentiates every
        output with respect to every input pixel at a few random inputs and records
        which gradients are non-zero. For one output pixel this is its receptive
        field. Raster order allows every earlier pixel; the stacked masks reach
        fewer. Each 3x3 type B layer reaches one more row up, and only one column
        further to the right, so a wedge of pixels up and to the right of the
        pixel is never seen however many layers are stacked: the *blind spot*
        (orange below). The Gated PixelCNN removes it with separate vertical and
        horizontal stacks.
        """
    ),
    code(
        """
        shape = (IMAGE_SIZE, IMAGE_SIZE, 1)
        model = pm.build_model(
            "pixel_cnn",
            image_shape=shape,
            hidden_dims=HIDDEN_DIMS,
            recurrent_length=HIDDEN_LAYERS,
            out_hidden_dims=2 * HIDDEN_DIMS,
            out_recurrent_length=1,
            first_kernel_size=FIRST_KERNEL,
            hidden_kernel_size=HIDDEN_KERNEL,
        )
        found = dependencies(model, shape, num_inputs=4)  # (H, W, C, H, W, C)
        row, col = IMAGE_SIZE - 1, 1 if SMALL else IMAGE_SIZE // 2
        seen = found[row, col, 0, :, :, 0]
        allowed = raster_allowed(shape)[row, col, 0, :, :, 0]
        assert not np.any(seen & ~allowed), "the model sees a later pixel"

        # The blind spot: allowed pixels inside the field's bounding box that are not seen.
        rows, cols = np.nonzero(seen)
        box = np.zeros_like(seen)
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        blind = allowed & ~seen & box

        picture = np.zeros(seen.shape, int)  # 0: after the pixel in raster order
        picture[allowed] = 1  # allowed, out of reach
        picture[seen] = 2
        picture[blind] = 3
        picture[row, col] = 4
        colours = ["white", "lightgrey", "tab:blue", "tab:orange", "tab:red"]
        labels = ["later pixels", "allowed, out of reach", "seen", "blind spot", "the pixel"]
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.imshow(picture, cmap=ListedColormap(colours), vmin=0, vmax=4)
        ax.legend(
            handles=[Patch(color=c, label=t) for c, t in zip(colours, labels, strict=True)],
            loc="upper left",
            bbox_to_anchor=(1, 1),
        )
        ax.set_title(f"what output ({row}, {col}) sees")
        plt.show()
        print(f"field: {seen.sum()} pixels; blind spot: {blind.sum()} pixels")
        """
    ),
    md(
        """
        ## 3. Training on procedural shapes

        `data.load("shapes", ...)` draws binary images of rectangles, ellipses and
        triangles (no download). `training.Trainer` holds the compiled training
        step and `training.fit` runs it up to `max_steps`; calling `fit` again with
        a larger `max_steps` continues from the current step, which gives a
        learning curve. The loss is the negative log-likelihood of an image in
        nats; a model that knows nothing (every pixel 0 or 1 with probability
        1/2) scores `H * W * ln 2`.
        """
    ),
    code(
        """
        train_images = data.load("shapes", "train", image_size=IMAGE_SIZE)
        test_images = data.load("shapes", "test", image_size=IMAGE_SIZE, num_examples=500)
        examples = np.stack([x.numpy() for x in test_images.take(NUM_IMAGES)])
        plt.figure(figsize=(4, 4))
        plt.imshow(make_grid(examples, levels=2)[..., 0], cmap="gray", vmin=0, vmax=255)
        plt.title("test images")
        plt.axis("off")
        plt.show()
        """
    ),
    code(
        """
        trainer = training.Trainer(model, training.make_optimizer("adam", 3e-3))
        train = data.pipeline(train_images, BATCH_SIZE, training=True, seed=0)
        test = data.pipeline(test_images, 250, training=False)
        uniform_nll = IMAGE_SIZE * IMAGE_SIZE * math.log(2)
        curve = [(0, trainer.evaluate(test)["nll"])]
        start = time.time()
        for stop in np.linspace(0, TRAIN_STEPS, CURVE_POINTS + 1)[1:].round().astype(int):
            config = training.TrainConfig(
                max_steps=int(stop), test_step=int(stop), num_samples=0, verbose=False
            )
            metrics = training.fit(trainer, train, test, config)
            curve.append((trainer.step, metrics["test/nll"]))
        print(f"{trainer.step} steps in {time.time() - start:.0f} s")
        print(f"test NLL {curve[-1][1]:.2f} nats per image (uniform model: {uniform_nll:.2f})")

        plt.figure(figsize=(5, 3))
        plt.plot(*zip(*curve, strict=True), marker="o", label="PixelCNN")
        plt.axhline(uniform_nll, color="grey", linestyle="--", label="uniform")
        plt.xlabel("step")
        plt.ylabel("test NLL (nats per image)")
        plt.legend()
        plt.show()
        """
    ),
    md(
        """
        ## 4. Samples

        `pm.sample(model, n, seed)` draws `n` images pixel by pixel with one
        compiled loop; the same seed gives the same images.
        """
    ),
    code(
        """
        samples = pm.sample(model, NUM_IMAGES, seed=0)
        plt.figure(figsize=(4, 4))
        plt.imshow(make_grid(samples, levels=2)[..., 0], cmap="gray", vmin=0, vmax=255)
        plt.title(f"{NUM_IMAGES} samples")
        plt.axis("off")
        plt.show()
        """
    ),
    md(
        """
        ## 5. Completions

        `pm.complete(model, images, known, seed)` keeps the values where `known`
        is true and samples the others in raster order given everything before
        them. Here the top half of test images is given (grey marks what the
        model does not see).
        """
    ),
    code(
        """
        known = np.zeros(examples.shape, bool)
        known[:, : IMAGE_SIZE // 2] = True
        completed = pm.complete(model, examples, known, seed=0)
        occluded = np.where(known, examples, 0.5)
        fig, axes = plt.subplots(3, 1, figsize=(8, 4))
        for ax, images, title in zip(
            axes,
            [examples, occluded, completed],
            ["originals", "given: top half", "completions"],
            strict=True,
        ):
            grid = make_grid(images, levels=2, columns=NUM_IMAGES)
            ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=255)
            ax.set_title(title)
            ax.axis("off")
        plt.tight_layout()
        plt.show()
        """
    ),
    code(
        """
        summary = {
            "image_size": IMAGE_SIZE,
            "hidden_layers": HIDDEN_LAYERS,
            "first_kernel_size": FIRST_KERNEL,
            "hidden_kernel_size": HIDDEN_KERNEL,
            "pixel": [int(row), int(col)],
            "field_pixels": int(seen.sum()),
            "blind_spot_pixels": int(blind.sum()),
            "steps": trainer.step,
            "test_nll": float(curve[-1][1]),
            "uniform_nll": uniform_nll,
            "samples_shape": list(samples.shape),
            "given_part_kept": bool(np.array_equal(completed[known], examples[known])),
        }
        print("summary:", json.dumps(summary))
        """
    ),
]


# ---------------------------------------------------------------------------
# PixelRNN
# ---------------------------------------------------------------------------

PIXEL_RNN = [
    md(
        f"""
        # PixelRNN: skewing, Row LSTM and Diagonal BiLSTM

        PixelRNN replaces the stack of masked convolutions by two-dimensional
        LSTMs. The Row LSTM computes a whole row per step from the row above; the
        Diagonal LSTM runs along the diagonals of the image, which it reaches by
        *skewing* the feature map. This notebook shows the skew, then measures the
        receptive fields of both layers and of a tiny `pixel_rnn` model from
        gradients. In the pictures below, blue pixels are seen by the red output
        pixel (purple when it sees itself), orange ones come earlier in raster
        order but are not seen, and white ones come later.

        {SMALL_NOTE}
        """
    ),
    code(
        """
        import json
        import os

        import keras
        import matplotlib.pyplot as plt
        import numpy as np
        import tensorflow as tf

        import pixel_models as pm
        from pixel_models.layers import DiagonalBiLSTM, DiagonalLSTM, RowLSTM, skew, unskew

        SMALL = os.environ.get("PIXEL_MODELS_NOTEBOOK_SMALL", "0") == "1"
        LAYER_SHAPE = (5, 7, 1) if SMALL else (8, 11, 1)
        MODEL_SIZE = 8 if SMALL else 12
        UNITS = 4
        keras.utils.set_random_seed(0)
        """
    ),
    code(
        """
        def receptive_field(fn, image_shape, pixel, num_inputs=3, seed=0):
            \"\"\"Input pixels with a non-zero gradient of output ``pixel`` (summed over
            channels) at any of ``num_inputs`` random inputs.\"\"\"
            rng = np.random.default_rng(seed)
            seen = np.zeros(image_shape[:2], bool)
            for _ in range(num_inputs):
                x = tf.constant(rng.uniform(-1.0, 1.0, (1, *image_shape)), tf.float32)
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = tf.reduce_sum(fn(x)[0, pixel[0], pixel[1]])
                seen |= np.abs(tape.gradient(y, x).numpy()[0]).sum(axis=-1) > 0
            return seen


        def draw_field(ax, seen, pixel, title):
            \"\"\"Blue: seen; orange: earlier in raster order but not seen; white: later;
            the output pixel in red (purple when it sees itself).\"\"\"
            order = np.arange(seen.size).reshape(seen.shape)
            picture = np.ones((*seen.shape, 3))
            picture[(order < order[pixel]) & ~seen] = (1.0, 0.6, 0.2)
            picture[seen] = (0.25, 0.45, 0.8)
            picture[pixel] = (0.6, 0.2, 0.6) if seen[pixel] else (0.85, 0.15, 0.15)
            ax.imshow(picture)
            ax.set_title(f"{title}\\n{seen.sum()} pixels")
            ax.set_xticks([])
            ax.set_yticks([])


        def draw_numbers(ax, array, title):
            ax.imshow(array > 0, cmap="Blues", vmin=0, vmax=2)
            for (r, c), value in np.ndenumerate(array):
                if value:
                    ax.text(c, r, int(value), ha="center", va="center")
            ax.set_title(title)
            ax.set_xticks([])
            ax.set_yticks([])
        """
    ),
    md(
        """
        ## 1. Skew and unskew

        `skew` shifts row `i` of a `(B, H, W, C)` map right by `i` positions, giving
        `(B, H, W + H - 1, C)` with zeros where no pixel lands. Each column of the
        skewed map is then one diagonal of the image: column `t` holds the pixels
        `(i, t - i)`. Its neighbours in column `t - 1` are the left and the upper
        neighbour of every pixel, so one step of a loop over columns can update a
        whole diagonal at once. `unskew` reads the rows back.
        """
    ),
    code(
        """
        height, width = 4, 5
        grid = np.arange(1, height * width + 1, dtype="float32").reshape(1, height, width, 1)
        skewed = np.asarray(skew(grid))
        restored = np.asarray(unskew(skewed))
        ratios = [width, width + height - 1, width]
        fig, axes = plt.subplots(1, 3, figsize=(12, 3), width_ratios=ratios)
        draw_numbers(axes[0], grid[0, ..., 0], f"image {grid.shape[1:3]}")
        draw_numbers(axes[1], skewed[0, ..., 0], f"skew: {skewed.shape[1:3]}")
        draw_numbers(axes[2], restored[0, ..., 0], "unskew(skew(image))")
        plt.show()
        for t in range(skewed.shape[2]):
            print(f"column {t}: {[int(v) for v in skewed[0, :, t, 0] if v]}")
        print("unskew inverts skew:", np.array_equal(restored, grid))
        """
    ),
    md(
        """
        ## 2. Receptive fields of one layer

        One type B layer of each kind, at random initial weights, and the input
        pixels whose gradient at one output pixel is non-zero:

        - **Row LSTM**: a 1x3 masked convolution along the current row (the pixel
          and its left neighbour) plus a width-3 convolution of the previous row's
          state: one more column on each side per row up, a *triangle* above the
          pixel. Pixels far to the side are missed.
        - **Diagonal LSTM** (one direction): its state comes from the left and the
          upper neighbour, so it sees the quadrant up and to the left.
        - **Diagonal BiLSTM**: a second Diagonal LSTM on the mirrored image,
          shifted down one row so that it only brings in rows above: the union is
          the *whole past* in raster order.
        """
    ),
    code(
        """
        layer_pixel = (LAYER_SHAPE[0] - 1, LAYER_SHAPE[1] // 2)
        layers = {
            "Row LSTM": RowLSTM(UNITS, kernel_size=3, mask_type="B"),
            "Diagonal LSTM": DiagonalLSTM(UNITS, mask_type="B"),
            "Diagonal BiLSTM": DiagonalBiLSTM(UNITS, mask_type="B"),
        }
        layer_fields = {
            name: receptive_field(layer, LAYER_SHAPE, layer_pixel) for name, layer in layers.items()
        }
        fig, axes = plt.subplots(1, 3, figsize=(12, 3))
        for ax, (name, seen) in zip(axes, layer_fields.items(), strict=True):
            draw_field(ax, seen, layer_pixel, name)
        plt.show()
        whole_past = layer_pixel[0] * LAYER_SHAPE[1] + layer_pixel[1] + 1  # type B: itself too
        print(f"the whole past of {layer_pixel} (type B, itself included): {whole_past} pixels")
        """
    ),
    md(
        """
        ## 3. A tiny PixelRNN

        `pm.build_model("pixel_rnn", rnn_type=...)` is a 7x7 type A masked
        convolution, LSTM layers, 1x1 output layers and the per-pixel head.
        Stacking Row LSTMs widens the triangle but never closes it; with Diagonal
        BiLSTMs the last pixel sees every other pixel. One pixel is missing for
        outputs near the left edge: the 7x7 type A layer only carries the last
        pixel of the previous row, `(i - 1, W - 1)`, to features at least 3 columns
        from the right, and the LSTMs only pass features on to later positions
        (right column below).
        """
    ),
    code(
        """
        model_shape = (MODEL_SIZE, MODEL_SIZE, 1)
        last = (MODEL_SIZE - 1, MODEL_SIZE - 1)
        first_of_row = (MODEL_SIZE - 1, 0)
        model_fields = {}
        fig, axes = plt.subplots(1, 3, figsize=(12, 4))
        for rnn_type in ("row_lstm", "diagonal_bilstm"):
            model = pm.build_model(
                "pixel_rnn",
                image_shape=model_shape,
                hidden_dims=UNITS,
                recurrent_length=2,
                out_hidden_dims=8,
                out_recurrent_length=1,
                rnn_type=rnn_type,
            )
            pixels = [last, first_of_row] if rnn_type == "diagonal_bilstm" else [last]
            for pixel in pixels:
                model_fields[rnn_type, pixel] = receptive_field(model, model_shape, pixel)
        for ax, ((rnn_type, pixel), seen) in zip(axes, model_fields.items(), strict=True):
            draw_field(ax, seen, pixel, f"{rnn_type}, output {pixel}")
        plt.show()
        order = np.arange(MODEL_SIZE**2).reshape(MODEL_SIZE, MODEL_SIZE)  # raster order
        gap = (order < order[first_of_row]) & ~model_fields["diagonal_bilstm", first_of_row]
        print(f"earlier pixels that output {first_of_row} does not see:", np.argwhere(gap).tolist())
        """
    ),
    code(
        """
        summary = {
            "skewed_shape": list(skewed.shape),
            "unskew_inverts_skew": bool(np.array_equal(restored, grid)),
            "layer_shape": list(LAYER_SHAPE),
            "layer_pixel": list(layer_pixel),
            "row_lstm_field": int(layer_fields["Row LSTM"].sum()),
            "diagonal_lstm_field": int(layer_fields["Diagonal LSTM"].sum()),
            "bilstm_field": int(layer_fields["Diagonal BiLSTM"].sum()),
            "model_size": MODEL_SIZE,
            "model_row_lstm_field_last": int(model_fields["row_lstm", last].sum()),
            "model_bilstm_field_last": int(model_fields["diagonal_bilstm", last].sum()),
            "model_bilstm_field_first": int(model_fields["diagonal_bilstm", first_of_row].sum()),
            "model_bilstm_gap": np.argwhere(gap).tolist(),
        }
        print("summary:", json.dumps(summary))
        """
    ),
]


# ---------------------------------------------------------------------------
# Invariant convolutions
# ---------------------------------------------------------------------------

INVARIANT = [
    md(
        f"""
        # Rotation and flip equivariant and invariant convolutions

        The grid of pixels has 8 exact symmetries: 4 rotations by multiples of 90
        degrees (the group C4) and the same 4 after a left-right mirror (together
        the group D4). A *group convolution* (`GroupConv2D`) applies every rotated
        and mirrored copy of each kernel and keeps one output map per copy, an
        *orientation*. Transforming the input then transforms every output map the
        same way and permutes the orientations (equivariance). Pooling over the
        orientations (`InvariantConv2D`) gives maps that only move with the input,
        and a global pooling after that gives numbers that do not change at all
        (invariance).

        {SMALL_NOTE}
        """
    ),
    code(
        """
        import json
        import os

        import keras
        import matplotlib.pyplot as plt
        import numpy as np

        from pixel_models.layers import (
            GroupConv2D,
            InvariantConv2D,
            group_table,
            transform_group_features,
            transform_images,
        )
        from pixel_models.models.invariant_cnn import invariant_cnn

        SMALL = os.environ.get("PIXEL_MODELS_NOTEBOOK_SMALL", "0") == "1"
        SIZE = 9 if SMALL else 15  # odd: "same" padding and pooling windows stay symmetric
        keras.utils.set_random_seed(0)


        def max_error(a, b):
            \"\"\"Largest absolute difference, relative to the largest absolute value.\"\"\"
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))
        """
    ),
    md(
        """
        ## 1. The groups and `transform_images`

        `group_table("D4")` lists the elements (`r` is a quarter turn counter-clockwise,
        `m` a left-right mirror, `rm` a mirror then a turn, ...) and their products,
        computed from the grid operations themselves. `transform_images(x, g, group)`
        applies element `g` to a batch of images. A letter F has no symmetry, so
        its 8 images are all different.
        """
    ),
    code(
        """
        d4 = group_table("D4")
        print("D4 elements:", d4.names)
        print("products (row g, column h: g h = apply h, then g):")
        for name, products in zip(d4.names, d4.cayley, strict=True):
            print(f"  {name:>3}:", " ".join(f"{d4.names[p]:>3}" for p in products))

        letter = np.zeros((SIZE, SIZE, 1), "float32")
        s = SIZE // 8 + 1  # stroke width
        letter[1 : SIZE - 1, 2 : 2 + s] = 1  # the stem
        letter[1 : 1 + s, 2 : SIZE - 2] = 1  # the top bar
        letter[SIZE // 2 - s // 2 : SIZE // 2 - s // 2 + s, 2 : SIZE - 4] = 1  # the middle bar
        x = letter[None]

        fig, axes = plt.subplots(1, d4.order, figsize=(14, 2))
        for g, ax in enumerate(axes):
            ax.imshow(np.asarray(transform_images(x, g, "D4"))[0, ..., 0], cmap="gray_r")
            ax.set_title(d4.names[g])
            ax.axis("off")
        plt.show()
        """
    ),
    md(
        """
        ## 2. `GroupConv2D` is equivariant

        A lifting group convolution with one 5x5 kernel over C4 gives 4 maps, one
        per rotated kernel. Turn the input a quarter (`r`): every map turns a
        quarter too, and the maps trade places: orientation `g` of the new output
        is the turned orientation `r^-1 g` of the old one, so the old `e` map
        reappears, turned, as the new `r` map.
        `transform_group_features(y, g, group)` applies exactly this to feature
        maps, and `layer(transform_images(x, g)) == transform_group_features(layer(x), g)`.
        """
    ),
    code(
        """
        c4 = group_table("C4")
        lifting = GroupConv2D(1, 5, group="C4")
        y = np.asarray(lifting(x))  # (1, SIZE, SIZE, 1 feature * 4 orientations)
        y_turned = np.asarray(lifting(transform_images(x, 1, "C4")))

        scale = np.abs(np.concatenate([y, y_turned])).max()  # one colour scale for all maps
        fig, axes = plt.subplots(2, 5, figsize=(12, 5))
        x_turned = np.asarray(transform_images(x, 1, "C4"))
        rows = [(x, y, "input"), (x_turned, y_turned, "input turned (r)")]
        for row, (image, maps, title) in enumerate(rows):
            axes[row, 0].imshow(image[0, ..., 0], cmap="gray_r")
            axes[row, 0].set_title(title)
            for g in range(c4.order):
                axes[row, g + 1].imshow(maps[0, ..., g], cmap="RdBu_r", vmin=-scale, vmax=scale)
                axes[row, g + 1].set_title(f"orientation {c4.names[g]}")
        for ax in axes.ravel():
            ax.axis("off")
        plt.tight_layout()
        plt.show()
        print("orientation g of the turned output is orientation", end=" ")
        print([c4.names[p] for p in c4.orientation_permutation(1)], "of the original")

        group_conv_errors = {}
        for group in ("C4", "D4"):
            table = group_table(group)
            first = GroupConv2D(3, 3, group=group)
            second = GroupConv2D(2, 3, group=group, input_kind="group", activation="relu")
            features = first(x)
            for g in range(table.order):
                moved = transform_images(x, g, group)
                group_conv_errors[group, table.names[g], "lifting"] = max_error(
                    first(moved), transform_group_features(features, g, group)
                )
                group_conv_errors[group, table.names[g], "group"] = max_error(
                    second(transform_group_features(features, g, group)),
                    transform_group_features(second(features), g, group),
                )
        print("largest equivariance error over C4 and D4, lifting and group-to-group layers:")
        print(f"  {max(group_conv_errors.values()):.2e}")
        """
    ),
    md(
        """
        ## 3. Pooling over orientations: `InvariantConv2D` and `invariant_cnn`

        `InvariantConv2D` is a lifting group convolution followed by a maximum
        over the orientations: its maps no longer permute, they only move with the
        input. `invariant_cnn` stacks group convolutions, pools over orientations
        once at the end and averages over all positions, so its logits are the
        same for all 8 transforms of an image. The plain CNN of the same size
        (`group="none"`) is not invariant.
        """
    ),
    code(
        """
        invariant = InvariantConv2D(2, 3, group="D4")
        base = np.asarray(invariant(x))
        invariant_conv_error = max(
            max_error(invariant(transform_images(x, g, "D4")), transform_images(base, g, "D4"))
            for g in range(d4.order)
        )
        fig, axes = plt.subplots(1, 4, figsize=(10, 3))
        turned = transform_images(x, 1, "D4")
        for ax, image, title in zip(
            axes,
            [x, base, turned, invariant(turned)],
            ["input", "InvariantConv2D", "input turned", "InvariantConv2D"],
            strict=True,
        ):
            cmap = "gray_r" if "input" in title else "viridis"
            ax.imshow(np.asarray(image)[0, ..., 0], cmap=cmap)
            ax.set_title(title)
            ax.axis("off")
        plt.show()
        print(f"InvariantConv2D: largest error over D4: {invariant_conv_error:.2e}")

        stages = (1, 1) if SMALL else (2, 2)
        batch = np.concatenate([np.asarray(transform_images(x, g, "D4")) for g in range(d4.order)])
        logit_change = {}
        for group in ("D4", "none"):
            classifier = invariant_cnn(
                (SIZE, SIZE, 1), num_classes=3, group=group, base_width=8, stages=stages, levels=2
            )
            logits = np.asarray(classifier(batch, training=False))
            logit_change[group] = max_error(logits, np.repeat(logits[:1], d4.order, axis=0))
            print(f"invariant_cnn(group={group!r}): logits of the 8 transforms of the letter")
            for name, values in zip(d4.names, logits, strict=True):
                print(f"  {name:>3}: {np.array2string(values, precision=5)}")
        """
    ),
    md(
        """
        ## 4. Three flipped copies are not enough

        A tempting shortcut takes the maximum over the kernel, its left-right flip
        and its up-down flip. Those three operations are not a group: the two flips
        together make the 180 degree turn, which is missing, so flipping the input
        changes the set of kernels the maximum runs over. Below the three copies are
        picked out of a D4 group convolution (orientations `e`, `m` and `r2m`, the
        up-down flip) and compared with the maximum over all 8 orientations of the
        same layer.
        """
    ),
    code(
        """
        names = ("e", "m", "r2m")
        picks = [d4.names.index(n) for n in names]
        m, up_down = d4.names.index("m"), d4.names.index("r2m")
        print(f"m * r2m = {d4.names[d4.cayley[m, up_down]]}: not one of {names}")

        conv = GroupConv2D(4, 3, group="D4", use_bias=False)


        def orientation_max(images, orientations):
            maps = np.asarray(conv(images)).reshape(*np.shape(images)[:3], -1, d4.order)
            return maps[..., orientations].max(axis=-1)


        rng = np.random.default_rng(0)
        inputs = {"letter": x, "random": rng.uniform(-1, 1, (2, SIZE, SIZE, 1)).astype("float32")}
        flip_errors = {}
        for label, images in inputs.items():
            for flip in ("m", "r2m"):
                g = d4.names.index(flip)
                flipped = transform_images(images, g, "D4")
                for kind, orientations in (("3 copies", picks), ("all 8", list(range(8)))):
                    flip_errors[label, flip, kind] = max_error(
                        orientation_max(flipped, orientations),
                        transform_images(orientation_max(images, orientations), g, "D4"),
                    )
        for (label, flip, kind), error in flip_errors.items():
            print(f"{label:>6} input, flip {flip:>3}, max over {kind}: error {error:.2e}")
        """
    ),
    code(
        """
        summary = {
            "group_conv_max_error": max(group_conv_errors.values()),
            "invariant_conv_max_error": invariant_conv_error,
            "invariant_cnn_logit_change": logit_change["D4"],
            "plain_cnn_logit_change": logit_change["none"],
            "three_copy_flip_error": min(e for k, e in flip_errors.items() if k[2] == "3 copies"),
            "full_group_flip_error": max(e for k, e in flip_errors.items() if k[2] == "all 8"),
        }
        print("summary:", json.dumps(summary))
        """
    ),
]


# ---------------------------------------------------------------------------
# Conditional generation and the autoencoder
# ---------------------------------------------------------------------------

CONDITIONAL = [
    md(
        f"""
        # Conditional generation and the PixelCNN autoencoder

        A conditional PixelCNN models `p(x | y) = p(x_1 | y) p(x_2 | x_1, y) ...`:
        every conditional of the product also sees a vector `y` that is not part
        of the image. This notebook trains a class-conditional PixelCNN on the
        labelled procedural `shapes` data and draws samples of each class, then
        trains the PixelCNN autoencoder, where `y` is a code computed from the
        image itself by an encoder, and shows what a rotation invariant encoder
        does to its codes and reconstructions.

        {SMALL_NOTE}
        """
    ),
    code(
        """
        import json
        import math
        import os
        import time

        import keras
        import matplotlib.pyplot as plt
        import numpy as np

        import pixel_models as pm
        from pixel_models import data, training
        from pixel_models.images import make_grid, reconstruction_grid
        from pixel_models.layers.invariant import group_table, transform_images
        from pixel_models.testing import dependencies, raster_allowed

        SMALL = os.environ.get("PIXEL_MODELS_NOTEBOOK_SMALL", "0") == "1"
        IMAGE_SIZE = 8 if SMALL else 16
        HIDDEN_DIMS = 8 if SMALL else 16
        HIDDEN_LAYERS = 2 if SMALL else 5
        TRAIN_STEPS = 30 if SMALL else 1000
        AUTOENCODER_STEPS = 20 if SMALL else 400
        BATCH_SIZE = 32 if SMALL else 64
        NUM_TEST = 60 if SMALL else 600
        PER_CLASS = 4 if SMALL else 8
        NUM_RECONSTRUCTIONS = 4 if SMALL else 16
        LATENT_DIMS = 4 if SMALL else 8
        DATA_SEED = 0
        NUM_CLASSES = 3  # one, two or three shapes
        # The full network once per pixel: quick to compile, and fast enough for
        # these small images ("auto" picks the cached sampler, faster on large ones).
        SAMPLER = "reference"
        keras.utils.set_random_seed(0)
        print(f"small settings: {SMALL}; {IMAGE_SIZE}x{IMAGE_SIZE} images")


        def train(trainer, batches, steps):
            \"\"\"Runs ``steps`` training steps; returns the training NLL of each.\"\"\"
            losses = []
            for batch in batches.take(steps):
                losses.append(trainer.train_step(batch))
            return losses
        """
    ),
    md(
        """
        ## 1. Labelled shapes

        `data.load("shapes", split, with_labels=True)` yields `(image, label)` pairs:
        the label is the number of shapes drawn minus one, so class 0 holds one
        shape, class 1 two and class 2 three (shapes may overlap, so a class-2
        image can show fewer than three). Below, a row of test images per class.
        """
    ),
    code(
        """
        options = dict(image_size=IMAGE_SIZE, seed=DATA_SEED, with_labels=True)
        train_pairs = data.load("shapes", "train", **options)
        test_pairs = data.load("shapes", "test", num_examples=NUM_TEST, **options)
        test_x, test_y = (np.asarray(t) for t in next(iter(test_pairs.batch(NUM_TEST))))
        test_x = test_x.astype("float32")
        print("test images per class:", np.bincount(test_y, minlength=NUM_CLASSES).tolist())

        examples = np.concatenate([test_x[test_y == c][:PER_CLASS] for c in range(NUM_CLASSES)])
        plt.figure(figsize=(PER_CLASS, NUM_CLASSES))
        grid = make_grid(examples.astype("uint8"), levels=2, columns=PER_CLASS)
        plt.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=255)
        plt.title("test images, one row per class (1, 2, 3 shapes)")
        plt.axis("off")
        plt.show()
        """
    ),
    md(
        """
        ## 2. What conditioning does

        `pm.build_model("pixel_cnn", ..., num_classes=3)` builds a model with two
        inputs, `[images, labels]`. The label is one-hot encoded into `y`, and every
        masked convolution adds a learned bias `V y` to its output before the
        activation: a hidden layer computes `relu((W * mask) ⋆ x + b + V y)`, the
        last one the logits without the ReLU. The term `V y` is the same at every
        position and does not involve the image, so the masks still decide which
        pixels each output sees: conditioning leaves causality unchanged.

        Two checks at initialisation: the gradients of every output with respect to
        the image (for a fixed label) still only reach earlier pixels, and the
        logits of the first pixel, which sees no pixel at all, are the same for
        any image and change only with the label (they are the class's own
        `p(x_1 | y)`).
        """
    ),
    code(
        """
        shape = (IMAGE_SIZE, IMAGE_SIZE, 1)
        model = pm.build_model(
            "pixel_cnn",
            image_shape=shape,
            hidden_dims=HIDDEN_DIMS,
            recurrent_length=HIDDEN_LAYERS,
            out_hidden_dims=2 * HIDDEN_DIMS,
            out_recurrent_length=1,
            num_classes=NUM_CLASSES,
        )
        print([tuple(t.shape) for t in model.inputs], "->", model.output_shape)

        label = keras.ops.convert_to_tensor([1], "int32")  # the images come as tensors
        found = dependencies(lambda x: model([x, label]), shape, num_inputs=2)
        conditional_causal = not np.any(found & ~raster_allowed(shape))
        print("no output sees its own or a later pixel:", conditional_causal)

        two_images = test_x[:2]
        first_pixel = {
            c: np.asarray(model([two_images, np.full(2, c, "int32")]))[:, 0, 0, 0]
            for c in range(NUM_CLASSES)
        }
        first_pixel_image_change = max(abs(v[0] - v[1]) for v in first_pixel.values())
        first_pixel_label_change = abs(first_pixel[0][0] - first_pixel[2][0])
        print("first-pixel logit, two images, same label: change", first_pixel_image_change)
        print("first-pixel logit, one image, labels 0 and 2: change", first_pixel_label_change)
        """
    ),
    md(
        """
        ## 3. Training

        `data.pipeline` batches `(image, label)` pairs, and `Trainer.train_step`
        feeds a batch of pairs to a conditional model as `[images, labels]`; the
        loss is `-log p(x | y)` in nats per image. A model that knows nothing
        scores `H * W * ln 2`.
        """
    ),
    code(
        """
        trainer = training.Trainer(model, training.make_optimizer("adam", 3e-3))
        batches = data.pipeline(train_pairs, BATCH_SIZE, training=True, seed=0)
        start = time.time()
        losses = train(trainer, batches, TRAIN_STEPS)
        uniform_nll = IMAGE_SIZE * IMAGE_SIZE * math.log(2)
        print(f"{trainer.step} steps in {time.time() - start:.0f} s")

        plt.figure(figsize=(5, 3))
        plt.plot(np.arange(1, len(losses) + 1), losses, label="class-conditional PixelCNN")
        plt.axhline(uniform_nll, color="grey", linestyle="--", label="uniform")
        plt.xlabel("step")
        plt.ylabel("training NLL (nats per image)")
        plt.legend()
        plt.show()
        """
    ),
    md(
        """
        ## 4. Samples of each class

        `pm.sampling.class_rows(model, n)` gives labels that lay `n` samples out one
        row per class; `pm.sample(model, len(labels), seed, condition=labels)` draws
        one image per label, pixel by pixel, each given its label.
        """
    ),
    code(
        """
        labels, per_class = pm.sampling.class_rows(model, NUM_CLASSES * PER_CLASS)
        samples = pm.sample(model, len(labels), seed=0, condition=labels, method=SAMPLER)
        sample_grid = make_grid(samples, levels=2, columns=per_class)
        plt.figure(figsize=(per_class, NUM_CLASSES))
        plt.imshow(sample_grid[..., 0], cmap="gray", vmin=0, vmax=255)
        plt.title("samples: row c drawn given label c")
        plt.axis("off")
        plt.show()
        """
    ),
    md(
        """
        ## 5. Does the label matter?

        If the model uses its label, a test image should be more likely under its
        own class than under the others. For every test image we compute
        `log p(x | c)` for each class `c` with
        `pm.distribution_of(model).log_prob(model([x, labels]), x)` and count which
        class wins. Chance is 1/3; with the small settings the model trains too
        briefly for this number to mean much.
        """
    ),
    code(
        """
        distribution = pm.distribution_of(model)


        def log_p_given(c):
            \"\"\"log p(x | c) of every test image x.\"\"\"
            labels = np.full(len(test_x), c, "int32")
            return np.asarray(distribution.log_prob(model([test_x, labels]), test_x))


        log_p = np.stack([log_p_given(c) for c in range(NUM_CLASSES)], axis=1)  # (images, classes)
        best = log_p.argmax(axis=1)
        wins = np.zeros((NUM_CLASSES, NUM_CLASSES), int)  # true class x most likely class
        np.add.at(wins, (test_y, best), 1)
        own_class_fraction = float(np.mean(best == test_y))
        print(f"own class most likely for {own_class_fraction:.1%} of test images (chance 33.3%)")

        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(wins, cmap="Blues")
        for (r, c), count in np.ndenumerate(wins):
            ax.text(c, r, count, ha="center", va="center")
        ax.set_xticks(range(NUM_CLASSES))
        ax.set_yticks(range(NUM_CLASSES))
        ax.set_xlabel("class with the highest log p(x | c)")
        ax.set_ylabel("true class")
        plt.show()
        """
    ),
    md(
        """
        ## 6. The PixelCNN autoencoder

        `pm.build_model("autoencoder", ...)` joins an encoder, which maps an image
        to a code `z` of `latent_dims` numbers, and a Gated PixelCNN decoder that
        models `p(x | z)` with the same `V z` biases as above. It is trained on
        plain image batches to maximise `log p(x | z(x))`: the code needs to hold
        only what the decoder cannot guess from the pixels already drawn.
        `pm.reconstruct(model, images, seed)` encodes images and samples the
        decoder given their codes.
        """
    ),
    code(
        """
        def build_autoencoder(encoder):
            return pm.build_model(
                "autoencoder",
                image_shape=shape,
                latent_dims=LATENT_DIMS,
                encoder=encoder,
                group="C4",
                encoder_dims=HIDDEN_DIMS,
                hidden_dims=HIDDEN_DIMS,
                recurrent_length=HIDDEN_LAYERS,
                out_hidden_dims=2 * HIDDEN_DIMS,
                out_recurrent_length=1,
                first_kernel_size=5,
            )


        train_images = data.load("shapes", "train", image_size=IMAGE_SIZE, seed=DATA_SEED)
        image_batches = data.pipeline(train_images, BATCH_SIZE, training=True, seed=1)
        autoencoders, autoencoder_losses = {}, {}
        for encoder in ("conv", "invariant"):
            autoencoders[encoder] = build_autoencoder(encoder)
            optimizer = training.make_optimizer("adam", 3e-3)
            ae_trainer = training.Trainer(autoencoders[encoder], optimizer)
            start = time.time()
            autoencoder_losses[encoder] = train(ae_trainer, image_batches, AUTOENCODER_STEPS)
            print(f"{encoder} encoder: {ae_trainer.step} steps in {time.time() - start:.0f} s")

        plt.figure(figsize=(5, 3))
        for encoder, values in autoencoder_losses.items():
            plt.plot(np.arange(1, len(values) + 1), values, label=f"{encoder} encoder")
        plt.axhline(uniform_nll, color="grey", linestyle="--", label="uniform")
        plt.xlabel("step")
        plt.ylabel("-log p(x | z(x)) (nats per image)")
        plt.legend()
        plt.show()
        """
    ),
    md(
        """
        Test images next to their reconstructions (each pair: original, then the
        decoder's sample given its code). Then the decoder's NLL of each test
        image given its own code and given the code of another test image: the
        gap is what the code tells the decoder about its image.
        """
    ),
    code(
        """
        autoencoder = autoencoders["conv"]
        originals = test_x[:NUM_RECONSTRUCTIONS]
        reconstructions = pm.reconstruct(autoencoder, originals, seed=0, method=SAMPLER)
        pairs = reconstruction_grid(originals, reconstructions, levels=2)
        plt.figure(figsize=(6, 6))
        plt.imshow(pairs[..., 0], cmap="gray", vmin=0, vmax=255)
        plt.title("original | reconstruction")
        plt.axis("off")
        plt.show()

        codes = np.asarray(autoencoder.encode(test_x))
        other_codes = np.roll(codes, 1, axis=0)  # the code of the previous test image
        ae_distribution = pm.distribution_of(autoencoder)


        def decoder_nll(codes):
            \"\"\"Mean -log p(x | code) over the test images x, one code each.\"\"\"
            logits = autoencoder.decoder([test_x, codes])
            return -float(np.mean(ae_distribution.log_prob(logits, test_x)))


        nll_own, nll_other = decoder_nll(codes), decoder_nll(other_codes)
        print(f"decoder NLL given the image's own code:     {nll_own:.2f} nats")
        print(f"decoder NLL given another image's code:     {nll_other:.2f} nats")
        print(f"uniform model:                              {uniform_nll:.2f} nats")
        """
    ),
    md(
        """
        ## 7. The invariant encoder

        With `encoder="invariant"` the encoder is an `invariant_cnn`: group
        convolutions over `group` (here C4, the four quarter turns), pooled over
        orientations and positions. A turned image gets exactly the code of the
        original, while the plain encoder's code changes.
        """
    ),
    code(
        """
        c4 = group_table("C4")
        image = test_x[:1]
        turned = np.concatenate([transform_images(image, g, "C4") for g in range(c4.order)])
        code_change = {}
        for encoder, ae in autoencoders.items():
            turned_codes = np.asarray(ae.encode(turned))
            code_change[encoder] = float(np.max(np.abs(turned_codes - turned_codes[:1])))
            print(f"{encoder:>9} encoder: code change over the turns {code_change[encoder]:.2e}")

        conv_ae, invariant_ae = autoencoders["conv"], autoencoders["invariant"]
        rows = {
            "input": turned.astype("uint8"),
            "conv reconstruction": pm.reconstruct(conv_ae, turned, seed=0, method=SAMPLER),
            # Each turn on its own with the same seed, so that the same code gives
            # the same sample (images of one batch get different random numbers).
            "invariant reconstruction": np.concatenate(
                [pm.reconstruct(invariant_ae, t[None], seed=0, method=SAMPLER) for t in turned]
            ),
        }
        same = rows["invariant reconstruction"]
        invariant_reconstructions_equal = all(np.array_equal(r, same[0]) for r in same)
        fig, axes = plt.subplots(len(rows), c4.order, figsize=(2 * c4.order, 2 * len(rows)))
        for r, (title, images) in enumerate(rows.items()):
            for g in range(c4.order):
                axes[r, g].imshow(images[g, ..., 0], cmap="gray", vmin=0, vmax=1)
                axes[r, g].set_title(f"{title}, {c4.names[g]}", fontsize=8)
                axes[r, g].axis("off")
        plt.tight_layout()
        plt.show()
        print("invariant reconstructions of the turns identical:", invariant_reconstructions_equal)
        """
    ),
    md(
        """
        The decoder sees only the code, and the code of a turned image is the code
        of the image itself: the decoder cannot know which way the input was
        turned. The four turns of an image get the same reconstruction (with the
        same seed, the very same pixels), in whatever orientation the decoder
        finds most likely, not necessarily the input's. The plain encoder keeps
        the orientation in its code, so its reconstructions can follow the input.
        An invariant code fits data whose orientation carries no meaning (as here:
        the class of a `shapes` image does not change when it is turned); where
        orientation matters (a 6 and a 9), the code must keep it.
        """
    ),
    code(
        """
        summary = {
            "image_size": IMAGE_SIZE,
            "data_seed": DATA_SEED,
            "num_classes": NUM_CLASSES,
            "conditional_causal": bool(conditional_causal),
            "first_pixel_image_change": float(first_pixel_image_change),
            "first_pixel_label_change": float(first_pixel_label_change),
            "steps": trainer.step,
            "final_train_nll": losses[-1],
            "uniform_nll": uniform_nll,
            "sample_labels": labels.tolist(),
            "per_class": int(per_class),
            "samples_shape": list(samples.shape),
            "sample_values": sorted(np.unique(samples).tolist()),
            "sample_grid_shape": list(sample_grid.shape),
            "num_test": len(test_x),
            "wins": wins.tolist(),
            "own_class_fraction": own_class_fraction,
            "chance": 1 / NUM_CLASSES,
            "autoencoder_steps": {k: len(v) for k, v in autoencoder_losses.items()},
            "reconstructions_shape": list(reconstructions.shape),
            "reconstruction_values": sorted(np.unique(reconstructions).tolist()),
            "reconstruction_grid_shape": list(pairs.shape),
            "nll_own_code": nll_own,
            "nll_other_code": nll_other,
            "invariant_code_change": code_change["invariant"],
            "plain_code_change": code_change["conv"],
            "invariant_reconstructions_equal": bool(invariant_reconstructions_equal),
        }
        print("summary:", json.dumps(summary))
        """
    ),
]


# ---------------------------------------------------------------------------
# PixelCNN++
# ---------------------------------------------------------------------------

PIXEL_CNN_PP = [
    md(
        f"""
        # PixelCNN++: logistic mixtures, shifted convolutions, cached sampling

        PixelCNN++ (Salimans et al. 2017) changes three things in the PixelCNN:

        - **the output**: instead of a 256-way softmax per channel, a *discretized
          mixture of logistics* per pixel, whose G and B means move linearly with
          the R (and G) value of the same pixel. Neighbouring values get similar
          probabilities by construction, which the softmax has to learn.
        - **causality without masks**: two streams of *shifted* convolutions, one
          that sees the rows above (`down`) and one that also sees the pixels to
          the left (`down_right`); together they cover every earlier pixel, with
          no blind spot.
        - **resolutions**: strided convolutions halve the feature maps and
          transposed ones double them back, with U-Net short-cuts between the two
          passes, so a few layers reach across the whole image.

        This notebook evaluates the mixture on all 256 values, measures what one
        output sees, trains a small PixelCNN++ on the procedural `colored_shapes`
        data, and draws samples and completions with the cached sampler, which
        keeps a buffer per resolution and steps each layer at its own rate.

        {SMALL_NOTE}
        """
    ),
    code(
        """
        import json
        import math
        import os
        import time

        import keras
        import matplotlib.pyplot as plt
        import numpy as np

        import pixel_models as pm
        from pixel_models import data, training
        from pixel_models.distributions import LogisticMixture
        from pixel_models.images import make_grid
        from pixel_models.testing import dependencies, raster_allowed

        SMALL = os.environ.get("PIXEL_MODELS_NOTEBOOK_SMALL", "0") == "1"
        IMAGE_SIZE = 8 if SMALL else 16
        LEVELS = 4 if SMALL else 8  # values per colour channel of the data
        HIDDEN_DIMS = 8 if SMALL else 32
        NUM_RESNET = 1 if SMALL else 2
        NUM_RESOLUTIONS = 2 if SMALL else 3
        NUM_MIXTURES = 3 if SMALL else 5
        TRAIN_STEPS = 30 if SMALL else 1000
        CURVE_POINTS = 2 if SMALL else 10
        BATCH_SIZE = 32
        NUM_IMAGES = 4 if SMALL else 16
        keras.utils.set_random_seed(0)
        print(f"small settings: {SMALL}; {IMAGE_SIZE}x{IMAGE_SIZE}x3 images, {LEVELS} levels")
        """
    ),
    md(
        """
        ## 1. The discretized logistic mixture

        A value `x` in `{0, .., L-1}` is scaled to `y = 2x / (L-1) - 1` in `[-1, 1]`
        and owns the bin `[y - d, y + d]`, `d = 1 / (L-1)`. Its probability under
        one logistic with mean `m` and scale `s` is the difference of the logistic
        CDF `sigmoid((t - m) / s)` at the two ends of the bin; the first bin reaches
        down to minus infinity and the last up to plus infinity, so values 0 and
        255 collect all the mass beyond the edges (images have many saturated
        pixels). A mixture weighs `K` such logistics with softmax weights.

        `LogisticMixture(channels, levels, num_mixtures)` reads its parameters from
        the model's logits: for one channel, `K` mixture logits, `K` means and `K`
        log-scales. Below, three components, one of them centred beyond the
        right edge.
        """
    ),
    code(
        """
        mixture = LogisticMixture(channels=1, levels=256, num_mixtures=3)
        weight_logits = [0.0, -0.5, -1.0]
        means = [-0.4, 0.3, 1.2]
        log_scales = [-2.5, -3.5, -2.0]
        logits = np.array(weight_logits + means + log_scales, "float32")
        values = np.arange(256).reshape(256, 1, 1, 1)
        pmf = np.exp(mixture.log_prob(np.tile(logits, (256, 1, 1, 1)), values).numpy())

        plt.figure(figsize=(7, 3))
        plt.bar(np.arange(256), pmf, width=1.0)
        plt.xlabel("value")
        plt.ylabel("probability")
        plt.title(f"three logistics, discretized: total {pmf.sum():.6f}")
        plt.show()
        print(f"p(0) = {pmf[0]:.2e}, p(255) = {pmf[255]:.4f} (the mass right of the last bin)")
        """
    ),
    md(
        """
        For colour, the components are shared by the three channels of a pixel,
        and the mean of G (B) in component `k` is shifted by `tanh(a) y_R` (and
        `tanh(b) y_R + tanh(c) y_G`). The pixel's probability is
        `sum_k pi_k P_k(R) P_k(G | R) P_k(B | R, G)`: one distribution over all
        `L^3` colours, which sums to 1 exactly. With 4 levels there are 64
        colours, few enough to add up:
        """
    ),
    code(
        """
        rgb = LogisticMixture(channels=3, levels=4, num_mixtures=2)
        rgb_logits = np.random.default_rng(0).normal(size=rgb.logit_shape).astype("float32")
        colours = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(64, 1, 1, 3)
        p_rgb = np.exp(rgb.log_prob(np.tile(rgb_logits, (64, 1, 1, 1)), colours).numpy())
        n = rgb.logit_shape[0]
        print(f"{n} logits per pixel; the 64 colours' probabilities sum to {p_rgb.sum():.6f}")
        """
    ),
    md(
        """
        ## 2. What one output sees

        `dependencies` differentiates every output with respect to every input
        at a few random inputs. Since the mixture models a pixel's three channels
        together, no logit of pixel `(i, j)` may depend on any channel of that
        pixel, and every pixel before it in raster order may be seen. The
        PixelCNN tutorial shows the blind spot of stacked masked convolutions;
        here the two shifted streams and the lower resolutions reach every
        earlier pixel.
        """
    ),
    code(
        """
        shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
        model = pm.build_model(
            "pixel_cnn_pp",
            image_shape=shape,
            levels=LEVELS,
            hidden_dims=HIDDEN_DIMS,
            num_resnet=NUM_RESNET,
            num_resolutions=NUM_RESOLUTIONS,
            num_mixtures=NUM_MIXTURES,
            dropout=0.0,
        )
        print(f"{model.count_params():,} parameters")
        found = dependencies(model, shape, num_inputs=2)  # (H, W, logits, H, W, C)
        row, col = IMAGE_SIZE - 1, IMAGE_SIZE // 2
        seen = found[row, col].any(axis=(0, 3))
        allowed = raster_allowed(shape, out_channels=1, joint_channels=True)[row, col, 0, :, :, 0]
        assert not np.any(seen & ~allowed), "an output sees its own pixel or a later one"

        picture = np.where(seen, 2, np.where(allowed, 1, 0))
        picture[row, col] = 3
        plt.figure(figsize=(4, 4))
        plt.imshow(picture, cmap="viridis", vmin=0, vmax=3)
        plt.title(f"what output ({row}, {col}) sees")
        plt.axis("off")
        plt.show()
        print(
            f"seen: {seen.sum()} of the {allowed.sum()} earlier pixels; later pixels seen: "
            f"{(seen & ~allowed).sum()}"
        )
        """
    ),
    md(
        """
        ## 3. Training on coloured shapes

        `colored_shapes` paints two layers of random shapes, each in one colour,
        over a background colour, quantized to `LEVELS` values per channel (no
        download). The loss is the negative log-likelihood in nats per image;
        divided by `H * W * 3 * ln 2` it is in bits per dimension, where a model
        that knows nothing scores `log2(LEVELS)`.
        """
    ),
    code(
        """
        sizes = {"image_size": IMAGE_SIZE, "color_levels": LEVELS}
        train_images = data.load("colored_shapes", "train", **sizes)
        test_images = data.load("colored_shapes", "test", **sizes, num_examples=200)
        examples = np.stack([x.numpy() for x in test_images.take(NUM_IMAGES)])
        dims = IMAGE_SIZE * IMAGE_SIZE * 3


        def bits_per_dim(nll):
            return nll / (dims * math.log(2))


        trainer = training.Trainer(model, training.make_optimizer("adam", 2e-3))
        train = data.pipeline(train_images, BATCH_SIZE, training=True, seed=0)
        test = data.pipeline(test_images, 100, training=False)
        curve = [(0, bits_per_dim(trainer.evaluate(test)["nll"]))]
        start = time.time()
        for stop in np.linspace(0, TRAIN_STEPS, CURVE_POINTS + 1)[1:].round().astype(int):
            config = training.TrainConfig(
                max_steps=int(stop), test_step=int(stop), num_samples=0, verbose=False
            )
            metrics = training.fit(trainer, train, test, config)
            curve.append((trainer.step, bits_per_dim(metrics["test/nll"])))
        print(f"{trainer.step} steps in {time.time() - start:.0f} s")
        print(f"test: {curve[-1][1]:.3f} bits/dim (uniform: {math.log2(LEVELS):.3f})")

        plt.figure(figsize=(5, 3))
        plt.plot(*zip(*curve, strict=True), marker="o", label="PixelCNN++")
        plt.axhline(math.log2(LEVELS), color="grey", linestyle="--", label="uniform")
        plt.xlabel("step")
        plt.ylabel("test bits/dim")
        plt.legend()
        plt.show()
        """
    ),
    md(
        """
        ## 4. Cached sampling

        `method="reference"` runs the whole network once per pixel (what
        `tfp.distributions.PixelCNN.sample` does). `method="cached"` keeps, for
        every layer, the feature maps computed so far, and at each pixel
        evaluates each layer only at the positions that the new pixel changes:
        the strided layers every second row and column, the transposed ones when
        their input changes. Same seed, same draws: the two give the same images.
        """
    ),
    code(
        """
        timings, drawn = {}, {}
        for method in ("reference", "cached"):
            pm.sample(model, NUM_IMAGES, seed=1, method=method)  # compiles
            start = time.perf_counter()
            drawn[method] = pm.sample(model, NUM_IMAGES, seed=0, method=method)
            timings[method] = time.perf_counter() - start
        same = bool(np.array_equal(drawn["reference"], drawn["cached"]))
        print(
            f"reference {timings['reference']:.2f} s, cached {timings['cached']:.2f} s; "
            f"identical images: {same}"
        )
        samples = drawn["cached"]
        plt.figure(figsize=(4, 4))
        plt.imshow(make_grid(samples, levels=LEVELS))
        plt.title(f"{NUM_IMAGES} samples")
        plt.axis("off")
        plt.show()
        """
    ),
    md(
        """
        ## 5. Completions

        `pm.complete` keeps the given pixels and draws the others in raster
        order; here the top half of test images is given.
        """
    ),
    code(
        """
        known = np.zeros(examples.shape, bool)
        known[:, : IMAGE_SIZE // 2] = True
        completed = pm.complete(model, examples, known, seed=0)
        fig, axes = plt.subplots(2, 1, figsize=(8, 3))
        for ax, images, title in zip(
            axes, [examples, completed], ["originals", "completions of the top half"], strict=True
        ):
            ax.imshow(make_grid(images, levels=LEVELS, columns=NUM_IMAGES))
            ax.set_title(title)
            ax.axis("off")
        plt.tight_layout()
        plt.show()
        """
    ),
    code(
        """
        summary = {
            "image_size": IMAGE_SIZE,
            "levels": LEVELS,
            "mixture": {
                "weight_logits": weight_logits,
                "means": means,
                "log_scales": log_scales,
                "pmf": pmf.tolist(),
            },
            "rgb_total": float(p_rgb.sum()),
            "pixel": [int(row), int(col)],
            "seen_pixels": int(seen.sum()),
            "earlier_pixels": int(allowed.sum()),
            "later_pixels_seen": int((seen & ~allowed).sum()),
            "steps": trainer.step,
            "test_bits_per_dim": float(curve[-1][1]),
            "first_bits_per_dim": float(curve[0][1]),
            "uniform_bits_per_dim": math.log2(LEVELS),
            "cached_equals_reference": same,
            "samples_shape": list(samples.shape),
            "sample_max": int(samples.max()),
            "given_part_kept": bool(np.array_equal(completed[known], examples[known])),
        }
        print("summary:", json.dumps(summary))
        """
    ),
]

NOTEBOOKS = {
    "pixel_cnn_tutorial.ipynb": PIXEL_CNN,
    "pixel_rnn.ipynb": PIXEL_RNN,
    "invariant_convolutions.ipynb": INVARIANT,
    "conditional_generation.ipynb": CONDITIONAL,
    "pixel_cnn_pp.ipynb": PIXEL_CNN_PP,
}


def build(cells: list[tuple[str, str]], stem: str) -> nbformat.NotebookNode:
    """A notebook (without outputs) from ``(kind, source)`` pairs, with stable cell ids."""
    notebook = v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for index, (kind, source) in enumerate(cells):
        cell = v4.new_markdown_cell(source) if kind == "markdown" else v4.new_code_cell(source)
        cell.id = f"{stem.replace('_', '-')}-{index:02d}"
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def render(name: str) -> str:
    """The file content of notebook ``name``, as written by ``nbformat.write``."""
    text = nbformat.writes(build(NOTEBOOKS[name], Path(name).stem))
    return text if text.endswith("\n") else text + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the files are current")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = FOLDER / name
        text = render(name)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if args.check and stale:
        print(f"out of date (run python {Path(__file__).name}): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
