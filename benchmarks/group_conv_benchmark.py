"""Group convolution speed: one gather + one conv2d against one conv2d per orientation.

For C4 and D4, lifting (image input) and group-to-group input, times two ways
of computing the same output, in one run and on the same inputs and weights:

- fused: ``GroupConv2D`` itself, which gathers all ``|G|`` transformed
  kernel copies with one precomputed index table and runs a single
  ``conv2d`` with ``filters * |G|`` outputs;
- separate: ``|G|`` convolutions, one per orientation, each with its copy of
  the kernel made by flips, transposes and (for group input) a permutation
  of the input orientations, the outputs stacked into the same layout.

Both are compiled with ``tf.function``. Each is timed forward only and
forward + backward (gradients for the input and the kernel), after a warm-up
call; the calls of the two methods alternate and the median is kept, so
that load from other processes hits both alike. Checks that the outputs
agree, then prints and writes JSON with the times and the ratio
separate / fused (above 1: the fused layer is faster).

    python benchmarks/group_conv_benchmark.py --output=benchmarks/results/group_conv.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pixel_models.layers.invariant import GroupConv2D, group_table  # noqa: E402


def turn_kernel(kernel: tf.Tensor, element: int, group: str, input_kind: str) -> tf.Tensor:
    """One transformed kernel copy with TensorFlow ops (no index table)."""
    table = group_table(group)
    quarter_turns, mirrored = table.elements[element]
    if mirrored:
        kernel = tf.reverse(kernel, axis=[1])
    for _ in range(quarter_turns):  # np.rot90 on the (row, column) axes
        kernel = tf.reverse(kernel, axis=[1])
        kernel = tf.transpose(kernel, [1, 0, *range(2, kernel.shape.rank)])
    if input_kind == "group":
        kernel = tf.gather(kernel, table.orientation_permutation(element), axis=3)
    return kernel


def separate_convolutions(layer: GroupConv2D):
    """The layer's output computed as ``|G|`` separate convolutions of its kernel."""
    order = layer.order

    def fn(inputs):
        kernel = tf.convert_to_tensor(layer.kernel)
        outputs = []
        for g in range(order):
            copy = turn_kernel(kernel, g, layer.group, layer.input_kind)
            copy = tf.reshape(copy, [*copy.shape[:2], inputs.shape[-1], layer.filters])
            outputs.append(tf.nn.conv2d(inputs, copy, layer.strides, layer.padding.upper()))
        stacked = tf.stack(outputs, axis=-1)  # (B, H, W, F, |G|)
        out = tf.reshape(stacked, [*stacked.shape[:3], layer.filters * order])
        return out + tf.repeat(tf.convert_to_tensor(layer.bias), order)

    return fn


def timed_pair(fns: dict, repeats: int) -> dict:
    """Median seconds of each function, calls alternating between them."""
    return {name: statistics.median(t) for name, t in common.time_in_turns(fns, repeats).items()}


def measure(group: str, input_kind: str, args: argparse.Namespace) -> dict:
    order = group_table(group).order
    in_channels = args.image_channels if input_kind == "image" else args.in_features * order
    layer = GroupConv2D(
        args.filters, args.kernel_size, group=group, input_kind=input_kind, bias_initializer="ones"
    )
    rng = np.random.default_rng(args.seed)
    x = tf.constant(rng.standard_normal((args.batch_size, args.size, args.size, in_channels)))
    x = tf.cast(x, tf.float32)
    layer(x)
    methods = {"fused": layer, "separate": separate_convolutions(layer)}

    forward = {name: tf.function(fn) for name, fn in methods.items()}

    def make_step(fn):
        @tf.function
        def step(inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                loss = tf.reduce_sum(tf.square(fn(inputs)))
            return tape.gradient(loss, [inputs, layer.kernel])

        return step

    steps = {name: make_step(fn) for name, fn in methods.items()}
    outs = {name: fn(x).numpy() for name, fn in forward.items()}  # warm-up
    grads = {name: [g.numpy() for g in step(x)] for name, step in steps.items()}
    reference = layer(x).numpy()
    scale = float(np.max(np.abs(reference)))
    max_error = max(float(np.max(np.abs(out - reference))) / scale for out in outs.values())
    grad_error = max(
        float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
        for a, b in zip(grads["fused"], grads["separate"], strict=True)
    )
    t_forward = timed_pair({n: lambda f=f: f(x).numpy() for n, f in forward.items()}, args.repeats)
    t_train = timed_pair(
        {n: lambda s=s: [g.numpy() for g in s(x)] for n, s in steps.items()}, args.repeats
    )
    k = args.kernel_size
    flops = 2 * args.batch_size * args.size**2 * k * k * in_channels * args.filters * order
    return {
        "group": group,
        "input_kind": input_kind,
        "input_shape": [args.batch_size, args.size, args.size, in_channels],
        "output_channels": args.filters * order,
        "kernel_size": k,
        "gflop_forward": round(flops / 1e9, 3),
        "seconds_forward": {n: round(t, 4) for n, t in t_forward.items()},
        "seconds_forward_backward": {n: round(t, 4) for n, t in t_train.items()},
        "ratio_separate_over_fused_forward": round(t_forward["separate"] / t_forward["fused"], 2),
        "ratio_separate_over_fused_forward_backward": round(
            t_train["separate"] / t_train["fused"], 2
        ),
        "max_relative_difference_outputs": max_error,
        "max_relative_difference_gradients": grad_error,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--groups", default="C4,D4")
    p.add_argument("--input_kinds", default="image,group")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--filters", type=int, default=32)
    p.add_argument("--kernel_size", type=int, default=3)
    p.add_argument("--image_channels", type=int, default=3, help="channels of the image input")
    p.add_argument(
        "--in_features", type=int, default=8, help="features of the group input (x |G| channels)"
    )
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="benchmarks/results/group_conv.json")
    args = p.parse_args(argv)
    groups, kinds = args.groups.split(","), args.input_kinds.split(",")
    if not set(groups) <= {"C4", "D4"} or not set(kinds) <= {"image", "group"}:
        p.error("--groups must be among C4, D4 and --input_kinds among image, group")
    sizes = ("batch_size", "size", "filters", "kernel_size", "image_channels", "in_features")
    common.require_at_least(p, args, 1, (*sizes, "repeats"))

    machine = common.machine()
    rows = []
    for group in groups:
        for input_kind in kinds:
            row = measure(group, input_kind, args)
            row["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
            print(json.dumps(row), flush=True)
            rows.append(row)
    report = {"machine": machine, "settings": vars(args), "rows": rows}
    common.write_report(report, args.output)
    return report


if __name__ == "__main__":
    main()
