"""End-to-end tests of main.py on procedural data (offline, tiny shapes)."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TINY_NETWORK = [
    "--hidden_dims=4",
    "--recurrent_length=1",
    "--out_hidden_dims=4",
    "--out_recurrent_length=1",
]
TINY = [
    "--data=shapes",
    "--image_size=8",
    *TINY_NETWORK,
    "--batch_size=16",
    "--log_level=WARNING",
    f"--flagfile={ROOT / 'tests' / 'tiny_modes.cfg'}",  # --num_samples, --test_step, --save_step
]


def tiny_for(model: str) -> list[str]:
    """``TINY`` without the network flags that ``model`` does not read (main.py
    refuses those), and with ``--model``."""
    sys.path.insert(0, str(ROOT))
    from pixel_models.config import UsageError, check_network_fields_read

    def reads(flag: str) -> bool:
        try:
            check_network_fields_read(model, {flag[2:].split("=")[0]})
        except UsageError:
            return False
        return True

    return [f"--model={model}", *(f for f in TINY if f not in TINY_NETWORK or reads(f))]


def run_main(
    *args: str, cwd: Path | None = None, timeout: float = 240, python_args: tuple[str, ...] = ()
):
    """``main.py`` with ``args`` in a process of its own; ``python_args`` go to
    the interpreter before the script (e.g. ``("-c", code)`` that runs it)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(
        [sys.executable, *python_args, str(ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd or ROOT,
    )


def run_in_process(capfd, *args: str) -> subprocess.CompletedProcess:
    """What ``run_main`` gives, from ``main.py``'s own error handling called in
    this process: the same flags, run config, library calls and one-line
    errors, without starting a new interpreter (and importing TensorFlow) for
    every run. The checks of the program itself (a pipe's progress lines,
    native log noise, exit codes of ``app.run``) use ``run_main``."""
    import io
    import logging as python_logging

    import keras
    from absl import flags, logging

    sys.path.insert(0, str(ROOT))
    import main

    argv = ["main.py", *args]
    tf_logger = python_logging.getLogger("tensorflow")
    tf_level = tf_logger.level
    capfd.readouterr()  # what came before is not this run's
    flags.FLAGS.unparse_flags()
    logged = io.StringIO()  # absl's log lines, which go to stderr in a process of their own
    handler = python_logging.StreamHandler(logged)
    handler.setFormatter(logging.PythonFormatter())  # "W1202 12:00:00.000000 ... file.py:12] ..."
    logging.get_absl_logger().addHandler(handler)
    argv_before, sys.argv = sys.argv, argv  # what run_config() reads as typed
    try:
        try:
            rest = flags.FLAGS(argv)  # the program name and any positional arguments
        except flags.Error as err:
            print(f"FATAL Flags parsing error: {err}", file=sys.stderr)
            code = 1
        else:
            with pytest.raises(SystemExit) as exit_info:
                main._main_with_errors(rest)
            code = exit_info.value.code
    finally:
        sys.argv = argv_before
        flags.FLAGS.unparse_flags()
        logging.get_absl_logger().removeHandler(handler)
        keras.config.set_dtype_policy("float32")
        logging.set_verbosity(logging.WARNING)
        tf_logger.setLevel(tf_level)  # an error quiets TensorFlow's logger for the exit
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(argv, code, out, logged.getvalue() + err)


def dirs(tmp_path: Path) -> list[str]:
    return [
        f"--checkpoint_dir={tmp_path / 'ckpt'}",
        f"--log_dir={tmp_path / 'logs'}",
        f"--sample_dir={tmp_path / 'samples'}",
    ]


def only(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern, recursive=True))


def saved_steps(checkpoint_root: Path) -> list[int]:
    """The steps of the intact checkpoints of every run below
    ``checkpoint_root``, oldest first. Older checkpoints are deleted as new
    ones come (max_to_keep), so a test that waits for training to pass step N
    looks for any of these at or past N, not for ckpt-N itself."""
    from pixel_models import runs

    return sorted(
        runs.checkpoint_step(prefix)
        for folder in glob.glob(f"{checkpoint_root}/*/")
        for prefix in runs.checkpoint_files(folder)
    )


@pytest.mark.slow
def test_train_resume_generate(tmp_path, capfd):
    args = [*TINY, *dirs(tmp_path)]
    first = run_main(*args, "--max_steps=10")
    assert first.returncode == 0, first.stderr[-2000:]
    # Output to a pipe: plain progress lines, no redrawn bar.
    assert "\r" not in first.stdout and "\b" not in first.stdout
    assert "step 10/10 (100%)" in first.stdout
    index = only(f"{tmp_path}/ckpt/*/ckpt-10.index")
    assert len(index) == 1, os.listdir(tmp_path / "ckpt")
    assert only(f"{tmp_path}/ckpt/*/ckpt-5.index")
    assert only(f"{tmp_path}/logs/*/events.out.tfevents.*")
    pngs = only(f"{tmp_path}/samples/*/sample_*.png")
    assert [Path(p).name for p in pngs] == ["sample_0000005.png", "sample_0000010.png"]
    grid = np.asarray(Image.open(pngs[-1]))
    assert grid.shape == (2 * 9 + 1, 2 * 9 + 1)  # 2x2 tiles of 8x8 with 1-pixel gaps

    # The same command with a higher step limit continues from step 10.
    second = run_in_process(capfd, *args, "--max_steps=15", "--log_level=INFO")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "at step 10" in second.stderr
    assert only(f"{tmp_path}/ckpt/*/ckpt-15.index")
    # Running it once more has nothing left to do and writes nothing new.
    before = sorted(os.listdir(Path(index[0]).parent))
    third = run_in_process(capfd, *args, "--max_steps=15")
    assert third.returncode == 0, third.stderr[-2000:]
    assert sorted(os.listdir(Path(index[0]).parent)) == before

    generated = run_main(*args, "--is_train=False")
    assert generated.returncode == 0, generated.stderr[-2000:]
    out = Path(generated.stdout.strip().splitlines()[-1])
    assert out.name == "generated_step15_seed123.png" and out.exists()
    samples = np.asarray(Image.open(out))
    assert set(np.unique(samples)) <= {0, 128, 255}
    # Generating again never overwrites the first grid.
    again = run_in_process(capfd, *args, "--is_train=False")
    assert again.returncode == 0, again.stderr[-2000:]
    out2 = Path(again.stdout.strip().splitlines()[-1])
    assert out2 != out and out2.exists() and out.exists()
    # Same checkpoint, same seed: the same images.
    np.testing.assert_array_equal(np.asarray(Image.open(out2)), samples)

    # Scoring: a .npy array and a PNG of the same image give the same NLL.
    image = np.zeros((8, 8, 1), np.uint8)
    image[2:6, 3:7] = 1
    np.save(tmp_path / "one.npy", image[None])
    Image.fromarray(image[:, :, 0] * 255).save(tmp_path / "one.png")
    scores = []
    for name in ("one.npy", "one.png"):
        scored = run_in_process(capfd, *args, f"--score={tmp_path / name}")
        assert scored.returncode == 0, scored.stderr[-2000:]
        report = json.loads(scored.stdout[scored.stdout.index("{") :])
        assert report["checkpoint_step"] == 15
        scores.append(report["mean_nll_nats"])
        assert report["mean_bits_per_dim"] == pytest.approx(scores[-1] / (64 * np.log(2)))
    assert 0 < scores[0] < 64 * np.log(2)
    assert scores[0] == pytest.approx(scores[1], rel=1e-6)
    wrong = run_in_process(capfd, *args, f"--score={pngs[-1]}")
    assert wrong.returncode == 1 and "the model takes 8x8" in wrong.stderr
    assert "add --score_grid" in wrong.stderr
    # A sample grid scores tile by tile with --score_grid.
    tiles = run_in_process(capfd, *args, f"--score={pngs[-1]}", "--score_grid")
    assert tiles.returncode == 0, tiles.stderr[-2000:]
    report = json.loads(tiles.stdout[tiles.stdout.index("{") :])
    assert sorted(report["images"]) == [f"{pngs[-1]}[{k}]" for k in range(4)]
    assert all(0 < v["nll_nats"] for v in report["images"].values())

    # Completion: originals, occluded inputs and completions, three to a row.
    completed = run_in_process(capfd, *args, "--is_train=False", "--complete=top_half")
    assert completed.returncode == 0, completed.stderr[-2000:]
    out3 = Path(completed.stdout.strip().splitlines()[-1])
    assert out3.name == "completed_top_half_step15_seed123.png"
    grid = np.asarray(Image.open(out3))
    assert grid.shape == (4 * 9 + 1, 3 * 9 + 1)  # 4 test images, 3 tiles each
    for k in range(4):
        top = 1 + 9 * k
        original = grid[top : top + 8, 1:9]
        occluded = grid[top : top + 8, 10:18]
        completion = grid[top : top + 8, 19:27]
        np.testing.assert_array_equal(occluded[:4], original[:4])
        assert (occluded[4:] == 128).all()
        np.testing.assert_array_equal(completion[:4], original[:4])
        assert set(np.unique(completion)) <= {0, 255}


@pytest.mark.slow
@pytest.mark.parametrize(
    "model_flags",
    [
        ["--model=gated_pixel_cnn"],
        ["--model=pixel_rnn", "--rnn_type=row_lstm"],
        ["--model=pixel_rnn", "--rnn_type=diagonal_bilstm", "--use_residual"],
        ["--model=multiscale_pixel_rnn", "--rnn_type=row_lstm", "--small_image_size=4"],
        ["--model=pixel_rcnn", "--color_dependence=independent", "--hidden_dims=6"],
        ["--model=pixel_snail", "--num_blocks=1", "--residual_blocks=1", "--key_dims=4"],
    ],
    ids=lambda flags: "-".join(f.split("=")[-1] for f in flags),
)
def test_every_model_trains_and_generates(tmp_path, capfd, model_flags):
    args = [*tiny_for(model_flags[0].split("=")[1]), *dirs(tmp_path), *model_flags]
    # (Resuming is the same for every model: test_train_resume_generate.)
    first = run_in_process(capfd, *args, "--max_steps=5")
    assert first.returncode == 0, first.stderr[-2000:]
    assert only(f"{tmp_path}/ckpt/*/ckpt-5.index")
    generated = run_in_process(capfd, *args, "--is_train=False")
    assert generated.returncode == 0, generated.stderr[-2000:]
    out = Path(generated.stdout.strip().splitlines()[-1])
    assert out.name == "generated_step5_seed123.png"
    assert set(np.unique(np.asarray(Image.open(out)))) <= {0, 128, 255}


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["conv", "invariant"])
def test_autoencoder_trains_resumes_and_reconstructs(tmp_path, capfd, encoder):
    args = [
        *TINY,
        *dirs(tmp_path),
        "--model=autoencoder",
        f"--encoder={encoder}",
        "--group=C4",
        "--latent_dims=3",
        "--encoder_dims=4",
    ]
    first = run_in_process(capfd, *args, "--max_steps=5")
    assert first.returncode == 0, first.stderr[-2000:]
    # TensorBoard and sample_dir get reconstructions, not samples.
    assert only(f"{tmp_path}/samples/*/reconstruction_0000005.png")
    assert not only(f"{tmp_path}/samples/*/sample_*.png")
    second = run_in_process(capfd, *args, "--max_steps=10", "--log_level=INFO")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "at step 5" in second.stderr
    generated = run_in_process(capfd, *args, "--is_train=False")
    assert generated.returncode == 0, generated.stderr[-2000:]
    out = Path(generated.stdout.strip().splitlines()[-1])
    assert out.name == "reconstructed_step10_seed123.png"
    grid = np.asarray(Image.open(out))
    # 4 test images, each next to its reconstruction: 2 pairs a row.
    assert grid.shape == (2 * 9 + 1, 4 * 9 + 1)
    assert set(np.unique(grid)) <= {0, 128, 255}
    originals = np.stack(
        [grid[1 + 9 * r : 9 + 9 * r, 1 + 18 * p : 9 + 18 * p] for r in range(2) for p in range(2)]
    )
    expected = np.stack([x.numpy() for x in _shapes_test(4)])[..., 0] * 255
    np.testing.assert_array_equal(originals, expected)
    if encoder != "conv":
        return
    for flags, message in [
        (["--is_train=False", "--complete=top_half"], "--complete: --model=autoencoder models"),
        ([f"--score={tmp_path}"], "--score: --model=autoencoder models"),
        (["--conditional"], "--conditional: --model=autoencoder takes no class labels"),
        (["--encoder=invariant", "--group=none"], "--encoder=invariant needs --group=C4"),
    ]:
        bad = run_in_process(capfd, *args, *flags)
        assert bad.returncode == 1 and message in bad.stderr, bad.stderr[-2000:]


