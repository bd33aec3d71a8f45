"""The notebooks run from start to end with tiny settings and compute what they show.

Each notebook is executed in a fresh ``python3`` Jupyter kernel with
``PIXEL_MODELS_NOTEBOOK_SMALL=1``; a failing cell fails the test. Its last cell
prints ``summary: {...}`` (JSON), which is checked against values worked out
here independently (receptive fields from the mask shapes, the Row LSTM
triangle, exact invariance, the labels of the test data, grid shapes, the
logistic mixture's probabilities from its CDF).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from pixel_models import data
from pixel_models.layers.masked_conv import make_mask

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "notebooks"
NAMES = (
    "pixel_cnn_tutorial.ipynb",
    "pixel_rnn.ipynb",
    "invariant_convolutions.ipynb",
    "conditional_generation.ipynb",
    "pixel_cnn_pp.ipynb",
)
CELL_TIMEOUT = 300  # seconds per cell; the small settings need a few seconds each


def _kernel_name() -> str:
    """``python3``, ipykernel's kernel, which runs on this interpreter.

    ipykernel installs its kernelspec with the package, and ``jupyter_client``
    also provides it whenever ipykernel is importable; its ``python`` command
    is replaced by the running interpreter when the kernel starts.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no Jupyter kernel named python3 (pip install ipykernel)")
    return "python3"


