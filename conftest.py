"""Shared pytest set-up for the tests and the doctests."""

import keras
import pytest


@pytest.fixture(autouse=True)
def _same_random_state():
    """Every test starts from the same random state (Python, NumPy, TensorFlow
    and Keras), whatever ran before it in its process: with tests spread over
    several processes, an unseeded model would otherwise get other weights
    from run to run."""
    keras.utils.set_random_seed(1234)


@pytest.fixture(autouse=True)
def _readme_in_a_folder_of_its_own(request):
    """The README's doctests run in a temporary folder, so that the runs they
    train write their checkpoints, logs and samples there."""
    path = getattr(request.node, "path", None)
    if path is not None and path.name == "README.md":
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.chdir(request.getfixturevalue("tmp_path"))
        # Only the last progress line, however slow the machine.
        from pixel_models import progress

        monkeypatch.setattr(progress.progress, "__defaults__", ("step", None, 1e9, None))