def test_complete_outside_generation_is_refused(tmp_path, capfd):
    for flags, mode in [
        (["--complete=top_half"], "not to training (--is_train=True)"),
        ([f"--score={tmp_path}", "--complete=top_half"], f"not to --score={tmp_path}"),
    ]:
        bad = run_in_process(capfd, *TINY, *dirs(tmp_path), *flags)
        assert bad.returncode == 1, bad.stderr[-2000:]
        assert "--complete=top_half applies to generating with --is_train=False" in bad.stderr
        assert mode in bad.stderr
    assert not (tmp_path / "ckpt").exists()


def test_a_temperature_the_head_has_not_is_refused_before_any_restore(tmp_path, capfd):
    bad = run_in_process(capfd, *TINY, *dirs(tmp_path), "--is_train=False", "--temperature=0.5")
    assert bad.returncode == 1, bad.stderr[-2000:]
    assert "error: --temperature=0.5: temperature applies to categorical" in bad.stderr
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "samples").exists()


def test_a_model_flag_the_model_does_not_read_is_refused(tmp_path, capfd):
    for model, flag, readers in [
        ("pixel_snail", "--recurrent_length=3", "autoencoder, gated_pixel_cnn, "),
        ("pixel_cnn", "--rnn_type=row_lstm", "multiscale_pixel_rnn, pixel_rnn do"),
        ("gated_pixel_cnn", "--use_residual", "multiscale_pixel_rnn, pixel_cnn, pixel_rnn do"),
    ]:
        bad = run_in_process(capfd, *TINY, *dirs(tmp_path), f"--model={model}", flag)
        assert bad.returncode == 1, bad.stderr[-2000:]
        name = flag.split("=")[0]
        line = bad.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: {name}: --model={model} does not read it; {readers}")
    assert not (tmp_path / "ckpt").exists()


