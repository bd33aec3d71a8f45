"""benchmarks/pixel_snail_benchmark.py and the helpers of benchmarks/common.py
it shares: models of matched size, steps in turns, and one tiny whole run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import pixel_snail_benchmark

    return pixel_snail_benchmark


def test_the_gated_pixel_cnn_is_the_nearest_in_parameters(bench):
    args = bench.parse_args(["--hidden_dims=8", "--num_blocks=1", "--gated_blocks=2"])
    target = int(bench.build_snail(args).count_params())
    gated, hidden = bench.matching_gated(args, target)
    assert int(gated.count_params()) == int(bench.build_gated(args, hidden).count_params())
    gap = abs(int(gated.count_params()) - target)
    for other in (hidden - 1, hidden + 1):
        if other >= 1:
            assert gap <= abs(int(bench.build_gated(args, other).count_params()) - target)
    assert gap < 0.2 * target


def test_train_in_turns_gives_every_model_the_same_time(bench, monkeypatch):
    import common

    clock = [0.0]
    monkeypatch.setattr(common.time, "perf_counter", lambda: clock[0])

    def costing(seconds):
        def step(batch):
            clock[0] += seconds
            return batch

        return step

    batches = iter(range(1000))
    spent, counts, curves = common.train_in_turns(
        {"slow": costing(3.0), "fast": costing(1.0)}, batches, seconds=12.0
    )
    assert counts == {"slow": 4, "fast": 12}
    assert spent == {"slow": 12.0, "fast": 12.0}
    assert [point[:2] for point in curves["slow"]] == [[1, 3.0], [2, 6.0], [3, 9.0], [4, 12.0]]


def test_bad_arguments_are_refused_in_one_line(bench, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--key_dims=0"])
    assert exit_info.value.code == 2
    assert "--key_dims must be an integer >= 1, got 0" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_run_writes_its_report(bench, tmp_path):
    data_dir = os.environ.get("TFDS_DATA_DIR", "")
    if not os.path.isdir(os.path.join(data_dir, "binarized_mnist")):
        pytest.skip("binarized_mnist is not prepared (set TFDS_DATA_DIR)")
    output = tmp_path / "report.json"
    argv = [
        "--hidden_dims=4",
        "--num_blocks=1",
        "--residual_blocks=1",
        "--key_dims=2",
        "--value_dims=4",
        "--gated_blocks=1",
        "--batch_size=4",
        "--rounds=1",
        "--sample_images=1",
        "--sample_rounds=1",
        "--minutes=0.05",
        "--test_images=20",
        f"--output={output}",
    ]
    report = bench.main(argv)
    saved = json.loads(output.read_text())
    assert saved["parameters"] == report["parameters"]
    assert set(saved["nll"]) == {"pixel_snail", "gated_pixel_cnn"}
    for name, row in saved["nll"].items():
        assert row["steps"] >= 2 and row["train_seconds"] >= 3.0, name
        assert 0 < row["test_nll_nats"] < 2000, name
        assert saved["training"][name]["images_per_second"] > 0
        assert saved["sampling"][name]["images_per_second"] > 0
