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
import re
import shutil
import socket
import tempfile
import time

import tensorflow as tf
from absl import logging

from pixel_models.errors import first_line
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

    The data's part is the dataset's name; for a folder or an array file, the
    last part of its path; ``tfds:NAME`` becomes ``tfds_NAME``. The digest
    covers the whole identity, so two folders of the same name give two runs.

    Example:

    >>> run_name({"data": "shapes", "model": "pixel_cnn", "config": {"hidden_dims": 4}})
    'shapes-pixel_cnn-b5b9bade'
    >>> run_name({"data": "/home/me/photos/", "model": "pixel_cnn", "config": {}})[:-8]
    'photos-pixel_cnn-'
    >>> run_name({"data": "tfds:downsampled_imagenet/32x32", "model": "pixel_cnn", "config": {}})
    'tfds_downsampled_imagenet_32x32-pixel_cnn-6c085b63'
    """
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{_data_label(identity['data'])}-{identity['model']}-{digest}"


def _data_label(spec: str) -> str:
    """A file-name-safe label of a dataset name, ``tfds:NAME``, folder or file."""
    if not spec.startswith("tfds:"):
        spec = os.path.basename(spec.rstrip("/" + os.sep)) or spec
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_.") or "data"


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


def _read_json(path: str) -> dict:
    """The JSON object in ``path``; a file that holds none is a RunError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise RunError(
            f"{path} is not valid JSON ({first_line(err)}): it is damaged; restore it from a "
            "backup, or delete it to record the current flags there"
        ) from None
    if not isinstance(saved, dict):
        raise RunError(
            f"{path} holds {type(saved).__name__} instead of the run's settings: restore it from "
            "a backup, or delete it to record the current flags there"
        )
    return saved


def read_run_record(checkpoint_dir: str) -> dict:
    """The ``run_config.json`` of the run folder ``checkpoint_dir``.

    Raises:
      RunError: the file is not valid JSON or holds no object.
    """
    return _read_json(os.path.join(checkpoint_dir, "run_config.json"))


# Fields of run_config.json that are recorded and checked but not part of the
# run's identity (its folder name): runs recorded before them still resume.
CHECKED_FIELDS = ("optimizer", "warmup_steps")


def check_run_config(
    checkpoint_dir: str,
    run_config: dict,
    record: bool = True,
    checked: dict | None = None,
) -> None:
    """Records the run's identity beside its checkpoints (when ``record``), or checks it.

    A checkpoint directory belongs to one model and one set of model flags;
    resuming it with others would fail deep inside the restore (or silently
    mix weights), so it fails here with a clear message instead. ``checked``
    holds settings that a resume must repeat but that do not name the run
    (the ``optimizer`` and its ``warmup_steps``, whose state the checkpoints
    hold: a warmup schedule keeps no learning-rate variable): they are recorded
    with the identity, and compared when the record has them.

    Raises:
      RunError: the folder holds a run with other settings, or a damaged record.
    """
    checked = checked or {}
    path = os.path.join(checkpoint_dir, "run_config.json")
    if os.path.exists(path):
        saved = _read_json(path)
        identity = {k: v for k, v in saved.items() if k not in CHECKED_FIELDS}
        if identity != json.loads(json.dumps(run_config)):
            diffs = sorted(
                k for k in set(identity) | set(run_config) if identity.get(k) != run_config.get(k)
            )
            shown = ", ".join(f"{k}={identity.get(k)!r} (now {run_config.get(k)!r})" for k in diffs)
            raise RunError(
                f"checkpoint_dir {checkpoint_dir} holds a run with other settings: {shown}; "
                "use the same flags or another --checkpoint_dir"
            )
        for name, value in checked.items():
            if name in saved and saved[name] != value:
                raise RunError(
                    f"{checkpoint_dir}: the run was trained with --{name}={saved[name]}, not "
                    f"--{name}={value}: pass --{name}={saved[name]} to resume it, or use "
                    "another --checkpoint_dir"
                )
    elif record:
        write_json_atomic(path, {**run_config, **checked})


# Checkpoints. ``tf.train.CheckpointManager`` writes ``ckpt-N.data-*`` and
# ``ckpt-N.index`` (N is the step), then rewrites the ``checkpoint`` file that
# names the latest. Restoring reads the files themselves, newest first, so a
# lost or damaged ``checkpoint`` file or a damaged latest checkpoint costs
# only the steps since the previous intact one.