def test_tensorflow_info_lines_show_at_debug_only(tmp_path, capfd):
    for level, shown in [("INFO", False), ("DEBUG", True)]:
        out = tmp_path / level
        ran = run_in_process(capfd, *TINY, *dirs(out), "--max_steps=2", f"--log_level={level}")
        assert ran.returncode == 0, ran.stderr[-2000:]
        assert "wrote " in ran.stderr  # the run's own INFO lines show at both
        assert ("Sharding callback duration" in ran.stderr) == shown, level


def test_the_epoch_limit_is_named_when_it_is_the_lower_one(tmp_path, capfd):
    args = [*TINY, *dirs(tmp_path), "--max_epoch=1", "--batch_size=10000", "--log_level=INFO"]
    ran = run_in_process(capfd, *args, "--max_steps=50")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "--max_epoch=1 limits training to 2 steps (--max_steps=50)" in ran.stderr
    assert only(f"{tmp_path}/ckpt/*/ckpt-2.index")


def test_flags_that_would_not_act_in_the_mode_are_refused(tmp_path, capfd):
    for flags, line in [
        (
            [*TINY, "--worker_wait_seconds=5"],
            "error: --worker_wait_seconds is only read with --strategy=multi_worker, not "
            "--strategy=auto",
        ),
        (
            [*TINY, f"--score={tmp_path}", "--temperature=0.5"],
            f"error: --temperature=0.5: --score={tmp_path} draws no images",
        ),
        (
            [*tiny_for("invariant_cnn"), "--is_train=False", "--temperature=0.5"],
            "error: --temperature=0.5: --model=invariant_cnn draws no images",
        ),
        (
            [*tiny_for("invariant_cnn"), "--display"],
            "error: --display: --model=invariant_cnn draws no images",
        ),
        (
            [*TINY, f"--score={tmp_path}", "--display"],
            f"error: --display: --score={tmp_path} draws no images",
        ),
        (
            [*TINY, "--is_train=False", "--max_steps=50"],
            "error: --max_steps: generating (--is_train=False) does not read it; it applies to "
            "training",
        ),
        (
            [*TINY, "--is_train=False", "--nojit_compile"],
            "error: --jit_compile: generating (--is_train=False) does not read it; it applies to "
            "training",
        ),
        (
            [*TINY, f"--score={tmp_path}", "--optimizer=adam"],
            f"error: --optimizer: --score={tmp_path} does not read it; it applies to training",
        ),
        (
            [*TINY, f"--score={tmp_path}", "--is_train=True"],
            f"error: --is_train=True: --score={tmp_path} scores images with a trained run; drop it",
        ),
        (
            [*tiny_for("invariant_cnn"), "--num_samples=7"],
            "error: --num_samples: --model=invariant_cnn draws no images",
        ),
        (
            [*tiny_for("invariant_cnn"), "--is_train=False", "--learning_rate=0.1"],
            "error: --learning_rate: evaluating --model=invariant_cnn (--is_train=False) does "
            "not read it; it applies to training",
        ),
    ]:
        bad = run_in_process(capfd, *flags, *dirs(tmp_path))
        assert bad.returncode == 1, bad.stderr[-2000:]
        assert bad.stderr.strip().splitlines()[-1] == line
    assert not (tmp_path / "ckpt").exists()
    # A flagfile's training flags are taken in every mode: it serves them all.
    flagfile = tmp_path / "run.cfg"
    flagfile.write_text("--max_steps=50\n--optimizer=adam\n--learning_rate=0.1\n")
    ok = run_in_process(capfd, *TINY, f"--flagfile={flagfile}", "--is_train=False", *dirs(tmp_path))
    assert ok.returncode == 1 and "no checkpoint in" in ok.stderr, ok.stderr[-2000:]


