"""Progress of a long loop: a progress bar on a terminal, plain lines elsewhere.

Keras's ``Progbar`` redraws one line with carriage returns, and decides that
it may do so whenever the ``posix`` module is loaded, that is on every Linux
machine, also when the output goes to a log file or a pipe: a log then holds
one line of tens of thousands of characters. :func:`progress` keeps the bar
for a terminal (or a notebook) and otherwise prints one plain line at most
every ``interval`` seconds, and one at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

import keras


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: standard output) shows a redrawn line as one
    line: a terminal, or a notebook's output."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is not None and isatty():
            return True
    except ValueError:  # a closed stream
        return False
    return _in_a_notebook_kernel()


def _in_a_notebook_kernel() -> bool:
    """Whether this process is a Jupyter kernel (ipykernel), whose output cells
    show a redrawn line as one line. Having ``ipykernel`` imported is not
    enough: tools that only look up kernels import it too."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if get_ipython is None:
        return False
    try:
        shell = get_ipython()
    except Exception:  # noqa: BLE001 - an IPython too broken to ask is no kernel
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _duration(seconds: float) -> str:
    """``seconds`` in the unit a reader takes in at once: ``12 s``, ``2.1 min``, ``1.3 h``."""
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class PlainProgress:
    """Plain, newline-terminated progress lines, e.g. ``step 120/300 (40%) -
    nll=41.2 - 31.0 s, about 46 s left``.

    The time left is estimated from the rate since the first unit counted
    after the first count given: neither a resumed run's earlier units nor
    the first unit (which pays for compiling) count. It is left out until
    there is such a rate, and at the target; with ``seconds_limit`` (a time
    limit on the loop) it is at most the time to that limit.

    The same interface as the part of ``keras.utils.Progbar`` used here:
    :meth:`update` to a count and :meth:`add` to it.

    Args:
      target: the count at the end.
      unit_name: what is counted, e.g. ``"step"``.
      interval: least seconds between two lines (the last count is always shown).
      stream: where the lines go; standard output by default.
      seconds_limit: the loop stops after this many seconds (None: no limit).
    """

    def __init__(
        self,
        target: int,
        unit_name: str = "step",
        interval: float = 10.0,
        stream: TextIO | None = None,
        seconds_limit: float | None = None,
    ):
        self.target = int(target)
        self.seconds_limit = seconds_limit
        self.unit_name = unit_name
        self.interval = float(interval)
        self.stream = stream
        self._count = 0
        self._start = time.time()
        self._last_line: float | None = None
        self._first: int | None = None  # the first count given
        self._base: tuple[float, int] | None = None  # (time, count) of the first unit after it

    def update(self, current: int, values: Sequence[tuple[str, float]] | None = None) -> None:
        """Sets the count to ``current``; prints a line when ``interval`` seconds
        have passed since the last one, or when the target is reached."""
        self._count = int(current)
        now = time.time()
        if self._first is None:
            self._first = self._count
        elif self._base is None and self._count > self._first:
            self._base = (now, self._count)
        done = self._count >= self.target
        if not done and self._last_line is not None and now - self._last_line < self.interval:
            return
        if self._last_line is None and not done and self._count == 0:
            self._last_line = now  # nothing to say before the first unit
            return
        self._last_line = now
        percent = 100.0 * self._count / self.target if self.target else 100.0
        parts = [f"{self.unit_name} {self._count}/{self.target} ({percent:.0f}%)"]
        parts += [f"{name}={value:.4g}" for name, value in values or ()]
        elapsed = f"{now - self._start:.1f} s"
        left = self._seconds_left(now)
        parts.append(
            elapsed if left is None or done else f"{elapsed}, about {_duration(left)} left"
        )
        stream = sys.stdout if self.stream is None else self.stream
        print(" - ".join(parts), file=stream, flush=True)

    def _seconds_left(self, now: float) -> float | None:
        """The time to the target at the rate since the base unit (at most the
        time to ``seconds_limit``), or None before there is a rate."""
        if self._base is None:
            return None
        base_time, base_count = self._base
        counted = self._count - base_count
        if counted <= 0 or now <= base_time:
            return None
        left = (self.target - self._count) * (now - base_time) / counted
        if self.seconds_limit is not None:
            left = min(left, max(0.0, self.seconds_limit - (now - self._start)))
        return left

    def add(self, n: int, values: Sequence[tuple[str, float]] | None = None) -> None:
        """Adds ``n`` to the count."""
        self.update(self._count + n, values)


def progress(
    target: int,
    unit_name: str = "step",
    stateful_metrics: Sequence[str] | None = None,
    interval: float = 10.0,
    seconds_limit: float | None = None,
):
    """A progress display for ``target`` units: Keras's bar on a terminal, a
    :class:`PlainProgress` otherwise.

    Args:
      target: the count at the end.
      unit_name: what is counted.
      stateful_metrics: names of the values shown as they are (not averaged)
        by the bar; plain lines always show the values as they are.
      interval: least seconds between two plain lines.
      seconds_limit: a time limit on the loop, which bounds the time left
        that plain lines show (None: none).
    """
    if is_terminal():
        return keras.utils.Progbar(target, stateful_metrics=stateful_metrics, unit_name=unit_name)
    return PlainProgress(
        target, unit_name=unit_name, interval=interval, seconds_limit=seconds_limit
    )