STATE_FILE = "checkpoint"
LOCK_FILE = "lock"
_CHECKPOINT = re.compile(r"^ckpt-(\d+)\.index$")


class CheckpointError(RunError):
    """No checkpoint of a run folder can be restored."""


def checkpoint_files(checkpoint_dir: str) -> list[str]:
    """Prefixes (``<dir>/ckpt-N``) of the checkpoints whose files are all there,
    newest (highest step) first.

    Example:

    >>> with tempfile.TemporaryDirectory() as folder:
    ...     for name in ("ckpt-5.index", "ckpt-5.data-00000-of-00001", "ckpt-10.index"):
    ...         open(os.path.join(folder, name), "w").close()
    ...     [os.path.basename(p) for p in checkpoint_files(folder)]
    ['ckpt-5']
    """
    if not os.path.isdir(checkpoint_dir):
        return []
    names = os.listdir(checkpoint_dir)
    steps = []
    for name in names:
        match = _CHECKPOINT.match(name)
        if match and any(n.startswith(f"ckpt-{match[1]}.data-") for n in names):
            steps.append(int(match[1]))
    return [os.path.join(checkpoint_dir, f"ckpt-{step}") for step in sorted(steps, reverse=True)]


def checkpoint_step(path: str) -> int:
    """The step of a checkpoint prefix ``.../ckpt-N``.

    >>> checkpoint_step("runs/ckpt-60")
    60
    """
    return int(path.rsplit("-", 1)[-1])


def _state_latest(checkpoint_dir: str) -> tuple[str | None, str | None]:
    """The checkpoint that the ``checkpoint`` file names (or None) and, when
    that file is missing or unreadable, why."""
    path = os.path.join(checkpoint_dir, STATE_FILE)
    if not os.path.exists(path):
        return None, f"{path} is missing"
    try:
        state = tf.train.get_checkpoint_state(checkpoint_dir)
    except Exception as err:  # noqa: BLE001  (a damaged text proto raises many kinds)
        return None, f"{path} is unreadable ({first_line(err)})"
    if state is None or not state.model_checkpoint_path:
        return None, f"{path} names no checkpoint"
    latest = state.model_checkpoint_path
    if not os.path.isabs(latest):
        latest = os.path.join(checkpoint_dir, latest)
    return latest, None


def restore_checkpoint(
    checkpoint: tf.train.Checkpoint, checkpoint_dir: str, partial: bool, repair: bool = False
) -> str | None:
    """Restores ``checkpoint`` from the newest intact checkpoint of ``checkpoint_dir``.

    Tries the checkpoints newest first, with a warning for each one that
    cannot be read and when the ``checkpoint`` file is missing, unreadable or
    names another one. With ``repair`` (training, which holds the run's
    lock), the ``checkpoint`` file is rewritten to name the restored one, so
    that the checkpoint manager continues from it.

    Args:
      checkpoint: what to restore (a model, or a model and its optimizer).
      checkpoint_dir: the run's checkpoint folder.
      partial: restore a part of what was saved (the model without its optimizer).
      repair: rewrite the ``checkpoint`` file when it does not name the restored one.

    Returns:
      The restored prefix ``<dir>/ckpt-N``, or None when there is no checkpoint.

    Raises:
      CheckpointError: there are checkpoints but none of them can be restored.
    """
    candidates = checkpoint_files(checkpoint_dir)
    latest, problem = _state_latest(checkpoint_dir)
    if not candidates:
        return None
    if problem is not None:
        logging.warning(
            "%s; restoring from the checkpoint files, newest first (%s)",
            problem,
            os.path.basename(candidates[0]),
        )
    failures = []
    for path in candidates:
        status = None
        try:
            status = checkpoint.restore(path)
            if partial:
                status = status.expect_partial()
            status.assert_existing_objects_matched()
        except Exception as err:  # noqa: BLE001  (a damaged file raises many kinds)
            reason = first_line(err)
        else:
            reason = None
        if reason is not None:
            _forget_failed_restore(status)
            failures.append(f"{os.path.basename(path)}: {reason}")
            logging.warning(
                "cannot restore checkpoint %s (%s); trying the one before it", path, reason
            )
            continue
        if failures or problem is not None:
            logging.warning("restored %s, the newest intact checkpoint", path)
        if repair and latest != path:
            older = [p for p in reversed(candidates) if checkpoint_step(p) < checkpoint_step(path)]
            write_checkpoint_state(checkpoint_dir, [*older, path])
        return path
    raise CheckpointError(
        f"no checkpoint in {checkpoint_dir} can be restored ({'; '.join(failures)}); each was "
        "written by another model or is damaged: use the flags the run was trained with or "
        "another --checkpoint_dir"
    )