def test_color_levels_for_a_dataset_of_its_own_levels_is_refused(tmp_path, capfd):
    for data_flag, own in [("shapes", 2), ("cifar10", 256)]:
        bad = run_in_process(
            capfd, *TINY, *dirs(tmp_path), f"--data={data_flag}", "--color_levels=8"
        )
        assert bad.returncode == 1, bad.stderr[-2000:]
        assert bad.stderr.strip().splitlines()[-1] == (
            f"error: --color_levels=8: --data={data_flag} has {own} levels of its own; "
            "--color_levels sets those of colored_shapes, colored_mnist and of your own images"
        )
    assert not (tmp_path / "ckpt").exists()


def test_training_draws_its_sample_grids_at_the_temperature(tmp_path, capfd):
    bad = run_in_process(capfd, *TINY, *dirs(tmp_path), "--max_steps=5", "--temperature=0.5")
    assert bad.returncode == 1, bad.stderr[-2000:]
    assert "error: --temperature=0.5: temperature applies to categorical" in bad.stderr
    assert not list(tmp_path.glob("ckpt/*/ckpt-*"))
    colour = [*TINY, "--data=colored_shapes", "--color_levels=4", "--max_steps=5"]
    grids = []
    for temperature in ("1", "0.25"):
        out = tmp_path / f"t{temperature}"
        ran = run_in_process(capfd, *colour, *dirs(out), f"--temperature={temperature}")
        assert ran.returncode == 0, ran.stderr[-2000:]
        (grid,) = (out / "samples").glob("*/*.png")
        grids.append(np.asarray(Image.open(grid)))
    assert grids[0].shape == grids[1].shape and (grids[0] != grids[1]).any()