def _execute(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Runs notebook ``name`` with the small settings; returns it and its summary."""
    notebook = nbformat.read(FOLDER / name, as_version=4)
    # The kernel inherits this environment: the small settings, and the
    # repository on the path when the package is not installed.
    monkeypatch.setenv("PIXEL_MODELS_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), path])))
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name=_kernel_name(),
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was drawn"
    last = [cell for cell in notebook.cells if cell.cell_type == "code"][-1]
    text = "".join(o.get("text", "") for o in last.outputs if o.output_type == "stream")
    lines = [line for line in text.splitlines() if line.startswith("summary: ")]
    assert len(lines) == 1, f"the last cell printed no summary line: {text!r}"
    return notebook, json.loads(lines[0].removeprefix("summary: "))


def _offsets(kernel_size: int, mask_type: str) -> list[tuple[int, int]]:
    """Positions a one-channel masked kernel reads, relative to its centre."""
    mask = make_mask(kernel_size, 1, 1, mask_type)[:, :, 0, 0]
    centre = kernel_size // 2
    return [(int(r) - centre, int(c) - centre) for r, c in np.argwhere(mask > 0)]


def _stack_field(size, pixel, layers) -> np.ndarray:
    """Input pixels reached from output ``pixel`` through ``layers`` (last layer first).

    Every intermediate position must lie inside the image: outside it the
    ``SAME`` padding holds zeros, not features.
    """
    reach = {tuple(pixel)}
    for offsets in layers:
        reach = {
            (r + dr, c + dc)
            for r, c in reach
            for dr, dc in offsets
            if 0 <= r + dr < size and 0 <= c + dc < size
        }
    field = np.zeros((size, size), bool)
    field[tuple(np.array(sorted(reach)).T)] = True
    return field


def test_notebooks_are_generated_and_stored_without_outputs():
    spec = importlib.util.spec_from_file_location("build_notebooks", FOLDER / "build_notebooks.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    assert sorted(builder.NOTEBOOKS) == sorted(NAMES)
    assert builder.main(["--check"]) == 0, "run python notebooks/build_notebooks.py"
    for name in NAMES:
        notebook = nbformat.read(FOLDER / name, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
            else:  # indented by 4 or more, a paragraph would render as code
                indented = [line for line in cell.source.splitlines() if line.startswith("    ")]
                assert not indented or "```" in cell.source, f"{name}: {indented[0]!r}"


def test_pixel_cnn_tutorial(tmp_path, monkeypatch):
    _, summary = _execute("pixel_cnn_tutorial.ipynb", tmp_path, monkeypatch)
    size = summary["image_size"]
    assert size == 8, "PIXEL_MODELS_NOTEBOOK_SMALL=1 must shrink the images to 8x8"
    # The field of the pixel from the mask shapes alone: the 1x1 output layers,
    # the 3x3 type B layers, then the 7x7 type A layer.
    hidden = _offsets(summary["hidden_kernel_size"], "B")
    first = _offsets(summary["first_kernel_size"], "A")
    field = _stack_field(size, summary["pixel"], [hidden] * summary["hidden_layers"] + [first])
    order = np.arange(size * size).reshape(size, size)
    row, col = summary["pixel"]
    allowed = order < order[row, col]
    rows, cols = np.nonzero(field)
    box = np.zeros_like(field)
    box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
    blind = allowed & ~field & box
    assert summary["field_pixels"] == field.sum()
    assert summary["blind_spot_pixels"] == blind.sum() > 0
    # A few steps already beat the uniform model; sampling and completion ran.
    assert summary["steps"] > 0
    assert summary["test_nll"] < summary["uniform_nll"]
    assert summary["samples_shape"] == [4, size, size, 1]
    assert summary["given_part_kept"] is True


def test_pixel_rnn_notebook(tmp_path, monkeypatch):
    _, summary = _execute("pixel_rnn.ipynb", tmp_path, monkeypatch)
    assert summary["skewed_shape"] == [1, 4, 4 + 5 - 1, 1]
    assert summary["unskew_inverts_skew"] is True
    height, width, _ = summary["layer_shape"]
    i, j = summary["layer_pixel"]
    # Row LSTM, k = 3: row i - d contributes columns j - d - 1 .. j + d, and
    # the current row j - 1 .. j.
    triangle = sum(
        min(width - 1, j + d) - max(0, j - d - 1 if d else j - 1) + 1 for d in range(i + 1)
    )
    assert summary["row_lstm_field"] == triangle
    assert summary["diagonal_lstm_field"] == (i + 1) * (j + 1)  # the upper-left quadrant
    assert summary["bilstm_field"] == i * width + j + 1  # the whole past and the pixel
    assert summary["bilstm_field"] > summary["row_lstm_field"]
    size = summary["model_size"]
    assert summary["model_bilstm_field_last"] == size * size - 1
    assert summary["model_row_lstm_field_last"] < size * size - 1
    # Output (size - 1, 0) misses only the end of the row above (documented).
    assert summary["model_bilstm_gap"] == [[size - 2, size - 1]]
    assert summary["model_bilstm_field_first"] == (size - 1) * size - 1


def test_invariant_convolutions_notebook(tmp_path, monkeypatch):
    _, summary = _execute("invariant_convolutions.ipynb", tmp_path, monkeypatch)
    # Exact up to float32 rounding.
    assert summary["group_conv_max_error"] < 1e-5
    assert summary["invariant_conv_max_error"] < 1e-5
    assert summary["invariant_cnn_logit_change"] < 1e-5
    assert summary["full_group_flip_error"] < 1e-5
    # Not invariant at all.
    assert summary["plain_cnn_logit_change"] > 1e-2
    assert summary["three_copy_flip_error"] > 1e-2


def _grid_shape(num, size, columns, padding=1) -> list[int]:
    """Shape of ``num`` square one-channel tiles laid out ``columns`` to a row."""
    rows = -(-num // columns)
    return [rows * (size + padding) + padding, columns * (size + padding) + padding, 1]


def test_conditional_generation_notebook(tmp_path, monkeypatch):
    _, summary = _execute("conditional_generation.ipynb", tmp_path, monkeypatch)
    size, classes = summary["image_size"], summary["num_classes"]
    assert size == 8, "PIXEL_MODELS_NOTEBOOK_SMALL=1 must shrink the images to 8x8"
    assert classes == 3
    # Conditioning adds V y: the masks still decide what each output sees, and
    # the first pixel sees no pixel, only the label.
    assert summary["conditional_causal"] is True
    assert summary["first_pixel_image_change"] < 1e-6
    assert summary["first_pixel_label_change"] > 1e-6
    assert summary["steps"] > 0 and np.isfinite(summary["final_train_nll"])
    assert summary["uniform_nll"] == pytest.approx(size * size * np.log(2))
    # One row of samples per class.
    per_class = summary["per_class"]
    assert summary["sample_labels"] == np.repeat(np.arange(classes), per_class).tolist()
    assert summary["samples_shape"] == [classes * per_class, size, size, 1]
    assert set(summary["sample_values"]) <= {0, 1}
    assert summary["sample_grid_shape"] == _grid_shape(classes * per_class, size, per_class)
    # Which class is most likely, tallied by true class: the rows count the
    # labels of the first test images.
    num_test = summary["num_test"]
    pairs = data.load(
        "shapes",
        "test",
        image_size=size,
        seed=summary["data_seed"],
        with_labels=True,
        num_examples=num_test,
    )
    labels = np.array([int(y) for _, y in pairs.as_numpy_iterator()])
    wins = np.array(summary["wins"])
    assert wins.shape == (classes, classes)
    assert wins.sum(axis=1).tolist() == np.bincount(labels, minlength=classes).tolist()
    assert summary["own_class_fraction"] == pytest.approx(np.trace(wins) / num_test)
    assert summary["chance"] == pytest.approx(1 / classes)
    # The autoencoders trained; reconstructions are binary images beside their originals.
    assert all(steps > 0 for steps in summary["autoencoder_steps"].values())
    num = summary["reconstructions_shape"][0]
    assert summary["reconstructions_shape"] == [num, size, size, 1]
    assert set(summary["reconstruction_values"]) <= {0, 1}
    per_row = int(np.ceil(np.sqrt(num)))
    assert summary["reconstruction_grid_shape"] == _grid_shape(2 * num, size, 2 * per_row)
    assert np.isfinite(summary["nll_own_code"]) and np.isfinite(summary["nll_other_code"])
    # The invariant code does not move when the image turns; the plain one does.
    assert summary["invariant_code_change"] < 1e-5
    assert summary["plain_code_change"] > 1e-3
    assert summary["invariant_reconstructions_equal"] is True


def _discretized_logistic_mixture(weight_logits, means, log_scales, levels) -> np.ndarray:
    """The probabilities of the values ``0 .. levels - 1`` under a one-channel
    mixture, from the logistic CDF in float64 (the edge bins reach to infinity)."""
    weights = np.exp(weight_logits - np.max(weight_logits))
    weights /= weights.sum()
    y = 2 * np.arange(levels)[:, None] / (levels - 1) - 1
    half = 1 / (levels - 1)
    scales = np.exp(np.maximum(log_scales, -7.0))

    def cdf(t):
        return 1 / (1 + np.exp(-(t - np.asarray(means)) / scales))

    upper = np.where(y > 1 - half, 1.0, cdf(y + half))
    lower = np.where(y < -1 + half, 0.0, cdf(y - half))
    return (upper - lower) @ weights


def test_pixel_cnn_pp_notebook(tmp_path, monkeypatch):
    _, summary = _execute("pixel_cnn_pp.ipynb", tmp_path, monkeypatch)
    size, levels = summary["image_size"], summary["levels"]
    assert size == 8, "PIXEL_MODELS_NOTEBOOK_SMALL=1 must shrink the images to 8x8"
    # The mixture's probabilities, worked out from the logistic CDF; the last
    # bin holds the mass of the component centred beyond the right edge.
    mixture = summary["mixture"]
    expected = _discretized_logistic_mixture(
        np.array(mixture["weight_logits"]), mixture["means"], mixture["log_scales"], 256
    )
    pmf = np.array(mixture["pmf"])
    np.testing.assert_allclose(pmf, expected, atol=1e-6)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-5)
    assert pmf[255] > 10 * pmf[254]
    assert summary["rgb_total"] == pytest.approx(1.0, abs=1e-5)
    # The output sees every earlier pixel and nothing else: no blind spot.
    row, col = summary["pixel"]
    assert summary["earlier_pixels"] == row * size + col
    assert summary["seen_pixels"] == summary["earlier_pixels"]
    assert summary["later_pixels_seen"] == 0
    # A few steps already learn something; the cached sampler draws the
    # reference loop's images; completion keeps what it is given.
    assert summary["steps"] > 0
    assert summary["test_bits_per_dim"] < summary["first_bits_per_dim"]
    assert summary["uniform_bits_per_dim"] == pytest.approx(np.log2(levels))
    assert summary["cached_equals_reference"] is True
    assert summary["samples_shape"] == [4, size, size, 3]
    assert 0 <= summary["sample_max"] < levels
    assert summary["given_part_kept"] is True
