"""Run folders: where a run writes, what identifies it, and its recorded settings.

A run is identified by its data, its model and the model's configuration;
its checkpoints, TensorBoard events and sample grids go into folders named
after it (``<data>-<model>-<digest>``) below the configured roots, so that
the same command resumes the same run and another configuration never mixes
with it. ``run_config.json`` beside the checkpoints records the identity and
is checked on every resume.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from pixel_models.files import write_atomic


class RunError(RuntimeError):
    """A run folder cannot be used; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """The folders of one run.

    Attributes:
      name: the run's name (see :func:`run_name`).
      checkpoint_dir: checkpoints and ``run_config.json``.
      log_dir: TensorBoard event files.
      sample_dir: PNG grids.
    """

    name: str
    checkpoint_dir: str
    log_dir: str
    sample_dir: str


def run_name(identity: dict) -> str:
    """Folder name of a run: readable, and different for different models.

    Example:

    >>> run_name({"data": "shapes", "model": "pixel_cnn", "config": {"hidden_dims": 4}})
    'shapes-pixel_cnn-b5b9bade'
    """
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{identity['data']}-{identity['model']}-{digest}"


def run_paths(identity: dict, checkpoint_root: str, log_root: str, sample_root: str) -> RunPaths:
    """The folders of the run ``identity`` below the three roots."""
    name = run_name(identity)
    return RunPaths(
        name,
        os.path.join(checkpoint_root, name),
        os.path.join(log_root, name),
        os.path.join(sample_root, name),
    )


def write_json_atomic(path: str, payload: dict) -> None:
    """Writes JSON to a temporary file in the same folder, then renames it."""
    write_atomic(path, lambda f: json.dump(payload, f, indent=2, sort_keys=True))


def check_run_config(checkpoint_dir: str, run_config: dict, record: bool = True) -> None:
    """Records the run's identity beside its checkpoints (when ``record``), or checks it.

    A checkpoint directory belongs to one model and one set of model flags;
    resuming it with others would fail deep inside the restore (or silently
    mix weights), so it fails here with a clear message instead.

    Raises:
      RunError: the folder holds a run with other settings.
    """
    path = os.path.join(checkpoint_dir, "run_config.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        if saved != json.loads(json.dumps(run_config)):
            diffs = sorted(
                k for k in set(saved) | set(run_config) if saved.get(k) != run_config.get(k)
            )
            shown = ", ".join(f"{k}={saved.get(k)!r} (now {run_config.get(k)!r})" for k in diffs)
            raise RunError(
                f"checkpoint_dir {checkpoint_dir} holds a run with other settings: {shown}; "
                "use the same flags or another --checkpoint_dir"
            )
    elif record:
        write_json_atomic(path, run_config)