def _shapes_test(num: int):
    sys.path.insert(0, str(ROOT))
    from pixel_models import data

    return data.load("shapes", "test", image_size=8, seed=123, num_examples=num)


@pytest.mark.slow
def test_colored_data_trains_and_generates(tmp_path, capfd):
    args = [*TINY, *dirs(tmp_path), "--data=colored_shapes", "--color_levels=4"]
    trained = run_in_process(capfd, *args, "--max_steps=5")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "colored_shapes-pixel_cnn-" in trained.stdout
    generated = run_in_process(capfd, *args, "--is_train=False")
    assert generated.returncode == 0, generated.stderr[-2000:]
    grid = np.asarray(Image.open(generated.stdout.strip().splitlines()[-1]))
    assert grid.shape == (2 * 9 + 1, 2 * 9 + 1, 3)
    # Four levels per channel drawn as 0, 85, 170, 255; 128 is the gap between tiles.
    assert set(np.unique(grid)) <= {0, 85, 128, 170, 255}
    assert len(set(np.unique(grid[1:9, 1:9]))) > 1


@pytest.mark.slow
# PixelSNAIL with labels: tests/test_pixel_snail.py and the shared contract.
@pytest.mark.parametrize("model", ["pixel_cnn", "gated_pixel_cnn"])
def test_class_conditional_training_and_generation(tmp_path, capfd, model):
    # shapes is labelled by its number of shapes (3 classes).
    base = [*TINY, *dirs(tmp_path), f"--model={model}", "--conditional"]
    args = [*base, "--num_samples=6"]
    trained = run_in_process(capfd, *args, "--max_steps=5")
    assert trained.returncode == 0, trained.stderr[-2000:]
    generated = run_in_process(capfd, *args, "--is_train=False")
    assert generated.returncode == 0, generated.stderr[-2000:]
    grid = np.asarray(Image.open(generated.stdout.strip().splitlines()[-1]))
    assert grid.shape == (3 * 9 + 1, 2 * 9 + 1)  # one row of 2 samples per class
    completed = run_in_process(
        capfd, *args, "--is_train=False", "--complete=top_half", "--num_samples=3"
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    if model != "pixel_cnn":  # the checks below do not depend on the model
        return
    for flags, message in [
        (["--model=pixel_rnn"], "--conditional: --model=pixel_rnn takes no class labels"),
        (["--model=pixel_rnn"], "use one of gated_pixel_cnn, pixel_cnn, pixel_cnn_pp, pixel_snail"),
        (
            ["--data=binarized_mnist", "--image_size=28"],
            "--conditional: --data=binarized_mnist has no class",
        ),
        ([f"--score={tmp_path}"], "--score: scoring images under a --conditional model"),
    ]:
        typed = base if flags[0].startswith("--score") else args  # --score draws nothing
        bad = run_in_process(capfd, *typed, *flags)
        assert bad.returncode == 1 and message in bad.stderr, bad.stderr[-2000:]
    classifier = [*tiny_for("invariant_cnn"), *dirs(tmp_path), "--conditional"]
    bad = run_in_process(capfd, *classifier)
    assert bad.returncode == 1, bad.stderr[-2000:]
    assert "--model=invariant_cnn classifies its images" in bad.stderr


BAD_FLAGS = [
    ("--model=pixel_unknown", "--model"),
    ("--data=imagenet_huge", "--data"),
    ("--hidden_dims=0", "--hidden_dims"),
    ("--num_samples=0", "--num_samples"),
    ("--random_seed=-1", "--random_seed"),
    ("--random_seed=4294967296", "--random_seed"),
    ("--batch_size=-1", "--batch_size"),
    ("--image_size=2", "--image_size"),
    ("--learning_rate=0", "--learning_rate"),
    ("--grad_clip=-1", "--grad_clip"),
    ("--warmup_steps=-5", "--warmup_steps must be an integer >= 0"),
    ("--optimizer=sgd_unknown", "--optimizer"),
    ("--strategy=tpu_pod", "--strategy"),
    ("--small_image_size=-1", "--small_image_size"),
    ("--color_levels=1", "--color_levels"),
    ("--num_blocks=0", "--num_blocks must be an integer >= 1"),
    ("--dropout=1", "--dropout must be a number in [0, 1)"),
    ("--max_minutes=-1", "--max_minutes must be a finite number >= 0"),
    ("--worker_wait_seconds=inf", "--worker_wait_seconds must be a finite number > 0"),
    ("--strategy=tpu", "--strategy=tpu needs --tpu"),
    ("--tpu=local", "--tpu is only read with --strategy=tpu, not --strategy=auto"),
]


@pytest.mark.parametrize("flag, message", BAD_FLAGS)
def test_bad_flag_values_are_rejected_when_parsed(flag, message):
    from absl import flags

    sys.path.insert(0, str(ROOT))
    import flags as project_flags  # noqa: F401  (defines the flags)

    try:
        with pytest.raises(flags.Error) as err:
            flags.FLAGS(["main.py", *TINY, flag])
    finally:
        flags.FLAGS.unparse_flags()
    assert message in str(err.value)


@pytest.mark.parametrize(
    "model, takes_code",
    [("pixel_cnn", False), ("gated_pixel_cnn", False), ("autoencoder", True)],
)
def test_latent_dims_configures_the_autoencoder_only(model, takes_code):
    # pixel_cnn and gated_pixel_cnn accept latent_dims (a code given from
    # outside); main.py must not turn them into latent-conditional models.
    from absl import flags

    sys.path.insert(0, str(ROOT))
    import flags as project_flags  # noqa: F401  (defines the flags)
    from pixel_models import data
    from pixel_models.config import UsageError, model_config

    try:
        flags.FLAGS(["main.py", *TINY, f"--model={model}"])
        config = model_config(project_flags.run_config(), data.info("shapes", image_size=8))
        assert ("latent_dims" in config) == takes_code
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["main.py", *TINY, f"--model={model}", "--latent_dims=5"])
        if takes_code:
            config = model_config(project_flags.run_config(), data.info("shapes", image_size=8))
            assert config["latent_dims"] == 5
        else:  # given, it would not act: refused
            with pytest.raises(UsageError, match=f"--latent_dims: --model={model} does not read"):
                project_flags.run_config()
    finally:
        flags.FLAGS.unparse_flags()


