"""Files written so that a crash never leaves half of one: a temporary file
in the same folder, then a rename over the target."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import IO


def write_atomic(path: str, write: Callable[[IO], None], binary: bool = False) -> None:
    """Calls ``write(file)`` on a temporary file beside ``path``, then renames it to ``path``.

    Missing parent folders are created. On any error the temporary file is
    removed and ``path`` is left as it was.

    Example:

    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "new", "notes.txt")
    ...     write_atomic(path, lambda f: f.write("hello"))
    ...     print(open(path).read(), os.listdir(os.path.dirname(path)))
    hello ['notes.txt']
    """
    text = {} if binary else {"encoding": "utf-8"}

    def write_file(tmp: str) -> None:
        with open(tmp, "wb" if binary else "w", **text) as f:
            write(f)

    write_atomic_path(path, write_file)


def write_atomic_path(path: str, write: Callable[[str], None]) -> None:
    """Calls ``write(temporary_path)``, then renames that file to ``path``.

    For writers that take a path, not a file (``keras.saving.save_model``).
    The temporary file is beside ``path``, named ``.tmp-*`` with the suffix
    of ``path`` (``.keras``, which Keras asks for); missing parent folders
    are created. On any error it is removed and ``path`` is left as it was.

    Example:

    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "notes.txt")
    ...     write_atomic_path(path, lambda tmp: open(tmp, "w").write("hi"))
    ...     print(open(path).read(), os.listdir(folder))
    hi ['notes.txt']
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
