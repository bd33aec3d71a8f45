"""Every benchmark script imports and parses its default arguments, so a
change in the library or in benchmarks/common.py cannot break one unseen."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "common")


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_imports_and_parses_its_defaults(name, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module(name)
    assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"
    if hasattr(module, "parse_args"):
        monkeypatch.setattr(sys, "argv", [f"{name}.py"])
        assert module.parse_args([]) is not None


BAD_OPTIONS = [
    ("group_conv_benchmark", ["--groups=X4"], "--groups must be among C4, D4"),
    ("group_conv_benchmark", ["--repeats=0"], "--repeats must be an integer >= 1, got 0"),
    ("sampling_benchmark", ["--models=bogus"], "--models must be among "),
    ("sampling_benchmark", ["--hidden_dims=0"], "--hidden_dims must be an integer >= 1, got 0"),
    ("sampling_benchmark", ["--recurrent_length=-1"], "--recurrent_length must be an integer >= 0"),
    ("sampling_benchmark", ["--naive_batches=-1"], "--naive_batches must be a finite number > 0"),
    ("speed_benchmark", ["--variant=a=pixel_cnn", "--image_shape", "0", "0", "0"], "--image_shape"),
    ("speed_benchmark", ["--variant=a=pixel_cnn,hidden_dims=0"], "--variant: "),
    (
        "speed_benchmark",
        ["--variant=a=pixel_cnn", "--levels=1"],
        "--levels must be an integer >= 2",
    ),
    ("invariant_benchmark", ["--base_width=0"], "--base_width must be an integer >= 1, got 0"),
    ("invariant_benchmark", ["--learning_rate=0"], "--learning_rate must be a finite number > 0"),
    ("distribute_benchmark", ["--seconds=-1"], "--seconds must be a finite number > 0, got -1.0"),
    ("sampling_fingerprint", ["--cases=nope"], "--cases must be among "),
    ("train_benchmark", ["--test_step=0"], "--test_step must be an integer >= 1, got 0"),
]


@pytest.mark.parametrize("name, options, message", BAD_OPTIONS)
def test_a_bad_option_is_one_line_naming_it(name, options, message, monkeypatch, capsys, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module(name)
    output = tmp_path / "out.json"
    with pytest.raises(SystemExit) as exit_info:
        module.main([*options, f"--output={output}"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not output.exists()