def test_max_minutes_stops_a_run_that_the_same_command_resumes(tmp_path):
    # --max_minutes is a run setting, not a network one: the run keeps its
    # folder (and its recorded config) with or without it, and a time limit
    # reached after the first step stops it there, checkpointed and evaluated.
    from absl import flags

    sys.path.insert(0, str(ROOT))
    import flags as project_flags
    from pixel_models import experiment
    from pixel_models.config import recorded_config
    from pixel_models.runs import read_run_record

    argv = ["main.py", *TINY, *dirs(tmp_path), "--max_steps=1000", "--num_samples=1"]
    try:
        flags.FLAGS(argv)
        unlimited = project_flags.run_config()
        flags.FLAGS.unparse_flags()
        flags.FLAGS([*argv, "--max_minutes=1e-9"])
        limited = project_flags.run_config()
    finally:
        flags.FLAGS.unparse_flags()
    assert limited.max_minutes == 1e-9 and unlimited.max_minutes == 0
    first = experiment.train_and_evaluate(limited)
    assert "test/nll" in first
    run_dir = tmp_path / "ckpt" / first["run"]
    assert sorted(p.name for p in run_dir.glob("ckpt-*.index")) == ["ckpt-1.index"]
    again = experiment.train_and_evaluate(limited)
    assert again["run"] == first["run"]
    assert sorted(p.name for p in run_dir.glob("ckpt-*.index"))[-1] == "ckpt-2.index"
    assert experiment._open(unlimited).paths.name == first["run"]
    recorded = recorded_config(read_run_record(str(run_dir)))
    assert recorded.max_minutes == 0 and recorded.hidden_dims == limited.hidden_dims


@pytest.mark.parametrize("flag, message", BAD_FLAGS[:1])
def test_bad_flags_exit_non_zero_with_one_clear_line(tmp_path, flag, message):
    result = run_main(*TINY, *dirs(tmp_path), flag, "--max_steps=1", timeout=120)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ckpt").exists()


