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
