"""benchmarks/warmup_benchmark.py: its argument checks and one tiny whole run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import warmup_benchmark

    return warmup_benchmark


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps=0"], "--steps must be an integer >= 1, got 0"),
        (["--warmup_steps=-2"], "--warmup_steps must be an integer >= 1, got -2"),
        (["--steps=4", "--tail=5"], "--tail must be at most --steps (4), got 5"),
    ],
)
def test_bad_arguments_are_named(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as err:
        bench.parse_args(argv)
    assert err.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_flagfile_is_one_line(bench, capsys):
    assert bench.main(["--flagfile=configs/none.cfg"]) == 1
    assert capsys.readouterr().err.strip() == "error: flagfile configs/none.cfg does not exist"


@pytest.mark.slow
def test_both_runs_take_the_same_batches_and_only_the_warmup_differs(bench, tmp_path):
    output = tmp_path / "warmup.json"
    argv = ["--flagfile=configs/shapes_pixel_snail.cfg", "--batch_size=4", "--steps=3"]
    argv += ["--warmup_steps=2", "--tail=2", f"--output={output}"]
    assert bench.main(argv) == 0
    report = json.loads(output.read_text())
    curves = report["train_nll_per_step"]
    assert len(curves["constant"]) == len(curves["warmup"]) == 3
    # Same seed, same first batch, no update yet: the same first loss; then the
    # smaller first step of the warmup gives another second loss.
    assert curves["constant"][0] == curves["warmup"][0]
    assert curves["constant"][1] != curves["warmup"][1]
    summary = report["summary"]["warmup"]
    assert summary["worst_train_nll"] == max(curves["warmup"])
    assert summary["mean_train_nll_last_2"] == pytest.approx(sum(curves["warmup"][1:]) / 2, 0.01)