def _forget_failed_restore(status) -> None:
    """Marks a failed restore as partial, so that TensorFlow does not warn,
    when it is deleted, of each value it did not restore (dozens of lines
    after the one error that says the checkpoint is of another model)."""
    if status is not None:
        status.expect_partial()


def write_checkpoint_state(checkpoint_dir: str, paths: list[str]) -> None:
    """Rewrites the ``checkpoint`` file to name ``paths`` (oldest first; the
    last is the latest), as ``tf.train.CheckpointManager`` writes it.

    Each checkpoint is stamped with the time of its files, so that the next
    manager deletes the older ones in turn as it saves new ones (a checkpoint
    without a time is kept for ever).
    """
    lines = [f'model_checkpoint_path: "{os.path.basename(paths[-1])}"']
    lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in paths]
    lines += [f"all_model_checkpoint_timestamps: {os.path.getmtime(p + '.index')!r}" for p in paths]
    lines.append("last_preserved_timestamp: 0.0")
    state = os.path.join(checkpoint_dir, STATE_FILE)
    write_atomic(state, lambda f: f.write("\n".join(lines) + "\n"))


_KERAS_FILE = re.compile(r"^ckpt-(\d+)\.keras$")


def keras_file(prefix: str) -> str:
    """The ``.keras`` file of the model saved beside the checkpoint ``prefix``.

    >>> keras_file("runs/ckpt-60")
    'runs/ckpt-60.keras'
    """
    return f"{prefix}.keras"


def remove_stale_keras_files(checkpoint_dir: str) -> list[str]:
    """Removes the ``ckpt-N.keras`` files whose checkpoint ``ckpt-N`` is gone
    (the checkpoint manager keeps only the newest ones); returns their names.

    Example:

    >>> with tempfile.TemporaryDirectory() as folder:
    ...     for name in ("ckpt-5.index", "ckpt-5.data-00000-of-00001", "ckpt-5.keras",
    ...                  "ckpt-2.keras"):
    ...         open(os.path.join(folder, name), "w").close()
    ...     print(remove_stale_keras_files(folder), sorted(os.listdir(folder))[-1])
    ['ckpt-2.keras'] ckpt-5.keras
    """
    kept = {os.path.basename(p) for p in checkpoint_files(checkpoint_dir)}
    removed = []
    for name in sorted(os.listdir(checkpoint_dir)):
        match = _KERAS_FILE.match(name)
        if match and f"ckpt-{match[1]}" not in kept:
            os.remove(os.path.join(checkpoint_dir, name))
            removed.append(name)
    return removed


