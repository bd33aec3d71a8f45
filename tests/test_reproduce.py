"""benchmarks/reproduce.py: configurations from flagfiles, trained, resumed and
recorded as NLL curves (on tiny procedural data)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGFILE = """--model=pixel_cnn
--data=shapes
--image_size=8
--hidden_dims=4
--recurrent_length=1
--out_hidden_dims=4
--out_recurrent_length=1
--batch_size=64
--optimizer=adam
--max_steps=4
--test_step=2
--save_step=100
--num_samples=1
--log_level=WARNING
"""


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_listed_configuration_has_a_flagfile_of_its_dataset(reproduce):
    for entry in reproduce.CONFIGURATIONS:
        config = reproduce.parse_flagfile(entry.flagfile)
        assert entry.name.startswith(config.data + "_"), entry.name
        assert config.max_steps > 0, f"{entry.flagfile} has no max_steps for --full"
        assert entry.unit == ("bits/dim" if config.data == "cifar10" else "nats")


def test_a_run_writes_its_curve_and_resumes_in_the_same_folder(reproduce, tmp_path):
    flagfile = tmp_path / "tiny.cfg"
    flagfile.write_text(TINY_FLAGFILE)
    entry = reproduce.Reproduction("shapes_tiny", str(flagfile), None, "nats", "none")
    work, results = str(tmp_path / "runs"), str(tmp_path / "results")
    first = reproduce.run_one(entry, None, work, results, command="tiny")
    saved = json.loads((tmp_path / "results" / "reproduce_shapes_tiny.json").read_text())
    assert saved == json.loads(json.dumps(first))
    curve = saved["curve"]
    assert [p["step"] for p in curve] == [1, 2, 3, 4]
    assert [p["step"] for p in curve if "test_nll" in p] == [2, 4]
    assert saved["ours"]["value"] == curve[-1]["test_nll"] and saved["steps"] == 4
    for point in curve:
        assert point["train_bits_per_dim"] == pytest.approx(
            point["train_nll"] / (64 * 0.6931472), rel=1e-3
        )
    # The same run with a later max_steps trains on from its checkpoint at 4.
    again = reproduce.run_one(entry, None, work, results, overrides=("--max_steps=5",))
    assert again["run"] == first["run"]
    assert [p["step"] for p in again["curve"]] == [1, 2, 3, 4, 5]
    seconds = [p["seconds"] for p in again["curve"]]
    assert seconds == sorted(seconds) and seconds[3] == curve[3]["seconds"]
    assert (tmp_path / "runs" / "checkpoints" / first["run"] / "ckpt-5.index").exists()


def test_a_minute_budget_stops_the_run_and_is_kept_across_calls(reproduce, tmp_path):
    flagfile = tmp_path / "tiny.cfg"
    flagfile.write_text(TINY_FLAGFILE.replace("--max_steps=4", "--max_steps=100000"))
    entry = reproduce.Reproduction("shapes_budget", str(flagfile), 1.0, "nats", "none")
    work, results = str(tmp_path / "runs"), str(tmp_path / "results")
    first = reproduce.run_one(entry, 1e-9, work, results)
    assert first["steps"] == 1 and first["budget"] == {"minutes": 1e-9}
    assert "test_nll" in first["curve"][-1]
    # The budget is spent: the second call trains no further.
    assert reproduce.run_one(entry, 1e-9, work, results)["steps"] == 1


def test_the_result_of_another_run_is_replaced_only_when_asked(reproduce, tmp_path):
    flagfile = tmp_path / "tiny.cfg"
    flagfile.write_text(TINY_FLAGFILE.replace("--max_steps=4", "--max_steps=100000"))
    entry = reproduce.Reproduction("shapes_kept", str(flagfile), 1.0, "nats", "none")
    results = str(tmp_path / "results")
    recorded = reproduce.run_one(entry, 1e-9, str(tmp_path / "a"), results)
    out = tmp_path / "results" / "reproduce_shapes_kept.json"
    before = out.read_bytes()
    # The same run resumed updates its own file; a run in another folder does not.
    assert reproduce.run_one(entry, 1e-9, str(tmp_path / "a"), results) == recorded
    with pytest.raises(reproduce.ReproduceError, match="holds the result of another run"):
        reproduce.run_one(entry, 1e-9, str(tmp_path / "b"), results)
    assert out.read_bytes() == before
    assert not (tmp_path / "b" / "checkpoints").exists()  # refused before training
    again = reproduce.run_one(entry, 1e-9, str(tmp_path / "b"), results, overwrite=True)
    assert again["steps"] == 1 and json.loads(out.read_text())["curve"] == again["curve"]


def test_a_configuration_asked_for_and_not_run_exits_1(reproduce, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "empty"))
    assert reproduce.main(["--only", "cifar10_pixel_snail", "--results_dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("skipped cifar10_pixel_snail: dataset cifar10")
    assert captured.err.strip() == "error: --only: not run (no data): cifar10_pixel_snail"


def test_a_missing_dataset_is_skipped_with_one_line(reproduce, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "empty"))
    entry = next(e for e in reproduce.CONFIGURATIONS if e.name == "cifar10_pixel_cnn_pp")
    assert reproduce.run_one(entry, 1.0, str(tmp_path / "runs"), str(tmp_path / "res")) is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skipped cifar10_pixel_cnn_pp: dataset cifar10")
    assert "download_and_prepare" in lines[0] and "--download" in lines[0]
    assert not (tmp_path / "res" / "reproduce_cifar10_pixel_cnn_pp.json").exists()


def test_an_unknown_name_exits_1_with_one_line(reproduce, capsys):
    assert reproduce.main(["--only", "binarized_mnist_pixel_cnn", "nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: --only: unknown configuration 'nope'; choose from ")
    assert "cifar10_pixel_snail" in err[0]


def test_ctrl_c_is_one_line_and_exit_status_130(reproduce, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduce, "run_one", interrupted)
    argv = ["--only", "binarized_mnist_pixel_cnn", "--download", "--results_dir", str(tmp_path)]
    assert reproduce.main([*argv, "--work_dir", str(tmp_path / "runs")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: interrupted; each run keeps its last checkpoint, and the same command resumes it"
    ]
