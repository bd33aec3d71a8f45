"""Fingerprints of seeded samples, completions and cached logits of every model.

For every model of ``pixel_models.models.MODELS`` that draws images (tiny
configurations, sharpened weights so that every draw depends on the pixels
before it), prints and writes as JSON the SHA-256 of the images drawn by
``sample`` and ``complete`` (and ``reconstruct`` for the autoencoder) with
``method="cached"`` and ``method="reference"``, the images themselves, and
the maxima of ``cached_logits``. Run it before and after a change to the
sampler and compare the two files: the same seeds must give the same images.

Usage:

    python benchmarks/sampling_fingerprint.py --output=/tmp/before.json
    python benchmarks/sampling_fingerprint.py --output=/tmp/after.json --compare=/tmp/before.json
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The checkout this script belongs to, not an installed copy of the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import pixel_models as pm  # noqa: E402
from pixel_models import sampling  # noqa: E402
from pixel_models.kinds import kind_for_builder  # noqa: E402
from pixel_models.models import MODELS  # noqa: E402
from pixel_models.testing import sharpen_every_weight  # noqa: E402

METHODS = ("cached", "reference")

# name -> (model name, build config, condition or None). Every model of MODELS
# that draws images appears at least once.
CASES = {
    "pixel_cnn-binary": ("pixel_cnn", dict(image_shape=(4, 4, 1)), None),
    "pixel_cnn-rgb4-residual": (
        "pixel_cnn",
        dict(image_shape=(3, 3, 3), levels=4, use_residual=True),
        None,
    ),
    "pixel_cnn-class": ("pixel_cnn", dict(image_shape=(4, 4, 1), num_classes=3), "labels"),
    "gated_pixel_cnn-binary": ("gated_pixel_cnn", dict(image_shape=(4, 5, 1)), None),
    "gated_pixel_cnn-rgb4-class": (
        "gated_pixel_cnn",
        dict(image_shape=(3, 3, 3), levels=4, num_classes=3),
        "labels",
    ),
    "gated_pixel_cnn-latent": (
        "gated_pixel_cnn",
        dict(image_shape=(4, 4, 1), latent_dims=2),
        "codes",
    ),
    "pixel_rnn-row_lstm": ("pixel_rnn", dict(image_shape=(4, 4, 1), rnn_type="row_lstm"), None),
    "pixel_rnn-diagonal_bilstm-rgb4": (
        "pixel_rnn",
        dict(image_shape=(3, 4, 3), levels=4, rnn_type="diagonal_bilstm", use_residual=True),
        None,
    ),
    "pixel_rcnn-dependent": (
        "pixel_rcnn",
        dict(image_shape=(3, 3, 3), levels=4, color_dependence="dependent"),
        None,
    ),
    "autoencoder": (
        "autoencoder",
        dict(image_shape=(4, 4, 1), latent_dims=2, encoder_dims=2),
        None,
    ),
    "multiscale_pixel_rnn-row_lstm": (
        "multiscale_pixel_rnn",
        dict(image_shape=(4, 4, 1), rnn_type="row_lstm", small_image_size=2, upsample_length=1),
        None,
    ),
    "multiscale_pixel_rnn-diagonal_bilstm-rgb4": (
        "multiscale_pixel_rnn",
        dict(
            image_shape=(4, 4, 3),
            levels=4,
            rnn_type="diagonal_bilstm",
            small_image_size=2,
            upsample_length=1,
        ),
        None,
    ),
    "pixel_snail-binary": (
        "pixel_snail",
        dict(image_shape=(4, 4, 1), num_blocks=1, residual_blocks=1, key_dims=2, value_dims=2),
        None,
    ),
    "pixel_snail-rgb4-class": (
        "pixel_snail",
        dict(image_shape=(3, 3, 3), levels=4, num_blocks=1, residual_blocks=1, num_classes=3),
        "labels",
    ),
    "pixel_cnn_pp-rgb8": (
        "pixel_cnn_pp",
        dict(image_shape=(4, 4, 3), levels=8, num_resnet=1, num_resolutions=2, num_mixtures=2),
        None,
    ),
}
SMALL = dict(hidden_dims=6, recurrent_length=2, out_hidden_dims=6, out_recurrent_length=1)
NUM = 4


def _hash(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def _build(name: str, config: dict) -> keras.Model:
    keras.utils.set_random_seed(len(name))
    takes = inspect.signature(MODELS[name]).parameters
    config = {k: v for k, v in {**SMALL, **config}.items() if k in takes}
    if name != "pixel_rcnn" and "first_kernel_size" in takes:
        config.setdefault("first_kernel_size", 3)
    model = pm.build_model(name, **config)
    sharpen_every_weight(model, seed=len(name))
    return model


def _condition(kind, num: int):
    rng = np.random.default_rng(7)
    if kind == "labels":
        return rng.integers(0, 3, num)
    if kind == "codes":
        return rng.normal(size=(num, 2)).astype(np.float32)
    return None


def _images(model: keras.Model, num: int, seed: int) -> np.ndarray:
    levels = pm.distribution_of(model).levels
    shape = (num, *sampling.image_shape(model))
    return np.random.default_rng(seed).integers(0, levels, shape).astype(np.uint8)


def _record(out: dict, key: str, array: np.ndarray) -> None:
    out[key] = {"sha256": _hash(array), "values": np.asarray(array).tolist()}


def _logit_models(name: str, model: keras.Model) -> dict:
    """The functional models whose cached logits are recorded."""
    if name == "autoencoder":
        return {"decoder": model.decoder}
    if name == "multiscale_pixel_rnn":
        small, full, _ = model.multiscale_stages()
        return {"small": small, "full": full}
    return {"model": model}


def fingerprint_case(case: str) -> dict:
    name, config, kind = CASES[case]
    model = _build(name, config)
    out: dict = {}
    condition = _condition(kind, NUM)
    images = _images(model, NUM, seed=3)
    known = np.random.default_rng(4).uniform(size=images.shape) < 0.5
    for method in METHODS:
        if name == "autoencoder":
            _record(out, f"reconstruct/{method}", pm.reconstruct(model, images, 5, method=method))
            codes = _condition("codes", NUM)
            drawn = pm.sample(model.decoder, NUM, 1, method=method, condition=codes)
            _record(out, f"decoder_sample/{method}", drawn)
            continue
        drawn = pm.sample(model, NUM, 1, method=method, condition=condition)
        _record(out, f"sample/{method}", drawn)
        done = pm.complete(model, images, known, 2, method=method, condition=condition)
        _record(out, f"complete/{method}", done)
    for part, functional in _logit_models(name, model).items():
        x = _images(functional, NUM, seed=6).astype(np.float32)
        given = _condition("codes" if name == "autoencoder" else kind, NUM)
        logits = sampling.cached_logits(functional, x, condition=given)
        out[f"cached_logits/{part}"] = {
            "max": float(np.max(logits)),
            "per_image_max": np.max(logits.reshape(NUM, -1), axis=1).tolist(),
            "values": logits.ravel().tolist(),
        }
    return out


def compare(before: dict, after: dict, tolerance: float = 1e-5) -> list[str]:
    """Differences between two fingerprint files, as lines (none: identical)."""
    problems = []
    for case in sorted(set(before) | set(after)):
        if case not in before or case not in after:
            problems.append(f"{case}: in one file only")
            continue
        for key in sorted(set(before[case]) | set(after[case])):
            old, new = before[case].get(key), after[case].get(key)
            if old is None or new is None:
                problems.append(f"{case} {key}: in one file only")
            elif key.startswith("cached_logits"):
                gap = float(np.max(np.abs(np.subtract(old["values"], new["values"]))))
                if gap > tolerance:
                    problems.append(f"{case} {key}: logits differ by {gap:.3g}")
            elif old["sha256"] != new["sha256"]:
                problems.append(f"{case} {key}: images differ")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="sampling_fingerprint.json")
    parser.add_argument("--compare", default=None, help="an earlier output to compare with")
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args(argv)
    if not set(args.cases.split(",")) <= set(CASES):
        parser.error(f"--cases must be among {', '.join(CASES)}")
    drawn = {name for name, _, _ in CASES.values()}
    missing = {name for name in MODELS if kind_for_builder(name).draws_images} - drawn
    if missing:
        raise SystemExit(f"models without a case: {sorted(missing)}")
    results = {}
    for case in args.cases.split(","):
        results[case] = fingerprint_case(case)
        summary = {
            key: value.get("sha256", value.get("max")) for key, value in results[case].items()
        }
        print(case, json.dumps(summary), flush=True)
    with open(args.output, "w") as f:
        json.dump(results, f)
    if args.compare:
        with open(args.compare) as f:
            problems = compare(json.load(f), results)
        print("\n".join(problems) if problems else f"identical to {args.compare}")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