def remove_partial_saves(checkpoint_dir: str) -> list[str]:
    """Removes what a save killed half-way leaves behind (``ckpt-N_temp*`` and
    ``checkpoint.tmp*``, and temporary files of :func:`write_json_atomic`);
    returns the removed names. Call it only while holding the run's lock."""
    if not os.path.isdir(checkpoint_dir):
        return []
    removed = []
    for name in sorted(os.listdir(checkpoint_dir)):
        if not (
            re.match(r"^ckpt-\d+_temp", name)
            or name.startswith(f"{STATE_FILE}.tmp")
            or name.startswith(".tmp-")
        ):
            continue
        path = os.path.join(checkpoint_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
        removed.append(name)
    if removed:
        logging.warning(
            "removed what an interrupted save left in %s: %s", checkpoint_dir, ", ".join(removed)
        )
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_YOUNG_LOCK_SECONDS = 2.0  # how long an unreadable lock may be one being written


def _age(path: str) -> float:
    """Seconds since ``path`` was last written (0 when it is gone)."""
    try:
        return max(0.0, time.time() - os.path.getmtime(path))
    except OSError:
        return 0.0


class RunLock:
    """An exclusive lock on a run's checkpoint folder, held while it trains.

    The lock is a file ``lock`` in the folder, created atomically
    (``O_CREAT | O_EXCL``) and holding the pid and host of its owner. A lock
    whose process has died (on this host) is stale and is taken over with a
    warning.

    Example:

    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with RunLock(folder):
    ...         try:
    ...             RunLock(folder).acquire()
    ...         except RunError as err:
    ...             print("refused:", "is being trained by process" in str(err))
    ...     os.listdir(folder)
    refused: True
    []
    """

    def __init__(self, folder: str):
        self.folder = folder
        self.path = os.path.join(folder, LOCK_FILE)
        self.held = False

    def _holder(self) -> dict | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                holder = json.load(f)
            return holder if isinstance(holder, dict) and "pid" in holder else None
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, UnicodeDecodeError):
            return None

    def _create(self, me: dict) -> bool:
        """Creates the lock file already holding ``me`` (a hard link of a
        written file, so no other process ever reads it empty); False when
        it exists. Where the file system has no hard links, the file is
        created exclusively, then written."""
        handle, written = tempfile.mkstemp(prefix=".lock-", dir=self.folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as f:
                json.dump(me, f)
            os.link(written, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
            return True
        finally:
            os.remove(written)

    def acquire(self) -> RunLock:
        os.makedirs(self.folder, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        attempts, deadline = 0, time.monotonic() + _YOUNG_LOCK_SECONDS
        while attempts < 3:
            if not self._create(me):
                holder = self._holder()
                if holder == {}:  # released meanwhile
                    attempts += 1
                    continue
                if holder is None and time.monotonic() < deadline and _age(self.path) < 1.0:
                    time.sleep(0.05)  # another process may be writing its lock
                    continue
                if holder is not None:
                    pid, host = holder.get("pid"), holder.get("host")
                    if host != me["host"] or (isinstance(pid, int) and _process_alive(pid)):
                        raise RunError(
                            f"{self.folder} is being trained by process {pid} on {host} "
                            f"(lock file {self.path}): wait for it to finish or stop it; if no "
                            "such process runs any more, delete the lock file"
                        ) from None
                logging.warning(
                    "taking over the stale lock %s (%s)",
                    self.path,
                    f"process {holder.get('pid')} on {holder.get('host')} is not running"
                    if holder
                    else "unreadable",
                )
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                attempts += 1
                continue
            self.held = True
            return self
        raise RunError(f"cannot take the lock {self.path}: another process keeps taking it")

    def release(self) -> None:
        if self.held:
            self.held = False
            if self._holder() == {"pid": os.getpid(), "host": socket.gethostname()}:
                os.remove(self.path)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def check_output_folder(flag: str, path: str, run: str = "") -> None:
    """Refuses an output folder that names a file or cannot be written, or
    whose folder of the run ``run`` (when given) does.

    Raises:
      RunError: naming ``--flag``.

    Example:

    >>> with tempfile.NamedTemporaryFile() as f:
    ...     try:
    ...         check_output_folder("log_dir", f.name)
    ...     except RunError as err:
    ...         print(str(err).startswith(f"--log_dir={f.name}: "), "is a file" in str(err))
    True True
    """
    probe = os.path.abspath(os.path.join(path, run))
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise RunError(
            f"--{flag}={path}: {probe} is a file, not a folder; pass a folder (or remove the file)"
        )
    # Writing a file is the only reliable test: os.access() says yes to root
    # for folders that a read-only or special file system still refuses.
    try:
        handle, written = tempfile.mkstemp(prefix=".write-check-", dir=probe)
    except OSError as err:
        raise RunError(
            f"--{flag}={path}: the folder {probe} is not writable ({err.strerror}); pass a "
            "writable folder or fix its permissions"
        ) from None
    os.close(handle)
    os.remove(written)


def remove_unstarted(checkpoint_dir: str) -> None:
    """Removes a checkpoint folder that a failed run created and left without a
    checkpoint (holding at most ``run_config.json``)."""
    if not os.path.isdir(checkpoint_dir) or checkpoint_files(checkpoint_dir):
        return
    names = set(os.listdir(checkpoint_dir))
    if names <= {"run_config.json", STATE_FILE}:
        for name in names:
            os.remove(os.path.join(checkpoint_dir, name))
        os.rmdir(checkpoint_dir)