def test_unexpected_positional_argument(tmp_path, capfd):
    result = run_in_process(capfd, *TINY, *dirs(tmp_path), "train")
    assert result.returncode == 1
    assert "unexpected arguments" in result.stderr


def test_generate_without_checkpoint_fails_clearly(tmp_path, capfd):
    result = run_in_process(capfd, *TINY, *dirs(tmp_path), "--is_train=False")
    assert result.returncode == 1
    assert "no checkpoint" in result.stderr and "--is_train=True" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "samples").exists()
    assert not (tmp_path / "ckpt").exists()


def test_missing_dataset_fails_clearly(tmp_path, monkeypatch, capsys):
    # An empty data dir and no network: one line saying how to proceed. Run
    # in-process so that the download can be made to fail at once (tfds
    # itself retries for minutes before giving up when offline).
    import tensorflow_datasets as tfds
    from absl import flags

    sys.path.insert(0, str(ROOT))
    import main

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve the download host")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    empty = tmp_path / "empty_tfds"
    empty.mkdir()
    argv = ["main.py", "--data=cifar10", f"--data_dir={empty}", "--max_steps=1", *dirs(tmp_path)]
    flags.FLAGS.unparse_flags()
    flags.FLAGS(argv)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main._main_with_errors([argv[0]])
    finally:
        flags.FLAGS.unparse_flags()
    assert exit_info.value.code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: cannot load dataset 'cifar10'")
    assert "TFDS_DATA_DIR" in last and "--data=shapes" in last
    assert not (tmp_path / "ckpt").exists()


def test_console_script_is_installed():
    script = shutil.which("pixel-models")
    if script is None:
        pytest.skip("the package is not installed (pip install -e .)")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [script, "--helpshort"], capture_output=True, text=True, timeout=120, env=env
    )
    assert "--recurrent_length" in result.stdout + result.stderr
    bad = subprocess.run(
        [script, "--hidden_dims=-3"], capture_output=True, text=True, timeout=120, env=env
    )
    assert bad.returncode != 0 and "--hidden_dims" in bad.stderr


@pytest.mark.parametrize("flagfile", sorted((ROOT / "configs").glob("*.cfg")), ids=lambda p: p.name)
def test_flagfiles_parse(flagfile):
    from absl import flags

    sys.path.insert(0, str(ROOT))
    import flags as project_flags  # noqa: F401  (defines the flags)

    try:
        flags.FLAGS(["main.py", f"--flagfile={flagfile}"])
        assert flags.FLAGS["model"].present and flags.FLAGS["data"].present
    finally:
        flags.FLAGS.unparse_flags()


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    import signal
    import time

    args = [*TINY, *dirs(tmp_path), "--max_steps=100000", "--test_step=1000", "--num_samples=1"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def named_step() -> int:
        # The step the `checkpoint` file names: a kill may come after a
        # checkpoint's files are written and before that file names it.
        import tensorflow as tf

        folders = glob.glob(f"{tmp_path / 'ckpt'}/*/")
        last = tf.train.latest_checkpoint(folders[0]) if folders else None
        return int(last.rsplit("-", 1)[-1]) if last else 0

    try:
        deadline = time.time() + 300
        while named_step() < 10 and time.time() < deadline:
            assert process.poll() is None, "training ended early"
            time.sleep(0.2)
        assert named_step() >= 10, "no checkpoint past step 10 within 300 s"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    (run,) = os.listdir(tmp_path / "ckpt")
    import tensorflow as tf

    last = tf.train.latest_checkpoint(str(tmp_path / "ckpt" / run))
    killed_at = int(last.rsplit("-", 1)[-1])
    assert killed_at >= 10 and killed_at % 5 == 0
    # The same command with a step limit continues from the last checkpoint
    # (not from zero) and stops at the limit.
    # A kill while the next checkpoint's files are written, before the
    # `checkpoint` file names it, leaves that newer intact checkpoint too: the
    # resume may start from it.
    limit = killed_at + 10
    resumed = run_main(
        *[a for a in args if not a.startswith("--max_steps")],
        f"--max_steps={limit}",
        "--log_level=INFO",
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    started = re.search(r"from its checkpoint at step (\d+)", resumed.stderr)
    assert started and int(started.group(1)) in (killed_at, killed_at + 5), resumed.stderr[-2000:]
    assert f"trained {limit - int(started.group(1))} steps" in resumed.stderr
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt" / run)).endswith(f"ckpt-{limit}")


@pytest.mark.slow
def test_deterministic_runs_give_identical_losses(tmp_path):
    finals = []
    for k in range(2):
        folder = tmp_path / f"run{k}"
        result = run_main(*TINY, *dirs(folder), "--max_steps=6", "--deterministic")
        assert result.returncode == 0, result.stderr[-2000:]
        finals.append(json.loads(result.stdout.strip().splitlines()[-1]))
    assert finals[0] == finals[1]
    assert finals[0]["train/nll"] > 0


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--data=colored_shapes"],
            "--model=invariant_cnn classifies: --data=colored_shapes has no labels",
        ),
        (
            ["--data=mnist", "--image_size=28", "--complete=top_half", "--is_train=False"],
            "is a classifier",
        ),
        (["--data=mnist", "--image_size=28", "--group=C8"], "--group"),
    ],
)
def test_classifier_flags_are_checked(tmp_path, capfd, flags, message):
    bad = run_in_process(capfd, *tiny_for("invariant_cnn"), *dirs(tmp_path), *flags)
    assert bad.returncode == 1 and message in bad.stderr, bad.stderr[-2000:]
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.slow
def test_mixed_precision_xla_run_on_one_device_then_sampled_in_float32(tmp_path):
    args = [*TINY, *dirs(tmp_path)]
    fast = ["--mixed_precision", "--jit_compile", "--strategy=one_device", "--max_steps=2"]
    trained = run_main(*args, *fast, "--num_samples=1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    metrics = json.loads(trained.stdout.strip().splitlines()[-1])
    assert np.isfinite(metrics["train/nll"]) and np.isfinite(metrics["test/nll"])
    assert only(f"{tmp_path}/ckpt/*/ckpt-2.index")
    # The same run without --mixed_precision restores its checkpoint.
    generated = run_main(*args, "--is_train=False", "--num_samples=1")
    assert generated.returncode == 0, generated.stderr[-2000:]
    assert Path(generated.stdout.strip().splitlines()[-1]).name == "generated_step2_seed123.png"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "address", ["no-such-tpu.invalid", "grpc://127.0.0.1:{port}"], ids=["name", "grpc"]
)
def test_unreachable_tpu_fails_clearly(tmp_path, capfd, address):
    address = address.format(port=_free_port())
    result = run_in_process(capfd, *TINY, *dirs(tmp_path), "--strategy=tpu", f"--tpu={address}")
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"error: --strategy=tpu: cannot reach --tpu='{address}'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ckpt").exists()


def test_grpc_address_check():
    from pixel_models.devices import DeviceError, check_grpc_address

    check_grpc_address("local")  # not a grpc address: left to TensorFlow
    with pytest.raises(DeviceError, match="grpc://HOST:PORT"):
        check_grpc_address("grpc://no-port")
    with pytest.raises(DeviceError, match="nothing answers at 127.0.0.1"):
        check_grpc_address(f"grpc://127.0.0.1:{_free_port()}", timeout=5)
    import socket

    with socket.socket() as server:  # something listening: passes
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_grpc_address(f"grpc://127.0.0.1:{server.getsockname()[1]}", timeout=5)


@pytest.mark.slow
def test_every_mode_reads_the_data_the_run_was_trained_on(tmp_path, capfd):
    # Evaluating a classifier trained at a non-default --image_size reads the
    # test split at that size, and gives the metrics of the training run's
    # last evaluation (same weights, same test images).
    args = [*tiny_for("invariant_cnn"), *dirs(tmp_path), "--group=C4", "--image_size=12"]
    trained = run_in_process(capfd, *args, "--max_steps=2")
    assert trained.returncode == 0, trained.stderr[-2000:]
    metrics = json.loads(trained.stdout.strip().splitlines()[-1])
    evaluated = run_in_process(capfd, *args, "--is_train=False")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    report = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert report["checkpoint_step"] == 2
    assert report["test/nll"] == pytest.approx(metrics["test/nll"], rel=1e-4)
    assert report["test/accuracy"] == pytest.approx(metrics["test/accuracy"], abs=1e-6)


@pytest.mark.parametrize("flag", ["--helpshort", "--help"])
def test_help_exits_zero_without_native_log_noise(flag):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), flag],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(env, CUDA_VISIBLE_DEVICES=""),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--model" in result.stdout
    assert "--log_dir: Where TensorBoard event files are written." in result.stdout
    for noise in ("oneDNN", "cuInit", "cuda drivers", "absl::InitializeLog"):
        assert noise not in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("level, tensorflow_level", [("INFO", "WARNING"), ("DEBUG", "DEBUG")])
def test_tensorflow_info_lines_only_with_debug(level, tensorflow_level):
    import logging as python_logging

    import tensorflow as tf
    from absl import logging

    from pixel_models import experiment
    from pixel_models.config import RunConfig

    before = tf.get_logger().level
    try:
        experiment.setup(dataclasses.replace(RunConfig(), log_level=level))
        assert tf.get_logger().getEffectiveLevel() == getattr(python_logging, tensorflow_level)
    finally:
        tf.get_logger().setLevel(before)
        logging.set_verbosity(logging.WARNING)
